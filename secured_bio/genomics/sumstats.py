"""Summary statistics outputs: plink2-named tables, GWAS-SSF, JSON summary and plots.

A GWAS writes, for ``PREFIX`` and a test ``T`` (``linear``, ``logistic``, ``allelic``,
``trend``):

- ``PREFIX.T.tsv``: one row per variant with plink's column names (:data:`PLINK_COLUMNS`);
  missing values are ``NA``;
- ``PREFIX.T.ssf.tsv`` and ``PREFIX.T.ssf.tsv-meta.yaml``: GWAS-SSF v1.0 (GWAS Catalog
  summary statistics format; missing values ``#NA``) and its metadata;
- ``PREFIX.T.manhattan.png`` and ``PREFIX.T.qq.png``;
- ``PREFIX.T.summary.json``: counts, genomic inflation factor lambda, an
  ``inflation_note`` saying what lambda suggests (:func:`inflation_note`) and the format
  name/version (:data:`FORMAT_NAME`, :data:`FORMAT_VERSION`).

All files are written under temporary names and renamed together when every one is
complete (:func:`secured_bio._atomic.atomic_paths`); the ``.tsv`` table appears last.

References
----------
- Hayhurst J et al. (2022) A community driven GWAS summary statistics standard. bioRxiv
  2022.07.15.500230; GWAS-SSF v1.0, https://github.com/EBISPOT/gwas-summary-statistics-standard
- Devlin B, Roeder K (1999) Genomic control for association studies. Biometrics
  55:997-1004 (lambda = median chi-square / 0.4549).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from numpy.typing import ArrayLike
from scipy import special

from secured_bio.errors import ConfigError, FormatError, SchemaError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "SSF_VERSION",
    "TESTS",
    "VARIANT_COLUMNS",
    "PLINK_COLUMNS",
    "GENOME_WIDE",
    "genomic_inflation",
    "plink_table",
    "gwas_ssf_table",
    "gwas_ssf_metadata",
    "summary_record",
    "manhattan_plot",
    "qq_plot",
    "INFLATION_FLAG",
    "inflation_note",
    "output_paths",
    "write_gwas_outputs",
    "read_plink_table",
    "read_summary",
]

FORMAT_NAME = "secured_bio.gwas_summary"
"""Format name carried by the JSON summary."""
FORMAT_VERSION = "1.0"
"""Version of the JSON summary format (readers accept any 1.x)."""
SSF_VERSION = "GWAS-SSF v1.0"
"""``file_type`` written in the GWAS-SSF metadata."""
GENOME_WIDE = 5e-8
"""Genome-wide significance threshold."""
TESTS = ("linear", "logistic", "allelic", "trend")
"""Test names (the ``T`` of the file names)."""
VARIANT_COLUMNS = ("#CHROM", "POS", "ID", "REF", "ALT", "A1")
"""Variant columns that start every plink table."""
PLINK_COLUMNS: dict[str, tuple[str, ...]] = {
    "linear": (*VARIANT_COLUMNS, "TEST", "OBS_CT", "BETA", "SE", "T_STAT", "P"),
    "logistic": (*VARIANT_COLUMNS, "TEST", "OBS_CT", "OR", "LOG(OR)_SE", "Z_STAT", "P"),
    "allelic": (*VARIANT_COLUMNS, "F_A", "F_U", "CHISQ", "P", "OR"),
    "trend": (*VARIANT_COLUMNS, "CHISQ", "P"),
}
"""Columns of ``PREFIX.T.tsv`` per test: plink2 ``--glm`` (linear, logistic) and
plink1.9 ``--assoc`` / ``--model`` TREND (allelic, trend), with plink2's variant columns."""

_FLOAT_FORMAT = "%.8g"
_MEDIAN_CHI2_1DF = float(special.chdtri(1, 0.5))  # 0.454936...
_SSF_CHROM = {"X": 23, "Y": 24, "XY": 23, "MT": 25, "M": 25}


def _check_test(test: str) -> None:
    if test not in TESTS:
        from secured_bio.errors import did_you_mean

        raise ConfigError(
            "unknown association test", where="test", expected="one of " + ", ".join(TESTS),
            got=repr(test), fix=did_you_mean(str(test), TESTS) or "pick one of the tests",
        )


