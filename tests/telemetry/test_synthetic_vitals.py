"""Tests of the fitted vital-signs generator: recovered parameters, spec-valid output,
exact conditions, reproducibility, aggregate-only model files, evaluation and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from secured_bio.errors import ConfigError, FormatError, InputError, SchemaError
from secured_bio.telemetry import synthetic as syn
from secured_bio.telemetry.ingest import ingest_vitals
from secured_bio.telemetry.synthetic import (
    SyntheticVitals,
    VitalsModel,
    evaluate_vitals,
    fit_vitals_model,
    load_vitals_model,
    plot_vitals,
    read_cohort,
    save_vitals_model,
    write_synthetic_vitals,
)
from secured_bio.testing import VitalsCohort, simulate_vitals

# The simulator's planted values (secured_bio/testing/_vitals.py), restated independently.
SIM_TIME_CONSTANT_H = 3.0
SIM_SHIFT_Z = {"heart_rate": 3.0, "respiratory_rate": 3.0, "systolic_bp": -1.0,
               "diastolic_bp": -0.5, "spo2": -6.0 / 1.0, "temperature": 1.3 / 0.35}
SIM_CIRCADIAN = ("heart_rate", "respiratory_rate", "temperature")  # amplitude 0.4, peak 16:00
RANGES = {"heart_rate": (20, 300), "respiratory_rate": (4, 120), "spo2": (40, 100),
          "temperature": (30, 45), "systolic_bp": (30, 250), "diastolic_bp": (10, 180)}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> VitalsCohort:
    return simulate_vitals(tmp_path_factory.mktemp("real"), n_sites=2, patients_per_site=30,
                           hours=48, seed=0)


@pytest.fixture(scope="module")
def model(cohort: VitalsCohort) -> VitalsModel:
    return fit_vitals_model(*read_cohort(cohort.out_dir))


def _ramp_mean(lo: float, hi: float) -> float:
    """Mean of the simulator's sigmoid ramp over the hourly rounds in [lo, hi) after onset."""
    t = np.arange(lo, hi)
    return float(np.mean(1 / (1 + np.exp(-(t - 3.0) / 1.2))))


# ------------------------------------------------------------------ fitted parameters


def test_fit__ar_coefficient_matches_simulator_time_constant(model: VitalsModel) -> None:
    # Each vital's OU rate comes from a variogram of 60 patients x 48 h; across seeds the
    # per-vital time constant varies by ~30 %, the median over the 6 vitals by < 10 %.
    want = math.exp(-1 / SIM_TIME_CONSTANT_H)  # AR(1) coefficient per hour, 0.7165
    per_hour = [p.ar1_per_hour for p in model.vitals.values()]
    assert abs(float(np.median(per_hour)) - want) < 0.06
    for v, p in model.vitals.items():
        assert 1.5 < 1 / p.ou_rate < 6.0, v


def test_fit__variance_components_and_circadian_match_simulator(model: VitalsModel) -> None:
    # Simulator: offset SD 0.6, AR SD 0.5, noise SD 0.3 (+ rounding), 0.4 cos peak at 16:00.
    for v, p in model.vitals.items():
        total = math.sqrt(p.offset_sd**2 + p.process_sd**2 + p.noise_sd**2)
        assert 0.65 < total < 1.05, v
        assert 0.35 < p.process_sd < 0.65, v
        if v in SIM_CIRCADIAN:
            assert abs(p.circadian_amplitude - 0.4) < 0.12, v
            assert abs((p.circadian_peak_hour - 16 + 12) % 24 - 12) < 1.5, v
        else:
            assert p.circadian_amplitude < 0.15, v
        assert abs(p.missing_rate - 0.05) < 0.02, v
    assert model.bp_missing["systolic_only"] == model.bp_missing["diastolic_only"] == 0.0
    assert model.interval_minutes == 60.0
    assert model.n_patients == 60 and model.n_deteriorating == 18


def test_fit__episode_shift_matches_planted_deterioration(model: VitalsModel) -> None:
    ep = model.episode
    assert ep is not None
    edges = ep["edges_hours"]
    k = edges.index(8)  # bin [8, 12) h after onset: the ramp's plateau
    before = edges.index(-6)  # bin [-6, -3): before the ramp
    ramp = _ramp_mean(8, 12)
    for v, planted in SIM_SHIFT_Z.items():
        got = ep["shift_mean"][v][k]
        # 18 episodes x 4 rounds with residual SD ~0.6 (autocorrelated) plus each patient's
        # baseline: SE ~0.15 z (0.44 worst over simulator seeds 0-4); allow 0.5 or 12 %.
        assert abs(got - planted * ramp) < max(0.5, 0.12 * abs(planted)), v
        assert abs(ep["shift_mean"][v][before]) < 0.35, v
    assert all(n >= syn.MIN_BIN_PATIENTS for n, e in zip(ep["patients_per_bin"],
                                                         ep["estimated"], strict=True) if e)


