"""The Bedside Paediatric Early Warning System (Bedside PEWS) score, from its published table.

Source: Parshuram CS, Hutchison J, Middaugh K. *Development and initial validation of the
Bedside Paediatric Early Warning System score.* Crit Care 2009;13(4):R135,
doi:10.1186/cc7998, Table 1 (item sub-scores 0/1/2/4 by age group).  The seven retained
items are heart rate, systolic blood pressure, capillary refill time, respiratory rate,
respiratory effort, transcutaneous oxygen saturation and oxygen therapy (total 0-26).
Multicentre validation: Parshuram CS, et al. Crit Care 2011;15(4):R184,
doi:10.1186/cc10337.

The cut-offs below are transcribed from Table 1, including its irregularities, which are kept
exactly as printed rather than "corrected":

- heart rate, 4-12 years, sub-score 4 is ``> 150`` (strict; ``150`` scores 2);
- heart rate, > 12 years, sub-score 2 is ``< 50`` (strict; ``50`` scores 1 through ``<= 60``);
- respiratory rate, 3-12 months to > 12 years, sub-score 0 is printed ``>24 or <51`` (read as
  "and", the complement of the sub-score-1 row, like every other row).

Each item scores the highest sub-score whose condition holds (0 if none); the sub-score-0
("normal") ranges are exactly the complements of the sub-score-1 conditions.

**Verify before clinical use:** the SpO2 row (0: > 94 %, 1: 91-94 %, 2: <= 90 %) and the
non-vital items are from the score's usual description; the copy of Table 1 we checked
garbled that row, so its cut-offs were not confirmed against the printed table.

Age groups are printed "0-3 months, 3-12 months, 1-4 years, 4-12 years, > 12 years", with
shared end points.  With age in (continuous) years we use ``[0, 0.25)``, ``[0.25, 1)``,
``[1, 4]``, ``(4, 12]``, ``> 12``: a child of exactly 4 (12) years is in the younger group.

Only heart rate, systolic blood pressure, respiratory rate and SpO2 are vital signs; capillary
refill, respiratory effort and oxygen therapy are bedside observations absent from a vitals
table. :func:`score_pews` therefore returns a *partial* score (the sum of the items it could
score) and lists the missing items of every row, so that nobody mistakes it for the full
score.
"""

from __future__ import annotations

import logging
import math
import operator
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from secured_bio._atomic import atomic_write
from secured_bio.errors import ConfigError, SchemaError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "AGE_BANDS",
    "PEWS_ITEMS",
    "VITAL_ITEMS",
    "BEDSIDE_PEWS",
    "age_band",
    "item_score",
    "score_pews",
    "write_scores",
]

logger = logging.getLogger(__name__)

#: Age groups of Table 1: ``(label, lower, upper, lower_inclusive, upper_inclusive)`` in years.
AGE_BANDS: tuple[tuple[str, float, float, bool, bool], ...] = (
    ("0-<3 months", 0.0, 0.25, True, False),
    ("3-<12 months", 0.25, 1.0, True, False),
    ("1-4 years", 1.0, 4.0, True, True),
    (">4-12 years", 4.0, 12.0, False, True),
    (">12 years", 12.0, math.inf, False, False),
)

#: The seven Bedside PEWS items (maximum 4 + 4 + 4 + 4 + 4 + 2 + 4 = 26).
PEWS_ITEMS = ("heart_rate", "systolic_bp", "capillary_refill", "respiratory_rate",
              "respiratory_effort", "spo2", "oxygen_therapy")
#: Items computed from a vitals table (vital names of ``data_specs/vitals.yaml``).
VITAL_ITEMS = ("heart_rate", "systolic_bp", "respiratory_rate", "spo2")

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
}

Condition = tuple[int, str, float]  # (sub-score, operator, threshold)


def _hi_lo(t1: tuple[float, float], t2: tuple[float, float], t4: tuple[float, float],
           ops: tuple[tuple[str, str], ...] = ((">=", "<="),) * 3) -> tuple[Condition, ...]:
    """Conditions of one age row: ``>= hi or <= lo`` for sub-scores 1, 2 and 4."""
    out: list[Condition] = []
    for pts, (hi, lo), (op_hi, op_lo) in zip((1, 2, 4), (t1, t2, t4), ops, strict=True):
        out += [(pts, op_hi, hi), (pts, op_lo, lo)]
    return tuple(out)



