"""Fairness audit: cross-checks with fairlearn and scikit-learn, edge cases, bad inputs, plots."""

from __future__ import annotations

import json
from pathlib import Path

import fairlearn.metrics as flm
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, brier_score_loss, precision_score, roc_auc_score

from secured_bio.errors import ConfigError, InputError
from secured_bio.privacy.assess import (
    age_bands,
    fairness_audit,
    plot_fairness,
    plot_per_site,
    plot_training_curves,
)


def _cohort(n: int = 300, seed: int = 0, ties: bool = False):
    """Seeded labels, scores with a group-dependent signal, and three grouping attributes."""
    rng = np.random.default_rng(seed)
    site = rng.choice(["site1", "site2", "site3"], size=n)
    sex = rng.choice(["F", "M"], size=n)
    age = rng.uniform(18, 90, size=n)
    y = rng.integers(0, 2, size=n)
    # Signal strength differs by site so that the gaps are non-trivial.
    strength = np.select([site == "site1", site == "site2"], [2.0, 1.0], 0.3)
    s = 1.0 / (1.0 + np.exp(-(strength * (2 * y - 1) + rng.normal(size=n))))
    if ties:
        s = np.round(s, 1)
    return y, s, {"site": site, "sex": sex, "age_band": age_bands(age)}


# ---------------------------------------------------------------- references


@pytest.mark.reference
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_fairness_audit__per_group_rates_match_fairlearn_metricframe(threshold):
    y, s, groups = _cohort(seed=1)
    audit = fairness_audit(y, s, groups=groups, threshold=threshold)
    pred = (s >= threshold).astype(int)
    for name, values in groups.items():
        mf = flm.MetricFrame(
            metrics={"selection_rate": flm.selection_rate, "tpr": flm.true_positive_rate,
                     "fpr": flm.false_positive_rate, "accuracy": accuracy_score,
                     "count": flm.count},
            y_true=y, y_pred=pred, sensitive_features=values,
        )
        by_group = mf.by_group
        got = audit["attributes"][name]["groups"]
        assert sorted(got) == sorted(str(g) for g in by_group.index)
        for g, row in by_group.iterrows():
            for metric in ("selection_rate", "tpr", "fpr", "accuracy"):
                assert got[str(g)][metric] == pytest.approx(row[metric], abs=1e-12), (name, g)
            assert got[str(g)]["n"] == row["count"]


@pytest.mark.reference
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_fairness_audit__gaps_match_fairlearn(threshold):
    y, s, groups = _cohort(seed=2)
    audit = fairness_audit(y, s, groups=groups, threshold=threshold)
    pred = (s >= threshold).astype(int)
    for name, values in groups.items():
        gaps = audit["attributes"][name]["gaps"]
        kw = {"sensitive_features": values}
        assert gaps["demographic_parity_difference"] == pytest.approx(
            flm.demographic_parity_difference(y, pred, **kw), abs=1e-12)
        assert gaps["equalized_odds_difference"] == pytest.approx(
            flm.equalized_odds_difference(y, pred, **kw), abs=1e-12)
        assert gaps["tpr_difference"] == pytest.approx(
            flm.true_positive_rate_difference(y, pred, **kw), abs=1e-12)
        assert gaps["fpr_difference"] == pytest.approx(
            flm.false_positive_rate_difference(y, pred, **kw), abs=1e-12)