def test_fit__without_events_has_no_profile_and_refuses_deteriorations(
        cohort: VitalsCohort) -> None:
    m = fit_vitals_model(cohort.vitals_paths[0], cohort.patients_paths[0])
    assert m.episode is None and m.deterioration_fraction == 0.0
    assert m.sample(3, hours=4).events["deterioration"].sum() == 0
    with pytest.raises(ConfigError, match="no deterioration profile"):
        m.sample(3, deterioration=0.5, hours=4)


def test_fit__irregular_sampling_recovers_time_constant(tmp_path: Path) -> None:
    # Drop ~half the rounds at random: gaps become irregular (1-6 h); the variogram works on
    # actual lags, so the time constant must stay near the simulator's 3 h.
    c = simulate_vitals(tmp_path, n_sites=1, patients_per_site=40, hours=48, seed=3)
    v, p, e = read_cohort(c.out_dir)
    rounds = v[["patient_id", "time"]].drop_duplicates()
    keep = rounds.sample(frac=0.5, random_state=1)
    v = v.merge(keep, on=["patient_id", "time"])
    m = fit_vitals_model(v, p, e)
    assert m.interval_quartiles[1] > m.interval_quartiles[0]
    per_hour = [q.ar1_per_hour for q in m.vitals.values()]
    assert abs(float(np.median(per_hour)) - math.exp(-1 / 3)) < 0.08


# ------------------------------------------------------------------ sampling


def test_sample__output_passes_vitals_spec_and_ingest_round_trip(model: VitalsModel,
                                                                  tmp_path: Path) -> None:
    from secured_bio.specs import validate

    s = model.sample(12, deterioration=0.5, hours=24, seed=3)
    paths = write_synthetic_vitals(s, tmp_path / "out", fhir=True)
    rep = validate("vitals", paths["vitals"])
    assert rep.ok
    ingest_vitals(paths["vitals"], tmp_path / "from_csv.csv")
    ingest_vitals(paths["fhir"], tmp_path / "from_fhir.csv")
    a = pd.read_csv(paths["vitals"], dtype={"patient_id": str})
    b = pd.read_csv(tmp_path / "from_fhir.csv", dtype={"patient_id": str})
    key = ["patient_id", "time", "vital"]
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    assert a[key].equals(b[key]) and a["unit"].equals(b["unit"])
    np.testing.assert_allclose(a["value"], b["value"])
    # The written tables are what the sampler returned.
    np.testing.assert_allclose(a["value"].to_numpy(),
                               s.vitals.sort_values(key)["value"].to_numpy())


def test_sample__values_rounded_clipped_and_diastolic_below_systolic(
        model: VitalsModel) -> None:
    s = model.sample(200, deterioration=1.0, hours=24, seed=5)
    v = s.vitals
    for vital, (lo, hi) in RANGES.items():
        x = v.loc[v["vital"] == vital, "value"].to_numpy()
        assert len(x) and x.min() >= lo and x.max() <= hi, vital
        dec = 10.0 if vital == "temperature" else 1.0
        np.testing.assert_allclose(x * dec, np.round(x * dec), atol=1e-9)
    bp = v[v["vital"].isin(["systolic_bp", "diastolic_bp"])].pivot_table(
        index=["patient_id", "time"], columns="vital", values="value")
    assert bp.notna().all().all()  # missing together (as fitted: the simulator's pairs)
    assert (bp["diastolic_bp"] < bp["systolic_bp"]).all()
    assert set(v["unit"]) == {"/min", "%", "Cel", "mm[Hg]"}
    assert (v.groupby(["patient_id", "time", "vital"]).size() == 1).all()


