"""Tests of the synthetic-data evaluation (fidelity, utility, privacy) and its report."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import contingency, ks_2samp, spearmanr, wasserstein_distance

from secured_bio.errors import (
    ConfigError,
    FormatError,
    InputError,
    InputFileNotFoundError,
    SchemaError,
)
from secured_bio.privacy.synthetic.evaluate import (
    FORMAT_VERSION,
    cramers_v,
    evaluate_synthetic,
    total_variation_distance,
)
from secured_bio.privacy.synthetic.report_html import read_evaluation, render_html, write_report

N = 300
NA = 40  # attacks per anonymeter evaluation: few, for speed


def population(n: int, seed: int) -> pd.DataFrame:
    """One draw of a fixed generating process: mixed columns, an outcome driven by age/bmi."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, n)
    bmi = rng.normal(27, 4, n).round(1)
    sex = rng.choice(["F", "M"], n)
    smoker = np.where(rng.random(n) < np.where(sex == "M", 0.45, 0.15), "yes", "no")
    day = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    logit = -5.0 + 0.08 * age + 0.15 * (bmi - 27) + 1.0 * (smoker == "yes")
    outcome = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"age": age, "bmi": bmi, "sex": sex, "smoker": smoker,
                         "admission_date": day.strftime("%Y-%m-%d"), "outcome": outcome})


@pytest.fixture(scope="module")
def real() -> dict[str, pd.DataFrame]:
    return {"train": population(N, 1), "holdout": population(N, 2)}


@pytest.fixture(scope="module")
def copy_eval(real: dict[str, pd.DataFrame]) -> dict[str, Any]:
    return evaluate_synthetic(real["train"], real["train"].copy(), holdout=real["holdout"],
                              target="outcome", n_attacks=NA)


@pytest.fixture(scope="module")
def independent_eval(real: dict[str, pd.DataFrame]) -> dict[str, Any]:
    return evaluate_synthetic(real["train"], population(N, 3), holdout=real["holdout"],
                              target="outcome", n_attacks=NA)


@pytest.fixture(scope="module")
def shuffled(real: dict[str, pd.DataFrame]) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    t = real["train"]
    return pd.DataFrame({c: t[c].to_numpy()[rng.permutation(len(t))] for c in t.columns})


@pytest.fixture(scope="module")
def shuffled_eval(real: dict[str, pd.DataFrame], shuffled: pd.DataFrame) -> dict[str, Any]:
    return evaluate_synthetic(real["train"], shuffled, holdout=real["holdout"],
                              target="outcome", n_attacks=NA)


# ----------------------------------------------------------------------- behaviour
def test_copy_of_train__all_rows_copied_attack_wins_distances_zero(copy_eval):
    priv, fid = copy_eval["privacy"], copy_eval["fidelity"]
    assert priv["exact_copies"]["share"] == 1.0
    assert priv["exact_copies"]["count"] == N
    assert priv["membership_inference"]["auc"] > 0.99
    assert priv["membership_inference"]["tpr_at_fpr"]["0.01"] > 0.9
    assert priv["dcr"]["quantiles"]["synthetic"]["0.5"] == 0.0
    for col in fid["columns"].values():
        assert (col.get("ks") or col.get("tvd") or 0.0) == 0.0
        assert (col.get("wasserstein") or 0.0) == 0.0
    assert fid["summary"]["column_similarity"] == 1.0
    assert fid["summary"]["mean_abs_pearson_difference"] == 0.0
    assert copy_eval["utility"]["tstr_auroc"] == copy_eval["utility"]["trtr_auroc"]


def test_independent_sample__no_copies_attack_at_chance_small_distances(independent_eval):
    priv, fid = independent_eval["privacy"], independent_eval["fidelity"]
    assert priv["exact_copies"]["share"] <= 0.01
    lo, hi = priv["membership_inference"]["auc_ci"]
    assert lo <= 0.5 <= hi
    assert fid["summary"]["mean_ks"] < 0.12
    assert fid["summary"]["mean_tvd"] < 0.08
    assert fid["summary"]["mean_abs_pearson_difference"] < 0.12
    u = independent_eval["utility"]
    assert u["tstr_auroc"] > 0.7 and u["ratio"] > 0.85
    # New real rows and synthetic rows are about equally far from the training rows.
    q = priv["dcr"]["quantiles"]
    assert q["synthetic"]["0.5"] == pytest.approx(q["holdout"]["0.5"], abs=0.03)


