"""Genomics: VCF/BCF ingest into a versioned zarr genotype store, QC, association tests.

- :func:`ingest_vcf` streams a VCF/BCF into a chunked, compressed zarr v3 store
  (format ``secured_bio.genotypes``); :func:`open_genotypes` reads it back (or ingests a
  VCF on the fly) as a :class:`GenotypeStore` that yields dosage chunks.
- :func:`qc_stats`, :func:`qc_filter`, :func:`write_qc_reports` and
  :func:`write_qc_filter` compute per-variant and per-sample QC equal to
  ``plink2 --freq --hardy --missing --het``, with threshold filters;
  :func:`hardy_weinberg_test` is the exact test of Wigginton et al. (2005).

Heavy dependencies (zarr, pysam, scipy) are imported only when a function runs.
"""

from secured_bio.genomics.ingest import MULTIALLELIC_MODES, IngestReport, ingest_vcf
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
    DEFAULT_CHUNK_SIZE,
    FILL_ALLELE,
    FORMAT_NAME,
    FORMAT_VERSION,
    MISSING_ALLELE,
    VARIABLES,
    GenotypeStore,
    Variable,
    genotype_dosage,
    open_genotypes,
)

# Association tests (association.py, phenotypes.py, sumstats.py) add their public names
# below and to __all__; that part is maintained by the engineer who owns those modules.

__all__ = [
    # store
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "DEFAULT_CHUNK_SIZE",
    "MISSING_ALLELE",
    "FILL_ALLELE",
    "VARIABLES",
    "Variable",
    "GenotypeStore",
    "open_genotypes",
    "genotype_dosage",
    # ingest
    "IngestReport",
    "ingest_vcf",
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
]