def test_sample__conditions_are_honoured_exactly(model: VitalsModel) -> None:
    s = model.sample(50, ages=(2.0, 5.0), sexes="F", deterioration=0.3, hours=12,
                     interval_minutes=30, seed=1, id_prefix="edu")
    assert s.patients["age_years"].between(2.0, 5.0).all()
    assert (s.patients["sex"] == "F").all()
    assert int(s.events["deterioration"].sum()) == 15
    assert s.patients["patient_id"].iloc[0] == "edu-0001"
    t = pd.to_datetime(s.vitals["time"], utc=True, format="ISO8601")
    span = t.groupby(s.vitals["patient_id"]).agg(lambda x: (x.max() - x.min()).total_seconds())
    assert span.max() <= 12 * 3600 - 30 * 60
    gaps = t.groupby(s.vitals["patient_id"]).apply(lambda x: np.diff(np.unique(x.to_numpy())))
    assert all(((g.astype("timedelta64[m]").astype(int) % 30) == 0).all() for g in gaps)
    ages = np.array([0.5, 3.0, 17.0])
    det = np.array([True, False, True])
    s2 = model.sample(3, ages=ages, deterioration=det, onset_hours=[5.0, np.nan, 7.5],
                      hours=10, seed=2)
    np.testing.assert_allclose(s2.patients["age_years"], ages)
    assert s2.events["deterioration"].tolist() == [1, 0, 1]
    first = pd.to_datetime(s2.vitals.groupby("patient_id")["time"].min(), utc=True)
    onset = pd.to_datetime(s2.events.set_index("patient_id")["onset_time"].replace("", None),
                           utc=True)
    hours = ((onset - first).dt.total_seconds() / 3600).tolist()
    assert hours[0] == 5.0 and math.isnan(hours[1]) and hours[2] == 7.5
    assert s2.events["onset_time"].iloc[1] == ""
    assert s2.events["onset_time"].iloc[0].endswith("+01:00")  # the fitted UTC offset


def test_sample__deterioration_is_visible_after_onset(model: VitalsModel) -> None:
    s = model.sample(40, deterioration=True, onset_hours=12.0, hours=36, seed=4)
    v = s.vitals[s.vitals["vital"] == "spo2"]
    t = pd.to_datetime(v["time"], utc=True, format="ISO8601")
    first = t.groupby(v["patient_id"]).transform("min")
    rel = (t - first).dt.total_seconds() / 3600 - 12.0
    before = v["value"][rel < 0].mean()
    after = v["value"][(rel >= 8) & (rel < 20)].mean()
    assert before - after > 4.0  # the fitted SpO2 fall (planted: 6 %)


def test_sample__same_seed_same_output_other_seed_differs(model: VitalsModel) -> None:
    a = model.sample(20, hours=12, seed=7)
    b = model.sample(20, hours=12, seed=7)
    c = model.sample(20, hours=12, seed=8)
    for x, y in ((a.vitals, b.vitals), (a.patients, b.patients), (a.events, b.events)):
        pd.testing.assert_frame_equal(x, y)
    assert not a.vitals["value"].equals(c.vitals["value"])


@pytest.mark.parametrize("kwargs, match", [
    ({"n": 0}, "positive integer"),
    ({"n": 2.5}, "positive integer"),
    ({"n": 3, "ages": (5, 2)}, "age range out of bounds"),
    ({"n": 3, "ages": (1, 30)}, "age range out of bounds"),
    ({"n": 3, "ages": [1.0, 2.0]}, "wrong length"),
    ({"n": 3, "deterioration": 1.5}, "fraction out of range"),
    ({"n": 3, "deterioration": True, "onset_hours": 50.0}, "onset outside the stay"),
    ({"n": 3, "interval_minutes": 0}, "interval_minutes out of range"),
    ({"n": 3, "hours": -1}, "hours must be positive"),
    ({"n": 3, "id_prefix": "a_b"}, "invalid id_prefix"),
    ({"n": 3, "start": "2026-01-05T08:00:00"}, "lacks a UTC offset"),
])
def test_sample__bad_arguments_raise_config_error(model: VitalsModel, kwargs: dict,
                                                  match: str) -> None:
    n = kwargs.pop("n")
    with pytest.raises(ConfigError, match=match):
        model.sample(n, **kwargs)


# ------------------------------------------------------------------ model file


