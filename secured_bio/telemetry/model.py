"""Deterioration models on vital-sign window features: training, evaluation, plots, files.

Two methods share one interface (:class:`TelemetryModel`):

- ``"hgb"``: scikit-learn's ``HistGradientBoostingClassifier`` (gradient-boosted trees with
  native missing-value handling; Ke et al., LightGBM, NeurIPS 2017, which published paediatric
  early-warning models use);
- ``"torch"``: a small multilayer perceptron (:func:`mlp`), the model the federation layer
  trains across hospitals (:mod:`secured_bio.telemetry.federated`).

:func:`evaluate` reports discrimination (AUROC, AUPRC), the positive predictive value and
sensitivity at a fixed *alert budget* (the share of rows allowed to alert, e.g. the top 5 % of
scores), the lead time (hours from the first alert to the onset among detected deteriorations)
and calibration (Brier score, reliability bins, expected calibration error; Naeini et al.,
AAAI 2015).  Validation is by time: :func:`secured_bio.telemetry.features.time_split` trains on
the patients admitted earlier at each site and tests on those admitted later.

A saved model is a folder: ``model.json`` (format ``secured_bio.telemetry_model`` version 1,
the method, the feature definition and the alert threshold) and the estimator
(``estimator.joblib`` for ``hgb``, a torch ``state_dict`` in ``model.pt`` for ``torch``).
``estimator.joblib`` is a pickle: load only models you trust.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from secured_bio._atomic import atomic_dir, atomic_path
from secured_bio.errors import (
    ConfigError,
    FormatError,
    InputError,
    InputFileNotFoundError,
    SchemaError,
    did_you_mean,
)
from secured_bio.telemetry.features import DEFAULT_WINDOWS, feature_names

if TYPE_CHECKING:
    import torch

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "METHODS",
    "TelemetryModel",
    "mlp",
    "train_model",
    "evaluate",
    "save_model",
    "load_model",
    "plot_roc_pr",
    "plot_calibration",
    "plot_timelines",
    "roc_pr_figure",
    "calibration_figure",
    "timelines_figure",
]

logger = logging.getLogger(__name__)

#: Format name and version written into ``model.json``.
FORMAT = "secured_bio.telemetry_model"
FORMAT_VERSION = 1
#: Training methods.
METHODS = ("hgb", "torch")

Method = Literal["hgb", "torch"]
_HEADER = "model.json"
_US_PER_HOUR = 3_600_000_000


def mlp(n_features: int, *, hidden: Sequence[int] = (32, 16)) -> torch.nn.Module:
    """Build the torch deterioration model: NaN -> 0, clamp to [-20, 20], then an MLP.

    Features are z-scores (0 = age norm), slopes, 0/1 flags and age, so replacing a missing
    value by 0 means "at the norm" (the ``*_missing`` flags tell the model it was missing) and
    no per-site standardisation is needed: federated sites share no statistics.  One logit out.

    Examples
    --------
    >>> import torch
    >>> m = mlp(3, hidden=(4,))
    >>> m(torch.tensor([[float("nan"), 1.0, 2.0]])).shape
    torch.Size([1, 1])
    """
    import torch

    class _Prep(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.clamp(torch.nan_to_num(x, nan=0.0), -20.0, 20.0)

    layers: list[torch.nn.Module] = [_Prep()]
    width = int(n_features)
    for h in hidden:
        layers += [torch.nn.Linear(width, int(h)), torch.nn.ReLU()]
        width = int(h)
    layers.append(torch.nn.Linear(width, 1))
    return torch.nn.Sequential(*layers)


@dataclass
class TelemetryModel:
    """A trained deterioration model and the definition of its features.

    Attributes
    ----------
    method
        ``"hgb"`` or ``"torch"``.
    estimator
        The fitted ``HistGradientBoostingClassifier`` or torch module.
    windows, carry_hours, horizon_hours
        How the features and labels were made (:mod:`secured_bio.telemetry.features`).
    threshold
        Alert threshold: the ``1 - alert_budget`` quantile of the training scores.
    alert_budget
        Share of rows allowed to alert.
    hidden
        MLP hidden widths (``torch`` only).
    extra
        JSON-ready notes saved in the header (e.g. the training seed).
    """

    method: Method
    estimator: Any
    windows: tuple[float, ...] = DEFAULT_WINDOWS
    carry_hours: float = 4.0
    horizon_hours: float = 6.0
    threshold: float = 0.5
    alert_budget: float = 0.05
    hidden: tuple[int, ...] = (32, 16)
    extra: dict[str, Any] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def feature_names(self) -> list[str]:
        """Feature columns, in the order the estimator expects."""
        return feature_names(self.windows)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Return P(deterioration within the horizon) for each row of ``x`` (n, features)."""
        x = np.asarray(x, dtype=np.float64)
        if self.method == "hgb":
            return np.asarray(self.estimator.predict_proba(x)[:, 1], dtype=np.float64)
        import torch

        # In float64: float32 matrix products round differently with the batch shape (BLAS
        # blocking), which would make a score depend on what it was batched with (1e-7).
        with torch.no_grad():
            logit = self._float64()(torch.tensor(x, dtype=torch.float64)).reshape(-1)
        return torch.sigmoid(logit).numpy()

    def _float64(self) -> Any:
        """Return a float64 copy of the torch estimator, remade when its parameters change."""
        import copy

        params = list(self.estimator.parameters())
        key = tuple((id(p), p._version) for p in params)
        cached = self._cache.get("float64")
        if cached is None or cached[0] != key:
            cached = (key, copy.deepcopy(self.estimator).double().eval())
            self._cache["float64"] = cached
        return cached[1]


