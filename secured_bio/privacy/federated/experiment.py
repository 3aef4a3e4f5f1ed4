"""Federated vs centralized on the same data: the evaluation harness behind ``fl run``.

:func:`run_experiment` trains a task's model twice on the same sites and the same held-out
split: once *centralized* (all sites' training rows pooled in one process, the reference a
federation is judged against) and once *federated* (Flower, through
:func:`~secured_bio.privacy.federated.run_federated`: the sites' rows never leave their
processes).  Both models are evaluated on the pooled held-out rows; the federated model is also
audited for fairness per site and per subgroup
(:func:`~secured_bio.privacy.assess.fairness_audit`).

The harness itself reads every site's data, which only a benchmark on demo or consented data
may do; in a real deployment each site evaluates the final model on its own held-out rows
(the ``per_site`` metrics, which come back through Flower's evaluate round) and only the
federated run happens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from secured_bio.errors import InputError
from secured_bio.privacy.federated.task import FederatedTask, SiteData, SiteRef, load_task

__all__ = ["evaluate_predictions", "pooled", "run_experiment"]

logger = logging.getLogger(__name__)


def pooled(sites: Sequence[SiteData]) -> SiteData:
    """Concatenate sites' rows (training with training, test with test); groups gain ``site``.

    Examples
    --------
    >>> a = SiteData("a", np.zeros((2, 1)), np.array([0, 1]), np.zeros((1, 1)), np.array([1]))
    >>> b = SiteData("b", np.ones((1, 1)), np.array([1]), np.ones((2, 1)), np.array([0, 1]))
    >>> p = pooled([a, b])
    >>> p.x_train.shape, p.groups_test["site"].tolist()
    ((3, 1), ['a', 'b', 'b'])
    """
    keys = sorted(set.intersection(*(set(s.groups_test) for s in sites))) if sites else []
    groups = {"site": np.concatenate([np.repeat(s.site, len(s.y_test)) for s in sites])}
    for k in keys:
        groups[k] = np.concatenate([np.asarray(s.groups_test[k]) for s in sites])
    return SiteData(
        site="pooled",
        x_train=np.concatenate([s.x_train for s in sites]),
        y_train=np.concatenate([s.y_train for s in sites]),
        x_test=np.concatenate([s.x_test for s in sites]),
        y_test=np.concatenate([s.y_test for s in sites]),
        groups_test=groups,
    )


def evaluate_predictions(y_true: np.ndarray, y_score: np.ndarray) -> dict[str, Any]:
    """AUROC, AUPRC, accuracy at 0.5, log loss and counts of binary predictions.

    AUROC and AUPRC are None when the rows hold a single class.

    Examples
    --------
    >>> evaluate_predictions(np.array([0, 1, 1]), np.array([0.2, 0.9, 0.6]))["auroc"]
    1.0
    """
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

    y = np.asarray(y_true, dtype=int)
    p = np.clip(np.asarray(y_score, dtype=float), 1e-7, 1 - 1e-7)
    both = len(np.unique(y)) == 2
    return {
        "n": int(len(y)),
        "n_positive": int(y.sum()),
        "auroc": float(roc_auc_score(y, p)) if both else None,
        "auprc": float(average_precision_score(y, p)) if both else None,
        "accuracy": float(((p >= 0.5).astype(int) == y).mean()) if len(y) else None,
        "log_loss": float(log_loss(y, p, labels=[0, 1])) if len(y) else None,
    }


def _load_sites(task: FederatedTask, num_sites: int,
                site_data_dirs: Sequence[str] | None) -> list[SiteData]:
    dirs = list(site_data_dirs) if site_data_dirs else [None] * num_sites
    return [task.load_site(SiteRef(i, num_sites, None if d is None else str(d)))
            for i, d in enumerate(dirs)]


def _train_centralized(task: FederatedTask, data: SiteData, *, epochs: int, lr: float,
                       seed: int) -> tuple[Any, float, float]:
    import torch

    torch.manual_seed(seed)
    model = task.build_model()
    t0 = time.perf_counter()
    result = task.train(model, data, epochs=epochs, lr=lr, seed=seed)
    return model, result.loss, time.perf_counter() - t0


def run_experiment(
    task: str,
    task_params: Mapping[str, Any],
    *,
    out_dir: str | Path,
    num_sites: int,
    rounds: int,
    site_data_dirs: Sequence[str] | None = None,
    local_epochs: int = 1,
    lr: float = 0.01,
    seed: int = 0,
    plots: bool = True,
    fairness_bootstrap: int = 300,
    **federated: Any,
) -> dict[str, Any]:
    """Train centralized and federated on the same split; evaluate, audit, plot.

    Parameters
    ----------
    task, task_params
        The federated task's import path and parameters (see
        :func:`~secured_bio.privacy.federated.task.load_task`).
    out_dir
        Existing folder that receives the plots, ``federated_model.npz`` and Flower's work
        files (the caller writes ``metrics.json`` from the returned dict).
    num_sites, rounds
        Number of sites and of federated rounds.
    site_data_dirs
        One data folder per site (deployment node configs); None lets the task map sites.
    local_epochs, lr, seed
        Local epochs per round and learning rate (the centralized model trains
        ``rounds * local_epochs`` epochs with the same rate), and the seed.
    plots
        Write ``training_curves.png``, ``per_site.png`` and ``fairness.png``.
    fairness_bootstrap
        Resamples of the held-out rows behind the CIs of ``fairness_summary``.
    **federated
        Passed to :func:`~secured_bio.privacy.federated.run_federated` (engine, strategy,
        proximal_mu, secagg, dp_epsilon, dp_delta, dp_clip, timeout_s...).

    Returns
    -------
    dict
        ``centralized``, ``federated`` (each with ``auroc``... of the final model on the
        pooled held-out rows), ``gap`` (federated minus centralized AUROC), ``per_site``,
        ``fairness``, ``rounds`` (per round; ``eval_auroc`` is the row-weighted mean of the
        sites' AUROCs on their own held-out rows, not the pooled AUROC), ``dp``,
        ``secagg``, ``engine``, ``timing`` and ``fairness_summary`` (the federated model's
        mean / worst-site / worst-group AUROC and equalized-odds / demographic-parity gaps,
        each with a bootstrap CI, and the ``option`` trained with;
        :func:`~secured_bio.privacy.federated.fairness.fairness_summary`).
    """
    from secured_bio.privacy.assess.fairness import fairness_audit
    from secured_bio.privacy.federated.engines import run_federated
    from secured_bio.privacy.federated.fairness import fairness_summary

    out = Path(out_dir)
    t_task = load_task(task, dict(task_params))
    sites = _load_sites(t_task, num_sites, site_data_dirs)
    pool = pooled(sites)
    if len(np.unique(pool.y_test)) < 2 or len(np.unique(pool.y_train)) < 2:
        raise InputError(
            "too few examples of each class to compare centralized and federated training",
            where=f"task {task}",
            expected="both classes among the training rows and among the held-out rows",
            got=f"{len(pool.y_train)} training and {len(pool.y_test)} held-out rows, "
                f"{len(np.unique(pool.y_train))} and {len(np.unique(pool.y_test))} classes",
            fix="use more examples per site (at least 2 per class), or a larger test_fraction",
        )
    single = [s.site for s in sites if len(np.unique(s.y_train)) < 2]
    if single:
        # Documented handling: such a site still trains (its updates carry one class);
        # its own held-out AUROC is undefined and reported as None.
        logger.warning("%d site(s) hold a single class in their training rows: %s",
                       len(single), ", ".join(single))
    logger.info("%d sites, %d training and %d held-out rows", num_sites, len(pool.y_train),
                len(pool.y_test))

    central_model, central_loss, central_s = _train_centralized(
        t_task, pool, epochs=rounds * local_epochs, lr=lr, seed=seed)
    central = evaluate_predictions(pool.y_test, t_task.predict(central_model, pool.x_test))
    central["train_loss"] = central_loss
    logger.info("centralized AUROC %s", central["auroc"])

    t0 = time.perf_counter()
    result = run_federated(
        task, dict(task_params), num_sites=num_sites, rounds=rounds,
        site_data_dirs=site_data_dirs, local_epochs=local_epochs, lr=lr, seed=seed,
        work_dir=out / "flower", **federated,
    )
    fed_wall = time.perf_counter() - t0
    fed_model = result.load_into(t_task.build_model())
    scores = t_task.predict(fed_model, pool.x_test)
    fed = evaluate_predictions(pool.y_test, scores)
    logger.info("federated AUROC %s", fed["auroc"])
    result.save(out / "federated_model.npz")

    per_site = []
    for s in sites:
        row = {"site": s.site, **evaluate_predictions(s.y_test, t_task.predict(fed_model,
                                                                                s.x_test))}
        row["centralized_auroc"] = evaluate_predictions(
            s.y_test, t_task.predict(central_model, s.x_test))["auroc"]
        per_site.append(row)
    fairness = fairness_audit(pool.y_test, scores, groups=pool.groups_test)
    summary = fairness_summary(pool.y_test, scores, site=pool.groups_test["site"],
                               groups=pool.groups_test, n_boot=int(fairness_bootstrap),
                               seed=seed)
    summary["option"] = str(federated.get("fairness", "none"))
    if summary["option"] == "qffl":
        summary["q"] = float(federated.get("fairness_q", 1.0))

    gap = (None if fed["auroc"] is None or central["auroc"] is None
           else fed["auroc"] - central["auroc"])
    overhead = result.overhead()
    metrics: dict[str, Any] = {
        "centralized": central,
        "federated": fed,
        "gap": {"auroc": gap},
        "per_site": per_site,
        "per_site_flower": result.per_site,
        "fairness": fairness,
        "fairness_summary": summary,
        "rounds": result.rounds,
        "dp": result.dp,
        "secagg": result.secagg,
        "engine": result.engine,
        "timing": {
            "centralized_train_s": round(central_s, 4),
            "federated_wall_s": round(fed_wall, 4),
            "rounds_wall_s": round(overhead["round_wall_s"], 4),
            "local_train_s": round(overhead["local_train_s_total"], 4),
            "round_overhead_s": round(overhead["overhead_s"], 4),
            "round_overhead_share": (round(overhead["share"], 4)
                                     if np.isfinite(overhead["share"]) else None),
        },
        "split": {"sites": [s.site for s in sites], "n_train": int(len(pool.y_train)),
                 "n_test": int(len(pool.y_test))},
    }
    if plots:
        from secured_bio.privacy.assess.plots import (
            plot_fairness,
            plot_per_site,
            plot_training_curves,
        )

        curves = [{"round": r["round"], "train loss": r.get("train_loss"),
                   "held-out loss": r.get("eval_loss"), "held-out AUROC": r.get("eval_auroc")}
                  for r in result.rounds]
        # under DP the sites send no training loss (not covered by epsilon): no such panel
        shown = tuple(m for m in ("train loss", "held-out loss", "held-out AUROC")
                      if any(c[m] is not None and np.isfinite(c[m]) for c in curves))
        # Each round's values are the Flower evaluate round: every site scores the current
        # global model on its own held-out rows and the server averages the sites' numbers
        # (weighted by rows).  The end-of-run ``federated``/``centralized`` AUROCs are on the
        # pooled held-out rows instead, a different quantity: the plot labels each.
        plot_training_curves(
            curves, out / "training_curves.png", metrics=shown or ("held-out loss",),
            centralized={"held-out AUROC": central["auroc"],
                         "held-out loss": central["log_loss"]},
            final={"held-out AUROC": fed["auroc"], "held-out loss": fed["log_loss"]},
            centralized_label="centralized model, pooled held-out rows",
            final_label="final federated model, pooled held-out rows ('federated')",
            descriptions={
                "train loss": "each round: mean of the sites' local training losses, "
                              "weighted by training rows",
                "held-out loss": "each round: mean of the sites' losses on their own "
                                 "held-out rows, weighted by rows",
                "held-out AUROC": "each round: mean of the sites' AUROCs on their own "
                                  "held-out rows, weighted by rows (not the pooled AUROC)",
            })
        plot_per_site(per_site, out / "per_site.png")
        plot_fairness(fairness, out / "fairness.png")
    return metrics
