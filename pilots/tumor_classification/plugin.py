"""Pilot plugin ``tumor_classification``: brain tumour grade from fMRI / fUS connectivity.

Each site turns its own 4D series into connectivity edge features (nilearn-checked ROI
correlations, :mod:`secured_bio.imaging`); the sites then train a MONAI classifier together
with Flower (:mod:`secured_bio.privacy.federated`), compared with centralized training on the
same split and audited for fairness; finally a few held-out scans are classified by CrypTen
encrypted inference (the hospital keeps the features, the model owner keeps the weights).
This module only wires those pieces together.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from secured_bio.pilots import PilotSpec, hookimpl
from secured_bio.pilots.demo import InputRule, cohort_sites, prepare_cohort, validate_inputs

NAME = "tumor_classification"
HERE = Path(__file__).resolve().parent
INPUTS: list[InputRule] = [
    ("nifti", "site*/sub-*/func/*.nii.gz", {"atlas": "{data}/atlas.nii.gz"}),
]
log = logging.getLogger(__name__)


def _sites(data: Path) -> list[str]:
    return cohort_sites(data) or sorted(p.name for p in data.glob("site*") if p.is_dir())


def federated_setup(data: Path, work_dir: Path, config: Mapping[str, Any]) -> dict[str, Any]:
    """Compute each site's connectivity features (site-local) and return the federated plan."""
    from secured_bio.imaging.features import connectivity_features, write_features
    from secured_bio.imaging.federated import FEATURES_FILE, TumorConnectivityTask
    from secured_bio.privacy.federated.task import task_path

    root = Path(config["features"]) if config.get("features") else work_dir
    sites = _sites(data)
    for site in sites:
        path = root / site / FEATURES_FILE
        if not path.is_file():
            table = connectivity_features(data, sites=[site],
                                          kind=str(config.get("connectivity", "correlation")),
                                          fisher_z=True)
            write_features(table, path)
    params = {
        "features_dir": str(root), "sites": sites,
        "test_fraction": float(config.get("test_fraction", 0.3)),
        "split_seed": int(config.get("seed", 0)),
        "hidden": list(config.get("hidden", [32])),
    }
    return {"task": task_path(TumorConnectivityTask), "task_params": params, "sites": sites,
            "site_data_dirs": [str(root / s) for s in sites]}


def _encrypted_inference(out_dir: Path, config: Mapping[str, Any],
                         plan: Mapping[str, Any]) -> dict[str, Any]:
    """Classify a few held-out scans of the first site with CrypTen; compare to plaintext."""
    import numpy as np

    from secured_bio.privacy.federated.apps import set_state
    from secured_bio.privacy.federated.task import SiteRef, load_task
    from secured_bio.privacy.smpc.inference import encrypted_predict

    n = int(config.get("encrypted_inference", 4))
    task = load_task(plan["task"], plan["task_params"])
    site = task.load_site(SiteRef(0, len(plan["sites"]), None))
    model = task.build_model()
    with np.load(out_dir / "federated_model.npz") as z:
        set_state(model, [z[f"arr_{i}"] for i in range(len(z.files))])
    x = site.x_test[:n]
    plain = task.predict(model, x)
    t0 = time.perf_counter()
    enc = encrypted_predict(model, x)
    wall = time.perf_counter() - t0
    diff = float(np.max(np.abs(np.asarray(enc.probabilities) - plain))) if len(x) else 0.0
    return {"site": site.site, "n_scans": int(len(x)), "max_abs_diff_probability": diff,
            "latency_ms": enc.latency_summary(), "setup_s": round(enc.setup_s, 3),
            "wall_s": round(wall, 3), "dealer": enc.dealer,
            "precision_bits": enc.precision_bits,
            "bytes_sent": {str(k): v for k, v in enc.bytes_sent.items()}}


def run(out_dir: Path, config: Mapping[str, Any]) -> dict[str, Any]:
    """Run the pilot on its demo cohort (or ``config['data']``) and return its metrics."""
    from secured_bio.pilots import get_pilot
    from secured_bio.pilots.federated import federated_run

    data, source = prepare_cohort(NAME, out_dir, config)
    metrics = validate_inputs(NAME, data, source, out_dir, INPUTS)
    metrics.update(federated_run(get_pilot(NAME), data, out_dir, config))
    if int(config.get("encrypted_inference", 4)) > 0:
        metrics["encrypted_inference"] = _encrypted_inference(out_dir, config, metrics["plan"])
    return metrics


@hookimpl
def secured_bio_register_pilot() -> PilotSpec:
    """Register the ``tumor_classification`` pilot."""
    return PilotSpec(
        name=NAME,
        description=(
            "Federated (Flower) MONAI tumour classifier on fMRI/fUS connectivity, "
            "with fairness audit and encrypted inference."
        ),
        run=run,
        status="ready",
        config_schema=HERE / "config.schema.yaml",
        rules_file=HERE.parents[1] / "workflows" / "rules" / f"{NAME}.smk",
        data_specs=("nifti",),
        federated=federated_setup,
    )
