"""Pilot plugin ``genomic_access``: federated / secure access to genomic data of very large cohorts.

Sites hold bgzipped, tabix-indexed VCFs; the analysis (secure GWAS equal to a pooled
plink2 run) is built under issue 3. Today the pilot makes and validates its demo cohort.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from secured_bio.pilots import PilotSpec, hookimpl
from secured_bio.pilots.demo import InputRule, demo_data_run

NAME = "genomic_access"
HERE = Path(__file__).resolve().parent
INPUTS: list[InputRule] = [
    ("vcf", "site*.vcf.gz", {}),
    ("phenotype", "pheno.tsv", {}),
    ("phenotype", "covar.tsv", {}),
]


def run(out_dir: Path, config: Mapping[str, Any]) -> dict[str, Any]:
    """Run the pilot on its demo cohort (or ``config['data']``) and return its metrics."""
    return demo_data_run(NAME, out_dir, config, INPUTS)


@hookimpl
def secured_bio_register_pilot() -> PilotSpec:
    """Register the ``genomic_access`` pilot."""
    return PilotSpec(
        name=NAME,
        description=(
            "Secure multi-site GWAS (CrypTen "
            "parties) on VCF cohorts; equals pooled PLINK."
        ),
        run=run,
        status="demo-data-only",
        config_schema=HERE / "config.schema.yaml",
        rules_file=HERE.parents[1] / "workflows" / "rules" / f"{NAME}.smk",
        data_specs=('vcf', 'phenotype'),
    )
