"""Pilot plugin ``synthetic_education``: synthetic patient cases for medical education.

A clinical table with quasi-identifiers and a sensitive attribute is the seed of the
synthetic cases built under issue 7. Today the pilot makes and validates its demo cohort.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from secured_bio.pilots import PilotSpec, hookimpl
from secured_bio.pilots.demo import InputRule, demo_data_run

NAME = "synthetic_education"
HERE = Path(__file__).resolve().parent
INPUTS: list[InputRule] = [
    ("clinical", "**/clinical.csv", {}),
]


def run(out_dir: Path, config: Mapping[str, Any]) -> dict[str, Any]:
    """Run the pilot on its demo cohort (or ``config['data']``) and return its metrics."""
    return demo_data_run(NAME, out_dir, config, INPUTS)


@hookimpl
def secured_bio_register_pilot() -> PilotSpec:
    """Register the ``synthetic_education`` pilot."""
    return PilotSpec(
        name=NAME,
        description=(
            "Synthetic patient cases (tables, vitals, "
            "images) evaluated for fidelity, utility, privacy."
        ),
        run=run,
        status="demo-data-only",
        config_schema=HERE / "config.schema.yaml",
        rules_file=HERE.parents[1] / "workflows" / "rules" / f"{NAME}.smk",
        data_specs=('clinical',),
    )