def test_shuffled_columns__marginals_kept_but_relations_and_utility_lost(shuffled_eval,
                                                                        copy_eval):
    fid, u = shuffled_eval["fidelity"], shuffled_eval["utility"]
    assert fid["summary"]["mean_ks"] == 0.0 and fid["summary"]["mean_tvd"] == 0.0
    real_v = copy_eval["fidelity"]["pairs"]["cramers_v"]["real"]
    cols = copy_eval["fidelity"]["pairs"]["cramers_v"]["columns"]
    i, j = cols.index("sex"), cols.index("smoker")
    assert fid["pairs"]["cramers_v"]["difference"][i][j] < -0.5 * real_v[i][j]
    assert abs(u["tstr_auroc"] - 0.5) < 0.1
    assert u["trtr_auroc"] > 0.75


def test_garbage__distances_large(real):
    rng = np.random.default_rng(5)
    garbage = pd.DataFrame({
        "age": rng.integers(100, 200, N), "bmi": rng.normal(60, 1, N),
        "sex": rng.choice(["X", "F"], N, p=[0.9, 0.1]), "smoker": rng.choice(["yes", "?"], N),
        "admission_date": rng.choice(["2030-01-01", "2031-06-30"], N),
        "outcome": rng.integers(0, 2, N)})
    ev = evaluate_synthetic(real["train"], garbage, holdout=real["holdout"], target="outcome",
                            n_attacks=NA)
    cols = ev["fidelity"]["columns"]
    for c in ("age", "bmi", "admission_date"):
        assert cols[c]["ks"] == 1.0
        assert cols[c]["wasserstein_normalized"] > 1.0
    assert cols["sex"]["tvd"] > 0.8
    assert cols["smoker"]["synthetic_new_category_share"] > 0.3
    assert ev["fidelity"]["summary"]["column_similarity"] < 0.4
    assert abs(ev["utility"]["tstr_auroc"] - 0.5) < 0.12


def test_column_kinds__numbers_dates_categories(copy_eval):
    assert copy_eval["columns"] == {"age": "numeric", "bmi": "numeric", "sex": "categorical",
                                    "smoker": "categorical", "admission_date": "date",
                                    "outcome": "categorical"}


def test_dates__datetime_column_equals_its_iso_strings():
    rng = np.random.default_rng(8)
    days = pd.Series(pd.Timestamp("2024-01-01")
                     + pd.to_timedelta(rng.integers(0, 300, 50), unit="D"))
    t = pd.DataFrame({"d": days, "x": rng.normal(size=50)})
    ev = evaluate_synthetic(t, t.assign(d=days.dt.strftime("%Y-%m-%d")), n_attacks=5)
    assert ev["columns"]["d"] == "date"
    assert ev["fidelity"]["columns"]["d"]["ks"] == 0.0
    assert ev["privacy"]["exact_copies"]["share"] == 1.0


def test_without_holdout__holdout_figures_null_with_reason(real):
    ev = evaluate_synthetic(real["train"], population(N, 3), target="outcome", n_attacks=NA)
    assert ev["utility"]["tstr_auroc"] is None and "hold-out" in ev["utility"]["reason"]
    mia = ev["privacy"]["membership_inference"]
    assert mia["auc"] is None and "hold-out" in mia["reason"]
    assert ev["privacy"]["attacks"]["singling_out"]["risk"] is None
    assert ev["privacy"]["exact_copies"]["share"] <= 0.01
    assert ev["fidelity"]["summary"]["mean_ks"] is not None


def test_multiclass_target__macro_auroc(real):
    t, h = real["train"].copy(), real["holdout"].copy()
    for d in (t, h):
        d["band"] = pd.cut(d["age"], [0, 40, 65, 120], labels=["young", "mid", "old"]).astype(str)
    cols = ["bmi", "sex", "smoker", "outcome", "band"]
    ev = evaluate_synthetic(t, t, holdout=h, target="band", columns=cols, n_attacks=NA)
    u = ev["utility"]
    assert u["task"] == "multiclass" and u["classes"] == 3
    assert 0.5 < u["trtr_auroc"] <= 1.0 and u["tstr_auroc"] == u["trtr_auroc"]


