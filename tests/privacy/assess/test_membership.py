"""Membership inference: scikit-learn/scipy references, known-leakage cases, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist
from scipy.special import logsumexp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score, roc_curve
from sklearn.tree import DecisionTreeClassifier

from secured_bio.errors import ConfigError, InputError, SchemaError
from secured_bio.privacy.assess import (
    dcr_membership,
    distance_to_closest_record,
    loss_threshold_attack,
    membership_inference,
    per_record_loss,
)


def _scores(seed: int, shift: float, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    members, nonmembers = rng.normal(shift, 1, 300), rng.normal(0, 1, 400)
    if ties:
        members, nonmembers = np.round(members), np.round(nonmembers)
    return members, nonmembers


# ---------------------------------------------------------------- references


@pytest.mark.reference
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("shift", [0.0, 0.7, 2.5])
def test_membership_inference__matches_sklearn_roc(shift, ties):
    members, nonmembers = _scores(int(shift * 10), shift, ties)
    r = membership_inference(members, nonmembers, fpr_levels=(0.01, 0.1, 0.5))
    y = np.r_[np.ones(len(members)), np.zeros(len(nonmembers))]
    s = np.r_[members, nonmembers]
    assert r["auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    assert r["advantage"] == pytest.approx(float((tpr - fpr).max()), abs=1e-12)
    for level in (0.01, 0.1, 0.5):
        assert r["tpr_at_fpr"][str(level)] == pytest.approx(float(tpr[fpr <= level].max()),
                                                            abs=1e-12)


def test_membership_inference__lower_is_member_flips_the_scores():
    members, nonmembers = _scores(1, 1.0)
    a = membership_inference(members, nonmembers)
    b = membership_inference(-members, -nonmembers, higher_is_member=False)
    assert a == b


def test_membership_inference__no_leakage_interval_holds_one_half_and_leakage_does_not():
    none = membership_inference(*_scores(2, 0.0))
    leak = membership_inference(*_scores(3, 1.5))
    assert none["auc_ci"][0] < 0.5 < none["auc_ci"][1]
    assert leak["auc_ci"][0] > 0.8


@pytest.mark.reference
def test_distance_to_closest_record__matches_scipy_cityblock_on_scaled_numbers():
    rng = np.random.default_rng(4)
    a = pd.DataFrame(rng.normal(size=(50, 3)), columns=list("xyz"))
    b = pd.DataFrame(rng.normal(size=(80, 3)), columns=list("xyz"))
    both = pd.concat([a, b])
    span = (both.max() - both.min()).to_numpy()
    ref = cdist(a.to_numpy() / span, b.to_numpy() / span, "cityblock").min(axis=1) / 3
    np.testing.assert_allclose(distance_to_closest_record(a, b), ref, rtol=1e-9, atol=1e-12)


def test_distance_to_closest_record__categorical_columns_count_mismatches():
    ref = pd.DataFrame({"sex": ["F", "M"], "dx": ["a", "b"]})
    rec = pd.DataFrame({"sex": ["F", "F", "X"], "dx": ["a", "b", "c"]})
    np.testing.assert_allclose(distance_to_closest_record(rec, ref), [0.0, 0.5, 1.0])


def test_distance_to_closest_record__generalized_values_match_the_values_they_cover():
    ref = pd.DataFrame({"zip": ["751**"], "age": ["[30-39]"]})
    rec = pd.DataFrame({"zip": ["75112", "69001"], "age": ["34", "34"]})
    # age is numeric (the interval at its midpoint 34.5, range 0.5); zip matches via the mask.
    np.testing.assert_allclose(distance_to_closest_record(rec, ref), [0.5, 1.0])


def test_distance_to_closest_record__dates_cut_to_years_are_compared_through_the_cut():
    ref = pd.DataFrame({"d": ["2024", "[2020-2029]"]})
    rec = pd.DataFrame({"d": ["2024-05-01", "2019-12-31"]})
    # Days and years are not on one scale: the column is categorical with generalization.
    np.testing.assert_allclose(distance_to_closest_record(rec, ref), [0.0, 1.0])


# ---------------------------------------------------------------- known leakage


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": rng.integers(18, 90, n), "bmi": rng.normal(27, 4, n).round(1),
                         "sex": rng.choice(["F", "M"], n), "dx": rng.choice(list("abcd"), n)})


def test_dcr_membership__memorizing_release_gives_auc_near_one():
    t = _table(400, 5)
    members, nonmembers = t[:200], t[200:]
    r = dcr_membership(members, nonmembers, members)
    assert r["auc"] > 0.99
    assert r["tpr_at_fpr"]["0.01"] > 0.9
    assert r["median_dcr_members"] == 0.0 < r["median_dcr_nonmembers"]


def test_dcr_membership__noisy_copy_still_leaks():
    t = _table(400, 6)
    members, nonmembers = t[:200], t[200:]
    rng = np.random.default_rng(0)
    noisy = members.assign(bmi=members["bmi"] + rng.normal(0, 0.3, 200))
    assert dcr_membership(members, nonmembers, noisy)["auc"] > 0.8


def test_dcr_membership__independent_sample_gives_auc_near_one_half():
    t = _table(600, 7)
    r = dcr_membership(t[:200], t[200:400], t[400:])
    assert r["auc_ci"][0] < 0.5 < r["auc_ci"][1]


def test_loss_threshold_attack__overfit_model_leaks_and_simple_model_does_not():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(400, 5))
    y = (x[:, 0] + rng.normal(0, 1.0, 400) > 0).astype(int)
    xm, ym, xn, yn = x[:200], y[:200], x[200:], y[200:]
    tree = DecisionTreeClassifier(random_state=0).fit(xm, ym)
    leak = loss_threshold_attack(tree, xm, ym, xn, yn)
    simple = loss_threshold_attack(LogisticRegression().fit(xm, ym), xm, ym, xn, yn)
    assert leak["auc"] > 0.6 and leak["yeom_advantage"] > 0.1
    assert simple["auc_ci"][0] < 0.5 < simple["auc_ci"][1]
    assert leak["threshold"] == pytest.approx(per_record_loss(tree, xm, ym).mean())


@pytest.mark.reference
def test_per_record_loss__sklearn_matches_log_loss_per_record():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(30, 2))
    y = np.array(["no", "yes", "maybe"])[rng.integers(0, 3, 30)]
    model = LogisticRegression().fit(x, y)
    got = per_record_loss(model, x, y)
    ref = [log_loss([y[i]], model.predict_proba(x[i:i + 1]), labels=model.classes_)
           for i in range(len(y))]
    np.testing.assert_allclose(got, ref, rtol=1e-9)


@pytest.mark.reference
def test_per_record_loss__torch_matches_numpy_log_softmax_and_keeps_training_mode():
    import torch  # a dependency: a missing torch must fail, not skip
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 4)
    model.train()
    x = torch.randn(20, 3)
    y = torch.randint(0, 4, (20,))
    got = per_record_loss(model, x, y)
    logits = (x @ model.weight.T + model.bias).detach().numpy().astype(float)
    logp = logits - logsumexp(logits, axis=1, keepdims=True)
    np.testing.assert_allclose(got, -logp[np.arange(20), y.numpy()], rtol=1e-5)
    assert model.training
    binary = torch.nn.Linear(3, 1)
    yb = torch.randint(0, 2, (20,))
    p = 1 / (1 + np.exp(-binary(x).detach().numpy().ravel().astype(float)))
    ref = -(yb.numpy() * np.log(p) + (1 - yb.numpy()) * np.log(1 - p))
    np.testing.assert_allclose(per_record_loss(binary, x.numpy(), yb.numpy()), ref, rtol=1e-5)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(("members", "match"), [([], "no attack scores"),
                                                ([1.0, float("nan")], "not all finite"),
                                                (["a"], "not numbers")])
def test_membership_inference__bad_scores_raise(members, match):
    with pytest.raises(InputError, match=match):
        membership_inference(members, [0.1, 0.2])


@pytest.mark.parametrize("level", [0.0, 1.0, -0.1])
def test_membership_inference__fpr_level_out_of_range_raises(level):
    with pytest.raises(ConfigError, match="FPR level out of range"):
        membership_inference([0.3], [0.1], fpr_levels=(level,))


def test_per_record_loss__model_without_predict_proba_raises():
    with pytest.raises(InputError, match="model cannot score records"):
        per_record_loss(object(), [[0.0]], [0])


def test_per_record_loss__unknown_label_raises_without_echoing_it():
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    with pytest.raises(InputError, match="not one of the model's classes") as e:
        per_record_loss(model, [[0.0]], [987654])
    assert "987654" not in str(e.value)


def test_per_record_loss__length_mismatch_raises():
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    with pytest.raises(InputError, match="differ in length"):
        per_record_loss(model, [[0.0], [1.0]], [0])


def test_dcr_membership__missing_column_raises():
    t = _table(5, 0)
    with pytest.raises(SchemaError, match="column missing"):
        dcr_membership(t, t, t, columns=["age", "weight"])


def test_distance_to_closest_record__empty_reference_raises():
    t = _table(5, 0)
    with pytest.raises(InputError, match="reference table is empty"):
        distance_to_closest_record(t, t[:0])
