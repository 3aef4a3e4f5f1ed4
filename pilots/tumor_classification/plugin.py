"""Pilot plugin ``tumor_classification``: real-time brain tumour classification.

Tumour classes are predicted from fMRI / functional-ultrasound connectivity.

Sites hold 4D NIfTI series and a label atlas; connectivity, models and federation are
built under issue 4. Today the pilot makes and validates its demo cohort.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from secured_bio.pilots import PilotSpec, hookimpl
from secured_bio.pilots.demo import InputRule, demo_data_run

NAME = "tumor_classification"
HERE = Path(__file__).resolve().parent
INPUTS: list[InputRule] = [
    ("nifti", "site*/sub-*/func/*.nii.gz", {"atlas": "{data}/atlas.nii.gz"}),
]


def run(out_dir: Path, config: Mapping[str, Any]) -> dict[str, Any]:
    """Run the pilot on its demo cohort (or ``config['data']``) and return its metrics."""
    return demo_data_run(NAME, out_dir, config, INPUTS)


@hookimpl
def secured_bio_register_pilot() -> PilotSpec:
    """Register the ``tumor_classification`` pilot."""
    return PilotSpec(
        name=NAME,
        description=(
            "Federated (Flower) MONAI tumour classifier "
            "on fMRI/fUS connectivity, with fairness audit."
        ),
        run=run,
        status="demo-data-only",
        config_schema=HERE / "config.schema.yaml",
        rules_file=HERE.parents[1] / "workflows" / "rules" / f"{NAME}.smk",
        data_specs=('nifti',),
    )
