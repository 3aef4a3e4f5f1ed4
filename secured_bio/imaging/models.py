"""Models of the tumour classification pilot: a connectivity classifier and a small 3D CNN.

Both are MONAI networks returning **one logit per example** (shape ``(batch, 1)``; the
probability of the positive class is its sigmoid):

* :func:`connectivity_classifier`: ``monai.networks.nets.FullyConnectedNet`` on a vector of
  connectivity edge features (for example the upper triangle of an ROI correlation matrix,
  Fisher z).  It uses ReLU (MONAI's default PReLU has no CrypTen counterpart) and dropout
  only, so ``crypten.nn.from_pytorch`` converts it as is: the same module runs in plaintext,
  in federated training and in encrypted inference
  (:mod:`secured_bio.privacy.smpc.inference`).
* :func:`cnn3d`: ``monai.networks.nets.Classifier`` (strided residual convolutions, instance
  norm, PReLU) on one-channel volumes such as seed-based connectivity maps,
  ``(batch, 1, X, Y, Z)``.  Plaintext only (instance norm and PReLU are not CrypTen ops).

Helpers: :func:`fit` (seeded mini-batch training with binary cross-entropy on the logit),
:func:`predict_proba`, :func:`inference_latency` (per-scan latency, batch of 1),
:func:`save_model` / :func:`load_model` (a MONAI-bundle-like folder, format
``secured_bio.model`` version 1) and :func:`build_model` (an architecture from its name and
parameters, as recorded in a saved model).

Variables
---------
``x`` (connectivity classifier)
    float array ``(n_examples, n_features)``, finite.
``x`` (cnn3d)
    float array ``(n_examples, 1, X, Y, Z)`` with ``(X, Y, Z)`` the model's ``in_shape``.
``y``
    binary labels ``(n_examples,)`` in {0, 1}.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from secured_bio._atomic import atomic_dir
from secured_bio.errors import (
    ConfigError,
    FormatError,
    InputError,
    InputFileNotFoundError,
    did_you_mean,
)

__all__ = [
    "ARCHITECTURES",
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "architecture",
    "build_model",
    "cnn3d",
    "connectivity_classifier",
    "fit",
    "inference_latency",
    "load_model",
    "predict_logits",
    "predict_proba",
    "read_model_header",
    "save_model",
]

MODEL_FORMAT = "secured_bio.model"
MODEL_FORMAT_VERSION = 1
_META_FILE = "model.json"
_WEIGHTS_FILE = "model.pt"
_ARCH_ATTR = "_secured_bio_architecture"

#: The architectures :func:`build_model` can rebuild, by name.
ARCHITECTURES = ("connectivity_classifier", "cnn3d")


# -- architectures ---------------------------------------------------------------------------


@contextlib.contextmanager
def _seeded_init(seed: int | None) -> Iterator[None]:
    """Seed torch for a block; ``fork_rng`` restores the caller's global generator after."""
    import torch

    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _tag(model: Any, name: str, params: dict[str, Any]) -> Any:
    setattr(model, _ARCH_ATTR, {"name": name, "params": params})
    return model


