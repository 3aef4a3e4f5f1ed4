"""Attack simulations: linkage, singling out, linkability, inference (anonymeter's method)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from secured_bio.errors import ConfigError, InputError, SchemaError
from secured_bio.privacy.assess import (
    assess_table,
    inference,
    linkability,
    linkage_attack,
    reidentification_risk,
    singling_out,
)
from secured_bio.privacy.assess.attacks import _result, wilson_interval
from secured_bio.testing import simulate_clinical

QI = ["age", "sex", "postcode", "admission_date"]


@pytest.fixture(scope="module")
def clinical(tmp_path_factory) -> pd.DataFrame:
    path = tmp_path_factory.mktemp("clinical") / "c.csv"
    return pd.read_csv(simulate_clinical(path, n_rows=900, seed=3).path, dtype=str)


def _split(t: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Main set (used for the release) and control set (held out), 450 rows each."""
    return t[:450].reset_index(drop=True), t[450:].reset_index(drop=True)


def _coarsen(t: pd.DataFrame) -> pd.DataFrame:
    r = t.copy()
    lo = r["age"].astype(int) // 20 * 20
    r["age"] = [f"[{a}-{a + 19}]" for a in lo]
    r["postcode"] = r["postcode"].str[:2] + "***"
    r["admission_date"] = r["admission_date"].str[:4]
    return r


# ---------------------------------------------------------------- statistics


@pytest.mark.reference
@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (8, 10), (10, 10), (37, 500)])
def test_wilson_interval__matches_scipy_binomtest(k, n):
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(ref.low, abs=1e-12)
    assert hi == pytest.approx(ref.high, abs=1e-12)


def test_wilson_interval__no_trials_raises():
    with pytest.raises(InputError, match="no trials"):
        wilson_interval(0, 0)


def test_result__risk_is_main_minus_control_over_one_minus_control():
    r = _result("x", (60, 100), (20, 100), (5, 100), 0.95)
    assert r["risk"] == pytest.approx((0.6 - 0.2) / (1 - 0.2))
    lo, hi = r["risk_ci"]
    assert lo < r["risk"] < hi
    assert r["main"]["ci"] == list(wilson_interval(60, 100))


def test_result__attack_not_beating_baseline_carries_a_note():
    weak = _result("x", (10, 100), (5, 100), (12, 100), 0.95)
    strong = _result("x", (60, 100), (5, 100), (12, 100), 0.95)
    assert "does not beat the naive baseline" in weak["note"]
    assert strong["note"] is None


def test_result__main_below_control_is_clipped_to_zero_risk():
    r = _result("x", (10, 100), (20, 100), (5, 100), 0.95)
    assert r["risk"] == 0.0 and r["risk_raw"] < 0


@pytest.mark.parametrize(("main", "control", "reason"), [
    ((0, 0), (0, 0), "no attack queries"),
    ((5, 10), None, "no control set"),
    ((5, 10), (10, 10), "control attack always succeeds"),
])
def test_result__refuses_risk_with_a_reason(main, control, reason):
    r = _result("x", main, control, (0, max(main[1], 1)), 0.95)
    assert r["risk"] is None and r["risk_ci"] is None
    assert reason in r["reason"]


# ---------------------------------------------------------------- linkage


def test_linkage_attack__copy_links_every_sample_unique_correctly(clinical):
    main, _ = _split(clinical)
    released = main.drop(columns=["patient_id"])
    r = linkage_attack(released, main, qi=QI, id_column="patient_id",
                       released_ids=main["patient_id"].tolist())
    uniques = reidentification_risk(released, qi=QI)["sample_uniques"]["count"]
    assert r["linked"] == len(main)
    assert r["linked_uniquely"] == uniques
    assert r["correct_unique"] == uniques
    # Every external record is in the release: expected correct = number of classes.
    assert r["expected_correct"] == pytest.approx(reidentification_risk(released, qi=QI)
                                                  ["n_classes"])


