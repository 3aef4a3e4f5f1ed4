"""Membership-inference audit of federated models: what differential privacy buys.

A model leaks its training data when an attacker can tell, better than chance, whether a
given record was used to train it.  The audit runs the loss-threshold attack (Yeom,
Giacomelli, Fredrikson & Jha 2018, "Privacy risk in machine learning", CSF): members (training
rows) tend to have a lower loss than non-members (held-out rows of the same sites).  The
attack's AUC over all thresholds, its interval (Hanley & McNeil 1982), the membership
advantage and the TPR at low FPR (Carlini et al. 2022) come from
:func:`secured_bio.privacy.assess.membership.membership_inference`.

Non-members must come from the members' population, or the attack measures the difference
between the populations instead of leakage (an AUC below 0.5 with an interval excluding it is
the sign).  A site's audit rows (``SiteData.x_audit``: e.g. a random patient-level split of
the training period, held out of training) are the non-members when the task keeps them;
otherwise its test rows are, and ``nonmembers`` in the result says which.

Members and non-members are balanced per site: each site contributes the same number of
training and non-member rows (the smaller of the two, drawn at random with ``seed``), so an
AUC of 0.5 means "no better than a coin" whatever the split sizes.

Reading the numbers.  An AUC near 0.5 for the *non-DP* model does not mean that DP is
useless: a small, well-regularised model on little data (e.g. logistic regression on a few
features) may not overfit enough for this attack to see anything, and the audit then reports
that honestly.  The bound DP gives holds against *every* attack (membership advantage at most
``exp(epsilon) - 1 + delta``-related bounds, Yeom et al. 2018, Humphries et al. 2023), this
audit measures only one.  The difference shows on models that memorise (wide networks, many
epochs, few rows): the non-DP AUC rises clearly above 0.5 while the DP-SGD model's stays near
it (see the tests).

Reveal set: the audit needs the training rows and a held-out set together, so it runs where
both are (a site auditing its own rows, or a demo on simulated data); only the aggregate
figures leave it, never a score or a row.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from secured_bio.errors import ConfigError, InputError
from secured_bio.privacy.assess.membership import membership_inference
from secured_bio.privacy.federated.task import FederatedTask, SiteData

if TYPE_CHECKING:
    import torch

__all__ = ["membership_scores", "membership_audit", "dp_vs_nodp_audit", "pool_sites",
           "plot_privacy_utility"]

_WHERE = "membership audit"


def _sites(sites_data: SiteData | Sequence[SiteData]) -> list[SiteData]:
    sites = [sites_data] if isinstance(sites_data, SiteData) else list(sites_data)
    if not sites or not all(isinstance(s, SiteData) for s in sites):
        raise InputError("no site data to audit", where=_WHERE,
                         expected="one or more SiteData", got=f"{len(sites)} items",
                         fix="pass task.load_site(...) of each site")
    return sites


def _record_loss(task: FederatedTask, model: torch.nn.Module, x: np.ndarray,
                 y: np.ndarray) -> np.ndarray:
    """Binary log-loss of each record under the task's own prediction (clipped like sklearn)."""
    p = np.clip(np.asarray(task.predict(model, x), dtype=float).reshape(-1), 1e-7, 1 - 1e-7)
    yy = np.asarray(y, dtype=float).reshape(-1)
    return np.asarray(-(yy * np.log(p) + (1 - yy) * np.log1p(-p)))


