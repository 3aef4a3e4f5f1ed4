"""Deterioration models: time-split AUROC on the demo cohort, metrics vs references, files."""

from __future__ import annotations

import json

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy.stats import mannwhitneyu
from sklearn.calibration import calibration_curve

from secured_bio.errors import (
    ConfigError,
    FormatError,
    InputError,
    InputFileNotFoundError,
    SchemaError,
)
from secured_bio.telemetry.features import feature_names, site_features, time_split
from secured_bio.telemetry.model import (
    FORMAT,
    evaluate,
    load_model,
    plot_calibration,
    plot_roc_pr,
    plot_timelines,
    save_model,
    train_model,
)
from secured_bio.telemetry.model_cli import train as train_cmd
from secured_bio.testing import simulate_vitals

PNG = b"\x89PNG\r\n\x1a\n"
# The simulator's onset starts a sigmoid ramp that is only 8 % of the way at the onset (50 % at
# +3 h): the event to predict is the clinical decompensation 6 h after it (see label_rows).
DELAY = 6.0


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return simulate_vitals(tmp_path_factory.mktemp("m"), n_sites=3, patients_per_site=20,
                           hours=48, seed=0)


@pytest.fixture(scope="module")
def split(cohort):
    f = pd.concat([site_features(cohort.out_dir / s, event_delay_hours=DELAY)
                   for s in cohort.sites], ignore_index=True)
    train, test = time_split(f)
    return f[train].reset_index(drop=True), f[test].reset_index(drop=True)


@pytest.fixture(scope="module")
def hgb(split):
    return train_model(split[0], method="hgb", seed=0, n_threads=1)


@pytest.fixture(scope="module")
def scores(hgb, split):
    return hgb.predict(split[1][hgb.feature_names].to_numpy())


def test_hgb__time_split_auroc_above_075(scores, split):
    m = evaluate(split[1], scores)
    assert m["auroc"] > 0.75 and m["auprc"] > m["prevalence"]


def test_torch__time_split_auroc_above_075(split):
    model = train_model(split[0], method="torch", seed=0, n_threads=1)
    m = evaluate(split[1], model.predict(split[1][model.feature_names].to_numpy()))
    assert m["auroc"] > 0.75


def test_train_model__same_seed_same_model(split):
    x = split[1][feature_names()].to_numpy()[:50]
    a = train_model(split[0], method="torch", seed=3, epochs=2, n_threads=1).predict(x)
    b = train_model(split[0], method="torch", seed=3, epochs=2, n_threads=1).predict(x)
    np.testing.assert_array_equal(a, b)


def test_evaluate__metrics_match_independent_references(scores, split):
    test = split[1]
    y = test["label"].to_numpy()
    m = evaluate(test, scores, alert_budget=0.05, n_bins=10)
    u = mannwhitneyu(scores[y == 1], scores[y == 0]).statistic
    assert m["auroc"] == pytest.approx(u / ((y == 1).sum() * (y == 0).sum()))
    assert m["brier"] == pytest.approx(np.mean((scores - y) ** 2))
    prob_true, prob_pred = calibration_curve(y, scores, n_bins=10)
    assert [b["observed"] for b in m["calibration"]] == pytest.approx(prob_true)
    assert [b["mean_score"] for b in m["calibration"]] == pytest.approx(prob_pred)
    counts = np.array([b["count"] for b in m["calibration"]])
    ece = np.sum(counts / len(y) * np.abs(prob_true - prob_pred))
    assert m["ece"] == pytest.approx(ece)
    # PPV at the budget: the rows at or above the 95th centile of the scores.
    top = scores >= np.quantile(scores, 0.95)
    assert m["alerts"] == top.sum() and m["ppv"] == pytest.approx(y[top].mean())
    # lead time: per detected patient, hours from the first alert within the horizon to onset
    leads = []
    for _, g in test[np.isfinite(test["hours_to_onset"])].groupby("patient_id"):
        hit = g[(g["label"] == 1) & (scores[g.index] >= m["threshold"])]
        if len(hit):
            leads.append(hit.sort_values("time_us")["hours_to_onset"].iloc[0])
    assert m["detected_patients"] == len(leads) > 0
    assert m["lead_time_hours"] == pytest.approx(np.median(leads))


