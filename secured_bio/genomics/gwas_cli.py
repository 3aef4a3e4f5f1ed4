"""``secured-bio gwas``: association tests, plaintext on one dataset or secure across sites.

``secured-bio gwas run`` reads genotypes (a VCF/BCF or a zarr store), a plink2 phenotype
file and optionally covariates and principal components, runs one test per variant and
writes ``PREFIX.<test>.tsv`` (plink column names), GWAS-SSF, plots and a JSON summary.
The work itself is :func:`run_gwas`, a library function; the click command only parses
options.

``secured-bio gwas secure`` runs the same tests across sites without pooling genotypes
(one SMPC party per site on this host) and ``secured-bio gwas party`` runs one site on its
own host; both call :mod:`secured_bio.genomics.secure_gwas`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from secured_bio.errors import ConfigError, InputFileNotFoundError
from secured_bio.genomics._options import check_options

if TYPE_CHECKING:
    from secured_bio.genomics.store import GenotypeStore

__all__ = ["gwas", "run_gwas", "GwasRun"]

logger = logging.getLogger(__name__)

Test = Literal["linear", "logistic", "allelic", "trend"]
_BINARY_TESTS = ("logistic", "allelic", "trend")
_DEFAULT_CHUNK = 1000


def _open_genotypes(vcf: Path | None, zarr: Path | None) -> GenotypeStore:
    """Open the genotype input with the store reader of secured_bio.genomics.store."""
    path = vcf if vcf is not None else zarr
    assert path is not None
    if not Path(path).exists():
        raise InputFileNotFoundError(
            "genotype input not found", where=str(path),
            expected="an existing VCF/BCF file" if vcf is not None else "a zarr store folder",
            fix="check the path given to " + ("--vcf" if vcf is not None else "--zarr"),
        )
    if vcf is not None and Path(vcf).is_dir():
        raise InputFileNotFoundError("--vcf points to a folder, not a file", where=str(vcf),
                                     expected="a VCF/BCF file", got="a folder",
                                     fix="give a zarr store with --zarr")
    if zarr is not None and not Path(zarr).is_dir():
        raise InputFileNotFoundError("--zarr points to a file, not a folder", where=str(zarr),
                                     expected="a zarr store folder", got="a file",
                                     fix="give a VCF/BCF with --vcf")
    from secured_bio.genomics.store import open_genotypes

    return open_genotypes(path)


@dataclass(frozen=True)
class GwasRun:
    """What :func:`run_gwas` did.

    Attributes
    ----------
    results
        One row per variant: the variant columns, the statistics, ``A1_FREQ`` and
        ``ERRCODE``.
    paths
        Files written (see :func:`secured_bio.genomics.sumstats.output_paths`).
    summary
        The JSON summary written.
    """

    results: pd.DataFrame
    paths: dict[str, Path]
    summary: dict[str, Any]


def _chunks(store: GenotypeStore, mask: NDArray[np.bool_] | None,
            chunk_size: int) -> Iterator[tuple[slice, NDArray[np.float64]]]:
    from secured_bio._progress import track

    total = -(-store.n_variants // chunk_size)
    yield from track(store.iter_dosage(chunk_size=chunk_size, samples=mask), "variants",
                     total=total)


def _principal_components(store: GenotypeStore, k: int, chunk_size: int) -> NDArray[np.float64]:
    """PCs of all genotype samples (mean imputation, = plink2 --pca K meanimpute)."""
    from secured_bio.genomics import pca

    if k >= store.n_samples:
        raise ConfigError(
            "too many principal components", where="--pcs",
            expected=f"fewer than the {store.n_samples} genotype samples", got=str(k),
        )
    sums: pca.AlleleSums | None = None
    for _, d in store.iter_dosage(chunk_size=chunk_size, samples=None):
        part = pca.allele_frequency_sums(d)
        sums = part if sums is None else pca.AlleleSums(
            np.concatenate([sums.alt, part.alt]), np.concatenate([sums.called, part.called]))
    assert sums is not None
    freq = pca.alt_frequency(sums)
    result = pca.principal_components(
        (d for _, d in store.iter_dosage(chunk_size=chunk_size, samples=None)),
        alt_freq=freq, n_components=k,
    )
    logger.info("computed %d principal components from %d variants", k, result.n_variants)
    return result.scores


def run_gwas(
    *,
    vcf: str | os.PathLike[str] | None = None,
    zarr: str | os.PathLike[str] | None = None,
    pheno: str | os.PathLike[str],
    test: Test,
    out: str | os.PathLike[str],
    pheno_name: str | None = None,
    covar: str | os.PathLike[str] | None = None,
    covar_names: Sequence[str] | None = None,
    pcs: int = 0,
    firth: bool | Literal["fallback"] = False,
    chunk_size: int | None = _DEFAULT_CHUNK,
) -> GwasRun:
    """Run one association test over every variant and write all outputs.

    Parameters
    ----------
    vcf, zarr
        Genotypes: exactly one of a VCF/BCF path and a zarr store.
    pheno
        plink2 phenotype file.
    test
        ``linear``, ``logistic``, ``allelic`` or ``trend``.
    out
        Output prefix; files are ``{out}.{test}.tsv`` and siblings.
    pheno_name
        Phenotype column (default: the first).
    covar, covar_names
        Covariate file and the columns to use (default all); regressions only.
    pcs
        Number of principal components of the genotypes to add as covariates.
    firth
        Logistic only: True = Firth regression for every variant (``plink2 --glm firth``),
        ``"fallback"`` = only where plain logistic fails (plink2's default), False = never
        (``--glm no-firth``).
    chunk_size
        Variants per block (memory grows with ``chunk_size x n_samples``); None = 1,000.

    Returns
    -------
    GwasRun
        Results, paths and summary.

    Raises
    ------
    ConfigError
        If the options do not fit together (two genotype inputs, Firth with another
        test, covariates with allelic/trend, an unknown column...).
    InputFileNotFoundError
        If an input file is missing.
    SchemaError, InputError
        If an input violates its spec: no phenotype ID in the VCF, non-numeric or constant
        phenotype, a binary test on a quantitative trait...
    """
    started = time.perf_counter()
    if (vcf is None) == (zarr is None):
        raise ConfigError(
            "give exactly one genotype input", where="--vcf/--zarr",
            expected="--vcf FILE or --zarr STORE", got="both" if vcf is not None else "none",
        )
    check_options(test, pheno=pheno, covar=covar, covar_names=covar_names, pcs=pcs,
                   firth=firth, chunk_size=chunk_size)
    chunk_size = _DEFAULT_CHUNK if chunk_size is None else chunk_size

    store = _open_genotypes(Path(vcf) if vcf is not None else None,
                            Path(zarr) if zarr is not None else None)
    try:
        return _run(store, vcf=vcf, zarr=zarr, pheno=pheno, test=test, out=out,
                    pheno_name=pheno_name, covar=covar, covar_names=covar_names, pcs=pcs,
                    firth=firth, chunk_size=chunk_size, started=started)
    finally:
        store.close()


def _run(
    store: GenotypeStore, *, vcf: str | os.PathLike[str] | None,
    zarr: str | os.PathLike[str] | None, pheno: str | os.PathLike[str], test: Test,
    out: str | os.PathLike[str], pheno_name: str | None, covar: str | os.PathLike[str] | None,
    covar_names: Sequence[str] | None, pcs: int, firth: bool | Literal["fallback"],
    chunk_size: int, started: float,
) -> GwasRun:
    from secured_bio.genomics import association as assoc
    from secured_bio.genomics import phenotypes as ph
    from secured_bio.genomics import sumstats

    sample_ids = [str(s) for s in store.sample_ids]
    trait = ph.load_phenotype(
        pheno, sample_ids, name=pheno_name,
        require="binary" if test in _BINARY_TESTS else None,
    )
    covariates = ph.load_covariates(covar, sample_ids, names=covar_names) if covar else None
    extra = _principal_components(store, pcs, chunk_size) if pcs else None
    samples = ph.analysis_samples(
        trait, covariates, extra=extra, extra_names=[f"PC{i + 1}" for i in range(pcs)],
    )
    y, c = samples.phenotype, samples.covariates if samples.covariates.shape[1] else None
    logger.info("%s test of '%s' on %d samples, %d covariates", test, trait.name,
                samples.n_used, len(samples.covariate_names))
    null_beta = (assoc.logistic_null_beta(y, covariates=c) if test == "logistic" else None)
    firth_mode: bool | Literal["fallback"] = firth

    parts: list[pd.DataFrame] = []
    for _, d in _chunks(store, samples.mask, chunk_size):
        if test == "linear":
            part = assoc.linear_regression(d, phenotype=y, covariates=c)
        elif test == "logistic":
            part = assoc.logistic_regression(d, is_case=y, covariates=c, firth=firth_mode,
                                             null_beta=null_beta)
        elif test == "allelic":
            part = assoc.allelic_test(d, is_case=y)
        else:
            part = assoc.trend_test(d, is_case=y)
        parts.append(part)
    stats = pd.concat(parts, ignore_index=True)
    if len(stats) != store.n_variants:  # pragma: no cover - a store bug
        raise RuntimeError("the genotype store returned a different number of variants")
    alt = np.asarray(store.alt).astype(str)
    variants = pd.DataFrame({
        "#CHROM": np.asarray(store.contig).astype(str),
        "POS": np.asarray(store.position).astype(np.int64),
        "ID": np.asarray(store.variant_id).astype(str),
        "REF": np.asarray(store.ref).astype(str),
        "ALT": alt,
        "A1": alt,
    })
    results = pd.concat([variants, stats], axis=1)

    n_cases = int(y.sum()) if trait.is_binary and test != "linear" else None
    extra_summary: dict[str, Any] = {
        "trait_kind": trait.kind,
        "trait_coding": trait.coding,
        "n_samples_genotyped": len(sample_ids),
        "n_pheno_ids_absent_from_genotypes": trait.n_absent,
        "n_covar_ids_absent_from_genotypes": covariates.n_absent if covariates else 0,
        "n_samples_missing_phenotype": samples.n_missing_phenotype,
        "n_samples_missing_covariates": samples.n_missing_covariates,
        "principal_components": pcs,
        "firth": {True: "always", False: "never", "fallback": "fallback"}[firth_mode]
        if test == "logistic" else None,
        "a1_allele": "ALT",
        "plink_equivalent": {
            "linear": "plink2 --glm omit-ref hide-covar",
            "logistic": "plink2 --glm omit-ref hide-covar "
            + {True: "firth", False: "no-firth", "fallback": "firth-fallback"}[firth_mode],
            "allelic": "plink1.9 --assoc --keep-allele-order",
            "trend": "plink1.9 --model --keep-allele-order (TREND)",
        }[test],
        "inputs": {"genotypes": str(vcf if vcf is not None else zarr), "pheno": str(pheno),
                   "covar": str(covar) if covar is not None else None},
        "elapsed_s": round(time.perf_counter() - started, 3),
    }
    paths = sumstats.write_gwas_outputs(
        results, out, test=test, trait=trait.name, n_samples=samples.n_used,
        n_cases=n_cases, n_controls=(samples.n_used - n_cases) if n_cases is not None else None,
        covariates=samples.covariate_names, summary=extra_summary,
    )
    summary = sumstats.read_summary(paths["summary"])
    return GwasRun(results=results, paths=paths, summary=summary)


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise ConfigError("empty column list", where="--covar-name",
                          expected="comma-separated column names", fix="e.g. --covar-name sex,age")
    return names


@click.group()
def gwas() -> None:
    """Genome-wide association tests: plaintext ('run') or secure across sites."""


@gwas.command("run")
@click.option("--vcf", type=click.Path(dir_okay=False, path_type=Path),
              help="Genotypes: VCF/BCF (bgzipped + indexed, or plain).")
@click.option("--zarr", type=click.Path(path_type=Path),
              help="Genotypes: zarr store written by 'secured-bio genomics ingest'.")
@click.option("--pheno", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="plink2 phenotype file (FID IID / #IID header; NA or -9 missing).")
@click.option("--pheno-name", help="Phenotype column (default: the first).")
@click.option("--covar", type=click.Path(dir_okay=False, path_type=Path),
              help="plink2 covariate file (regressions only).")
@click.option("--covar-name", help="Comma-separated covariate columns (default: all).")
@click.option("--pcs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Add K principal components of all genotype samples as covariates "
              "(= plink2 --pca K meanimpute).")
@click.option("--test", "test", required=True,
              type=click.Choice(["linear", "logistic", "allelic", "trend"]),
              help="linear/logistic = plink2 --glm; allelic = plink1.9 --assoc; "
              "trend = plink1.9 --model TREND.")
@click.option("--firth", is_flag=True,
              help="Logistic: Firth-penalised regression for every variant (plink2 firth).")
@click.option("--firth-fallback", is_flag=True,
              help="Logistic: Firth only where plain regression fails (plink2's default).")
@click.option("--chunk-size", type=click.IntRange(min=1), default=_DEFAULT_CHUNK,
              show_default=True, help="Variants per block.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Output prefix: writes PREFIX.<test>.tsv, .ssf.tsv(+meta), .png, .json.")
@click.option("--passport", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the privacy passport of the output (JSON to FILE, HTML page to "
              "FILE with the suffix .html; see secured_bio.passport).")
def run(
    vcf: Path | None, zarr: Path | None, pheno: Path, pheno_name: str | None,
    covar: Path | None, covar_name: str | None, pcs: int, test: Test, firth: bool,
    firth_fallback: bool, chunk_size: int, out: Path, passport: Path | None,
) -> None:
    """Run one association test on every variant and write plink-named results.

    \b
    Outputs (all written atomically, together):
      PREFIX.<test>.tsv                plink column names, one row per variant, A1 = ALT
      PREFIX.<test>.ssf.tsv(-meta.yaml) GWAS-SSF v1.0 summary statistics + metadata
      PREFIX.<test>.manhattan.png, .qq.png
      PREFIX.<test>.summary.json       lambda_GC, counts, genome-wide hits, format version
    """
    if firth and firth_fallback:
        raise ConfigError("--firth and --firth-fallback exclude each other",
                          where="--firth/--firth-fallback", fix="give one of them")
    mode: bool | Literal["fallback"] = True if firth else ("fallback" if firth_fallback else False)
    result = run_gwas(
        vcf=vcf, zarr=zarr, pheno=pheno, pheno_name=pheno_name, covar=covar,
        covar_names=_split(covar_name), pcs=pcs, test=test, firth=mode, out=out,
        chunk_size=chunk_size,
    )
    _passport(passport, result, [vcf or zarr])
    s = result.summary
    lam = s["lambda_gc"]
    click.echo(
        f"{test}: {s['n_variants_tested']}/{s['n_variants']} variants tested on "
        f"{s['n_samples']} samples; lambda_GC {lam if lam is None else f'{lam:.3f}'}; "
        f"{s['n_genome_wide_hits']} at P < {s['genome_wide_threshold']:g}; "
        f"results: {result.paths['table']}",
        err=True,
    )
    if s["n_pheno_ids_absent_from_genotypes"]:
        click.echo(f"note: {s['n_pheno_ids_absent_from_genotypes']} phenotype rows have an "
                   "IID absent from the genotypes (ignored)", err=True)


# ----------------------------------------------------------------- secure multi-site GWAS
def _sites(values: Sequence[str]) -> dict[str, Path]:
    """Parse repeated ``--site NAME=PATH`` options (names unique, in the order given)."""
    sites: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        name = name.strip()
        if not sep or not name or not path.strip():
            raise ConfigError("invalid --site", where="--site", expected="NAME=PATH",
                              got=f"a value without {'a name' if sep else '='}",
                              fix="e.g. --site hospital_a=/data/a.vcf.gz")
        if name in sites:
            raise ConfigError("a site is named twice", where="--site", got=f"'{name}' twice",
                              fix="give every site its own name")
        sites[name] = Path(path.strip())
    return sites


def _firth_mode(firth: bool, firth_fallback: bool) -> bool | Literal["fallback"]:
    if firth and firth_fallback:
        raise ConfigError("--firth and --firth-fallback exclude each other",
                          where="--firth/--firth-fallback", fix="give one of them")
    return True if firth else ("fallback" if firth_fallback else False)


def _analysis_options(fn: Any) -> Any:
    """Add the analysis options shared by ``gwas secure`` and ``gwas party``."""
    options = [
        click.option("--pheno", required=True,
                     type=click.Path(dir_okay=False, path_type=Path),
                     help="plink2 phenotype file holding every site's samples (each site "
                     "reads only its own rows)."),
        click.option("--pheno-name", help="Phenotype column (default: the first)."),
        click.option("--covar", type=click.Path(dir_okay=False, path_type=Path),
                     help="plink2 covariate file (regressions only)."),
        click.option("--covar-name", help="Comma-separated covariate columns (default: all)."),
        click.option("--pcs", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Add K principal components (federated PCA of securely summed "
                     "products, at most 5000 variants) as covariates."),
        click.option("--test", "test", required=True,
                     type=click.Choice(["linear", "logistic", "allelic", "trend"]),
                     help="linear/logistic = plink2 --glm; allelic = plink1.9 --assoc; "
                     "trend = plink1.9 --model TREND."),
        click.option("--firth", is_flag=True,
                     help="Logistic: Firth-penalised regression for every variant."),
        click.option("--firth-fallback", is_flag=True,
                     help="Logistic: Firth only where plain regression fails."),
        click.option("--intersect", is_flag=True,
                     help="Analyse the variants common to all sites (reported) instead of "
                     "failing when the sites' variant lists differ."),
        click.option("--master-addr", default="127.0.0.1", show_default=True,
                     help="Rendezvous address (party rank 0's host, reachable by all)."),
        click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True),
                     default=120.0, show_default=True,
                     help="Seconds to wait for every site to connect."),
        click.option("--chunk-size", type=click.IntRange(min=1),
                     help="Variants per secure block (default: from the pooled sample count)."),
        click.option("--allow-two-sites", is_flag=True,
                     help="Run with two sites although each then learns the other's sums "
                     "(pooled minus its own); refused without this flag."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _report(result: Any, test: str) -> None:
    s = result.summary
    lam = s["lambda_gc"]
    protocol = s["protocol"]
    click.echo(
        f"{test} (secure, {len(protocol['sites'])} sites): {s['n_variants_tested']}/"
        f"{s['n_variants']} variants tested on {s['n_samples']} samples; lambda_GC "
        f"{lam if lam is None else f'{lam:.3f}'}; {s['n_genome_wide_hits']} at "
        f"P < {s['genome_wide_threshold']:g}"
        + (f"; results: {result.paths['table']}" if result.paths else ""),
        err=True,
    )
    sent = ", ".join(f"{n} {b / 1e6:.2f} MB" for n, b in protocol["bytes_sent"].items())
    secs = max(protocol["seconds"].values())
    click.echo(f"protocol: sent {sent}; slowest site {secs:.1f} s; links: "
               f"{protocol['transport']['kind']}"
               + (" (mutual TLS + end-to-end sealed)" if protocol["transport"]["encrypted"]
                  else " (unencrypted)"), err=True)
    if protocol.get("two_site_disclosure"):
        click.echo("warning: " + protocol["two_site_disclosure"], err=True)
    dropped = {n: k for n, k in result.dropped_variants.items() if k}
    if protocol["intersect"]:
        click.echo("intersect: " + (", ".join(f"{n} dropped {k} variants"
                                             for n, k in dropped.items()) or "no variant dropped")
                   + f"; {protocol['variants_analysed']} analysed", err=True)


def _passport(path: Path | None, result: Any, inputs: Sequence[Any]) -> None:
    """Write the privacy passport of the summary statistics (``--passport``)."""
    if path is None or not result.paths:
        return
    from secured_bio.passport import build_passport, input_record, write_passport

    ctx = click.get_current_context()
    records = [input_record(i[1], id=i[0], site=i[0], role="genotypes") if isinstance(i, tuple)
               else input_record(i, role="genotypes") for i in inputs if i is not None]
    paths = {k: Path(v) for k, v in result.paths.items()}
    write_passport(build_passport(
        paths["table"], kind="gwas_summary_statistics", report=result.summary,
        command=ctx.command_path, parameters=ctx.params, inputs=records,
        companions=[v for k, v in paths.items() if k != "table" and v.is_file()]), path)


@gwas.command("secure")
@click.option("--site", "site", multiple=True, required=True, metavar="NAME=PATH",
              help="A site and its genotypes (VCF/BCF or zarr store); repeat per site, "
              "rank order. Each runs as its own process.")
@_analysis_options
@click.option("--master-port", type=click.IntRange(1, 65535),
              help="Rendezvous port (default: a free one).")
@click.option("--links", type=click.Choice(["gloo", "relay"]), default="gloo",
              show_default=True,
              help="gloo: loopback TCP between the site processes (one trusted host). relay: "
              "as across hosts - every site gets its own key pair and talks through a relay "
              "process over mutual TLS, messages sealed end to end (see SECURITY.md).")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Output prefix: writes PREFIX.<test>.tsv, .ssf.tsv(+meta), .png, .json.")
@click.option("--passport", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the privacy passport of the output (JSON to FILE, HTML page to "
              "FILE with the suffix .html; see secured_bio.passport).")
def secure(
    site: tuple[str, ...], pheno: Path, pheno_name: str | None, covar: Path | None,
    covar_name: str | None, pcs: int, test: Test, firth: bool, firth_fallback: bool,
    intersect: bool, master_addr: str, timeout_s: float, chunk_size: int | None,
    allow_two_sites: bool, master_port: int | None, links: str, out: Path,
    passport: Path | None,
) -> None:
    """Secure multi-site GWAS: one party per site on this host, only pooled sums revealed.

    Every site's process reads only its own genotypes and its own phenotype/covariate rows,
    computes its per-variant sums locally and adds them with the other sites' by secure
    aggregation; results equal the pooled analysis ('gwas run' on the merged cohort).

    \b
    Outputs: as 'gwas run', and the summary JSON has a 'protocol' section (sites, bytes
    sent per party, seconds, reveal set). For sites on different hosts use 'gwas party'.
    """
    from secured_bio.genomics.secure_gwas import secure_gwas

    result = secure_gwas(
        _sites(site), pheno=pheno, test=test, out=out, pheno_name=pheno_name, covar=covar,
        covar_names=_split(covar_name), pcs=pcs, firth=_firth_mode(firth, firth_fallback),
        intersect=intersect, master_addr=master_addr, master_port=master_port,
        timeout_s=timeout_s, chunk_size=chunk_size, links=links,  # type: ignore[arg-type]
        allow_two_sites=allow_two_sites,
    )
    _passport(passport, result, list(_sites(site).items()))
    _report(result, test)


@gwas.command("party")
@click.option("--site", "site", required=True, metavar="NAME=PATH",
              help="This site's name and genotypes (VCF/BCF or zarr store).")
@click.option("--relay", metavar="HOST:PORT",
              help="The relay every site connects out to (secured-bio smpc relay).")
@click.option("--roster", type=click.Path(dir_okay=False, path_type=Path),
              help="The run's roster: every site's certificate in rank order and the relay's "
              "(secured-bio smpc roster).")
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path),
              help="This site's private key (secured-bio smpc keygen; NAME.key.pem).")
@click.option("--cert", type=click.Path(dir_okay=False, path_type=Path),
              help="This site's certificate (NAME.cert.pem; must be on the roster).")
@click.option("--rank", type=click.IntRange(min=0),
              help="This site's party rank (with --relay: follows from the roster; "
              "0 writes the outputs).")
@click.option("--world-size", type=click.IntRange(min=2),
              help="Number of sites (with --relay: from the roster).")
@_analysis_options
@click.option("--unauthenticated-gloo", is_flag=True,
              help="Talk over torch.distributed/gloo TCP instead of the relay: NOT encrypted "
              "and keys not authenticated (anyone between the sites can read the revealed "
              "sums or impersonate a site). Only inside a trusted tunnel (WireGuard/SSH).")
@click.option("--master-port", type=click.IntRange(1, 65535),
              help="gloo only: rendezvous port on --master-addr.")
@click.option("--interface", help="gloo only: network interface (e.g. eth0).")
@click.option("--out", type=click.Path(path_type=Path),
              help="Output prefix (rank 0 writes; required there).")
@click.option("--passport", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Rank 0: also write the privacy passport of the output (JSON to FILE, "
              "HTML page to FILE with the suffix .html; see secured_bio.passport).")
def party(
    site: str, relay: str | None, roster: Path | None, key: Path | None, cert: Path | None,
    rank: int | None, world_size: int | None, pheno: Path, pheno_name: str | None,
    covar: Path | None, covar_name: str | None, pcs: int, test: Test, firth: bool,
    firth_fallback: bool, intersect: bool, master_addr: str, timeout_s: float,
    chunk_size: int | None, allow_two_sites: bool, unauthenticated_gloo: bool,
    master_port: int | None, interface: str | None, out: Path | None,
    passport: Path | None,
) -> None:
    """Run ONE site of a secure GWAS on this host (start one per site, same options).

    Sites connect out to a relay over mutual TLS; only sites whose certificates are on the
    roster are let in, and messages are sealed end to end (the relay sees only sizes).

    \b
    Once, before the run:
      secured-bio smpc keygen --name a --out keys/      (at each site; send a.cert.pem)
      secured-bio smpc keygen --name relay --out keys/  (at the relay)
      secured-bio smpc roster --party a.cert.pem --party b.cert.pem --party c.cert.pem \\
          --relay relay.cert.pem --out roster.json      (the coordinator; send to all)
      secured-bio smpc relay --roster roster.json --key relay.key.pem \\
          --cert relay.cert.pem --listen 0.0.0.0:7443
    \b
    Then at each site (the one listed first on the roster writes --out):
      secured-bio gwas party --site a=a.vcf.gz --relay relay.example.org:7443 \\
          --roster roster.json --key keys/a.key.pem --cert keys/a.cert.pem \\
          --pheno p.tsv --test linear --out res
    """
    from secured_bio.genomics.secure_gwas import run_site
    from secured_bio.privacy.smpc import LinkConfig, read_roster

    link = None
    if unauthenticated_gloo:
        if relay is not None:
            raise ConfigError("--relay and --unauthenticated-gloo exclude each other",
                              where="--relay/--unauthenticated-gloo", fix="give one of them")
        missing = [o for o, v in (("--rank", rank), ("--world-size", world_size),
                                  ("--master-port", master_port)) if v is None]
        if missing:
            raise ConfigError("gloo needs the rendezvous options", where=", ".join(missing),
                              fix="give --rank, --world-size and --master-port")
    else:
        missing = [o for o, v in (("--relay", relay), ("--roster", roster), ("--key", key),
                                  ("--cert", cert)) if v is None]
        if missing:
            raise ConfigError(
                "sites talk through an authenticated, encrypted relay", where=", ".join(missing),
                expected="--relay HOST:PORT --roster FILE --key FILE --cert FILE",
                fix="see 'secured-bio gwas party --help' (or, inside a trusted tunnel only, "
                "--unauthenticated-gloo)",
            )
        assert relay is not None and roster is not None and key is not None and cert is not None
        host, sep, port_s = relay.rpartition(":")
        if not sep or not host or not port_s.isdigit() or not 0 < int(port_s) < 65536:
            raise ConfigError("invalid relay address", where="--relay",
                              expected="HOST:PORT", got=repr(relay))
        link = LinkConfig(host.strip("[]"), int(port_s), str(roster), str(key), str(cert))
        r = read_roster(roster)
        world_size = world_size or len(r.parties)
        if rank is None:
            rank = r.rank_of_file(cert)
            if rank is None:
                raise ConfigError("this site's certificate is not on the roster",
                                  where=f"--cert {cert}",
                                  fix="ask the coordinator to add it (secured-bio smpc roster)")
    assert rank is not None and world_size is not None
    if rank >= world_size:
        raise ConfigError("invalid party rank", where="--rank",
                          expected=f"0..{world_size - 1}", got=str(rank))
    if rank == 0 and out is None:
        raise ConfigError("party rank 0 writes the outputs", where="--out",
                          fix="give --out PREFIX to the rank 0 party")
    ((name, path),) = _sites([site]).items()
    result = run_site(
        rank, world_size, name, path, pheno=pheno, test=test, out=out, pheno_name=pheno_name,
        covar=covar, covar_names=_split(covar_name), pcs=pcs,
        firth=_firth_mode(firth, firth_fallback), intersect=intersect,
        master_addr=master_addr, master_port=master_port, timeout_s=timeout_s,
        chunk_size=chunk_size, interface=interface, link=link, allow_two_sites=allow_two_sites,
    )
    if rank == 0:
        _passport(passport, result, [(name, path)])
    _report(result, test)