def _unit_loss(loss: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Mean loss per unit (sorted by unit ID)."""
    _, inv = np.unique(ids, return_inverse=True)
    return np.bincount(inv, weights=loss) / np.bincount(inv)


def _nonmembers(s: SiteData) -> tuple[np.ndarray, np.ndarray, str]:
    if s.x_audit is not None and s.y_audit is not None:
        return np.asarray(s.x_audit), np.asarray(s.y_audit), "audit"
    return np.asarray(s.x_test), np.asarray(s.y_test), "test"


def membership_scores(
    task: FederatedTask,
    model: torch.nn.Module,
    sites_data: SiteData | Sequence[SiteData],
    *,
    seed: int = 0,
    max_per_site: int | None = None,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Per-record losses of balanced members (training rows) and non-members.

    Non-members are the site's audit rows (``SiteData.x_audit``) when it has them, else
    its test rows.  With audit rows and unit IDs (``ids_train``, ``ids_audit``: e.g.
    patients), each member and non-member is a unit scored by its mean loss: a patient, not a
    window, is in the training data, and a patient's windows are not independent, so a
    record-level interval would be too narrow.

    Parameters
    ----------
    task
        The federated task (its :meth:`~FederatedTask.predict` gives P(y = 1)).
    model
        The trained model.
    sites_data
        One site's data or a list of sites.
    seed
        Seed of the balanced draw.
    max_per_site
        At most this many members (and as many non-members) per site.

    Returns
    -------
    tuple
        ``(member_losses, nonmember_losses, sites)``; ``sites`` lists each site's name,
        counts, ``nonmembers`` (``"audit"`` or ``"test"`` rows) and ``unit``
        (``"unit"``: one score per patient, or ``"record"``).

    Raises
    ------
    InputError
        If no site is given, or no site has both training and test rows.
    ConfigError
        If ``max_per_site`` is below 1.

    Examples
    --------
    >>> from secured_bio.privacy.federated import SiteRef
    >>> from secured_bio.testing import LinearToyTask
    >>> task = LinearToyTask(n_features=3, n_per_site=40, seed=1)
    >>> data = task.load_site(SiteRef(0, 1))
    >>> inn, out, sites = membership_scores(task, task.build_model(), data)
    >>> inn.shape, out.shape, sites[0]["n_members"]
    ((10,), (10,), 10)
    """
    sites = _sites(sites_data)
    if max_per_site is not None and (isinstance(max_per_site, bool) or int(max_per_site) < 1):
        raise ConfigError("max_per_site must be at least 1", where=_WHERE,
                          expected=">= 1 or None", got=f"max_per_site={max_per_site!r}")
    rng = np.random.default_rng(int(seed))
    ins: list[np.ndarray] = []
    outs: list[np.ndarray] = []
    info: list[dict[str, Any]] = []
    for s in sites:
        x_out, y_out, kind = _nonmembers(s)
        l_in: np.ndarray | None
        l_out: np.ndarray | None
        if kind == "audit" and s.ids_train is not None and s.ids_audit is not None:
            # One score per unit (patient): its mean loss over its rows.
            l_in = _unit_loss(_record_loss(task, model, np.asarray(s.x_train),
                                           np.asarray(s.y_train)), np.asarray(s.ids_train))
            l_out = _unit_loss(_record_loss(task, model, x_out, y_out), np.asarray(s.ids_audit))
            unit = "unit"
        else:
            l_in = l_out = None
            unit = "record"
        n_in, n_out = ((len(s.y_train), len(y_out)) if l_in is None or l_out is None
                       else (len(l_in), len(l_out)))
        m = min(n_in, n_out)
        if max_per_site is not None:
            m = min(m, int(max_per_site))
        info.append({"site": s.site, "n_members": m, "n_nonmembers": m, "nonmembers": kind,
                     "unit": unit})
        if m == 0:
            continue
        i_in = np.sort(rng.choice(n_in, size=m, replace=False))
        i_out = np.sort(rng.choice(n_out, size=m, replace=False))
        if l_in is not None and l_out is not None:
            ins.append(l_in[i_in])
            outs.append(l_out[i_out])
            continue
        ins.append(_record_loss(task, model, np.asarray(s.x_train)[i_in],
                                np.asarray(s.y_train)[i_in]))
        outs.append(_record_loss(task, model, x_out[i_out], y_out[i_out]))
    if not ins:
        raise InputError("no site has both training and non-member rows", where=_WHERE,
                         expected="a site with >= 1 training and >= 1 audit or test row",
                         got=f"{len(sites)} sites", fix="audit sites with a held-out split")
    return np.concatenate(ins), np.concatenate(outs), info


def membership_audit(
    task: FederatedTask,
    model: torch.nn.Module,
    sites_data: SiteData | Sequence[SiteData],
    *,
    seed: int = 0,
    max_per_site: int | None = None,
    fpr_levels: Sequence[float] = (0.01, 0.1),
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Loss-threshold membership inference (Yeom et al. 2018) against a trained model.

    Parameters
    ----------
    task, model, sites_data, seed, max_per_site
        As in :func:`membership_scores`.
    fpr_levels, confidence
        As in :func:`~secured_bio.privacy.assess.membership.membership_inference`.

    Returns
    -------
    dict
        ``attack``, the figures of ``membership_inference`` (``auc``, ``auc_ci``,
        ``advantage``, ``tpr_at_fpr``...), Yeom's fixed threshold (the members' mean loss)
        with ``yeom_tpr``, ``yeom_fpr``, ``yeom_advantage``, the mean loss of members and
        non-members, ``nonmembers`` (``"audit"`` rows of the training population, ``"test"``
        rows, or ``"mixed"``), ``unit`` (``"unit"`` or ``"record"``), ``roc`` (``fpr`` and
        ``tpr`` of the attack on 101 FPR steps, for plots) and ``per_site`` (name, counts,
        and the site's AUC when it has rows).

    Raises
    ------
    InputError
        As :func:`membership_scores`.
    ConfigError
        As :func:`membership_scores`, or an FPR level outside (0, 1).

    Examples
    --------
    >>> from secured_bio.privacy.federated import SiteRef
    >>> from secured_bio.testing import LinearToyTask
    >>> task = LinearToyTask(n_features=3, n_per_site=40, seed=1)
    >>> sites = [task.load_site(SiteRef(i, 2)) for i in range(2)]
    >>> r = membership_audit(task, task.build_model(), sites)  # an untrained model
    >>> r["n_members"], r["n_nonmembers"], 0.0 <= r["auc"] <= 1.0
    (20, 20, True)
    """
    loss_in, loss_out, info = membership_scores(task, model, sites_data, seed=seed,
                                                max_per_site=max_per_site)
    out = membership_inference(loss_in, loss_out, higher_is_member=False,
                               fpr_levels=fpr_levels, confidence=confidence)
    tau = float(loss_in.mean())
    tpr, fpr = float((loss_in <= tau).mean()), float((loss_out <= tau).mean())
    start = 0
    for site in info:
        m = int(site["n_members"])
        site["auc"] = (membership_inference(loss_in[start:start + m],
                                            loss_out[start:start + m],
                                            higher_is_member=False)["auc"] if m else None)
        start += m
    kinds = {site["nonmembers"] for site in info if site["n_members"]}
    units = {site["unit"] for site in info if site["n_members"]}
    return {"attack": "loss_threshold", **out, "threshold": tau, "yeom_tpr": tpr,
            "yeom_fpr": fpr, "yeom_advantage": tpr - fpr,
            "member_loss_mean": tau, "nonmember_loss_mean": float(loss_out.mean()),
            "nonmembers": kinds.pop() if len(kinds) == 1 else "mixed",
            "unit": units.pop() if len(units) == 1 else "mixed",
            "roc": _roc_grid(loss_in, loss_out), "per_site": info}


def _roc_grid(loss_in: np.ndarray, loss_out: np.ndarray, steps: int = 101
              ) -> dict[str, list[float]]:
    """Return the attack's ROC (lower loss = member): the best TPR at each of ``steps`` FPRs."""
    from secured_bio.privacy.assess.membership import _roc

    fpr, tpr = _roc(-loss_in, -loss_out)
    grid = np.linspace(0.0, 1.0, steps)
    best = [float(tpr[fpr <= g + 1e-12].max()) for g in grid]
    return {"fpr": [round(float(g), 4) for g in grid], "tpr": [round(t, 4) for t in best]}


def plot_privacy_utility(
    audits: Sequence[dict[str, Any]], path: str | os.PathLike[str], *,
    utility_name: str = "AUROC", caption: str | None = None,
) -> Path:
    """One figure: the membership attack's ROC per model, and each model's utility beside it.

    Parameters
    ----------
    audits
        One dict per model: ``label`` (legend text, e.g. ``"DP-SGD, epsilon 1.0"``), ``mia``
        (a :func:`membership_audit` result, with ``roc``, ``auc`` and ``auc_ci``) and
        ``utility`` (the model's figure on its test rows, or None).
    path
        PNG to write (atomically).
    utility_name
        Name of the utility figure (the bar panel's axis).
    caption
        Text under the panels (what members, non-members and test rows are).

    Returns
    -------
    pathlib.Path
        The PNG written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> roc = {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.6, 1.0]}
    >>> a = [{"label": "no DP", "mia": {"roc": roc, "auc": 0.55, "auc_ci": [0.5, 0.6]},
    ...       "utility": 0.9}]
    >>> plot_privacy_utility(a, pathlib.Path(tempfile.mkdtemp()) / "p.png").stat().st_size > 0
    True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from secured_bio._atomic import atomic_write

    fig, (ax_roc, ax_u) = plt.subplots(1, 2, figsize=(10, 4.6),
                                       gridspec_kw={"width_ratios": [1.25, 1]})
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    ax_roc.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="guessing (AUC 0.5)")
    for i, a in enumerate(audits):
        mia, color = a["mia"], colors[i % len(colors)]
        lo, hi = mia["auc_ci"]
        ax_roc.plot(mia["roc"]["fpr"], mia["roc"]["tpr"], color=color, lw=2,
                    label=f"{a['label']}: AUC {mia['auc']:.3f} [{lo:.3f}, {hi:.3f}]")
    ax_roc.set(xlim=(0, 1), ylim=(0, 1), xlabel="false-positive rate (non-members flagged)",
               ylabel="true-positive rate (members found)",
               title="Membership attack (loss threshold)")
    ax_roc.legend(loc="lower right", fontsize=8)
    labels = [str(a["label"]) for a in audits]
    values = [float("nan") if a.get("utility") is None else float(a["utility"])
              for a in audits]
    bars = ax_u.bar(range(len(audits)), [0 if math.isnan(v) else v for v in values],
                    color=[colors[i % len(colors)] for i in range(len(audits))])
    for bar, v in zip(bars, values, strict=True):
        ax_u.annotate("n/a" if math.isnan(v) else f"{v:.3f}",
                      (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                      ha="center", va="bottom", fontsize=9)
    ax_u.axhline(0.5, ls="--", color="grey", lw=1)
    ax_u.set_xticks(range(len(audits)), labels, fontsize=8)
    ax_u.set(ylim=(0, 1.05), ylabel=utility_name, title=f"Utility: {utility_name} on test rows")
    if caption:
        fig.text(0.01, 0.01, caption, fontsize=8, wrap=True, va="bottom")
        fig.tight_layout(rect=(0, 0.12, 1, 1))
    else:
        fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out, mode="wb") as fh:
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)
    return out


def pool_sites(sites_data: SiteData | Sequence[SiteData], name: str = "pooled") -> SiteData:
    """Concatenate the sites' training rows and their test rows into one SiteData.

    Raises
    ------
    InputError
        If no site is given.

    Examples
    --------
    >>> from secured_bio.privacy.federated import SiteRef
    >>> from secured_bio.testing import LinearToyTask
    >>> task = LinearToyTask(n_features=3, n_per_site=40, seed=1)
    >>> pool_sites([task.load_site(SiteRef(i, 2)) for i in range(2)]).x_train.shape
    (60, 3)
    """
    sites = _sites(sites_data)
    return SiteData(site=name,
                    x_train=np.concatenate([np.asarray(s.x_train) for s in sites]),
                    y_train=np.concatenate([np.asarray(s.y_train) for s in sites]),
                    x_test=np.concatenate([np.asarray(s.x_test) for s in sites]),
                    y_test=np.concatenate([np.asarray(s.y_test) for s in sites]))


def _test_auroc(task: FederatedTask, model: torch.nn.Module, data: SiteData) -> float | None:
    from sklearn.metrics import roc_auc_score

    y = np.asarray(data.y_test).reshape(-1)
    if len(np.unique(y)) < 2:
        return None
    return float(roc_auc_score(y, task.predict(model, data.x_test)))


def dp_vs_nodp_audit(
    task: FederatedTask,
    sites_data: SiteData | Sequence[SiteData],
    *,
    epsilon: float,
    delta: float = 1e-5,
    epochs: int = 1,
    lr: float = 0.01,
    max_grad_norm: float = 1.0,
    batch_size: int | None = None,
    seed: int = 0,
    dp_model: torch.nn.Module | None = None,
    nodp_model: torch.nn.Module | None = None,
    max_per_site: int | None = None,
) -> dict[str, Any]:
    """Audit a DP-SGD model and a non-DP model of the same data with the same attack.

    Models not given are trained here on the sites' pooled training rows (same seeded
    initial weights, same epochs and learning rate): the non-DP one with
    :meth:`FederatedTask.train`, the DP one with :meth:`FederatedTask.train_private` at
    ``(epsilon, delta)``.  To audit federated models instead, pass
    ``FederatedResult.build_model(task)`` of a run without and one with
    ``local_dp_epsilon``, and that run's epsilon.  Both audits use the same members and
    non-members (same ``seed``).

    Parameters
    ----------
    task
        The federated task.
    sites_data
        The sites' data (training rows are the members, test rows the non-members).
    epsilon, delta
        The DP model's budget (used for training, or reported when ``dp_model`` is given).
    epochs, lr, max_grad_norm, batch_size, seed
        Training settings for the models trained here; ``seed`` also draws the audit rows.
    dp_model, nodp_model
        Already trained models to audit instead of training them.
    max_per_site
        As in :func:`membership_scores`.

    Returns
    -------
    dict
        ``dp`` and ``nodp`` (each :func:`membership_audit`'s figures plus ``test_auroc`` on
        the pooled test rows), ``dp_mia_auc``, ``nodp_mia_auc``, ``epsilon`` (spent, when
        trained here, else as given), ``delta`` and ``trained_here``.

    Raises
    ------
    InputError, ConfigError
        As :func:`membership_audit` and :func:`~secured_bio.privacy.federated.dpsgd.train_dpsgd`.

    Examples
    --------
    >>> import torch
    >>> from secured_bio.privacy.federated import SiteRef
    >>> from secured_bio.testing import LinearToyTask
    >>> task = LinearToyTask(n_features=3, n_per_site=40, seed=1)
    >>> sites = [task.load_site(SiteRef(i, 2)) for i in range(2)]
    >>> a, b = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)  # stand-ins for trained models
    >>> r = dp_vs_nodp_audit(task, sites, epsilon=1.0, dp_model=a, nodp_model=b)
    >>> sorted(r["dp"]) == sorted(r["nodp"]), r["trained_here"]
    (True, [])
    """
    import torch

    from secured_bio.privacy.federated.apps import build_global_model

    sites = _sites(sites_data)
    pooled = pool_sites(sites)
    trained: list[str] = []
    eps_spent = float(epsilon)
    if not (isinstance(epsilon, int | float) and epsilon > 0 and math.isfinite(epsilon)):
        raise ConfigError("epsilon must be a positive number", where=_WHERE,
                          expected="epsilon > 0", got=f"epsilon={epsilon!r}")
    if nodp_model is None:
        nodp_model = build_global_model(task, seed)
        task.train(nodp_model, pooled, epochs=epochs, lr=lr, seed=seed)
        trained.append("nodp")
    if dp_model is None:
        dp_model = build_global_model(task, seed)
        _, eps_spent = task.train_private(dp_model, pooled, epochs=epochs, lr=lr,
                                          epsilon=float(epsilon), delta=float(delta),
                                          max_grad_norm=max_grad_norm, batch_size=batch_size,
                                          rounds=1, server_round=1, seed=seed)
        trained.append("dp")
    out: dict[str, Any] = {}
    for key, model in (("nodp", nodp_model), ("dp", dp_model)):
        assert isinstance(model, torch.nn.Module)
        r = membership_audit(task, model, sites, seed=seed, max_per_site=max_per_site)
        r["test_auroc"] = _test_auroc(task, model, pooled)
        out[key] = r
    return {**out, "dp_mia_auc": out["dp"]["auc"], "nodp_mia_auc": out["nodp"]["auc"],
            "epsilon": eps_spent, "delta": float(delta), "trained_here": trained}
