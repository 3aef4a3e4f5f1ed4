"""``secured-bio telemetry train`` and ``secured-bio telemetry score``: click commands.

Standalone commands that :mod:`secured_bio.telemetry.cli` attaches to the ``telemetry`` group.
``train`` is :func:`run_training` (a library function); ``score`` wraps
:func:`secured_bio.telemetry.stream.score_stream`.  Errors raised here are turned into
one-line messages and exit codes by ``secured_bio.cli.main``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pandas as pd

from secured_bio.errors import ConfigError

__all__ = ["TrainingRun", "run_training", "train", "score"]

logger = logging.getLogger(__name__)

METRICS_FORMAT = "secured_bio.telemetry_metrics"
METRICS_VERSION = 1


@dataclass(frozen=True)
class TrainingRun:
    """What :func:`run_training` did.

    Attributes
    ----------
    model_dir
        The saved model folder.
    metrics
        Metrics on the time-split test rows (see :func:`secured_bio.telemetry.model.evaluate`)
        plus ``train_rows``, ``test_rows``, ``method`` and the split.
    paths
        Report files written (``metrics``, ``roc_pr``, ``calibration``, ``timelines``).
    """

    model_dir: Path
    metrics: dict[str, Any]
    paths: dict[str, Path]


def run_training(
    site_dirs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    method: str = "hgb",
    seed: int = 0,
    horizon_hours: float = 6.0,
    event_delay_hours: float = 0.0,
    test_fraction: float = 0.3,
    alert_budget: float = 0.05,
    report_dir: str | os.PathLike[str] | None = None,
    n_threads: int | None = None,
) -> TrainingRun:
    """Compute features of each site, split by time, train, evaluate and save the model.

    Within each site the patients admitted last (``test_fraction`` of them) are held out
    (:func:`secured_bio.telemetry.features.time_split`); the model is trained on the pooled
    earlier patients and evaluated on the pooled later ones.

    Parameters
    ----------
    site_dirs
        Site folders holding ``vitals.csv``, ``patients.csv`` and ``events.csv``.
    out
        Model folder to write.
    method, seed, alert_budget
        See :func:`secured_bio.telemetry.model.train_model`.
    horizon_hours, event_delay_hours
        See :func:`secured_bio.telemetry.features.label_rows`.
    test_fraction
        Share of each site's patients (the latest admitted) held out.
    report_dir
        Where to write ``metrics.json`` and the plots (None: no report).
    n_threads
        Most threads used while training (None: the libraries' default).

    Returns
    -------
    TrainingRun

    Raises
    ------
    ConfigError
        If no site folder is given or ``test_fraction`` is not in (0, 1).
    """
    from secured_bio._atomic import atomic_write
    from secured_bio.telemetry.features import site_features, time_split
    from secured_bio.telemetry.model import (
        evaluate,
        plot_calibration,
        plot_roc_pr,
        plot_timelines,
        save_model,
        train_model,
    )

    if not site_dirs:
        raise ConfigError("no site folders", where="telemetry train", expected="--in DIR, "
                          "one per site", got="none", fix="pass at least one --in")
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError("test fraction out of range", where="telemetry train",
                          expected="a share in (0, 1)", got=str(test_fraction),
                          fix="pass e.g. --test-fraction 0.3")
    f = pd.concat([site_features(d, horizon_hours=horizon_hours,
                                 event_delay_hours=event_delay_hours) for d in site_dirs],
                  ignore_index=True)
    train_mask, test_mask = time_split(f, test_fraction=test_fraction)
    model = train_model(f[train_mask], method=method, seed=seed, horizon_hours=horizon_hours,
                        alert_budget=alert_budget, n_threads=n_threads)
    model.extra.update({"event_delay_hours": event_delay_hours, "seed": seed})
    test = f[test_mask].reset_index(drop=True)
    scores = model.predict(test[model.feature_names].to_numpy())
    metrics: dict[str, Any] = {
        "format": METRICS_FORMAT, "format_version": METRICS_VERSION, "method": method,
        "split": f"by admission time within each site; latest {test_fraction:g} of patients "
                 "held out",
        "train_rows": int(train_mask.sum()), "test_rows": int(test_mask.sum()),
        "train_patients": int(f.loc[train_mask, "patient_id"].nunique()),
        "test_patients": int(test["patient_id"].nunique()),
        "horizon_hours": horizon_hours, "event_delay_hours": event_delay_hours,
        "model_threshold": model.threshold,
        **evaluate(test, scores, alert_budget=alert_budget),
    }
    model_dir = save_model(model, out)
    paths: dict[str, Path] = {}
    if report_dir is not None:
        r = Path(report_dir)
        paths["roc_pr"] = plot_roc_pr(test, scores, r / "roc_pr.png",
                                      baseline=_pews_baseline(site_dirs, test),
                                      baseline_label="PEWS (vital-sign items)")
        paths["calibration"] = plot_calibration(test, scores, r / "calibration.png")
        paths["timelines"] = plot_timelines(test, scores, r / "timelines.png",
                                            threshold=metrics["threshold"])
        paths["metrics"] = r / "metrics.json"
        with atomic_write(paths["metrics"]) as fh:
            json.dump(metrics, fh, indent=2)
            fh.write("\n")
    logger.info("%s model: test AUROC %.3f on %d rows", method, metrics["auroc"],
                metrics["test_rows"])
    return TrainingRun(model_dir=model_dir, metrics=metrics, paths=paths)


def _pews_baseline(site_dirs: Sequence[str | os.PathLike[str]],
                   rows: pd.DataFrame) -> Any:
    """Bedside PEWS (vital-sign items) at each of ``rows`` (NaN where it cannot be scored).

    The baseline drawn next to the model on the ROC plot: the same rows, the same labels.
    """
    from datetime import datetime

    import numpy as np

    from secured_bio.telemetry.features import to_microseconds
    from secured_bio.telemetry.pews import score_pews

    frames = []
    for d in site_dirs:
        vitals = pd.read_csv(Path(d) / "vitals.csv", dtype={"patient_id": str})
        ages = pd.read_csv(Path(d) / "patients.csv", dtype={"patient_id": str})
        sc = score_pews(vitals, ages)
        sc["time_us"] = [to_microseconds(datetime.fromisoformat(t)) for t in sc["time"]]
        frames.append(sc[["patient_id", "time_us", "pews"]])
    pews = pd.concat(frames, ignore_index=True).drop_duplicates(["patient_id", "time_us"])
    key = rows[["patient_id", "time_us"]].astype({"patient_id": str, "time_us": np.int64})
    merged = key.merge(pews.astype({"time_us": np.int64}), on=["patient_id", "time_us"],
                       how="left")
    return merged["pews"].to_numpy(dtype=float)


@click.command()
@click.option("--in", "site_dirs", required=True, multiple=True,
              type=click.Path(path_type=Path, file_okay=False),
              help="Site folder with vitals.csv, patients.csv, events.csv (repeat per site).")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Model folder to write (replaced only when complete).")
@click.option("--method", type=click.Choice(["hgb", "torch"]), default="hgb", show_default=True,
              help="hgb: gradient-boosted trees; torch: the MLP the federation trains.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--horizon-hours", type=click.FloatRange(min=0, min_open=True), default=6.0,
              show_default=True, help="Predict an event within this many hours.")
@click.option("--event-delay-hours", type=click.FloatRange(min=0), default=0.0,
              show_default=True,
              help="The event to predict is this long after the recorded onset.")
@click.option("--test-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.3, show_default=True,
              help="Share of each site's latest-admitted patients held out.")
@click.option("--alert-budget", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.05, show_default=True, help="Share of rows allowed to alert.")
@click.option("--report", "report_dir", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="Folder for metrics.json and plots.")
@click.option("--threads", "n_threads", type=click.IntRange(min=1), default=None,
              help="Most threads used while training [default: all].")
def train(site_dirs: tuple[Path, ...], out: Path, method: str, seed: int, horizon_hours: float,
          event_delay_hours: float, test_fraction: float, alert_budget: float,
          report_dir: Path | None, n_threads: int | None) -> None:
    """Train a deterioration model, validated by time (earlier patients train, later test).

    \b
    secured-bio telemetry train --in demo/site1 --in demo/site2 --out model --report report
    """
    run = run_training(site_dirs, out, method=method, seed=seed, horizon_hours=horizon_hours,
                       event_delay_hours=event_delay_hours, test_fraction=test_fraction,
                       alert_budget=alert_budget, report_dir=report_dir,
                       n_threads=n_threads)
    m = run.metrics
    click.echo(json.dumps({k: m[k] for k in ("method", "train_rows", "test_rows", "auroc",
                                             "auprc", "ppv", "lead_time_hours", "brier",
                                             "ece")}))


@click.command()
@click.option("--model", "model_dir", required=True,
              type=click.Path(path_type=Path, file_okay=False),
              help="Model folder written by `secured-bio telemetry train`.")
@click.option("--patients", "patients", required=True, type=click.Path(path_type=Path),
              help="patients.csv (patient_id,age_years,sex): ages for the z-scores.")
@click.option("--stream", is_flag=True, help="Read JSON-line observations from stdin.")
@click.option("--follow", "follow", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Follow this file (like tail -f) instead of stdin.")
@click.option("--idle-exit", type=click.FloatRange(min=0), default=None,
              help="With --follow: stop after this many seconds without new lines.")
@click.option("--emit", type=click.Choice(["alerts", "all"]), default="alerts",
              show_default=True, help="alerts: threshold crossings only; all: every score.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Alert threshold [default: the model's, set by its alert budget].")
@click.option("--strict", is_flag=True, help="Stop at the first bad line instead of counting it.")
@click.option("--batch-size", type=click.IntRange(min=1), default=512, show_default=True,
              help="Most observations scored together (a pause in the input scores at once).")
def score(model_dir: Path, patients: Path, stream: bool, follow: Path | None,
          idle_exit: float | None, emit: str, threshold: float | None, strict: bool,
          batch_size: int) -> None:
    """Score live observations; write alerts as JSON lines, a summary to stderr.

    Input lines: {"patient_id", "time" (ISO 8601 with offset), "vital", "value", "unit"}.
    Bad lines are skipped and counted by reason (or fatal with --strict).

    \b
    tail -f obs.jsonl | secured-bio telemetry score --model model --patients patients.csv --stream
    """
    from secured_bio.telemetry.features import read_patients
    from secured_bio.telemetry.model import load_model
    from secured_bio.telemetry.stream import follow_lines, read_lines, score_stream

    if stream == (follow is not None):
        raise click.UsageError("give exactly one of --stream (stdin) or --follow FILE")
    if idle_exit is not None and follow is None:
        raise click.UsageError("--idle-exit needs --follow")
    model = load_model(model_dir)
    if threshold is not None:
        model.threshold = threshold
    ages = read_patients(patients)["age_years"].to_dict()
    if follow is not None:
        if not follow.is_file():
            from secured_bio.errors import InputFileNotFoundError

            raise InputFileNotFoundError("file to follow not found", where=str(follow),
                                         expected="an existing file", got="no such file",
                                         fix="create it first or check the path")
        lines = follow_lines(follow, idle_exit_s=idle_exit)
    else:
        lines = read_lines(sys.stdin)
    summary = score_stream(lines, model, ages, out=sys.stdout, emit=emit, strict=strict,
                           batch_size=batch_size)
    click.echo(json.dumps(summary.as_dict()), err=True)