def test_linkage_attack__coarser_release_links_fewer_records(clinical):
    main, _ = _split(clinical)
    ids = main["patient_id"].tolist()
    raw = linkage_attack(main, main, qi=QI, id_column="patient_id", released_ids=ids)
    coarse = linkage_attack(_coarsen(main), main, qi=QI, id_column="patient_id",
                            released_ids=ids)
    assert coarse["correct_unique"] < raw["correct_unique"]
    assert coarse["expected_correct"] < raw["expected_correct"]
    # Generalized values still match the raw ones: every external record has candidates.
    assert coarse["linked"] == len(main)


def test_linkage_attack__outsiders_are_never_correctly_linked(clinical):
    main, control = _split(clinical)
    r = linkage_attack(main, control, qi=QI, id_column="patient_id")
    assert r["correct_unique"] == 0 and r["expected_correct"] == 0.0


def test_linkage_attack__without_identities_reports_links_only():
    rel = pd.DataFrame({"age": ["1", "2"]})
    r = linkage_attack(rel, pd.DataFrame({"age": ["1", "3"]}), qi=["age"])
    assert r["linked_uniquely"] == 1 and r["expected_matches"] == 1.0
    assert r["correct_unique"] is None and "no identities" in r["reason"]


def test_linkage_attack__released_ids_of_wrong_length_raise():
    rel = pd.DataFrame({"age": ["1", "2"]})
    ext = pd.DataFrame({"age": ["1"], "id": ["a"]})
    with pytest.raises(InputError, match="released identities do not match"):
        linkage_attack(rel, ext, qi=["age"], id_column="id", released_ids=["a"])


def test_linkage_attack__missing_id_column_raises():
    rel = pd.DataFrame({"age": ["1"]})
    with pytest.raises(SchemaError, match="column missing from the external table"):
        linkage_attack(rel, rel, qi=["age"], id_column="name")


# ---------------------------------------------------------------- singling out


@pytest.mark.parametrize("mode", ["univariate", "multivariate"])
def test_singling_out__copy_release_has_risk_and_independent_release_has_little(clinical,
                                                                               mode):
    main, control = _split(clinical)
    cols = QI + ["diagnosis"]
    leak = singling_out(main, main, control, columns=cols, mode=mode, n_attacks=150, seed=1)
    # A release of other people from the same population (control[:225]), attacked against
    # main[:225] with control[225:] as the control set.
    safe = singling_out(main[:225], control[:225], control[225:], columns=cols, mode=mode,
                        n_attacks=150, seed=1)
    assert leak["n_queries"] > 0 and leak["risk"] is not None
    assert leak["main"]["value"] > leak["control"]["value"]
    assert leak["risk_ci"][0] > 0
    assert safe["risk"] is not None and safe["risk_ci"][0] < 0.05
    assert safe["risk"] < leak["risk"]


def test_singling_out__coarser_release_has_lower_risk(clinical):
    main, control = _split(clinical)
    raw = singling_out(main, main, control, columns=QI, n_attacks=150, seed=2)
    coarse = singling_out(main, _coarsen(main), control, columns=QI, n_attacks=150, seed=2)
    assert coarse["main"]["value"] < raw["main"]["value"]
    assert (coarse["risk"] or 0.0) < raw["risk"]


def test_singling_out__larger_set_is_subsampled_so_outsiders_show_no_risk(clinical):
    # Nobody in main or control is in the release; a control set 7x larger than the main
    # set would make predicates rarely unique there and inflate the risk without subsampling.
    main, released, control = clinical[:100], clinical[100:200], clinical[200:]
    r = singling_out(main, released, control, columns=QI, n_attacks=150, seed=4)
    assert r["main_rows"] == r["control_rows"] == 100
    assert r["risk_ci"][0] < 0.05


def test_singling_out__without_control_refuses_risk(clinical):
    main, _ = _split(clinical)
    r = singling_out(main, main, None, columns=QI, n_attacks=30)
    assert r["risk"] is None and "no control set" in r["reason"]
    assert r["main"]["trials"] == r["n_queries"] > 0


