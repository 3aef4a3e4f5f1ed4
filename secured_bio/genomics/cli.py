"""``secured-bio genomics``: ingest VCF/BCF into a genotype store, and genotype QC.

Loaded lazily by :mod:`secured_bio.cli` (``LAZY_GROUPS``); errors raised here are turned into
one-line messages and exit codes by ``secured_bio.cli.main``.
"""

from __future__ import annotations

from pathlib import Path

import click

from secured_bio.genomics.bgen import REF_ALLELE_MODES
from secured_bio.genomics.ingest import MULTIALLELIC_MODES
from secured_bio.genomics.store import DEFAULT_CHUNK_SIZE

_FRACTION = click.FloatRange(0.0, 1.0)


@click.group()
def genomics() -> None:
    """Genotype data: ingest VCF/BCF, PLINK 2 .pgen or BGEN into a zarr store, and QC.

    \b
    secured-bio genomics ingest --vcf site1.vcf.gz --out site1.zarr
    secured-bio genomics ingest --pgen site2 --out site2.zarr
    secured-bio genomics ingest --bgen s3.bgen --sample s3.sample --ref-allele first --out s3.zarr
    secured-bio genomics export-vcz site1.zarr site1.vcz
    secured-bio genomics qc --zarr site1.zarr --out qc/site1 --min-call-rate 0.98
    """


@genomics.command()
@click.option("--vcf", "vcf", type=click.Path(path_type=Path),
              help="VCF (plain, bgzipped or gzipped) or BCF file.")
@click.option("--pgen", "pgen", type=click.Path(path_type=Path), metavar="PREFIX",
              help="Or a PLINK 2 fileset: PREFIX.pgen/.pvar/.psam (hard calls; "
                   "a path ending in .pgen works too).")
@click.option("--bgen", "bgen", type=click.Path(path_type=Path),
              help="Or a BGEN v1.2/v1.3 file (probabilities become plink2's hard calls).")
@click.option("--sample", "sample", type=click.Path(path_type=Path),
              help="Oxford .sample file for --bgen (needed when the BGEN stores no IDs).")
@click.option("--ref-allele", type=click.Choice(REF_ALLELE_MODES), default=None,
              help="Which BGEN allele is REF (plink2 --bgen ref-first/ref-last); required "
                   "with --bgen. plink2 --export bgen-1.x writes REF last.")
@click.option("--hard-call-threshold", type=_FRACTION, default=0.1, show_default=True,
              help="BGEN: keep a call when its dosage is within this of 0/1/2 (plink2's).")
@click.option("--import-dosage-certainty", type=_FRACTION, default=0.0, show_default=True,
              help="BGEN: missing when the largest genotype probability is below this "
                   "(plink2's; 0 = off).")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Store folder to write (e.g. site1.zarr); replaced only when complete.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None,
              help="Variants per chunk; memory is about 8 bytes x chunk size x samples "
                   f"[default: at most 128 MiB of dosages per chunk, at most "
                   f"{DEFAULT_CHUNK_SIZE:,} variants].")
@click.option("--multiallelic", type=click.Choice(MULTIALLELIC_MODES), default="split",
              show_default=True,
              help="split: one biallelic variant per ALT (as bcftools norm -m-any); skip: drop.")
@click.option("--region", default=None, metavar="CONTIG[:START-END]",
              help="Read only this region through the .tbi/.csi index (VCF/BCF only).")
def ingest(vcf: Path | None, pgen: Path | None, bgen: Path | None, sample: Path | None,
           ref_allele: str | None, hard_call_threshold: float,
           import_dosage_certainty: float, out: Path, chunk_size: int | None,
           multiallelic: str, region: str | None) -> None:
    """Stream a VCF/BCF, PLINK 2 .pgen or BGEN file into a chunked, compressed zarr v3 store.

    Prints one line: samples, variants, and how many multi-allelic records were split or
    skipped. Missing, phased, haploid and half-missing calls are kept as they are.
    A --vcf path ending in .pgen is read as a PLINK 2 fileset, one ending in .bgen as BGEN.
    """
    from secured_bio.errors import ConfigError

    if vcf is not None and pgen is None and vcf.name.lower().endswith(".pgen"):
        vcf, pgen = None, vcf  # detected by extension
    if vcf is not None and bgen is None and vcf.name.lower().endswith(".bgen"):
        vcf, bgen = None, vcf
    given = [o for o, v in (("--vcf", vcf), ("--pgen", pgen), ("--bgen", bgen)) if v is not None]
    if len(given) != 1:
        raise ConfigError("give exactly one genotype input", where="--vcf/--pgen/--bgen",
                          expected="--vcf FILE, --pgen PREFIX or --bgen FILE",
                          got=" and ".join(given) if given else "none")
    if bgen is None and (sample is not None or ref_allele is not None):
        raise ConfigError("--sample and --ref-allele apply to --bgen only",
                          where="--sample/--ref-allele", fix="drop them, or give --bgen")
    if bgen is not None:
        if region is not None:
            raise ConfigError("--region applies to VCF/BCF input only", where="--region",
                              fix="drop --region, or subset first with plink2 --chr/--from-bp")
        if ref_allele is None:
            raise ConfigError("--bgen needs --ref-allele first or last", where="--ref-allele",
                              expected="first or last (plink2's ref-first/ref-last)",
                              got="none",
                              fix="--ref-allele last for files from plink2 --export bgen-1.x; "
                                  "first for UK Biobank imputed BGENs")
        from secured_bio.genomics.bgen import ingest_bgen

        report = ingest_bgen(bgen, out, ref_allele=ref_allele, sample=sample,
                             hard_call_threshold=hard_call_threshold,
                             import_dosage_certainty=import_dosage_certainty,
                             chunk_size=chunk_size, multiallelic=multiallelic)
    elif pgen is not None:
        if region is not None:
            raise ConfigError("--region applies to VCF/BCF input only", where="--region",
                              fix="drop --region, or subset first with plink2 --chr/--from-bp")
        from secured_bio.genomics.pgen import ingest_pgen

        report = ingest_pgen(pgen, out, chunk_size=chunk_size, multiallelic=multiallelic)
    else:
        from secured_bio.genomics.ingest import ingest_vcf

        assert vcf is not None
        report = ingest_vcf(vcf, out, chunk_size=chunk_size, multiallelic=multiallelic,
                            region=region)
    click.echo(report.summary())