#: Table 1 of Parshuram et al. 2009: ``{item: (conditions of each age band, in AGE_BANDS
#: order)}``; each condition is ``(sub-score, operator, threshold)`` in canonical units.
BEDSIDE_PEWS: Mapping[str, tuple[tuple[Condition, ...], ...]] = MappingProxyType({
    "heart_rate": (  # /min
        _hi_lo((150, 110), (180, 90), (190, 80)),
        _hi_lo((150, 100), (170, 80), (180, 70)),
        _hi_lo((120, 90), (150, 70), (170, 60)),
        _hi_lo((110, 70), (130, 60), (150, 50), ((">=", "<="), (">=", "<="), (">", "<="))),
        _hi_lo((100, 60), (120, 50), (140, 40), ((">=", "<="), (">=", "<"), (">=", "<="))),
    ),
    "systolic_bp": (  # mm[Hg]
        _hi_lo((80, 60), (100, 50), (130, 45)),
        _hi_lo((100, 80), (120, 70), (150, 60)),
        _hi_lo((110, 90), (125, 75), (160, 65)),
        _hi_lo((120, 90), (140, 80), (170, 70)),
        _hi_lo((130, 100), (150, 85), (190, 75)),
    ),
    "respiratory_rate": (  # /min
        _hi_lo((61, 29), (81, 19), (91, 15)),
        _hi_lo((51, 24), (71, 19), (81, 15)),
        _hi_lo((41, 19), (61, 15), (71, 12)),
        _hi_lo((31, 19), (41, 14), (51, 10)),
        _hi_lo((17, 11), (23, 10), (30, 9)),
    ),
    # %: 0 above 94, 1 for 91-94 (<= 94), 2 at or below 90; same for all ages.
    "spo2": (((1, "<=", 94), (2, "<=", 90)),) * 5,
})


def _check_age(age_years: float, where: str = "age_years") -> float:
    a = float(age_years)
    if not math.isfinite(a) or a < 0:
        raise SchemaError("age is not a non-negative number", where=where,
                          expected="an age in years >= 0", got="a negative or missing age",
                          fix="give every patient's age in years")
    return a


def age_band(age_years: float) -> int:
    """Return the index in :data:`AGE_BANDS` of an age in years.

    Parameters
    ----------
    age_years
        Age in years (>= 0).

    Returns
    -------
    int
        0 (< 3 months) to 4 (> 12 years).

    Raises
    ------
    SchemaError
        If the age is negative or not finite.

    Examples
    --------
    >>> [age_band(a) for a in (0.0, 0.25, 1.0, 4.0, 4.5, 12.0, 12.5)]
    [0, 1, 2, 2, 3, 3, 4]
    """
    a = _check_age(age_years)
    for i, (_, lo, hi, lo_in, hi_in) in enumerate(AGE_BANDS):
        if (a > lo or (lo_in and a == lo)) and (a < hi or (hi_in and a == hi)):
            return i
    raise AssertionError("age bands cover [0, inf)")  # pragma: no cover


def item_score(item: str, value: float, age_years: float) -> int:
    """Return the Bedside PEWS sub-score (0, 1, 2 or 4) of one vital-sign item.

    Parameters
    ----------
    item
        One of :data:`VITAL_ITEMS`.
    value
        The measurement in canonical units (``/min``, ``mm[Hg]``, ``%``).
    age_years
        The child's age in years.

    Returns
    -------
    int
        The highest sub-score whose condition holds, or 0.

    Raises
    ------
    ConfigError
        If ``item`` is not a vital-sign item.
    SchemaError
        If the age is negative, or the value is not finite.

    Examples
    --------
    >>> item_score("heart_rate", 185, 0.1), item_score("heart_rate", 185, 10)
    (2, 4)
    >>> item_score("spo2", 92, 5)
    1
    """
    if item not in BEDSIDE_PEWS:
        raise ConfigError("not a vital-sign PEWS item", where="item",
                          expected="one of " + ", ".join(VITAL_ITEMS), got=repr(item),
                          fix=did_you_mean(str(item), VITAL_ITEMS) or "use a vital name")
    v = float(value)
    if not math.isfinite(v):
        raise SchemaError(f"{item} value is not finite", where=item, expected="a number",
                          got="NaN or infinity", fix="drop missing measurements first")
    conds = BEDSIDE_PEWS[item][age_band(age_years)]
    return max((p for p, op, t in conds if _OPS[op](v, t)), default=0)


def _score_array(item: str, values: np.ndarray, bands: np.ndarray) -> np.ndarray:
    """Vectorised :func:`item_score`; NaN values give -1 (missing)."""
    out = np.zeros(values.shape, dtype=np.int64)
    for b, conds in enumerate(BEDSIDE_PEWS[item]):
        in_band = bands == b
        for pts, op, t in conds:
            hit = in_band & _OPS[op](values, t)
            out[hit] = np.maximum(out[hit], pts)
    out[np.isnan(values)] = -1
    return out


