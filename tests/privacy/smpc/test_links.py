"""Authenticated, encrypted links between parties through a relay (privacy.smpc.links).

Parties are separate processes with their own key pairs; the relay runs in this test process
(a thread) so that tests can put a recorder or a tampering hook in the path.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from privacy.smpc import _party_fns as fns

from secured_bio.errors import ConfigError, InputError, ProtocolError
from secured_bio.privacy.smpc import (
    LinkConfig,
    create_identity,
    read_roster,
    run_parties,
    run_party,
    run_relay,
    write_roster,
)
from secured_bio.privacy.smpc.protocols import _MAGIC

N = 3


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("links")
    ids = [create_identity(f"site{r}", d) for r in range(N)]
    relay = create_identity("relay", d)
    intruder = create_identity("intruder", d)
    roster = write_roster(d / "roster.json", [i.cert for i in ids], relay.cert, session="t")
    return {"dir": d, "ids": ids, "relay": relay, "intruder": intruder, "roster": roster}


def _start_relay(keys: dict, *, tamper: Callable[[int, int, bytes], bytes] | None = None,
                 roster: Path | None = None) -> tuple[int, threading.Thread, list]:
    ready: list[int] = []
    errors: list[BaseException] = []
    event = threading.Event()

    def main() -> None:
        try:
            run_relay(roster or keys["roster"], key=keys["relay"].key, cert=keys["relay"].cert,
                      host="127.0.0.1", port=0, once=True,
                      ready=lambda p: (ready.append(p), event.set()), _tamper=tamper)
        except BaseException as e:  # reported by the test
            errors.append(e)
            event.set()

    t = threading.Thread(target=main, daemon=True)
    t.start()
    assert event.wait(20) and ready, errors
    return ready[0], t, errors


def _configs(keys: dict, port: int, ids: list | None = None,
             roster: Path | None = None) -> list[LinkConfig]:
    return [LinkConfig("127.0.0.1", port, str(roster or keys["roster"]), str(i.key),
                       str(i.cert)) for i in (ids or keys["ids"])]


@pytest.fixture(scope="module")
def gloo_reference() -> list[dict]:
    return run_parties(fns.protocols_party, [{"crypten": False}] * N, timeout_s=60)


# -- identities and rosters -----------------------------------------------------------------


def test_create_identity__private_key_is_0600_and_never_overwritten(tmp_path: Path) -> None:
    ident = create_identity("a", tmp_path)
    assert ident.key.stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" in ident.key.read_bytes() and b"PRIVATE" not in ident.cert.read_bytes()
    with pytest.raises(ConfigError, match="identity file exists already"):
        create_identity("a", tmp_path)
    with pytest.raises(ConfigError, match="invalid site name"):
        create_identity("a/b", tmp_path)


def test_roster__round_trip_and_checks(keys, tmp_path: Path) -> None:
    r = read_roster(keys["roster"])
    assert [p.name for p in r.parties] == ["site0", "site1", "site2"] and r.relay.name == "relay"
    assert r.rank_of_file(keys["ids"][2].cert) == 2
    assert r.rank_of_file(keys["intruder"].cert) is None
    with pytest.raises(ConfigError, match="party names repeat"):
        write_roster(tmp_path / "r.json", [keys["ids"][0].cert, keys["ids"][0].cert],
                     keys["relay"].cert)
    doc = json.loads(Path(keys["roster"]).read_text())
    doc["version"] = 99
    (tmp_path / "v.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="unsupported roster version"):
        read_roster(tmp_path / "v.json")


# -- sessions through the relay -------------------------------------------------------------


def test_relay__protocols_give_the_results_of_gloo(keys, gloo_reference) -> None:
    """The whole protocol suite (sums, reveal to one, errors mid-session) over the relay."""
    port, thread, errors = _start_relay(keys)
    linked = run_parties(fns.protocols_party, [{"crypten": False}] * N, timeout_s=60,
                         links=_configs(keys, port))
    thread.join(20)
    assert not errors and not thread.is_alive()  # the relay ends when every party left
    for a, b in zip(linked, gloo_reference, strict=True):
        np.testing.assert_array_equal(a["float_sum"], b["float_sum"])
        np.testing.assert_array_equal(a["many"]["counts"], b["many"]["counts"])
        np.testing.assert_array_equal(a["many"]["beta"], b["many"]["beta"])


def test_run_parties__relay_mode_makes_its_own_keys_and_relay() -> None:
    out = run_parties(fns.protocols_party, [{"crypten": False}] * N, timeout_s=60, links="relay")
    assert len(out) == N and all(o["many"]["counts"].dtype == np.int64 for o in out)


class _Recorder:
    """A TCP proxy in front of the relay that keeps every byte in both directions."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.data = bytearray()
        self.lock = threading.Lock()
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = [self.server]
        self.threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        for s in self.sockets:
            s.close()
        for t in self.threads:
            t.join(5)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                t = threading.Thread(target=self._pump, args=(a, b), daemon=True)
                self.threads.append(t)
                t.start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                with self.lock:
                    self.data += chunk
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _windows(a: np.ndarray, width: int = 16) -> Iterator[bytes]:
    raw = np.ascontiguousarray(a).tobytes()
    for i in range(0, max(1, len(raw) - width + 1), width):
        yield raw[i:i + width]


