"""Pilot plugin ``telemonitoring``: telemonitoring of children in oncology care.

Sites hold vital-sign series as FHIR R4 bundles and long CSV tables; PEWS and the
learned model are built under issue 6. Today the pilot makes and validates its demo cohort.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from secured_bio.pilots import PilotSpec, hookimpl
from secured_bio.pilots.demo import InputRule, demo_data_run

NAME = "telemonitoring"
HERE = Path(__file__).resolve().parent
INPUTS: list[InputRule] = [
    ("vitals", "site*/vitals.csv", {}),
    ("fhir", "site*/vitals.fhir.json", {}),
]


def run(out_dir: Path, config: Mapping[str, Any]) -> dict[str, Any]:
    """Run the pilot on its demo cohort (or ``config['data']``) and return its metrics."""
    return demo_data_run(NAME, out_dir, config, INPUTS)


@hookimpl
def secured_bio_register_pilot() -> PilotSpec:
    """Register the ``telemonitoring`` pilot."""
    return PilotSpec(
        name=NAME,
        description=(
            "Predict paediatric deterioration from vital "
            "signs (FHIR); PEWS baseline, DP federated model."
        ),
        run=run,
        status="demo-data-only",
        config_schema=HERE / "config.schema.yaml",
        rules_file=HERE.parents[1] / "workflows" / "rules" / f"{NAME}.smk",
        data_specs=('vitals', 'fhir'),
    )
