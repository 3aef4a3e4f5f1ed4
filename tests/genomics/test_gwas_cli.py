"""Tests of ``secured-bio gwas run``: outputs, option checks, bad input, plink2 end to end."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import requires_tools

from secured_bio.cli import main
from secured_bio.genomics import sumstats as S
from secured_bio.genomics.gwas_cli import run_gwas

needs_plink2 = requires_tools("plink2")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    """300 samples x 400 variants, one VCF; pheno with ~2 % NA; covariates with 3 NA ages."""
    from secured_bio.testing import simulate_genotypes

    d = tmp_path_factory.mktemp("gwas_cli")
    c = simulate_genotypes(d, n_sites=1, samples_per_site=300, n_variants=400, n_causal=4,
                           seed=11)
    covar = pd.read_csv(c.covar_path, sep="\t", dtype=str, keep_default_na=False)
    covar.loc[covar.index[[4, 40, 140]], "age"] = "NA"
    covar.to_csv(d / "covar_na.tsv", sep="\t", index=False)
    return c, d / "covar_na.tsv"


def _args(c, out: Path, test: str, *extra: str) -> list[str]:
    return ["gwas", "run", "--vcf", str(c.vcf_paths[0]), "--pheno", str(c.pheno_path),
            "--pheno-name", "quant" if test == "linear" else "case", "--test", test,
            "--out", str(out), *extra]


@pytest.mark.parametrize(("test", "extra"), [
    ("linear", ("--covar", "COVAR", "--pcs", "2")),
    ("logistic", ("--covar", "COVAR", "--covar-name", "age,sex")),
    ("allelic", ()),
    ("trend", ()),
])
def test_run__writes_every_output(demo, tmp_path: Path, test: str,
                                  extra: tuple[str, ...]) -> None:
    c, covar = demo
    extra = tuple(str(covar) if e == "COVAR" else e for e in extra)
    assert main(_args(c, tmp_path / "out" / "run", test, *extra)) == 0
    paths = S.output_paths(tmp_path / "out" / "run", test=test)
    assert all(p.is_file() for p in paths.values())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        p.name for p in paths.values())  # nothing else, no temporary files
    table = S.read_plink_table(paths["table"])
    assert list(table.columns) == list(S.PLINK_COLUMNS[test])
    assert len(table) == c.n_variants and (table.A1 == table.ALT).all()
    summary = json.loads(paths["summary"].read_text())
    assert summary["format"] == "secured_bio.gwas_summary"
    assert summary["format_version"] == "1.0"
    assert summary["n_variants"] == c.n_variants
    assert summary["n_samples_missing_phenotype"] > 0
    assert 0.5 < summary["lambda_gc"] < 2.0
    if test == "linear":
        assert summary["covariates"] == ["sex", "age", "PC1", "PC2"]
        assert summary["n_samples_missing_covariates"] == 3
        assert summary["min_p"] < 1e-4  # the planted signal shows
    if test == "logistic":
        assert summary["covariates"] == ["age", "sex"] and summary["firth"] == "never"
        assert summary["n_cases"] + summary["n_controls"] == summary["n_samples"]
    ssf = pd.read_csv(paths["ssf"], sep="\t", keep_default_na=False)
    assert ssf.columns[4] == ("beta" if test == "linear" else "odds_ratio")


@pytest.mark.parametrize(("flag", "mode"), [("--firth", "always"),
                                            ("--firth-fallback", "fallback")])
def test_run__firth_modes(demo, tmp_path: Path, flag: str, mode: str) -> None:
    c, covar = demo
    assert main(_args(c, tmp_path / "run", "logistic", "--covar", str(covar), flag)) == 0
    summary = S.read_summary(tmp_path / "run.logistic.summary.json")
    assert summary["firth"] == mode
    assert summary["n_variants_tested"] == summary["n_variants"] - summary[
        "n_variants_na"].get("CONST_ALLELE", 0)


def test_run_gwas__library_call_matches_cli(demo, tmp_path: Path) -> None:
    c, covar = demo
    run = run_gwas(vcf=c.vcf_paths[0], pheno=c.pheno_path, pheno_name="case", test="trend",
                   out=tmp_path / "lib", chunk_size=64)
    assert main(_args(c, tmp_path / "cli", "trend", "--chunk-size", "1000")) == 0
    cli = S.read_plink_table(tmp_path / "cli.trend.tsv")
    np.testing.assert_allclose(run.results.P, cli.P, rtol=1e-7)
    assert run.summary["n_samples"] == run.summary["n_cases"] + run.summary["n_controls"]


def test_run__zarr_input_equals_vcf_input(demo, tmp_path: Path) -> None:
    from secured_bio.genomics.ingest import ingest_vcf

    c, _ = demo
    ingest_vcf(c.vcf_paths[0], tmp_path / "g.zarr", progress=False)
    args = _args(c, tmp_path / "z", "allelic")
    args[args.index("--vcf"):args.index("--vcf") + 2] = ["--zarr", str(tmp_path / "g.zarr")]
    assert main(args) == 0
    assert main(_args(c, tmp_path / "v", "allelic")) == 0
    pd.testing.assert_frame_equal(S.read_plink_table(tmp_path / "z.allelic.tsv"),
                                  S.read_plink_table(tmp_path / "v.allelic.tsv"))


# ------------------------------------------------------------------------- bad input
def _write_pheno(path: Path, ids: list[str], values: list[str], name: str = "y") -> Path:
    path.write_text(f"#IID\t{name}\n" + "".join(f"{i}\t{v}\n" for i, v in zip(ids, values,
                                                                             strict=True)))
    return path


def _sample_ids(c) -> list[str]:
    return pd.read_csv(c.pheno_path, sep="\t", dtype=str)["#IID"].tolist()


def _fails(args: list[str], out_dir: Path, capsys: pytest.CaptureFixture[str],
           code: int, pattern: str, secrets: tuple[str, ...] = ()) -> str:
    assert main(args) == code
    err = capsys.readouterr().err
    assert pattern in err, err
    for secret in secrets:
        assert secret not in err
    assert not out_dir.exists() or list(out_dir.iterdir()) == []
    return err


def test_bad_input__phenotype_ids_absent(demo, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    c, _ = demo
    pheno = _write_pheno(tmp_path / "p.tsv", ["stranger_01", "stranger_02"], ["1.5", "2.5"])
    args = _args(c, tmp_path / "out" / "run", "linear")
    args[args.index("--pheno") + 1] = str(pheno)
    args[args.index("--pheno-name") + 1] = "y"
    _fails(args, tmp_path / "out", capsys, 1,
           "no sample of the phenotype file is in the genotype data", ("stranger_01",))


def test_bad_input__some_phenotype_ids_absent_are_counted(
        demo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c, _ = demo
    ids = _sample_ids(c)
    rng = np.random.default_rng(0)
    pheno = _write_pheno(tmp_path / "p.tsv", ids + ["extra_1", "extra_2"],
                         [f"{v:.3f}" for v in rng.normal(size=len(ids) + 2)])
    args = _args(c, tmp_path / "run", "linear")
    args[args.index("--pheno") + 1] = str(pheno)
    args[args.index("--pheno-name") + 1] = "y"
    assert main(args) == 0
    assert "2 phenotype rows have an IID absent from the genotypes" in capsys.readouterr().err
    summary = S.read_summary(tmp_path / "run.linear.summary.json")
    assert summary["n_pheno_ids_absent_from_genotypes"] == 2


@pytest.mark.parametrize(("values", "test", "pattern"), [
    (["1.5", "high"], "linear", "non-numeric value in column 'y'"),
    (["7.25", "7.25"], "linear", "constant phenotype"),
    (["1.5", "2.75"], "logistic", "case/control test on a quantitative trait"),
    (["1.5", "2.75"], "allelic", "case/control test on a quantitative trait"),
])
def test_bad_input__phenotype_values(demo, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     values: list[str], test: str, pattern: str) -> None:
    c, _ = demo
    ids = _sample_ids(c)
    vals = [values[i % 2] for i in range(len(ids))]
    pheno = _write_pheno(tmp_path / "p.tsv", ids, vals)
    args = _args(c, tmp_path / "out" / "run", test)
    args[args.index("--pheno") + 1] = str(pheno)
    args[args.index("--pheno-name") + 1] = "y"
    _fails(args, tmp_path / "out", capsys, 1, pattern, (ids[0], "high", "7.25", "2.75"))


@pytest.mark.parametrize("which", ["--vcf", "--pheno", "--covar"])
def test_bad_input__missing_files(demo, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  which: str) -> None:
    c, covar = demo
    args = _args(c, tmp_path / "out" / "run", "linear", "--covar", str(covar))
    args[args.index(which) + 1] = str(tmp_path / "absent.file")
    err = _fails(args, tmp_path / "out", capsys, 1, "not found")
    assert "absent.file" in err


@pytest.mark.parametrize(("extra", "test", "pattern"), [
    (("--firth",), "linear", "Firth regression applies to the logistic test only"),
    (("--firth", "--firth-fallback"), "logistic", "exclude each other"),
    (("--covar", "COVAR"), "allelic", "the allelic test does not use covariates"),
    (("--pcs", "2"), "trend", "the trend test does not use covariates"),
    (("--covar-name", "age"), "linear", "--covar-name needs --covar"),
    (("--covar", "COVAR", "--covar-name", "agee"), "linear", "did you mean 'age'"),
    (("--zarr", "Z"), "linear", "give exactly one genotype input"),
])
def test_bad_options__usage_errors(demo, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   extra: tuple[str, ...], test: str, pattern: str) -> None:
    c, covar = demo
    extra = tuple(str(covar) if e == "COVAR" else (str(tmp_path) if e == "Z" else e)
                  for e in extra)
    _fails(_args(c, tmp_path / "out" / "run", test, *extra), tmp_path / "out", capsys, 2,
           pattern)


def test_bad_options__unknown_test_is_a_click_error(demo, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    c, _ = demo
    assert main(_args(c, tmp_path / "run", "anova")) == 2
    assert "anova" in capsys.readouterr().err


# ------------------------------------------------------------------ plink2 end to end
@pytest.mark.reference
@needs_plink2
def test_reference__linear_with_pcs_equals_plink2_pca_then_glm(demo, tmp_path: Path) -> None:
    c, covar = demo
    assert main(_args(c, tmp_path / "ours", "linear", "--covar", str(covar), "--pcs",
                      "3")) == 0
    ours = S.read_plink_table(tmp_path / "ours.linear.tsv")

    def plink2(*args: str) -> None:
        proc = subprocess.run(["plink2", "--vcf", str(c.vcf_paths[0]), "--threads", "1",
                               *args], capture_output=True, text=True, cwd=tmp_path,
                              timeout=120)
        assert proc.returncode == 0, proc.stdout[-2000:]

    plink2("--pca", "3", "meanimpute", "--out", "pca")
    pcs = pd.read_csv(tmp_path / "pca.eigenvec", sep="\t")
    cov = pd.read_csv(covar, sep="\t", dtype=str, keep_default_na=False).merge(pcs, on="#IID")
    cov.to_csv(tmp_path / "covar_pcs.tsv", sep="\t", index=False)
    plink2("--pheno", str(c.pheno_path), "--pheno-name", "quant", "--covar",
           str(tmp_path / "covar_pcs.tsv"), "--glm", "omit-ref", "hide-covar", "--out", "ref")
    ref = pd.read_csv(tmp_path / "ref.quant.glm.linear", sep="\t", na_values=["NA"])
    np.testing.assert_array_equal(ours.OBS_CT, ref.OBS_CT)
    a, b = -np.log10(ours.P), -np.log10(ref.P)
    assert np.corrcoef(a, b)[0, 1] >= 0.9999
    assert np.max(np.abs(a - b)) <= 0.01
    assert np.median(np.abs(ours.BETA - ref.BETA) / np.abs(ref.BETA)) <= 1e-3
    assert set(np.flatnonzero(ours.P < 5e-8)) == set(np.flatnonzero(ref.P < 5e-8))
