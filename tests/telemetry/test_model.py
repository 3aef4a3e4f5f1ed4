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
