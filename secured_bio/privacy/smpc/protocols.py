"""Secure aggregation: element-wise sums of the parties' arrays, revealing only the sum.

Each site computes its statistics locally in plaintext (counts, score vectors, Gram
matrices...); these protocols add them up across sites so that only the total is revealed.
Everything here runs inside a party (:func:`~secured_bio.privacy.smpc.run_party` or
:func:`~secured_bio.privacy.smpc.run_parties`) and every party must make the same calls, in
the same order, with arrays of the same keys and shapes.

Protocol
--------
Additive secret sharing in the ring of integers modulo 2**64 with pairwise masks
(Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine Learning",
CCS 2017, without the dropout recovery).  Once per session every pair of parties ``i < j``
agrees on a 256-bit key ``K_ij`` by finite-field Diffie-Hellman (RFC 3526 group 14, 2048-bit
MODP, 256-bit exponents).  For its *k*-th protocol call party ``i`` encodes its array as
integers ``x_i`` (fixed point with ``precision_bits`` fractional bits, or exact integers) and
sends ::

    y_i = x_i + sum_{j > i} M(K_ij, k) - sum_{j < i} M(K_ij, k)   (mod 2**64)

where ``M`` is the SHAKE-256 output stream keyed by ``K_ij`` and ``k``.  The masks cancel in
``sum_i y_i = sum_i x_i``; each ``y_i`` on its own is uniformly distributed to anyone who lacks
at least one of party ``i``'s pairwise keys.  Every call costs one round of a tiny header (to
check that all parties agree on shapes and options and that their values are in range, so all
of them fail together instead of hanging) and one round of masked data; the key agreement adds
one round to the first call of a session.

Why not ``crypten.cryptensor(x, src=rank)``?  CrypTen's shares are masked by pseudo-random
zero sharings from ``torch.Generator`` (Mersenne Twister): the seeds go between neighbours in
the clear and torch keeps only 32 bits of each seed, so a curious neighbour can brute-force
the mask and read another party's input out of its share.  The masks above come from a keyed
SHAKE-256 stream and Diffie-Hellman keys instead.  The parties, their transport
(torch.distributed/gloo through CrypTen's communicator) and the dealer are CrypTen's.

Threat model and reveal set
---------------------------
Semi-honest parties; any coalition of parties learns nothing beyond its own inputs and the
outputs it is given, provided at least two parties are outside the coalition (with only two
parties, whoever learns the sum learns the other party's input by subtraction, a property of
sums, not of the protocol).  Over the relay links (:mod:`secured_bio.privacy.smpc.links`) the
pairwise keys come from the authenticated X25519 exchange and every message is sealed, so the
network and the relay learn nothing but sizes.  Over gloo the keys come from the
unauthenticated Diffie-Hellman below: a passive eavesdropper learns no input but can add up
the masked vectors it sees and so learns the *revealed sums*, and an active attacker can
impersonate a party (use gloo on one trusted host only).  What each party learns:

* the parties in ``reveal_to`` (all of them, or one rank): the element-wise sums;
* every party: the keys, shapes and kinds (integer / fixed point) of the arrays, the options,
  and for every party a status flag (values in range, finite, of the right kind);
* message sizes and timing.

Nothing else leaves a site: no input, no per-site statistic, no share in the clear
(``tests/privacy/smpc/test_protocols.py`` records every message and checks this).

Numerics
--------
* Fixed point (floats): ``round(x * 2**precision_bits)``; each value is off by at most
  ``2**-(precision_bits + 1)``, the sum by at most ``n_parties`` times that (7.6e-6 per party at
  16 bits).  The sum must fit in a signed 64-bit integer: each party's ``|x|`` must be at most
  ``2**(62 - precision_bits) / n_parties`` (7.0e13 / n at 16 bits; values above 2**53 / 2**16
  = 1.4e11 also lose float64 resolution).  Larger values raise ConfigError: use fewer
  fractional bits, rescale, or :func:`secure_sum_int`.  (CrypTen's own ``MPCTensor``
  multiplications need twice the fractional bits, so there the bound is about 2**31 = 2e9.)
* Integers (:func:`secure_sum_int`, integer arrays in :func:`secure_sum_many`): exact, as long
  as each party's ``|x| <= (2**63 - 1) // n_parties`` (about 3e18 for three parties), which
  guarantees the sum fits in int64.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from secured_bio.errors import ConfigError, InputError, ProtocolError

from . import parties

__all__ = [
    "Message",
    "MessageLog",
    "ProtocolStats",
    "measure",
    "record_messages",
    "secure_sum",
    "secure_sum_int",
    "secure_sum_many",
]

RevealTo = int | Literal["all"]

# RFC 3526, group 14 (2048-bit MODP); P = 2Q + 1 with Q prime; 2 generates the order-Q group.
_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B"
    "0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA4836"
    "1C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804"
    "F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6"
    "955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
    16,
)
_Q = (_P - 1) // 2
_G = 2
_KEY_BYTES = 256
_KDF_LABEL = b"secured_bio/smpc/pairwise-mask/v1"

_MAGIC = 0x5342534D50430001  # "SBSMPC" v1: first word of every protocol header
_OK, _OUT_OF_RANGE, _NON_FINITE, _NOT_INTEGER, _NOT_NUMERIC = range(5)
_MAX_PRECISION_BITS = 48


# -- statistics and the message recorder ------------------------------------------------------


@dataclass
class ProtocolStats:
    """Communication cost of one party over a block of code (see :func:`measure`).

    Attributes
    ----------
    bytes_sent, bytes_received
        Payload bytes this party sent / received.  Exact for point-to-point messages (all the
        secure sums use); for collectives (CrypTen's own operations) an estimate that does not
        depend on gloo's algorithm (e.g. all_reduce: ``2 (n-1)/n`` times the tensor).
    messages_sent, messages_received
        Number of messages (calls) sent / received.
    rounds
        Communication rounds of secured_bio protocols (a round is a set of messages that must
        all arrive before the next step); CrypTen's own operations are not counted.
    seconds
        Wall-clock time of the block.
    """

    bytes_sent: int = 0
    bytes_received: int = 0
    messages_sent: int = 0
    messages_received: int = 0
    rounds: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        """Return the statistics as a plain dict (for JSON).

        Returns
        -------
        dict
            Field name to value.

        Examples
        --------
        >>> ProtocolStats(bytes_sent=8).as_dict()["bytes_sent"]
        8
        """
        return asdict(self)


@dataclass
class Message:
    """One tensor this party sent or received over torch.distributed.

    Attributes
    ----------
    op
        The torch.distributed call (``isend``, ``irecv``, ``broadcast``, ``all_reduce``...).
    peer
        Global rank of the other party for point-to-point calls, the root of rooted
        collectives, None for all_reduce / all_gather.
    nbytes
        Size of the tensor in bytes.
    bytes_sent, bytes_received
        What this call sent / received (see :class:`ProtocolStats`).
    dtype, shape
        Of the tensor.
    payload
        A copy of the tensor (for sends: when it was handed over; for receives: when the
        recorder closed), or None when payloads are not kept.
    """

    op: str
    peer: int | None
    nbytes: int
    bytes_sent: int
    bytes_received: int
    dtype: str
    shape: tuple[int, ...]
    payload: np.ndarray | None = None


class MessageLog:
    """The messages recorded by :func:`record_messages` in this party."""

    def __init__(self, keep_payloads: bool) -> None:
        self.keep_payloads = keep_payloads
        self.messages: list[Message] = []
        self._pending: list[tuple[Message, Any]] = []

    def sent(self) -> list[Message]:
        """Return the messages that sent data from this party.

        Returns
        -------
        list of Message
            In the order of the calls.
        """
        return [m for m in self.messages if m.bytes_sent > 0]

    def received(self) -> list[Message]:
        """Return the messages that brought data to this party.

        Returns
        -------
        list of Message
            In the order of the calls.
        """
        return [m for m in self.messages if m.bytes_received > 0]

    def stats(self) -> ProtocolStats:
        """Return the byte and message counts of the recorded messages.

        Returns
        -------
        ProtocolStats
            With ``rounds`` and ``seconds`` left at 0.
        """
        sent, received = self.sent(), self.received()
        return ProtocolStats(
            bytes_sent=sum(m.bytes_sent for m in sent),
            bytes_received=sum(m.bytes_received for m in received),
            messages_sent=len(sent),
            messages_received=len(received),
        )

    def _add(self, message: Message, tensor: Any, *, sent_payload: bool) -> None:
        if self.keep_payloads:
            if sent_payload:
                message.payload = tensor.detach().cpu().numpy().copy()
            else:
                self._pending.append((message, tensor))
        self.messages.append(message)

    def _close(self) -> None:
        for message, tensor in self._pending:
            message.payload = tensor.detach().cpu().numpy().copy()
        self._pending.clear()


_RECORDED = (
    "send", "isend", "recv", "irecv", "broadcast", "all_reduce", "reduce", "all_gather",
    "gather", "scatter",
)
_ACTIVE_LOGS: list[MessageLog] = []
_ORIGINALS: dict[str, Callable[..., Any]] = {}


def _group_size_and_rank(dist: Any, group: Any) -> tuple[int, int]:
    return dist.get_world_size(group), dist.get_rank()


def _describe_call(dist: Any, op: str, a: Mapping[str, Any]) -> tuple[Message, Any, bool] | None:
    """Turn one torch.distributed call into a Message (tensor, whether its payload is ours)."""
    tensor = a.get("tensor")  # all of these calls name their own tensor `tensor`
    if tensor is None:
        return None
    nb = tensor.nelement() * tensor.element_size()
    sent = received = 0
    peer: int | None = None
    ours = True
    if op in ("send", "isend"):
        sent, peer = nb, a.get("dst")
    elif op in ("recv", "irecv"):
        received, peer, ours = nb, a.get("src"), False
    else:
        g, me = _group_size_and_rank(dist, a.get("group"))
        if op == "broadcast":
            peer = a.get("src")
            if me == peer:
                sent = (g - 1) * nb
            else:
                received, ours = nb, False
        elif op == "all_reduce":
            sent = received = 2 * (g - 1) * nb // g
        elif op == "all_gather":
            sent = received = (g - 1) * nb
        elif op in ("reduce", "gather"):
            peer = a.get("dst")
            if me == peer:
                received, ours = (g - 1) * nb, False
            else:
                sent = nb
        elif op == "scatter":
            peer = a.get("src")
            if me == peer:
                sent = (g - 1) * nb
            else:
                received, ours = nb, False
    message = Message(
        op=op, peer=peer, nbytes=nb, bytes_sent=sent, bytes_received=received,
        dtype=str(tensor.dtype).replace("torch.", ""), shape=tuple(tensor.shape),
    )
    return message, tensor, ours


def _wrap(dist: Any, op: str, original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def recorded(*args: Any, **kwargs: Any) -> Any:
        if _ACTIVE_LOGS:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                bound = None
            if bound is not None:
                described = _describe_call(dist, op, bound.arguments)
                if described is not None:
                    message, tensor, ours = described
                    for log in _ACTIVE_LOGS:
                        log._add(
                            Message(**{**asdict(message), "payload": None}), tensor,
                            sent_payload=ours,
                        )
        return original(*args, **kwargs)

    return recorded


@contextlib.contextmanager
def record_messages(*, keep_payloads: bool = True) -> Iterator[MessageLog]:
    """Record every tensor this process sends or receives over torch.distributed.

    Opt-in and local to this process (this party): while the context is open the
    ``torch.distributed`` point-to-point and collective calls (the ones CrypTen's communicator
    and the secure sums use) are wrapped so that each call is logged with its size and, with
    ``keep_payloads``, a copy of the tensor.  Used by tests to check that nothing outside the
    reveal set leaves a site, and by :func:`measure` for byte counts.

    Parameters
    ----------
    keep_payloads
        Keep a copy of every tensor (memory: the size of all traffic).

    Yields
    ------
    MessageLog
        Filled as messages go; received payloads are copied when the context closes.

    Examples
    --------
    >>> with record_messages() as log:
    ...     pass
    >>> log.stats().bytes_sent
    0
    """
    import torch.distributed as dist

    log = MessageLog(keep_payloads)
    if not _ACTIVE_LOGS:
        for op in _RECORDED:
            original = getattr(dist, op)
            _ORIGINALS[op] = original
            setattr(dist, op, _wrap(dist, op, original))
    _ACTIVE_LOGS.append(log)
    try:
        yield log
    finally:
        _ACTIVE_LOGS.remove(log)
        if not _ACTIVE_LOGS:
            for op, original in _ORIGINALS.items():
                setattr(dist, op, original)
            _ORIGINALS.clear()
        log._close()


@contextlib.contextmanager
def measure() -> Iterator[ProtocolStats]:
    """Measure this party's communication and time over a block of code.

    Yields
    ------
    ProtocolStats
        Filled in when the block ends: bytes and messages sent and received, secured_bio
        protocol rounds and wall-clock seconds.

    Examples
    --------
    >>> with measure() as stats:
    ...     pass
    >>> stats.bytes_sent, stats.rounds
    (0, 0)
    """
    stats = ProtocolStats()
    session = parties._SESSION
    rounds0 = session.rounds if session is not None else 0
    t0 = time.perf_counter()
    try:
        with record_messages(keep_payloads=False) as log:
            yield stats
    finally:
        counts = log.stats()
        stats.bytes_sent, stats.bytes_received = counts.bytes_sent, counts.bytes_received
        stats.messages_sent = counts.messages_sent
        stats.messages_received = counts.messages_received
        stats.rounds = session.rounds - rounds0 if session is not None else 0
        stats.seconds = time.perf_counter() - t0


# -- communication helpers ---------------------------------------------------------------------


def _exchange(sends: Mapping[int, Any], recvs: Mapping[int, Any], what: str) -> None:
    """Post every receive and send (non-blocking) through CrypTen's communicator; wait all.

    A party started with an encrypted relay link (:mod:`~secured_bio.privacy.smpc.links`)
    sends the same bytes sealed through the relay instead.
    """
    session = parties._SESSION
    if session is not None and session.link is not None:
        _exchange_linked(session, sends, recvs, what)
        return
    import crypten.communicator as comm

    c = comm.get()
    peer = -1
    try:
        requests = []
        for peer, buffer in recvs.items():
            requests.append((peer, c.irecv(buffer, src=peer)))
        for peer, tensor in sends.items():
            requests.append((peer, c.isend(tensor, dst=peer)))
        for waiting_for, request in requests:
            peer = waiting_for  # named in the error below
            request.wait()
    except RuntimeError as e:
        raise ProtocolError(
            f"communication with party rank {peer} failed during {what}",
            where=f"party rank {parties.current_party().rank}",
            got=type(e).__name__,
            fix="that party probably failed, was stopped or timed out; see its log",
        ) from e


def _exchange_linked(session: Any, sends: Mapping[int, Any], recvs: Mapping[int, Any],
                     what: str) -> None:
    from .links import SEAL_OVERHEAD

    got = session.link.exchange({p: t.numpy().tobytes() for p, t in sends.items()},
                                list(recvs), what, session.op_timeout_s)
    for p, buffer in recvs.items():
        view = buffer.numpy()
        data = np.frombuffer(got[p], dtype=view.dtype)
        if data.size != view.size:
            raise ProtocolError(
                f"party rank {p} sent a message of the wrong size during {what}",
                where=f"party rank {session.info.rank}", expected=f"{view.size} values",
                got=f"{data.size}", fix="every party must run the same secured_bio version",
            )
        view.reshape(-1)[:] = data
    for log in _ACTIVE_LOGS:
        for p, t in sends.items():
            nb = t.nelement() * t.element_size()
            log._add(Message("link_send", p, nb, nb + SEAL_OVERHEAD, 0,
                             str(t.dtype).replace("torch.", ""), tuple(t.shape)),
                     t, sent_payload=True)
        for p, t in recvs.items():
            nb = t.nelement() * t.element_size()
            log._add(Message("link_recv", p, nb, 0, nb + SEAL_OVERHEAD,
                             str(t.dtype).replace("torch.", ""), tuple(t.shape)),
                     t, sent_payload=True)


def _pairwise_keys(session: Any) -> dict[int, bytes]:
    """Agree a 256-bit key with every other party (Diffie-Hellman, once per session)."""
    import torch

    if session.pairwise_keys is not None:
        return session.pairwise_keys
    me, n = session.info.rank, session.info.world_size
    others = [p for p in range(n) if p != me]
    secret = secrets.randbelow(2**256 - 2) + 2
    public = pow(_G, secret, _P).to_bytes(_KEY_BYTES, "big")
    tensor = torch.from_numpy(np.frombuffer(public, dtype=np.int64).copy())
    recvs = {p: torch.empty(_KEY_BYTES // 8, dtype=torch.int64) for p in others}
    _exchange({p: tensor for p in others}, recvs, "key agreement")
    session.rounds += 1
    keys = {}
    for p, buffer in recvs.items():
        theirs = int.from_bytes(buffer.numpy().tobytes(), "big")
        # Reject 0, 1, p-1 and elements outside the prime-order subgroup.
        if not 1 < theirs < _P - 1 or pow(theirs, _Q, _P) != 1:
            raise ProtocolError(
                f"party rank {p} sent an invalid key-agreement message",
                where=f"party rank {me}",
                fix="all parties must run the same secured_bio version",
            )
        shared = pow(theirs, secret, _P).to_bytes(_KEY_BYTES, "big")
        lo, hi = sorted((me, p))
        keys[p] = hashlib.sha256(
            _KDF_LABEL + lo.to_bytes(4, "little") + hi.to_bytes(4, "little") + shared
        ).digest()
    session.pairwise_keys = keys
    return keys


def _mask(key: bytes, seq: int, n: int) -> np.ndarray:
    """Return the mask stream M(K, seq): n uniform 64-bit words from SHAKE-256."""
    return np.frombuffer(
        hashlib.shake_256(key + seq.to_bytes(8, "little")).digest(8 * n), dtype="<u8"
    )


def _apply_masks(encoded: np.ndarray, me: int, keys: Mapping[int, bytes], seq: int) -> np.ndarray:
    """Party ``me``'s masked vector ``x + sum_{j>me} M(K_j) - sum_{j<me} M(K_j)`` mod 2**64.

    ``keys`` maps every other party to the key shared with it; the masks of all parties
    cancel in the sum.  ``encoded`` is int64; so is the result (a new array).
    """
    y = encoded.astype(np.int64).view(np.uint64)  # a copy; uint64 arithmetic wraps mod 2**64
    for p, key in keys.items():
        m = _mask(key, seq, y.size)
        if me < p:
            y += m
        else:
            y -= m
    return y.view(np.int64)


# -- encoding -------------------------------------------------------------------------------------


@dataclass
class _Segment:
    key: str
    shape: tuple[int, ...]
    kind: str  # "int" (exact) or "fixed" (fixed point)
    status: int = _OK
    values: np.ndarray | None = None  # encoded, flat int64


def _float_bound(precision_bits: int, n: int) -> float:
    return 2.0 ** (62 - precision_bits) / n


def _int_bound(n: int) -> int:
    return (2**63 - 1) // n


def _encode(key: str, local: ArrayLike, kind: str, precision_bits: int, n: int) -> _Segment:
    arr = np.asarray(local)
    seg = _Segment(key, tuple(int(d) for d in arr.shape), kind)
    if arr.dtype.kind not in "biuf":
        seg.status = _NOT_NUMERIC
    elif kind == "int":
        if arr.dtype.kind not in "biu":
            seg.status = _NOT_INTEGER
        elif arr.size and (
            int(arr.max()) > _int_bound(n)
            or (arr.dtype.kind == "i" and int(arr.min()) < -_int_bound(n))
        ):
            seg.status = _OUT_OF_RANGE
        else:
            seg.values = arr.astype(np.int64).ravel()
    else:
        x = arr.astype(np.float64)
        if not np.isfinite(x).all():
            seg.status = _NON_FINITE
        elif x.size and float(np.abs(x).max()) > _float_bound(precision_bits, n):
            seg.status = _OUT_OF_RANGE
        else:
            seg.values = np.rint(np.ldexp(x, precision_bits)).astype(np.int64).ravel()
    return seg


def _decode_fixed(total: np.ndarray, precision_bits: int) -> np.ndarray:
    # Floor division by the scale plus the remainder over the scale: exact for negative values
    # too (CrypTen's own decode is not; see _compat.fixed_point_decode).
    scale = 1 << precision_bits
    q = np.floor_divide(total, scale)
    r = total - q * scale
    return q.astype(np.float64) + r.astype(np.float64) / scale


# -- the protocol --------------------------------------------------------------------------------


def _check_options(protocol: str, reveal_to: Any, precision_bits: int, n: int) -> None:
    if not (reveal_to == "all" or (isinstance(reveal_to, int) and 0 <= reveal_to < n)):
        raise ConfigError(
            "invalid reveal set", where=f"{protocol}(reveal_to=...)",
            expected=f"'all' or a party rank 0..{n - 1}", got=repr(reveal_to),
        )
    if not isinstance(precision_bits, int) or not 0 <= precision_bits <= _MAX_PRECISION_BITS:
        raise ConfigError(
            "invalid number of fractional bits", where=f"{protocol}(precision_bits=...)",
            expected=f"an integer 0..{_MAX_PRECISION_BITS}", got=repr(precision_bits),
        )


def _spec_hash(protocol: str, reveal_to: RevealTo, precision_bits: int,
               segments: list[_Segment]) -> int:
    spec = [protocol, reveal_to, precision_bits, [(s.key, s.shape, s.kind) for s in segments]]
    digest = hashlib.sha256(json.dumps(spec).encode()).digest()
    return int.from_bytes(digest[:8], "little", signed=True)


def _header_error(protocol: str, rank: int, status: int, seg: _Segment, n: int,
                  precision_bits: int) -> Exception:
    where = f"party rank {rank}, {protocol}" + (f"[{seg.key!r}]" if seg.key else "")
    if status == _OUT_OF_RANGE:
        bound = _int_bound(n) if seg.kind == "int" else _float_bound(precision_bits, n)
        fix = ("scale the values down or use int64 counts" if seg.kind == "int" else
               "use fewer precision_bits, rescale the values, or secure_sum_int for integers")
        return ConfigError(
            "values outside the range the sum can represent exactly", where=where,
            expected=f"|x| <= {bound:.3g} for {n} parties", got="larger values", fix=fix,
        )
    if status == _NON_FINITE:
        return InputError("NaN or infinite values", where=where, expected="finite values",
                          got="NaN or inf", fix="remove or impute them before the secure sum")
    if status == _NOT_INTEGER:
        return InputError("an integer array is needed", where=where,
                          expected="an integer or boolean dtype", got="another dtype",
                          fix="use secure_sum for floats")
    return InputError("a numeric array is needed", where=where,
                      expected="a boolean, integer or float dtype", got="another dtype")


def _run(protocol: str, segments: list[_Segment], reveal_to: RevealTo,
         precision_bits: int) -> list[np.ndarray] | None:
    import torch

    session = parties._session()
    me, n = session.info.rank, session.info.world_size
    _check_options(protocol, reveal_to, precision_bits, n)
    keys = _pairwise_keys(session)
    session.seq += 1
    seq = session.seq
    others = [p for p in range(n) if p != me]

    # Round 1: a header, so that every party checks agreement and ranges and all fail together.
    bad = next((i for i, s in enumerate(segments) if s.status != _OK), -1)
    status = segments[bad].status if bad >= 0 else _OK
    spec = _spec_hash(protocol, reveal_to, precision_bits, segments)
    mine = torch.tensor([_MAGIC, seq, status, bad, spec], dtype=torch.int64)
    headers = {p: torch.empty(5, dtype=torch.int64) for p in others}
    _exchange({p: mine for p in others}, headers, f"{protocol} (header)")
    session.rounds += 1
    table = {me: mine.tolist(), **{p: h.tolist() for p, h in headers.items()}}
    if any(h[0] != _MAGIC or h[1] != seq for h in table.values()):
        off = sorted(p for p, h in table.items() if h[0] != _MAGIC or h[1] != seq)
        raise ProtocolError(
            f"parties are out of step in {protocol}",
            where=f"party rank(s) {', '.join(map(str, off))}",
            expected=f"protocol call number {seq} on every party",
            fix="every party must make the same secure calls in the same order",
        )
    differ = sorted(p for p, h in table.items() if h[4] != spec)
    if differ:
        raise ProtocolError(
            f"parties called {protocol} with different keys, shapes, dtypes or options",
            where=f"party rank(s) {', '.join(map(str, differ))} differ from party rank {me}",
            fix="every party must pass arrays with the same keys and shapes and the same"
            " reveal_to and precision_bits",
        )
    failed = sorted(p for p, h in table.items() if h[2] != _OK)
    if failed:
        errs = [_header_error(protocol, p, table[p][2], segments[table[p][3]], n,
                              precision_bits) for p in failed]
        for other in errs[1:]:
            errs[0].add_note(f"also: {other}")
        raise errs[0]

    # Round 2: the masked vectors, sent to the reveal set only.
    total = sum(s.values.size for s in segments if s.values is not None)
    recipients = others if reveal_to == "all" else [reveal_to]
    receives = reveal_to == "all" or reveal_to == me
    summed = np.zeros(0, dtype=np.int64)
    if total:
        encoded = np.concatenate([s.values for s in segments if s.values is not None])
        y = _apply_masks(encoded, me, keys, seq)
        sends = {p: torch.from_numpy(y) for p in recipients if p != me}
        recvs = {p: torch.empty(total, dtype=torch.int64) for p in others} if receives else {}
        _exchange(sends, recvs, f"{protocol} (masked values)")
        session.rounds += 1
        if receives:
            acc = y.view(np.uint64).copy()
            for buffer in recvs.values():
                acc += buffer.numpy().view(np.uint64)
            summed = acc.view(np.int64)
    if not receives:
        return None
    out, offset = [], 0
    for s in segments:
        size = int(np.prod(s.shape, dtype=np.int64))
        chunk = summed[offset:offset + size].reshape(s.shape)
        offset += size
        out.append(chunk.copy() if s.kind == "int" else _decode_fixed(chunk, precision_bits))
    return out


def secure_sum(
    local: ArrayLike, *, reveal_to: RevealTo = "all", precision_bits: int = 16
) -> np.ndarray | None:
    """Element-wise sum of every party's array, revealing only the sum (fixed point).

    Run inside a party; every party calls it with an array of the same shape.  Values are
    encoded in fixed point with ``precision_bits`` fractional bits, masked with pairwise
    Diffie-Hellman keys and sent only to the parties in ``reveal_to`` (module docstring).

    Parameters
    ----------
    local
        This party's array (any real dtype; converted to float64).
    reveal_to
        ``"all"`` (every party receives the sum) or one party rank.
    precision_bits
        Fractional bits of the fixed-point encoding (0..48).  The sum is exact to within
        ``n_parties * 2**-(precision_bits + 1)``.

    Returns
    -------
    numpy.ndarray or None
        float64 array of the same shape, on the parties in ``reveal_to``; None elsewhere.

    Raises
    ------
    ConfigError
        If ``reveal_to`` or ``precision_bits`` is invalid, or some party's ``|x|`` exceeds
        ``2**(62 - precision_bits) / n_parties`` (the message names the party, never values).
    InputError
        If some party's array has NaN/inf or is not numeric (every party raises it).
    ProtocolError
        If called outside a party, the parties disagree on the shape or options, or a party
        fails or times out.

    Notes
    -----
    Threat model: semi-honest parties (no dealer needed); a coalition of parties learns
    nothing beyond its own inputs and outputs as long as at least two parties stay outside
    it; a passive network eavesdropper learns the sum, never an input; active network
    attackers are out of scope.

    Reveal set: the parties in ``reveal_to`` learn the element-wise sum; every party learns
    the shape, ``reveal_to``, ``precision_bits`` and whether each party's values were finite
    and in range.  Nothing else leaves a site.  With two parties the sum itself tells its
    recipient the other party's input.

    Examples
    --------
    >>> import numpy as np
    >>> from secured_bio.privacy.smpc import run_parties, secure_sum
    >>> sums = run_parties(secure_sum, [np.array([1.5, -2.25]), np.array([-0.5, 4.0])])
    >>> sums[0].tolist(), sums[1].tolist()
    ([1.0, 1.75], [1.0, 1.75])
    """
    out = _run("secure_sum", [_encode("", local, "fixed", precision_bits,
                                      parties._session().info.world_size)],
               reveal_to, precision_bits)
    return None if out is None else out[0]


def secure_sum_int(local: ArrayLike, *, reveal_to: RevealTo = "all") -> np.ndarray | None:
    """Exact element-wise sum of every party's integer array, revealing only the sum.

    For counts (allele and genotype counts, sample sizes) and integer Gram matrices.  Same
    protocol as :func:`secure_sum` with precision 0: the sum is exact as long as each party's
    ``|x| <= (2**63 - 1) // n_parties``.

    Parameters
    ----------
    local
        This party's integer (or boolean) array.
    reveal_to
        ``"all"`` or one party rank.

    Returns
    -------
    numpy.ndarray or None
        int64 array of the same shape on the parties in ``reveal_to``; None elsewhere.

    Raises
    ------
    ConfigError
        If ``reveal_to`` is invalid or some party's values exceed the bound above.
    InputError
        If some party's array is not of an integer or boolean dtype.
    ProtocolError
        As for :func:`secure_sum`.

    Notes
    -----
    Threat model: as :func:`secure_sum` (semi-honest parties, no dealer; a coalition learns
    only its own inputs and outputs while at least two parties stay outside it).

    Reveal set: the parties in ``reveal_to`` learn the exact element-wise sum; every party
    learns the shape, ``reveal_to`` and whether each party's values were integers in range.

    Examples
    --------
    >>> import numpy as np
    >>> from secured_bio.privacy.smpc import run_parties, secure_sum_int
    >>> big = 2**61
    >>> sums = run_parties(secure_sum_int, [np.array([big, -3]), np.array([big - 1, 5])])
    >>> sums[0].tolist() == [2**62 - 1, 2]
    True
    """
    out = _run("secure_sum_int", [_encode("", local, "int", 0,
                                          parties._session().info.world_size)],
               reveal_to, 0)
    return None if out is None else out[0]


def secure_sum_many(
    arrays: Mapping[str, ArrayLike], *, reveal_to: RevealTo = "all", precision_bits: int = 16
) -> dict[str, np.ndarray] | None:
    """Sum several named arrays across parties in one round (one flattened masked vector).

    Integer and boolean arrays are summed exactly (int64 results, as :func:`secure_sum_int`);
    float arrays in fixed point (float64 results, as :func:`secure_sum`).  Typical use: all of
    a site's per-variant statistics of one analysis step at once.

    Parameters
    ----------
    arrays
        Name to this party's array; every party passes the same names and shapes.
    reveal_to
        ``"all"`` or one party rank.
    precision_bits
        Fractional bits for the float arrays (0..48).

    Returns
    -------
    dict or None
        Name to summed array (in the caller's key order) on the parties in ``reveal_to``;
        None elsewhere.

    Raises
    ------
    ConfigError
        If an option is invalid or some party's values are out of range (named by party and
        key).
    InputError
        If some party's array has NaN/inf or is not numeric.
    ProtocolError
        As for :func:`secure_sum` (also when the parties pass different keys).

    Notes
    -----
    Threat model: as :func:`secure_sum` (semi-honest parties, no dealer; a coalition learns
    only its own inputs and outputs while at least two parties stay outside it).

    Reveal set: the parties in ``reveal_to`` learn the sum of every array; every party learns
    the names, shapes and kinds (integer / float) of the arrays, the options, and which party
    (and which name) failed a range or finiteness check.

    Examples
    --------
    >>> import numpy as np
    >>> from secured_bio.privacy.smpc import run_parties, secure_sum_many
    >>> site = [{"n": np.array([10, 3]), "beta": np.array([0.5])},
    ...         {"n": np.array([7, 1]), "beta": np.array([-1.0])}]
    >>> out = run_parties(secure_sum_many, site)
    >>> out[0]["n"].tolist(), out[0]["beta"].tolist()
    ([17, 4], [-0.5])
    """
    if not isinstance(arrays, Mapping) or not all(isinstance(k, str) for k in arrays):
        raise ConfigError("secure_sum_many needs a mapping of names to arrays",
                          where="secure_sum_many(arrays)", expected="dict[str, array]",
                          got=type(arrays).__name__)
    n = parties._session().info.world_size
    names = sorted(arrays)
    segments = []
    for key in names:
        kind = "int" if np.asarray(arrays[key]).dtype.kind in "biu" else "fixed"
        segments.append(_encode(key, arrays[key], kind, precision_bits, n))
    out = _run("secure_sum_many", segments, reveal_to, precision_bits)
    if out is None:
        return None
    by_name = dict(zip(names, out, strict=True))
    return {key: by_name[key] for key in arrays}
