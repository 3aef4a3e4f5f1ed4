"""Real-time scoring: incremental state equals the batch features; bad lines; the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from secured_bio.errors import FormatError, SchemaError
from secured_bio.telemetry.features import (
    feature_names,
    read_patients,
    read_vitals,
    site_features,
    window_features,
)
from secured_bio.telemetry.model import TelemetryModel, mlp, save_model, train_model
from secured_bio.telemetry.model_cli import score as score_cmd
from secured_bio.telemetry.stream import (
    StreamState,
    follow_lines,
    read_lines,
    score_stream,
)
from secured_bio.testing import simulate_vitals


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    # 30-min rounds and 20 % missing values: windows of varying fill, carry-forward expiry.
    return simulate_vitals(tmp_path_factory.mktemp("s"), n_sites=1, patients_per_site=8,
                           hours=24, interval_minutes=30, missing_rate=0.2, seed=7)


@pytest.fixture(scope="module")
def data(cohort):
    vitals = read_vitals(cohort.vitals_paths[0])
    patients = read_patients(cohort.patients_paths[0])
    raw = pd.read_csv(cohort.vitals_paths[0], dtype={"patient_id": str, "time": str})
    lines = [json.dumps(r) for r in raw.to_dict("records")]
    return vitals, patients, raw, lines


@pytest.fixture(scope="module")
def models(cohort):
    f = site_features(cohort.out_dir / "site1", event_delay_hours=6.0)
    import torch

    torch.manual_seed(0)
    return {"hgb": train_model(f, seed=0, n_threads=1),
            "torch": TelemetryModel("torch", mlp(len(feature_names())))}


def _ages(patients):
    return patients["age_years"].to_dict()


def test_stream_state__equals_batch_features(data):
    vitals, patients, _, _ = data
    batch = window_features(vitals, patients)
    state = StreamState(_ages(patients))
    last = {}
    for r in vitals.itertuples():
        last[(r.patient_id, r.time_us)] = state.update(r.patient_id, r.time_us, r.vital, r.value)
    got = np.array([last[k] for k in zip(batch["patient_id"], batch["time_us"], strict=True)])
    want = batch[feature_names()].to_numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9, equal_nan=True)


@pytest.mark.parametrize("method", ["hgb", "torch"])
def test_score_stream__scores_equal_batch_scores(data, models, method):
    vitals, patients, raw, lines = data
    model = models[method]
    batch = window_features(vitals, patients)
    want = model.predict(batch[feature_names()].to_numpy())
    out = _run(lines, model, _ages(patients), emit="all", batch_size=37)
    recs = [json.loads(x) for x in out.splitlines()]
    assert len(recs) == len(lines)
    t_us = vitals["time_us"].to_numpy()
    # the score after a round's last observation is the batch row of that time
    final = {}
    for rec, pid, t in zip(recs, raw["patient_id"], t_us, strict=True):
        final[(pid, t)] = rec["score"]
    got = np.array([final[k] for k in zip(batch["patient_id"], batch["time_us"], strict=True)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def _run(lines, model, ages, **kw):
    import io

    buf = io.StringIO()
    score_stream(lines, model, ages, out=buf, **kw)
    return buf.getvalue()


def test_score_stream__interleaved_patients_score_the_same(data, models):
    vitals, patients, raw, lines = data
    model = models["hgb"]
    order = np.argsort(vitals["time_us"].to_numpy(), kind="stable")  # a ward feed
    seq = _run(lines, model, _ages(patients), emit="all")
    mixed = _run([lines[i] for i in order], model, _ages(patients), emit="all")
    a = [json.loads(x)["score"] for x in seq.splitlines()]
    b = [json.loads(x)["score"] for x in mixed.splitlines()]
    np.testing.assert_allclose(np.array(b), np.array(a)[order], rtol=0, atol=1e-12)


def test_score_stream__alerts_only_on_upward_crossing(data, models):
    _, patients, raw, lines = data
    model = TelemetryModel("torch", models["torch"].estimator, threshold=0.0)  # always above
    out = _run(lines, model, _ages(patients))
    recs = [json.loads(x) for x in out.splitlines()]
    assert sorted(r["patient_id"] for r in recs) == sorted(raw["patient_id"].unique())
    first = raw.groupby("patient_id", sort=False)["time"].first()
    assert all(r["time"] == first[r["patient_id"]] for r in recs)
    assert all(set(r) == {"patient_id", "time", "score", "threshold", "latency_ms"}
               and r["latency_ms"] >= 0 for r in recs)
    never = TelemetryModel("torch", models["torch"].estimator, threshold=1.0 + 1e-9)
    assert _run(lines, never, _ages(patients)) == ""


GOOD = {"patient_id": "site1-0001", "time": "2026-01-05T08:00:00+01:00",
        "vital": "heart_rate", "value": 120, "unit": "/min"}


def _bad_lines():
    return {
        "malformed_json": "{not json",
        "missing_field": json.dumps({k: v for k, v in GOOD.items() if k != "unit"}),
        "unknown_vital": json.dumps({**GOOD, "vital": "glucose"}),
        "bad_unit": json.dumps({**GOOD, "unit": "[degF]"}),
        "bad_value": json.dumps({**GOOD, "value": "high"}),
        "bad_time": json.dumps({**GOOD, "time": "2026-01-05T08:00:00"}),
        "unknown_patient": json.dumps({**GOOD, "patient_id": "nobody"}),
        "out_of_order": json.dumps({**GOOD, "time": "2026-01-05T07:00:00+01:00"}),
    }


def test_score_stream__bad_lines_are_counted_not_fatal(data, models):
    _, patients, _, _ = data
    bad = _bad_lines()
    s = score_stream([json.dumps(GOOD), *bad.values(), "", json.dumps(GOOD)], models["hgb"],
                     _ages(patients))
    assert s.observations == 2 and s.lines == 10
    assert s.bad == dict.fromkeys(bad, 1)
    assert s.as_dict()["bad_lines"] == 8


@pytest.mark.parametrize("reason", list(_bad_lines()))
def test_score_stream__strict_raises_on_bad_line_without_content(data, models, reason):
    _, patients, _, _ = data
    line = _bad_lines()[reason]
    match = f"bad observation.*input line 2.*{reason.replace('_', ' ')}"
    with pytest.raises(FormatError, match=match) as e:
        score_stream([json.dumps(GOOD), line], models["hgb"], _ages(patients), strict=True)
    assert "site1-0001" not in str(e.value) and "120" not in str(e.value)


def test_score_stream__unknown_emit_mode_raises(models):
    with pytest.raises(SchemaError, match="unknown emit mode"):
        score_stream([], models["hgb"], {}, emit="some")


def test_read_lines__yields_lines_and_pauses_from_a_pipe():
    r, w = os.pipe()
    with os.fdopen(r, "rb") as fin:
        os.write(w, b'{"a": 1}\n{"b": 2}\n{"c"')
        it = read_lines(fin)
        got = [next(it), next(it), next(it)]
        assert got == ['{"a": 1}', '{"b": 2}', None]  # the partial line waits
        os.write(w, b": 3}\n")
        os.close(w)
        assert [x for x in it if x is not None] == ['{"c": 3}']


def test_follow_lines__reads_appended_lines_then_exits_when_idle(tmp_path):
    p = tmp_path / "feed.jsonl"
    p.write_text("one\n")

    def append():
        with open(p, "a") as fh:
            fh.write("two\nthree\n")

    timer = threading.Timer(0.3, append)
    timer.start()
    got = [x for x in follow_lines(p, poll_s=0.05, idle_exit_s=1.0) if x is not None]
    timer.join()
    assert got == ["one", "two", "three"]


@pytest.fixture(scope="module")
def model_dir(models, tmp_path_factory):
    return save_model(models["hgb"], tmp_path_factory.mktemp("md") / "model")


def _group():
    return click.Group("telemetry", commands={"score": score_cmd})


def test_score_command__stdin_alerts_and_summary(model_dir, cohort, data):
    _, _, _, lines = data
    args = ["score", "--model", str(model_dir), "--patients", str(cohort.patients_paths[0]),
            "--stream", "--emit", "all"]
    result = CliRunner().invoke(_group(), args, input="\n".join(lines) + "\n{bad\n",
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(lines)
    summary = json.loads(result.stderr.strip().splitlines()[-1])
    assert summary["observations"] == len(lines) and summary["bad_lines"] == 1
    assert summary["bad_by_reason"] == {"malformed_json": 1} and summary["obs_per_s"] > 0


def test_score_command__needs_exactly_one_input(model_dir, cohort, tmp_path):
    base = ["score", "--model", str(model_dir), "--patients", str(cohort.patients_paths[0])]
    for extra in ([], ["--stream", "--follow", str(cohort.patients_paths[0])]):
        result = CliRunner().invoke(_group(), base + extra)
        assert result.exit_code == 2 and "exactly one of --stream" in result.output
    result = CliRunner().invoke(_group(), [*base, "--stream", "--idle-exit", "1"])
    assert result.exit_code == 2 and "--idle-exit needs --follow" in result.output


def test_score_command__strict_bad_line_raises(model_dir, cohort):
    args = ["score", "--model", str(model_dir), "--patients", str(cohort.patients_paths[0]),
            "--stream", "--strict"]
    result = CliRunner().invoke(_group(), args, input="{bad\n")
    assert isinstance(result.exception, FormatError)


_SCORE = "from secured_bio.telemetry.model_cli import score; score()"


def test_score_cli__end_to_end_pipe_and_follow(model_dir, cohort, data, tmp_path):
    _, patients, _, lines = data
    feed = tmp_path / "feed.jsonl"
    feed.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "SECURED_BIO_PROGRESS": "0"}
    base = [sys.executable, "-c", _SCORE, "--model", str(model_dir), "--patients",
            str(cohort.patients_paths[0])]
    with open(feed, "rb") as fin:
        piped = subprocess.run([*base, "--stream"], stdin=fin, capture_output=True, text=True,
                               env=env, timeout=120)
    assert piped.returncode == 0, piped.stderr
    followed = subprocess.run([*base, "--follow", str(feed), "--idle-exit", "0.5"],
                              capture_output=True, text=True, env=env, timeout=120)
    assert followed.returncode == 0, followed.stderr
    want = _run(lines, models_from(model_dir), _ages(patients))
    key = [(r["patient_id"], r["time"], r["score"]) for r in map(json.loads, want.splitlines())]
    for proc in (piped, followed):
        got = [json.loads(x) for x in proc.stdout.splitlines()]
        assert [(r["patient_id"], r["time"], r["score"]) for r in got] == key
        assert json.loads(proc.stderr.strip().splitlines()[-1])["observations"] == len(lines)
    assert len(key) > 0


def models_from(path):
    from secured_bio.telemetry.model import load_model

    return load_model(path)


def test_score_command__threshold_option_overrides_the_model(model_dir, cohort, data):
    _, _, raw, lines = data
    args = ["score", "--model", str(model_dir), "--patients", str(cohort.patients_paths[0]),
            "--stream", "--threshold", "0"]
    result = CliRunner().invoke(_group(), args, input="\n".join(lines) + "\n",
                                catch_exceptions=False)
    recs = [json.loads(x) for x in result.stdout.splitlines()]
    assert len(recs) == raw["patient_id"].nunique() and {r["threshold"] for r in recs} == {0.0}
