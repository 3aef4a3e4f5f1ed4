"""Authenticated, encrypted links between SMPC parties, through a relay the sites connect out to.

Hospitals rarely accept inbound connections, so no party listens: every site opens one
outbound TLS connection to a **relay** (any host; later the Innohub), and the relay forwards
messages between them.  Two layers protect every message:

1. **Mutual TLS to the relay** (Python's :mod:`ssl`, TLS 1.3 only).  Each site has a
   long-term Ed25519 key pair and a self-signed X.509 certificate for it
   (:func:`create_identity`).  The run's **roster** (:func:`write_roster`) lists every
   party's certificate, in rank order, and the relay's.  The relay trusts exactly the
   roster's party certificates, so a party whose key is not on the roster is refused during
   the TLS handshake, before any message is exchanged; each party pins the relay's
   certificate from the roster.
2. **End-to-end encryption between parties** (the relay sees only ciphertext and sizes).  At
   the start of a session every party makes an ephemeral X25519 key and sends each other
   party a hello (session digest, sender, recipient, ephemeral public key) signed with its
   long-term Ed25519 key; the recipient verifies the signature against the roster.  Each
   pair derives, with HKDF-SHA256 over the X25519 secret and both ephemeral keys, one
   ChaCha20-Poly1305 key per direction and the 256-bit pairwise **masking key** of the
   secure sums (:mod:`~secured_bio.privacy.smpc.protocols`).  Every message is sealed with
   a per-direction counter as nonce and (session, sender, recipient, counter) as associated
   data, so a dropped, replayed, reordered, redirected or altered message fails
   authentication and aborts the session with :class:`~secured_bio.errors.ProtocolError`.

All primitives (TLS, X25519, Ed25519, HKDF, ChaCha20-Poly1305, X.509) come from the
``cryptography`` package and OpenSSL; nothing here is a home-made cipher.  The design
follows the authenticated key agreement of Bonawitz et al. (CCS 2017, section 6: signed
Diffie-Hellman keys, authenticated encryption of what the server routes between clients).

Threat model
------------
* The relay is **untrusted for confidentiality and integrity**: it learns who talks to whom,
  message sizes and timing, nothing else; anything it changes is detected.  It can stop the
  run (deny service).
* A network attacker sees TLS only.  Without a roster key it cannot join (TLS refuses it) and
  cannot impersonate a party to another party (hellos are signed, keys are roster-pinned).
* Each party's long-term key must stay secret (``*.key.pem`` is written 0600); whoever holds
  it can act as that party in future sessions.  Ephemeral keys give forward secrecy: a
  long-term key stolen later does not decrypt recorded sessions.
* Parties are semi-honest towards each other, as in :mod:`~secured_bio.privacy.smpc.protocols`.

Files
-----
``NAME.key.pem`` (PKCS#8 Ed25519 private key, mode 0600) and ``NAME.cert.pem`` (self-signed
X.509 certificate, CN = NAME) per site and for the relay; ``roster.json``::

    {"format": "secured_bio.smpc.roster", "version": 1, "session": "gwas-2026-12",
     "relay": {"name": "relay", "certificate": "-----BEGIN CERTIFICATE-----..."},
     "parties": [{"name": "site_a", "certificate": "..."}, ...]}

Party rank = position in ``parties``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import json
import logging
import os
import queue
import secrets
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secured_bio.errors import ConfigError, InputError, InputFileNotFoundError, ProtocolError

__all__ = [
    "Identity",
    "LinkConfig",
    "Roster",
    "create_identity",
    "read_roster",
    "run_relay",
    "write_roster",
]

log = logging.getLogger(__name__)

ROSTER_FORMAT = "secured_bio.smpc.roster"
ROSTER_VERSION = 1

_HEADER = struct.Struct("!IHB")  # body length, peer rank (dst to the relay, src from it), kind
_MAX_BODY = 1 << 30  # 1 GiB per message
_RELAY = 0xFFFF  # "peer" of relay-made frames
# Frame kinds
_WELCOME, _HELLO, _DATA, _ABORT, _BYE, _GONE = range(1, 7)
_HELLO_MAGIC = b"SBLINK1-HELLO"
_AAD_MAGIC = b"SBLINK1-DATA"
_KDF_INFO = b"secured_bio/smpc/link/v1"
_SIG_BYTES = 64
#: Bytes a sealed message adds on the wire: the frame header and the Poly1305 tag.
SEAL_OVERHEAD = 7 + 16
_X25519_BYTES = 32


# -- identities and rosters ---------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """A site's (or the relay's) long-term key pair on disk.

    Attributes
    ----------
    name
        The site name (certificate common name).
    key
        Path of the PKCS#8 PEM private key (mode 0600).
    cert
        Path of the self-signed X.509 certificate (PEM).
    """

    name: str
    key: Path
    cert: Path


def _check_name(name: str, where: str) -> None:
    if not isinstance(name, str) or not name or len(name) > 64 or not all(
        c.isalnum() or c in "-_." for c in name
    ):
        raise ConfigError("invalid site name", where=where,
                          expected="1-64 letters, digits, '-', '_' or '.'", got=repr(name))


def create_identity(name: str, out_dir: str | os.PathLike[str], *,
                    days: int = 730) -> Identity:
    """Make a long-term Ed25519 key pair and a self-signed certificate for a site or relay.

    Writes ``out_dir/NAME.key.pem`` (private, mode 0600: keep it at the site) and
    ``out_dir/NAME.cert.pem`` (public: send it to whoever writes the roster).  Existing files
    are never overwritten.

    Parameters
    ----------
    name
        Site name (letters, digits, ``-_.``); it becomes the certificate's common name.
    out_dir
        Folder to write into (created if missing).
    days
        Validity of the certificate.

    Returns
    -------
    Identity
        The paths written.

    Raises
    ------
    ConfigError
        If the name is invalid or the files exist already.

    Examples
    --------
    >>> import tempfile
    >>> ident = create_identity("site_a", tempfile.mkdtemp())
    >>> oct(ident.key.stat().st_mode & 0o777), ident.cert.name
    ('0o600', 'site_a.cert.pem')
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import NameOID

    _check_name(name, "name")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = out / f"{name}.key.pem", out / f"{name}.cert.pem"
    for p in (key_path, cert_path):
        if p.exists():
            raise ConfigError("identity file exists already", where=str(p),
                              fix="keep the existing key, or move it away to make a new one")
    key = ed25519.Ed25519PrivateKey.generate()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        # Self-signed: it is its own trust anchor in the peers' verify stores.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, None)
    )
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem_key)
    from secured_bio._atomic import atomic_write

    with atomic_write(cert_path, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    return Identity(name, key_path, cert_path)


@dataclass(frozen=True)
class RosterEntry:
    """One member of a roster: a name and its certificate (PEM)."""

    name: str
    certificate: str


@dataclass(frozen=True)
class Roster:
    """The parties of a run (rank order) and the relay, each with its certificate.

    Attributes
    ----------
    session
        A label of the run (part of every key derivation).
    relay
        The relay's entry (its certificate is pinned by the parties).
    parties
        The parties, party rank = position.
    """

    session: str
    relay: RosterEntry
    parties: tuple[RosterEntry, ...]

    @property
    def digest(self) -> bytes:
        """SHA-256 of the canonical roster: every party must hold the same one."""
        doc = {"session": self.session, "relay": [self.relay.name, self.relay.certificate],
               "parties": [[p.name, p.certificate] for p in self.parties]}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).digest()

    def rank_of(self, cert_der: bytes) -> int | None:
        """Return the party rank of a certificate (DER), or None if it is not on the roster."""
        for rank, p in enumerate(self.parties):
            if _der(p.certificate) == cert_der:
                return rank
        return None

    def rank_of_file(self, cert: str | os.PathLike[str]) -> int | None:
        """Return the party rank of a certificate file, or None if it is not on the roster."""
        return self.rank_of(_der(_load_cert(cert, "this party")[1]))

    def public_key(self, rank: int) -> Any:
        """Return the Ed25519 public key of party ``rank``."""
        from cryptography import x509

        return x509.load_pem_x509_certificate(self.parties[rank].certificate.encode()).public_key()


