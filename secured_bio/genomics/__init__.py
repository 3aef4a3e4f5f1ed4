"""Genomics: VCF/BCF ingest into a versioned zarr genotype store, QC, association tests.

- :func:`ingest_vcf` streams a VCF/BCF into a chunked, compressed zarr v3 store
  (format ``secured_bio.genotypes``), :func:`ingest_pgen` a PLINK 2 ``.pgen`` fileset,
  :func:`ingest_bgen` a BGEN v1.2/v1.3 file (plink2's hard calls);
  :func:`open_genotypes` reads it back (or ingests a VCF on the fly, or reads a VCF Zarr
  store of bio2zarr in place) as a :class:`GenotypeStore` that yields dosage chunks;
  :func:`export_vcz` writes a store as VCF Zarr.
- :func:`qc_stats`, :func:`qc_filter`, :func:`write_qc_reports` and
  :func:`write_qc_filter` compute per-variant and per-sample QC equal to
  ``plink2 --freq --hardy --missing --het``, with threshold filters;
  :func:`hardy_weinberg_test` is the exact test of Wigginton et al. (2005).
- Association tests equal to plink (allelic, trend, linear, logistic/Firth) built from
  per-variant sums that sites can add securely (:mod:`~secured_bio.genomics.association`),
  phenotype/covariate files as plink2 reads them (:mod:`~secured_bio.genomics.phenotypes`),
  PCA from summed products (:mod:`~secured_bio.genomics.pca`) and summary statistics
  writers with plots (:mod:`~secured_bio.genomics.sumstats`); :func:`run_gwas` runs it all.

Heavy dependencies (zarr, pysam, scipy, pandas) are imported only when a function runs;
the association names below are loaded on first access.
"""

from typing import Any

from secured_bio.genomics.bgen import ingest_bgen
from secured_bio.genomics.ingest import MULTIALLELIC_MODES, IngestReport, ingest_vcf
from secured_bio.genomics.pgen import ingest_pgen
from secured_bio.genomics.qc import (
    QCFilter,
    QCStats,
    SampleQC,
    VariantQC,
    hardy_weinberg_test,
    qc_filter,
    qc_stats,
    write_qc_filter,
    write_qc_reports,
)
from secured_bio.genomics.store import (
    CHUNK_TARGET_BYTES,
    DEFAULT_CHUNK_SIZE,
    FILL_ALLELE,
    FORMAT_NAME,
    FORMAT_VERSION,
    MISSING_ALLELE,
    VARIABLES,
    GenotypeStore,
    Variable,
    auto_chunk_size,
    genotype_dosage,
    open_genotypes,
    open_vcf_zarr,
)
from secured_bio.genomics.vcz import export_vcz

# Association names load lazily (PEP 562): they pull in pandas and scipy, which the
# ingest/QC command line does not need at start-up.
_LAZY = {
    "secured_bio.genomics.phenotypes": (
        "Trait", "Covariates", "AnalysisSamples", "read_pheno_table", "load_phenotype",
        "load_covariates", "analysis_samples", "trait_kind",
    ),
    "secured_bio.genomics.association": (
        "CaseControlSums", "LinearSums", "LogisticSums", "LogisticFit", "case_control_sums",
        "allelic_finalize", "trend_finalize", "allelic_test", "trend_test", "linear_sums",
        "linear_finalize", "linear_regression", "logistic_sums", "logistic_null_beta",
        "fit_logistic", "logistic_finalize", "separation_errcodes", "logistic_regression",
    ),
    "secured_bio.genomics.pca": (
        "principal_components", "PCAResult", "AlleleSums", "allele_frequency_sums",
        "alt_frequency", "covariance_sums", "pca_from_covariance", "project",
    ),
    "secured_bio.genomics.sumstats": (
        "write_gwas_outputs", "genomic_inflation", "read_summary", "read_plink_table",
        "PLINK_COLUMNS",
    ),
    "secured_bio.genomics.gwas_cli": ("run_gwas",),
}
_LAZY_NAMES = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'secured_bio.genomics' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    # store
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CHUNK_TARGET_BYTES",
    "DEFAULT_CHUNK_SIZE",
    "MISSING_ALLELE",
    "FILL_ALLELE",
    "VARIABLES",
    "Variable",
    "GenotypeStore",
    "open_genotypes",
    "open_vcf_zarr",
    "ingest_bgen",
    "export_vcz",
    "auto_chunk_size",
    "genotype_dosage",
    # ingest
    "IngestReport",
    "ingest_vcf",
    "ingest_pgen",
    "MULTIALLELIC_MODES",
    # qc
    "QCStats",
    "VariantQC",
    "SampleQC",
    "QCFilter",
    "qc_stats",
    "qc_filter",
    "hardy_weinberg_test",
    "write_qc_reports",
    "write_qc_filter",
    # association (lazy)
    *_LAZY_NAMES,
]