def test_evaluate__bad_inputs_raise(split, scores):
    test = split[1]
    with pytest.raises(InputError, match="scores do not match the rows"):
        evaluate(test, scores[:-1])
    with pytest.raises(InputError, match="scores do not match the rows"):
        evaluate(test, scores + 2)
    with pytest.raises(InputError, match="labels lack a class"):
        evaluate(test.assign(label=0.0), scores)
    with pytest.raises(ConfigError, match="alert budget out of range"):
        evaluate(test, scores, alert_budget=1.5)


def test_train_model__bad_options_raise(split):
    with pytest.raises(ConfigError, match="unknown training method.*did you mean 'hgb'"):
        train_model(split[0], method="hgbb")
    with pytest.raises(ConfigError, match="alert budget out of range"):
        train_model(split[0], alert_budget=0)
    with pytest.raises(SchemaError, match="feature table lacks columns"):
        train_model(split[0].drop(columns="spo2_z"))
    with pytest.raises(InputError, match="labels unusable"):
        train_model(split[0].assign(label=0.0))


@pytest.mark.parametrize("method", ["hgb", "torch"])
def test_save_load__round_trip_keeps_scores_and_format(tmp_path, split, hgb, method):
    model = hgb if method == "hgb" else train_model(split[0], method="torch", epochs=1,
                                                    n_threads=1)
    path = save_model(model, tmp_path / "model")
    header = json.loads((path / "model.json").read_text())
    assert (header["format"], header["format_version"]) == (FORMAT, 1)
    back = load_model(path)
    x = split[1][feature_names()].to_numpy()
    np.testing.assert_array_equal(back.predict(x), model.predict(x))
    assert back.threshold == model.threshold and back.windows == model.windows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp leftovers


def test_load_model__unknown_version_or_format_raises(tmp_path, hgb):
    path = save_model(hgb, tmp_path / "model")
    header = json.loads((path / "model.json").read_text())
    (path / "model.json").write_text(json.dumps({**header, "format_version": 99}))
    with pytest.raises(FormatError, match="unsupported telemetry model version.*upgrade"):
        load_model(path)
    (path / "model.json").write_text(json.dumps({**header, "format": "other"}))
    with pytest.raises(FormatError, match="not a telemetry model"):
        load_model(path)
    (path / "model.json").write_text("{")
    with pytest.raises(FormatError, match="not JSON"):
        load_model(path)
    with pytest.raises(InputFileNotFoundError, match="telemetry model not found"):
        load_model(tmp_path / "missing")


def test_save_model__refuses_to_replace_unrelated_folder(tmp_path, hgb):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match="refusing to replace"):
        save_model(hgb, tmp_path / "data")
    assert (tmp_path / "data" / "keep.txt").exists()


def test_plots__write_png_files(tmp_path, split, scores, hgb):
    test = split[1]
    paths = [plot_roc_pr(test, scores, tmp_path / "roc.png"),
             plot_calibration(test, scores, tmp_path / "cal.png"),
             plot_timelines(test, scores, tmp_path / "tl.png", threshold=hgb.threshold)]
    for p in paths:
        assert p.read_bytes()[:8] == PNG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal.png", "roc.png", "tl.png"]