def _xy(features: pd.DataFrame, names: list[str], where: str) -> tuple[np.ndarray, np.ndarray]:
    missing = [c for c in [*names, "label"] if c not in features.columns]
    if missing:
        raise SchemaError("feature table lacks columns", where=where,
                          expected="the columns of feature_names(windows) and 'label'",
                          got=f"{len(missing)} missing, e.g. {missing[0]!r}",
                          fix="compute it with secured_bio.telemetry.features.site_features "
                              "and the same windows")
    y = features["label"].to_numpy(dtype=np.float64)
    if len(y) == 0 or not np.isin(y, (0.0, 1.0)).all() or len(np.unique(y)) < 2:
        raise InputError("labels unusable for training or evaluation", where=where,
                         expected="labels in {0, 1} with both classes present",
                         got=f"{len(y)} rows, {int(np.nansum(y == 1))} positive",
                         fix="use more patients or a longer horizon")
    return features[names].to_numpy(dtype=np.float64), y


def train_model(
    features: pd.DataFrame,
    *,
    method: str = "hgb",
    seed: int = 0,
    windows: Sequence[float] = DEFAULT_WINDOWS,
    carry_hours: float = 4.0,
    horizon_hours: float = 6.0,
    alert_budget: float = 0.05,
    hidden: Sequence[int] = (32, 16),
    epochs: int = 40,
    lr: float = 1e-3,
    n_threads: int | None = None,
) -> TelemetryModel:
    """Train a deterioration model on labelled feature rows (the training split only).

    Parameters
    ----------
    features
        Rows from :func:`secured_bio.telemetry.features.site_features` (``label`` column).
    method
        ``"hgb"`` (gradient boosting) or ``"torch"`` (MLP, Adam on binary cross-entropy).
    seed
        Seed of the estimator (same seed, same model).
    windows, carry_hours, horizon_hours
        The feature definition used to compute ``features`` (stored with the model).
    alert_budget
        Share of rows allowed to alert; sets :attr:`TelemetryModel.threshold`.
    hidden, epochs, lr
        MLP widths, epochs and learning rate (``torch`` only).
    n_threads
        Most threads (OpenMP, BLAS, torch) used while training; None: the libraries' default.
        On a small or busy host 1 is often faster.

    Returns
    -------
    TelemetryModel

    Raises
    ------
    ConfigError
        If ``method`` is unknown or ``alert_budget`` is not in (0, 1).
    SchemaError
        If feature columns are missing.
    InputError
        If the labels do not hold both classes.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> names = feature_names((2,))
    >>> df = pd.DataFrame(rng.normal(size=(200, len(names))), columns=names)
    >>> df["label"] = (df["heart_rate_z"] > 1).astype(float)
    >>> m = train_model(df, windows=(2,), seed=0, n_threads=1)
    >>> m.method, bool(m.predict(df[names].to_numpy()[:1])[0] >= 0)
    ('hgb', True)
    """
    if method not in METHODS:
        hint = did_you_mean(str(method), METHODS)
        raise ConfigError("unknown training method", where="train_model(method=...)",
                          expected=" or ".join(METHODS), got=repr(method),
                          fix=f"did you mean {hint!r}?" if hint else "choose hgb or torch")
    if not 0.0 < alert_budget < 1.0:
        raise ConfigError("alert budget out of range", where="train_model(alert_budget=...)",
                          expected="a share in (0, 1), e.g. 0.05", got=str(alert_budget),
                          fix="pass the share of rows allowed to alert")
    wins = tuple(float(w) for w in windows)
    names = feature_names(wins)
    x, y = _xy(features, names, "train_model(features)")
    estimator: Any
    with _threads(n_threads):
        if method == "hgb":
            from sklearn.ensemble import HistGradientBoostingClassifier

            estimator = HistGradientBoostingClassifier(
                max_iter=100, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=20,
                l2_regularization=1.0, early_stopping=False, random_state=seed)
            estimator.fit(x, y)
        else:
            estimator = _train_torch(x, y, seed=seed, hidden=hidden, epochs=epochs, lr=lr)
    model = TelemetryModel(method=method, estimator=estimator,  # type: ignore[arg-type]
                           windows=wins, carry_hours=float(carry_hours),
                           horizon_hours=float(horizon_hours), alert_budget=float(alert_budget),
                           hidden=tuple(int(h) for h in hidden))
    model.threshold = float(np.quantile(model.predict(x), 1.0 - alert_budget))
    logger.info("trained %s on %d rows (%d positive)", method, len(y), int(y.sum()))
    return model


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Limit OpenMP/BLAS and torch intra-op threads to ``n`` inside the block (None: as is)."""
    if n is None:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        with threadpool_limits(int(n)):
            yield
    finally:
        torch.set_num_threads(before)


def _train_torch(x: np.ndarray, y: np.ndarray, *, seed: int, hidden: Sequence[int],
                 epochs: int, lr: float) -> torch.nn.Module:
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = mlp(x.shape[1], hidden=hidden)
    gen = torch.Generator().manual_seed(seed)
    xt = torch.tensor(x, dtype=torch.float32)  # a copy: pandas may hand out read-only views
    yt = torch.tensor(y, dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    for _ in range(int(epochs)):
        order = torch.randperm(len(yt), generator=gen)
        for start in range(0, len(yt), 64):
            idx = order[start:start + 64]
            opt.zero_grad()
            loss_fn(model(xt[idx]).reshape(-1), yt[idx]).backward()
            opt.step()
    model.eval()
    return model


def evaluate(
    features: pd.DataFrame,
    scores: np.ndarray,
    *,
    alert_budget: float = 0.05,
    n_bins: int = 10,
) -> dict[str, Any]:
    """Discrimination, alert-budget performance, lead time and calibration of scores.

    The alert threshold is the ``1 - alert_budget`` quantile of ``scores`` (rows scoring at or
    above it alert).  A deteriorating patient is *detected* when one of their rows within the
    label horizon before onset alerts; the lead time is the hours from the first such alert
    to the onset.  Calibration uses ``n_bins`` equal-width probability bins.

    Parameters
    ----------
    features
        Labelled rows (``patient_id``, ``label``, ``hours_to_onset``), e.g. the test split.
    scores
        Predicted probabilities, one per row.
    alert_budget
        Share of rows allowed to alert.
    n_bins
        Calibration bins.

    Returns
    -------
    dict
        ``auroc``, ``auprc``, ``threshold``, ``ppv``, ``sensitivity``, ``alerts``,
        ``lead_time_hours`` (median; None when nothing is detected), ``detected_patients``,
        ``deteriorating_patients``, ``brier``, ``ece``, ``calibration`` (bins: ``mean_score``,
        ``observed``, ``count``), ``n_rows``, ``n_positive``, ``prevalence``.

    Raises
    ------
    InputError
        If ``scores`` and ``features`` differ in length, scores are outside [0, 1], or the
        labels lack a class.
    ConfigError
        If ``alert_budget`` is not in (0, 1).

    Examples
    --------
    >>> f = pd.DataFrame({"patient_id": ["a", "a", "b", "b"], "label": [0.0, 1.0, 0.0, 0.0],
    ...                   "hours_to_onset": [7.0, 3.0, np.nan, np.nan]})
    >>> m = evaluate(f, np.array([0.1, 0.9, 0.2, 0.3]), alert_budget=0.25)
    >>> m["auroc"], m["ppv"], m["lead_time_hours"]
    (1.0, 1.0, 3.0)
    """
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    where = "evaluate"
    p = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(p) != len(features) or not np.all((p >= 0) & (p <= 1)):
        raise InputError("scores do not match the rows", where=where,
                         expected=f"{len(features)} probabilities in [0, 1]",
                         got=f"{len(p)} scores, {int((~((p >= 0) & (p <= 1))).sum())} outside",
                         fix="score the same rows with TelemetryModel.predict")
    if not 0.0 < alert_budget < 1.0:
        raise ConfigError("alert budget out of range", where=f"{where}(alert_budget=...)",
                          expected="a share in (0, 1)", got=str(alert_budget),
                          fix="pass e.g. 0.05")
    y = features["label"].to_numpy(dtype=np.float64)
    if len(np.unique(y)) < 2:
        raise InputError("labels lack a class", where=where,
                         expected="positive and negative rows",
                         got=f"{len(y)} rows, {int((y == 1).sum())} positive",
                         fix="evaluate on more patients")
    thr = float(np.quantile(p, 1.0 - alert_budget))
    alert = p >= thr
    tp = int((alert & (y == 1)).sum())
    lead: list[float] = []
    hto = features["hours_to_onset"].to_numpy(dtype=np.float64)
    pid = features["patient_id"].to_numpy()
    det_ids = np.unique(pid[np.isfinite(hto) & (y == 1)])
    for d in det_ids:
        hit = (pid == d) & (y == 1) & alert
        if hit.any():
            lead.append(float(hto[hit].max()))
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    b = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    bins = []
    ece = 0.0
    for k in range(n_bins):
        m = b == k
        if m.any():
            bins.append({"low": float(edges[k]), "high": float(edges[k + 1]),
                         "mean_score": float(p[m].mean()), "observed": float(y[m].mean()),
                         "count": int(m.sum())})
            ece += m.sum() / len(p) * abs(float(p[m].mean()) - float(y[m].mean()))
    return {
        "n_rows": len(y),
        "n_positive": int((y == 1).sum()),
        "prevalence": float(y.mean()),
        "auroc": float(roc_auc_score(y, p)),
        "auprc": float(average_precision_score(y, p)),
        "alert_budget": float(alert_budget),
        "threshold": thr,
        "alerts": int(alert.sum()),
        "ppv": tp / int(alert.sum()) if alert.any() else None,
        "sensitivity": tp / int((y == 1).sum()),
        "deteriorating_patients": len(det_ids),
        "detected_patients": len(lead),
        "lead_time_hours": float(np.median(lead)) if lead else None,
        "brier": float(brier_score_loss(y, p)),
        "ece": float(ece),
        "calibration": bins,
    }


def save_model(model: TelemetryModel, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` to the folder ``path`` (replaced only when complete).

    Examples
    --------
    >>> import tempfile
    >>> m = TelemetryModel("torch", mlp(len(feature_names()), hidden=(4,)), hidden=(4,))
    >>> d = save_model(m, Path(tempfile.mkdtemp()) / "m")
    >>> sorted(p.name for p in d.iterdir())
    ['model.json', 'model.pt']
    """
    final = Path(path)
    if final.exists() and not (final / _HEADER).is_file():
        raise ConfigError("refusing to replace a folder that is not a telemetry model",
                          where=str(final), expected=f"a new folder or one holding {_HEADER}",
                          fix="choose another --out")
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "method": model.method,
        "windows": list(model.windows), "carry_hours": model.carry_hours,
        "horizon_hours": model.horizon_hours, "threshold": model.threshold,
        "alert_budget": model.alert_budget, "hidden": list(model.hidden),
        "feature_names": model.feature_names,
        "extra": model.extra,
    }
    with atomic_dir(final) as tmp:
        if model.method == "hgb":
            import joblib
            import sklearn

            header["sklearn_version"] = sklearn.__version__
            joblib.dump(model.estimator, tmp / "estimator.joblib")
        else:
            import torch

            header["torch_version"] = torch.__version__
            torch.save(model.estimator.state_dict(), tmp / "model.pt")
        (tmp / _HEADER).write_text(json.dumps(header, indent=2) + "\n", encoding="utf-8")
    return final


