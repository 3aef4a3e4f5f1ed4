"""Pilot plugin ``genomic_access``: federated / secure access to genomic data of large cohorts.

Each site ingests its own VCF into a genotype store and runs QC; the sites then run a
secure multi-site GWAS (one process per site, secure sums of per-site statistics) whose
result equals a pooled plink2 run. The same steps run in-process (``pilots run``) or as
Snakemake rules (``workflows/rules/genomic_access.smk``, then ``pilots collect``); both
write one layout::

    demo/                    the cohort (when simulated): siteN.vcf.gz(+.tbi), pheno.tsv, covar.tsv
    stores/siteN.zarr        per-site genotype stores
    qc/siteN.*               per-site QC reports (plink2 formats) and siteN.qc.json
    gwas/cohort.<test>.*     secure GWAS results, GWAS-SSF, Manhattan/QQ plots, summary JSON
    metrics.json
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from secured_bio._progress import track
from secured_bio.errors import InputFileNotFoundError, SchemaError
from secured_bio.pilots import PilotSpec, hookimpl
from secured_bio.pilots.demo import InputRule, cohort_sites, prepare_cohort, validate_inputs

NAME = "genomic_access"
HERE = Path(__file__).resolve().parent
INPUTS: list[InputRule] = [
    ("vcf", "site*.vcf.gz", {}),
    ("phenotype", "pheno.tsv", {}),
    ("phenotype", "covar.tsv", {}),
]
GWAS_PREFIX = "gwas/cohort"
BINARY_TESTS = ("logistic", "allelic", "trend")


def _sites(data: Path) -> list[str]:
    sites = cohort_sites(data) or sorted(p.name.split(".")[0] for p in data.glob("*.vcf.gz"))
    if not sites:
        raise InputFileNotFoundError(
            "no site VCF in the cohort folder", where=str(data),
            expected="siteN.vcf.gz files (layout of 'secured-bio demo genomic_access')",
        )
    return sites


def _pheno_name(config: Mapping[str, Any], traits: Mapping[str, str]) -> str | None:
    """Return the configured phenotype, or the first whose trait type suits the test."""
    if config.get("pheno_name"):
        return str(config["pheno_name"])
    want_binary = config["test"] in BINARY_TESTS
    for name, kind in traits.items():
        if kind.startswith("binary") == want_binary:
            return name
    raise SchemaError(
        f"no {'binary' if want_binary else 'quantitative'} phenotype for the {config['test']} "
        "test", where="pheno.tsv", expected="a column of that trait type",
        got=", ".join(f"{n}: {k}" for n, k in traits.items()),
        fix="set pheno_name or choose another test",
    )


def run(out_dir: Path, config: Mapping[str, Any]) -> dict[str, Any]:
    """Ingest and QC each site, run the secure GWAS, return the pilot's metrics."""
    from secured_bio.genomics import (
        ingest_vcf,
        open_genotypes,
        qc_filter,
        write_qc_filter,
        write_qc_reports,
    )
    from secured_bio.genomics.secure_gwas import secure_gwas

    data, source = prepare_cohort(NAME, out_dir, config)
    metrics = validate_inputs(NAME, data, source, out_dir, INPUTS)
    reports = json.loads((out_dir / "validation.json").read_text(encoding="utf-8"))
    traits = next(r["summary"].get("traits", {}) for r in reports if r["path"] == "pheno.tsv")
    stores = {}
    for site in track(_sites(data), "genomic_access: ingest + QC per site"):
        store = out_dir / "stores" / f"{site}.zarr"
        ingest_vcf(data / f"{site}.vcf.gz", store, progress=False)
        with open_genotypes(store) as st:
            result = qc_filter(st)
            write_qc_reports(result.stats, out_dir / "qc" / site)
            write_qc_filter(result, out_dir / "qc" / site, source=f"{site}.vcf.gz",
                            pass_lists=False)
        stores[site] = store
    covar = data / "covar.tsv"
    secure_gwas(
        stores, pheno=data / "pheno.tsv", pheno_name=_pheno_name(config, traits),
        covar=covar if covar.is_file() and config["test"] in ("linear", "logistic") else None,
        pcs=int(config["pcs"]), test=str(config["test"]), out=out_dir / GWAS_PREFIX,
    )
    return {**metrics, **collect(out_dir, {**config, "data": str(data)})}


def collect(root: Path, config: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics from the outputs under ``root`` (per-site QC, secure GWAS summary, truth)."""
    import numpy as np

    from secured_bio.genomics import read_plink_table, read_summary
    from secured_bio.genomics.sumstats import output_paths

    data = Path(config["data"]) if config.get("data") else root / "demo"
    sites = _sites(data)
    qc = {}
    for site in sites:
        f = root / "qc" / f"{site}.qc.json"
        if not f.is_file():
            raise InputFileNotFoundError("QC summary missing", where=str(f),
                                         fix="run the genomic_access QC rule for that site")
        qc[site] = json.loads(f.read_text(encoding="utf-8"))["counts"]
    paths = output_paths(root / GWAS_PREFIX, test=str(config["test"]))
    summary = read_summary(paths["summary"])
    gwas = {k: summary[k] for k in ("test", "n_variants", "n_variants_tested", "lambda_gc",
                                    "n_genome_wide_hits", "min_p", "n_samples",
                                    "principal_components", "inflation_note")
            if k in summary}
    gwas["protocol"] = summary.get("protocol")
    gwas["outputs"] = {k: p.relative_to(root).as_posix() for k, p in paths.items()}
    truth_file = data / "truth.json"
    if truth_file.is_file():  # demo cohorts know their planted causal variants
        causal = {c["id"] for c in json.loads(truth_file.read_text(encoding="utf-8"))["causal"]}
        table = read_plink_table(paths["table"])
        p = table["P"].to_numpy(dtype=float)
        rank = np.argsort(np.where(np.isnan(p), np.inf, p))
        top = set(table["ID"].to_numpy()[rank[: len(causal)]])
        hits = set(table["ID"].to_numpy()[p < 5e-8])
        gwas["planted_causal"] = {
            "n": len(causal),
            "genome_wide_significant": len(causal & hits),
            "in_top_n": len(causal & top),
            "other_genome_wide_hits": len(hits - causal),  # often in LD with a causal one
        }
    return {"sites": sites, "qc": qc, "gwas": gwas}


@hookimpl
def secured_bio_register_pilot() -> PilotSpec:
    """Register the ``genomic_access`` pilot."""
    return PilotSpec(
        name=NAME,
        description=(
            "Secure multi-site GWAS (one process per site, secure sums) on VCF cohorts; "
            "equals pooled PLINK."
        ),
        run=run,
        collect=collect,
        status="ready",
        config_schema=HERE / "config.schema.yaml",
        rules_file=HERE.parents[1] / "workflows" / "rules" / f"{NAME}.smk",
        data_specs=("vcf", "phenotype"),
    )