def test_relay__a_recorder_on_the_wire_finds_no_message_sum_or_input(keys) -> None:
    port, thread, _ = _start_relay(keys)
    rec = _Recorder(port)
    out = run_parties(fns.recorded_protocols_party, [{}] * N, timeout_s=60,
                      links=_configs(keys, rec.port))
    thread.join(20)
    rec.close()
    wire = bytes(rec.data)
    assert len(wire) > 10_000  # the traffic was captured
    assert np.int64(_MAGIC).tobytes() not in wire  # no protocol header in the clear
    for party in out:
        for payload in party["sent"]:  # every masked vector a party handed to the link
            assert not any(w in wire for w in _windows(payload)), "a message in the clear"
        for value in (party["float_sum"], party["many"]["counts"], party["many"]["beta"]):
            assert not any(w in wire for w in _windows(value)), "a revealed sum in the clear"
    for rank in range(N):
        for value in fns.inputs(rank).values():
            assert not any(w in wire for w in _windows(np.asarray(value)))


def test_relay__an_unregistered_party_is_refused_before_any_data(keys, tmp_path: Path) -> None:
    # Its own (forged) roster names it in place of site2; the relay holds the real one.
    forged = write_roster(tmp_path / "forged.json",
                          [keys["ids"][0].cert, keys["ids"][1].cert, keys["intruder"].cert],
                          keys["relay"].cert, session="t")
    port, thread, _ = _start_relay(keys)
    cfg = _configs(keys, port, ids=[keys["intruder"]], roster=forged)[0]
    with pytest.raises(ProtocolError, match="the relay refused this party") as info:
        run_party(2, N, fns.never_called, None, link=cfg, timeout_s=20)
    assert "must be on the run's roster" in str(info.value)
    # With the real roster it is refused locally, before connecting.
    cfg = _configs(keys, port, ids=[keys["intruder"]])[0]
    with pytest.raises(ConfigError, match="certificate is not on the roster"):
        run_party(2, N, fns.never_called, None, link=cfg, timeout_s=20)


def _flip_data(after: int) -> Callable[[int, int, bytes], bytes]:
    seen = {"n": 0}

    def tamper(src: int, dst: int, body: bytes) -> bytes:
        if len(body) > 200:  # a sealed data message, not a hello
            seen["n"] += 1
            if seen["n"] == after:
                return body[:-40] + bytes([body[-40] ^ 1]) + body[-39:]
        return body

    return tamper


def _failure_through(keys: dict, tamper: Callable[[int, int, bytes], bytes]) -> str:
    """Run the protocol suite through a tampering relay; the text of the error it raises."""
    port, thread, _ = _start_relay(keys, tamper=tamper)
    with pytest.raises(ProtocolError) as info:
        run_parties(fns.protocols_party, [{"crypten": False}] * N, timeout_s=30,
                    links=_configs(keys, port))
    return str(info.value) + "".join(getattr(info.value, "__notes__", []))


def test_relay__a_tampered_message_aborts_every_party(keys) -> None:
    text = _failure_through(keys, _flip_data(after=2))
    assert "failed authentication" in text, text


def test_relay__a_forged_key_agreement_is_rejected(keys) -> None:
    def swap_key(src: int, dst: int, body: bytes) -> bytes:
        if len(body) < 200 and src == 1:  # a hello: replace the ephemeral key
            return body[:-96] + bytes(32) + body[-64:]
        return body

    text = _failure_through(keys, swap_key)
    assert "not signed by its roster key" in text, text


def test_run_party__relay_links_refuse_a_dealer(keys) -> None:
    cfg = _configs(keys, 1)[0]
    with pytest.raises(ConfigError, match="secure sums only"):
        run_party(0, N, fns.never_called, None, link=cfg, dealer="ttp")