def _ages_map(ages: Any) -> dict[str, float]:
    import pandas as pd

    if isinstance(ages, pd.DataFrame):
        missing = {"patient_id", "age_years"} - set(ages.columns)
        if missing:
            raise SchemaError("ages table lacks columns", where="ages",
                              expected="columns patient_id, age_years",
                              got="missing " + ", ".join(sorted(missing)),
                              fix="give the demo's patients.csv or a patient_id,age_years table")
        ids = ages["patient_id"].astype(str)
        if ids.duplicated().any():
            raise SchemaError("ages table repeats patients", where="ages: patient_id",
                              expected="one row per patient",
                              got=f"{int(ids.duplicated().sum())} repeated rows",
                              fix="keep one age per patient")
        vals = pd.to_numeric(ages["age_years"], errors="coerce")
        pairs: Iterable[tuple[str, Any]] = zip(ids, vals, strict=True)
    else:
        pairs = ((str(k), v) for k, v in dict(ages).items())
    out: dict[str, float] = {}
    bad = 0
    for pid, v in pairs:
        try:
            out[pid] = _check_age(v)
        except (SchemaError, TypeError, ValueError):
            bad += 1
    if bad:
        raise SchemaError("ages are missing or invalid", where="ages: age_years",
                          expected="a number >= 0 for every patient",
                          got=f"{bad} missing, negative or non-numeric ages",
                          fix="correct the ages table")
    return out