def test_missing_values__reported_and_ignored_in_distances():
    rng = np.random.default_rng(0)
    t = pd.DataFrame({"x": rng.normal(size=100), "g": rng.choice(["a", "b"], 100)})
    s = t.copy()
    s.loc[:9, "x"] = np.nan
    ev = evaluate_synthetic(t, s, n_attacks=10)
    col = ev["fidelity"]["columns"]["x"]
    assert col["missing_share_synthetic"] == pytest.approx(0.1)
    assert col["ks"] == pytest.approx(ks_2samp(t["x"], s["x"].dropna()).statistic)


def test_constant_and_single_class_columns__json_without_nan():
    rng = np.random.default_rng(6)
    t = pd.DataFrame({"x": rng.normal(size=80), "k": 1.0, "g": "same",
                      "y": rng.integers(0, 2, 80)})
    s = t.assign(y=0)  # the synthetic target has one class: TSTR is undefined
    ev = evaluate_synthetic(t[:40], s[:40], holdout=t[40:], target="y", n_attacks=10)
    json.dumps(ev, allow_nan=False)  # raises on NaN or numpy scalars
    assert ev["fidelity"]["columns"]["k"]["scale_kind"] == "none"
    names = ev["fidelity"]["pairs"]["pearson"]["columns"]
    assert ev["fidelity"]["pairs"]["pearson"]["difference"][names.index("k")][0] is None
    assert ev["utility"]["tstr_auroc"] is None
    assert ev["utility"]["tstr_reason"] == "the synthetic target has a single class"
    assert ev["utility"]["trtr_auroc"] is not None


# ----------------------------------------------------------------------- references
def test_ks_and_wasserstein__equal_scipy(independent_eval, real):
    syn = population(N, 3)
    cols = independent_eval["fidelity"]["columns"]
    for c in ("age", "bmi"):
        r, s = real["train"][c].to_numpy(float), syn[c].to_numpy(float)
        assert cols[c]["ks"] == pytest.approx(ks_2samp(r, s).statistic)
        assert cols[c]["ks_pvalue"] == pytest.approx(ks_2samp(r, s).pvalue)
        iqr = np.subtract(*np.percentile(r, [75, 25]))
        assert cols[c]["wasserstein"] == pytest.approx(wasserstein_distance(r, s))
        assert cols[c]["wasserstein_normalized"] == pytest.approx(wasserstein_distance(r, s) / iqr)
    days = [pd.to_datetime(d["admission_date"]).map(pd.Timestamp.toordinal).to_numpy(float)
            for d in (real["train"], syn)]
    assert cols["admission_date"]["ks"] == pytest.approx(ks_2samp(*days).statistic)
    assert cols["admission_date"]["wasserstein"] == pytest.approx(wasserstein_distance(*days))


def test_tvd__hand_computed():
    # p = (a .5, b .25, c .25), q = (a .25, b .5, d .25): half of |.25|+|.25|+|.25|+|.25|.
    assert total_variation_distance(["a", "a", "b", "c"], ["a", "b", "b", "d"]) == 0.5
    assert total_variation_distance(["x"], ["y"]) == 1.0


def test_tvd__per_column_equals_frequency_difference(independent_eval, real):
    syn = population(N, 3)
    for c in ("sex", "smoker"):
        p, q = Counter(real["train"][c]), Counter(syn[c])
        want = 0.5 * sum(abs(p[k] / N - q[k] / N) for k in set(p) | set(q))
        assert independent_eval["fidelity"]["columns"][c]["tvd"] == pytest.approx(want)


def test_cramers_v__equals_scipy_association():
    rng = np.random.default_rng(3)
    x = rng.choice(["a", "b", "c"], 400)
    y = np.where(rng.random(400) < 0.6, x, rng.choice(["a", "b", "c", "d"], 400))
    table = pd.crosstab(x, y).to_numpy()
    assert cramers_v(x, y) == pytest.approx(contingency.association(table, method="cramer"))
    assert cramers_v(x, np.full(400, "k")) == 0.0


