"""Pilot plugin ``telemonitoring``: early warning of deterioration in children in oncology care.

Each hospital turns its FHIR R4 vital-sign bundles into the canonical long table
(:mod:`secured_bio.telemetry.ingest`), scores the Bedside PEWS (:mod:`~secured_bio.telemetry.pews`)
and computes window features (:mod:`~secured_bio.telemetry.features`).  A gradient-boosting
model is compared with PEWS on the same later-admitted patients; the hospitals train the
torch model together with Flower (:mod:`secured_bio.privacy.federated`), without and with
record-level DP-SGD, and a membership-inference audit shows what DP buys; finally the model
scores a replayed observation stream (:mod:`~secured_bio.telemetry.stream`).  This module only
wires those pieces together.

The audit's non-members are a random, outcome-stratified share (``audit_fraction``) of each
hospital's training-period patients, held out of both federated trainings: they come from the
members' population, so the attack AUC measures membership, not the shift between earlier and
later admissions (the later-admitted test patients judge utility only).  One figure,
``report/privacy_utility.png``, shows the attack's ROC for both models beside their AUROC.

What the DP epsilon covers (``metrics['dp']``: ``epsilon_covers``, ``not_covered``): the model
parameters each hospital sends in every round (add/remove one training record; noise and
sampling from the OS CSPRNG).  It does not cover each hospital's evaluation metrics on its
test patients, nor its number of batches per epoch; the federated run without DP
(``metrics['federated']``) has no DP guarantee at all.

Labels: the demo's ``events.csv`` records when the physiological drift starts; the clinical
event to predict (e.g. a PICU call) is taken ``event_delay_hours`` later (default 6 h, when the
drift is ~90 % complete), so the model has to detect the drift early (lead time is reported).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from secured_bio.pilots import PilotSpec, hookimpl
from secured_bio.pilots.demo import InputRule, cohort_sites, prepare_cohort, validate_inputs

NAME = "telemonitoring"
HERE = Path(__file__).resolve().parent
INPUTS: list[InputRule] = [
    ("vitals", "site*/vitals.csv", {}),
    ("fhir", "site*/vitals.fhir.json", {}),
]
log = logging.getLogger(__name__)


def _sites(data: Path) -> list[str]:
    return cohort_sites(data) or sorted(p.name for p in data.glob("site*") if p.is_dir())


def prepare_sites(data: Path, work_dir: Path) -> dict[str, Any]:
    """Per hospital: FHIR bundle -> canonical vitals.csv (site-local), plus patients/events."""
    from secured_bio.telemetry.ingest import ingest_vitals

    reports = {}
    for site in _sites(data):
        src, dst = data / site, work_dir / site
        dst.mkdir(parents=True, exist_ok=True)
        rep = ingest_vitals(src / "vitals.fhir.json", dst / "vitals.csv")
        reports[site] = rep.to_dict()
        for name in ("patients.csv", "events.csv"):
            shutil.copyfile(src / name, dst / name)
    return reports


def federated_setup(data: Path, work_dir: Path, config: Mapping[str, Any]) -> dict[str, Any]:
    """Ingest each hospital's FHIR bundle (site-local) and return the federated plan."""
    from secured_bio.privacy.federated.task import task_path
    from secured_bio.telemetry.federated import TelemetryTask

    sites = _sites(data)
    if not all((work_dir / s / "vitals.csv").is_file() for s in sites):
        prepare_sites(data, work_dir)
    params = {
        "cohort_dir": str(work_dir), "sites": sites,
        "horizon_hours": float(config.get("horizon_hours", 6.0)),
        "event_delay_hours": float(config.get("event_delay_hours", 6.0)),
        "test_fraction": float(config.get("test_fraction", 0.3)),
        "audit_fraction": float(config.get("audit_fraction", 0.2)),
        "audit_seed": int(config.get("seed", 0)),
        "weight_decay": float(config.get("weight_decay", 0.01)),
        "batch_size": int(config.get("batch_size", 64)),
    }
    return {"task": task_path(TelemetryTask), "task_params": params, "sites": sites,
            "site_data_dirs": [str(work_dir / s) for s in sites]}