def connectivity_classifier(
    n_features: int,
    *,
    hidden: Sequence[int] = (32,),
    dropout: float = 0.1,
    seed: int | None = None,
) -> Any:
    """Build the connectivity-feature classifier (MONAI ``FullyConnectedNet``, ReLU, 1 logit).

    Parameters
    ----------
    n_features
        Number of input features (connectivity edges), >= 1.
    hidden
        Widths of the hidden layers (each Linear -> dropout -> ReLU, MONAI's ADN order).
    dropout
        Dropout probability in the hidden layers, in [0, 1); inactive in evaluation mode.
    seed
        Seed of the weight initialisation (None: torch's global generator).

    Returns
    -------
    torch.nn.Module
        Input ``(batch, n_features)`` float32, output ``(batch, 1)`` logits.  Convertible by
        ``crypten.nn.from_pytorch`` (Flatten, Gemm, ReLU; dropout vanishes in eval mode).

    Raises
    ------
    ConfigError
        If ``n_features``, ``hidden`` or ``dropout`` is out of range.

    Examples
    --------
    >>> import torch
    >>> net = connectivity_classifier(6, hidden=(4,), seed=0)
    >>> net(torch.zeros(3, 6)).shape
    torch.Size([3, 1])
    """
    from monai.networks.nets import FullyConnectedNet

    _check_positive_int(n_features, "n_features")
    widths = [int(h) for h in hidden]
    for i, h in enumerate(widths):
        _check_positive_int(h, f"hidden[{i}]")
    if not 0.0 <= float(dropout) < 1.0:
        raise ConfigError(
            "dropout probability out of range", where="dropout", expected="0 <= dropout < 1",
            got=repr(dropout),
        )
    with _seeded_init(seed):
        # act="RELU": CrypTen has no PRelu op (MONAI's default activation).
        net = FullyConnectedNet(n_features, 1, widths, dropout=float(dropout) or None, act="RELU")
    return _tag(net, "connectivity_classifier", {
        "n_features": int(n_features), "hidden": widths, "dropout": float(dropout),
    })


def cnn3d(
    in_shape: Sequence[int] = (16, 16, 8),
    *,
    channels: Sequence[int] = (4, 8),
    strides: Sequence[int] | None = None,
    num_res_units: int = 1,
    dropout: float | None = None,
    seed: int | None = None,
) -> Any:
    """Build the small 3D CNN (MONAI ``Classifier``, residual strided convolutions, 1 logit).

    Parameters
    ----------
    in_shape
        Spatial shape ``(X, Y, Z)`` of the one-channel input volumes.
    channels
        Output channels of each convolutional stage.
    strides
        Stride of each stage (default 2 for every stage).
    num_res_units
        Residual units per stage (MONAI ``Classifier``).
    dropout
        Dropout probability inside the stages (None: none).
    seed
        Seed of the weight initialisation (None: torch's global generator).

    Returns
    -------
    torch.nn.Module
        Input ``(batch, 1, X, Y, Z)`` float32, output ``(batch, 1)`` logits.

    Raises
    ------
    ConfigError
        If a shape, channel count or stride is not a positive integer, or ``strides`` and
        ``channels`` differ in length.

    Examples
    --------
    >>> import torch
    >>> net = cnn3d((8, 8, 4), channels=(2,), seed=0)
    >>> net(torch.zeros(2, 1, 8, 8, 4)).shape
    torch.Size([2, 1])
    """
    from monai.networks.nets import Classifier

    shape = [int(s) for s in in_shape]
    if len(shape) != 3:
        raise ConfigError(
            "cnn3d needs a 3D input shape", where="in_shape", expected="(X, Y, Z)",
            got=f"{len(shape)} dimensions",
        )
    chans = [int(c) for c in channels]
    strd = [2] * len(chans) if strides is None else [int(s) for s in strides]
    if len(strd) != len(chans):
        raise ConfigError(
            "one stride per stage is needed", where="strides",
            expected=f"{len(chans)} values (as many as channels)", got=f"{len(strd)} values",
        )
    for name, values in (("in_shape", shape), ("channels", chans), ("strides", strd)):
        for i, v in enumerate(values):
            _check_positive_int(v, f"{name}[{i}]")
    with _seeded_init(seed):
        net = Classifier(
            in_shape=(1, *shape), classes=1, channels=chans, strides=strd,
            num_res_units=int(num_res_units), dropout=dropout,
        )
    return _tag(net, "cnn3d", {
        "in_shape": shape, "channels": chans, "strides": strd,
        "num_res_units": int(num_res_units), "dropout": dropout,
    })


_BUILDERS = {"connectivity_classifier": connectivity_classifier, "cnn3d": cnn3d}