def test_singling_out__no_queries_refuses_risk():
    # Every released value appears twice and no column is numeric: no univariate predicate.
    t = pd.DataFrame({"a": list("xxyyzz"), "b": list("ppqqrr")})
    r = singling_out(t, t, t, mode="univariate", n_attacks=10)
    assert r["n_queries"] == 0
    assert r["risk"] is None and "no attack queries" in r["reason"]


def test_singling_out__generalized_predicate_covers_raw_values():
    # The release's only value seen once is the mask 751**, which covers one raw record of
    # the main set (75112) and one of the control set (75113).
    main = pd.DataFrame({"zip": ["75112", "69001", "69002"]})
    released = pd.DataFrame({"zip": ["751**", "690**", "690**"]})
    control = pd.DataFrame({"zip": ["75113", "69003", "69004"]})
    r = singling_out(main, released, control, mode="univariate", n_attacks=10)
    assert r["n_queries"] == 1
    assert r["main"]["value"] == 1.0 and r["control"]["value"] == 1.0
    assert r["risk"] is None and "always succeeds" in r["reason"]


def test_inference__generalized_release_still_reveals_unique_records(clinical):
    main, control = _split(clinical)
    coarse = _coarsen(main)
    r = inference(main, coarse, control, aux_cols=QI, secret="diagnosis", n_attacks=200)
    # Records alone in their generalized class are found at distance 0 through the
    # generalization, so the attack beats the control set.
    assert r["main"]["value"] > r["control"]["value"]


def test_singling_out__unknown_mode_raises_with_did_you_mean():
    t = pd.DataFrame({"a": ["1"]})
    with pytest.raises(ConfigError, match="did you mean 'univariate'"):
        singling_out(t, t, t, mode="univarate")


@pytest.mark.parametrize("kw", [{"n_attacks": 0}, {"n_cols": 0}])
def test_singling_out__non_positive_counts_raise(kw):
    t = pd.DataFrame({"a": ["1"]})
    with pytest.raises(ConfigError, match="out of range"):
        singling_out(t, t, t, **kw)


def test_singling_out__column_missing_from_control_raises():
    t = pd.DataFrame({"a": ["1"], "b": ["2"]})
    with pytest.raises(SchemaError, match="control:b"):
        singling_out(t, t, t[["a"]], columns=["a", "b"])


# ---------------------------------------------------------------- linkability


def _numeric_table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.integers(0, 1000, size=(n, 4)), columns=list("abcd")).astype(str)


def test_linkability__copy_links_and_independent_release_does_not():
    t = _numeric_table(400, 0)
    main, control = t[:200], t[200:]
    leak = linkability(main, main, control, aux_cols=(["a", "b"], ["c", "d"]), n_attacks=100)
    other = _numeric_table(200, 1)
    safe = linkability(main, other, control, aux_cols=(["a", "b"], ["c", "d"]), n_attacks=100)
    assert leak["main"]["value"] == 1.0
    assert leak["risk_ci"][0] > 0.9
    assert safe["risk_ci"][0] < 0.05
    assert safe["main"]["value"] < 0.1


def test_linkability__more_neighbours_raise_the_baseline():
    t = _numeric_table(200, 2)
    one = linkability(t[:100], t[:100], t[100:], aux_cols=(["a"], ["b"]), n_attacks=100)
    many = linkability(t[:100], t[:100], t[100:], aux_cols=(["a"], ["b"]), n_attacks=100,
                       n_neighbors=20)
    assert many["baseline"]["value"] > one["baseline"]["value"]


def test_linkability__without_control_refuses_risk():
    t = _numeric_table(50, 3)
    r = linkability(t, t, None, aux_cols=(["a"], ["b"]), n_attacks=10)
    assert r["risk"] is None and "no control set" in r["reason"]


def test_linkability__overlapping_column_sets_raise():
    t = _numeric_table(10, 4)
    with pytest.raises(ConfigError, match="column sets overlap"):
        linkability(t, t, t, aux_cols=(["a", "b"], ["b"]))


