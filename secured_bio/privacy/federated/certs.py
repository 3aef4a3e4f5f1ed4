"""Throw-away TLS material for a loopback Flower deployment (CA, SuperLink certificate, keys).

:func:`make_loopback_tls` makes a private certificate authority and a SuperLink (server)
certificate whose subject alternative names hold the loopback addresses, in the file layout of
Flower's "Enable TLS connections" guide (``ca.crt``, ``server.pem``, ``server.key``).  The CA's
private key is never written: it signs the one server certificate and is dropped, so nobody can
issue another certificate under this CA.  :func:`make_supernode_keys` makes the EC key pairs
(OpenSSH format) that Flower's SuperNode authentication expects.

Threat model: these files protect the wire on one machine (a test, a demo, a single-host
deployment).  For a real multi-site deployment use certificates from the institutions' own PKI,
with the SuperLink's public address in the SAN, and pass them with ``tls_dir``.

Private keys are written with mode ``0600`` before any key byte is written; every file is
written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from secured_bio._atomic import atomic_path
from secured_bio.errors import ConfigError, InputFileNotFoundError

__all__ = ["TlsFiles", "make_loopback_tls", "load_tls_dir", "cert_fingerprint",
           "make_supernode_keys", "TLS_FILE_NAMES"]

#: File names inside a TLS folder, as in Flower's guide.
TLS_FILE_NAMES = {"ca_cert": "ca.crt", "server_cert": "server.pem", "server_key": "server.key"}
_WHERE = "federated TLS"


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the CA certificate, the SuperLink certificate and its private key."""

    ca_cert: Path
    server_cert: Path
    server_key: Path

    def fingerprints(self) -> dict[str, str]:
        """SHA-256 fingerprints (hex, of the DER encoding) of both certificates; no key data."""
        return {"ca_sha256": cert_fingerprint(self.ca_cert),
                "server_sha256": cert_fingerprint(self.server_cert)}


def cert_fingerprint(path: str | os.PathLike[str]) -> str:
    """Return the SHA-256 fingerprint (lower-case hex) of the DER form of a PEM certificate.

    Examples
    --------
    >>> import tempfile
    >>> tls = make_loopback_tls(tempfile.mkdtemp())
    >>> len(cert_fingerprint(tls.ca_cert))
    64
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def _write_private(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        os.chmod(tmp, 0o600)  # before the key is written, never after
        tmp.write_bytes(data)


def _write_public(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _san(hosts: Sequence[str]) -> list[object]:
    from cryptography import x509

    names: list[object] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            if not h or any(c.isspace() or c in "/:@" for c in h):
                raise ConfigError("not an IP address or a DNS name", where=f"{_WHERE}: hosts",
                                  expected="e.g. 127.0.0.1 or localhost",
                                  got=f"a string of length {len(h)}",
                                  fix="pass IP addresses or host names") from None
            names.append(x509.DNSName(h))
    return names


def make_loopback_tls(
    out_dir: str | os.PathLike[str],
    *,
    hosts: Sequence[str] = ("127.0.0.1", "localhost"),
    valid_days: int = 7,
) -> TlsFiles:
    """Make a throw-away CA and a SuperLink certificate valid for ``hosts``.

    Parameters
    ----------
    out_dir
        Folder for ``ca.crt``, ``server.pem`` and ``server.key`` (created if missing;
        existing files of these names are replaced).
    hosts
        IP addresses and DNS names the SuperLink is reached at (its SAN entries).
    valid_days
        Validity of both certificates from now (they also start 5 minutes in the past, to
        tolerate clock skew).

    Returns
    -------
    TlsFiles
        The three paths.  The CA key is not written (see the module docstring).

    Raises
    ------
    ConfigError
        If ``hosts`` is empty or holds something that is neither an IP address nor a DNS
        name, or ``valid_days`` < 1.

    Examples
    --------
    >>> import tempfile, stat
    >>> tls = make_loopback_tls(tempfile.mkdtemp())
    >>> tls.server_cert.name, oct(stat.S_IMODE(tls.server_key.stat().st_mode))
    ('server.pem', '0o600')
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not hosts:
        raise ConfigError("no host for the server certificate", where=f"{_WHERE}: hosts",
                          expected="at least one address", got="none",
                          fix="pass hosts=('127.0.0.1',)")
    if isinstance(valid_days, bool) or not isinstance(valid_days, int) or valid_days < 1:
        raise ConfigError("valid_days must be an integer >= 1", where=_WHERE,
                          got=f"valid_days={valid_days!r}", fix="pass valid_days >= 1")
    sans = _san(list(hosts))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.UTC)
    start, end = now - _dt.timedelta(minutes=5), now + _dt.timedelta(days=valid_days)

    # ECDSA P-256: accepted by gRPC (BoringSSL), Python's ssl (uvicorn) and httpx; fast to make.
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "secured_bio"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "secured_bio throw-away CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "secured_bio"),
                      x509.NameAttribute(NameOID.COMMON_NAME, str(hosts[0]))])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=True, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)  # type: ignore[arg-type]
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(*(out / TLS_FILE_NAMES[k] for k in ("ca_cert", "server_cert", "server_key")))
    _write_private(files.server_key, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    _write_public(files.server_cert, cert.public_bytes(serialization.Encoding.PEM))
    _write_public(files.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    return files


def load_tls_dir(tls_dir: str | os.PathLike[str]) -> TlsFiles:
    """Return the TLS files of a folder laid out as :data:`TLS_FILE_NAMES`, checking they exist.

    Raises
    ------
    InputFileNotFoundError
        If one of ``ca.crt``, ``server.pem``, ``server.key`` is missing.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> load_tls_dir(make_loopback_tls(d).ca_cert.parent).server_key.name
    'server.key'
    """
    d = Path(tls_dir)
    files = TlsFiles(*(d / TLS_FILE_NAMES[k] for k in ("ca_cert", "server_cert", "server_key")))
    for p in (files.ca_cert, files.server_cert, files.server_key):
        if not p.is_file():
            raise InputFileNotFoundError("a TLS file is missing", where=str(p),
                                         expected=", ".join(TLS_FILE_NAMES.values()),
                                         fix="make them with make_loopback_tls or your PKI")
    return files


def make_supernode_keys(out_dir: str | os.PathLike[str], num_sites: int
                        ) -> list[tuple[Path, Path]]:
    """Make one EC P-384 key pair per site for Flower's SuperNode authentication.

    Returns ``[(private_key, public_key), ...]``: ``site{i}.key`` (OpenSSH private key, mode
    ``0600``) for ``flower-supernode --auth-supernode-private-key`` and ``site{i}.pub``
    (OpenSSH public key) for ``flwr supernode register``.

    Raises
    ------
    ConfigError
        If ``num_sites`` < 1.

    Examples
    --------
    >>> import tempfile
    >>> [(k.name, p.name) for k, p in make_supernode_keys(tempfile.mkdtemp(), 1)]
    [('site1.key', 'site1.pub')]
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if isinstance(num_sites, bool) or not isinstance(num_sites, int) or num_sites < 1:
        raise ConfigError("num_sites must be an integer >= 1", where=_WHERE,
                          got=f"num_sites={num_sites!r}", fix="pass num_sites >= 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(1, num_sites + 1):
        key = ec.generate_private_key(ec.SECP384R1())
        priv, pub = out / f"site{i}.key", out / f"site{i}.pub"
        _write_private(priv, key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.OpenSSH,
                                               serialization.NoEncryption()))
        _write_public(pub, key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                         serialization.PublicFormat.OpenSSH))
        pairs.append((priv, pub))
    return pairs
