"""TLS and SuperNode authentication for the loopback deployment engine.

The certificates are checked with Python's ``ssl`` module (OpenSSL), not with the
``cryptography`` package that made them; the deployment's result is compared with the
in-process engine on the same task and seed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import ssl
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_private_key, load_ssh_public_key
from cryptography.x509.oid import ExtendedKeyUsageOID

from secured_bio.errors import ConfigError, InputFileNotFoundError
from secured_bio.privacy.federated import run_federated
from secured_bio.privacy.federated.certs import (
    TLS_FILE_NAMES,
    TlsFiles,
    load_tls_dir,
    make_loopback_tls,
    make_supernode_keys,
)

TASK = "secured_bio.testing:LinearToyTask"
PARAMS = {"n_features": 4, "n_per_site": 80, "seed": 3}
BIN = Path(sys.executable).parent


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _sha256_der(pem: Path) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem.read_text())).hexdigest()


def _handshake(tls: TlsFiles, server_hostname: str) -> dict[str, Any]:
    """Serve one TLS connection on 127.0.0.1 with the server cert; connect verifying the CA."""
    srv_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv_ctx.load_cert_chain(tls.server_cert, tls.server_key)
    cli_ctx = ssl.create_default_context(cafile=str(tls.ca_cert))  # check_hostname=True
    with socket.create_server(("127.0.0.1", 0)) as lsock:
        port = lsock.getsockname()[1]

        def serve() -> None:
            conn, _ = lsock.accept()
            with conn, contextlib.suppress(ssl.SSLError, OSError):
                with srv_ctx.wrap_socket(conn, server_side=True) as s:
                    s.recv(1)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                    cli_ctx.wrap_socket(raw, server_hostname=server_hostname) as s:
                peer = s.getpeercert()
                assert peer is not None
                return dict(peer)
        finally:
            t.join(timeout=5)


# ------------------------------------------------------------------------------- certs
def test_make_loopback_tls__certificates_have_ca_and_server_usages_and_loopback_san(tmp_path):
    tls = make_loopback_tls(tmp_path)
    ca = x509.load_pem_x509_certificate(tls.ca_cert.read_bytes())
    srv = x509.load_pem_x509_certificate(tls.server_cert.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ca_ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ca_ku.key_cert_sign and ca_ku.crl_sign
    assert not srv.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ku = srv.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    eku = srv.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    san = srv.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert srv.issuer == ca.subject
    srv.verify_directly_issued_by(ca)  # raises if the CA did not sign it


def test_make_loopback_tls__private_key_is_0600_and_ca_key_is_not_written(tmp_path):
    tls = make_loopback_tls(tmp_path / "tls")
    assert _mode(tls.server_key) == 0o600
    umask = os.umask(0)
    os.umask(umask)
    assert _mode(tls.server_cert) == _mode(tls.ca_cert) == 0o666 & ~umask  # as open() would
    assert sorted(p.name for p in (tmp_path / "tls").iterdir()) == sorted(
        TLS_FILE_NAMES.values())  # no CA key, no temporary file left
    assert b"PRIVATE KEY" not in tls.ca_cert.read_bytes() + tls.server_cert.read_bytes()


def test_make_loopback_tls__openssl_accepts_the_certificate_for_127_0_0_1_and_localhost(
        tmp_path):
    tls = make_loopback_tls(tmp_path)
    peer = _handshake(tls, "127.0.0.1")
    assert ("IP Address", "127.0.0.1") in peer["subjectAltName"]
    assert _handshake(tls, "localhost")["subjectAltName"] == peer["subjectAltName"]


def test_make_loopback_tls__openssl_rejects_another_host_name(tmp_path):
    tls = make_loopback_tls(tmp_path)
    with pytest.raises(ssl.SSLCertVerificationError, match="match|mismatch"):
        _handshake(tls, "example.org")


def test_make_loopback_tls__hosts_set_the_san(tmp_path):
    tls = make_loopback_tls(tmp_path, hosts=("10.1.2.3", "link.example.org"))
    san = x509.load_pem_x509_certificate(tls.server_cert.read_bytes()).extensions \
        .get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]
    assert san.get_values_for_type(x509.DNSName) == ["link.example.org"]


def test_tls_files_fingerprints__equal_sha256_of_the_der_certificates(tmp_path):
    tls = make_loopback_tls(tmp_path)
    assert tls.fingerprints() == {"ca_sha256": _sha256_der(tls.ca_cert),
                                  "server_sha256": _sha256_der(tls.server_cert)}


@pytest.mark.parametrize(("kw", "match"), [
    ({"hosts": ()}, "no host"),
    ({"hosts": ("bad host/x",)}, "not an IP address or a DNS name"),
    ({"valid_days": 0}, "valid_days must be"),
])
def test_make_loopback_tls__bad_options_raise(tmp_path, kw, match):
    with pytest.raises(ConfigError, match=match):
        make_loopback_tls(tmp_path, **kw)


def test_load_tls_dir__missing_file_raises(tmp_path):
    make_loopback_tls(tmp_path)
    (tmp_path / "server.key").unlink()
    with pytest.raises(InputFileNotFoundError, match="a TLS file is missing"):
        load_tls_dir(tmp_path)


def test_make_supernode_keys__openssh_p384_pairs_with_private_keys_0600(tmp_path):
    pairs = make_supernode_keys(tmp_path, 2)
    assert len(pairs) == 2
    for priv, pub in pairs:
        key = load_ssh_private_key(priv.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert key.curve.name == "secp384r1"
        assert load_ssh_public_key(pub.read_bytes()) == key.public_key()
        assert _mode(priv) == 0o600
    assert pairs[0][1].read_bytes() != pairs[1][1].read_bytes()


def test_make_supernode_keys__no_site_raises(tmp_path):
    with pytest.raises(ConfigError, match="num_sites must be"):
        make_supernode_keys(tmp_path, 0)


# ----------------------------------------------------------------- run_federated options
def test_run_federated__tls_outside_deployment_raises(tmp_path):
    with pytest.raises(ConfigError, match="deployment engine only"):
        run_federated(TASK, PARAMS, engine="inprocess", num_sites=2, rounds=1,
                      work_dir=tmp_path, tls=True)


def test_run_federated__node_auth_without_tls_raises(tmp_path):
    with pytest.raises(ConfigError, match="SuperNode authentication needs TLS"):
        run_federated(TASK, PARAMS, engine="deployment", num_sites=2, rounds=1,
                      work_dir=tmp_path, node_auth=True)


def test_run_federated__incomplete_tls_dir_raises_before_starting_processes(tmp_path):
    (tmp_path / "tls").mkdir()
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(InputFileNotFoundError, match="a TLS file is missing"):
        run_federated(TASK, PARAMS, engine="deployment", num_sites=2, rounds=1,
                      work_dir=tmp_path / "w", tls_dir=tmp_path / "tls")
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before
    assert not (tmp_path / "w" / "logs").exists()


# ------------------------------------------------------------------ real deployments
def _no_process_left(pids: list[int]) -> bool:
    return not [p for p in pids if psutil.pid_exists(p)
                and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


@pytest.mark.slow
def test_deployment_tls_node_auth__matches_inprocess_and_leaves_no_process(tmp_path):
    kw = {"num_sites": 3, "rounds": 1}
    dep = run_federated(TASK, PARAMS, engine="deployment", work_dir=tmp_path / "dep",
                        timeout_s=300, round_timeout_s=60, tls=True, node_auth=True, **kw)
    ref = run_federated(TASK, PARAMS, engine="inprocess", work_dir=tmp_path / "ref", **kw)
    for a, b in zip(dep.state, ref.state, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert [r["num_clients"] for r in dep.rounds] == [3]
    eng = dep.engine
    assert eng["tls"] is True and eng["node_auth"] is True
    cmd = eng["superlink_cmd"]
    assert "--insecure" not in cmd and "--enable-supernode-auth" in cmd
    tls = load_tls_dir(tmp_path / "dep" / "tls")
    assert cmd[cmd.index("--ssl-certfile") + 1] == str(tls.server_cert)
    assert eng["tls_fingerprints"] == {"ca_sha256": _sha256_der(tls.ca_cert),
                                       "server_sha256": _sha256_der(tls.server_cert)}
    assert _handshake(tls, "127.0.0.1")  # the certificate the SuperLink served is valid here
    logs = Path(eng["log_dir"])
    assert "running on https://127.0.0.1" in (logs / "superlink.log").read_text()
    for i in (1, 2, 3):
        assert "registered successfully" in (logs / f"register{i}.log").read_text()
    recorded = json.dumps(eng, default=str)
    assert "PRIVATE KEY" not in recorded
    assert tls.server_key.read_text().splitlines()[1] not in recorded
    assert eng["processes"] == 5  # superlink, 3 supernodes, flwr run
    assert eng["orphans"] == []
    assert _no_process_left(eng["pids"])


def _wait_port(port: int, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("SuperLink did not start")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_superlink_with_tls_and_auth__refuses_plain_http_and_an_unregistered_supernode(
        tmp_path):
    from secured_bio.privacy.federated.engines import _Processes  # the engine's reaper

    tls = make_loopback_tls(tmp_path / "tls")
    (priv, _pub), = make_supernode_keys(tmp_path / "keys", 1)
    env = {**os.environ, "FLWR_HOME": str(tmp_path / "home"), "FLWR_TELEMETRY_ENABLED": "0",
           "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PYTHONWARNINGS", None)
    port = _free_port()
    procs = _Processes()
    try:
        procs.start([str(BIN / "flower-superlink"), "--ssl-ca-certfile", str(tls.ca_cert),
                     "--ssl-certfile", str(tls.server_cert), "--ssl-keyfile",
                     str(tls.server_key), "--enable-supernode-auth", "--host", "127.0.0.1",
                     "--port", str(port), "--disable-runtime-dependency-installation"],
                    env, tmp_path / "superlink.log")
        _wait_port(port)
        # plain HTTP gets no HTTP answer from a TLS-only port
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            try:
                answer = s.recv(64)
            except (ConnectionResetError, TimeoutError):
                answer = b""
        assert not answer.startswith(b"HTTP/")
        node_log = tmp_path / "supernode.log"
        node = procs.start([str(BIN / "flower-supernode"), "--root-certificates",
                            str(tls.ca_cert), "--auth-supernode-private-key", str(priv),
                            "--superlink", f"127.0.0.1:{port}", "--port", str(_free_port()),
                            "--max-retries", "1"], env, node_log)
        rc = node.wait(timeout=60)
    finally:
        orphans = procs.stop()
    assert rc != 0
    assert "Failed to activate SuperNode" in node_log.read_text()
    assert "No SuperNode found with the given public key" in (
        tmp_path / "superlink.log").read_text()
    assert orphans == []