def _check_results(results: pd.DataFrame, test: str) -> None:
    need = [c for c in PLINK_COLUMNS[test] if c != "TEST"]
    if test in ("linear", "logistic", "allelic", "trend"):
        need.append("A1_FREQ")
    missing = [c for c in need if c not in results.columns]
    if missing:
        raise SchemaError(
            "association results lack columns", where=f"{test} results",
            expected=", ".join(need), got=f"{len(missing)} missing: " + ", ".join(missing),
            fix="pass the table built by secured_bio.genomics association functions plus "
            "the variant columns",
        )


def genomic_inflation(p_values: ArrayLike) -> float:
    """Genomic inflation factor lambda: median 1-df chi-square of ``P`` over 0.4549.

    Parameters
    ----------
    p_values
        P-values; NaN ones are ignored.

    Returns
    -------
    float
        lambda (NaN when no finite P-value).

    Examples
    --------
    >>> round(genomic_inflation(np.linspace(0.001, 0.999, 999)), 3)
    1.0
    """
    p = np.asarray(p_values, dtype=np.float64)
    p = p[np.isfinite(p)]
    if p.size == 0:
        return float("nan")
    chisq = special.chdtri(1, np.clip(p, 1e-300, 1.0))
    return float(np.median(chisq) / _MEDIAN_CHI2_1DF)


def plink_table(results: pd.DataFrame, *, test: str) -> pd.DataFrame:
    """Select and order the plink columns of ``results`` for ``test``.

    Parameters
    ----------
    results
        Variant columns (:data:`VARIANT_COLUMNS`) and the test's statistics.
    test
        One of :data:`TESTS`.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PLINK_COLUMNS` ``[test]`` (``TEST`` is ``ADD`` for regressions).

    Raises
    ------
    ConfigError
        If ``test`` is unknown.
    SchemaError
        If a column is missing.

    Examples
    --------
    >>> r = pd.DataFrame({"#CHROM": ["1"], "POS": [5], "ID": ["1:5:A:G"], "REF": ["A"],
    ...                   "ALT": ["G"], "A1": ["G"], "CHISQ": [3.2], "P": [0.07],
    ...                   "A1_FREQ": [0.2]})
    >>> list(plink_table(r, test="trend").columns)
    ['#CHROM', 'POS', 'ID', 'REF', 'ALT', 'A1', 'CHISQ', 'P']
    """
    _check_test(test)
    _check_results(results, test)
    out = results.copy()
    if test in ("linear", "logistic"):
        out["TEST"] = "ADD"
    return out.loc[:, list(PLINK_COLUMNS[test])].reset_index(drop=True)


def _ssf_chromosome(chrom: pd.Series) -> pd.Series:
    """Map contig names to GWAS-SSF codes (1-22, X=23, Y=24, MT=25); others unchanged."""
    def one(c: str) -> str:
        name = re.sub(r"^chr", "", str(c), flags=re.IGNORECASE)
        if name.upper() in _SSF_CHROM:
            return str(_SSF_CHROM[name.upper()])
        return name
    return chrom.astype(str).map(one)


