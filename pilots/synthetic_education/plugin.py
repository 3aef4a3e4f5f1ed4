"""Pilot plugin ``synthetic_education``: synthetic patient cases for medical education.

A teacher's YAML spec asks for groups of cases ("3 children aged 5-10 with stage III disease
and a septic episode"); :func:`secured_bio.education.make_cases` fits the case-table,
vital-sign and image generators on the (demo) hospital data and writes each case as JSON,
Markdown and HTML with a privacy statement.  This module only wires the demo cohort, the
spec and the library together; the Snakemake rules run the same steps through the CLI
(``secured-bio education cases`` then ``secured-bio pilots collect``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from secured_bio.errors import InputFileNotFoundError
from secured_bio.pilots import PilotSpec, hookimpl
from secured_bio.pilots.demo import InputRule, prepare_cohort, validate_inputs

NAME = "synthetic_education"
HERE = Path(__file__).resolve().parent
INPUTS: list[InputRule] = [
    ("clinical", "site*/clinical.csv", {}),
    ("vitals", "site*/vitals.csv", {}),
]
CASES = "cases"


def build_spec(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return the run's case spec: ``config['spec']`` (or the example) with the overrides."""
    import yaml

    from secured_bio.config import load_yaml
    from secured_bio.education import example_spec
    from secured_bio.education.spec import with_overrides

    raw = (load_yaml(config["spec"], what="case spec") if config.get("spec")
           else yaml.safe_load(example_spec()))
    return with_overrides(raw, method=config.get("method"), epsilon=config.get("epsilon"),
                          image_epochs=config.get("image_epochs"))


def run(out_dir: Path, config: Mapping[str, Any]) -> dict[str, Any]:
    """Make (or take) the cohort, validate it, generate the teaching cases, return metrics."""
    import yaml

    from secured_bio.education import make_cases, parse_spec

    data, source = prepare_cohort(NAME, out_dir, config)
    metrics = validate_inputs(NAME, data, source, out_dir, INPUTS)
    raw = build_spec(config)
    (out_dir / "spec.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    make_cases(parse_spec(raw, base=data, where="spec.yaml"), out_dir / CASES)
    return {**metrics, **collect(out_dir, config)}


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    return d


def collect(root: Path, config: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics from ``root/cases/cases.json``: counts, conditions met, privacy, utility."""
    from secured_bio.education import MANIFEST

    f = root / CASES / MANIFEST
    if not f.is_file():
        raise InputFileNotFoundError("teaching cases missing", where=str(f),
                                     fix="run 'secured-bio education cases' into that folder")
    m = json.loads(f.read_text(encoding="utf-8"))
    priv = m["privacy"]
    return {
        "cases": {"n": m["n_cases"], "groups": len(m["groups"]),
                  "conditions_met_share": m["conditions_met"]["share"],
                  "index": f"{CASES}/index.html"},
        "table": {"generator": priv["table"]["generator"],
                  "differentially_private": priv["table"]["differentially_private"],
                  "epsilon": priv["table"]["epsilon"],
                  "membership_inference_auc": priv["table"]["membership_inference_auc"],
                  "exact_copies_share": priv["table"]["exact_copies_share"],
                  "tstr_auroc": _get(m, "table", "utility", "tstr_auroc"),
                  "trtr_auroc": _get(m, "table", "utility", "trtr_auroc")},
        "vitals": None if m.get("vitals") is None else {
            "membership_inference_auc": _get(priv, "vitals", "membership_inference_auc"),
            "tstr_auroc": _get(m, "vitals", "utility", "auroc_tstr"),
            "trtr_auroc": _get(m, "vitals", "utility", "auroc_trtr"),
            "n_deteriorating": m["vitals"]["n_deteriorating"]},
        "images": None if m.get("images") is None else {
            "mmd2_real_vs_generated": _get(m, "images", "metrics", "mmd2_real_vs_generated"),
            "mmd2_real_half_vs_half": _get(m, "images", "metrics", "mmd2_real_half_vs_half"),
            "nearest_real_distance_min": _get(priv, "image", "nearest_real_distance_min"),
            "mean_seconds_per_epoch": _get(m, "images", "training", "mean_seconds_per_epoch")},
        "timings": m["timings"],
    }


@hookimpl
def secured_bio_register_pilot() -> PilotSpec:
    """Register the ``synthetic_education`` pilot."""
    return PilotSpec(
        name=NAME,
        description=(
            "Synthetic teaching cases (table, vital signs, image) from a YAML spec, each "
            "with a privacy statement."
        ),
        run=run,
        collect=collect,
        status="ready",
        config_schema=HERE / "config.schema.yaml",
        rules_file=HERE.parents[1] / "workflows" / "rules" / f"{NAME}.smk",
        data_specs=("clinical", "vitals"),
    )
