"""Sliding-window features of vital signs, and deterioration labels, for early-warning models.

Input is the canonical long table of :mod:`secured_bio.telemetry` (``patient_id,time,vital,
value,unit``; UCUM units; ISO 8601 times with a UTC offset), the patients table
(``patient_id,age_years,sex``) and, for labels, the events table
(``patient_id,deterioration,onset_time``), as written by ``secured-bio telemetry ingest`` and
:func:`secured_bio.testing.simulate_vitals`.

One feature row is made per patient and *observation time* (each distinct time at which any
vital of the patient was measured); a row at time ``t`` sees only observations at or before
``t``.  Per vital ``v`` and window ``w`` (hours, default 2 and 6) the columns are

========================  =================================================================
``age_years``             age (years)
``{v}_z``                 age-normalised z-score of the last value, carried forward at most
                          ``carry_hours`` (NaN beyond: the value is stale)
``{v}_missing``           1 when ``{v}_z`` is NaN (no recent value), else 0
``{v}_mean_{w}h``         mean z-score of the observations in the window ``(t - w, t]``
``{v}_min_{w}h``          minimum z-score in the window
``{v}_max_{w}h``          maximum z-score in the window
``{v}_slope_{w}h``        least-squares slope of z-score on time (SD per hour); NaN with
                          fewer than two observations at distinct times
========================  =================================================================

Means and slopes are rounded to a grid of 2**-20 (about 1e-6 SD, far below measurement
precision; :data:`QUANTUM`), so that the incremental running sums of
:mod:`secured_bio.telemetry.stream` and the direct sums here give identical features despite
their different summation order (a tree split can sit exactly on a training value).

Window statistics are computed on z-scores, ``(value - median(age)) / sd(age)``, with the
age norms of :func:`vital_norms`, so that one model serves infants and adolescents alike.

Labels (:func:`label_rows`): a row at time ``t`` is positive when the patient's deterioration
onset falls in ``(t, t + horizon_hours]``.  Rows at or after the onset are **dropped**: the
model must predict a deterioration before it happens, and rows during an evolving episode would
reward detecting what clinicians already see.  :func:`time_split` validates by time: within each
site, the patients admitted earliest train and those admitted latest test.

:mod:`secured_bio.telemetry.stream` computes exactly these features incrementally.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from secured_bio._inputs import read_table
from secured_bio.errors import InputFileNotFoundError, SchemaError, did_you_mean
from secured_bio.telemetry.norms import vital_norms

__all__ = [
    "QUANTUM",
    "VITAL_UNITS",
    "DEFAULT_WINDOWS",
    "feature_names",
    "vital_norms",
    "read_vitals",
    "read_patients",
    "read_events",
    "wide_table",
    "window_features",
    "label_rows",
    "site_features",
    "time_split",
    "to_microseconds",
]

logger = logging.getLogger(__name__)

#: Canonical UCUM unit of each vital sign (FHIR R4 vital-signs profile), in feature order.
VITAL_UNITS: dict[str, str] = {
    "heart_rate": "/min",
    "respiratory_rate": "/min",
    "spo2": "%",
    "temperature": "Cel",
    "systolic_bp": "mm[Hg]",
    "diastolic_bp": "mm[Hg]",
}

#: Default window lengths in hours.
DEFAULT_WINDOWS: tuple[float, ...] = (2.0, 6.0)

_US_PER_HOUR = 3_600_000_000
#: Grid of window means and slopes: ``floor(x * QUANTUM + 0.5) / QUANTUM`` (a power of two,
#: so the scaling is exact).
QUANTUM = float(2**20)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OFFSET = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")


def _wname(w: float) -> str:
    return f"{float(w):g}h"


def feature_names(windows: Sequence[float] = DEFAULT_WINDOWS) -> list[str]:
    """Return the model's feature columns, in order, for the given windows (hours).

    Examples
    --------
    >>> names = feature_names((2,))
    >>> len(names), names[:4]
    (37, ['age_years', 'heart_rate_z', 'heart_rate_missing', 'heart_rate_mean_2h'])
    """
    names = ["age_years"]
    for v in VITAL_UNITS:
        names += [f"{v}_z", f"{v}_missing"]
        for w in windows:
            names += [f"{v}_{s}_{_wname(w)}" for s in ("mean", "min", "max", "slope")]
    return names


def to_microseconds(when: datetime) -> int:
    """Microseconds since 1970-01-01 UTC of an aware datetime (exact integer arithmetic).

    Examples
    --------
    >>> to_microseconds(datetime.fromisoformat("1970-01-01T01:00:00+01:00"))
    0
    """
    return (when - _EPOCH) // timedelta(microseconds=1)


def _check_file(path: Path, what: str, hint: str) -> None:
    if not path.is_file():
        raise InputFileNotFoundError(f"{what} not found", where=str(path), expected=hint,
                                     got="no such file", fix="check the path")


def _check_columns(df: pd.DataFrame, needed: Sequence[str], where: str) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise SchemaError("table lacks required columns", where=where,
                          expected=", ".join(needed), got=f"missing {', '.join(missing)}",
                          fix="write it with `secured-bio telemetry ingest` or fix the header")


def _parse_times(s: pd.Series, where: str) -> np.ndarray:
    """ISO 8601 strings with offsets -> int64 microseconds since the epoch (UTC)."""
    s = s.astype(str).str.strip()
    bad = ~s.str.contains(_OFFSET)
    if bad.any():
        raise SchemaError("times without a UTC offset", where=where,
                          expected="ISO 8601 times with an offset (e.g. +01:00 or Z)",
                          got=f"{int(bad.sum())} of {len(s)} times without one",
                          fix="add the offset of the clock that recorded them")
    try:
        ts = pd.to_datetime(s, utc=True, format="ISO8601")
    except (ValueError, TypeError) as e:
        raise SchemaError("unparseable times", where=where, expected="ISO 8601 times",
                          got=f"{len(s)} times, some malformed",
                          fix="write times as YYYY-MM-DDThh:mm:ss+hh:mm") from e
    return ts.to_numpy(dtype="datetime64[us]").astype(np.int64)


def read_vitals(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate a canonical long vitals table.

    Parameters
    ----------
    path
        CSV with columns ``patient_id,time,vital,value,unit``.

    Returns
    -------
    pandas.DataFrame
        Columns ``patient_id`` (str), ``time_us`` (int64 microseconds since the epoch, UTC),
        ``vital``, ``value`` (float64), in file order.

    Raises
    ------
    InputFileNotFoundError
        If the file does not exist.
    SchemaError
        If a column is missing, a vital is unknown, a unit is not the canonical UCUM unit, a
        value is not a finite number, or a time lacks its UTC offset.

    Examples
    --------
    >>> import io
    >>> from secured_bio.testing import simulate_vitals
    >>> import tempfile
    >>> c = simulate_vitals(tempfile.mkdtemp(), n_sites=1, patients_per_site=2, hours=2)
    >>> read_vitals(c.vitals_paths[0]).columns.tolist()
    ['patient_id', 'time_us', 'vital', 'value']
    """
    p = Path(path)
    _check_file(p, "vitals table", "a CSV patient_id,time,vital,value,unit")
    df = read_table(p, "vitals table", dtype=str, keep_default_na=False)
    where = str(p)
    _check_columns(df, ("patient_id", "time", "vital", "value", "unit"), where)
    unknown = sorted(set(df["vital"]) - set(VITAL_UNITS))
    if unknown:
        hint = did_you_mean(unknown[0], VITAL_UNITS)
        raise SchemaError(
            "unknown vital signs", where=f"{where}:vital",
            expected=", ".join(VITAL_UNITS),
            got=f"{len(unknown)} unknown names, e.g. {unknown[0]!r}"
                + (f" (did you mean {hint!r}?)" if hint else ""),
            fix="rename them or run `secured-bio telemetry ingest` to map codes")
    bad_unit = df["unit"] != df["vital"].map(VITAL_UNITS)
    if bad_unit.any():
        raise SchemaError("vital signs in non-canonical units", where=f"{where}:unit",
                          expected="UCUM /min, %, Cel, mm[Hg] (see VITAL_UNITS)",
                          got=f"{int(bad_unit.sum())} rows in other units",
                          fix="normalise units with `secured-bio telemetry ingest`")
    value = pd.to_numeric(df["value"], errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(value).all():
        raise SchemaError("non-numeric values", where=f"{where}:value",
                          expected="finite numbers",
                          got=f"{int((~np.isfinite(value)).sum())} non-numeric rows",
                          fix="drop or repair those rows")
    return pd.DataFrame({"patient_id": df["patient_id"].astype(str),
                         "time_us": _parse_times(df["time"], f"{where}:time"),
                         "vital": df["vital"], "value": value})


def read_patients(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read ``patient_id,age_years,sex``; index patient_id.

    Raises
    ------
    InputFileNotFoundError
        If the file does not exist.
    SchemaError
        If a column is missing, an age is not a number in [0, 120] or an ID repeats.
    """
    p = Path(path)
    _check_file(p, "patients table", "a CSV patient_id,age_years,sex")
    df = read_table(p, "patients table", dtype={"patient_id": str, "sex": str},
                    keep_default_na=False)
    _check_columns(df, ("patient_id", "age_years", "sex"), str(p))
    age = pd.to_numeric(df["age_years"], errors="coerce")
    bad = ~age.between(0, 120)
    if bad.any() or df["patient_id"].duplicated().any():
        raise SchemaError("invalid patients table", where=str(p),
                          expected="unique patient IDs and ages in years in [0, 120]",
                          got=f"{int(bad.sum())} bad ages, "
                              f"{int(df['patient_id'].duplicated().sum())} repeated IDs",
                          fix="repair the patients table")
    return pd.DataFrame({"age_years": age.to_numpy(dtype=float), "sex": df["sex"].to_numpy()},
                        index=pd.Index(df["patient_id"], name="patient_id"))


def read_events(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read ``patient_id,deterioration,onset_time``; index patient_id, column ``onset_us``.

    ``onset_us`` is the onset in microseconds since the epoch (UTC), or -1 without one.

    Raises
    ------
    InputFileNotFoundError
        If the file does not exist.
    SchemaError
        If a column is missing, ``deterioration`` is not 0/1, or a deteriorating patient lacks
        an onset time.
    """
    p = Path(path)
    _check_file(p, "events table", "a CSV patient_id,deterioration,onset_time")
    df = read_table(p, "events table", dtype=str, keep_default_na=False)
    _check_columns(df, ("patient_id", "deterioration", "onset_time"), str(p))
    det = df["deterioration"].str.strip()
    has = df["onset_time"].str.strip() != ""
    bad = ~det.isin(("0", "1")) | ((det == "1") & ~has)
    if bad.any():
        raise SchemaError("invalid events table", where=str(p),
                          expected="deterioration 0/1 and an onset_time when it is 1",
                          got=f"{int(bad.sum())} invalid rows", fix="repair the events table")
    onset = np.full(len(df), -1, dtype=np.int64)
    pos = (det == "1").to_numpy()
    if pos.any():
        onset[pos] = _parse_times(df.loc[pos, "onset_time"], f"{p}:onset_time")
    return pd.DataFrame({"onset_us": onset}, index=pd.Index(df["patient_id"], name="patient_id"))


def _grid(x: np.ndarray) -> np.ndarray:
    """Round to the :data:`QUANTUM` grid (NaN stays NaN); the stream uses the same operations."""
    return np.floor(x * QUANTUM + 0.5) / QUANTUM


def _carried(o: np.ndarray, x: np.ndarray, rows: np.ndarray, carry: int) -> np.ndarray:
    """Last value of ``x`` (observed at sorted times ``o``) at each row time, within carry."""
    last = np.full(len(rows), np.nan)
    if len(o) == 0:
        return last
    idx = np.searchsorted(o, rows, side="right") - 1
    ok = idx >= 0
    ok[ok] &= rows[ok] - o[idx[ok]] <= carry
    last[ok] = x[idx[ok]]
    return last


def wide_table(vitals: pd.DataFrame, *, carry_hours: float = 4.0) -> pd.DataFrame:
    """One row per patient and observation time; each vital's last value carried forward.

    A value is carried forward at most ``carry_hours``; older values give NaN.

    Parameters
    ----------
    vitals
        Long table from :func:`read_vitals`.
    carry_hours
        Longest carry-forward (hours).

    Returns
    -------
    pandas.DataFrame
        ``patient_id``, ``time_us`` and one column per vital of :data:`VITAL_UNITS`.

    Examples
    --------
    >>> v = pd.DataFrame({"patient_id": ["a"] * 3, "time_us": [0, 3_600_000_000, 36e8 * 6],
    ...                   "vital": ["spo2", "heart_rate", "heart_rate"],
    ...                   "value": [97.0, 120.0, 130.0]})
    >>> wide_table(v, carry_hours=4)[["spo2", "heart_rate"]].to_numpy().tolist()
    [[97.0, nan], [97.0, 120.0], [nan, 130.0]]
    """
    out = []
    carry = round(carry_hours * _US_PER_HOUR)
    for pid, g in vitals.groupby("patient_id", sort=False):
        g = g.sort_values("time_us", kind="stable")
        rows = np.unique(g["time_us"].to_numpy(dtype=np.int64))
        cols: dict[str, object] = {"patient_id": pid, "time_us": rows}
        for v in VITAL_UNITS:
            gv = g[g["vital"] == v]
            o = gv["time_us"].to_numpy(dtype=np.int64)
            x = gv["value"].to_numpy(dtype=float)
            cols[v] = _carried(o, x, rows, carry)
        out.append(pd.DataFrame(cols))
    if not out:
        return pd.DataFrame(columns=["patient_id", "time_us", *VITAL_UNITS])
    return pd.concat(out, ignore_index=True)


def window_features(
    vitals: pd.DataFrame,
    patients: pd.DataFrame,
    *,
    windows: Sequence[float] = DEFAULT_WINDOWS,
    carry_hours: float = 4.0,
) -> pd.DataFrame:
    """Compute the features of the module docstring, one row per patient and time.

    Parameters
    ----------
    vitals
        Long table from :func:`read_vitals`.
    patients
        Table from :func:`read_patients` (index patient_id; ``age_years``, ``sex``).
    windows
        Window lengths in hours.
    carry_hours
        Longest carry-forward of the last value (hours).

    Returns
    -------
    pandas.DataFrame
        ``patient_id``, ``time_us``, ``sex`` then :func:`feature_names` columns (float64).

    Raises
    ------
    SchemaError
        If a patient of the vitals table is not in the patients table.

    Examples
    --------
    >>> v = pd.DataFrame({"patient_id": ["a"] * 3, "time_us": [0, 36e8, 72e8],
    ...                   "vital": ["spo2"] * 3, "value": [98.0, 97.0, 96.0]})
    >>> p = pd.DataFrame({"age_years": [5.0], "sex": ["F"]}, index=pd.Index(["a"]))
    >>> f = window_features(v, p, windows=(2,))
    >>> f["spo2_slope_2h"].tolist(), f["spo2_mean_2h"].tolist()
    ([nan, -1.0, -1.0], [0.0, -0.5, -1.5])
    """
    unknown = ~vitals["patient_id"].isin(patients.index)
    if unknown.any():
        raise SchemaError("patients without age", where="patients table",
                          expected="a row for every patient of the vitals table",
                          got=f"{vitals.loc[unknown, 'patient_id'].nunique()} patients missing",
                          fix="add them to patients.csv")
    carry = round(carry_hours * _US_PER_HOUR)
    wins = [(w, round(float(w) * _US_PER_HOUR)) for w in windows]
    frames = []
    for pid, g in vitals.groupby("patient_id", sort=False):
        g = g.sort_values("time_us", kind="stable")
        age = float(patients.at[pid, "age_years"])
        norms = vital_norms(age)
        rows = np.unique(g["time_us"].to_numpy(dtype=np.int64))
        origin = int(rows[0])
        n = len(rows)
        cols: dict[str, np.ndarray] = {"age_years": np.full(n, age)}
        for v in VITAL_UNITS:
            gv = g[g["vital"] == v]
            o = gv["time_us"].to_numpy(dtype=np.int64)
            med, sd = norms[v]
            z = (gv["value"].to_numpy(dtype=float) - med) / sd
            last = _carried(o, z, rows, carry)
            cols[f"{v}_z"] = last
            cols[f"{v}_missing"] = np.isnan(last).astype(float)
            th = (o - origin) / _US_PER_HOUR
            for w, wus in wins:
                # Direct (non-incremental) computation: membership matrix rows x observations.
                m = (o[None, :] <= rows[:, None]) & (o[None, :] > rows[:, None] - wus)
                k = m.sum(axis=1)
                with np.errstate(invalid="ignore", divide="ignore"):
                    mean = np.where(m, z, 0.0).sum(axis=1) / k
                    tbar = np.where(m, th, 0.0).sum(axis=1) / k
                    dt = np.where(m, th[None, :] - tbar[:, None], 0.0)
                    dz = np.where(m, z[None, :] - mean[:, None], 0.0)
                    sxx = (dt * dt).sum(axis=1)
                    slope = np.where(sxx > 0, (dt * dz).sum(axis=1) / sxx, np.nan)
                empty = k == 0
                mn = np.where(m, z, np.inf).min(axis=1, initial=np.inf)
                mx = np.where(m, z, -np.inf).max(axis=1, initial=-np.inf)
                name = _wname(w)
                cols[f"{v}_mean_{name}"] = np.where(empty, np.nan, _grid(mean))
                cols[f"{v}_min_{name}"] = np.where(empty, np.nan, mn)
                cols[f"{v}_max_{name}"] = np.where(empty, np.nan, mx)
                cols[f"{v}_slope_{name}"] = _grid(slope)
        f = pd.DataFrame(cols)[feature_names(windows)]
        f.insert(0, "sex", str(patients.at[pid, "sex"]))
        f.insert(0, "time_us", rows)
        f.insert(0, "patient_id", pid)
        frames.append(f)
    if not frames:
        return pd.DataFrame(columns=["patient_id", "time_us", "sex", *feature_names(windows)])
    return pd.concat(frames, ignore_index=True)


def label_rows(
    features: pd.DataFrame,
    events: pd.DataFrame,
    *,
    horizon_hours: float = 6.0,
    event_delay_hours: float = 0.0,
) -> pd.DataFrame:
    """Add ``label`` and ``hours_to_onset``; drop rows at or after the event to predict.

    The event to predict is at ``onset + event_delay_hours`` (default: the recorded onset).
    ``label`` is 1 when the event is in ``(t, t + horizon_hours]``; ``hours_to_onset`` is
    ``event - t`` in hours for patients who deteriorate (NaN otherwise).  Rows at or after
    the event are dropped: the model must warn before it.

    ``event_delay_hours`` serves data whose recorded onset is the *start* of a physiological
    change rather than the clinical event (rapid-response call, PICU transfer) that follows it:
    in :func:`secured_bio.testing.simulate_vitals` the change is a sigmoid ramp that is 8 % of
    the way at the onset and 92 % six hours later, so before the recorded onset there is
    nothing to predict from, and a delay of about 6 h makes the event the clinical decompensation.

    Raises
    ------
    SchemaError
        If a patient of the features has no row in the events table.

    Examples
    --------
    >>> f = pd.DataFrame({"patient_id": ["a"] * 4, "time_us": [0, 36e8, 72e8, 108e8]})
    >>> e = pd.DataFrame({"onset_us": [72e8]}, index=pd.Index(["a"]))
    >>> label_rows(f, e, horizon_hours=1)[["label", "hours_to_onset"]].to_numpy().tolist()
    [[0.0, 2.0], [1.0, 1.0]]
    """
    unknown = ~features["patient_id"].isin(events.index)
    if unknown.any():
        raise SchemaError("patients without an events row", where="events table",
                          expected="a row for every patient with vitals",
                          got=f"{features.loc[unknown, 'patient_id'].nunique()} patients missing",
                          fix="add them to events.csv with deterioration 0 or 1")
    onset = events["onset_us"].reindex(features["patient_id"]).to_numpy(dtype=np.int64)
    t = features["time_us"].to_numpy(dtype=np.int64)
    has = onset >= 0
    onset = np.where(has, onset + round(event_delay_hours * _US_PER_HOUR), onset)
    keep = ~has | (t < onset)
    hours = np.where(has, (onset - t) / _US_PER_HOUR, np.nan)
    out = features.loc[keep].copy()
    out["hours_to_onset"] = hours[keep]
    out["label"] = (hours[keep] <= horizon_hours).astype(float)
    logger.info("labelled %d rows (%d dropped at or after onset)", int(keep.sum()),
                int((~keep).sum()))
    return out.reset_index(drop=True)


def site_features(
    site_dir: str | os.PathLike[str],
    *,
    windows: Sequence[float] = DEFAULT_WINDOWS,
    carry_hours: float = 4.0,
    horizon_hours: float = 6.0,
    event_delay_hours: float = 0.0,
) -> pd.DataFrame:
    """Labelled features of one site folder (``vitals.csv``, ``patients.csv``, ``events.csv``).

    Adds a ``site`` column (the folder name).

    Raises
    ------
    InputFileNotFoundError
        If one of the three files is missing.
    SchemaError
        If a table is invalid (see the readers).

    Examples
    --------
    >>> import tempfile
    >>> from secured_bio.testing import simulate_vitals
    >>> c = simulate_vitals(tempfile.mkdtemp(), n_sites=1, patients_per_site=2, hours=4)
    >>> f = site_features(c.out_dir / "site1")
    >>> f.columns[:4].tolist(), f.columns[-2:].tolist()
    (['site', 'patient_id', 'time_us', 'sex'], ['hours_to_onset', 'label'])
    """
    d = Path(site_dir)
    f = window_features(read_vitals(d / "vitals.csv"), read_patients(d / "patients.csv"),
                        windows=windows, carry_hours=carry_hours)
    f = label_rows(f, read_events(d / "events.csv"), horizon_hours=horizon_hours,
                   event_delay_hours=event_delay_hours)
    f.insert(0, "site", d.name)
    return f


def time_split(
    features: pd.DataFrame, *, test_fraction: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """Split rows by admission time: earlier patients train, later patients test.

    Within each site (column ``site`` when present), patients are ordered by their first
    observation time and the last ``round(test_fraction * n)`` of them (at least one when the
    site has two or more patients) form the test set, all their rows included.  No patient is
    in both sets, and no test patient was admitted before a training patient of the same site.

    Returns
    -------
    tuple of numpy.ndarray
        Boolean masks ``(train, test)`` over the rows.

    Examples
    --------
    >>> f = pd.DataFrame({"patient_id": ["a", "b", "b", "c"], "time_us": [5, 1, 2, 9]})
    >>> train, test = time_split(f, test_fraction=0.34)
    >>> f["patient_id"][test].tolist()
    ['c']
    """
    site = features["site"] if "site" in features.columns else pd.Series(
        "", index=features.index)
    first = features.groupby([site.rename("_s"), features["patient_id"]],
                             sort=False)["time_us"].min()
    test_ids: set[tuple[object, object]] = set()
    for _, g in first.groupby(level=0, sort=False):
        order = g.sort_values(kind="stable")
        k = int(round(test_fraction * len(order)))
        if len(order) >= 2:
            k = min(max(k, 1), len(order) - 1)
        test_ids.update(order.index[len(order) - k:] if k else [])
    key = list(zip(site, features["patient_id"], strict=True))
    test = np.array([t in test_ids for t in key], dtype=bool)
    return ~test, test