def _pews_auroc(site_dirs: list[Path], test: Any, *, horizon: float, delay: float) -> dict:
    """AUROC of the Bedside PEWS on exactly the model's held-out rows (same labels)."""
    from datetime import datetime

    import pandas as pd
    from sklearn.metrics import average_precision_score, roc_auc_score

    from secured_bio.telemetry.features import to_microseconds
    from secured_bio.telemetry.pews import score_pews

    frames = []
    for d in site_dirs:
        vitals = pd.read_csv(d / "vitals.csv", dtype={"patient_id": str})
        ages = pd.read_csv(d / "patients.csv", dtype={"patient_id": str})
        s = score_pews(vitals, ages)
        s["time_us"] = [to_microseconds(datetime.fromisoformat(t)) for t in s["time"]]
        frames.append(s[["patient_id", "time_us", "pews", "n_items"]])
    pews = pd.concat(frames, ignore_index=True)
    rows = test[["patient_id", "time_us", "label"]].merge(pews, on=["patient_id", "time_us"],
                                                         how="left")
    scored = rows.dropna(subset=["pews"])
    y, p = scored["label"].to_numpy(int), scored["pews"].to_numpy(float)
    return {"auroc": float(roc_auc_score(y, p)), "auprc": float(average_precision_score(y, p)),
            "rows": int(len(scored)), "rows_without_score": int(len(rows) - len(scored)),
            "items_scored": sorted({int(v) for v in scored["n_items"]}),
            "note": "partial Bedside PEWS (4 of 7 items: vital signs only)"}


def _stream(site_dir: Path, model_dir: Path, *, max_obs: int) -> dict[str, Any]:
    """Replay a hospital's observations as JSON lines through the streaming scorer."""
    import pandas as pd

    from secured_bio.telemetry.model import load_model
    from secured_bio.telemetry.stream import score_stream

    vitals = pd.read_csv(site_dir / "vitals.csv", dtype={"patient_id": str}).head(max_obs)
    ages = pd.read_csv(site_dir / "patients.csv", dtype={"patient_id": str})
    lines = [json.dumps(r) for r in vitals.to_dict("records")]
    summary = score_stream(lines, load_model(model_dir),
                           dict(zip(ages["patient_id"], ages["age_years"], strict=True)))
    return summary.as_dict()


def _dp_audit(out_dir: Path, plan: Mapping[str, Any], config: Mapping[str, Any],
              nodp_state: Path) -> dict[str, Any]:
    """Train the federation again with DP-SGD at every site; audit both models (MIA)."""
    import numpy as np

    from secured_bio.privacy.federated.apps import set_state
    from secured_bio.privacy.federated.audit import membership_audit
    from secured_bio.privacy.federated.engines import run_federated
    from secured_bio.privacy.federated.task import SiteRef, load_task

    task = load_task(plan["task"], plan["task_params"])
    n = len(plan["sites"])
    sites = [task.load_site(SiteRef(i, n, d)) for i, d in enumerate(plan["site_data_dirs"])]
    res = run_federated(
        plan["task"], plan["task_params"], num_sites=n, rounds=int(config["rounds"]),
        engine=config["engine"], local_epochs=int(config["local_epochs"]),
        lr=float(config["lr"]), seed=int(config["seed"]),
        local_dp_epsilon=float(config["dp_epsilon"]), local_dp_delta=float(config["dp_delta"]),
        site_data_dirs=plan["site_data_dirs"], work_dir=out_dir / "flower_dp",
    )
    dp_model = res.build_model(task)
    nodp_model = task.build_model()
    with np.load(nodp_state) as z:
        set_state(nodp_model, [z[f"arr_{i}"] for i in range(len(z.files))])
    seed = int(config["seed"])
    dp_mia = membership_audit(task, dp_model, sites, seed=seed)
    nodp_mia = membership_audit(task, nodp_model, sites, seed=seed)
    from secured_bio.privacy.federated.experiment import evaluate_predictions, pooled

    pool = pooled(sites)
    dp_test = evaluate_predictions(pool.y_test, task.predict(dp_model, pool.x_test))
    nodp_test = evaluate_predictions(pool.y_test, task.predict(nodp_model, pool.x_test))
    eps = (res.dp or {}).get("epsilon", config["dp_epsilon"])
    plot = _plot_privacy_utility(out_dir / "report" / "privacy_utility.png", nodp_mia, dp_mia,
                                 nodp_test, dp_test, epsilon=float(eps))
    return {
        "dp": {**(res.dp or {}), "mia_auc": dp_mia["auc"], "mia": dp_mia, "test": dp_test},
        "nodp": {"mia_auc": nodp_mia["auc"], "mia": nodp_mia, "test": nodp_test},
        "privacy_utility": {
            "plot": str(plot.relative_to(out_dir)),
            "nonmembers": dp_mia["nonmembers"],
            "audit_fraction": float(config.get("audit_fraction", 0.2)),
            "attack_auc": {"nodp": nodp_mia["auc"], "dp": dp_mia["auc"]},
            "attack_auc_ci": {"nodp": nodp_mia["auc_ci"], "dp": dp_mia["auc_ci"]},
            "test_auroc": {"nodp": nodp_test.get("auroc"), "dp": dp_test.get("auroc")},
        },
    }