def test_pair_matrices__equal_scipy_references(independent_eval, real):
    syn = population(N, 3)
    pairs = independent_eval["fidelity"]["pairs"]
    names = pairs["pearson"]["columns"]
    i, j = names.index("age"), names.index("bmi")
    want = (np.corrcoef(syn["age"], syn["bmi"])[0, 1]
            - np.corrcoef(real["train"]["age"], real["train"]["bmi"])[0, 1])
    assert pairs["pearson"]["difference"][i][j] == pytest.approx(want)
    want = (spearmanr(syn["age"], syn["bmi"]).statistic
            - spearmanr(real["train"]["age"], real["train"]["bmi"]).statistic)
    assert pairs["spearman"]["difference"][i][j] == pytest.approx(want)
    cat = pairs["cramers_v"]["columns"]
    a, b = cat.index("sex"), cat.index("smoker")
    ref = contingency.association(pd.crosstab(real["train"]["sex"], real["train"]["smoker"])
                                  .to_numpy(), method="cramer")
    assert pairs["cramers_v"]["real"][a][b] == pytest.approx(ref)


def test_dcr__equals_brute_force_gower():
    rng = np.random.default_rng(4)
    t = pd.DataFrame({"x": rng.normal(size=40), "g": rng.choice(["a", "b", "c"], 40)})
    s = pd.DataFrame({"x": rng.normal(size=30), "g": rng.choice(["a", "b", "c"], 30)})
    h = pd.DataFrame({"x": rng.normal(size=40), "g": rng.choice(["a", "b", "c"], 40)})
    ev = evaluate_synthetic(t, s, holdout=h, n_attacks=10)
    span = np.ptp(np.concatenate([t["x"], s["x"], h["x"]]))

    def nearest(a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
        d = (np.abs(a["x"].to_numpy()[:, None] - b["x"].to_numpy()[None, :]) / span
             + (a["g"].to_numpy()[:, None] != b["g"].to_numpy()[None, :])) / 2
        return np.sort(d, axis=1)

    q = ev["privacy"]["dcr"]["quantiles"]
    assert q["synthetic"]["0.5"] == pytest.approx(np.median(nearest(s, t)[:, 0]))
    assert q["holdout"]["0.05"] == pytest.approx(np.quantile(nearest(h, t)[:, 0], 0.05))
    nn = nearest(s, t)
    ratio = np.where(nn[:, 1] > 0, nn[:, 0] / np.where(nn[:, 1] > 0, nn[:, 1], 1), 1.0)
    assert ev["privacy"]["nndr"]["quantiles"]["synthetic"]["0.5"] == pytest.approx(
        np.median(ratio))
    mia = ev["privacy"]["membership_inference"]
    assert mia["median_distance_members"] == pytest.approx(np.median(nearest(t, s)[:, 0]))


# ----------------------------------------------------------------------- report
def test_write_report__html_self_contained_and_json_round_trips(copy_eval, tmp_path: Path):
    paths = write_report(copy_eval, tmp_path / "out")
    assert [p.name for p in paths] == ["synthetic_evaluation.json", "synthetic_evaluation.html"]
    page = paths[1].read_text(encoding="utf-8")
    assert "data:image/png;base64," in page
    assert "http" not in page.lower() and "<script" not in page.lower()
    assert page.count("src=") == page.count("src='data:image/png;base64,")
    assert page.count("<img") >= 5  # ROC, DCR, distributions, heatmap, utility
    back = read_evaluation(paths[0])
    assert back == json.loads(json.dumps(copy_eval))
    assert back["format_version"] == FORMAT_VERSION
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths)


def test_write_report__json_path_and_no_html(tmp_path: Path):
    t = pd.DataFrame({"g": ["a", "b", "a", "b"] * 5})
    ev = evaluate_synthetic(t[:10], t[10:], n_attacks=5)
    paths = write_report(ev, tmp_path / "e.json", html=False)
    assert paths == [tmp_path / "e.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.json"]
    paths = write_report(ev, tmp_path / "page.html")
    assert {p.name for p in paths} == {"page.json", "page.html"}


def test_write_report__nan_becomes_null(copy_eval, tmp_path: Path):
    ev = json.loads(json.dumps(copy_eval))
    ev["fidelity"]["columns"]["age"]["ks_pvalue"] = float("nan")
    (path,) = write_report(ev, tmp_path / "e.json", html=False)
    assert read_evaluation(path)["fidelity"]["columns"]["age"]["ks_pvalue"] is None