def load_model(path: str | os.PathLike[str]) -> TelemetryModel:
    """Read a model folder written by :func:`save_model`.

    Raises
    ------
    InputFileNotFoundError
        If ``path/model.json`` does not exist.
    FormatError
        If the header is not JSON, names another format, or has an unknown version.

    Examples
    --------
    >>> import tempfile
    >>> m = TelemetryModel("torch", mlp(len(feature_names()), hidden=(4,)), hidden=(4,))
    >>> load_model(save_model(m, Path(tempfile.mkdtemp()) / "m")).hidden
    (4,)
    """
    d = Path(path)
    hp = d / _HEADER
    if not hp.is_file():
        raise InputFileNotFoundError("telemetry model not found", where=str(d),
                                     expected=f"a folder with {_HEADER}", got="no such file",
                                     fix="train one with `secured-bio telemetry train`")
    try:
        h = json.loads(hp.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FormatError("model header is not JSON", where=str(hp), expected="JSON",
                          fix="retrain the model") from e
    if not isinstance(h, dict) or h.get("format") != FORMAT:
        raise FormatError("not a telemetry model", where=str(hp), expected=f"format {FORMAT!r}",
                          got=repr(h.get("format")) if isinstance(h, dict) else "no object",
                          fix="pass a folder written by `secured-bio telemetry train`")
    if h.get("format_version") != FORMAT_VERSION:
        raise FormatError("unsupported telemetry model version", where=str(hp),
                          expected=f"version {FORMAT_VERSION}",
                          got=f"version {h.get('format_version')!r}",
                          fix="upgrade secured_bio to read newer models, or retrain")
    hidden = tuple(int(v) for v in h.get("hidden", ()))
    windows = tuple(float(w) for w in h["windows"])
    if h["method"] == "hgb":
        import joblib

        est = joblib.load(d / "estimator.joblib")
    else:
        import torch

        est = mlp(len(feature_names(windows)), hidden=hidden)
        est.load_state_dict(torch.load(d / "model.pt", weights_only=True))
        est.eval()
    return TelemetryModel(method=h["method"], estimator=est, windows=windows,
                          carry_hours=float(h["carry_hours"]),
                          horizon_hours=float(h["horizon_hours"]),
                          threshold=float(h["threshold"]), alert_budget=float(h["alert_budget"]),
                          hidden=hidden, extra=dict(h.get("extra", {})))


# ------------------------------------------------------------------------------- plots


def _figure(ncols: int = 1, nrows: int = 1, size: tuple[float, float] = (5.0, 4.0)) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    final = Path(path)
    with atomic_path(final) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return final


def _wilson(k: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (Wilson, JASA 1927)."""
    if n <= 0:
        return (0.0, 1.0)
    ph = k / n
    d = 1 + z * z / n
    c = (ph + z * z / (2 * n)) / d
    h = z * np.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / d
    return (max(0.0, float(c - h)), min(1.0, float(c + h)))


def roc_pr_figure(features: pd.DataFrame, scores: np.ndarray, *,
                  baseline: np.ndarray | None = None,
                  baseline_label: str = "PEWS") -> Any:
    """Build the ROC and precision-recall figure (see :func:`plot_roc_pr`).

    Examples
    --------
    >>> f = pd.DataFrame({"label": [0.0, 1.0, 0.0, 1.0]})
    >>> fig = roc_pr_figure(f, np.array([0.1, 0.8, 0.4, 0.3]), baseline=np.array([0, 3, 1, 2]))
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()][:2]
    ['model (AUROC 0.75, 4 rows)', 'PEWS (AUROC 1.00, 4 rows)']
    """
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    y = features["label"].to_numpy(dtype=float)
    p = np.asarray(scores, dtype=float)
    curves = [("model", y, p, "#1f4e79", "-")]
    if baseline is not None:
        b = np.asarray(baseline, dtype=float).reshape(-1)
        if b.shape != y.shape:
            raise InputError("baseline scores do not match the rows", where="roc_pr_figure",
                             expected=f"{len(y)} scores (NaN where unscored)",
                             got=f"{len(b)} scores", fix="score the same rows")
        ok = np.isfinite(b)
        if ok.any() and len(np.unique(y[ok])) == 2:
            curves.append((baseline_label, y[ok], b[ok], "#e69500", "--"))
    fig = _figure(2)
    ax1, ax2 = fig.subplots(1, 2)
    for name, yy, ss, color, ls in curves:
        fpr, tpr, _ = roc_curve(yy, ss)
        ax1.plot(fpr, tpr, color=color, ls=ls,
                 label=f"{name} (AUROC {roc_auc_score(yy, ss):.2f}, {len(yy)} rows)")
        prec, rec, _ = precision_recall_curve(yy, ss)
        ax2.plot(rec, prec, color=color, ls=ls,
                 label=f"{name} (AP {average_precision_score(yy, ss):.2f})")
    ax1.plot([0, 1], [0, 1], ls=":", c="grey", label="chance (AUROC 0.50)")
    ax1.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC",
            xlim=(0, 1), ylim=(0, 1.02))
    ax1.legend(loc="lower right", fontsize=8)
    ax2.axhline(float(y.mean()), ls=":", c="grey",
                label=f"chance (prevalence {float(y.mean()):.2f})")
    ax2.set(xlabel="recall", ylabel="precision", title="precision-recall",
            xlim=(0, 1), ylim=(0, 1.02))
    ax2.legend(loc="best", fontsize=8)
    return fig


def plot_roc_pr(features: pd.DataFrame, scores: np.ndarray,
                path: str | os.PathLike[str], *, baseline: np.ndarray | None = None,
                baseline_label: str = "PEWS") -> Path:
    """Write ROC and precision-recall curves side by side as a PNG.

    The legend gives each curve's AUROC (average precision on the right); ``baseline``
    (e.g. the Bedside PEWS of the same rows, NaN where it could not be scored) is drawn on
    the same axes, on the rows it scores.

    Examples
    --------
    >>> import tempfile
    >>> f = pd.DataFrame({"label": [0.0, 1.0, 0.0, 1.0]})
    >>> p = plot_roc_pr(f, np.array([0.1, 0.8, 0.4, 0.3]), Path(tempfile.mkdtemp()) / "r.png")
    >>> p.read_bytes()[:4]
    b'\\x89PNG'
    """
    return _save(roc_pr_figure(features, scores, baseline=baseline,
                               baseline_label=baseline_label), path)


def calibration_figure(features: pd.DataFrame, scores: np.ndarray, *,
                       n_bins: int = 10) -> Any:
    """Build the reliability diagram (see :func:`plot_calibration`).

    Examples
    --------
    >>> f = pd.DataFrame({"patient_id": list("aabb"), "label": [0.0, 1.0, 0.0, 1.0],
    ...                   "hours_to_onset": [2.0, 1.0, 3.0, 1.0]})
    >>> fig = calibration_figure(f, np.array([0.1, 0.8, 0.15, 0.9]), n_bins=2)
    >>> sorted(t.get_text() for t in fig.axes[0].texts), len(fig.legends[0].get_texts())
    (['n=2', 'n=2'], 3)
    """
    ev = evaluate(features, scores, n_bins=n_bins)
    fig = _figure()
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ls=":", c="grey", label="perfect calibration")
    bins = ev["calibration"]
    xs = np.array([b["mean_score"] for b in bins])
    ys = np.array([b["observed"] for b in bins])
    ns = np.array([b["count"] for b in bins])
    ci = np.array([_wilson(o * n, int(n)) for o, n in zip(ys, ns, strict=True)])
    ax.plot(xs, ys, c="#1f4e79", lw=0.8, alpha=0.6)
    yerr = np.clip([ys - ci[:, 0], ci[:, 1] - ys], 0.0, None)  # rounding: never negative
    ax.errorbar(xs, ys, yerr=yerr, fmt="none", ecolor="#1f4e79",
                elinewidth=1, capsize=3, label="95% CI (Wilson)")
    area = 12 + 250 * np.sqrt(ns / ns.max())
    ax.scatter(xs, ys, s=area, c="#1f4e79", edgecolors="white", zorder=3,
               label=f"bin ({len(bins)} of {n_bins} equal-width; area ~ rows)")
    for x, yv, n in zip(xs, ys, ns, strict=True):
        ax.annotate(f"n={n}", (x, yv), xytext=(6, -10), textcoords="offset points",
                    fontsize=7, color="#333333")
    ax.set(xlabel="mean predicted probability", ylabel="observed rate", xlim=(-0.04, 1.06),
           ylim=(-0.04, 1.06),
           title=f"calibration (ECE {ev['ece']:.3f}, Brier {ev['brier']:.3f}, "
                 f"{ev['n_rows']} rows)")
    fig.set_figheight(fig.get_figheight() + 0.5)
    fig.legend(loc="outside lower center", ncol=2, fontsize=7)
    return fig


def plot_calibration(features: pd.DataFrame, scores: np.ndarray,
                     path: str | os.PathLike[str], *, n_bins: int = 10) -> Path:
    """Write a reliability diagram (observed rate vs mean score per bin) as a PNG.

    Each bin's marker area grows with its number of rows, which is written next to it;
    error bars are 95 % Wilson intervals of the observed rate, so a bin of two rows shows
    how little it says.
    """
    return _save(calibration_figure(features, scores, n_bins=n_bins), path)


def timelines_figure(features: pd.DataFrame, scores: np.ndarray, *, threshold: float,
                     max_patients: int = 6) -> Any:
    """Build the patient score timelines (see :func:`plot_timelines`).

    Examples
    --------
    >>> f = pd.DataFrame({"patient_id": ["a", "a", "b"], "time_us": [0, 3_600_000_000, 0],
    ...                   "hours_to_onset": [2.0, 1.0, np.nan]})
    >>> fig = timelines_figure(f, np.array([0.2, 0.7, 0.1]), threshold=0.5)
    >>> len(fig.axes), [t.get_text() for t in fig.legends[0].get_texts()][-1]
    (2, 'event to predict')
    """
    from matplotlib.lines import Line2D

    p = np.asarray(scores, dtype=float)
    df = features[["patient_id", "time_us", "hours_to_onset"]].assign(score=p)
    det = df.groupby("patient_id", sort=False)["hours_to_onset"].apply(
        lambda s: bool(np.isfinite(s).any()))
    chosen = ([i for i in det.index if det[i]] + [i for i in det.index if not det[i]])
    chosen = chosen[:max_patients]
    fig = _figure(1, max(len(chosen), 1), size=(8.0, 1.8))
    if not chosen:
        ax = fig.subplots()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no patients to show", ha="center", va="center")
        return fig
    fig.set_figheight(1.8 * len(chosen) + 0.6)
    axes = np.atleast_1d(fig.subplots(len(chosen), 1, sharex=True))
    any_alert = any_onset = False
    for k, (ax, pid) in enumerate(zip(axes, chosen, strict=True)):
        g = df[df["patient_id"] == pid]
        t = (g["time_us"].to_numpy() - g["time_us"].min()) / _US_PER_HOUR
        ax.plot(t, g["score"], lw=1, c="#1f4e79")
        ax.axhline(threshold, c="grey", ls=":")
        a = g["score"].to_numpy() >= threshold
        if a.any():
            any_alert = True
            ax.plot(t[a], g["score"].to_numpy()[a], "rv", ms=4)
        else:
            ax.text(0.01, 0.9, f"no alert: score stays below {threshold:.2f}",
                    transform=ax.transAxes, va="top", fontsize=7, color="#555555")
        h = g["hours_to_onset"].to_numpy()
        if np.isfinite(h).any():
            any_onset = True
            ax.axvline(float(t[0] + h[0]), c="k", ls="--")
        state = "deteriorates" if det[pid] else "no deterioration"
        ax.set(ylim=(-0.04, 1.04), ylabel="score", title=f"patient {k + 1} ({state})")
        ax.title.set_fontsize(9)
    axes[-1].set_xlabel("hours since first observation")
    handles = [Line2D([], [], c="#1f4e79", lw=1, label="model score"),
               Line2D([], [], c="grey", ls=":", label=f"alert threshold ({threshold:.2f})")]
    if any_alert:
        handles.append(Line2D([], [], c="r", marker="v", ls="", ms=4,
                              label="alert (score at or above threshold)"))
    if any_onset:
        handles.append(Line2D([], [], c="k", ls="--", label="event to predict"))
    fig.legend(handles=handles, loc="outside upper center", ncol=len(handles), fontsize=7)
    return fig


def plot_timelines(features: pd.DataFrame, scores: np.ndarray, path: str | os.PathLike[str],
                   *, threshold: float, max_patients: int = 6) -> Path:
    """Write score timelines of a few patients with alerts and onsets marked, as a PNG.

    Deteriorating patients come first.  Patients are labelled by their rank ("patient 1"),
    never by ID.  A legend explains every mark: the score, the alert threshold, the alerts
    (red triangles) and the event to predict (dashed line, the onset plus any event delay).
    """
    return _save(timelines_figure(features, scores, threshold=threshold,
                                  max_patients=max_patients), path)