def test_model_file__round_trip_and_holds_no_patient_values(model: VitalsModel,
                                                            cohort: VitalsCohort,
                                                            tmp_path: Path) -> None:
    path = save_vitals_model(model, tmp_path / "m.json")
    text = path.read_text()
    doc = json.loads(text)
    assert doc["format"] == "secured_bio.vitals_model" and doc["format_version"] == 1
    for pid in cohort.patient_ids:
        assert pid not in text
    for col in ("patient_id", "onset_time", "age_years"):
        assert col not in text

    def lists(x: object) -> list[list]:
        if isinstance(x, list):
            return [x] + [y for e in x for y in lists(e)]
        if isinstance(x, dict):
            return [y for e in x.values() for y in lists(e)]
        return []

    assert max(len(x) for x in lists(doc)) <= len(syn.EPISODE_EDGES)  # no per-patient arrays
    # Counts are totals, never one patient's (no count of 1 outside the episode bins).
    assert doc["n_patients"] == 60 and doc["n_measurements"] == sum(cohort.n_measurements)
    again = load_vitals_model(path)
    assert again.to_dict() == model.to_dict()
    pd.testing.assert_frame_equal(again.sample(5, hours=6, seed=1).vitals,
                                  model.sample(5, hours=6, seed=1).vitals)


def test_model_file__wrong_format_or_version_is_refused(model: VitalsModel,
                                                        tmp_path: Path) -> None:
    doc = model.to_dict()
    p = tmp_path / "m.json"
    p.write_text(json.dumps(dict(doc, format_version=2)))
    with pytest.raises(FormatError, match="unsupported vitals model version"):
        load_vitals_model(p)
    p.write_text(json.dumps(dict(doc, format="other")))
    with pytest.raises(FormatError, match="not a vitals model"):
        load_vitals_model(p)
    p.write_text("{")
    with pytest.raises(FormatError, match="not JSON"):
        load_vitals_model(p)
    del doc["vitals"]
    p.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="incomplete"):
        load_vitals_model(p)


def test_describe__summarises_without_ids(model: VitalsModel, cohort: VitalsCohort) -> None:
    text = model.describe()
    assert "60 patients (18 with deterioration)" in text
    assert "heart_rate" in text and "mean z-shift" in text
    assert not any(pid in text for pid in cohort.patient_ids)


# ------------------------------------------------------------------ bad input


def test_fit__empty_and_headerless_tables_raise(cohort: VitalsCohort, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match=r"empty vitals table \[.*empty.csv\]"):
        fit_vitals_model(empty, cohort.patients_paths[0])
    header = tmp_path / "header.csv"
    header.write_text("patient_id,time,vital,value,unit\n")
    with pytest.raises(InputError, match=r"too few patients .*header.csv.* >= 5 patients"):
        fit_vitals_model(header, cohort.patients_paths[0])


def test_fit__unknown_vital_is_refused_by_the_reader(cohort: VitalsCohort,
                                                     tmp_path: Path) -> None:
    bad = tmp_path / "v.csv"
    text = cohort.vitals_paths[0].read_text().replace(",heart_rate,", ",heart_rat,", 1)
    bad.write_text(text)
    with pytest.raises(SchemaError, match="unknown vital signs.*did you mean 'heart_rate'"):
        fit_vitals_model(bad, cohort.patients_paths[0])


def test_fit__too_few_patients_or_measurements_raise(cohort: VitalsCohort) -> None:
    v, p, e = read_cohort(cohort.vitals_paths[0].parent)
    few = v[v["patient_id"].isin(sorted(set(v["patient_id"]))[:4])]
    with pytest.raises(InputError, match="too few patients.*>= 5 patients.*got 4"):
        fit_vitals_model(few, p, e)
    one_round = v.groupby(["patient_id", "vital"]).head(1)
    with pytest.raises(InputError, match="too few"):
        fit_vitals_model(one_round, p, e)
    no_temp = v[~((v["vital"] == "temperature") & (v.index % 400 != 0))]
    with pytest.raises(InputError, match=r"temperature measurements .*temperature\].*>= 20"):
        fit_vitals_model(no_temp, p, e)
    with pytest.raises(SchemaError, match="patients without age"):
        fit_vitals_model(v, p.iloc[1:], e)