def _der(pem: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)


def _load_cert(path: str | os.PathLike[str], where: str) -> tuple[str, str]:
    """Return (common name, PEM) of an Ed25519 certificate file, with clear errors."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import NameOID

    p = Path(path)
    if not p.is_file():
        raise InputFileNotFoundError("certificate not found", where=str(p),
                                     fix=f"give the .cert.pem file of {where}")
    pem = p.read_text(errors="replace")
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as e:
        raise InputError("not a PEM certificate", where=str(p),
                         expected="a .cert.pem written by 'secured-bio smpc keygen'") from e
    if not isinstance(cert.public_key(), ed25519.Ed25519PublicKey):
        raise InputError("certificate key is not Ed25519", where=str(p),
                         expected="an Ed25519 certificate ('secured-bio smpc keygen')")
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    name = str(names[0].value) if names else p.name.split(".")[0]
    return name, cert.public_bytes(_pem_encoding()).decode()


def _pem_encoding() -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.PEM


def write_roster(out: str | os.PathLike[str], parties: Sequence[str | os.PathLike[str]],
                 relay: str | os.PathLike[str], *, session: str | None = None) -> Path:
    """Write the roster of a run: the parties' certificates in rank order, and the relay's.

    Parameters
    ----------
    out
        The roster file to write (JSON).
    parties
        Certificate files of the parties, party rank 0 first (at least two).
    relay
        Certificate file of the relay.
    session
        A label for the run (default: a random one).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ConfigError
        Fewer than two parties, or a name or certificate given twice.
    InputError, InputFileNotFoundError
        A certificate file is missing or not an Ed25519 certificate.
    """
    from secured_bio._atomic import atomic_write

    if len(parties) < 2:
        raise ConfigError("a roster needs at least two parties", where="--party",
                          expected=">= 2 certificate files", got=str(len(parties)))
    entries = [RosterEntry(*_load_cert(p, f"party {i}")) for i, p in enumerate(parties)]
    relay_entry = RosterEntry(*_load_cert(relay, "the relay"))
    _check_unique(entries, relay_entry, str(out))
    doc = {
        "format": ROSTER_FORMAT, "version": ROSTER_VERSION,
        "session": session or f"run-{secrets.token_hex(8)}",
        "relay": {"name": relay_entry.name, "certificate": relay_entry.certificate},
        "parties": [{"name": e.name, "certificate": e.certificate} for e in entries],
    }
    with atomic_write(out) as fh:
        json.dump(doc, fh, indent=1)
    return Path(out)


def _check_unique(entries: Sequence[RosterEntry], relay: RosterEntry, where: str) -> None:
    names = [e.name for e in entries]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError("party names repeat in the roster", where=where,
                          got=", ".join(dup), fix="give every site its own name")
    certs = [e.certificate for e in entries] + [relay.certificate]
    if len(set(certs)) != len(certs):
        raise ConfigError("a certificate appears twice in the roster", where=where,
                          fix="every party and the relay need their own key pair")


def read_roster(path: str | os.PathLike[str]) -> Roster:
    """Read and check a roster file written by :func:`write_roster`.

    Raises
    ------
    InputFileNotFoundError
        If the file is missing.
    InputError
        If it is not a roster of a supported version, or a certificate is malformed.
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileNotFoundError("roster not found", where=str(p),
                                     fix="write one with 'secured-bio smpc roster'")
    try:
        doc = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError("roster is not JSON", where=str(p),
                         expected="a file written by 'secured-bio smpc roster'") from e
    if not isinstance(doc, dict) or doc.get("format") != ROSTER_FORMAT:
        raise InputError("not a secured_bio roster", where=str(p),
                         expected=f"format {ROSTER_FORMAT!r}",
                         got=repr(doc.get("format") if isinstance(doc, dict) else type(doc)))
    if doc.get("version") != ROSTER_VERSION:
        raise InputError("unsupported roster version", where=str(p),
                         expected=str(ROSTER_VERSION), got=repr(doc.get("version")),
                         fix="write the roster with this secured_bio version")
    try:
        parties = tuple(RosterEntry(str(e["name"]), str(e["certificate"]))
                        for e in doc["parties"])
        relay = RosterEntry(str(doc["relay"]["name"]), str(doc["relay"]["certificate"]))
        session = str(doc["session"])
        for entry in (*parties, relay):
            _der(entry.certificate)
    except (KeyError, TypeError, ValueError) as err:
        raise InputError("malformed roster", where=str(p),
                         expected="session, relay and parties with name and certificate",
                         got=type(err).__name__) from err
    if len(parties) < 2:
        raise InputError("a roster needs at least two parties", where=str(p),
                         got=str(len(parties)))
    _check_unique(parties, relay, str(p))
    return Roster(session, relay, parties)