def test_report__rare_categories_not_named():
    ids = [f"p{i:03d}" for i in range(40)]  # unique per record, like an identifier
    t = pd.DataFrame({"id": ids + ["common"] * 20, "x": np.arange(60.0)})
    ev = evaluate_synthetic(t, t, n_attacks=5)
    bars = ev["fidelity"]["columns"]["id"]["bars"]
    assert bars["categories"] == ["common", "(other)"]
    assert bars["real"] == pytest.approx([20 / 60, 40 / 60])
    page = render_html(ev)
    assert not any(i in page for i in ids)
    # Histogram edges span the 0.5-99.5% quantiles: the extreme records are not disclosed.
    edges = ev["fidelity"]["columns"]["x"]["histogram"]["edges"]
    assert 0.0 < edges[0] and edges[-1] < 59.0


# ----------------------------------------------------------------------- errors
def test_evaluate__column_mismatch_raises(real):
    syn = population(N, 3).drop(columns=["bmi"])
    with pytest.raises(SchemaError, match="does not have the training table's columns"):
        evaluate_synthetic(real["train"], syn)
    with pytest.raises(SchemaError, match="column missing from the holdout table"):
        evaluate_synthetic(real["train"], real["train"], holdout=syn)
    with pytest.raises(SchemaError, match="column missing from the synthetic table.*did you mean"):
        evaluate_synthetic(real["train"], syn.rename(columns={"age": "agee"}),
                           columns=["age", "sex"])


def test_evaluate__empty_tables_raise(real):
    with pytest.raises(InputError, match="train table is empty"):
        evaluate_synthetic(real["train"].iloc[:0], real["train"])
    with pytest.raises(InputError, match="synthetic table is empty"):
        evaluate_synthetic(real["train"], real["train"].iloc[:0])
    with pytest.raises(InputError, match="synthetic is not a table"):
        evaluate_synthetic(real["train"], [[1, 2]])
    with pytest.raises(SchemaError, match="duplicated column names"):
        evaluate_synthetic(real["train"], pd.DataFrame([[1, 2]], columns=["a", "a"]))


def test_evaluate__target_missing_raises(real):
    with pytest.raises(SchemaError, match="target is not an evaluated column.*outcome"):
        evaluate_synthetic(real["train"], real["train"], target="outcom")


def test_evaluate__bad_settings_raise(real):
    with pytest.raises(ConfigError, match="too many classes"):
        evaluate_synthetic(real["train"], real["train"], target="bmi")
    with pytest.raises(ConfigError, match="n_attacks out of range"):
        evaluate_synthetic(real["train"], real["train"], n_attacks=0)
    with pytest.raises(ConfigError, match="max_rows out of range"):
        evaluate_synthetic(real["train"], real["train"], max_rows=1)
    with pytest.raises(ConfigError, match="seed out of range"):
        evaluate_synthetic(real["train"], real["train"], seed=-1)
    with pytest.raises(ConfigError, match="no columns given"):
        evaluate_synthetic(real["train"], real["train"], columns=" , ")
    with pytest.raises(ConfigError, match="columns repeat a name"):
        evaluate_synthetic(real["train"], real["train"], columns=["age", "age"])


def test_metric_helpers__bad_input_raises():
    with pytest.raises(InputError, match="no values to compare"):
        total_variation_distance([], ["a"])
    with pytest.raises(InputError, match="cannot cross-tabulate"):
        cramers_v(["a", "b"], ["a"])


def test_report__bad_evaluation_raises(copy_eval, tmp_path: Path):
    with pytest.raises(InputError, match="not a synthetic-data evaluation"):
        write_report({"format": "other"}, tmp_path)
    old = {**copy_eval, "format_version": 99}
    with pytest.raises(FormatError, match="unsupported evaluation version.*upgrade"):
        write_report(old, tmp_path)
    with pytest.raises(FormatError, match="unsupported evaluation version"):
        render_html(old)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_read_evaluation__bad_files_raise(tmp_path: Path):
    with pytest.raises(InputFileNotFoundError, match="evaluation file not found"):
        read_evaluation(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(FormatError, match="not JSON"):
        read_evaluation(bad)
    bad.write_text('{"format": "something else"}')
    with pytest.raises(FormatError, match="not a synthetic-data evaluation"):
        read_evaluation(bad)
