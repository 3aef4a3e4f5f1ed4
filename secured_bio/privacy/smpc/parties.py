"""Run SMPC parties: one OS process per site, CrypTen over torch.distributed (gloo, real TCP).

Every party is its own OS process holding only its own data.  The processes meet at a TCP
rendezvous hosted by party rank 0 (``master_addr:master_port``, reachable from the other
hosts), then run CrypTen over ``torch.distributed`` with the gloo backend.  Parties can run on
different hosts: each host starts its own party with :func:`run_party`; on one host (tests,
demos) :func:`run_parties` spawns them all and collects their results.

Threat model
------------
* **Semi-honest (honest-but-curious) parties.**  Every party runs the protocol as written but
  may try to learn more from what it sees.  Malicious deviations (wrong shares, lies about
  inputs) are not detected.  A party that stops answering is detected (``timeout_s`` for
  joining, ``op_timeout_s`` for each message) and every other party fails with
  :class:`~secured_bio.errors.ProtocolError` naming it.
* **Network.**  gloo does not encrypt or authenticate, and the secure sums' masking keys are
  then agreed by unauthenticated Diffie-Hellman: on gloo a *passive* eavesdropper learns no
  party's input but can add up the masked vectors (the revealed sums), and an *active*
  attacker can impersonate a party.  gloo is for one trusted host (loopback) or a trusted
  tunnel.  Across hosts, start the parties with ``link=`` (:mod:`~secured_bio.privacy.smpc.links`):
  each site connects out to a relay over mutual TLS with its roster certificate, keys are
  agreed by Ed25519-signed X25519 and every message is sealed end to end (secure sums only;
  CrypTen itself has no such transport).
* **Who deals the correlated randomness.**  Secure sums need none.  CrypTen's multiplications
  and comparisons (encrypted inference, ``MPCTensor`` arithmetic) need Beaver triples from a
  *dealer*, chosen with ``dealer=``:

  ``"none"`` (the default)
      No dealer: secure sums work; any CrypTen operation that needs triples raises
      ``ProtocolError``.  Default because it is least privilege: nobody (no party, no third
      party) holds material that could decrypt other parties' values, and nothing silently
      falls back to a weaker trust model.
  ``"ttp"``
      A separate trusted-third-party process (CrypTen's ``TTPServer``, rank ``world_size``)
      generates the triples.  It sees no input and no share, but it knows every triple, so it
      must not collude with any party: run it at an independent organisation.  This is the
      deployment choice for multiplications.  :func:`run_parties` starts it automatically;
      across hosts start it with :func:`run_dealer`.
  ``"trusted_first_party"``
      CrypTen's own default: party 0 generates every party's triples locally, so party 0 can
      decrypt every multiplied value.  Only for tests and single-organisation demos.

* **The dealer's randomness.**  CrypTen 0.4.1's ``TTPServer`` seeded each party's triple
  generator with a ``torch.randint`` draw from torch's global Mersenne Twister, which torch
  starts from the low 32 bits of a seed (measured, torch 2.13 CPU), so every triple of a
  session hung on 32 bits.  :func:`import_crypten`, called in every party and dealer process,
  replaces this: the dealer draws a 256-bit key per party with :mod:`secrets` and both sides
  expand it with SHAKE-256 (``_compat.DealerStream``).  The keys cross gloo unencrypted.
* **CrypTen's pseudo-random zero sharings** (used by ``crypten.cryptensor`` and all
  ``MPCTensor`` arithmetic) come from ``torch.Generator``, a Mersenne Twister whose seeds CrypTen
  sends between neighbouring parties in the clear and which torch truncates to 32 bits.  A
  curious neighbour can therefore brute-force the mask of a CrypTen share.  Our secure sums
  do not use them (see :mod:`secured_bio.privacy.smpc.protocols`); results computed with
  CrypTen ``MPCTensor`` arithmetic carry this weakness.

Rendezvous
----------
Party rank 0 hosts a ``torch.distributed.TCPStore`` on ``master_addr:master_port``; each party
(and the dealer) registers itself there, so a party that never connects is named in the error
instead of leaving the others hanging.  CrypTen's process groups are then created on that
store (CrypTen would otherwise pick a ``file:///tmp/...`` rendezvous): the environment holds
``WORLD_SIZE``, ``RANK``, ``RENDEZVOUS=env://``, ``MASTER_ADDR``, ``MASTER_PORT`` and
``DISTRIBUTED_BACKEND=gloo``, and the process-group calls made inside ``crypten.init`` get our
store and timeouts.  For multi-host runs set ``interface`` (``GLOO_SOCKET_IFNAME``) when the
host name does not resolve to the address the other parties can reach.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import multiprocessing
import os
import pickle
import queue as queue_module
import socket
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from secured_bio.errors import ConfigError, ProtocolError, SecuredBioError, did_you_mean

from ._compat import import_crypten
from .links import LinkConfig

__all__ = [
    "DEALERS",
    "Dealer",
    "PartyInfo",
    "current_party",
    "free_port",
    "run_dealer",
    "run_parties",
    "run_party",
]

log = logging.getLogger(__name__)

Dealer = Literal["none", "ttp", "trusted_first_party"]
#: The dealer choices and the CrypTen provider each one configures.
DEALERS: dict[str, str] = {
    "none": "SECURED_BIO_NO_DEALER",
    "ttp": "TTP",
    "trusted_first_party": "TFP",
}

_KEY_JOINED = "secured_bio/joined/{}"
_KEY_DONE = "secured_bio/done/{}"
_DEFAULT_OP_TIMEOUT_S = 1800.0
_DEALER_OP_TIMEOUT_S = 24 * 3600.0  # the dealer waits idle between requests
_HOST_GRACE_S = 1.0


@dataclass(frozen=True)
class PartyInfo:
    """Who this process is in the running SMPC session.

    Attributes
    ----------
    rank
        This party's rank, ``0 <= rank < world_size``.
    world_size
        Number of computing parties (the dealer, if any, is not counted).
    dealer
        The dealer mode (see the module docstring).
    master_addr, master_port
        The rendezvous address.
    """

    rank: int
    world_size: int
    dealer: str
    master_addr: str
    master_port: int


@dataclass
class _Session:
    """Per-process state of a running party (used by the protocols)."""

    info: PartyInfo
    seq: int = 0  # number of secured_bio protocol calls so far (identical on every party)
    rounds: int = 0  # communication rounds of secured_bio protocols so far
    pairwise_keys: dict[int, bytes] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    link: Any = None  # a links.Link when the party talks through the encrypted relay
    op_timeout_s: float = 1800.0


_SESSION: _Session | None = None


def current_party() -> PartyInfo:
    """Return the :class:`PartyInfo` of the party running in this process.

    Returns
    -------
    PartyInfo
        Rank, world size, dealer and rendezvous address.

    Raises
    ------
    ProtocolError
        If called outside a party (not inside :func:`run_party` / :func:`run_parties`).

    Examples
    --------
    >>> current_party()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    secured_bio.errors.ProtocolError: not inside an SMPC party [secured_bio.privacy.smpc]...
    """
    return _session().info


def _session() -> _Session:
    if _SESSION is None:
        raise ProtocolError(
            "not inside an SMPC party",
            where="secured_bio.privacy.smpc",
            fix="call this from the function run by run_party() or run_parties()",
        )
    return _SESSION


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now (the OS picks it).

    Parameters
    ----------
    host
        Address to bind to.

    Returns
    -------
    int
        A port number; another process may take it before you use it.

    Examples
    --------
    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# -- validation ------------------------------------------------------------------------------


def _check_dealer(dealer: str) -> None:
    if dealer not in DEALERS:
        hint = did_you_mean(dealer, DEALERS)
        raise ConfigError(
            f"unknown dealer {dealer!r}",
            where="dealer",
            expected=" or ".join(repr(d) for d in DEALERS),
            got=repr(dealer),
            fix=hint or "choose one of the listed dealers",
        )


def _check_common(
    world_size: int, master_port: int, timeout_s: float, op_timeout_s: float
) -> None:
    if not isinstance(world_size, int) or world_size < 2:
        raise ConfigError(
            "an SMPC session needs at least two parties",
            where="world_size",
            expected="an integer >= 2",
            got=repr(world_size),
        )
    if not isinstance(master_port, int) or not 0 < master_port < 65536:
        raise ConfigError(
            "invalid rendezvous port", where="master_port", expected="1..65535",
            got=repr(master_port),
        )
    for name, value in (("timeout_s", timeout_s), ("op_timeout_s", op_timeout_s)):
        if not value > 0:
            raise ConfigError(
                "timeouts must be positive", where=name, expected="> 0", got=repr(value)
            )


def _who(rank: int, world_size: int, dealer: str) -> str:
    if dealer == "ttp" and rank == world_size:
        return f"the dealer (rank {rank})"
    return f"party rank {rank}"


# -- environment, rendezvous, CrypTen set-up ------------------------------------------------


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _party_env(
    rank: int, world_size: int, master_addr: str, master_port: int, interface: str | None
) -> dict[str, str]:
    env = {
        "WORLD_SIZE": str(world_size),
        "RANK": str(rank),
        # CrypTen requires RENDEZVOUS and would otherwise default to file:///tmp/<random>;
        # the process groups are in fact built on our TCPStore (see _process_group_patches).
        "RENDEZVOUS": "env://",
        "MASTER_ADDR": master_addr,
        "MASTER_PORT": str(master_port),
        "DISTRIBUTED_BACKEND": "gloo",
    }
    if interface:
        env["GLOO_SOCKET_IFNAME"] = interface
    return env


def _wait_until_listening(addr: str, port: int, deadline: float) -> bool:
    # A plain socket probe: TCPStore's own client retries with long back-offs (a 10 s timeout
    # can take 20 s) and logs a C++ stack trace per failed attempt.
    while True:
        try:
            with socket.create_connection((addr, port), timeout=1.0):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)


def _rendezvous(
    rank: int, total: int, world_size: int, dealer: str, addr: str, port: int, timeout_s: float,
    started: float,
) -> Any:
    import torch.distributed as dist

    deadline = started + timeout_s
    where = f"rendezvous {addr}:{port}"
    if rank == 0:
        try:
            store = dist.TCPStore(
                addr, port, total, True,
                datetime.timedelta(seconds=max(1.0, deadline - time.monotonic())),
                wait_for_workers=False,
            )
        except RuntimeError as e:
            raise ProtocolError(
                "party rank 0 could not host the rendezvous",
                where=where,
                got=f"{type(e).__name__}",
                fix="choose a free master_port and an address of this host",
            ) from e
    else:
        if not _wait_until_listening(addr, port, deadline):
            raise ProtocolError(
                "party rank 0 (the rendezvous host) never came up; "
                f"{_who(rank, world_size, dealer)} gave up",
                where=where,
                expected=f"party rank 0 listening within {timeout_s:g} s",
                got="no connection",
                fix="start party rank 0 with the same master_addr/master_port, check firewalls,"
                " or raise timeout_s",
            )
        try:
            store = dist.TCPStore(
                addr, port, total, False,
                datetime.timedelta(seconds=max(1.0, deadline - time.monotonic())),
            )
        except RuntimeError as e:
            raise ProtocolError(
                "could not connect to the rendezvous", where=where, got=type(e).__name__,
                fix="check that master_addr/master_port point at party rank 0",
            ) from e
    store.set(_KEY_JOINED.format(rank), "1")
    keys = [_KEY_JOINED.format(r) for r in range(total)]
    # Party rank 0 hosts the store: it gives up a moment after the others, so that they can
    # still ask the store who is missing.
    grace = _HOST_GRACE_S if rank == 0 else 0.0
    try:
        store.wait(keys, datetime.timedelta(seconds=max(0.1, deadline + grace - time.monotonic())))
    except RuntimeError as e:
        try:
            missing = [r for r in range(total) if not store.check([keys[r]])]
        except RuntimeError:
            raise ProtocolError(
                "party rank 0 (the rendezvous host) gave up before every party connected",
                where=where,
                expected=f"all {total} processes within {timeout_s:g} s",
                fix="start every party within timeout_s of each other, or raise timeout_s",
            ) from e
        names = ", ".join(_who(r, world_size, dealer) for r in missing) or "a party"
        raise ProtocolError(
            f"{names} never connected",
            where=where,
            expected=f"all {total} processes within {timeout_s:g} s",
            got=f"{total - len(missing)} of {total}",
            fix="start the missing process(es) with the same master_addr/master_port and"
            " world_size, or raise timeout_s",
        ) from e
    # Everyone is here: later store operations (process-group set-up) get the full timeout,
    # not what was left of the rendezvous deadline.
    store.set_timeout(datetime.timedelta(seconds=timeout_s))
    return store


@contextlib.contextmanager
def _process_group_patches(store: Any, op_timeout_s: float) -> Iterator[None]:
    """Make the process-group calls inside ``crypten.init`` use our store and timeouts.

    CrypTen calls ``dist.init_process_group(init_method=$RENDEZVOUS, ...)`` and
    ``dist.new_group(...)`` with no timeout (30 min); only those two calls, made while this
    context is open, are changed.
    """
    import torch.distributed as dist

    timeout = datetime.timedelta(seconds=op_timeout_s)
    original_init, original_new_group = dist.init_process_group, dist.new_group

    def init_process_group(*args: Any, **kwargs: Any) -> Any:
        kwargs.pop("init_method", None)
        kwargs["store"] = dist.PrefixStore("secured_bio/pg/", store)
        kwargs["timeout"] = timeout
        return original_init(*args, **kwargs)

    def new_group(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", timeout)
        return original_new_group(*args, **kwargs)

    dist.init_process_group = init_process_group  # type: ignore[assignment]
    dist.new_group = new_group  # type: ignore[assignment]
    try:
        yield
    finally:
        dist.init_process_group = original_init
        dist.new_group = original_new_group


def _no_dealer_provider(crypten: Any) -> Any:
    from crypten.mpc.provider.provider import TupleProvider

    class NoDealer(TupleProvider):  # type: ignore[misc]
        """Refuses to make Beaver triples: the session was started with dealer='none'."""

        NAME = DEALERS["none"]

        def _refuse(self, *args: Any, **kwargs: Any) -> Any:
            raise ProtocolError(
                "this SMPC session has no dealer, so CrypTen multiplications and comparisons"
                " are unavailable",
                where="dealer='none'",
                fix="start the parties with dealer='ttp' (a separate trusted third party), or"
                " dealer='trusted_first_party' for tests",
            )

        generate_additive_triple = _refuse
        square = _refuse
        generate_binary_triple = _refuse
        wrap_rng = _refuse
        B2A_rng = _refuse

    return NoDealer()


@contextlib.contextmanager
def _crypten_provider(crypten: Any, dealer: str) -> Iterator[None]:
    providers = vars(crypten.mpc)["__SUPPORTED_PROVIDERS"]
    if DEALERS["none"] not in providers:
        providers[DEALERS["none"]] = _no_dealer_provider(crypten)
    old = crypten.cfg.config.mpc.provider
    crypten.cfg.config.mpc.provider = DEALERS[dealer]
    try:
        yield
    finally:
        crypten.cfg.config.mpc.provider = old


def _shutdown_crypten(crypten: Any, *, graceful: bool) -> None:
    """Leave the CrypTen session; with ``graceful`` wait for every party first."""
    if not crypten.is_initialized():
        return
    try:
        if graceful:
            crypten.communicator.get().barrier()
    finally:
        crypten.uninit()
        from crypten.mpc.provider.ttp_provider import TTPClient

        TTPClient.uninit()


def _release_store(store: Any, rank: int, total: int, wait_s: float) -> None:
    # Party rank 0 hosts the store: it stays up until every process has left CrypTen.
    try:
        store.set(_KEY_DONE.format(rank), "1")
        if rank == 0:
            keys = [_KEY_DONE.format(r) for r in range(total)]
            store.wait(keys, datetime.timedelta(seconds=wait_s))
    except RuntimeError:
        log.debug("rendezvous store closed before every party left", exc_info=True)


def _comm_error(e: BaseException, who: str, stage: str) -> ProtocolError:
    return ProtocolError(
        f"{who} lost the SMPC session during {stage}",
        got=type(e).__name__,
        fix="another party probably failed or was stopped; see its log",
    )


# -- running one party ----------------------------------------------------------------------


def run_party(
    rank: int,
    world_size: int,
    fn: Callable[[Any], Any],
    party_arg: Any = None,
    *,
    master_addr: str = "127.0.0.1",
    master_port: int | None = None,
    timeout_s: float = 60.0,
    op_timeout_s: float = _DEFAULT_OP_TIMEOUT_S,
    dealer: Dealer = "none",
    torch_threads: int | None = None,
    interface: str | None = None,
    link: LinkConfig | None = None,
) -> Any:
    """Run one SMPC party in this process: join the session, call ``fn(party_arg)``, leave.

    Start one per site (each with its own ``rank`` and the same ``world_size``,
    ``master_addr``, ``master_port`` and ``dealer``).  Inside ``fn`` the protocols of
    :mod:`secured_bio.privacy.smpc` and CrypTen (already initialised) can be used.

    Parameters
    ----------
    rank
        This party's rank, ``0 <= rank < world_size``; rank 0 hosts the rendezvous.
    world_size
        Number of computing parties (>= 2), not counting a dealer.
    fn
        The party's work, called as ``fn(party_arg)``; its return value is returned.
    party_arg
        This party's own input (for example the path to its data).
    master_addr, master_port
        Address and port of the rendezvous hosted by party rank 0 (reachable by all).
    timeout_s
        How long to wait for every party (and the dealer) to connect.
    op_timeout_s
        How long any single message may take before the session fails (a party computing
        locally for longer than this makes the others fail).
    dealer
        ``"none"`` (default), ``"ttp"`` or ``"trusted_first_party"``: see the module docstring.
        With ``"ttp"`` someone must run :func:`run_dealer` for the same session.
    torch_threads
        ``torch.set_num_threads`` for this process (None leaves torch's default).
    interface
        Network interface for gloo (``GLOO_SOCKET_IFNAME``), e.g. ``"eth0"``.
    link
        Talk through an encrypted relay instead of gloo (:mod:`~secured_bio.privacy.smpc.links`:
        mutual TLS to the relay, signed key agreement, sealed messages): the party's rank
        follows from its certificate's place on the roster (``rank`` and ``world_size`` must
        agree with it); ``master_addr``/``master_port``/``interface`` are not used.  Secure
        sums only: CrypTen is not started, so ``dealer`` must be ``"none"``.

    Returns
    -------
    object
        Whatever ``fn`` returned.

    Raises
    ------
    ConfigError
        If ``rank``, ``world_size``, ``master_port``, a timeout or ``dealer`` is invalid.
    ProtocolError
        If a party or the dealer never connects within ``timeout_s`` (the message names it),
        or the session breaks while joining or leaving.  Exceptions raised by ``fn``
        propagate unchanged.

    Examples
    --------
    >>> run_party(0, 1, print, master_port=29500)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    secured_bio.errors.ConfigError: an SMPC session needs at least two parties [world_size]...
    """
    global _SESSION
    if link is not None:
        return _run_linked_party(rank, world_size, fn, party_arg, link=link,
                                 timeout_s=timeout_s, op_timeout_s=op_timeout_s, dealer=dealer,
                                 torch_threads=torch_threads)
    if master_port is None:
        raise ConfigError("the rendezvous port is missing", where="master_port",
                          expected="1..65535", fix="give master_port (or a relay link)")
    started = time.monotonic()  # timeout_s counts from here (importing torch included)
    _check_common(world_size, master_port, timeout_s, op_timeout_s)
    _check_dealer(dealer)
    if not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ConfigError(
            "invalid party rank", where="rank", expected=f"0..{world_size - 1}", got=repr(rank)
        )
    if _SESSION is not None:
        raise ProtocolError(
            "this process already runs an SMPC party", where=f"party rank {_SESSION.info.rank}",
            fix="run one party per process",
        )
    crypten = import_crypten()
    import torch

    if torch_threads:
        torch.set_num_threads(torch_threads)
    total = world_size + (1 if dealer == "ttp" else 0)
    who = _who(rank, world_size, dealer)
    env = _party_env(rank, world_size, master_addr, master_port, interface)
    with _environment(env), _crypten_provider(crypten, dealer):
        store = _rendezvous(rank, total, world_size, dealer, master_addr, master_port, timeout_s,
                            started)
        try:
            try:
                with _process_group_patches(store, op_timeout_s):
                    crypten.init()
            except RuntimeError as e:
                raise _comm_error(e, who, "crypten.init") from e
            _SESSION = _Session(
                PartyInfo(rank, world_size, dealer, master_addr, master_port),
                op_timeout_s=op_timeout_s,
            )
            result = fn(party_arg)
        except BaseException as e:
            _SESSION = None
            try:  # leave at once (no barrier): the other parties then fail fast, not on timeout
                _shutdown_crypten(crypten, graceful=False)
            except RuntimeError as cleanup:
                e.add_note(f"{who} also failed to leave the session: {type(cleanup).__name__}")
            raise
        else:
            _SESSION = None
            try:
                _shutdown_crypten(crypten, graceful=True)
            except RuntimeError as e:
                raise _comm_error(e, who, "shutdown") from e
        finally:
            _release_store(store, rank, total, wait_s=timeout_s)
    return result


def _run_linked_party(
    rank: int, world_size: int, fn: Callable[[Any], Any], party_arg: Any, *, link: LinkConfig,
    timeout_s: float, op_timeout_s: float, dealer: str, torch_threads: int | None,
) -> Any:
    """:func:`run_party` over the encrypted relay (no CrypTen, no gloo)."""
    global _SESSION
    _check_common(world_size, link.relay_port, timeout_s, op_timeout_s)
    if dealer != "none":
        raise ConfigError(
            "the encrypted relay links carry secure sums only", where="dealer",
            expected="'none'", got=repr(dealer),
            fix="CrypTen multiplications (a dealer) run over gloo only; see SECURITY.md",
        )
    if _SESSION is not None:
        raise ProtocolError(
            "this process already runs an SMPC party", where=f"party rank {_SESSION.info.rank}",
            fix="run one party per process",
        )
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    from .links import Link

    channel = Link.connect(link, timeout_s=timeout_s, expect_rank=rank)
    try:
        if channel.world_size != world_size:
            raise ConfigError("the number of parties does not match the roster",
                              where="world_size", expected=str(channel.world_size),
                              got=str(world_size))
        keys = channel.handshake(timeout_s)
        _SESSION = _Session(
            PartyInfo(rank, world_size, "none", link.relay_host, link.relay_port),
            rounds=1, pairwise_keys=keys, link=channel, op_timeout_s=op_timeout_s,
        )
        result = fn(party_arg)
    except BaseException:
        _SESSION = None
        channel.abort()
        raise
    _SESSION = None
    channel.close()
    return result


def run_dealer(
    world_size: int,
    *,
    master_addr: str = "127.0.0.1",
    master_port: int,
    timeout_s: float = 60.0,
    op_timeout_s: float = _DEALER_OP_TIMEOUT_S,
    torch_threads: int | None = None,
    interface: str | None = None,
) -> None:
    """Run the trusted-third-party dealer (CrypTen's ``TTPServer``) in this process.

    Serves Beaver triples to a session started with ``dealer="ttp"`` until party 0 leaves.
    The dealer holds no input and no share but knows every triple: run it at an organisation
    that does not collude with any party.  It has rank ``world_size``.

    Parameters
    ----------
    world_size
        Number of computing parties in the session (not counting the dealer).
    master_addr, master_port
        The rendezvous hosted by party rank 0.
    timeout_s
        How long to wait for every party to connect.
    op_timeout_s
        How long the dealer may wait for the next request (default one day).
    torch_threads, interface
        As for :func:`run_party`.

    Raises
    ------
    ConfigError
        If an argument is invalid.
    ProtocolError
        If a party never connects within ``timeout_s`` or the session breaks while joining.

    Examples
    --------
    >>> run_dealer(1, master_port=29500)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    secured_bio.errors.ConfigError: an SMPC session needs at least two parties [world_size]...
    """
    started = time.monotonic()
    _check_common(world_size, master_port, timeout_s, op_timeout_s)
    crypten = import_crypten()
    import torch
    from crypten.mpc.provider.ttp_provider import TTPServer

    if torch_threads:
        torch.set_num_threads(torch_threads)
    rank = world_size
    env = _party_env(rank, world_size, master_addr, master_port, interface)
    with _environment(env), _crypten_provider(crypten, "ttp"):
        store = _rendezvous(rank, world_size + 1, world_size, "ttp", master_addr, master_port,
                            timeout_s, started)
        try:
            try:
                with _process_group_patches(store, op_timeout_s):
                    # TTPServer calls crypten.init() and serves until party 0 says terminate;
                    # it returns quietly (after logging) if the session breaks.
                    TTPServer()
            except RuntimeError as e:
                raise _comm_error(e, _who(rank, world_size, "ttp"), "crypten.init") from e
        finally:
            try:
                _shutdown_crypten(crypten, graceful=False)
            finally:
                _release_store(store, rank, world_size + 1, wait_s=timeout_s)


# -- running all parties on this host ---------------------------------------------------------


def _describe_failure(e: BaseException) -> dict[str, Any]:
    """Describe a party's failure for the launcher: no data values (STYLE.md section 4)."""
    frames = traceback.extract_tb(e.__traceback__)
    where = f"{os.path.basename(frames[-1].filename)}:{frames[-1].lineno} in {frames[-1].name}" \
        if frames else None
    # A ProtocolError or a torch.distributed error (peer gone, timeout) is usually the echo of
    # another party's failure; the launcher names the party whose own code failed first.
    secondary = isinstance(e, ProtocolError) or any(
        c.__name__ == "DistError" for c in type(e).__mro__
    )
    return {
        "type": type(e).__name__,
        # Our own errors never carry data values; other exceptions' messages might.
        "message": str(e) if isinstance(e, SecuredBioError) else None,
        "where": where,
        "secondary": secondary,
    }


def _party_main(
    rank: int,
    world_size: int,
    fn: Callable[[Any], Any],
    party_arg: Any,
    options: dict[str, Any],
    results: Any,
) -> None:
    try:
        if rank == world_size:
            options = {k: v for k, v in options.items() if k != "dealer"}
            options["op_timeout_s"] = max(options["op_timeout_s"], _DEALER_OP_TIMEOUT_S)
            run_dealer(world_size, **options)
            payload = pickle.dumps(None)
        else:
            payload = pickle.dumps(run_party(rank, world_size, fn, party_arg, **options))
        results.put((rank, "ok", payload))
    except BaseException as e:
        # The full traceback stays in this party's own log (stderr on its host).
        traceback.print_exc()
        results.put((rank, "error", _describe_failure(e)))
    finally:
        results.close()
        results.join_thread()


def run_parties(
    fn: Callable[[Any], Any],
    party_args: Sequence[Any],
    *,
    master_addr: str = "127.0.0.1",
    master_port: int | None = None,
    timeout_s: float = 60.0,
    op_timeout_s: float = _DEFAULT_OP_TIMEOUT_S,
    dealer: Dealer = "none",
    torch_threads: int | None = None,
    links: Literal["gloo", "relay"] | Sequence[LinkConfig] = "gloo",
) -> list[Any]:
    """Run ``len(party_args)`` parties as separate OS processes on this host; collect results.

    Party ``i`` runs ``fn(party_args[i])`` inside :func:`run_party` in a fresh ``spawn``-ed
    process (so ``fn`` must be importable: a module-level function, not a lambda).  With
    ``dealer="ttp"`` one more process runs :func:`run_dealer`.  With ``links="relay"`` the
    parties talk as they would across hosts: each gets its own throw-away key pair, a relay
    process forwards their sealed messages over mutual TLS
    (:mod:`~secured_bio.privacy.smpc.links`); a list of :class:`LinkConfig` (one per party,
    relay started by the caller) does the same with given keys and relay.

    Parameters
    ----------
    fn
        The party function, called as ``fn(party_arg)``; its return value must be picklable.
    party_args
        One argument per party (at least two); their number is the world size.
    master_addr
        Rendezvous address (loopback by default).
    master_port
        Rendezvous port; None picks a free one.
    timeout_s
        How long parties wait for each other to connect; also how long the launcher waits for
        the other parties to stop after one failed.
    op_timeout_s
        How long any single message may take (see :func:`run_party`).
    dealer
        ``"none"`` (default), ``"ttp"`` or ``"trusted_first_party"``: see the module docstring.
    torch_threads
        torch threads per process; None shares this host's cores among the processes.
    links
        ``"gloo"`` (default: CrypTen over loopback TCP), ``"relay"`` (encrypted relay, secure
        sums only) or one :class:`LinkConfig` per party.

    Returns
    -------
    list
        ``fn``'s return value of each party, in rank order.

    Raises
    ------
    ConfigError
        If an argument is invalid or ``fn``/``party_args`` cannot be sent to a process.
    ProtocolError
        If any party fails; the message names the party whose own code failed first (with
        the exception type and the file/line, never data values) and notes list the others.

    Examples
    --------
    >>> run_parties(len, [[1, 2]])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    secured_bio.errors.ConfigError: an SMPC session needs at least two parties [world_size]...
    """
    world_size = len(party_args)
    port = free_port(master_addr) if master_port is None else master_port
    _check_common(world_size, port, timeout_s, op_timeout_s)
    _check_dealer(dealer)
    n_proc = world_size + (1 if dealer == "ttp" else 0)
    threads = torch_threads or max(1, (os.cpu_count() or 1) // n_proc)
    options: dict[str, Any] = {
        "master_addr": master_addr, "master_port": port, "timeout_s": timeout_s,
        "op_timeout_s": op_timeout_s, "dealer": dealer, "torch_threads": threads,
    }
    ctx = multiprocessing.get_context("spawn")
    with contextlib.ExitStack() as stack:
        configs: Sequence[LinkConfig | None] = [None] * world_size
        if links == "relay":
            configs = stack.enter_context(_local_relay(world_size, ctx, timeout_s))
        elif not isinstance(links, str):
            configs = list(links)
            if len(configs) != world_size:
                raise ConfigError("one link configuration per party is needed", where="links",
                                  expected=str(world_size), got=str(len(configs)))
        elif links != "gloo":
            raise ConfigError("unknown link kind", where="links",
                              expected="'gloo', 'relay' or a list of LinkConfig",
                              got=repr(links))
        return _launch(ctx, fn, party_args, world_size, n_proc, options, configs, timeout_s,
                       dealer)


def _launch(ctx: Any, fn: Callable[[Any], Any], party_args: Sequence[Any], world_size: int,
            n_proc: int, options: dict[str, Any], configs: Sequence[LinkConfig | None],
            timeout_s: float, dealer: str) -> list[Any]:
    results = ctx.Queue()
    procs: dict[int, Any] = {}
    try:
        for rank in range(n_proc):
            arg = party_args[rank] if rank < world_size else None
            opts = dict(options)
            if rank < world_size and configs[rank] is not None:
                opts["link"] = configs[rank]
            p = ctx.Process(
                target=_party_main, args=(rank, world_size, fn, arg, opts, results),
                name=f"secured_bio-smpc-{rank}",
            )
            try:
                p.start()
            except (pickle.PicklingError, AttributeError, TypeError) as e:
                raise ConfigError(
                    "the party function or its argument cannot be sent to a party process",
                    where=f"party rank {rank}",
                    got=type(e).__name__,
                    fix="pass a module-level function (not a lambda or local function) and"
                    " picklable party_args",
                ) from e
            procs[rank] = p
        outcomes = _collect(procs, results, timeout_s)
    finally:
        for p in procs.values():
            if p.is_alive():
                p.terminate()
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join()
        results.close()
    failed = {r: o for r, o in outcomes.items() if o[0] != "ok"}
    if failed:
        raise _party_failure(failed, world_size, dealer)
    return [pickle.loads(outcomes[r][1]) for r in range(world_size)]


def _relay_main(roster: str, key: str, cert: str, port: int) -> None:
    from .links import run_relay

    logging.basicConfig(level=logging.WARNING)
    run_relay(roster, key=key, cert=cert, host="127.0.0.1", port=port, once=True)


@contextlib.contextmanager
def _local_relay(world_size: int, ctx: Any, timeout_s: float) -> Iterator[list[LinkConfig]]:
    """Throw-away key pairs, a roster and a relay process on loopback, as across hosts."""
    import shutil
    import tempfile

    from .links import create_identity, free_local_port, write_roster

    folder = tempfile.mkdtemp(prefix="secured_bio-links-")  # 0700: holds private keys
    relay_proc = None
    try:
        ids = [create_identity(f"party{r}", folder) for r in range(world_size)]
        relay = create_identity("relay", folder)
        roster = write_roster(os.path.join(folder, "roster.json"), [i.cert for i in ids],
                              relay.cert)
        port = free_local_port()
        relay_proc = ctx.Process(target=_relay_main,
                                 args=(str(roster), str(relay.key), str(relay.cert), port),
                                 name="secured_bio-smpc-relay", daemon=True)
        relay_proc.start()
        yield [LinkConfig("127.0.0.1", port, str(roster), str(i.key), str(i.cert)) for i in ids]
    finally:
        if relay_proc is not None:
            relay_proc.join(min(timeout_s, 10.0))
            if relay_proc.is_alive():
                relay_proc.terminate()
                relay_proc.join(5)
        shutil.rmtree(folder, ignore_errors=True)


def _collect(procs: dict[int, Any], results: Any, timeout_s: float) -> dict[int, tuple]:
    outcomes: dict[int, tuple] = {}
    gone_since: dict[int, float] = {}
    failed_at: float | None = None
    while len(outcomes) < len(procs):
        try:
            rank, status, payload = results.get(timeout=0.1)
            outcomes[rank] = (status, payload)
            if status != "ok" and failed_at is None:
                failed_at = time.monotonic()
            continue
        except queue_module.Empty:
            pass
        now = time.monotonic()
        for rank, p in procs.items():
            if rank in outcomes or p.is_alive():
                continue
            # Exited: its message may still be in the pipe; give it a moment.
            if now - gone_since.setdefault(rank, now) > 2.0:
                outcomes[rank] = ("lost", {
                    "type": "process exit", "message": f"exit code {p.exitcode}",
                    "where": None, "secondary": False,
                })
                failed_at = failed_at or now
        if failed_at is not None and now - failed_at > timeout_s + 10.0:
            for rank in procs:
                if rank not in outcomes:
                    outcomes[rank] = ("lost", {
                        "type": "no answer", "message": "stopped by the launcher",
                        "where": None, "secondary": True,
                    })
    return outcomes


def _party_failure(failed: dict[int, tuple], world_size: int, dealer: str) -> ProtocolError:
    primary = [r for r, (_, d) in sorted(failed.items()) if not d["secondary"]]
    first = (primary or sorted(failed))[0]
    detail = failed[first][1]
    got = detail["type"] + (f": {detail['message']}" if detail["message"] else "")
    err = ProtocolError(
        f"{_who(first, world_size, dealer)} failed",
        where=detail["where"],
        got=got,
        fix="see that party's log (stderr) for the full traceback",
    )
    for r, (_, d) in sorted(failed.items()):
        if r != first:
            err.add_note(
                f"{_who(r, world_size, dealer)} also failed: {d['type']}"
                + (f": {d['message']}" if d["message"] else "")
            )
    return err