# -- framing --------------------------------------------------------------------------------------


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, int, bytes] | None:
    try:
        head = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as e:
        if e.partial:
            raise ConnectionError("connection closed in the middle of a frame") from e
        return None
    length, peer, kind = _HEADER.unpack(head)
    if length > _MAX_BODY:
        raise ConnectionError("frame larger than the limit")
    body = await reader.readexactly(length) if length else b""
    return peer, kind, body


def _frame(peer: int, kind: int, body: bytes = b"") -> bytes:
    return _HEADER.pack(len(body), peer, kind) + body


# -- the relay ------------------------------------------------------------------------------------


class _RelayState:
    def __init__(self, roster: Roster, ctx: ssl.SSLContext,
                 tamper: Callable[[int, int, bytes], bytes] | None):
        self.roster = roster
        self.ctx = ctx
        self.n = len(roster.parties)
        self.writers: dict[int, asyncio.StreamWriter] = {}
        self.pending: dict[int, list[bytes]] = {r: [] for r in range(self.n)}
        self.seen: set[int] = set()
        self.left: set[int] = set()
        self.done = asyncio.Event()
        self.tamper = tamper
        self.forwarded_bytes = 0

    async def deliver(self, dst: int, frame: bytes) -> None:
        w = self.writers.get(dst)
        if w is None:
            if dst not in self.left:
                self.pending[dst].append(frame)
            return
        try:
            w.write(frame)
            await w.drain()
        except (ConnectionError, OSError):
            pass  # the reader of that connection notices and reports it

    async def accept(self, conn: socket.socket, peer_addr: Any) -> None:
        """TLS handshake of one accepted connection (refusals logged), then :meth:`handle`.

        The handshake runs on the raw accepted socket (``connect_accepted_socket``), so no
        byte of the client's hello can be read by a plain stream first, and a failed
        handshake reaches us as an exception instead of asyncio's debug log.
        """
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**16)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol, conn, ssl=self.ctx, ssl_handshake_timeout=60.0)
        except (ssl.SSLError, ConnectionError, OSError, TimeoutError) as e:
            reason = ("certificate not on the roster"
                      if isinstance(e, ssl.SSLCertVerificationError) else type(e).__name__)
            log.warning("relay: refused a connection from %s: TLS handshake failed (%s)",
                        peer_addr, reason)
            conn.close()
            return
        await self.handle(reader, asyncio.StreamWriter(transport, protocol, reader, loop))

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer_addr = writer.get_extra_info("peername")
        ssl_obj = writer.get_extra_info("ssl_object")
        der = ssl_obj.getpeercert(binary_form=True) if ssl_obj is not None else None
        rank = self.roster.rank_of(der) if der else None
        if rank is None or rank in self.writers or rank in self.left:
            why = "not on the roster" if rank is None else "already connected"
            log.warning("relay: refused a connection from %s (certificate %s)", peer_addr, why)
            writer.close()
            return
        log.info("relay: party rank %d (%s) connected", rank, self.roster.parties[rank].name)
        self.writers[rank] = writer
        self.seen.add(rank)
        writer.write(_frame(_RELAY, _WELCOME, struct.pack("!HH", rank, self.n)))
        for frame in self.pending.pop(rank, []):
            writer.write(frame)
        clean = False
        try:
            await writer.drain()
            while True:
                got = await _read_frame(reader)
                if got is None:
                    break
                dst, kind, body = got
                if kind == _BYE:
                    clean = True
                    continue
                if kind == _ABORT:
                    for other in range(self.n):
                        if other != rank:
                            await self.deliver(other, _frame(rank, _ABORT, body))
                    continue
                if dst >= self.n or dst == rank or kind not in (_HELLO, _DATA):
                    log.warning("relay: dropped a malformed frame from party rank %d", rank)
                    continue
                if self.tamper is not None:
                    body = self.tamper(rank, dst, body)
                self.forwarded_bytes += len(body)
                await self.deliver(dst, _frame(rank, kind, body))
        except (ConnectionError, OSError, ssl.SSLError) as e:
            log.warning("relay: connection of party rank %d broke: %s", rank, type(e).__name__)
        finally:
            self.writers.pop(rank, None)
            self.left.add(rank)
            self.pending.pop(rank, None)
            for other in range(self.n):
                if other != rank:
                    await self.deliver(other, _frame(rank, _GONE, bytes([clean])))
            with contextlib.suppress(ConnectionError, OSError, ssl.SSLError):
                writer.close()
            if len(self.left) == self.n:
                self.done.set()


