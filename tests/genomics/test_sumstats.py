"""Tests of secured_bio.genomics.sumstats: plink-named tables, GWAS-SSF, summary, plots."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from secured_bio.errors import ConfigError, FormatError, SchemaError
from secured_bio.genomics import sumstats as S


def _results(test: str, n: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = rng.uniform(size=n)
    p[3] = 1e-12
    p[7] = np.nan
    alt = rng.choice(list("ACGT"), n)
    df = pd.DataFrame({
        "#CHROM": ["1"] * (n // 2) + ["chrX"] * (n - n // 2),
        "POS": np.arange(1, n + 1) * 1000,
        "ID": [f"rs{i}" if i % 2 else f"v{i}" for i in range(n)],
        "REF": np.where(alt == "A", "C", "A"),
        "ALT": alt,
        "P": p,
        "A1_FREQ": rng.uniform(0.05, 0.95, n),
        "OBS_CT": rng.integers(90, 100, n),
        "ERRCODE": ["."] * n,
    })
    df["A1"] = df["ALT"]
    df.loc[7, "ERRCODE"] = "CONST_ALLELE"
    if test == "linear":
        df["BETA"], df["SE"] = rng.normal(size=n), rng.uniform(0.1, 1, n)
        df["T_STAT"] = df.BETA / df.SE
    elif test == "logistic":
        df["OR"], df["LOG(OR)_SE"] = np.exp(rng.normal(size=n)), rng.uniform(0.1, 1, n)
        df["Z_STAT"] = np.log(df.OR) / df["LOG(OR)_SE"]
    elif test == "allelic":
        df["F_A"], df["F_U"] = rng.uniform(size=n), rng.uniform(size=n)
        df["CHISQ"], df["OR"] = stats.chi2.isf(p, 1), np.exp(rng.normal(size=n))
        df["LOG(OR)_SE"] = rng.uniform(0.1, 1, n)
    else:
        df["CHISQ"] = stats.chi2.isf(p, 1)
    return df


EXPECTED_HEADERS = {
    "linear": "#CHROM POS ID REF ALT A1 TEST OBS_CT BETA SE T_STAT P",
    "logistic": "#CHROM POS ID REF ALT A1 TEST OBS_CT OR LOG(OR)_SE Z_STAT P",
    "allelic": "#CHROM POS ID REF ALT A1 F_A F_U CHISQ P OR",
    "trend": "#CHROM POS ID REF ALT A1 CHISQ P",
}


@pytest.mark.parametrize("test", S.TESTS)
def test_write_gwas_outputs__every_file_with_plink_and_ssf_columns(tmp_path: Path,
                                                                  test: str) -> None:
    r = _results(test)
    paths = S.write_gwas_outputs(r, tmp_path / "run", test=test, trait="y", n_samples=99,
                                 n_cases=40 if test != "linear" else None,
                                 n_controls=59 if test != "linear" else None,
                                 covariates=["sex", "age"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"run.{test}.{s}" for s in ("tsv", "ssf.tsv", "ssf.tsv-meta.yaml", "manhattan.png",
                                    "qq.png", "summary.json"))
    lines = paths["table"].read_text().splitlines()
    assert lines[0].split("\t") == EXPECTED_HEADERS[test].split()
    assert len(lines) == len(r) + 1
    assert "\tNA" in lines[8] and "nan" not in paths["table"].read_text()
    back = S.read_plink_table(paths["table"])
    np.testing.assert_allclose(back.P, r.P, rtol=1e-7)
    assert back["#CHROM"].tolist() == r["#CHROM"].tolist()
    if test in ("linear", "logistic"):
        assert set(back.TEST) == {"ADD"}

    ssf = pd.read_csv(paths["ssf"], sep="\t", keep_default_na=False, dtype=str)
    effect = "beta" if test == "linear" else "odds_ratio"
    assert list(ssf.columns[:8]) == ["chromosome", "base_pair_location", "effect_allele",
                                     "other_allele", effect, "standard_error",
                                     "effect_allele_frequency", "p_value"]
    assert set(ssf.chromosome) == {"1", "23"}
    assert (ssf.effect_allele == r.ALT).all() and (ssf.other_allele == r.REF).all()
    assert ssf.p_value[7] == "#NA" and (ssf.ref_allele == "OA").all()
    assert ssf.rsid[1] == "rs1" and ssf.rsid[0] == "#NA"
    assert ssf.variant_id[0] == f"1_1000_{r.REF[0]}_{r.ALT[0]}"

    meta = yaml.safe_load(paths["ssf_meta"].read_text())
    assert meta["file_type"] == "GWAS-SSF v1.0"
    assert meta["data_file_name"] == paths["ssf"].name
    assert meta["data_file_md5sum"] == hashlib.md5(paths["ssf"].read_bytes()).hexdigest()
    assert meta["samples"][0]["sample_size"] == 99
    assert meta["samples"][0]["case_control_study"] is (test != "linear")
    assert meta["adjusted_covariates"] == ["sex", "age"]

    summary = S.read_summary(paths["summary"])
    assert summary["format"] == S.FORMAT_NAME and summary["format_version"] == S.FORMAT_VERSION
    assert summary["n_variants"] == 50 and summary["n_variants_tested"] == 49
    assert summary["n_variants_na"] == {"CONST_ALLELE": 1}
    assert summary["n_genome_wide_hits"] == 1
    assert summary["lambda_gc"] == pytest.approx(S.genomic_inflation(r.P), abs=1e-6)
    for key in ("manhattan", "qq"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_genomic_inflation__null_is_one_and_scaled_chi2_is_the_scale() -> None:
    rng = np.random.default_rng(1)
    chisq = rng.chisquare(1, size=50_000)
    assert S.genomic_inflation(stats.chi2.sf(chisq, 1)) == pytest.approx(1.0, abs=0.03)
    assert S.genomic_inflation(stats.chi2.sf(1.5 * chisq, 1)) == pytest.approx(1.5, abs=0.05)
    assert np.isnan(S.genomic_inflation([np.nan]))


def test_write_gwas_outputs__failure_leaves_no_file(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(S, "qq_plot", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        S.write_gwas_outputs(_results("trend"), tmp_path / "run", test="trend", trait="y",
                             n_samples=10)
    assert list(tmp_path.iterdir()) == []


def test_plink_table__missing_column_raises() -> None:
    r = _results("linear").drop(columns=["SE"])
    with pytest.raises(SchemaError, match=r"association results lack columns.*1 missing: SE"):
        S.plink_table(r, test="linear")


def test_plink_table__unknown_test_suggests() -> None:
    with pytest.raises(ConfigError, match=r"unknown association test.*did you mean 'linear'"):
        S.plink_table(_results("linear"), test="lineer")


def test_read_summary__refuses_other_formats_and_versions(tmp_path: Path) -> None:
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"format": S.FORMAT_NAME, "format_version": "2.0"}))
    with pytest.raises(FormatError, match=r"unsupported format_version.*1\.x.*upgrade"):
        S.read_summary(p)
    p.write_text(json.dumps({"format": "other"}))
    with pytest.raises(FormatError, match="not a secured_bio GWAS summary"):
        S.read_summary(p)
    p.write_text("{not json")
    with pytest.raises(FormatError, match="summary is not JSON"):
        S.read_summary(p)


def test_trend_ssf__uses_allelic_odds_ratio_when_given() -> None:
    r = _results("trend")
    ssf = S.gwas_ssf_table(r, test="trend")
    assert ssf.odds_ratio.isna().all()
    r["OR"], r["LOG(OR)_SE"] = 2.0, 0.5
    ssf = S.gwas_ssf_table(r, test="trend")
    assert (ssf.odds_ratio == 2.0).all() and (ssf.standard_error == 0.5).all()


# ------------------------------------------------------------------ plots (issue 17, section 3)


def _null_results(n: int = 2000, *, inflate: float = 1.0, seed: int = 1) -> pd.DataFrame:
    """P-values of 1-df chi-squares scaled by ``inflate`` (lambda ~ inflate), one chromosome."""
    rng = np.random.default_rng(seed)
    p = stats.chi2.sf(inflate * rng.chisquare(1, n), 1)
    p[:3] = [1e-14, 1e-12, 1e-9]  # strong hits far above the expected maximum
    return pd.DataFrame({"#CHROM": ["1"] * n, "POS": np.arange(1, n + 1) * 5000, "P": p})


def test_qq_plot__x_axis_spans_expected_range_with_null_band(tmp_path):
    r = _null_results()
    fig = S.qq_plot(r, tmp_path / "q.png", title="t")
    ax = fig.axes[0]
    expected_max = -np.log10(0.5 / len(r))  # ~3.6, while the top observed is 14
    assert expected_max <= ax.get_xlim()[1] <= 1.1 * expected_max
    assert ax.get_ylim()[1] >= 14
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("95%" in t for t in legend) and any("expected" in t for t in legend)
    band = [c for c in ax.collections if "PolyCollection" in type(c).__name__]
    assert band, "no confidence band drawn"
    # the band is the pointwise 95% interval of uniform order statistics: at the top rank
    # (i = 1) it spans -log10 of Beta(1, n)'s 97.5% and 2.5% quantiles
    verts = band[0].get_paths()[0].vertices
    top_y = verts[np.isclose(verts[:, 0], expected_max), 1]
    n = len(r)
    assert np.isclose(top_y.max(), -np.log10(stats.beta.ppf(0.025, 1, n)), rtol=1e-6)
    assert np.isclose(top_y.min(), -np.log10(stats.beta.ppf(0.975, 1, n)), rtol=1e-6)


def test_qq_plot__flags_inflation_in_the_plot(tmp_path):
    fig = S.qq_plot(_null_results(inflate=1.9), tmp_path / "q.png", title="t")
    ax = fig.axes[0]
    assert "inflated" in ax.get_title()
    assert any("inflated" in t.get_text() for t in ax.texts)
    calm = S.qq_plot(_null_results(inflate=1.0), tmp_path / "c.png", title="t").axes[0]
    assert "inflated" not in calm.get_title()
    assert not any("inflated" in t.get_text() for t in calm.texts)


@pytest.mark.parametrize(("lam", "pcs", "words"), [
    (1.96, 0, "no principal components"),
    (1.2, 4, "after 4 principal components"),
    (1.02, 0, "no marked inflation"),
])
def test_inflation_note__says_what_lambda_means(lam, pcs, words):
    assert words in S.inflation_note(lam, principal_components=pcs)


def test_write_gwas_outputs__summary_has_inflation_note(tmp_path):
    paths = S.write_gwas_outputs(_results("linear"), tmp_path / "run", test="linear",
                                 trait="bmi", n_samples=90, covariates=["sex", "PC1", "PC2"])
    summary = S.read_summary(paths["summary"])
    assert summary["inflation_note"] == S.inflation_note(
        summary["lambda_gc"], principal_components=2, n_variants=49)


def test_manhattan_plot__single_chromosome_shows_positions_in_mb(tmp_path):
    fig = S.manhattan_plot(_null_results(), tmp_path / "m.png", title="t")
    ax = fig.axes[0]
    assert "Mb" in ax.get_xlabel() and "chromosome 1" in ax.get_xlabel()
    lo, hi = ax.get_xlim()
    assert lo < 0.1 and 9.9 < hi < 10.5  # 5 kb .. 10 Mb
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert len(ticks) >= 4
    assert any("genome-wide" in t.get_text() for t in ax.get_legend().get_texts())


def test_manhattan_plot__several_chromosomes_labelled_by_name(tmp_path):
    r = _null_results(300)
    r["#CHROM"] = ["1"] * 100 + ["2"] * 100 + ["X"] * 100
    ax = S.manhattan_plot(r, tmp_path / "m.png", title="t").axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "X"]
    assert ax.get_xlabel() == "chromosome"