def gwas_ssf_table(results: pd.DataFrame, *, test: str) -> pd.DataFrame:
    """Build the GWAS-SSF v1.0 table (effect allele = A1 = ALT).

    Mandatory columns in order: ``chromosome``, ``base_pair_location``,
    ``effect_allele``, ``other_allele``, ``beta`` (linear) or ``odds_ratio`` (other tests),
    ``standard_error`` (of beta, or of log(OR)), ``effect_allele_frequency`` (among the
    analysed samples), ``p_value``; then ``variant_id`` (``chr_pos_ref_alt``), ``rsid`` (when
    the VCF ID is an rsID), ``ref_allele`` (``OA``: the other allele is REF) and ``n``.
    The trend test has no effect estimate of its own: its ``odds_ratio`` and
    ``standard_error`` are the allelic odds ratio and Woolf's SE of its log, when given.

    Parameters
    ----------
    results
        Variant columns and the test's statistics (with ``A1_FREQ`` and ``OBS_CT``).
    test
        One of :data:`TESTS`.

    Returns
    -------
    pandas.DataFrame
        The GWAS-SSF columns.

    Raises
    ------
    ConfigError
        If ``test`` is unknown.

    Examples
    --------
    >>> r = pd.DataFrame({"#CHROM": ["chrX"], "POS": [5], "ID": ["rs12"], "REF": ["A"],
    ...                   "ALT": ["G"], "A1": ["G"], "BETA": [0.1], "SE": [0.05],
    ...                   "P": [0.04], "A1_FREQ": [0.2], "OBS_CT": [100]})
    >>> row = gwas_ssf_table(r, test="linear").iloc[0]
    >>> str(row.chromosome), str(row.effect_allele), float(row.beta), str(row.rsid)
    ('23', 'G', 0.1, 'rs12')
    """
    _check_test(test)
    chrom = _ssf_chromosome(results["#CHROM"])
    effect = "beta" if test == "linear" else "odds_ratio"
    if test == "linear":
        eff, se = results["BETA"], results["SE"]
    elif "OR" in results.columns:
        eff = results["OR"]
        se = results["LOG(OR)_SE"] if "LOG(OR)_SE" in results.columns else np.nan
    else:
        eff, se = pd.Series(np.nan, index=results.index), np.nan
    ids = results["ID"].astype(str)
    n = results["OBS_CT"] if "OBS_CT" in results.columns else np.nan
    return pd.DataFrame({
        "chromosome": chrom.to_numpy(),
        "base_pair_location": results["POS"].to_numpy(),
        "effect_allele": results["ALT"].to_numpy(),
        "other_allele": results["REF"].to_numpy(),
        effect: np.asarray(eff, dtype=np.float64),
        "standard_error": np.broadcast_to(np.asarray(se, dtype=np.float64), (len(results),)),
        "effect_allele_frequency": results["A1_FREQ"].to_numpy(dtype=np.float64),
        "p_value": results["P"].to_numpy(dtype=np.float64),
        "variant_id": (chrom + "_" + results["POS"].astype(str) + "_"
                       + results["REF"].astype(str) + "_" + results["ALT"].astype(str)).to_numpy(),
        "rsid": np.where(ids.str.fullmatch(r"rs[0-9]+"), ids, "#NA"),
        "ref_allele": "OA",
        "n": np.broadcast_to(np.asarray(n), (len(results),)),
    })


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def gwas_ssf_metadata(
    *,
    data_file_name: str,
    data_file_md5sum: str,
    test: str,
    trait: str,
    n_samples: int,
    n_cases: int | None = None,
    n_controls: int | None = None,
    covariates: tuple[str, ...] | list[str] = (),
    genome_assembly: str = "unknown",
    analysis_software: str = "secured_bio",
) -> dict[str, Any]:
    """GWAS-SSF v1.0 metadata (the ``.tsv-meta.yaml`` content).

    Parameters
    ----------
    data_file_name, data_file_md5sum
        Name and MD5 of the GWAS-SSF table.
    test
        One of :data:`TESTS`.
    trait
        Phenotype column name.
    n_samples, n_cases, n_controls
        Samples analysed (cases/controls for binary traits).
    covariates
        Covariate names.
    genome_assembly
        e.g. ``GRCh38``; ``unknown`` when the data do not say.
    analysis_software
        Software and version.

    Returns
    -------
    dict
        Metadata ready for YAML.

    Examples
    --------
    >>> m = gwas_ssf_metadata(data_file_name="x.ssf.tsv", data_file_md5sum="0" * 32,
    ...                       test="linear", trait="bmi", n_samples=10)
    >>> m["file_type"], m["samples"][0]["sample_size"]
    ('GWAS-SSF v1.0', 10)
    """
    _check_test(test)
    sample: dict[str, Any] = {"sample_size": int(n_samples),
                              "case_control_study": n_cases is not None}
    if n_cases is not None:
        sample["case_count"] = int(n_cases)
        sample["control_count"] = int(n_controls or 0)
    notes = {
        "linear": "per-variant linear regression (= plink2 --glm omit-ref hide-covar)",
        "logistic": "per-variant logistic regression, Wald test (= plink2 --glm omit-ref)",
        "allelic": "allelic chi-square test (= plink1.9 --assoc --keep-allele-order); "
        "standard_error is Woolf's SE of log(odds_ratio)",
        "trend": "Cochran-Armitage trend test (= plink1.9 --model TREND); odds_ratio and "
        "standard_error are the allelic odds ratio and Woolf's SE of its log",
    }[test]
    return {
        "data_file_name": data_file_name,
        "file_type": SSF_VERSION,
        "data_file_md5sum": data_file_md5sum,
        "genome_assembly": genome_assembly,
        "coordinate_system": "1-based",
        "trait_description": [trait],
        "samples": [sample],
        "analysis_software": analysis_software,
        "adjusted_covariates": list(covariates),
        "author_notes": f"{notes}; effect allele = ALT",
        "is_harmonised": False,
        "is_sorted": False,
    }