def score_pews(
    vitals: pd.DataFrame,
    ages: pd.DataFrame | Mapping[str, float],
    *,
    window: str | Any = "4h",
) -> pd.DataFrame:
    r"""Score the (partial) Bedside PEWS at every measurement time of every patient.

    At each time a patient has any measurement, each item uses the most recent value of its
    vital measured at most ``window`` earlier (inclusive).  Items with no such value are
    missing: the ``pews`` column is the sum of the items that could be scored, and
    ``missing_items`` names the others (always including capillary refill, respiratory effort
    and oxygen therapy, which a vitals table does not hold).

    Parameters
    ----------
    vitals
        Long table ``patient_id, time, vital, value[, unit]`` (``data_specs/vitals.yaml``):
        times ISO 8601 with offset, canonical units. Other vitals are ignored.
    ages
        A table ``patient_id, age_years`` (the demo's ``patients.csv``) or a mapping
        ``{patient_id: age_years}``.
    window
        How old a value may be (a pandas Timedelta string, e.g. ``"4h"``).

    Returns
    -------
    pandas.DataFrame
        One row per patient and time, sorted: ``patient_id``, ``time`` (as given), ``pews``,
        one column per item of :data:`PEWS_ITEMS` (nullable integers, missing = NA),
        ``n_items`` and ``missing_items`` (``;``-separated item names).

    Raises
    ------
    SchemaError
        If columns are missing, a time has no offset or does not parse, a unit is not
        canonical, a scored value is not finite, or a patient has no valid age.
    ConfigError
        If ``window`` is not a positive duration.

    Examples
    --------
    >>> import pandas as pd
    >>> v = pd.DataFrame({"patient_id": ["p1", "p1", "p1"],
    ...                   "time": ["2024-05-01T08:00:00+02:00"] * 2
    ...                           + ["2024-05-01T09:00:00+02:00"],
    ...                   "vital": ["heart_rate", "spo2", "respiratory_rate"],
    ...                   "value": [185.0, 92.0, 20.0]})
    >>> s = score_pews(v, {"p1": 10.0})
    >>> s[["pews", "heart_rate", "spo2", "respiratory_rate", "n_items"]].values.tolist()
    [[5, 4, 1, <NA>, 2], [5, 4, 1, 0, 3]]
    >>> s["missing_items"].iloc[1]
    'systolic_bp;capillary_refill;respiratory_effort;oxygen_therapy'
    """
    import pandas as pd

    try:
        win = pd.Timedelta(window)
    except (ValueError, TypeError) as e:
        raise ConfigError("window is not a duration", where="window",
                          expected="e.g. '4h' or '30min'", got=repr(window)) from e
    if pd.isna(win) or win <= pd.Timedelta(0):
        raise ConfigError("window must be positive", where="window",
                          expected="a positive duration, e.g. '4h'", got=str(window))
    need = {"patient_id", "time", "vital", "value"}
    if not need <= set(vitals.columns):
        raise SchemaError("vitals table lacks columns", where="vitals",
                          expected="columns " + ", ".join(sorted(need)),
                          got="missing " + ", ".join(sorted(need - set(vitals.columns))),
                          fix="give the long table written by 'secured-bio telemetry ingest'")
    from secured_bio.telemetry.units import CANONICAL_UNITS

    df = vitals.loc[:, [c for c in ("patient_id", "time", "vital", "value", "unit")
                        if c in vitals.columns]].copy()
    df["patient_id"] = df["patient_id"].astype(str)
    times = df["time"].astype(str)
    no_offset = ~times.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True)
    if no_offset.any():
        raise SchemaError("times without UTC offset", where="vitals: time",
                          expected="ISO 8601 with offset", got=f"{int(no_offset.sum())} rows",
                          fix="ingest with 'secured-bio telemetry ingest'")
    try:
        df["instant"] = pd.to_datetime(times, utc=True, format="ISO8601")
    except (ValueError, TypeError) as e:
        raise SchemaError("times do not parse", where="vitals: time",
                          expected="ISO 8601 date-times with offset", got="unparseable times",
                          fix="ingest with 'secured-bio telemetry ingest'") from e
    if "unit" in df.columns:
        for item in VITAL_ITEMS:
            sel = df["vital"] == item
            wrong = int((df.loc[sel, "unit"] != CANONICAL_UNITS[item]).sum())
            if wrong:
                raise SchemaError(f"{item} has non-canonical units", where="vitals: unit",
                                  expected=f"UCUM '{CANONICAL_UNITS[item]}'",
                                  got=f"{wrong} rows in other units",
                                  fix="ingest with 'secured-bio telemetry ingest' to convert")
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    scored = df["vital"].isin(VITAL_ITEMS)
    bad = int((scored & ~np.isfinite(df["value"].to_numpy(dtype=float))).sum())
    if bad:
        raise SchemaError("vital values are not numbers", where="vitals: value",
                          expected="finite numbers", got=f"{bad} missing or non-numeric values",
                          fix="drop missing measurements")
    age_of = _ages_map(ages)
    pids = df["patient_id"].unique()
    no_age = [p for p in pids if p not in age_of]
    if no_age:
        raise SchemaError("patients without an age", where="ages",
                          expected="an age for every patient of the vitals table",
                          got=f"{len(no_age)} of {len(pids)} patients without one",
                          fix="add them to the ages table (patient_id,age_years)")

    grid = (df.sort_values(["instant", "patient_id"], kind="stable")
            .drop_duplicates(["patient_id", "instant"])[["patient_id", "instant", "time"]])
    bands = np.array([age_band(age_of[p]) for p in grid["patient_id"]], dtype=np.int64)
    out = grid.reset_index(drop=True)
    total = np.zeros(len(out), dtype=np.int64)
    n_items = np.zeros(len(out), dtype=np.int64)
    missing: list[list[str]] = [[] for _ in range(len(out))]
    for item in PEWS_ITEMS:
        if item not in VITAL_ITEMS:
            out[item] = pd.array([pd.NA] * len(out), dtype="Int64")
            for m in missing:
                m.append(item)
            continue
        sub = (df.loc[df["vital"] == item, ["patient_id", "instant", "value"]]
               .sort_values("instant", kind="stable"))
        merged = pd.merge_asof(out[["patient_id", "instant"]], sub, on="instant",
                               by="patient_id", direction="backward", tolerance=win)
        s = _score_array(item, merged["value"].to_numpy(dtype=float), bands)
        have = s >= 0
        total += np.where(have, s, 0)
        n_items += have
        out[item] = pd.array(np.where(have, s, 0), dtype="Int64")
        out.loc[~have, item] = pd.NA
        for i in np.flatnonzero(~have):
            missing[i].append(item)
    out["pews"] = total
    out["n_items"] = n_items
    out["missing_items"] = [";".join(m) for m in missing]
    out = out.sort_values(["patient_id", "instant"], kind="stable").reset_index(drop=True)
    cols = ["patient_id", "time", "pews", *PEWS_ITEMS, "n_items", "missing_items"]
    logger.info("scored Bedside PEWS at %d times of %d patients", len(out), len(pids))
    return out[cols]


def write_scores(scores: pd.DataFrame, out: str | os.PathLike[str]) -> Path:
    """Write :func:`score_pews` output as CSV, atomically (missing items are empty fields).

    Parameters
    ----------
    scores
        From :func:`score_pews`.
    out
        Output CSV path.

    Returns
    -------
    Path
        ``out``.

    Examples
    --------
    >>> import tempfile, pathlib, pandas as pd
    >>> v = pd.DataFrame({"patient_id": ["p1"], "time": ["2024-05-01T08:00:00Z"],
    ...                   "vital": ["spo2"], "value": [89.0]})
    >>> p = write_scores(score_pews(v, {"p1": 3}), pathlib.Path(tempfile.mkdtemp()) / "s.csv")
    >>> p.read_text().splitlines()[1][:40]
    'p1,2024-05-01T08:00:00Z,2,,,,,,2,,1,hear'
    """
    target = Path(out)
    with atomic_write(target, newline="") as fh:
        scores.to_csv(fh, index=False, lineterminator="\n")
    return target