@genomics.command()
@click.option("--zarr", "zarr_path", type=click.Path(path_type=Path),
              help="Genotype store written by 'secured-bio genomics ingest'.")
@click.option("--vcf", "vcf", type=click.Path(path_type=Path),
              help="Or a VCF/BCF, ingested into a temporary store first.")
@click.option("--out", "prefix", required=True, type=click.Path(path_type=Path),
              help="Output prefix: writes PREFIX.afreq/.hardy/.vmiss/.smiss/.het/.qc.json.")
@click.option("--min-call-rate", type=_FRACTION, default=None,
              help="Keep variants with call rate >= X (plink2 --geno 1-X).")
@click.option("--min-maf", type=_FRACTION, default=None,
              help="Keep variants with minor allele frequency >= X (plink2 --maf).")
@click.option("--hwe-p", type=_FRACTION, default=None,
              help="Keep variants with HWE exact-test p >= X (plink2 --hwe).")
@click.option("--max-sample-missing", type=_FRACTION, default=None,
              help="Keep samples with missing fraction <= X (plink2 --mind; applied first).")
@click.option("--hwe-midp", is_flag=True, help="Mid-p HWE values (plink2 --hardy midp).")
def qc(zarr_path: Path | None, vcf: Path | None, prefix: Path, min_call_rate: float | None,
       min_maf: float | None, hwe_p: float | None, max_sample_missing: float | None,
       hwe_midp: bool) -> None:
    """Per-variant and per-sample QC with plink2's file formats, and threshold filters.

    \b
    Reports (plink2 column names, numbers printed as plink2 prints them):
      PREFIX.afreq  PREFIX.hardy  PREFIX.vmiss  PREFIX.smiss  PREFIX.het
    Reports describe all variants and samples.  With filters, also writes
    PREFIX.qc_pass.variants.tsv and PREFIX.qc_pass.samples.tsv (what passes), and
    PREFIX.qc.json always holds the counts.
    """
    from secured_bio.genomics.qc import qc_filter, write_qc_filter, write_qc_reports
    from secured_bio.genomics.store import open_genotypes

    if (zarr_path is None) == (vcf is None):
        raise click.UsageError("give exactly one of --zarr and --vcf")
    source = zarr_path if zarr_path is not None else vcf
    assert source is not None
    filters = any(x is not None for x in (min_call_rate, min_maf, hwe_p, max_sample_missing))
    with open_genotypes(source) as store:
        result = qc_filter(store, min_call_rate=min_call_rate, min_maf=min_maf, hwe_p=hwe_p,
                           max_sample_missing=max_sample_missing, midp=hwe_midp,
                           progress=True)
        files = write_qc_reports(result.stats, prefix)
        files += write_qc_filter(result, prefix, source=source.name, pass_lists=filters)
    c = result.counts
    line = f"QC of {source.name}: {c['samples']} samples, {c['variants']} variants"
    if filters:
        line += (f"; kept {c['samples_kept']} samples and {c['variants_kept']} variants "
                 f"(removed: {c['samples_removed_missing']} samples for missingness, "
                 f"{c['variants_removed_call_rate']} variants for call rate, "
                 f"{c['variants_removed_hwe']} for HWE, {c['variants_removed_maf']} for MAF)")
    click.echo(f"{line} -> {prefix}.{{{','.join(f.name.split('.', 1)[1] for f in files)}}}")


@genomics.command("export-vcz")
@click.argument("store", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
def export_vcz_cmd(store: Path, out: Path) -> None:
    """Write STORE (a genotype store, or a VCF/BCF) as VCF Zarr to OUT (e.g. site1.vcz).

    The result follows the VCF Zarr spec 0.4 (zarr v2, as bio2zarr writes it): vcztools
    view/query and sgkit read it.  QUAL, FILTER, INFO and other FORMAT fields are not
    kept by the store, so they are written as missing.  A VCF Zarr store made by
    vcf2zarr needs no conversion: qc, gwas run and gwas secure read it with --zarr.
    """
    from secured_bio.genomics.vcz import export_vcz

    dest = export_vcz(store, out)
    click.echo(f"exported {store.name} as VCF Zarr -> {dest}")
