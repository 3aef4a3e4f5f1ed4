"""Fairness-aware federated training (``fl run --fairness``) and its bootstrap summary.

Options (:data:`FAIRNESS`):

- ``none``: the strategy as configured (FedAvg/FedProx).
- ``qffl``: **q-FedAvg** (Li, Sanjabi, Beirami & Smith, "Fair Resource Allocation in
  Federated Learning", ICLR 2020): the server minimises ``sum_k p_k F_k^(q+1) / (q+1)``, so
  sites whose loss ``F_k`` is high weigh more (``q = 0`` is plain, unweighted averaging).
  Each site reports ``F_k``, the loss of the *incoming global model* on its training rows
  (one number, measured before local training); the server combines the local models with
  Flower's q-FedAvg update ``w <- w - sum_k Delta_k / sum_k h_k`` where
  ``Delta_k = F_k^q L (w - w_k)`` and ``h_k = q F_k^(q-1) ||L (w - w_k)||^2 + L F_k^q``
  (:func:`flwr.serverapp.strategy.qfedavg.compute_delta_and_h`).  Why not Flower's legacy
  ``flwr.server.strategy.QFedAvg``: our apps run on the legacy path (SecAgg+ exists only
  there), and that class weights every site by one *server-side* loss (its ``evaluate_fn``
  on server data, which we do not have; without it ``aggregate_fit`` fails), so every site
  gets the same weight and nothing is fair about it.  Flower's Message-API ``QFedAvg`` uses
  each site's own loss, as the paper does; we reuse its update formula on the legacy path.
  ``L`` (the Lipschitz estimate) defaults to ``1 / lr`` as in Flower.  Our local optimiser is
  Adam, not the paper's SGD, so ``L (w - w_k)`` is not a gradient and with ``L = 1 / lr`` the
  ``||L (w - w_k)||^2`` term can make the step tiny; a small ``L`` turns the update into the
  loss-weighted mean of the local models ``sum_k F_k^q w_k / sum_k F_k^q``.
- ``group_reweight``: each site reweights its local loss so that every subgroup (the joint
  cells of the attributes in ``SiteData.groups_train``, e.g. sex x age band) contributes
  equally: a row in cell ``g`` weighs ``n / (G n_g)`` (:func:`group_weights`, mean 1).  The
  weights are computed at the site from its own rows; nothing new leaves the site.

With SecAgg+ and DP (:func:`check_fairness` refuses the combinations that do not hold):

- ``group_reweight`` changes only local training, so it runs unchanged with SecAgg+ and with
  central (site-level) DP.  It is refused with local DP-SGD: a row's weight depends on the
  count of its cell, so adding or removing one record changes the weights of the others
  and DP-SGD's per-record sensitivity bound no longer holds.
- ``qffl`` needs each site's loss ``F_k`` and its own local model at the server (the
  update is a ratio of two loss-weighted sums over the sites).  Under SecAgg+ the server sees
  only the ``num_examples``-weighted sum of the models, so Flower's SecAgg+ workflow cannot
  compute it: refused.  (A site could send ``Delta_k`` and ``h_k`` itself inside the
  masked vector; not implemented.)  Under DP (central or local) the sites send no training
  loss, because it is not covered by epsilon (:func:`~.dp.privacy_scope`): refused.  Also
  refused with FedProx (q-FedAvg is an aggregation rule of its own).

Reveal set of ``qffl``: FedAvg's, plus ``F_k`` (one loss per site and round, like the training
loss FedAvg already sends).  ``group_reweight``: FedAvg's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from secured_bio.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from flwr.common import FitRes, Parameters
    from flwr.server.client_proxy import ClientProxy
    from flwr.server.strategy import Strategy

__all__ = ["FAIRNESS", "check_fairness", "group_weights", "group_cells", "qffl_strategy",
           "fairness_summary", "paired_difference", "QFFL_LOSS_KEY"]

#: Fairness options of ``fl run --fairness``.
FAIRNESS = ("none", "qffl", "group_reweight")
#: Fit-metric key under which a site reports the global model's loss on its training rows.
QFFL_LOSS_KEY = "qffl-loss"
_WHERE = "fairness option"


def check_fairness(name: str, *, strategy: str = "fedavg", secagg: bool = False,
                   central_dp: bool = False, local_dp: bool = False) -> str:
    """Return ``name`` if the option exists and combines with the other settings.

    Raises
    ------
    ConfigError
        Unknown option; ``qffl`` with SecAgg+, DP or FedProx; ``group_reweight`` with local
        DP-SGD (reasons in the module docstring).

    Examples
    --------
    >>> check_fairness("group_reweight", secagg=True, central_dp=True)
    'group_reweight'
    >>> check_fairness("qffl", secagg=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    secured_bio.errors.ConfigError: q-FedAvg does not combine with SecAgg+...
    """
    if name not in FAIRNESS:
        raise ConfigError("unknown fairness option", where=_WHERE,
                          expected=" or ".join(FAIRNESS), got=repr(name),
                          fix=did_you_mean(str(name), FAIRNESS) or "choose none, qffl or "
                          "group_reweight")
    if name == "qffl":
        if secagg:
            raise ConfigError(
                "q-FedAvg does not combine with SecAgg+: its update weighs each site's own "
                "model by that site's loss, and under SecAgg+ the server sees only the sum "
                "of the models", where=_WHERE, got="fairness='qffl' with secagg",
                fix="use fairness='group_reweight' (works with SecAgg+), or drop secagg")
        if central_dp or local_dp:
            raise ConfigError(
                "q-FedAvg does not combine with DP: it needs each site's training loss, "
                "which epsilon does not cover, so DP sites do not send it", where=_WHERE,
                got="fairness='qffl' with " + ("central" if central_dp else "local") + " DP",
                fix="use fairness='group_reweight' (works with central DP), or drop DP")
        if strategy != "fedavg":
            raise ConfigError("q-FedAvg replaces the aggregation: it needs strategy fedavg",
                              where=_WHERE, got=f"strategy={strategy!r}",
                              fix="use strategy='fedavg' with fairness='qffl'")
    if name == "group_reweight" and local_dp:
        raise ConfigError(
            "group reweighting does not combine with local DP-SGD: a row's weight depends on "
            "the size of its group, so one record changes the others' weights and the "
            "per-record sensitivity bound fails", where=_WHERE,
            got="fairness='group_reweight' with local DP-SGD",
            fix="use central DP (dp_epsilon) with group_reweight, or fairness='none'")
    return name


def group_cells(groups: Mapping[str, Sequence[Any] | np.ndarray], n: int) -> np.ndarray:
    """Return each row's joint cell label (``"F|0-<1"``...) over the attributes, in name order.

    Examples
    --------
    >>> group_cells({"sex": ["F", "M"], "age_band": ["0-17", "0-17"]}, 2).tolist()
    ['0-17|F', '0-17|M']
    """
    keys = sorted(k for k in groups if k != "site")
    if not keys:
        return np.repeat("all", n)
    cols = [np.asarray(groups[k]).astype(str) for k in keys]
    for k, c in zip(keys, cols, strict=True):
        if c.shape != (n,):
            raise ConfigError("a group column has the wrong length", where=_WHERE,
                              expected=f"{n} values", got=f"{k}: {c.shape}")
    return np.array(["|".join(v) for v in zip(*cols, strict=True)])


def group_weights(groups: Mapping[str, Sequence[Any] | np.ndarray], n: int) -> np.ndarray:
    """Per-row loss weights that make every joint group cell contribute equally (mean 1).

    A row in cell ``g`` weighs ``n / (G * n_g)`` (``G`` cells present, ``n_g`` rows in ``g``),
    so each cell's weights sum to ``n / G`` and all weights sum to ``n``.  Computed from the
    site's own rows only.  No attribute: all ones.

    Examples
    --------
    >>> group_weights({"sex": ["F", "M", "M", "M"]}, 4).tolist()
    [2.0, 0.6666666666666666, 0.6666666666666666, 0.6666666666666666]
    """
    if n == 0:
        return np.zeros(0)
    cells = group_cells(groups, n)
    _, inverse, counts = np.unique(cells, return_inverse=True, return_counts=True)
    return n / (len(counts) * counts[inverse].astype(float))


# ---------------------------------------------------------------------------- q-FedAvg
def qffl_strategy(q: float, lipschitz: float, **fedavg_kwargs: Any) -> Strategy:
    """Flower FedAvg (legacy path) whose aggregation is q-FedAvg with per-site losses.

    Each fit reply must carry :data:`QFFL_LOSS_KEY` (the site's loss of the incoming global
    model); the update is Flower's ``compute_delta_and_h`` (see the module docstring).
    """
    from secured_bio.privacy.federated.apps import ensure_flwr

    ensure_flwr()
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server.strategy import FedAvg
    from flwr.serverapp.strategy.qfedavg import compute_delta_and_h

    if not (q >= 0 and np.isfinite(q)) or not (lipschitz > 0 and np.isfinite(lipschitz)):
        raise ConfigError("q-FedAvg needs q >= 0 and a positive Lipschitz estimate",
                          where=_WHERE, got=f"q={q!r}, L={lipschitz!r}")

    class QFFLFedAvg(FedAvg):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(**fedavg_kwargs)
            self.current: list[np.ndarray] | None = None

        def configure_fit(self, server_round: int, parameters: Parameters,
                          client_manager: Any) -> list[tuple[ClientProxy, Any]]:
            self.current = [np.array(a, copy=True) for a in parameters_to_ndarrays(parameters)]
            return super().configure_fit(server_round, parameters,  # type: ignore[no-any-return]
                                         client_manager)

        def aggregate_fit(self, server_round: int, results: list[tuple[ClientProxy, FitRes]],
                          failures: list[Any]) -> tuple[Parameters | None, dict[str, Any]]:
            if not results or self.current is None:
                return None, {}
            sum_delta: list[np.ndarray] | None = None
            sum_h = 0.0
            for _, fr in results:
                if QFFL_LOSS_KEY not in fr.metrics:
                    raise ConfigError("a site sent no loss for q-FedAvg", where=_WHERE,
                                      expected=f"fit metric {QFFL_LOSS_KEY!r}",
                                      got=", ".join(sorted(map(str, fr.metrics))))
                local = [np.asarray(a, dtype=np.float64)
                         for a in parameters_to_ndarrays(fr.parameters)]
                delta, h = compute_delta_and_h(
                    [np.asarray(g, dtype=np.float64) for g in self.current], local,
                    float(q), float(lipschitz), float(fr.metrics[QFFL_LOSS_KEY]))
                sum_delta = delta if sum_delta is None else [
                    a + b for a, b in zip(sum_delta, delta, strict=True)]
                sum_h += float(h)
            assert sum_delta is not None
            new = [(g - d / sum_h).astype(g.dtype)
                   for g, d in zip(self.current, sum_delta, strict=True)]
            metrics: dict[str, Any] = {}
            if self.fit_metrics_aggregation_fn:
                metrics = self.fit_metrics_aggregation_fn(
                    [(fr.num_examples, fr.metrics) for _, fr in results])
            return ndarrays_to_parameters(new), metrics

    return QFFLFedAvg()


# ------------------------------------------------------------------ bootstrap summary
def _auroc(y: np.ndarray, s: np.ndarray) -> float:
    from scipy.stats import rankdata

    pos = y == 1
    n1 = int(pos.sum())
    n0 = int(y.size - n1)
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _point(y: np.ndarray, s: np.ndarray, site: np.ndarray,
           attrs: dict[str, np.ndarray], threshold: float, min_group: int) -> dict[str, float]:
    pred = s >= threshold
    aurocs = [_auroc(y[site == v], s[site == v]) for v in np.unique(site)]
    group_auc: list[float] = []
    eo = dp = np.nan
    for col in attrs.values():
        sel, tpr, fpr = [], [], []
        for v in np.unique(col):
            m = col == v
            if m.sum() < min_group:
                continue
            group_auc.append(_auroc(y[m], s[m]))
            sel.append(pred[m].mean())
            pos, neg = m & (y == 1), m & (y == 0)
            tpr.append(pred[pos].mean() if pos.any() else np.nan)
            fpr.append(pred[neg].mean() if neg.any() else np.nan)
        if len(sel) >= 2:
            dp = np.nanmax([dp, max(sel) - min(sel)])
        t, f = np.array(tpr), np.array(fpr)
        t, f = t[np.isfinite(t)], f[np.isfinite(f)]
        if len(t) >= 2 and len(f) >= 2:
            eo = np.nanmax([eo, max(t.max() - t.min(), f.max() - f.min())])
    finite = [a for a in group_auc if np.isfinite(a)]
    site_finite = [a for a in aurocs if np.isfinite(a)]
    mean = _auroc(y, s)
    worst = min(finite) if finite else float("nan")
    return {"mean_auroc": mean,
            "worst_site_auroc": min(site_finite) if site_finite else float("nan"),
            "worst_group_auroc": worst, "worst_group_gap": mean - worst,
            "equalized_odds_gap": float(eo), "demographic_parity_gap": float(dp)}


def fairness_summary(y_true: np.ndarray, y_score: np.ndarray, *, site: np.ndarray,
                     groups: Mapping[str, np.ndarray], n_boot: int = 300, seed: int = 0,
                     threshold: float = 0.5, min_group_size: int = 5,
                     level: float = 0.95) -> dict[str, Any]:
    """Mean / worst-site / worst-group AUROC and the two gaps, each with a bootstrap CI.

    ``mean_auroc`` is the AUROC on all held-out rows; ``worst_site_auroc`` the lowest AUROC
    of a site's rows; ``worst_group_auroc`` the lowest AUROC of a subgroup (each value of
    each attribute in ``groups``, ``site`` excluded; groups under ``min_group_size`` rows are
    left out); ``worst_group_gap`` = ``mean_auroc - worst_group_auroc``;
    ``equalized_odds_gap`` (max of TPR and FPR spreads) and
    ``demographic_parity_gap`` (selection-rate spread) at ``threshold``, the largest over
    the attributes.  Each value comes with a percentile CI over ``n_boot`` resamples of the
    held-out rows (numpy ``default_rng(seed)``: a measurement, not a privacy mechanism);
    a resample in which a quantity is undefined is left out of its CI.  A minimum over
    groups is biased low under the bootstrap, so a percentile interval can miss its own point
    estimate; the interval is then widened to contain it (``lo <= value <= hi`` always).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 200); s = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1)
    >>> out = fairness_summary(y, s, site=np.repeat(["a", "b"], 100),
    ...                        groups={"sex": np.tile(["F", "M"], 100)}, n_boot=50)
    >>> m = out["mean_auroc"]; m["lo"] <= m["value"] <= m["hi"]
    True
    """
    y = np.asarray(y_true).astype(int).reshape(-1)
    s = np.asarray(y_score, dtype=float).reshape(-1)
    site = np.asarray(site).astype(str)
    attrs = {k: np.asarray(v).astype(str) for k, v in groups.items() if k != "site"}
    point = _point(y, s, site, attrs, threshold, min_group_size)
    rng = np.random.default_rng(seed)
    boots: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(int(n_boot)):
        idx = rng.integers(0, y.size, y.size)
        b = _point(y[idx], s[idx], site[idx], {k: v[idx] for k, v in attrs.items()},
                   threshold, min_group_size)
        for k, v in b.items():
            if np.isfinite(v):
                boots[k].append(v)
    alpha = (1 - level) / 2
    out: dict[str, Any] = {}
    for k, v in point.items():
        vals = np.array(boots[k])
        ok = np.isfinite(v) and vals.size >= 10
        out[k] = {"value": float(v) if np.isfinite(v) else None,
                  "lo": float(min(np.quantile(vals, alpha), v)) if ok else None,
                  "hi": float(max(np.quantile(vals, 1 - alpha), v)) if ok else None}
    out.update(n=int(y.size), n_boot=int(n_boot), level=float(level),
               threshold=float(threshold), min_group_size=int(min_group_size),
               attributes=sorted(attrs), ci="percentile bootstrap over held-out rows")
    return out


def paired_difference(y_true: np.ndarray, score_base: np.ndarray, score_new: np.ndarray, *,
                      site: np.ndarray, groups: Mapping[str, np.ndarray], n_boot: int = 300,
                      seed: int = 0, threshold: float = 0.5, min_group_size: int = 5,
                      level: float = 0.95) -> dict[str, Any]:
    """Each summary quantity of ``score_new`` minus that of ``score_base``, with a paired CI.

    Both models are scored on the same held-out rows, so each bootstrap resample draws the
    rows once and evaluates both: the CI of the difference is much narrower than the two
    separate CIs suggest (their errors are correlated).  Keys as in
    :func:`fairness_summary`; each ``{"value", "lo", "hi"}`` (percentile, widened to contain
    the point estimate).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> y = rng.integers(0, 2, 120); a = rng.random(120); b = np.clip(a + 0.3 * y, 0, 1)
    >>> d = paired_difference(y, a, b, site=np.repeat(["s1", "s2"], 60),
    ...                       groups={"sex": np.tile(["F", "M"], 60)}, n_boot=50)
    >>> d["mean_auroc"]["value"] > 0 and d["mean_auroc"]["lo"] > 0
    True
    """
    y = np.asarray(y_true).astype(int).reshape(-1)
    sa = np.asarray(score_base, dtype=float).reshape(-1)
    sb = np.asarray(score_new, dtype=float).reshape(-1)
    site = np.asarray(site).astype(str)
    attrs = {k: np.asarray(v).astype(str) for k, v in groups.items() if k != "site"}

    def diff(idx: np.ndarray | slice) -> dict[str, float]:
        sub = {k: v[idx] for k, v in attrs.items()}
        pa = _point(y[idx], sa[idx], site[idx], sub, threshold, min_group_size)
        pb = _point(y[idx], sb[idx], site[idx], sub, threshold, min_group_size)
        return {k: pb[k] - pa[k] for k in pa}

    point = diff(slice(None))
    rng = np.random.default_rng(seed)
    boots: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(int(n_boot)):
        for k, v in diff(rng.integers(0, y.size, y.size)).items():
            if np.isfinite(v):
                boots[k].append(v)
    alpha = (1 - level) / 2
    out: dict[str, Any] = {}
    for k, v in point.items():
        vals = np.array(boots[k])
        ok = np.isfinite(v) and vals.size >= 10
        out[k] = {"value": float(v) if np.isfinite(v) else None,
                  "lo": float(min(np.quantile(vals, alpha), v)) if ok else None,
                  "hi": float(max(np.quantile(vals, 1 - alpha), v)) if ok else None}
    return out