@pytest.mark.reference
@pytest.mark.parametrize("ties", [False, True])
def test_fairness_audit__auroc_brier_ppv_match_sklearn(ties):
    y, s, groups = _cohort(seed=3, ties=ties)
    audit = fairness_audit(y, s, groups=groups)
    assert audit["overall"]["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert audit["overall"]["brier"] == pytest.approx(brier_score_loss(y, s), abs=1e-12)
    for name, values in groups.items():
        attr = audit["attributes"][name]
        ref_auc = {}
        for g in np.unique(values):
            sel = values == g
            m = attr["groups"][str(g)]
            ref_auc[str(g)] = roc_auc_score(y[sel], s[sel])
            assert m["auroc"] == pytest.approx(ref_auc[str(g)], abs=1e-12)
            assert m["brier"] == pytest.approx(brier_score_loss(y[sel], s[sel]), abs=1e-12)
            assert m["ppv"] == pytest.approx(
                precision_score(y[sel], (s[sel] >= 0.5).astype(int)), abs=1e-12)
        worst = min(ref_auc, key=ref_auc.__getitem__)
        assert attr["worst_group"]["auroc"] == {"group": worst, "value": pytest.approx(
            ref_auc[worst], abs=1e-12)}
        assert attr["gaps"]["auroc_gap"] == pytest.approx(
            max(ref_auc.values()) - min(ref_auc.values()), abs=1e-12)


@pytest.mark.reference
def test_fairness_audit__worst_tpr_group_is_fairlearn_minimum():
    y, s, groups = _cohort(seed=4)
    audit = fairness_audit(y, s, groups=groups)
    mf = flm.MetricFrame(metrics=flm.true_positive_rate, y_true=y, y_pred=(s >= 0.5).astype(int),
                         sensitive_features=groups["site"])
    worst = audit["attributes"]["site"]["worst_group"]["tpr"]
    assert worst["group"] == mf.by_group.idxmin()
    assert worst["value"] == pytest.approx(mf.group_min(), abs=1e-12)


# ---------------------------------------------------------------- edge cases


@pytest.mark.reference
def test_fairness_audit__single_class_group_is_undefined_and_left_out_of_tpr_gap():
    y, s, groups = _cohort(seed=5)
    site = groups["site"].copy()
    site[(site == "site3") & (y == 1)] = "site1"  # site3 keeps only negatives
    audit = fairness_audit(y, s, groups={"site": site})
    attr = audit["attributes"]["site"]
    g3 = attr["groups"]["site3"]
    assert g3["n_positive"] == 0
    assert g3["auroc"] is None and "single class" in g3["undefined"]["auroc"]
    assert g3["tpr"] is None and "no positives" in g3["undefined"]["tpr"]
    assert g3["fpr"] is not None
    pred = (s >= 0.5).astype(int)
    keep = site != "site3"
    # TPR gap over the groups that have positives; FPR gap over all groups.
    tpr_gap = flm.true_positive_rate_difference(y[keep], pred[keep],
                                                sensitive_features=site[keep])
    fpr_gap = flm.false_positive_rate_difference(y, pred, sensitive_features=site)
    assert attr["gaps"]["tpr_difference"] == pytest.approx(tpr_gap, abs=1e-12)
    assert attr["gaps"]["equalized_odds_difference"] == pytest.approx(
        max(tpr_gap, fpr_gap), abs=1e-12)
    aucs = [roc_auc_score(y[site == g], s[site == g]) for g in ("site1", "site2")]
    assert attr["gaps"]["auroc_gap"] == pytest.approx(max(aucs) - min(aucs), abs=1e-12)


def test_fairness_audit__one_group_only_reports_no_gap_with_reason():
    y, s, _ = _cohort(n=40, seed=6)
    attr = fairness_audit(y, s, groups={"site": ["site1"] * 40})["attributes"]["site"]
    assert list(attr["groups"]) == ["site1"]
    assert all(v is None for v in attr["gaps"].values())
    assert set(attr["undefined"]) >= set(attr["gaps"])
    assert "fewer than 2 groups" in attr["undefined"]["demographic_parity_difference"]
    assert attr["worst_group"]["auroc"]["group"] == "site1"


def test_fairness_audit__all_rows_single_class_has_no_overall_auroc():
    audit = fairness_audit([0] * 6, np.linspace(0, 1, 6), groups={})
    assert audit["overall"]["auroc"] is None
    assert "no positives" in audit["overall"]["undefined"]["auroc"]
    assert audit["attributes"] == {}


@pytest.mark.reference
def test_fairness_audit__small_groups_flagged_reported_and_left_out_of_gaps():
    y, s, groups = _cohort(n=200, seed=7)
    site = groups["site"].copy()
    site[:3] = "tiny"
    audit = fairness_audit(y, s, groups={"site": site}, min_group_size=5)
    attr = audit["attributes"]["site"]
    assert attr["small_groups"] == ["tiny"]
    assert attr["groups"]["tiny"]["small"] is True and attr["groups"]["tiny"]["n"] == 3
    assert "tiny" not in attr["groups_in_gaps"]
    pred = (s >= 0.5).astype(int)
    keep = site != "tiny"
    assert attr["gaps"]["demographic_parity_difference"] == pytest.approx(
        flm.demographic_parity_difference(y[keep], pred[keep], sensitive_features=site[keep]),
        abs=1e-12)
    everyone = fairness_audit(y, s, groups={"site": site}, min_group_size=0)
    assert everyone["attributes"]["site"]["small_groups"] == []
    assert everyone["attributes"]["site"]["gaps"]["demographic_parity_difference"] == (
        pytest.approx(flm.demographic_parity_difference(y, pred, sensitive_features=site),
                      abs=1e-12))


def test_fairness_audit__threshold_extremes_and_score_at_threshold_is_positive():
    y, s, groups = _cohort(n=60, seed=8)
    low = fairness_audit(y, s, groups=groups, threshold=0.0)["attributes"]["sex"]
    assert all(m["selection_rate"] == 1.0 and m["tpr"] == 1.0 and m["fpr"] == 1.0
               for m in low["groups"].values())
    assert low["gaps"]["demographic_parity_difference"] == 0.0
    at = fairness_audit([1, 0], [0.5, 0.49], groups={}, threshold=0.5)["overall"]
    assert at["tpr"] == 1.0 and at["fpr"] == 0.0
    high = fairness_audit(y, s, groups=groups, threshold=1.0)["overall"]
    assert high["selection_rate"] == float(np.mean(s >= 1.0))
    assert high["ppv"] is None and "no positive predictions" in high["undefined"]["ppv"]


def test_fairness_audit__string_labels_with_positive_label_equal_numeric_audit():
    y, s, groups = _cohort(n=80, seed=9)
    text = np.where(y == 1, "tumour", "healthy")
    assert fairness_audit(text, s, groups=groups, positive_label="tumour") == fairness_audit(
        y, s, groups=groups)
    flipped = fairness_audit(y, 1 - s, groups=groups, positive_label=0)["overall"]
    assert flipped["auroc"] == pytest.approx(roc_auc_score(1 - y, 1 - s), abs=1e-12)


def test_fairness_audit__json_serialisable_and_free_of_rows():
    small = fairness_audit(*_cohort(n=50, seed=10)[:2], groups=_cohort(n=50, seed=10)[2])
    y, s, groups = _cohort(n=500, seed=10)
    big = fairness_audit(y, s, groups=groups)
    assert json.loads(json.dumps(big, allow_nan=False)) == big

    def shape(d):  # keys at every level: must not grow with the number of rows
        return {k: shape(v) for k, v in d.items()} if isinstance(d, dict) else type(d).__name__

    assert shape(small)["attributes"]["site"]["groups"].keys() == shape(big)["attributes"][
        "site"]["groups"].keys()
    assert len(json.dumps(big)) < 2 * len(json.dumps(small))


# ---------------------------------------------------------------- bad inputs


SECRET = 0.123456789  # a value that must never appear in a message


@pytest.mark.parametrize(
    ("y_true", "y_score", "groups", "match"),
    [
        ([], [], {}, "non-empty 1-D"),
        ([[0, 1]], [[0.1, 0.2]], {}, "non-empty 1-D"),
        ([0, 1, None], [0.1, 0.2, 0.3], {}, "missing labels"),
        ([0, 1, 2], [0.1, 0.2, SECRET], {}, "not binary"),
        ([0, 1], ["a", "b"], {}, "not numeric"),
        ([0, 1], [0.1, 0.2, SECRET], {}, "does not match y_true in length"),
        ([0, 1], [SECRET, 1.5], {}, "not finite probabilities"),
        ([0, 1], [SECRET, np.nan], {}, "not finite probabilities"),
        ([0, 1], [0.1, 0.2], {"": ["a", "b"]}, "non-empty strings"),
        ([0, 1], [0.1, 0.2], {"sex": ["F"]}, "does not match y_true in length"),
        ([0, 1], [0.1, 0.2], {"sex": ["F", None]}, "missing values"),
        ([0, 1], [0.1, 0.2], {"site": [1, "1"]}, "same text"),
    ],
)
def test_fairness_audit__bad_input_raises_without_echoing_values(y_true, y_score, groups, match):
    with pytest.raises(InputError, match=match) as info:
        fairness_audit(y_true, y_score, groups=groups)
    assert str(SECRET) not in str(info.value) and "1.5" not in str(info.value)


def test_fairness_audit__positive_label_not_a_label_raises():
    with pytest.raises(InputError, match="positive_label is not one of the two labels"):
        fairness_audit(["a", "b"], [0.1, 0.9], groups={}, positive_label=1)


@pytest.mark.parametrize("threshold", [-0.1, 1.1, float("nan"), "0.5", True])
def test_fairness_audit__bad_threshold_raises(threshold):
    with pytest.raises(ConfigError, match="threshold must be a probability"):
        fairness_audit([0, 1], [0.1, 0.9], groups={}, threshold=threshold)


@pytest.mark.parametrize("size", [-1, 2.5, True])
def test_fairness_audit__bad_min_group_size_raises(size):
    with pytest.raises(ConfigError, match="min_group_size must be a non-negative integer"):
        fairness_audit([0, 1], [0.1, 0.9], groups={}, min_group_size=size)


# ---------------------------------------------------------------- age bands


def test_age_bands__match_numpy_digitize():
    ages = np.random.default_rng(11).uniform(0, 120, size=200)
    edges = (0, 18, 40, 60, 200)
    names = ["0-17", "18-39", "40-59", "60+"]
    expected = [names[i - 1] for i in np.digitize(ages, edges)]
    assert age_bands(ages, edges).tolist() == expected
    assert age_bands([17.999, 18, 59.9, 60], edges).tolist() == ["0-17", "18-39", "40-59",
                                                                   "60+"]


def test_age_bands__paediatric_names_people_use():
    from secured_bio.telemetry.federated import PAEDIATRIC_AGE_EDGES

    ages = [0.05, 0.99, 1, 4.9, 5, 11.99, 12, 17.9, 18.5]
    assert age_bands(ages, PAEDIATRIC_AGE_EDGES).tolist() == [
        "0-<1", "0-<1", "1-4", "1-4", "5-11", "5-11", "12-17", "12-17", "18+"]
    assert age_bands([70], (0, 60, 100)).tolist() == ["60-99"]  # closed end: no "+"


def test_fairness_audit__age_bands_listed_by_age():
    from secured_bio.telemetry.federated import PAEDIATRIC_AGE_EDGES

    rng = np.random.default_rng(5)
    ages = rng.uniform(0, 18, 400)
    y = rng.integers(0, 2, 400)
    audit = fairness_audit(y, rng.uniform(size=400),
                           groups={"age_band": age_bands(ages, PAEDIATRIC_AGE_EDGES),
                                   "site": [f"site{i % 12 + 1}" for i in range(400)]})
    assert list(audit["attributes"]["age_band"]["groups"]) == ["0-<1", "1-4", "5-11", "12-17"]
    assert list(audit["attributes"]["site"]["groups"])[:3] == ["site1", "site2", "site3"]


@pytest.mark.parametrize("edges", [(0,), (0, 40, 18), (0, 18.5, 60), (0, 0, 10)])
def test_age_bands__bad_edges_raise(edges):
    with pytest.raises(ConfigError, match="age band edges are invalid"):
        age_bands([30], edges)


@pytest.mark.parametrize(
    ("ages", "match"),
    [([30, np.nan], "missing values"), ([SECRET - 1, 30], "outside the band edges"),
     ([[30]], "1-D"), (["x"], "not numeric")],
)
def test_age_bands__bad_ages_raise_without_values(ages, match):
    with pytest.raises(InputError, match=match) as info:
        age_bands(ages)
    assert str(SECRET - 1) not in str(info.value)


# ---------------------------------------------------------------- plots


def _assert_png(path: Path) -> None:
    from matplotlib.image import imread

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5_000
    assert imread(path).shape[0] > 100  # decodes as an image
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left


def test_plot_fairness__writes_png(tmp_path):
    y, s, groups = _cohort(n=120, seed=12)
    groups["site"][:2] = "tiny"
    audit = fairness_audit(y, s, groups=groups)
    plot_fairness(audit, tmp_path / "fairness.png", title="demo")
    _assert_png(tmp_path / "fairness.png")


def test_plot_fairness__refuses_empty_or_foreign_audit(tmp_path):
    audit = fairness_audit([0, 1], [0.2, 0.8], groups={})
    with pytest.raises(InputError, match="no grouping attributes to plot"):
        plot_fairness(audit, tmp_path / "f.png")
    with pytest.raises(InputError, match="not a fairness audit"):
        plot_fairness({"attributes": {}}, tmp_path / "f.png")
    with pytest.raises(InputError, match="unsupported fairness audit version"):
        plot_fairness({**audit, "format_version": "99"}, tmp_path / "f.png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("as_mapping", [False, True])
def test_plot_per_site__writes_png(tmp_path, as_mapping):
    sites = [{"site": "site1", "auroc": 0.81, "accuracy": 0.7},
             {"site": "site2", "auroc": None, "accuracy": 0.6}]
    data = {m["site"]: m for m in sites} if as_mapping else sites
    plot_per_site(data, tmp_path / "per_site.png")
    _assert_png(tmp_path / "per_site.png")


@pytest.mark.parametrize(
    ("data", "match"),
    [([], "no per-site metrics"), ({}, "no per-site metrics"),
     ([{"auroc": 0.8}], "no site name"), ("site1", "wrong type"),
     ([{"site": "a", "auroc": "high", "accuracy": 0.5}], "not a number"),
     ([{"site": "a", "accuracy": 0.5}], "no site has this metric")],
)
def test_plot_per_site__refuses_bad_input(tmp_path, data, match):
    with pytest.raises(InputError, match=match):
        plot_per_site(data, tmp_path / "p.png")
    assert list(tmp_path.iterdir()) == []


def test_plot_training_curves__writes_png_with_and_without_reference(tmp_path):
    rounds = [{"round": r, "loss": 1 / r, "auroc": 0.5 + 0.1 * r} for r in range(1, 6)]
    rounds[2]["auroc"] = None
    plot_training_curves(rounds, tmp_path / "a" / "curves.png",
                         centralized={"loss": 0.2, "auroc": 0.95})
    _assert_png(tmp_path / "a" / "curves.png")
    plot_training_curves(rounds, tmp_path / "b" / "curves.png", metrics=("loss",))
    _assert_png(tmp_path / "b" / "curves.png")


def _zero_markers(ax):
    """(x, y) of the markers drawn at the base of zero-height bars."""
    pts = []
    for line in ax.get_lines():
        if line.get_marker() == "o" and len(line.get_xdata()):
            pts += list(zip(line.get_xdata(), line.get_ydata(), strict=True))
    return pts


def test_plot_fairness__zero_bars_get_a_marker_and_a_value(tmp_path):
    from secured_bio.telemetry.federated import PAEDIATRIC_AGE_EDGES

    rng = np.random.default_rng(3)
    n = 200
    band = age_bands(rng.uniform(0, 18, n), PAEDIATRIC_AGE_EDGES)
    y = rng.integers(0, 2, n)
    s = rng.uniform(0.6, 1.0, n)
    s[band == "1-4"] = 0.1  # nobody in 1-4 is predicted positive: TPR = FPR = 0 there
    audit = fairness_audit(y, s, groups={"age_band": band})
    groups = audit["attributes"]["age_band"]["groups"]
    assert groups["1-4"]["tpr"] == 0 and groups["1-4"]["fpr"] == 0
    ax = plot_fairness(audit, tmp_path / "f.png").axes[0]
    ticks = [t.get_text().split("\n")[0] for t in ax.get_xticklabels()]
    assert ticks == ["0-<1", "1-4", "5-11", "12-17"]  # by age
    zeros = sum(1 for g in groups.values() for m in ("auroc", "tpr", "fpr") if g[m] == 0)
    markers = _zero_markers(ax)
    assert len(markers) == zeros == 2 and all(y == 0 for _, y in markers)
    assert all(round(x) == 1 for x, _ in markers)  # under the "1-4" group
    values = [t.get_text() for t in ax.texts]
    assert values.count("0.00") == 2 and len(values) == 3 * len(groups)
    assert "value 0" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_plot_per_site__zero_bar_is_visible(tmp_path):
    sites = [{"site": "site1", "auroc": 0.81, "accuracy": 0.0},
             {"site": "site2", "auroc": 0.7, "accuracy": 0.6}]
    ax = plot_per_site(sites, tmp_path / "p.png").axes[0]
    assert len(_zero_markers(ax)) == 1 and "0.00" in [t.get_text() for t in ax.texts]


def test_plot_training_curves__says_which_quantity_each_mark_is(tmp_path):
    rounds = [{"round": r, "auroc": 0.6 + 0.05 * r} for r in range(1, 4)]
    fig = plot_training_curves(
        rounds, tmp_path / "c.png", metrics=("auroc",), centralized={"auroc": 0.9},
        final={"auroc": 0.82}, centralized_label="centralized, pooled rows",
        final_label="final model, pooled rows",
        descriptions={"auroc": "each round: mean of the sites' own AUROCs"})
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["federated, per round", "centralized, pooled rows: 0.9",
                      "final model, pooled rows: 0.82"]
    assert "mean of the sites' own AUROCs" in ax.get_xlabel()
    star = [ln for ln in ax.get_lines() if ln.get_marker() == "*"]
    assert len(star) == 1 and list(star[0].get_xdata()) == [3]


@pytest.mark.parametrize(
    ("rounds", "kw", "match"),
    [([], {}, "no rounds to plot"), ({"loss": 1.0}, {}, "list of dicts"),
     ([{"loss": 1.0}], {}, "no round has this metric"),
     ([{"loss": 1.0, "auroc": 0.5}], {"metrics": ()}, "no metrics to plot"),
     ([{"loss": "x", "auroc": 0.5}], {}, "not a number")],
)
def test_plot_training_curves__refuses_bad_input(tmp_path, rounds, kw, match):
    with pytest.raises(InputError, match=match):
        plot_training_curves(rounds, tmp_path / "c.png", **kw)
    assert list(tmp_path.iterdir()) == []