def _plot_privacy_utility(path: Path, nodp_mia: Mapping[str, Any], dp_mia: Mapping[str, Any],
                          nodp_test: Mapping[str, Any], dp_test: Mapping[str, Any], *,
                          epsilon: float) -> Path:
    """Draw the pilot's privacy-utility figure: attack ROC of both models, AUROC beside it."""
    from secured_bio.privacy.federated.audit import plot_privacy_utility

    non = ("held-out patients of the same admission period (never trained on)"
           if dp_mia.get("nonmembers") == "audit" else
           "later-admitted test patients (time-shifted: set audit_fraction > 0)")
    what = "patients (mean loss of their windows)" if dp_mia.get("unit") == "unit" else "windows"
    caption = (f"Left: loss-threshold membership attack (Yeom et al. 2018) on "
               f"{dp_mia['n_members']} training {what} (members) vs as many of {non}; "
               "AUC with 95% interval, 0.5 = the attacker cannot tell. Right: AUROC of "
               "deterioration prediction on the later-admitted test patients. Both models "
               "are the same federated MLP; DP-SGD adds clipping and noise at each hospital.")
    return plot_privacy_utility(
        [{"label": "federated, no DP", "mia": nodp_mia, "utility": nodp_test.get("auroc")},
         {"label": f"federated, DP-SGD (epsilon {epsilon:.2g})", "mia": dp_mia,
          "utility": dp_test.get("auroc")}],
        path, utility_name="AUROC", caption=caption)


def run(out_dir: Path, config: Mapping[str, Any]) -> dict[str, Any]:
    """Run the pilot on its demo cohort (or ``config['data']``) and return its metrics."""
    from secured_bio.pilots import get_pilot
    from secured_bio.pilots.federated import federated_run
    from secured_bio.telemetry.features import site_features, time_split
    from secured_bio.telemetry.model_cli import run_training

    data, source = prepare_cohort(NAME, out_dir, config)
    metrics = validate_inputs(NAME, data, source, out_dir, INPUTS)
    site_root = out_dir / "sites"
    metrics["ingest"] = prepare_sites(data, site_root)
    site_dirs = [site_root / s for s in _sites(data)]
    horizon, delay = float(config["horizon_hours"]), float(config["event_delay_hours"])

    run_ = run_training(site_dirs, out_dir / "model", method="hgb", seed=int(config["seed"]),
                        horizon_hours=horizon, event_delay_hours=delay,
                        test_fraction=float(config["test_fraction"]),
                        alert_budget=float(config["alert_budget"]),
                        report_dir=out_dir / "report", n_threads=1)
    metrics["model"] = run_.metrics
    import pandas as pd

    f = pd.concat([site_features(d, horizon_hours=horizon, event_delay_hours=delay)
                   for d in site_dirs], ignore_index=True)
    _, test_mask = time_split(f, test_fraction=float(config["test_fraction"]))
    metrics["pews"] = _pews_auroc(site_dirs, f[test_mask], horizon=horizon, delay=delay)

    # The federated setup finds the sites ingested above (out_dir / "sites") and reuses them.
    fed = federated_run(get_pilot(NAME), data, out_dir, {**config, "dp_epsilon": None})
    metrics["federated"] = {**fed["federated"], "centralized_auroc": fed["centralized"]["auroc"],
                            "gap": fed["gap"]["auroc"]}
    metrics["federated_run"] = {k: fed[k] for k in ("centralized", "per_site", "fairness",
                                                    "fairness_summary", "rounds", "engine",
                                                    "timing", "plan")}
    if config.get("dp_epsilon"):
        metrics.update(_dp_audit(out_dir, fed["plan"], config,
                                 out_dir / "federated_model.npz"))
    metrics["stream"] = _stream(site_dirs[0], run_.model_dir,
                                max_obs=int(config["stream_observations"]))
    return metrics


@hookimpl
def secured_bio_register_pilot() -> PilotSpec:
    """Register the ``telemonitoring`` pilot."""
    return PilotSpec(
        name=NAME,
        description=(
            "Paediatric deterioration from vital signs (FHIR): PEWS baseline, "
            "federated DP model, membership audit, stream scoring."
        ),
        run=run,
        status="ready",
        config_schema=HERE / "config.schema.yaml",
        rules_file=HERE.parents[1] / "workflows" / "rules" / f"{NAME}.smk",
        data_specs=("vitals", "fhir"),
        federated=federated_setup,
    )
