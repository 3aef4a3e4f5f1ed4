"""Bedside PEWS: every age-band boundary and every threshold, from the table and by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from secured_bio.errors import ConfigError, SchemaError
from secured_bio.telemetry.pews import (
    AGE_BANDS,
    BEDSIDE_PEWS,
    PEWS_ITEMS,
    VITAL_ITEMS,
    age_band,
    item_score,
    score_pews,
    write_scores,
)

STEP = 0.5  # values just across a cut-off: vitals are recorded to 1 decimal or better

# An age inside each band (not on a boundary).
BAND_AGES = (0.1, 0.5, 2.0, 8.0, 15.0)


def _tiers(item: str, band: int) -> dict[str, list[tuple[int, str, float]]]:
    """The table's conditions split by direction (high: > / >=, low: < / <=), by sub-score."""
    conds = BEDSIDE_PEWS[item][band]
    return {d: sorted((c for c in conds if c[1][0] == d), key=lambda c: c[0]) for d in "><"}


def _threshold_cases():
    for item in BEDSIDE_PEWS:
        for band in range(len(AGE_BANDS)):
            for direction, tiers in _tiers(item, band).items():
                for k, (pts, op, t) in enumerate(tiers):
                    prev = tiers[k - 1][0] if k else 0
                    yield pytest.param(item, band, direction, pts, op, t, prev,
                                       id=f"{item}-band{band}-{op}{t:g}")


def test_table__every_row_is_monotone_and_scores_are_0_1_2_4() -> None:
    for item in BEDSIDE_PEWS:
        assert len(BEDSIDE_PEWS[item]) == len(AGE_BANDS)
        for band in range(len(AGE_BANDS)):
            tiers = _tiers(item, band)
            hi = [t for _, _, t in tiers[">"]]
            lo = [t for _, _, t in tiers["<"]]
            assert hi == sorted(hi) and lo == sorted(lo, reverse=True)
            assert {p for p, _, _ in BEDSIDE_PEWS[item][band]} <= {1, 2, 4}
            if hi:  # the normal range (score 0) is not empty
                assert lo[0] + STEP < hi[0] - STEP


@pytest.mark.parametrize(("item", "band", "direction", "pts", "op", "t", "prev"),
                         list(_threshold_cases()))
def test_item_score__both_sides_of_every_threshold(item: str, band: int, direction: str,
                                                   pts: int, op: str, t: float,
                                                   prev: int) -> None:
    # Inside the cut-off the item scores this tier; just outside, the tier below it.
    sign = 1 if direction == ">" else -1
    inside = t if op in (">=", "<=") else t + sign * STEP
    outside = t - sign * STEP if op in (">=", "<=") else t
    age = BAND_AGES[band]
    assert item_score(item, inside, age) == pts
    assert item_score(item, outside, age) == prev


def _band_edges():
    for i, (_, lo, _hi, lo_in, _) in enumerate(AGE_BANDS):
        if i == 0:
            continue
        yield pytest.param(i, lo, lo_in, id=f"edge{lo:g}")


@pytest.mark.parametrize(("band", "edge", "inclusive"), list(_band_edges()))
def test_age_band__both_sides_of_every_boundary(band: int, edge: float,
                                                inclusive: bool) -> None:
    eps = 1e-6
    assert age_band(edge) == (band if inclusive else band - 1)
    assert age_band(edge - eps) == band - 1
    assert age_band(edge + eps) == band


@pytest.mark.parametrize(("band", "edge", "inclusive"), list(_band_edges()))
def test_item_score__boundary_ages_use_the_right_table_row(band: int, edge: float,
                                                           inclusive: bool) -> None:
    # A heart rate that scores differently in the two adjacent bands tells which row is used.
    below, above = BEDSIDE_PEWS["heart_rate"][band - 1], BEDSIDE_PEWS["heart_rate"][band]

    def ref(conds, v):
        ops = {">=": v.__ge__, "<=": v.__le__, ">": v.__gt__, "<": v.__lt__}
        return max((p for p, op, t in conds if ops[op](t)), default=0)

    v = next(float(v) for v in range(20, 260) if ref(below, float(v)) != ref(above, float(v)))
    at_edge = above if inclusive else below
    assert item_score("heart_rate", v, edge) == ref(at_edge, v)
    assert item_score("heart_rate", v, edge - 1e-6) == ref(below, v)
    assert item_score("heart_rate", v, edge + 1e-6) == ref(above, v)