def test_write__failure_leaves_nothing(model: VitalsModel, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from secured_bio.telemetry import fhir

    s = model.sample(4, hours=6)

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(fhir.FhirBundleWriter, "add_round", boom)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        write_synthetic_vitals(s, out, fhir=True)
    assert not out.exists() or list(out.iterdir()) == []


# ------------------------------------------------------------------ plot


def test_plot__writes_png_and_refuses_unknown_patient(model: VitalsModel,
                                                      tmp_path: Path) -> None:
    s = model.sample(2, deterioration=True, hours=24, seed=2)
    p = plot_vitals(s, "synth-0001", tmp_path / "p.png", title="example")
    assert p.read_bytes()[:4] == b"\x89PNG"
    p2 = plot_vitals(s.vitals, "synth-0002", tmp_path / "q.png", onset=6.0, age_years=4.0)
    assert p2.stat().st_size > 1000
    with pytest.raises(InputError, match="no measurements"):
        plot_vitals(s.vitals, "nobody", tmp_path / "r.png")
    assert not (tmp_path / "r.png").exists()



def test_vitals_figure__legend_names_band_and_onset_and_no_empty_panel(
        model: VitalsModel) -> None:
    from secured_bio.telemetry.synthetic import vitals_figure

    s = model.sample(2, deterioration=True, hours=24, seed=2)
    fig = vitals_figure(s, "synth-0001", title="case")
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "age norm (median +/- 2 SD)" in legend and "deterioration onset" in legend
    assert {"heart rate", "SpO2", "systolic BP", "diastolic BP"} <= set(legend)
    assert len(fig.axes) == 5 and all(ax.get_lines() for ax in fig.axes)
    # a patient without temperature or blood pressure gets no empty panel for them
    v = s.vitals[~s.vitals["vital"].isin(["temperature", "systolic_bp", "diastolic_bp"])]
    fig = vitals_figure(v, "synth-0001", onset=6.0, age_years=4.0)
    assert [ax.get_ylabel() for ax in fig.axes] == [
        "heart rate (/min)", "respiratory rate (/min)", "SpO2 (%)"]
    assert all(ax.get_lines() for ax in fig.axes)

# ------------------------------------------------------------------ evaluation


@pytest.fixture(scope="module")
def holdout(tmp_path_factory: pytest.TempPathFactory) -> VitalsCohort:
    return simulate_vitals(tmp_path_factory.mktemp("holdout"), n_sites=2, patients_per_site=30,
                           hours=48, seed=11)


def test_evaluate__tstr_close_to_trtr_and_no_membership_leak(
        model: VitalsModel, cohort: VitalsCohort, holdout: VitalsCohort) -> None:
    s = model.sample(60, hours=48, seed=1)
    r = evaluate_vitals(cohort.out_dir, s, holdout=holdout.out_dir, seed=0, n_threads=1)
    assert r["format"] == "secured_bio.synth_vitals_report" and r["format_version"] == 1
    u = r["utility"]
    assert u["auroc_trtr"] > 0.7
    assert u["auroc_tstr"] >= 0.9 * u["auroc_trtr"]
    mia = r["privacy"]["membership_inference"]
    assert mia["n_members"] == 60 and mia["n_nonmembers"] == 60
    assert mia["auc"] <= 0.6
    assert r["privacy"]["exact_copies"] == 0
    hr = r["fidelity"]["per_vital"]["heart_rate"]
    assert hr["ks_z"] < 0.1
    assert abs(hr["lag1_autocorr_real"] - hr["lag1_autocorr_synthetic"]) < 0.1
    assert abs(hr["episode_shift_real"] - hr["episode_shift_synthetic"]) < 0.6
    assert r["fidelity"]["correlation"]["max_abs_difference"] < 0.3


def test_evaluate__a_copy_of_the_real_data_is_caught(cohort: VitalsCohort,
                                                     holdout: VitalsCohort) -> None:
    # The "release" is the real data itself under new IDs: the checks must fail it.
    v, p, e = read_cohort(cohort.out_dir)
    ids = {pid: f"copy-{k}" for k, pid in enumerate(sorted(set(p["patient_id"])))}
    leak = SyntheticVitals(v.assign(patient_id=v["patient_id"].map(ids)),
                           p.assign(patient_id=p["patient_id"].map(ids)),
                           e.assign(patient_id=e["patient_id"].map(ids)))
    r = evaluate_vitals((v, p, e), leak, holdout=holdout.out_dir, n_threads=1)
    assert r["privacy"]["exact_copies"] == 60
    assert r["privacy"]["membership_inference"]["auc"] > 0.95


def test_evaluate__without_holdout_splits_and_skips_membership(model: VitalsModel,
                                                               cohort: VitalsCohort) -> None:
    r = evaluate_vitals(read_cohort(cohort.out_dir), model.sample(30, seed=2), n_threads=1)
    assert r["privacy"]["membership_inference"] is None
    assert "optimistic" in r["utility"]["split"]
    assert r["utility"]["test_patients"] == 18  # 30 % of 60, stratified
    with pytest.raises(ConfigError, match="unsupported type"):
        evaluate_vitals(42, model.sample(3, hours=4))