def build_model(name: str, params: Mapping[str, Any], *, seed: int | None = None) -> Any:
    """Build an architecture from its name and parameters (as stored by :func:`save_model`).

    Parameters
    ----------
    name
        One of :data:`ARCHITECTURES`.
    params
        Keyword arguments of that builder (``n_features`` / ``in_shape`` included).
    seed
        Seed of the weight initialisation.

    Returns
    -------
    torch.nn.Module
        A fresh (untrained) model.

    Raises
    ------
    ConfigError
        If ``name`` is unknown (with a "did you mean") or ``params`` do not fit it.

    Examples
    --------
    >>> build_model("connectivity_classifier", {"n_features": 3, "hidden": [2]}).hidden_channels
    [2]
    >>> build_model("cnn_3d", {})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    secured_bio.errors.ConfigError: unknown model architecture 'cnn_3d' [architecture]...
    """
    if name not in _BUILDERS:
        raise ConfigError(
            f"unknown model architecture {name!r}", where="architecture",
            expected=" or ".join(ARCHITECTURES), got=repr(name),
            fix=did_you_mean(name, ARCHITECTURES) or "choose one of the listed architectures",
        )
    kwargs = dict(params)
    try:
        if name == "connectivity_classifier":
            n = kwargs.pop("n_features")
            return connectivity_classifier(n, **kwargs, seed=seed)
        shape = kwargs.pop("in_shape", (16, 16, 8))
        return cnn3d(shape, **kwargs, seed=seed)
    except (KeyError, TypeError) as e:
        raise ConfigError(
            f"parameters do not fit architecture {name!r}", where="architecture.params",
            got=f"{type(e).__name__}: {e}",
            fix="pass the parameters of the builder function of that architecture",
        ) from e


def architecture(model: Any) -> dict[str, Any]:
    """Return the architecture record ``{"name", "params"}`` of a model built here.

    Parameters
    ----------
    model
        A model from :func:`connectivity_classifier`, :func:`cnn3d`, :func:`build_model` or
        :func:`load_model`.

    Returns
    -------
    dict
        ``{"name": str, "params": dict}`` (a copy).

    Raises
    ------
    InputError
        If the model was not built by this module.

    Examples
    --------
    >>> architecture(connectivity_classifier(5))["params"]["n_features"]
    5
    """
    record = getattr(model, _ARCH_ATTR, None)
    if not isinstance(record, dict):
        raise InputError(
            "model has no secured_bio architecture record", where=type(model).__name__,
            expected="a model built by secured_bio.imaging.models",
            fix="build it with connectivity_classifier(), cnn3d() or build_model()",
        )
    return json.loads(json.dumps(record))


# -- inputs -----------------------------------------------------------------------------------