@pytest.mark.parametrize(("item", "value", "age", "expected"), [
    # Hand-transcribed from Parshuram et al. Crit Care 2009;13:R135, Table 1.
    ("heart_rate", 149, 0.1, 0), ("heart_rate", 150, 0.1, 1), ("heart_rate", 110, 0.1, 1),
    ("heart_rate", 111, 0.1, 0), ("heart_rate", 190, 0.1, 4), ("heart_rate", 80, 0.1, 4),
    ("heart_rate", 170, 0.5, 2), ("heart_rate", 69, 0.5, 4),
    ("heart_rate", 120, 3.0, 1), ("heart_rate", 60, 3.0, 4),
    ("heart_rate", 150, 8.0, 2), ("heart_rate", 151, 8.0, 4), ("heart_rate", 50, 8.0, 4),
    ("heart_rate", 50, 15.0, 1), ("heart_rate", 49, 15.0, 2), ("heart_rate", 140, 15.0, 4),
    ("systolic_bp", 45, 0.1, 4), ("systolic_bp", 46, 0.1, 2), ("systolic_bp", 125, 2.0, 2),
    ("systolic_bp", 75, 15.0, 4), ("systolic_bp", 76, 15.0, 2), ("systolic_bp", 129, 15.0, 0),
    ("respiratory_rate", 60, 0.1, 0), ("respiratory_rate", 61, 0.1, 1),
    ("respiratory_rate", 30, 0.1, 0), ("respiratory_rate", 29, 0.1, 1),
    ("respiratory_rate", 15, 0.5, 4), ("respiratory_rate", 12, 2.0, 4),
    ("respiratory_rate", 41, 8.0, 2), ("respiratory_rate", 16, 15.0, 0),
    ("respiratory_rate", 17, 15.0, 1), ("respiratory_rate", 9, 15.0, 4),
    ("spo2", 95, 5.0, 0), ("spo2", 94, 5.0, 1), ("spo2", 91, 5.0, 1), ("spo2", 90, 5.0, 2),
])
def test_item_score__hand_written_published_cases(item: str, value: float, age: float,
                                                  expected: int) -> None:
    assert item_score(item, value, age) == expected


def test_item_score__unknown_item_raises() -> None:
    with pytest.raises(ConfigError, match="not a vital-sign PEWS item.*did you mean 'spo2'"):
        item_score("sp02", 95, 5)


def test_item_score__nan_value_raises() -> None:
    with pytest.raises(SchemaError, match="heart_rate value is not finite"):
        item_score("heart_rate", math.nan, 5)


def test_age_band__negative_age_raises() -> None:
    with pytest.raises(SchemaError, match="age is not a non-negative number"):
        age_band(-0.5)


# ------------------------------------------------------------------------ score_pews
def _long(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["patient_id", "time", "vital", "value"])


def test_score_pews__uses_latest_value_within_window_and_lists_missing_items() -> None:
    v = _long([
        ("a", "2024-05-01T08:00:00+02:00", "heart_rate", 185.0),   # 10 y: 4
        ("a", "2024-05-01T08:00:00+02:00", "spo2", 99.0),
        ("a", "2024-05-01T09:00:00+02:00", "heart_rate", 100.0),   # replaces 185: 0
        ("a", "2024-05-01T11:00:00+02:00", "respiratory_rate", 45.0),  # 2
        ("a", "2024-05-01T13:00:00+02:00", "systolic_bp", 65.0),   # 4; spo2 > 4 h old
        ("a", "2024-05-01T13:00:00+02:00", "temperature", 39.0),   # not a PEWS item
    ])
    s = score_pews(v, {"a": 10.0}, window="4h")
    assert s["time"].tolist() == ["2024-05-01T08:00:00+02:00", "2024-05-01T09:00:00+02:00",
                                  "2024-05-01T11:00:00+02:00", "2024-05-01T13:00:00+02:00"]
    assert s["heart_rate"].tolist() == [4, 0, 0, 0]
    assert s["spo2"].isna().tolist() == [False, False, False, True]  # 08:00 + 4 h < 13:00
    assert s["pews"].tolist() == [4, 0, 2, 0 + 2 + 4]
    assert s["n_items"].tolist() == [2, 2, 3, 3]
    assert s["missing_items"].iloc[3] == "capillary_refill;respiratory_effort;spo2;" \
        "oxygen_therapy"  # in PEWS_ITEMS order
    for item in ("capillary_refill", "respiratory_effort", "oxygen_therapy"):
        assert s[item].isna().all()


def test_score_pews__window_is_inclusive_and_uses_instants_across_offsets() -> None:
    v = _long([("a", "2024-05-01T08:00:00+02:00", "spo2", 89.0),
               ("a", "2024-05-01T07:00:00-03:00", "heart_rate", 100.0)])  # 4 h later
    s = score_pews(v, {"a": 10.0}, window="4h")
    assert s["spo2"].tolist() == [2, 2]
    s = score_pews(v, {"a": 10.0}, window="3h59min")
    assert s["spo2"].isna().tolist() == [False, True]


