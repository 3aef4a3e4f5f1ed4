"""Re-identification risk models: hand-computed cases, pycanon and scipy references, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycanon import anonymity
from scipy.stats import hypergeom

from secured_bio.errors import ConfigError, InputError, SchemaError
from secured_bio.privacy.assess import plot_risk, population_uniqueness, reidentification_risk
from secured_bio.privacy.assess.risk import compat_blocks, parse_interval, value_matches
from secured_bio.testing import simulate_clinical

QI = ["age", "sex", "postcode", "admission_date"]


def _clinical(tmp_path: Path, n: int = 600, seed: int = 0) -> pd.DataFrame:
    return pd.read_csv(simulate_clinical(tmp_path / "c.csv", n_rows=n, seed=seed).path,
                       dtype=str)


def _coarsen(t: pd.DataFrame, level: int) -> pd.DataFrame:
    """Generalize the QIs: 1 = age decade, 3-digit postcode, month; 2 = 20-year age band,
    2-digit postcode, year, sex suppressed."""
    r = t.copy()
    width = 10 if level == 1 else 20
    lo = r["age"].astype(int) // width * width
    r["age"] = [f"[{a}-{a + width - 1}]" for a in lo]
    keep = 3 if level == 1 else 2
    r["postcode"] = r["postcode"].str[:keep] + "*" * (5 - keep)
    r["admission_date"] = r["admission_date"].str[: 7 if level == 1 else 4]
    if level >= 2:
        r["sex"] = "*"
    return r


# ---------------------------------------------------------------- hand-computed cases


def test_reidentification_risk__prosecutor_and_marketer_equal_hand_computed_values():
    # Classes: ([30-39], F) x3, ([30-39], M) x2, ([40-49], F) x1 -> sizes 3, 2, 1; n = 6.
    t = pd.DataFrame({"age": ["[30-39]"] * 5 + ["[40-49]"],
                      "sex": ["F", "F", "F", "M", "M", "F"], "dx": list("abcabc")})
    r = reidentification_risk(t, qi=["age", "sex"], threshold=0.4)
    p = r["prosecutor"]
    assert p["highest"] == 1.0
    assert p["average"] == pytest.approx((3 * (1 / 3) + 2 * (1 / 2) + 1) / 6)
    # Record risks 1/3, 1/2, 1: above 0.4 are the 2 + 1 records of the two small classes.
    assert p["records_at_risk_count"] == 3 and p["records_at_risk"] == pytest.approx(0.5)
    assert p["smallest_class"] == 1
    assert r["n_classes"] == 3
    assert r["marketer"]["risk"] == pytest.approx(3 / 6)
    assert r["sample_uniques"] == {"count": 1, "share": pytest.approx(1 / 6)}


def test_reidentification_risk__journalist_equals_prosecutor_without_population():
    t = pd.DataFrame({"age": ["1", "1", "2"], "sex": ["F", "F", "M"]})
    r = reidentification_risk(t, qi="age,sex")
    for key in ("highest", "average", "records_at_risk"):
        assert r["journalist"][key] == r["prosecutor"][key]
    assert "no population table" in r["journalist"]["note"]


def test_reidentification_risk__journalist_against_raw_population_equals_hand_computed():
    released = pd.DataFrame({"age": ["[30-39]", "[30-39]", "[40-49]"], "zip": ["751**"] * 3})
    population = pd.DataFrame({
        "age": ["31", "35", "38", "44", "47", "52", "33"],
        "zip": ["75101", "75199", "75200", "75123", "75111", "75100", "75105"],
    })
    # [30-39] & 751**: 31/75101, 35/75199, 33/75105 -> F = 3; [40-49] & 751**: 44, 47 -> F = 2.
    r = reidentification_risk(released, qi=["age", "zip"], population=population)
    j = r["journalist"]
    assert j["highest"] == pytest.approx(1 / 2)
    assert j["average"] == pytest.approx((2 * (1 / 3) + 1 * (1 / 2)) / 3)
    assert j["smallest_population_class"] == 2
    # Marketer against a population: (1/n) sum_j f_j / F_j.
    assert r["marketer"]["risk"] == pytest.approx((2 / 3 + 1 / 2) / 3)
    assert r["marketer"]["population"] is True
    # The prosecutor still sees classes of sizes 2 and 1.
    assert r["prosecutor"]["highest"] == 1.0


def test_reidentification_risk__population_missing_released_people_is_raised_to_class_size():
    released = pd.DataFrame({"age": ["[30-39]", "[30-39]"]})
    population = pd.DataFrame({"age": ["31"]})
    r = reidentification_risk(released, qi=["age"], population=population)
    assert r["journalist"]["highest"] == pytest.approx(1 / 2)
    assert "raised to the class size" in r["journalist"]["note"]


@pytest.mark.parametrize(("raw", "released", "expected"), [
    ("34", "[30-39]", True), ("39", "[30-39]", True), ("40", "[30-39]", False),
    ("39.5", "[30, 40)", True), ("40", "[30, 40)", False), ("F", "*", True),
    ("75123", "751**", True), ("75223", "751**", False), ("7512", "751**", False),
    ("2024-03-12", "2024", True), ("2024-03-12", "2024-03", True),
    ("2024-03-12", "2025", False), ("2024-03-12", "[2024-03-01 - 2024-03-31]", True),
    ("2024-04-01", "[2024-03-01 - 2024-03-31]", False), ("F", "M", False), ("x", "[1-2]", False),
    # The formats of secured_bio.privacy.anonymize: year intervals and Mondrian date ranges.
    ("2024-03-12", "[2020-2029]", True), ("2031-01-01", "[2020-2029]", False),
    ("2024-03-12", "[2024-01-02/2024-03-31]", True), ("-3", "[-5--1]", True),
])
def test_value_matches__intervals_masks_and_date_cuts(raw, released, expected):
    assert value_matches(raw, released) is expected


def test_parse_interval__negative_bounds_and_non_intervals():
    assert parse_interval("[-5, 5]") == (-5.0, 5.0, True)
    assert parse_interval("30-39") is None
    assert parse_interval("*") is None


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from(["[0-9]", "[10-19]", "*"]),
                               st.sampled_from(["F", "M"])), min_size=1, max_size=30))
def test_reidentification_risk__invariants_hold_for_any_table(rows):
    t = pd.DataFrame(rows, columns=["age", "sex"])
    r = reidentification_risk(t, qi=["age", "sex"], population=t)
    sizes = t.value_counts().to_numpy()
    # Average prosecutor risk = classes / records (each class contributes f * 1/f).
    assert r["prosecutor"]["average"] == pytest.approx(len(sizes) / len(t))
    assert r["prosecutor"]["highest"] == pytest.approx(1 / sizes.min())
    # Against itself as population, "*" classes match more population records than they
    # hold, so the journalist never exceeds the prosecutor.
    assert r["journalist"]["average"] <= r["prosecutor"]["average"] + 1e-12
    assert 0 < r["marketer"]["risk"] <= 1
    assert r["sample_uniques"]["count"] == int((sizes == 1).sum())


def test_compat_blocks__small_blocks_give_the_same_matches(tmp_path):
    t = _clinical(tmp_path, n=200)
    rel = _coarsen(t, 1)
    classes = rel.groupby(QI, sort=False).size().reset_index()
    whole = np.vstack([ok for _, ok in compat_blocks(t, classes, QI)])
    small = np.vstack([ok for _, ok in compat_blocks(t, classes, QI, max_cells=500)])
    np.testing.assert_array_equal(whole, small)
    # Each raw record matches its own generalized class (and only one: a partition).
    assert (whole.sum(axis=1) == 1).all()


# ---------------------------------------------------------------- references


@pytest.mark.reference
def test_reidentification_risk__highest_prosecutor_is_one_over_pycanon_k(tmp_path):
    t = _clinical(tmp_path)
    for level in (1, 2):
        rel = _coarsen(t, level)
        r = reidentification_risk(rel, qi=QI)
        k = anonymity.k_anonymity(rel, QI)
        assert r["prosecutor"]["highest"] == pytest.approx(1 / k)
        assert r["prosecutor"]["smallest_class"] == k


@pytest.mark.reference
def test_population_uniqueness__matches_zayatz_formula_with_scipy_hypergeom():
    sizes = np.array([1, 1, 1, 2, 2, 3, 5, 1, 4])
    n, big_n = int(sizes.sum()), 200
    r = population_uniqueness(sizes, population_size=big_n)
    values, counts = np.unique(sizes, return_counts=True)
    p = counts / counts.sum()
    h = hypergeom.pmf(1, big_n, values, n)
    expected = (p[0] * h[0]) / (p * h).sum()
    assert r["probability_unique_given_sample_unique"] == pytest.approx(expected, rel=1e-9)
    assert r["population_uniques"] == pytest.approx(4 * expected, rel=1e-9)
    assert r["sampling_fraction"] == pytest.approx(n / big_n)


def test_population_uniqueness__whole_population_gives_sample_uniques():
    r = population_uniqueness([1, 1, 2, 3, 1], population_size=8)
    assert r["population_uniques"] == pytest.approx(3.0)
    assert r["probability_unique_given_sample_unique"] == pytest.approx(1.0)


def test_population_uniqueness__smaller_sampling_fraction_gives_fewer_population_uniques():
    sizes = [1] * 10 + [2] * 5 + [3] * 3
    shares = [population_uniqueness(sizes, population_size=n)["share"]
              for n in (29, 60, 300, 3000)]
    assert all(a > b for a, b in zip(shares, shares[1:], strict=False))


def test_population_uniqueness__no_sample_uniques_gives_zero():
    assert population_uniqueness([2, 3], population_size=50)["population_uniques"] == 0.0


# ---------------------------------------------------------------- monotonicity


def test_reidentification_risk__coarser_release_has_lower_risk(tmp_path):
    t = _clinical(tmp_path)
    results = [reidentification_risk(rel, qi=QI) for rel in (t, _coarsen(t, 1), _coarsen(t, 2))]
    avg = [r["prosecutor"]["average"] for r in results]
    uniques = [r["sample_uniques"]["count"] for r in results]
    at_risk = [r["prosecutor"]["records_at_risk"] for r in results]
    assert avg[0] > avg[1] > avg[2]
    assert uniques[0] > uniques[1] > uniques[2]
    assert at_risk[0] >= at_risk[1] > at_risk[2]
    # The raw table: nearly every record is unique (exact ages and dates).
    assert results[0]["prosecutor"]["highest"] == 1.0


def test_reidentification_risk__journalist_never_exceeds_prosecutor(tmp_path):
    t = _clinical(tmp_path)
    rel = _coarsen(t[:300], 1)
    r = reidentification_risk(rel, qi=QI, population=t)
    assert r["journalist"]["average"] <= r["prosecutor"]["average"]
    assert r["journalist"]["highest"] <= r["prosecutor"]["highest"]
    assert r["journalist"]["note"] is None
    assert r["population_uniqueness"]["population_size"] == len(t)


# ---------------------------------------------------------------- errors


def test_reidentification_risk__missing_qi_column_raises_with_did_you_mean():
    t = pd.DataFrame({"age": ["1"], "postcode": ["75001"]})
    with pytest.raises(SchemaError, match="did you mean 'postcode'"):
        reidentification_risk(t, qi=["age", "postcod"])


def test_reidentification_risk__empty_table_raises():
    with pytest.raises(InputError, match="released table is empty"):
        reidentification_risk(pd.DataFrame({"age": []}), qi=["age"])


def test_reidentification_risk__not_a_dataframe_raises():
    with pytest.raises(InputError, match="released is not a table"):
        reidentification_risk([["1"]], qi=["age"])  # type: ignore[arg-type]


@pytest.mark.parametrize(("qi", "match"), [([], "no quasi-identifiers"),
                                          (["age", "age"], "listed twice")])
def test_reidentification_risk__bad_qi_list_raises(qi, match):
    with pytest.raises(ConfigError, match=match):
        reidentification_risk(pd.DataFrame({"age": ["1"]}), qi=qi)


def test_reidentification_risk__threshold_out_of_range_raises():
    with pytest.raises(ConfigError, match="threshold out of range"):
        reidentification_risk(pd.DataFrame({"age": ["1"]}), qi=["age"], threshold=1.5)


def test_population_uniqueness__population_smaller_than_release_raises():
    with pytest.raises(ConfigError, match="population smaller than the release"):
        population_uniqueness([1, 2], population_size=2)


def test_reidentification_risk__error_messages_never_show_values():
    with pytest.raises(SchemaError, match="column missing") as e:
        reidentification_risk(pd.DataFrame({"age": ["PATIENT_42"]}), qi=["agee"])
    assert "PATIENT_42" not in str(e.value)


# ---------------------------------------------------------------- chart


def test_plot_risk__writes_png_for_a_risk_model_report(tmp_path):
    r = reidentification_risk(pd.DataFrame({"age": ["1", "1", "2"]}), qi=["age"])
    out = tmp_path / "risk.png"
    plot_risk(r, out, title="t")
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(("change", "match"), [
    ({"format": "other"}, "not a risk report"),
    ({"format_version": "99"}, "unsupported risk report version"),
    ({"marketer": {"risk": "high"}}, "not a number"),
])
def test_plot_risk__bad_report_raises_and_writes_nothing(tmp_path, change, match):
    r = reidentification_risk(pd.DataFrame({"age": ["1", "1", "2"]}), qi=["age"])
    r.update(change)
    out = tmp_path / "risk.png"
    with pytest.raises(InputError, match=match):
        plot_risk(r, out)
    assert not out.exists()