def _check_positive_int(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(
            "expected a positive integer", where=where, expected="an integer >= 1",
            got=repr(value) if isinstance(value, (int, float, np.number)) else type(value).__name__,
        )


def _expected_shape(model: Any) -> tuple[int, ...]:
    arch = architecture(model)
    if arch["name"] == "connectivity_classifier":
        return (int(arch["params"]["n_features"]),)
    return (1, *(int(s) for s in arch["params"]["in_shape"]))


def _as_input(model: Any, x: Any, where: str = "x") -> Any:
    """Validate ``x`` for ``model`` and return it as a float32 torch tensor."""
    import torch

    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    expected = _expected_shape(model)
    shape_text = "(n, " + ", ".join(str(s) for s in expected) + ")"
    if arr.ndim != len(expected) + 1 or tuple(arr.shape[1:]) != expected:
        raise InputError(
            "input has the wrong shape for this model", where=where, expected=shape_text,
            got=str(tuple(arr.shape)),
            fix="pass one row per example with the features/volume the model was built for",
        )
    if arr.shape[0] == 0:
        raise InputError("input has no examples", where=where, expected=shape_text,
                         got=str(tuple(arr.shape)))
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError("input is not numeric", where=where, expected="a float array",
                         got=f"dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise InputError(
            "input has non-finite values", where=where, expected="finite values",
            got=f"{int((~np.isfinite(arr)).sum())} NaN/inf entries",
            fix="impute or drop those examples before the model",
        )
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def _as_labels(y: Any, n: int) -> Any:
    import torch

    arr = np.asarray(y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y)
    if arr.shape != (n,):
        raise InputError("labels have the wrong shape", where="y", expected=f"({n},)",
                         got=str(arr.shape))
    if not np.isin(arr, (0, 1)).all():
        raise InputError("labels must be binary", where="y", expected="values in {0, 1}",
                         got=f"{len(np.unique(arr))} distinct values")
    return torch.from_numpy(arr.astype(np.float32)).reshape(n, 1)


# -- training and prediction -------------------------------------------------------------------


def fit(
    model: Any,
    x: Any,
    y: Any,
    *,
    epochs: int = 50,
    lr: float = 1e-2,
    batch_size: int = 32,
    seed: int = 0,
    weight_decay: float = 0.0,
) -> list[float]:
    """Train ``model`` in place with Adam on binary cross-entropy of the logit.

    Parameters
    ----------
    model
        A model of this module (its input shape is checked).
    x, y
        Inputs (see the module's *Variables*) and binary labels.
    epochs, lr, batch_size
        Epochs, Adam learning rate, mini-batch size.
    seed
        Seeds the shuffling and dropout (torch's global generator is restored afterwards).
    weight_decay
        Adam weight decay (L2).

    Returns
    -------
    list of float
        Mean training loss of each epoch.

    Raises
    ------
    InputError
        If ``x`` or ``y`` has the wrong shape, non-finite values or non-binary labels.
    ConfigError
        If ``epochs``, ``batch_size`` is not a positive integer or ``lr`` is not positive.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(20, 4)); y = (x[:, 0] > 0).astype(int)
    >>> losses = fit(connectivity_classifier(4, seed=0), x, y, epochs=5, seed=0)
    >>> len(losses), losses[-1] < losses[0]
    (5, True)
    """
    import torch

    _check_positive_int(epochs, "epochs")
    _check_positive_int(batch_size, "batch_size")
    if not lr > 0:
        raise ConfigError("learning rate must be positive", where="lr", expected="> 0",
                          got=repr(lr))
    xt = _as_input(model, x)
    yt = _as_labels(y, xt.shape[0])
    n = xt.shape[0]
    losses: list[float] = []
    loss_fn = torch.nn.BCEWithLogitsLoss()
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    was_training = model.training
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            order = torch.randperm(n, generator=gen)
            total = 0.0
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                opt.zero_grad()
                loss = loss_fn(model(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            losses.append(total / n)
    model.train(was_training)
    return losses


def predict_logits(model: Any, x: Any) -> np.ndarray:
    """Return the logits of ``model`` on ``x`` (evaluation mode, no gradients).

    Parameters
    ----------
    model
        A model of this module.
    x
        Inputs (see the module's *Variables*).

    Returns
    -------
    numpy.ndarray
        float64 ``(n_examples,)``.

    Raises
    ------
    InputError
        If ``x`` has the wrong shape or non-finite values.

    Examples
    --------
    >>> predict_logits(connectivity_classifier(3, seed=0), np.zeros((2, 3))).shape
    (2,)
    """
    import torch

    xt = _as_input(model, x)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(xt)
    finally:
        model.train(was_training)
    return out.reshape(-1).double().numpy()


def predict_proba(model: Any, x: Any) -> np.ndarray:
    """Return the probability of the positive class (sigmoid of the logit) for each example.

    Parameters
    ----------
    model
        A model of this module.
    x
        Inputs (see the module's *Variables*).

    Returns
    -------
    numpy.ndarray
        float64 ``(n_examples,)`` in [0, 1].

    Raises
    ------
    InputError
        If ``x`` has the wrong shape or non-finite values.

    Examples
    --------
    >>> p = predict_proba(connectivity_classifier(3, seed=0), np.zeros((2, 3)))
    >>> p.shape, bool(((p >= 0) & (p <= 1)).all())
    ((2,), True)
    """
    z = predict_logits(model, x)
    return 1.0 / (1.0 + np.exp(-z))


def inference_latency(
    model: Any, x: Any, *, repeats: int = 100, warmup: int = 5
) -> dict[str, float]:
    """Measure plaintext per-scan latency: one forward pass on a batch of one, CPU, no grad.

    Scans are taken from ``x`` in turn (``x[i % n]``); each timing covers only the forward
    pass (``time.perf_counter``), with torch's current thread count.

    Parameters
    ----------
    model
        A model of this module.
    x
        Example inputs (at least one).
    repeats
        Timed forward passes.
    warmup
        Untimed passes first (allocator and kernel warm-up).

    Returns
    -------
    dict
        ``p50_ms``, ``p95_ms``, ``mean_ms``, ``min_ms``, ``max_ms``, ``repeats``,
        ``torch_threads``.

    Raises
    ------
    InputError
        If ``x`` does not fit the model.
    ConfigError
        If ``repeats`` is not a positive integer.

    Examples
    --------
    >>> lat = inference_latency(connectivity_classifier(3), np.zeros((2, 3)), repeats=5)
    >>> lat["p50_ms"] <= lat["p95_ms"] <= lat["max_ms"]
    True
    """
    import torch

    _check_positive_int(repeats, "repeats")
    xt = _as_input(model, x)
    n = xt.shape[0]
    was_training = model.training
    model.eval()
    times: list[float] = []
    try:
        with torch.no_grad():
            for i in range(warmup):
                model(xt[i % n:i % n + 1])
            for i in range(repeats):
                scan = xt[i % n:i % n + 1]
                t0 = time.perf_counter()
                model(scan)
                times.append((time.perf_counter() - t0) * 1e3)
    finally:
        model.train(was_training)
    arr = np.asarray(times)
    return {
        "p50_ms": float(np.percentile(arr, 50)),
        "p95_ms": float(np.percentile(arr, 95)),
        "mean_ms": float(arr.mean()),
        "min_ms": float(arr.min()),
        "max_ms": float(arr.max()),
        "repeats": int(repeats),
        "torch_threads": int(torch.get_num_threads()),
    }


# -- saving and loading -----------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_model(
    model: Any, path: str | os.PathLike[str], *, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Save a model as a folder: ``model.pt`` (state dict) and ``model.json`` (header).

    In the spirit of a MONAI bundle: the weights sit beside a JSON header holding
    ``format`` (``"secured_bio.model"``), ``format_version`` (1), the architecture name and
    parameters (enough for :func:`build_model`), the SHA-256 of the weights file and the
    caller's ``metadata`` (training data, metrics...).  The folder is written under a
    temporary name and renamed when complete.

    Parameters
    ----------
    model
        A model of this module.
    path
        Output folder (replaced if it exists).
    metadata
        JSON-serialisable description; never put participant data here.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InputError
        If the model was not built by this module.
    ConfigError
        If ``metadata`` is not JSON-serialisable.

    Examples
    --------
    >>> import tempfile
    >>> d = save_model(connectivity_classifier(3), tempfile.mkdtemp() + "/m", metadata={"a": 1})
    >>> sorted(p.name for p in d.iterdir())
    ['model.json', 'model.pt']
    """
    import torch

    arch = architecture(model)
    try:
        meta_text = json.dumps(dict(metadata or {}))
    except (TypeError, ValueError) as e:
        raise ConfigError(
            "model metadata is not JSON-serialisable", where="metadata",
            got=type(e).__name__, fix="pass plain str/number/list/dict values",
        ) from e
    out = Path(path)
    with atomic_dir(out) as tmp:
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        torch.save(state, tmp / _WEIGHTS_FILE)
        header = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "architecture": arch,
            "weights": _WEIGHTS_FILE,
            "weights_sha256": _sha256(tmp / _WEIGHTS_FILE),
            "torch_version": torch.__version__,
            "metadata": json.loads(meta_text),
        }
        (tmp / _META_FILE).write_text(json.dumps(header, indent=2) + "\n")
    return out


def read_model_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check the JSON header of a saved model (weights are not loaded).

    Parameters
    ----------
    path
        A folder written by :func:`save_model`.

    Returns
    -------
    dict
        The header: ``format``, ``format_version``, ``architecture``, ``metadata``...

    Raises
    ------
    InputFileNotFoundError
        If the folder or its ``model.json`` does not exist.
    FormatError
        If the header is not JSON, not a ``secured_bio.model`` or of an unknown version.

    Examples
    --------
    >>> read_model_header("/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    secured_bio.errors.InputFileNotFoundError: saved model not found [/nonexistent/model.json]...
    """
    meta_path = Path(path) / _META_FILE
    if not meta_path.is_file():
        raise InputFileNotFoundError(
            "saved model not found", where=str(meta_path),
            expected="a folder written by save_model() with model.json and model.pt",
            fix="check the path",
        )
    try:
        header = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FormatError("model header is not valid JSON", where=str(meta_path),
                          got=type(e).__name__) from e
    if not isinstance(header, dict) or header.get("format") != MODEL_FORMAT:
        raise FormatError(
            "not a secured_bio model", where=str(meta_path), expected=f"format {MODEL_FORMAT!r}",
            got=repr(header.get("format")) if isinstance(header, dict) else type(header).__name__,
        )
    version = header.get("format_version")
    if version != MODEL_FORMAT_VERSION:
        raise FormatError(
            "unsupported model format version", where=str(meta_path),
            expected=f"{MODEL_FORMAT} version {MODEL_FORMAT_VERSION}", got=f"version {version!r}",
            fix="upgrade secured_bio to a release that reads this version (or re-save the"
            " model with this one)",
        )
    arch = header.get("architecture")
    if not isinstance(arch, dict) or "name" not in arch or "params" not in arch:
        raise FormatError("model header has no architecture record", where=str(meta_path),
                          expected='"architecture": {"name": ..., "params": {...}}')
    return header


def load_model(path: str | os.PathLike[str]) -> Any:
    """Load a model saved by :func:`save_model` (in evaluation mode).

    The weights are read with ``torch.load(weights_only=True)`` (no code is executed) after
    their SHA-256 is checked against the header.

    Parameters
    ----------
    path
        A folder written by :func:`save_model`.

    Returns
    -------
    torch.nn.Module
        The model, in evaluation mode.

    Raises
    ------
    InputFileNotFoundError
        If the folder, its header or its weights file is missing.
    FormatError
        If the header is invalid or of an unknown version, the weights do not match their
        checksum, or the weights do not fit the architecture.

    Examples
    --------
    >>> import tempfile
    >>> net = connectivity_classifier(3, seed=0)
    >>> d = save_model(net, tempfile.mkdtemp() + "/m")
    >>> x = np.ones((1, 3))
    >>> bool(np.array_equal(predict_proba(load_model(d), x), predict_proba(net, x)))
    True
    """
    import torch

    header = read_model_header(path)
    weights = Path(path) / str(header.get("weights", _WEIGHTS_FILE))
    if not weights.is_file():
        raise InputFileNotFoundError("model weights file is missing", where=str(weights),
                                     fix="copy the whole model folder")
    if header.get("weights_sha256") != _sha256(weights):
        raise FormatError(
            "model weights do not match the checksum in model.json", where=str(weights),
            fix="the folder was modified or mixed with another model; re-save it",
        )
    arch = header["architecture"]
    try:
        model = build_model(arch["name"], arch["params"])
    except ConfigError as e:
        raise FormatError("model header describes an architecture this version cannot build",
                          where=str(Path(path) / _META_FILE), got=e.what) from e
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError, ValueError) as e:
        raise FormatError("model weights do not fit the architecture in model.json",
                          where=str(weights), got=type(e).__name__) from e
    return model.eval()