def summary_record(
    results: pd.DataFrame, *, test: str, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Build the JSON summary: format, counts, lambda and top hits.

    Parameters
    ----------
    results
        The test's results (``P``, optional ``ERRCODE``).
    test
        One of :data:`TESTS`.
    extra
        More fields (samples, phenotype, covariates...), merged in.

    Returns
    -------
    dict
        ``format``, ``format_version``, ``test``, ``n_variants``, ``n_variants_tested``,
        ``n_variants_na`` (by error code), ``lambda_gc``, ``genome_wide_threshold``,
        ``n_genome_wide_hits`` and ``min_p``.

    Examples
    --------
    >>> r = pd.DataFrame({"P": [1e-9, 0.5, np.nan], "ERRCODE": [".", ".", "CONST_ALLELE"]})
    >>> s = summary_record(r, test="linear")
    >>> s["n_variants"], s["n_variants_tested"], s["n_genome_wide_hits"], s["n_variants_na"]
    (3, 2, 1, {'CONST_ALLELE': 1})
    """
    _check_test(test)
    p = results["P"].to_numpy(dtype=np.float64)
    finite = np.isfinite(p)
    na: dict[str, int] = {}
    if "ERRCODE" in results.columns:
        codes = results.loc[~finite, "ERRCODE"].astype(str)
        na = {str(k): int(v) for k, v in codes.value_counts().sort_index().items()}
    elif (~finite).any():
        na = {"NA": int((~finite).sum())}
    lam = genomic_inflation(p)
    out: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "test": test,
        "n_variants": int(p.size),
        "n_variants_tested": int(finite.sum()),
        "n_variants_na": na,
        "lambda_gc": None if math.isnan(lam) else round(lam, 6),
        "genome_wide_threshold": GENOME_WIDE,
        "n_genome_wide_hits": int(np.sum(p[finite] < GENOME_WIDE)),
        "min_p": float(np.min(p[finite])) if finite.any() else None,
    }
    if extra:
        out.update(extra)
    return out


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def manhattan_plot(
    results: pd.DataFrame, path: str | os.PathLike[str], *, title: str
) -> Any:
    """Draw a Manhattan plot (-log10 P along the genome) as PNG (matplotlib Agg).

    With one chromosome the x axis is the position on it in Mb; with several, the
    chromosomes follow each other (in the order of ``results``) and are labelled by name.
    The dashed line is the genome-wide threshold (:data:`GENOME_WIDE`).

    Parameters
    ----------
    results
        ``#CHROM``, ``POS`` and ``P`` columns.
    path
        PNG file to write (written directly: callers make it atomic).
    title
        Plot title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> r = pd.DataFrame({"#CHROM": ["1", "1", "2"], "POS": [1, 9, 4], "P": [0.5, 1e-9, 0.1]})
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "m.png"
    >>> fig = manhattan_plot(r, out, title="demo")
    >>> out.read_bytes()[:4] == b"\\x89PNG"
    True
    """
    fig = _figure(10, 4)
    ax = fig.add_subplot(1, 1, 1)
    p = results["P"].to_numpy(dtype=np.float64)
    pos = results["POS"].to_numpy(dtype=np.float64)
    chrom = results["#CHROM"].astype(str).to_numpy()
    order = list(dict.fromkeys(chrom))
    logp = -np.log10(np.clip(p, 1e-300, 1))
    if len(order) == 1:
        sel = np.isfinite(p)
        ax.scatter(pos[sel] / 1e6, logp[sel], s=4, color="#1f4e79", linewidths=0,
                   rasterized=True)
        if pos.size:
            lo, hi = float(pos.min()) / 1e6, float(pos.max()) / 1e6
            pad = max(0.02 * (hi - lo), 1e-6)
            ax.set_xlim(lo - pad, hi + pad)
        ax.set_xlabel(f"position on chromosome {order[0]} (Mb)")
    else:
        offset, ticks, labels = 0.0, [], []
        for i, c in enumerate(order):
            sel = (chrom == c) & np.isfinite(p)
            cpos = pos[chrom == c]
            lo, hi = (float(cpos.min()), float(cpos.max())) if cpos.size else (0.0, 1.0)
            ax.scatter(offset + pos[sel] - lo, logp[sel], s=4,
                       color=("#1f4e79", "#6fa8dc")[i % 2], linewidths=0, rasterized=True)
            ticks.append(offset + (hi - lo) / 2)
            labels.append(c)
            offset += (hi - lo) + max(1.0, 0.02 * (hi - lo))
        ax.set_xticks(ticks)
        ax.set_xticklabels(labels)
        ax.set_xlabel("chromosome")
    ax.axhline(-math.log10(GENOME_WIDE), color="#c00000", lw=0.8, ls="--",
               label=f"genome-wide significance (P = {GENOME_WIDE:g})")
    finite = logp[np.isfinite(p)]
    top = float(finite.max()) if finite.size else 0.0
    ax.set_ylim(0, max(top, -math.log10(GENOME_WIDE)) * 1.08)
    ax.set_ylabel("-log10 P")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return fig


#: lambda_GC above this is flagged as inflation on the QQ plot and in the summary.
INFLATION_FLAG = 1.1


def inflation_note(
    lambda_gc: float | None, *, principal_components: int | None = None,
    n_variants: int | None = None,
) -> str:
    """One sentence on what the genomic inflation factor says, for plots and summaries.

    Parameters
    ----------
    lambda_gc
        The genomic inflation factor (None or NaN: nothing tested).
    principal_components
        Number of principal components among the covariates (None: unknown).
    n_variants
        Number of variants lambda comes from (below 1,000 the note says it is imprecise).

    Returns
    -------
    str

    Examples
    --------
    >>> inflation_note(1.02)
    'lambda_GC 1.020: no marked inflation (flag above 1.10)'
    >>> inflation_note(1.96, principal_components=0)[:40]
    'lambda_GC 1.960: inflated (above 1.10); '
    """
    if lambda_gc is None or not math.isfinite(lambda_gc):
        return "lambda_GC undefined: no variant was tested"
    head = f"lambda_GC {lambda_gc:.3f}"
    if n_variants is not None and n_variants < 1000:
        head += f" (from only {n_variants} variants: imprecise)"
    if lambda_gc <= INFLATION_FLAG:
        return f"{head}: no marked inflation (flag above {INFLATION_FLAG:.2f})"
    head += f": inflated (above {INFLATION_FLAG:.2f}); "
    if principal_components == 0:
        return head + ("no principal components were adjusted for, so population "
                       "structure is the first suspect: rerun with PCs as covariates "
                       "(e.g. --pcs 4)")
    if principal_components:
        return head + (f"left after {principal_components} principal components: residual "
                       "structure, relatedness, or polygenic signal in LD (a short region "
                       "with strong causal variants inflates lambda without confounding)")
    return head + ("check for population structure (PCs as covariates), relatedness or "
                   "polygenic signal in LD")


def _qq_band(n: int, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the expected -log10 P of ``n`` sorted uniform P and its pointwise band.

    The i-th smallest of n uniform P-values is Beta(i, n - i + 1) distributed; the band is
    that distribution's central ``level`` interval, on the -log10 scale.
    """
    from scipy import stats

    i = np.arange(1, n + 1, dtype=np.float64)
    expected = -np.log10((i - 0.5) / n)
    a = (1.0 - level) / 2
    upper = -np.log10(stats.beta.ppf(a, i, n - i + 1))
    lower = -np.log10(stats.beta.ppf(1.0 - a, i, n - i + 1))
    return expected, lower, upper


def qq_plot(
    results: pd.DataFrame, path: str | os.PathLike[str], *, title: str,
    note: str | None = None,
) -> Any:
    """Draw a QQ plot of -log10 P against its uniform expectation, with lambda, as PNG.

    The x axis spans the expected range only; the grey band is the pointwise 95 % interval
    of uniform order statistics (Beta(i, n - i + 1) quantiles).  A lambda_GC above
    :data:`INFLATION_FLAG` is flagged in red in the plot, with ``note`` (see
    :func:`inflation_note`) saying what it may mean.

    Parameters
    ----------
    results
        ``P`` column.
    path
        PNG file to write.
    title
        Plot title.
    note
        Sentence on the inflation shown under lambda (default: :func:`inflation_note`).

    Returns
    -------
    matplotlib.figure.Figure
        The figure written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "q.png"
    >>> fig = qq_plot(pd.DataFrame({"P": [0.5, 0.01, 0.3]}), out, title="demo")
    >>> out.stat().st_size > 0
    True
    """
    import textwrap

    fig = _figure(5.5, 5.5)
    ax = fig.add_subplot(1, 1, 1)
    p = np.sort(results["P"].to_numpy(dtype=np.float64))
    p = p[np.isfinite(p)]
    lam = genomic_inflation(p)
    if p.size:
        expected, lower, upper = _qq_band(p.size)
        observed = -np.log10(np.clip(p, 1e-300, 1))
        ax.fill_between(expected, lower, upper, color="#bbbbbb", alpha=0.6, lw=0,
                        label="95% band under the null")
        xmax = float(expected.max())
        ax.plot([0, xmax], [0, xmax], color="#c00000", lw=0.8, label="expected (null)")
        ax.scatter(expected, observed, s=5, color="#1f4e79", linewidths=0, rasterized=True,
                   label=f"variants (n={p.size})")
        ax.set_xlim(0, xmax * 1.05)
        ax.set_ylim(0, max(float(observed.max()), float(upper.max())) * 1.05)
        ax.legend(loc="upper left", fontsize=8)
        inflated = lam > INFLATION_FLAG
        text = note if note is not None else inflation_note(lam)
        ax.text(0.98, 0.02, "\n".join(textwrap.wrap(text, 44, break_on_hyphens=False)),
                transform=ax.transAxes, ha="right", va="bottom", fontsize=7,
                color="#c00000" if inflated else "#333333",
                bbox={"facecolor": "white", "edgecolor": "#c00000" if inflated else "#999999",
                      "alpha": 0.9})
        title = f"{title}\nlambda_GC = {lam:.3f}" + ("  (inflated)" if inflated else "")
    ax.set_xlabel("expected -log10 P")
    ax.set_ylabel("observed -log10 P")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return fig


def output_paths(prefix: str | os.PathLike[str], *, test: str) -> dict[str, Path]:
    """Paths of every output of ``test`` for ``prefix``.

    Examples
    --------
    >>> sorted(output_paths("out/run", test="linear"))
    ['manhattan', 'qq', 'ssf', 'ssf_meta', 'summary', 'table']
    """
    _check_test(test)
    base = os.fspath(prefix) + f".{test}"
    return {
        "table": Path(base + ".tsv"),
        "ssf": Path(base + ".ssf.tsv"),
        "ssf_meta": Path(base + ".ssf.tsv-meta.yaml"),
        "manhattan": Path(base + ".manhattan.png"),
        "qq": Path(base + ".qq.png"),
        "summary": Path(base + ".summary.json"),
    }


def _write_tsv(df: pd.DataFrame, path: Path, *, na: str) -> None:
    df.to_csv(path, sep="\t", index=False, na_rep=na, float_format=_FLOAT_FORMAT,
              lineterminator="\n")


def write_gwas_outputs(
    results: pd.DataFrame,
    prefix: str | os.PathLike[str],
    *,
    test: str,
    trait: str,
    n_samples: int,
    n_cases: int | None = None,
    n_controls: int | None = None,
    covariates: tuple[str, ...] | list[str] = (),
    summary: Mapping[str, Any] | None = None,
    genome_assembly: str = "unknown",
) -> dict[str, Path]:
    """Write every output of one test, atomically and together.

    Parameters
    ----------
    results
        Variant columns and statistics (``A1_FREQ``, ``OBS_CT``, ``ERRCODE``...).
    prefix
        Output prefix (``PREFIX`` of ``PREFIX.T.tsv``).
    test
        One of :data:`TESTS`.
    trait, n_samples, n_cases, n_controls, covariates, genome_assembly
        For the GWAS-SSF metadata and the summary.
    summary
        More fields for the JSON summary.

    Returns
    -------
    dict of pathlib.Path
        The files written (see :func:`output_paths`).

    Raises
    ------
    ConfigError
        If ``test`` is unknown.
    SchemaError
        If ``results`` lacks a column of the test.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> r = pd.DataFrame({"#CHROM": ["1"], "POS": [5], "ID": ["1:5:A:G"], "REF": ["A"],
    ...     "ALT": ["G"], "A1": ["G"], "OBS_CT": [90], "BETA": [0.2], "SE": [0.1],
    ...     "T_STAT": [2.0], "P": [0.05], "A1_FREQ": [0.3], "ERRCODE": ["."]})
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> paths = write_gwas_outputs(r, d / "run", test="linear", trait="bmi", n_samples=90)
    >>> paths["table"].read_text().splitlines()[0].split("\\t")[-4:]
    ['BETA', 'SE', 'T_STAT', 'P']
    """
    from secured_bio import __version__
    from secured_bio._atomic import atomic_paths

    _check_test(test)
    table = plink_table(results, test=test)
    ssf = gwas_ssf_table(results, test=test)
    paths = output_paths(prefix, test=test)
    record = summary_record(results, test=test, extra={
        "phenotype": trait, "covariates": list(covariates), "n_samples": int(n_samples),
        **({"n_cases": int(n_cases), "n_controls": int(n_controls or 0)}
           if n_cases is not None else {}),
        **(dict(summary) if summary else {}),
        "files": {k: p.name for k, p in paths.items()},
        "software": f"secured_bio {__version__}",
    })
    pcs = record.get("principal_components")
    if pcs is None:  # count PC covariates when the caller did not say
        pcs = sum(1 for c in covariates if re.fullmatch(r"PC\d+", str(c)))
    record["inflation_note"] = inflation_note(
        record["lambda_gc"], principal_components=int(pcs),
        n_variants=record["n_variants_tested"])
    keys = ["table", "ssf", "ssf_meta", "manhattan", "qq", "summary"]
    with atomic_paths(*(paths[k] for k in keys)) as tmps:
        tmp = dict(zip(keys, tmps, strict=True))
        _write_tsv(table, tmp["table"], na="NA")
        _write_tsv(ssf, tmp["ssf"], na="#NA")
        meta = gwas_ssf_metadata(
            data_file_name=paths["ssf"].name, data_file_md5sum=_md5(tmp["ssf"]), test=test,
            trait=trait, n_samples=n_samples, n_cases=n_cases, n_controls=n_controls,
            covariates=covariates, genome_assembly=genome_assembly,
            analysis_software=f"secured_bio {__version__}",
        )
        tmp["ssf_meta"].write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")
        title = f"{trait}: {test}"
        manhattan_plot(results, tmp["manhattan"], title=title)
        qq_plot(results, tmp["qq"], title=title, note=record["inflation_note"])
        tmp["summary"].write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return paths


def read_plink_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a ``PREFIX.T.tsv`` table back (``NA`` as NaN; IDs and alleles as str).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.tsv"
    >>> header = "#CHROM POS ID REF ALT A1 CHISQ P".replace(" ", "\\t")
    >>> _ = p.write_text(header + "\\n" + "1 5 x A G G NA NA".replace(" ", "\\t") + "\\n")
    >>> read_plink_table(p).P.isna().all()
    np.True_
    """
    return pd.read_csv(
        path, sep="\t", na_values=["NA"], keep_default_na=False,
        dtype={"#CHROM": str, "ID": str, "REF": str, "ALT": str, "A1": str},
    )


def read_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON summary, refusing other formats and unknown major versions.

    Raises
    ------
    FormatError
        If the file is not a summary of this format or of a newer major version.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.json"
    >>> _ = p.write_text('{"format": "secured_bio.gwas_summary", "format_version": "1.0"}')
    >>> read_summary(p)["format_version"]
    '1.0'
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FormatError("summary is not JSON", where=str(path), expected="a JSON object",
                          fix="point to a PREFIX.T.summary.json file") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise FormatError("file is not a secured_bio GWAS summary", where=str(path),
                          expected=f"format '{FORMAT_NAME}'",
                          got=repr(data.get("format")) if isinstance(data, dict) else "not "
                          "an object")
    major = str(data.get("format_version", "")).split(".")[0]
    if major != FORMAT_VERSION.split(".")[0]:
        raise FormatError("GWAS summary has an unsupported format_version", where=str(path),
                          expected=f"{FORMAT_VERSION.split('.')[0]}.x",
                          got=repr(data.get("format_version")),
                          fix="upgrade secured_bio to a release that reads this version")
    return data