def test_train_command__writes_model_metrics_and_plots(tmp_path, cohort):
    group = click.Group("telemetry", commands={"train": train_cmd})
    args = ["train", "--out", str(tmp_path / "model"), "--report", str(tmp_path / "report"),
            "--event-delay-hours", str(DELAY), "--method", "torch", "--threads", "1"]
    for s in cohort.sites:
        args += ["--in", str(cohort.out_dir / s)]
    result = CliRunner().invoke(group, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["format"] == "secured_bio.telemetry_metrics"
    assert summary["auroc"] == metrics["auroc"] and metrics["test_patients"] == 18
    for name in ("roc_pr.png", "calibration.png", "timelines.png"):
        assert (tmp_path / "report" / name).read_bytes()[:8] == PNG
    assert load_model(tmp_path / "model").method == "torch"


def test_train_command__bad_test_fraction_is_usage_error(tmp_path, cohort):
    group = click.Group("telemetry", commands={"train": train_cmd})
    result = CliRunner().invoke(group, ["train", "--in", str(cohort.out_dir / "site1"),
                                        "--out", str(tmp_path / "m"), "--test-fraction", "1"])
    assert result.exit_code == 2 and "test-fraction" in result.output


def test_run_training__bad_arguments_raise(tmp_path, cohort):
    from secured_bio.telemetry.model_cli import run_training

    with pytest.raises(ConfigError, match="no site folders"):
        run_training([], tmp_path / "m")
    with pytest.raises(ConfigError, match="test fraction out of range"):
        run_training([cohort.out_dir / "site1"], tmp_path / "m", test_fraction=1.0)
    assert not (tmp_path / "m").exists()


# ------------------------------------------------------------------ plots (issue 17, section 3)


def test_roc_pr_figure__auroc_in_legend_and_pews_on_same_axes(split, scores, cohort):
    from sklearn.metrics import roc_auc_score

    from secured_bio.telemetry.model import roc_pr_figure
    from secured_bio.telemetry.model_cli import _pews_baseline

    test = split[1]
    pews = _pews_baseline([cohort.out_dir / s for s in cohort.sites], test)
    ok = np.isfinite(pews)
    assert ok.mean() > 0.9 and np.all(pews[ok] == np.round(pews[ok])) and pews[ok].min() >= 0
    fig = roc_pr_figure(test, scores, baseline=pews, baseline_label="PEWS")
    roc = fig.axes[0]
    legend = [t.get_text() for t in roc.get_legend().get_texts()]
    y = test["label"].to_numpy()
    assert legend[0] == f"model (AUROC {roc_auc_score(y, scores):.2f}, {len(y)} rows)"
    assert legend[1] == (f"PEWS (AUROC {roc_auc_score(y[ok], pews[ok]):.2f}, "
                         f"{int(ok.sum())} rows)")
    assert len(roc.get_lines()) == 3  # model, PEWS, chance: one axes
    assert roc.get_xlim() == (0, 1)


def test_calibration_figure__shows_bin_counts_and_intervals(split, scores):
    from matplotlib.container import ErrorbarContainer

    from secured_bio.telemetry.model import calibration_figure

    test = split[1]
    bins = evaluate(test, scores)["calibration"]
    ax = calibration_figure(test, scores).axes[0]
    assert sorted(t.get_text() for t in ax.texts) == sorted(f"n={b['count']}" for b in bins)
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 1
    # markers grow with the rows of their bin: the biggest bin has the biggest marker
    sizes = ax.collections[-1].get_sizes()
    counts = [b["count"] for b in bins]
    assert len(sizes) == len(bins) and np.argmax(sizes) == np.argmax(counts)
    assert sizes.max() > 5 * sizes.min() or max(counts) < 5 * min(counts)
    # a 1-row bin's 95% interval is wide (Wilson: at least 0.79 long)
    seg = bars[0].lines[2][0].get_segments()
    lengths = [abs(s[1][1] - s[0][1]) for s in seg]
    for b, length in zip(bins, lengths, strict=True):
        if b["count"] == 1:
            assert length > 0.79


def test_timelines_figure__legend_names_every_mark_and_no_empty_panel(split, scores, hgb):
    from secured_bio.telemetry.model import timelines_figure

    fig = timelines_figure(split[1], scores, threshold=hgb.threshold)
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts[:2] == ["model score", f"alert threshold ({hgb.threshold:.2f})"]
    assert "event to predict" in texts and any(t.startswith("alert (") for t in texts)
    for ax in fig.axes:
        assert ax.get_lines(), "empty panel"
        assert ax.get_ylim()[0] < 0  # a score of 0 is not hidden under the frame
    empty = timelines_figure(split[1].iloc[:0], scores[:0], threshold=0.5)
    assert [t.get_text() for t in empty.axes[0].texts] == ["no patients to show"]