def _server_context(roster: Roster, key: str | os.PathLike[str],
                    cert: str | os.PathLike[str]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as e:
        raise ConfigError("cannot load the relay's key pair", where=f"{cert}, {key}",
                          got=type(e).__name__,
                          fix="give the relay's .cert.pem and .key.pem "
                          "('secured-bio smpc keygen --name relay')") from e
    if _der(Path(cert).read_text()) != _der(roster.relay.certificate):
        raise ConfigError("the relay's certificate is not the roster's relay certificate",
                          where=str(cert), fix="use the key pair named in the roster's relay")
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata="".join(p.certificate for p in roster.parties))
    return ctx


def run_relay(roster: str | os.PathLike[str] | Roster, *, key: str | os.PathLike[str],
              cert: str | os.PathLike[str], host: str = "0.0.0.0", port: int = 7443,
              once: bool = True, ready: Callable[[int], None] | None = None,
              _tamper: Callable[[int, int, bytes], bytes] | None = None) -> None:
    """Run a relay: accept the roster's parties over mutual TLS and forward their messages.

    The relay only forwards sealed messages (it cannot read or alter them undetected).  A
    connection whose certificate is not on the roster fails the TLS handshake.

    Parameters
    ----------
    roster
        The run's roster (path or :class:`Roster`).
    key, cert
        The relay's key pair (its certificate must be the roster's relay certificate).
    host, port
        Address to listen on.
    once
        Return when every party has connected and left (one session); False serves until
        interrupted.
    ready
        Called with the bound port once listening (tests, launchers).

    Raises
    ------
    ConfigError
        If the key pair cannot be loaded or is not the roster's relay.
    """
    r = roster if isinstance(roster, Roster) else read_roster(roster)
    ctx = _server_context(r, key, cert)

    async def main() -> None:
        state = _RelayState(r, ctx, _tamper)
        loop = asyncio.get_running_loop()

        def quiet(loop: Any, context: dict[str, Any]) -> None:
            exc = context.get("exception")
            if isinstance(exc, (ssl.SSLError, ConnectionError, OSError)):
                log.warning("relay: refused or lost a connection: %s", exc)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(quiet)
        listener = socket.create_server((host, port), reuse_port=False)
        listener.setblocking(False)
        bound = listener.getsockname()[1]
        log.info("relay listening on %s:%d for %d parties", host, bound, state.n)
        if ready is not None:
            ready(int(bound))
        tasks: set[asyncio.Task[None]] = set()

        async def accept_forever() -> None:
            while True:
                conn, addr = await loop.sock_accept(listener)
                task = loop.create_task(state.accept(conn, addr))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        acceptor = loop.create_task(accept_forever())
        try:
            if once:
                await state.done.wait()
            else:
                await acceptor
        finally:
            acceptor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await acceptor
            listener.close()

    try:
        asyncio.run(main())
    except OSError as e:
        raise ProtocolError("the relay could not listen", where=f"{host}:{port}",
                            got=type(e).__name__, fix="choose a free port") from e