def test_linkability__empty_column_set_raises():
    t = _numeric_table(10, 4)
    with pytest.raises(ConfigError, match=r"no columns given \[aux_cols\[1\]\]"):
        linkability(t, t, t, aux_cols=(["a"], []))


def test_linkability__zero_neighbours_raise():
    t = _numeric_table(10, 4)
    with pytest.raises(ConfigError, match="neighbours out of range"):
        linkability(t, t, t, aux_cols=(["a"], ["b"]), n_neighbors=0)


# ---------------------------------------------------------------- inference


def test_inference__copy_release_reveals_secret_and_coarse_release_less(clinical):
    main, control = _split(clinical)
    leak = inference(main, main, control, aux_cols=QI, secret="diagnosis", n_attacks=200)
    coarse = inference(main, _coarsen(main), control, aux_cols=QI, secret="diagnosis",
                       n_attacks=200)
    assert leak["main"]["value"] == 1.0
    assert leak["risk_ci"][0] > 0.5
    assert coarse["risk"] < leak["risk"]


def test_inference__release_of_other_people_gives_no_significant_risk(clinical):
    main, control = _split(clinical)
    # Released rows are control[:225]; the attacker's control set is control[225:].
    r = inference(main, control[:225], control[225:], aux_cols=QI, secret="diagnosis",
                  n_attacks=200)
    # Neither set is in the release: the risk interval reaches (near) zero.
    assert r["risk_ci"][0] < 0.05
    assert r["risk_ci"][0] <= r["risk"] <= r["risk_ci"][1]


def test_inference__numeric_secret_uses_relative_tolerance():
    t = pd.DataFrame({"a": [str(i) for i in range(40)],
                      "s": [str(100 + i) for i in range(40)]})
    released = t.assign(s=[str(int(v) * 1.04) for v in t["s"].astype(int)])
    near = inference(t, released, t, aux_cols=["a"], secret="s", n_attacks=40)
    far = inference(t, released, t, aux_cols=["a"], secret="s", n_attacks=40, tolerance=0.01)
    assert near["main"]["value"] == 1.0 and far["main"]["value"] == 0.0


def test_inference__secret_among_aux_columns_raises():
    t = pd.DataFrame({"a": ["1"], "s": ["x"]})
    with pytest.raises(ConfigError, match="secret column is also an auxiliary"):
        inference(t, t, t, aux_cols=["a", "s"], secret="s")


# ---------------------------------------------------------------- whole assessment


def test_assess_table__reports_every_model_and_attack(clinical):
    main, control = _split(clinical)
    r = assess_table(main, _coarsen(main), qi=QI, control=control, sensitive="diagnosis",
                     id_column="patient_id", n_attacks=60)
    for key in ("prosecutor", "journalist", "marketer", "sample_uniques",
                "population_uniqueness", "linkage", "singling_out", "linkability", "inference"):
        assert key in r
    assert r["linkage"]["correct_unique"] is not None  # identities from the row-aligned original
    assert r["inference"]["secret"] == "diagnosis"
    assert r["prosecutor"] == reidentification_risk(_coarsen(main), qi=QI,
                                                    population=main)["prosecutor"]


def test_assess_table__without_sensitive_or_second_qi_reports_null_with_reason(clinical):
    main, control = _split(clinical)
    r = assess_table(main, main, qi=["age"], control=control, n_attacks=20)
    assert r["linkability"]["risk"] is None and "2 quasi-identifiers" in r["linkability"]["reason"]
    assert r["inference"]["risk"] is None and "no secret" in r["inference"]["reason"]


def test_assess_table__sensitive_among_qi_raises():
    t = pd.DataFrame({"a": ["1"], "s": ["x"]})
    with pytest.raises(ConfigError, match="sensitive column is also a quasi-identifier"):
        assess_table(t, t, qi=["a", "s"], sensitive="s")


def test_assess_table__path_objects_are_refused(tmp_path: Path):
    with pytest.raises(InputError, match="original is not a table"):
        assess_table(tmp_path, tmp_path, qi=["a"])  # type: ignore[arg-type]