def _reference(vitals: pd.DataFrame, ages: dict[str, float], hours: float) -> pd.DataFrame:
    """Slow, independent scoring: scan every earlier row for each patient and time."""
    inst = pd.to_datetime(vitals["time"], utc=True, format="ISO8601")
    rows = []
    for pid in sorted(vitals["patient_id"].unique()):
        mine = vitals[vitals["patient_id"] == pid].assign(instant=inst)
        for t in sorted(mine["instant"].unique()):
            total, n = 0, 0
            for item in VITAL_ITEMS:
                cand = mine[(mine["vital"] == item) & (mine["instant"] <= t)
                            & (mine["instant"] >= t - pd.Timedelta(hours=hours))]
                if len(cand):
                    total += item_score(item, cand.sort_values("instant")["value"].iloc[-1],
                                        ages[pid])
                    n += 1
            rows.append((pid, total, n))
    return pd.DataFrame(rows, columns=["patient_id", "pews", "n_items"])


def test_score_pews__demo_matches_a_slow_reference(tmp_path: Path) -> None:
    from secured_bio.testing import simulate_vitals

    c = simulate_vitals(tmp_path, n_sites=1, patients_per_site=4, hours=10, seed=2,
                        missing_rate=0.3)
    vitals = pd.read_csv(c.vitals_paths[0], dtype={"patient_id": str})
    ages_df = pd.read_csv(c.patients_paths[0], dtype={"patient_id": str})
    ages = dict(zip(ages_df["patient_id"], ages_df["age_years"], strict=True))
    got = score_pews(vitals, ages_df, window="2h")
    ref = _reference(vitals, ages, 2)
    pd.testing.assert_frame_equal(got[["patient_id", "pews", "n_items"]], ref,
                                  check_dtype=False)
    assert list(got.columns) == ["patient_id", "time", "pews", *PEWS_ITEMS, "n_items",
                                 "missing_items"]


def test_score_pews__patients_without_age_raise_without_ids() -> None:
    v = _long([("zq-secret-1", "2024-05-01T08:00:00Z", "spo2", 97.0)])
    with pytest.raises(SchemaError, match=r"patients without an age.*1 of 1") as info:
        score_pews(v, {"other": 3.0})
    assert "zq-secret-1" not in str(info.value)


def test_score_pews__invalid_ages_raise() -> None:
    v = _long([("a", "2024-05-01T08:00:00Z", "spo2", 97.0)])
    with pytest.raises(SchemaError, match="ages are missing or invalid.*1 missing"):
        score_pews(v, pd.DataFrame({"patient_id": ["a"], "age_years": [-2.0]}))
    with pytest.raises(SchemaError, match="ages table repeats patients"):
        score_pews(v, pd.DataFrame({"patient_id": ["a", "a"], "age_years": [2.0, 3.0]}))
    with pytest.raises(SchemaError, match="ages table lacks columns.*age_years"):
        score_pews(v, pd.DataFrame({"patient_id": ["a"]}))


def test_score_pews__bad_vitals_tables_raise() -> None:
    ok = _long([("a", "2024-05-01T08:00:00Z", "spo2", 97.0)])
    with pytest.raises(SchemaError, match="vitals table lacks columns.*value"):
        score_pews(ok.drop(columns="value"), {"a": 1.0})
    with pytest.raises(SchemaError, match="times without UTC offset"):
        score_pews(ok.assign(time="2024-05-01T08:00:00"), {"a": 1.0})
    with pytest.raises(SchemaError, match="times do not parse"):
        score_pews(ok.assign(time="2024-13-45T08:00:00Z"), {"a": 1.0})
    with pytest.raises(SchemaError, match="spo2 has non-canonical units"):
        score_pews(ok.assign(unit="1"), {"a": 1.0})
    with pytest.raises(SchemaError, match="vital values are not numbers.*1 missing"):
        score_pews(ok.assign(value=np.nan), {"a": 1.0})


@pytest.mark.parametrize("window", ["soon", "-1h", "0s"])
def test_score_pews__invalid_window_raises(window: str) -> None:
    v = _long([("a", "2024-05-01T08:00:00Z", "spo2", 97.0)])
    with pytest.raises(ConfigError, match="window"):
        score_pews(v, {"a": 1.0}, window=window)


def test_write_scores__round_trips(tmp_path: Path) -> None:
    v = _long([("a", "2024-05-01T08:00:00Z", "spo2", 89.0),
               ("a", "2024-05-01T09:00:00Z", "heart_rate", 200.0)])
    s = score_pews(v, {"a": 1.0})
    back = pd.read_csv(write_scores(s, tmp_path / "s.csv"), dtype={"patient_id": str},
                       keep_default_na=False, na_values=[""])
    assert back["pews"].tolist() == s["pews"].tolist()
    assert back["spo2"].tolist() == [2, 2]
    assert back["heart_rate"].isna().tolist() == [True, False]