# -- the party side --------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkConfig:
    """How one party reaches the relay and proves who it is (picklable).

    Attributes
    ----------
    relay_host, relay_port
        The relay's address.
    roster
        Path of the run's roster.
    key, cert
        This party's key pair (its certificate must be on the roster).
    """

    relay_host: str
    relay_port: int
    roster: str
    key: str
    cert: str


class _Sealer:
    """One direction of a pair: ChaCha20-Poly1305 with a message counter as nonce."""

    def __init__(self, key: bytes, session: bytes, src: int, dst: int) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        self.aead = ChaCha20Poly1305(key)
        self.prefix = _AAD_MAGIC + session + struct.pack("!HH", src, dst)
        self.counter = 0

    def _nonce_aad(self) -> tuple[bytes, bytes]:
        c = struct.pack("!Q", self.counter)
        self.counter += 1
        return c + b"\0\0\0\0", self.prefix + c

    def seal(self, plain: bytes) -> bytes:
        nonce, aad = self._nonce_aad()
        return self.aead.encrypt(nonce, plain, aad)

    def open(self, sealed: bytes) -> bytes:
        nonce, aad = self._nonce_aad()
        return self.aead.decrypt(nonce, sealed, aad)


class Link:
    """One party's connection to the relay: join, agree keys, exchange sealed messages.

    Use :meth:`connect`, then :meth:`handshake`; :meth:`exchange` sends and receives one
    round; :meth:`close` leaves cleanly, :meth:`abort` tells the others this party failed.
    """

    def __init__(self, config: LinkConfig, roster: Roster, rank: int) -> None:
        self.config = config
        self.roster = roster
        self.rank = rank
        self.world_size = len(roster.parties)
        self.mask_keys: dict[int, bytes] = {}
        self.bytes_sent = 0
        self.bytes_received = 0
        self._send_keys: dict[int, _Sealer] = {}
        self._recv_keys: dict[int, _Sealer] = {}
        self._inbox: dict[int, queue.Queue[tuple[int, bytes]]] = {
            p: queue.Queue() for p in range(self.world_size)
        }
        self._control: queue.Queue[tuple[int, int, bytes]] = queue.Queue()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="secured_bio-link")
        self._writer: asyncio.StreamWriter | None = None
        self._broken: str | None = None

    # -- set-up

    @classmethod
    def connect(cls, config: LinkConfig, *, timeout_s: float = 60.0,
                expect_rank: int | None = None) -> Link:
        """Connect to the relay over mutual TLS and wait for its welcome.

        Raises
        ------
        ConfigError
            If this party's certificate is not on the roster, or its rank is not
            ``expect_rank``.
        ProtocolError
            If the relay cannot be reached within ``timeout_s`` or refuses this party.
        """
        roster = read_roster(config.roster)
        rank = roster.rank_of_file(config.cert)
        if rank is None:
            raise ConfigError("this party's certificate is not on the roster",
                              where=f"{config.cert} vs {config.roster}",
                              fix="ask whoever writes the roster to add your .cert.pem, or "
                              "give the key pair you registered")
        if expect_rank is not None and expect_rank != rank:
            raise ConfigError("the party rank does not match the roster",
                              where="--rank", expected=str(rank), got=str(expect_rank),
                              fix="leave the rank out: it follows from the roster")
        link = cls(config, roster, rank)
        link._thread.start()
        try:
            link._run(link._open(timeout_s), timeout_s + 5.0)
        except BaseException:
            link._stop()
            raise
        return link

    def _run(self, coro: Any, timeout: float | None) -> Any:
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            raise

    def _client_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        # The relay is pinned by its roster certificate (host names differ between sites).
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=self.roster.relay.certificate)
        try:
            ctx.load_cert_chain(self.config.cert, self.config.key)
        except (ssl.SSLError, OSError) as e:
            raise ConfigError("cannot load this party's key pair",
                              where=f"{self.config.cert}, {self.config.key}",
                              got=type(e).__name__,
                              fix="give the matching .cert.pem and .key.pem") from e
        return ctx

    async def _open(self, timeout_s: float) -> None:
        where = f"relay {self.config.relay_host}:{self.config.relay_port}"
        ctx = self._client_context()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.config.relay_host, self.config.relay_port,
                                            ssl=ctx),
                    timeout=max(0.5, deadline - time.monotonic()))
                break
            except ssl.SSLCertVerificationError as e:
                raise ProtocolError("the relay's certificate is not the roster's relay",
                                    where=where, got="certificate verification failed",
                                    fix="check the relay address and the roster") from e
            except (TimeoutError, OSError) as e:
                if time.monotonic() >= deadline:
                    raise ProtocolError("could not reach the relay", where=where,
                                        expected=f"a connection within {timeout_s:g} s",
                                        got=type(e).__name__,
                                        fix="start the relay, check the address and "
                                        "firewalls (sites connect out only)") from e
                await asyncio.sleep(0.2)
        try:
            got = await asyncio.wait_for(_read_frame(reader), timeout=timeout_s)
        except (TimeoutError, ssl.SSLError, ConnectionError, OSError) as e:
            got = None
            cause: BaseException | None = e
        else:
            cause = None
        if got is None or got[1] != _WELCOME:
            writer.close()
            raise ProtocolError(
                "the relay refused this party", where=where,
                got=type(cause).__name__ if cause else "connection closed",
                fix="this party's certificate must be on the run's roster (the relay "
                "accepts only roster keys); ask the coordinator to check the roster",
            ) from cause
        rank, n = struct.unpack("!HH", got[2])
        if rank != self.rank or n != self.world_size:
            writer.close()
            raise ProtocolError("the relay holds another roster", where=where,
                                fix="give the relay and every party the same roster file")
        self._writer = writer
        self._loop.create_task(self._reader(reader))

    async def _reader(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                got = await _read_frame(reader)
                if got is None:
                    break
                src, kind, body = got
                self.bytes_received += _HEADER.size + len(body)
                if kind in (_HELLO, _DATA) and src < self.world_size:
                    self._inbox[src].put((kind, body))
                elif kind in (_GONE, _ABORT) and src < self.world_size:
                    self._inbox[src].put((kind, body))
        except (ConnectionError, OSError, ssl.SSLError) as e:
            self._broken = type(e).__name__
        finally:
            self._broken = self._broken or "connection closed"
            for q in self._inbox.values():
                q.put((0, b""))

    async def _send_frame(self, frame: bytes) -> None:
        assert self._writer is not None
        self._writer.write(frame)
        await self._writer.drain()

    def _send(self, dst: int, kind: int, body: bytes) -> None:
        frame = _frame(dst, kind, body)
        try:
            self._run(self._send_frame(frame), None)
        except (ConnectionError, OSError, ssl.SSLError) as e:
            raise ProtocolError("the connection to the relay broke",
                                where=f"party rank {self.rank}", got=type(e).__name__,
                                fix="see the relay's log; another party may have failed") from e
        self.bytes_sent += len(frame)

    def _receive(self, src: int, kind: int, timeout_s: float, what: str) -> bytes:
        try:
            got_kind, body = self._inbox[src].get(timeout=timeout_s)
        except queue.Empty:
            raise ProtocolError(f"party rank {src} did not answer during {what}",
                                where=f"party rank {self.rank}",
                                expected=f"a message within {timeout_s:g} s",
                                fix="that party may be stuck or slow; raise op_timeout_s") \
                from None
        if got_kind == kind:
            return body
        if got_kind == _ABORT:
            raise ProtocolError(f"party rank {src} failed and left the session during {what}",
                                where=f"party rank {self.rank}", fix="see that party's log")
        if got_kind == _GONE:
            raise ProtocolError(f"party rank {src} left the session during {what}",
                                where=f"party rank {self.rank}",
                                fix="that party failed or was stopped; see its log")
        if got_kind == 0:
            self._inbox[src].put((0, b""))  # keep the sentinel for later receives
            raise ProtocolError(f"the connection to the relay broke during {what}",
                                where=f"party rank {self.rank}", got=self._broken,
                                fix="see the relay's log; another party may have failed")
        raise ProtocolError(f"party rank {src} sent an unexpected message during {what}",
                            where=f"party rank {self.rank}",
                            fix="every party must run the same secured_bio version")

    def handshake(self, timeout_s: float) -> dict[int, bytes]:
        """Agree authenticated keys with every other party (one round through the relay).

        Returns
        -------
        dict
            The 256-bit masking key shared with each other party.

        Raises
        ------
        ProtocolError
            If a hello is not signed by the roster key of its sender, or names another session
            or recipient (an impersonation attempt or a mismatched roster).
        """
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
        signing = serialization.load_pem_private_key(Path(self.config.key).read_bytes(), None)
        if not isinstance(signing, ed25519.Ed25519PrivateKey):
            raise ConfigError("this party's key is not Ed25519", where=self.config.key,
                              fix="make one with 'secured-bio smpc keygen'")
        session = self.roster.digest
        eph = x25519.X25519PrivateKey.generate()
        eph_pub = eph.public_key().public_bytes(*raw)
        others = [p for p in range(self.world_size) if p != self.rank]
        for p in others:
            body = _HELLO_MAGIC + session + struct.pack("!HH", self.rank, p) + eph_pub
            self._send(p, _HELLO, body + signing.sign(body))
        head = len(_HELLO_MAGIC) + len(session) + 4
        for p in others:
            msg = self._receive(p, _HELLO, timeout_s, "key agreement")
            body, sig = msg[:-_SIG_BYTES], msg[-_SIG_BYTES:]
            expected = _HELLO_MAGIC + session + struct.pack("!HH", p, self.rank)
            ok = len(msg) == head + _X25519_BYTES + _SIG_BYTES and body[:head] == expected
            if ok:
                try:
                    self.roster.public_key(p).verify(sig, body)
                except InvalidSignature:
                    ok = False
            if not ok:
                raise ProtocolError(
                    f"the key-agreement message of party rank {p} is not signed by its "
                    "roster key (or names another session or recipient)",
                    where=f"party rank {self.rank}",
                    fix="an impostor or a tampering relay, or parties holding different "
                    "rosters; stop and check the roster and the relay",
                )
            theirs = body[head:]
            shared = eph.exchange(x25519.X25519PublicKey.from_public_bytes(theirs))
            lo, hi = sorted((self.rank, p))
            pubs = (eph_pub, theirs) if self.rank == lo else (theirs, eph_pub)
            okm = HKDF(algorithm=hashes.SHA256(), length=96, salt=session,
                       info=_KDF_INFO + struct.pack("!HH", lo, hi) + pubs[0] + pubs[1],
                       ).derive(shared)
            lo_to_hi, hi_to_lo, mask = okm[:32], okm[32:64], okm[64:]
            mine, theirs_k = (lo_to_hi, hi_to_lo) if self.rank == lo else (hi_to_lo, lo_to_hi)
            self._send_keys[p] = _Sealer(mine, session, self.rank, p)
            self._recv_keys[p] = _Sealer(theirs_k, session, p, self.rank)
            self.mask_keys[p] = mask
        return dict(self.mask_keys)

    # -- messages

    def exchange(self, sends: Mapping[int, bytes], receive_from: Sequence[int], what: str,
                 timeout_s: float) -> dict[int, bytes]:
        """Send one sealed message to each peer in ``sends``; receive one from each other.

        ``receive_from`` lists the peers to receive from.

        Raises
        ------
        ProtocolError
            If a peer left, failed, timed out, or a message fails authentication.
        """
        for p, plain in sends.items():
            self._send(p, _DATA, self._send_keys[p].seal(plain))
        out = {}
        for p in receive_from:
            sealed = self._receive(p, _DATA, timeout_s, what)
            try:
                out[p] = self._recv_keys[p].open(sealed)
            except Exception as e:  # cryptography's InvalidTag
                raise ProtocolError(
                    f"a message from party rank {p} failed authentication during {what}",
                    where=f"party rank {self.rank}",
                    got="tampered, replayed, reordered or corrupted in transit",
                    fix="the session is aborted and nothing is written; check the relay and "
                    "the network, then rerun",
                ) from e
        return out

    def abort(self) -> None:
        """Tell the other parties (through the relay) that this party failed; disconnect."""
        with contextlib.suppress(Exception):
            self._run(self._send_frame(_frame(_RELAY, _ABORT)), 5.0)
        self._stop()

    def close(self) -> None:
        """Leave the session cleanly."""
        with contextlib.suppress(Exception):
            self._run(self._send_frame(_frame(_RELAY, _BYE)), 5.0)
        self._stop()

    def _stop(self) -> None:
        async def shut() -> None:
            if self._writer is not None:
                self._writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._writer.wait_closed(), 5.0)

        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._run(shut(), 10.0)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)
        if not self._loop.is_running():
            self._loop.close()


def free_local_port() -> int:
    """Return a free TCP port on 127.0.0.1 (for a relay on this host)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
