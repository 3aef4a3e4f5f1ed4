"""Tests of simulate_clinical: columns, planted dependence, re-identification risk, writes."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from secured_bio.errors import ConfigError
from secured_bio.testing import AGE_BANDS, DIAGNOSES, ClinicalTable, simulate_clinical

QIS = ["age", "sex", "postcode", "admission_date"]


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> ClinicalTable:
    return simulate_clinical(tmp_path_factory.mktemp("clin") / "clinical.csv")


@pytest.fixture(scope="module")
def df(table: ClinicalTable) -> pd.DataFrame:
    return pd.read_csv(table.path, dtype={"postcode": str})


def _band(age: pd.Series) -> pd.Series:
    return pd.cut(age, [-1, 14, 44, 64, 200], labels=list(AGE_BANDS))


def test_simulate_clinical__columns_and_types(table: ClinicalTable, df: pd.DataFrame) -> None:
    assert list(df.columns) == list(table.columns) == [
        "patient_id", "age", "sex", "postcode", "admission_date", "ethnicity", "diagnosis",
        "length_of_stay",
    ]
    assert len(df) == table.n_rows == 1000
    assert df["patient_id"].is_unique and df["patient_id"].str.match(r"^site1_\d{6}$").all()
    assert pd.api.types.is_integer_dtype(df["age"]) and df["age"].between(0, 95).all()
    assert set(df["sex"]) == {"F", "M"}
    assert df["postcode"].str.fullmatch(r"\d{5}").all()
    assert df["postcode"].str.startswith("0").any()  # leading zeros kept
    dates = pd.to_datetime(df["admission_date"], format="%Y-%m-%d")
    assert dates.min() >= pd.Timestamp("2024-01-01") and dates.max() <= pd.Timestamp(
        "2025-12-31")
    assert set(df["diagnosis"]) <= set(DIAGNOSES)
    assert df["ethnicity"].nunique() >= 4
    assert pd.api.types.is_integer_dtype(df["length_of_stay"])
    assert (df["length_of_stay"] >= 0).all()
    assert df.notna().all().all()


def test_simulate_clinical__metadata_sidecar(table: ClinicalTable) -> None:
    meta = json.loads(table.meta_path.read_text())
    assert table.meta_path == table.path.with_name("clinical.json")
    assert meta["format"] == "secured_bio.demo_clinical" and meta["format_version"] == 1
    assert meta["quasi_identifiers"] == list(table.quasi_identifiers) == QIS
    assert meta["sensitive"] == list(table.sensitive) == ["diagnosis"]
    assert set(meta["columns"]) == set(table.columns)


def test_simulate_clinical__diagnosis_depends_on_age_band(df: pd.DataFrame) -> None:
    tab = pd.crosstab(_band(df["age"]), df["diagnosis"])
    assert stats.chi2_contingency(tab).pvalue < 1e-6
    preg = df[df["diagnosis"] == "pregnancy_complication"]
    assert len(preg) > 0 and (preg["sex"] == "F").all() and preg["age"].between(15, 44).all()
    old = df[df["age"] >= 65]
    young = df[df["age"] < 15]
    assert (old["diagnosis"] == "heart_failure").mean() > 0.1
    assert (young["diagnosis"] == "heart_failure").sum() == 0


def test_simulate_clinical__quasi_identifiers_carry_reidentification_risk(
    df: pd.DataFrame,
) -> None:
    sizes = df.groupby(QIS).size()
    assert sizes.min() == 1  # not k-anonymous for any k > 1
    assert (sizes == 1).sum() > 0.9 * len(df)  # nearly every record is a sample unique
    # Even coarse quasi-identifiers single people out in the rare rural postcodes.
    coarse = df.assign(band=_band(df["age"])).groupby(["band", "sex", "postcode"],
                                                      observed=True).size()
    assert (coarse == 1).any()
    share = df["postcode"].value_counts(normalize=True)
    assert share.min() < 0.01 and share.max() > 0.03


def test_simulate_clinical__same_seed_same_bytes(tmp_path: Path) -> None:
    a = simulate_clinical(tmp_path / "a.csv", n_rows=50, seed=9)
    b = simulate_clinical(tmp_path / "b.csv", n_rows=50, seed=9)
    assert a.path.read_bytes() == b.path.read_bytes()


def test_simulate_clinical__different_seed_different_content(tmp_path: Path) -> None:
    a = simulate_clinical(tmp_path / "a.csv", n_rows=50, seed=9)
    b = simulate_clinical(tmp_path / "b.csv", n_rows=50, seed=10)
    assert a.path.read_bytes() != b.path.read_bytes()


@settings(max_examples=15, deadline=None)
@given(n_rows=st.integers(1, 40), seed=st.integers(0, 2**32), site=st.sampled_from(
    ["site1", "site7", "hospitalA"]))
def test_simulate_clinical__any_size_gives_unique_ids_and_valid_rows(
    n_rows: int, seed: int, site: str
) -> None:
    with tempfile.TemporaryDirectory() as d:
        t = simulate_clinical(Path(d) / "sub" / "c.csv", n_rows=n_rows, site=site, seed=seed)
        frame = pd.read_csv(t.path, dtype=str)
        assert len(frame) == n_rows and frame["patient_id"].is_unique
        assert frame["patient_id"].str.startswith(f"{site}_").all()
        assert sorted(p.name for p in Path(d, "sub").iterdir()) == ["c.csv", "c.json"]


def test_simulate_clinical__failure_mid_write_leaves_no_final_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import secured_bio.testing._clinical as mod

    def boom(obj: object) -> str:
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(mod, "json_text", boom)
    with pytest.raises(OSError, match="simulated"):
        simulate_clinical(tmp_path / "c.csv", n_rows=20)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_rows": 0}, "n_rows is too small"),
        ({"site": "site 1"}, "site is not a valid site name"),
        ({"site": "site_1"}, "site is not a valid site name"),
        ({"seed": 1.0}, "seed must be an integer"),
    ],
)
def test_simulate_clinical__bad_parameters_raise_config_error(
    tmp_path: Path, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        simulate_clinical(tmp_path / "c.csv", **kwargs)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_simulate_clinical__path_is_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("path is a folder")):
        simulate_clinical(tmp_path)


def test_simulate_clinical__row_order_reproducible_summary(df: pd.DataFrame) -> None:
    # Guard against accidental changes of the generator: a coarse, stable summary.
    assert 0.4 < (df["sex"] == "F").mean() < 0.65
    assert 35 < df["age"].mean() < 65
    assert 2 < df["length_of_stay"].mean() < 12
    assert np.isclose(_band(df["age"]).value_counts(normalize=True)["65+"], 0.35, atol=0.06)
