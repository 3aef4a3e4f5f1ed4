"""Encrypted inference: classify one party's scans with another party's model, over CrypTen.

A hospital classifies its scans with a model it may not see, and the model owner learns
nothing about the scans: two parties, each its own OS process.

* **Party 0, the data owner** (a hospital) holds the scans' features
  (``(n_scans, n_features)`` connectivity edges).
* **Party 1, the model owner** holds the trained weights of a
  :func:`~secured_bio.imaging.models.connectivity_classifier` (Linear/ReLU layers).

Protocol (CrypTen, arithmetic secret sharing over ``Z_2^64``, 16 fractional bits by default):

1. Party 1 sends the architecture record (name and parameters, *not* the weights); party 0
   checks its features against it and sends back the feature shape (or the reason they do not
   fit, after which both stop with a clear error).
2. Both convert the architecture with ``crypten.nn.from_pytorch``; party 1's weights are
   secret-shared with ``.encrypt(src=1)`` (party 0 uses zeros of the same shapes: its values
   are ignored).
3. For each scan, party 0 secret-shares its feature row (``crypten.cryptensor(x, src=0)``);
   both evaluate the network on shares (Beaver multiplications for the Linear layers, secure
   comparisons for ReLU, triples from the dealer).
4. The output logit is opened **to party 0 only**: party 1 sends its share point-to-point and
   party 0 adds the two shares and decodes them.  We do not use CrypTen's
   ``get_plain_text(dst=0)``: it calls ``torch.distributed.reduce``, and gloo's reduce of more
   than a few elements leaves the *full sum* of some elements in the non-root's buffer (a
   reduce-scatter followed by a gather), i.e. it would hand part of the predictions to party 1.
   Party 0 computes the probability (sigmoid) in plaintext.

Threat model and reveal set
---------------------------
Semi-honest parties, as in :mod:`secured_bio.privacy.smpc.parties` (read its threat model:
gloo does not encrypt the network, and the parties must run over an authenticated encrypted
link).

* **Party 0 learns** the prediction (logit and probability) of each of its scans, the
  architecture (layer widths; not the weights), and the timing and volume of the protocol.
  From many predictions a data owner can in principle fit a surrogate of the model (model
  extraction): limit queries where the model is valuable.
* **Party 1 learns** the number of scans, the number of features and the timing; nothing about
  the feature values or the predictions (it receives only masked values opened during Beaver
  multiplications and comparisons, and nothing during the output opening; a test checks this).
* **The dealer** (``dealer="ttp"``, CrypTen's ``TTPServer``) sees no input, share or output,
  but it knows every Beaver triple: together with either party it could decrypt the other's
  values, so it must not collude with either (run it at a third organisation).
  ``dealer="trusted_first_party"`` makes party 0 the dealer: party 0 could then decrypt the
  weights; use it only in tests.
* **The dealer's randomness** (``dealer="ttp"``).  Party 1 sees every masked value opened
  during a Beaver multiplication, ``x - a`` for the features ``x``, and knows its own share
  ``a_1``: the features are hidden only as long as party 0's share ``a_0`` is unpredictable
  to it.  ``a_0`` comes from a generator that party 0 shares with the dealer.  In CrypTen
  0.4.1 the dealer seeds that generator with a ``torch.randint`` draw from torch's *global*
  Mersenne Twister, and torch initialises a Mersenne Twister from the low 32 bits of a seed
  (measured on torch 2.13, CPU: seeds equal modulo ``2**32`` give the same stream; the
  64-bit value is kept only as ``initial_seed()``).  Every party's triples were thus fixed
  by one 32-bit value (and repeated exactly after a ``torch.manual_seed`` in the dealer
  process): party 1 could enumerate ``2**32`` values, rebuild ``a_0`` and read the features.
  Even a full-size Mersenne Twister state would not do: party 1 learns party 0's share
  ``b_0`` of every mask opened against its own weights (``w - b`` is opened; ``w`` and
  ``b_1`` are its own), and 624 outputs of a Mersenne Twister give its state away.
  :func:`~secured_bio.privacy.smpc.import_crypten` therefore replaces CrypTen's dealer seeds
  and generators in every process: the dealer draws a 256-bit key per party with
  :mod:`secrets` (OS entropy), sends it as four int64 words, and both sides expand it with
  SHAKE-256 (:class:`~secured_bio.privacy.smpc._compat.DealerStream`); nothing reads torch's
  global generator.  The keys travel over gloo like all other traffic, unencrypted: run the
  parties and the dealer over an encrypted link.
* **CrypTen's pseudo-random zero sharings** (``crypten.cryptensor``, ``MPCTensor``
  arithmetic) use per-neighbour seeds exchanged in the clear and truncated to 32 bits by
  torch (see the *Threat model* of :mod:`secured_bio.privacy.smpc.parties`).  With two
  parties each party knows both seeds of the other's zero sharing by construction (its
  previous and next neighbour are the same party), so these masks never hide anything from
  the other party, whatever their size; a party's input stays hidden because its share is
  only sent masked by a dealer triple (above).  They matter against an eavesdropper, and
  with three or more parties.

Accuracy: the logits equal the plaintext ones up to fixed-point rounding (about 1e-3 for the
default 16 bits and a one-hidden-layer network; the tests require 1e-2), including negative
logits (CrypTen's negative-value decode bug is fixed by
:func:`~secured_bio.privacy.smpc._compat.import_crypten`).  Never run this on CrypTen's CUDA
path (wrong results were measured there; see DEPENDENCIES.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from secured_bio.errors import ConfigError, InputError, ProtocolError

from .parties import Dealer, current_party, run_parties, run_party

__all__ = [
    "EncryptedInferenceResult",
    "encrypted_predict",
    "inference_party",
    "run_data_owner",
    "run_model_owner",
]

DATA_OWNER = 0
MODEL_OWNER = 1
_SUPPORTED = ("connectivity_classifier",)


@dataclass
class EncryptedInferenceResult:
    """What the data owner (party 0) gets from :func:`encrypted_predict` / :func:`run_data_owner`.

    Attributes
    ----------
    probabilities
        float64 ``(n_scans,)``: sigmoid of the decrypted logits.
    logits
        float64 ``(n_scans,)``: the decrypted logits.
    latency_ms
        float64 ``(n_scans,)``: wall time at party 0 of each scan (share the row, evaluate,
        open the output), one scan at a time.
    setup_s
        Seconds to exchange the architecture and convert and encrypt the model (once).
    total_s
        Seconds for all scans (without ``setup_s``).
    bytes_sent, bytes_received
        Per party rank, bytes sent / received during the scans (see
        :class:`~secured_bio.privacy.smpc.ProtocolStats`; collectives are estimated).  Only
        party 0's own counts when run with :func:`run_data_owner`.
    precision_bits
        CrypTen's fixed-point fractional bits.
    dealer
        The dealer mode used.
    """

    probabilities: np.ndarray
    logits: np.ndarray
    latency_ms: np.ndarray
    setup_s: float
    total_s: float
    bytes_sent: dict[int, int] = field(default_factory=dict)
    bytes_received: dict[int, int] = field(default_factory=dict)
    precision_bits: int = 16
    dealer: str = "ttp"

    def latency_summary(self) -> dict[str, float]:
        """Return p50/p95/mean per-scan latency in milliseconds.

        Returns
        -------
        dict
            ``p50_ms``, ``p95_ms``, ``mean_ms``, ``n_scans``.

        Examples
        --------
        >>> r = EncryptedInferenceResult(np.zeros(2), np.zeros(2), np.array([1.0, 3.0]), 0, 0)
        >>> r.latency_summary()["p50_ms"]
        2.0
        """
        lat = np.asarray(self.latency_ms, dtype=float)
        return {
            "p50_ms": float(np.percentile(lat, 50)),
            "p95_ms": float(np.percentile(lat, 95)),
            "mean_ms": float(lat.mean()),
            "n_scans": int(lat.size),
        }


# -- inputs of each party ----------------------------------------------------------------------


def _model_record(model: Any) -> dict[str, Any]:
    """Architecture and weights (numpy, picklable) of a model or a saved-model folder."""
    from secured_bio.imaging.models import architecture, load_model

    if isinstance(model, (str, os.PathLike)):
        model = load_model(Path(model))
    arch = architecture(model)
    if arch["name"] not in _SUPPORTED:
        raise ConfigError(
            f"encrypted inference does not support architecture {arch['name']!r}",
            where="model", expected=" or ".join(_SUPPORTED), got=repr(arch["name"]),
            fix="use a connectivity_classifier (its layers are all CrypTen operations)",
        )
    state = {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
    return {"architecture": arch, "state": state}


def _check_features(features: Any, arch: Mapping[str, Any]) -> np.ndarray:
    n_features = int(arch["params"]["n_features"])
    arr = np.asarray(features)
    if arr.ndim != 2 or arr.shape[1] != n_features or arr.shape[0] == 0:
        raise InputError(
            "features do not fit the model", where="features",
            expected=f"(n_scans >= 1, {n_features})", got=str(tuple(arr.shape)),
            fix="pass one row of connectivity features per scan, in the model's feature order",
        )
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError("features are not numeric", where="features",
                         expected="a float array", got=f"dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise InputError("features have non-finite values", where="features",
                         expected="finite values",
                         got=f"{int((~np.isfinite(arr)).sum())} NaN/inf entries")
    return np.ascontiguousarray(arr, dtype=np.float32)


# -- the party function ------------------------------------------------------------------------


def _build_plain(arch: Mapping[str, Any], state: Mapping[str, np.ndarray] | None) -> Any:
    import torch

    from secured_bio.imaging.models import build_model

    model = build_model(arch["name"], arch["params"])
    if state is None:
        # The data owner: only shapes matter (encrypt(src=1) ignores non-source values).
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
    else:
        model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    return model.eval()


def inference_party(arg: Mapping[str, Any]) -> dict[str, Any]:
    """Run one side of encrypted inference inside an SMPC party (rank 0 or 1).

    Pass it to :func:`~secured_bio.privacy.smpc.run_party` (one host per party) or use
    :func:`run_data_owner` / :func:`run_model_owner`, which do.

    Parameters
    ----------
    arg
        Party 0: ``{"features": array (n_scans, n_features)}``.  Party 1:
        ``{"architecture": {...}, "state": {name: array}}`` (see :func:`run_model_owner`).

    Returns
    -------
    dict
        Party 0: ``logits``, ``latency_ms``, ``setup_s``, ``total_s``, its byte counts and
        ``precision_bits``.  Party 1: only counts and timings (``n_scans``, ``setup_s``,
        ``total_s``, ``bytes_sent``, ``bytes_received``, ``input_bytes_received``,
        ``output_bytes_received``), never a prediction.

    Raises
    ------
    ProtocolError
        If called outside a 2-party session, or the other party's input does not fit.
    InputError
        Party 0: if its features do not fit the model (party 1 then fails too).

    Examples
    --------
    >>> inference_party({})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    secured_bio.errors.ProtocolError: not inside an SMPC party [secured_bio.privacy.smpc]...
    """
    me = current_party()
    if me.world_size != 2:
        raise ProtocolError(
            "encrypted inference needs exactly two parties", where=f"party rank {me.rank}",
            expected="world_size 2 (data owner rank 0, model owner rank 1)",
            got=f"world_size {me.world_size}",
        )
    import crypten
    import crypten.communicator as comm
    import torch

    from .protocols import measure, record_messages

    t_setup = time.perf_counter()
    c = comm.get()
    # 1. architecture from the model owner; feature shape (or a refusal) from the data owner.
    arch = c.broadcast_obj(arg["architecture"] if me.rank == MODEL_OWNER else None, MODEL_OWNER)
    features: np.ndarray | None = None
    refusal: dict[str, Any] | None = None
    if me.rank == DATA_OWNER:
        try:
            features = _check_features(arg["features"], arch)
        except InputError as e:
            refusal = {"what": e.what, "expected": e.expected, "got": e.got}
            c.broadcast_obj({"refusal": refusal}, DATA_OWNER)
            raise
        c.broadcast_obj({"shape": tuple(features.shape)}, DATA_OWNER)
        shape = features.shape
    else:
        reply = c.broadcast_obj(None, DATA_OWNER)
        if "refusal" in reply:
            r = reply["refusal"]
            raise ProtocolError(
                "the data owner's features do not fit the model; party 0 stopped",
                where="party rank 1 (model owner)", expected=r.get("expected"),
                got=r.get("got"), fix=f"party 0 reported: {r.get('what')}",
            )
        shape = tuple(reply["shape"])
    n_scans, n_features = int(shape[0]), int(shape[1])

    # 2. the model: plaintext graph on both sides, weights shared by the model owner.
    plain = _build_plain(arch, arg["state"] if me.rank == MODEL_OWNER else None)
    dummy = torch.zeros(1, n_features)
    model = crypten.nn.from_pytorch(plain, dummy).encrypt(src=MODEL_OWNER).eval()
    setup_s = time.perf_counter() - t_setup

    # 3. one scan at a time (the real-time case): share, evaluate, open to party 0.
    logits = np.empty(n_scans)
    latency = np.empty(n_scans)
    input_received = output_received = 0
    c.barrier()
    with measure() as stats:
        t_all = time.perf_counter()
        for i in range(n_scans):
            t0 = time.perf_counter()
            row = torch.from_numpy(features[i:i + 1]) if features is not None \
                else torch.empty(1, n_features)
            with record_messages(keep_payloads=False) as log_in:
                x = crypten.cryptensor(row, src=DATA_OWNER)
            with torch.no_grad():
                out = model(x)
            with record_messages(keep_payloads=False) as log_out:
                value = _open_to_data_owner(out)
            input_received += log_in.stats().bytes_received
            output_received += log_out.stats().bytes_received
            latency[i] = (time.perf_counter() - t0) * 1e3
            if value is not None:
                logits[i] = float(value.reshape(-1)[0])
        total_s = time.perf_counter() - t_all
    common = {
        "n_scans": n_scans, "setup_s": setup_s, "total_s": total_s,
        "bytes_sent": stats.bytes_sent, "bytes_received": stats.bytes_received,
        "input_bytes_received": input_received, "output_bytes_received": output_received,
        "precision_bits": int(crypten.cfg.encoder.precision_bits),
    }
    if me.rank == DATA_OWNER:
        return {**common, "role": "data_owner", "logits": logits, "latency_ms": latency}
    return {**common, "role": "model_owner"}


def _open_to_data_owner(out: Any) -> Any:
    """Open an arithmetic MPCTensor to party 0 only (point-to-point; see the module notes)."""
    import crypten.communicator as comm

    shared = out._tensor  # the ArithmeticSharedTensor inside the MPCTensor
    share = shared.share
    c = comm.get()
    if c.get_rank() == DATA_OWNER:
        other = c.recv(share.new_empty(share.shape), src=MODEL_OWNER)
        return shared.encoder.decode(share + other)  # int64 addition wraps: ring Z_2^64
    c.send(share, dst=DATA_OWNER)
    return None


# -- entry points ----------------------------------------------------------------------------


def _result(p0: Mapping[str, Any], dealer: str, p1: Mapping[str, Any] | None = None
            ) -> EncryptedInferenceResult:
    logits = np.asarray(p0["logits"], dtype=float)
    sent = {DATA_OWNER: int(p0["bytes_sent"])}
    received = {DATA_OWNER: int(p0["bytes_received"])}
    if p1 is not None:
        sent[MODEL_OWNER] = int(p1["bytes_sent"])
        received[MODEL_OWNER] = int(p1["bytes_received"])
    return EncryptedInferenceResult(
        probabilities=1.0 / (1.0 + np.exp(-logits)),
        logits=logits,
        latency_ms=np.asarray(p0["latency_ms"], dtype=float),
        setup_s=float(p0["setup_s"]),
        total_s=float(p0["total_s"]),
        bytes_sent=sent,
        bytes_received=received,
        precision_bits=int(p0["precision_bits"]),
        dealer=dealer,
    )


def encrypted_predict(
    model: Any,
    features: Any,
    *,
    dealer: Dealer = "ttp",
    master_port: int | None = None,
    timeout_s: float = 120.0,
    torch_threads: int | None = None,
) -> EncryptedInferenceResult:
    """Classify scans with encrypted inference, both parties (and the dealer) on this host.

    For tests and demos: the data owner and the model owner each run in their own OS process
    (:func:`~secured_bio.privacy.smpc.run_parties`); only the data owner's result is returned.
    Across hosts use :func:`run_data_owner` and :func:`run_model_owner`.

    Parameters
    ----------
    model
        A :func:`~secured_bio.imaging.models.connectivity_classifier` or the folder of one
        saved with :func:`~secured_bio.imaging.models.save_model`.
    features
        float array ``(n_scans, n_features)`` of the data owner.
    dealer
        ``"ttp"`` (default: a separate dealer process) or ``"trusted_first_party"`` (tests).
    master_port
        Rendezvous port (None: a free one).
    timeout_s
        How long the processes wait for each other to connect.
    torch_threads
        torch threads per process (None: the cores shared among the processes).

    Returns
    -------
    EncryptedInferenceResult
        Probabilities, logits, per-scan latency and communication of both parties.

    Raises
    ------
    ConfigError
        If the model is not a supported architecture or ``dealer`` is ``"none"``/unknown.
    InputError
        If the features do not fit the model (checked before any process starts).
    InputFileNotFoundError, FormatError
        If ``model`` is a path that does not hold a valid saved model.
    ProtocolError
        If a party fails (see :func:`~secured_bio.privacy.smpc.run_parties`).

    Examples
    --------
    >>> from secured_bio.imaging.models import connectivity_classifier
    >>> encrypted_predict(connectivity_classifier(4), np.zeros((2, 3)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    secured_bio.errors.InputError: features do not fit the model [features]: expected (n_scans...
    """
    if dealer == "none":
        raise ConfigError(
            "encrypted inference needs a dealer for its multiplications", where="dealer",
            expected="'ttp' or 'trusted_first_party'", got="'none'",
            fix="use dealer='ttp' (a separate trusted third party)",
        )
    record = _model_record(model)
    x = _check_features(features, record["architecture"])
    outs = run_parties(
        inference_party, [{"features": x}, record], master_port=master_port,
        timeout_s=timeout_s, dealer=dealer, torch_threads=torch_threads,
    )
    return _result(outs[DATA_OWNER], dealer, outs[MODEL_OWNER])


def run_data_owner(
    features: Any,
    *,
    master_addr: str = "127.0.0.1",
    master_port: int,
    dealer: Dealer = "ttp",
    timeout_s: float = 120.0,
    **party_options: Any,
) -> EncryptedInferenceResult:
    """Run the data owner (party 0) of encrypted inference on this host.

    Party 0 hosts the rendezvous at ``master_addr:master_port``; the model owner runs
    :func:`run_model_owner` with the same address, port and dealer, and with
    ``dealer="ttp"`` someone runs :func:`~secured_bio.privacy.smpc.run_dealer`.

    Parameters
    ----------
    features
        float array ``(n_scans, n_features)``; never leaves this process in the clear.
    master_addr, master_port
        This host's address as the other parties reach it, and the port to listen on.
    dealer
        As for :func:`encrypted_predict`.
    timeout_s
        How long to wait for the other parties to connect.
    **party_options
        Passed to :func:`~secured_bio.privacy.smpc.run_party` (``op_timeout_s``,
        ``torch_threads``, ``interface``).

    Returns
    -------
    EncryptedInferenceResult
        With this party's byte counts only.

    Raises
    ------
    InputError
        If the features do not fit the model owner's architecture.
    ProtocolError, ConfigError
        As for :func:`~secured_bio.privacy.smpc.run_party`.

    Examples
    --------
    >>> run_data_owner(np.zeros((1, 3)), master_port=0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    secured_bio.errors.ConfigError: invalid rendezvous port [master_port]...
    """
    out = run_party(DATA_OWNER, 2, inference_party, {"features": np.asarray(features)},
                    master_addr=master_addr, master_port=master_port, dealer=dealer,
                    timeout_s=timeout_s, **party_options)
    return _result(out, dealer)


def run_model_owner(
    model: Any,
    *,
    master_addr: str,
    master_port: int,
    dealer: Dealer = "ttp",
    timeout_s: float = 120.0,
    **party_options: Any,
) -> dict[str, Any]:
    """Run the model owner (party 1) of encrypted inference on this host.

    Parameters
    ----------
    model
        A connectivity classifier or the folder of a saved one; its weights stay secret
        shared (only the architecture record is sent to the data owner).
    master_addr, master_port
        The data owner's rendezvous.
    dealer
        As for :func:`encrypted_predict`.
    timeout_s
        How long to wait for the other parties to connect.
    **party_options
        Passed to :func:`~secured_bio.privacy.smpc.run_party`.

    Returns
    -------
    dict
        Counts and timings only (``n_scans``, ``setup_s``, ``total_s``, ``bytes_sent``,
        ``bytes_received``...): the model owner learns no prediction.

    Raises
    ------
    ConfigError
        If the model is not a supported architecture, or a party option is invalid.
    ProtocolError
        If the data owner's features do not fit the model, or the session fails.

    Examples
    --------
    >>> import torch
    >>> run_model_owner(torch.nn.Linear(2, 1), master_addr="127.0.0.1", master_port=1)
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    secured_bio.errors.InputError: model has no secured_bio architecture record...
    """
    record = _model_record(model)
    out: dict[str, Any] = run_party(
        MODEL_OWNER, 2, inference_party, record, master_addr=master_addr,
        master_port=master_port, dealer=dealer, timeout_s=timeout_s, **party_options,
    )
    return out
