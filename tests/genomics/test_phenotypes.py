"""Tests of secured_bio.genomics.phenotypes: plink2 tables, coding, alignment, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from secured_bio.errors import (
    ConfigError,
    InputError,
    InputFileNotFoundError,
    SchemaError,
    SecuredBioError,
)
from secured_bio.genomics.phenotypes import (
    Covariates,
    Trait,
    analysis_samples,
    load_covariates,
    load_phenotype,
    read_pheno_table,
    trait_kind,
)

SAMPLES = ["s1", "s2", "s3", "s4"]
SECRET_ID = "patient-7781"


def _write(tmp_path: Path, text: str, name: str = "pheno.tsv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("header", ["FID\tIID", "#FID\tIID", "IID", "#IID"])
def test_read_pheno_table__accepts_every_plink2_header(tmp_path: Path, header: str) -> None:
    fid = "0\t" if "FID" in header else ""
    p = _write(tmp_path, f"{header}\ty\n{fid}s1\t1.5\n{fid}s2\tNA\n{fid}s3\t-9\n")
    t = read_pheno_table(p)
    assert list(t.index) == ["s1", "s2", "s3"]
    assert list(t.columns) == ["y"]
    assert t.y.iloc[0] == 1.5 and np.isnan(t.y.iloc[1]) and np.isnan(t.y.iloc[2])


def test_trait_kind__codings() -> None:
    assert trait_kind(np.array([1.0, 2.0, np.nan])) == ("binary", "1/2")
    assert trait_kind(np.array([0.0, 1.0])) == ("binary", "0/1")
    assert trait_kind(np.array([0.0, 1.0, 2.0])) == ("quantitative", None)
    assert trait_kind(np.array([0.3, 1.7])) == ("quantitative", None)


@pytest.mark.parametrize(("column", "expected"), [("cc12", [1.0, 0.0, np.nan, 1.0]),
                                                   ("cc01", [1.0, 0.0, 0.0, np.nan])])
def test_load_phenotype__binary_becomes_0_1(tmp_path: Path, column: str,
                                             expected: list[float]) -> None:
    p = _write(tmp_path, "#IID cc12 cc01\ns1 2 1\ns2 1 0\ns3 NA 0\ns4 2 -9\n")
    t = load_phenotype(p, SAMPLES, name=column, require="binary")
    np.testing.assert_array_equal(t.values, expected)
    assert t.is_binary and t.n_absent == 0


def test_load_phenotype__aligns_to_genotype_order_and_counts_absent(tmp_path: Path) -> None:
    p = _write(tmp_path, "FID IID y\n0 s3 3.0\n0 x1 9.0\n0 s1 1.0\n0 x2 8.0\n")
    t = load_phenotype(p, SAMPLES)
    np.testing.assert_array_equal(t.values, [1.0, np.nan, 3.0, np.nan])
    assert t.n_absent == 2 and t.kind == "quantitative" and t.name == "y"


def test_load_phenotype__default_column_is_the_first(tmp_path: Path) -> None:
    p = _write(tmp_path, "#IID a b\ns1 1.5 2\ns2 2.5 1\n")
    assert load_phenotype(p, SAMPLES).name == "a"


def test_load_phenotype__no_overlap_raises_without_ids(tmp_path: Path) -> None:
    p = _write(tmp_path, f"#IID y\n{SECRET_ID} 1.0\nother 2.0\n")
    with pytest.raises(InputError, match=r"no sample of the phenotype file is in the genotype"
                       r" data.*0 of 2 rows match 4 genotype samples") as e:
        load_phenotype(p, SAMPLES)
    assert SECRET_ID not in str(e.value)


def test_load_phenotype__non_numeric_raises(tmp_path: Path) -> None:
    p = _write(tmp_path, "#IID y\ns1 1.0\ns2 tall\n")
    with pytest.raises(SchemaError, match=r"non-numeric value in column 'y'") as e:
        load_phenotype(p, SAMPLES)
    assert "tall" not in str(e.value)


def test_load_phenotype__constant_raises(tmp_path: Path) -> None:
    p = _write(tmp_path, "#IID y\ns1 5.25\ns2 5.25\ns3 NA\n")
    with pytest.raises(SchemaError, match=r"constant phenotype.*1 distinct value in 2") as e:
        load_phenotype(p, SAMPLES)
    assert "5.25" not in str(e.value)


def test_load_phenotype__all_missing_raises(tmp_path: Path) -> None:
    p = _write(tmp_path, "#IID y\ns1 NA\ns2 -9\n")
    with pytest.raises(SchemaError, match="phenotype has no value for any genotype sample"):
        load_phenotype(p, SAMPLES)


def test_load_phenotype__binary_test_on_quantitative_raises(tmp_path: Path) -> None:
    p = _write(tmp_path, "#IID bmi\ns1 21.5\ns2 30.25\ns3 25.0\n")
    with pytest.raises(InputError, match=r"case/control test on a quantitative trait.*"
                       r"Fix: use --test linear") as e:
        load_phenotype(p, SAMPLES, require="binary")
    assert "21.5" not in str(e.value)


def test_load_phenotype__unknown_column_suggests(tmp_path: Path) -> None:
    p = _write(tmp_path, "#IID height\ns1 1.0\ns2 2.0\n")
    with pytest.raises(ConfigError, match=r"phenotype column 'heigth' is not in the file.*"
                       r"did you mean 'height'"):
        load_phenotype(p, SAMPLES, name="heigth")


def test_load_phenotype__missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(InputFileNotFoundError, match="phenotype input file not found"):
        load_phenotype(tmp_path / "nope.tsv", SAMPLES)


def test_load_phenotype__duplicated_iid_raises(tmp_path: Path) -> None:
    p = _write(tmp_path, "#IID y\ns1 1.0\ns1 2.0\n")
    with pytest.raises(SchemaError, match="IID"):
        load_phenotype(p, SAMPLES)


def test_load_covariates__subset_and_order(tmp_path: Path) -> None:
    p = _write(tmp_path, "#FID IID sex age pc\n0 s2 2 40 0.1\n0 s1 1 NA 0.2\n", "covar.tsv")
    c = load_covariates(p, SAMPLES, names=["age", "sex"])
    assert c.names == ("age", "sex")
    np.testing.assert_array_equal(
        c.values, [[np.nan, 1.0], [40.0, 2.0], [np.nan, np.nan], [np.nan, np.nan]]
    )


def test_load_covariates__unknown_name_raises(tmp_path: Path) -> None:
    p = _write(tmp_path, "#IID sex age\ns1 1 40\ns2 2 50\n", "covar.tsv")
    with pytest.raises(ConfigError, match=r"covariate column 'agee' is not in the file.*"
                       r"--covar-name"):
        load_covariates(p, SAMPLES, names=["agee"])


def _trait(values: list[float], *, binary: bool = False) -> Trait:
    return Trait("y", np.array(values), "binary" if binary else "quantitative",
                 "1/2" if binary else None, 0, "pheno.tsv")


def test_analysis_samples__drops_missing_phenotype_and_covariates() -> None:
    t = _trait([1.0, np.nan, 2.0, 3.0])
    c = Covariates(("age",), np.array([[50.0], [60.0], [np.nan], [40.0]]), 0, "covar.tsv")
    s = analysis_samples(t, c, extra=np.array([[0.1], [0.2], [0.3], [0.5]]),
                         extra_names=["PC1"])
    assert s.mask.tolist() == [True, False, False, True]
    assert s.covariate_names == ("age", "PC1")
    np.testing.assert_array_equal(s.covariates, [[50.0, 0.1], [40.0, 0.5]])
    assert (s.n_missing_phenotype, s.n_missing_covariates, s.n_used) == (1, 1, 2)


def test_analysis_samples__constant_covariate_raises() -> None:
    t = _trait([1.0, 2.0, 3.0])
    c = Covariates(("sex",), np.array([[2.0], [2.0], [2.0]]), 0, "covar.tsv")
    with pytest.raises(SchemaError, match=r"constant covariate.*covar.tsv: column 'sex'.*"
                       r"drop it from --covar-name"):
        analysis_samples(t, c)


def test_analysis_samples__one_class_raises() -> None:
    t = _trait([1.0, 1.0, np.nan, 0.0], binary=True)
    c = Covariates(("age",), np.array([[1.0], [2.0], [3.0], [np.nan]]), 0, "covar.tsv")
    with pytest.raises(InputError, match=r"only one class.*2 cases, 0 controls"):
        analysis_samples(t, c)


def test_analysis_samples__nothing_left_raises() -> None:
    t = _trait([1.0, np.nan])
    c = Covariates(("age",), np.array([[np.nan], [1.0]]), 0, "covar.tsv")
    with pytest.raises(InputError, match="no sample has the phenotype and all covariates"):
        analysis_samples(t, c)


def test_errors__are_secured_bio_errors(tmp_path: Path) -> None:
    p = _write(tmp_path, "#IID y\ns1 1.0\ns2 1.0\n")
    with pytest.raises(SecuredBioError):
        load_phenotype(p, SAMPLES)
