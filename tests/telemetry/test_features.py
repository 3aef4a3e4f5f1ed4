"""Window features and labels: a hand-made table checked against direct numpy references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from secured_bio.errors import InputFileNotFoundError, SchemaError
from secured_bio.telemetry.features import (
    feature_names,
    label_rows,
    read_events,
    read_patients,
    read_vitals,
    site_features,
    time_split,
    vital_norms,
    wide_table,
    window_features,
)
from secured_bio.testing import simulate_vitals

H = 3_600_000_000  # microseconds per hour


def _obs(rows):
    """(patient, hours, vital, value) -> long table with time_us."""
    return pd.DataFrame({"patient_id": [r[0] for r in rows],
                         "time_us": [round(r[1] * H) for r in rows],
                         "vital": [r[2] for r in rows], "value": [float(r[3]) for r in rows]})


@pytest.fixture()
def tiny():
    # SpO2 (norm 98 +/- 1, so z = value - 98) at 0, 1, 1.5, 3 h; heart rate at 0 and 6 h.
    v = _obs([("p", 0, "spo2", 98), ("p", 0, "heart_rate", 100), ("p", 1, "spo2", 97),
              ("p", 1.5, "spo2", 95), ("p", 3, "spo2", 96), ("p", 6, "heart_rate", 130)])
    pats = pd.DataFrame({"age_years": [5.0], "sex": ["F"]}, index=pd.Index(["p"]))
    return v, pats


def _at(f, hours):
    return f[f["time_us"] == round(hours * H)].iloc[0]


def test_window_features__one_row_per_observation_time(tiny):
    v, pats = tiny
    f = window_features(v, pats)
    assert (f["time_us"] / H).tolist() == [0, 1, 1.5, 3, 6]
    assert f.columns.tolist() == ["patient_id", "time_us", "sex", *feature_names()]


def test_window_features__windows_are_left_open_and_match_numpy(tiny):
    v, pats = tiny
    f = window_features(v, pats)
    row = _at(f, 3)
    # 2 h window at 3 h is (1, 3]: the 1 h observation is out, 1.5 h and 3 h are in.
    t2, z2 = np.array([1.5, 3.0]), np.array([95.0, 96.0]) - 98
    assert row["spo2_mean_2h"] == pytest.approx(z2.mean())
    assert row["spo2_min_2h"] == z2.min() and row["spo2_max_2h"] == z2.max()
    assert row["spo2_slope_2h"] == pytest.approx(np.polyfit(t2, z2, 1)[0])
    t6, z6 = np.array([0, 1, 1.5, 3.0]), np.array([98.0, 97, 95, 96]) - 98
    assert row["spo2_mean_6h"] == pytest.approx(z6.mean())
    assert row["spo2_slope_6h"] == pytest.approx(np.polyfit(t6, z6, 1)[0])
    assert (row["spo2_min_6h"], row["spo2_max_6h"]) == (z6.min(), z6.max())


def test_window_features__slope_needs_two_distinct_times(tiny):
    v, pats = tiny
    f = window_features(v, pats)
    assert np.isnan(_at(f, 0)["spo2_slope_2h"])  # one observation
    assert _at(f, 0)["spo2_mean_2h"] == 0.0
    # at 6 h the 2 h window (4, 6] holds no SpO2: every statistic is missing
    assert _at(f, 6)[["spo2_mean_2h", "spo2_min_2h", "spo2_max_2h", "spo2_slope_2h"]].isna().all()


def test_window_features__carry_forward_is_limited(tiny):
    v, pats = tiny
    med, sd = vital_norms(5.0)["heart_rate"]
    f = window_features(v, pats, carry_hours=4)
    assert _at(f, 3)["heart_rate_z"] == pytest.approx((100 - med) / sd)  # 3 h old: carried
    assert _at(f, 6)["spo2_z"] == -2.0 and _at(f, 6)["spo2_missing"] == 0.0  # 3 h old
    short = window_features(v, pats, carry_hours=2)
    assert np.isnan(_at(short, 3)["heart_rate_z"]) and _at(short, 3)["heart_rate_missing"] == 1
    assert np.isnan(_at(short, 6)["spo2_z"]) and _at(short, 6)["spo2_missing"] == 1.0


def test_window_features__z_scores_are_age_normalised(tiny):
    v, pats = tiny
    infant = window_features(v, pats.assign(age_years=0.2))
    med, sd = vital_norms(0.2)["heart_rate"]
    assert _at(infant, 0)["heart_rate_z"] == pytest.approx((100 - med) / sd)
    assert _at(infant, 0)["heart_rate_z"] < _at(window_features(v, pats), 0)["heart_rate_z"]


def test_wide_table__carries_each_vital_forward(tiny):
    v, _ = tiny
    w = wide_table(v, carry_hours=4)
    assert w["spo2"].tolist() == [98, 97, 95, 96, 96]
    assert w["heart_rate"].tolist()[:4] == [100, 100, 100, 100] and w["heart_rate"].iloc[4] == 130
    assert w["temperature"].isna().all()


def test_label_rows__horizon_and_exclusion_from_onset(tiny):
    v, pats = tiny
    v = pd.concat([v, _obs([("p", 4, "spo2", 90)])], ignore_index=True)
    f = window_features(v, pats)
    ev = pd.DataFrame({"onset_us": [4 * H]}, index=pd.Index(["p"]))
    lab = label_rows(f, ev, horizon_hours=2)
    assert (lab["time_us"] / H).tolist() == [0, 1, 1.5, 3]  # 4 h (the onset) and 6 h dropped
    assert lab["hours_to_onset"].tolist() == [4, 3, 2.5, 1]
    assert lab["label"].tolist() == [0, 0, 0, 1]
    assert label_rows(f, ev, horizon_hours=3)["label"].tolist() == [0, 1, 1, 1]
    later = label_rows(f, ev, horizon_hours=2, event_delay_hours=3)  # event at 7 h
    assert (later["time_us"] / H).tolist() == [0, 1, 1.5, 3, 4, 6]
    assert later["label"].tolist() == [0, 0, 0, 0, 0, 1]


def test_label_rows__no_event_keeps_all_rows_negative(tiny):
    v, pats = tiny
    f = window_features(v, pats)
    lab = label_rows(f, pd.DataFrame({"onset_us": [-1]}, index=pd.Index(["p"])))
    assert len(lab) == len(f) and lab["label"].eq(0).all() and lab["hours_to_onset"].isna().all()


def test_label_rows__patient_without_events_row_raises(tiny):
    v, pats = tiny
    f = window_features(v, pats)
    with pytest.raises(SchemaError, match="patients without an events row"):
        label_rows(f, pd.DataFrame({"onset_us": []}, index=pd.Index([], dtype=str)))


def test_window_features__patient_without_age_raises(tiny):
    v, pats = tiny
    with pytest.raises(SchemaError, match="patients without age") as e:
        window_features(v.assign(patient_id="secret-id"), pats)
    assert "secret-id" not in str(e.value)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return simulate_vitals(tmp_path_factory.mktemp("fv"), n_sites=2, patients_per_site=6,
                           hours=24, deterioration_fraction=0.5, seed=4)


def test_site_features__labels_agree_with_raw_events(cohort):
    site = cohort.out_dir / cohort.sites[0]
    f = site_features(site, horizon_hours=6)
    raw = pd.read_csv(site / "vitals.csv")
    raw["t"] = pd.to_datetime(raw["time"], utc=True, format="ISO8601")
    ev = pd.read_csv(site / "events.csv")
    for _, e in ev.iterrows():
        times = np.sort(raw.loc[raw["patient_id"] == e["patient_id"], "t"].unique())
        rows = f[f["patient_id"] == e["patient_id"]]
        if e["deterioration"] == 1:
            onset = pd.Timestamp(e["onset_time"]).tz_convert("UTC")
            before = [t for t in times if t < onset]
            positive = [t for t in before if t >= onset - pd.Timedelta(hours=6)]
            assert len(rows) == len(before)
            assert int(rows["label"].sum()) == len(positive)
        else:
            assert len(rows) == len(times) and rows["label"].eq(0).all()
    assert f["site"].eq(cohort.sites[0]).all()


def test_time_split__later_admissions_test_per_site(cohort):
    f = pd.concat([site_features(cohort.out_dir / s) for s in cohort.sites], ignore_index=True)
    train, test = time_split(f, test_fraction=0.34)
    assert not (train & test).any() and (train | test).all()
    for s in cohort.sites:
        first = f[f["site"] == s].groupby("patient_id")["time_us"].min()
        tr = set(f.loc[train & (f["site"] == s), "patient_id"])
        te = set(f.loc[test & (f["site"] == s), "patient_id"])
        assert not tr & te and len(te) == 2
        assert first[list(tr)].max() <= first[list(te)].min()


def _write(tmp_path, text, name="vitals.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


HEAD = "patient_id,time,vital,value,unit\n"


@pytest.mark.parametrize("body,match", [
    ("p1,2026-01-01T00:00:00+01:00,heart_rat,120,/min\n", "unknown vital signs.*did you mean"),
    ("p1,2026-01-01T00:00:00+01:00,temperature,99.1,[degF]\n", "non-canonical units"),
    ("p1,2026-01-01T00:00:00+01:00,heart_rate,fast,/min\n", "non-numeric values"),
    ("p1,2026-01-01T00:00:00,heart_rate,120,/min\n", "times without a UTC offset"),
    ("p1,2026-13-45T00:00:00+01:00,heart_rate,120,/min\n", "unparseable times"),
])
def test_read_vitals__bad_rows_raise_without_values(tmp_path, body, match):
    with pytest.raises(SchemaError, match=match) as e:
        read_vitals(_write(tmp_path, HEAD + body))
    text = str(e.value).replace(str(tmp_path), "<tmp>")  # tmp folders carry numbers
    assert "p1" not in text and "120" not in text


def test_read_vitals__missing_column_or_file_raises(tmp_path):
    with pytest.raises(SchemaError, match="lacks required columns.*unit"):
        read_vitals(_write(tmp_path, "patient_id,time,vital,value\n"))
    with pytest.raises(InputFileNotFoundError, match="vitals table not found"):
        read_vitals(tmp_path / "nope.csv")


def test_read_patients_and_events__invalid_tables_raise(tmp_path):
    with pytest.raises(SchemaError, match="invalid patients table"):
        read_patients(_write(tmp_path, "patient_id,age_years,sex\na,-3,F\n", "p.csv"))
    with pytest.raises(InputFileNotFoundError, match="patients table not found"):
        read_patients(tmp_path / "none.csv")
    with pytest.raises(SchemaError, match="invalid events table"):
        read_events(_write(tmp_path, "patient_id,deterioration,onset_time\na,1,\n", "e.csv"))
    with pytest.raises(InputFileNotFoundError, match="events table not found"):
        read_events(tmp_path / "none.csv")
    ok = read_events(_write(tmp_path, "patient_id,deterioration,onset_time\n"
                                      "a,1,1970-01-01T02:00:00+01:00\nb,0,\n", "e.csv"))
    assert ok["onset_us"].tolist() == [H, -1]
