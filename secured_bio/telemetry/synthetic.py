"""Synthetic paediatric vital-sign trajectories fitted on real telemonitoring data.

:func:`fit_vitals_model` learns a small statistical model of the canonical long vitals table
(``patient_id,time,vital,value,unit``, ``data_specs/vitals.yaml``) with its patients
(``patient_id,age_years,sex``) and events (``patient_id,deterioration,onset_time``) tables;
:meth:`VitalsModel.sample` draws new patients from it and :func:`write_synthetic_vitals` writes
them in the same layouts (plus, on request, a FHIR R4 Bundle).  :func:`evaluate_vitals`
measures fidelity, utility (train on synthetic, test on real) and privacy (membership
inference, copies).

The model works on age-normalised z-scores ``z = (value - median(age)) / sd(age)`` with the
norms of :func:`secured_bio.telemetry.norms.vital_norms`.  For each vital ``v`` and patient
``i`` at time ``t`` (hours)::

    z_iv(t) = mu_v + b_iv + x_iv(t) + A_v cos(2 pi (clock(t) - peak_v) / 24) + e_iv(t)
              + s_iv * shift_v(t - onset_i)

- ``b_iv``: the patient's offset, normal with SD ``offset_sd`` (``tau``), correlated across
  vitals by ``offset_corr``;
- ``x_iv``: an Ornstein-Uhlenbeck process (the continuous-time AR(1)) with rate ``ou_rate``
  per hour (lag-1 coefficient ``exp(-rate * dt)`` for a gap ``dt``, any sampling) and
  stationary SD ``process_sd``; its innovations are correlated across vitals by
  ``innovation_corr``;
- a 24-hour harmonic of the local clock time (amplitude ``A_v``, peak hour);
- ``e_iv``: measurement noise with SD ``noise_sd`` (including rounding);
- for patients who deteriorate, a shift profile ``shift_v`` (mean z-shift per bin of hours
  since onset, from 6 h before to 48 h after) scaled by a severity ``s_iv`` whose SD across
  patients is ``severity_sd`` (one shared normal draw per patient, so vitals worsen together).

Fitting (all estimators handle irregular sampling and missing values):

1. *Baseline data* are all measurements except those of deteriorating patients from 6 h before
   their onset on (those fit the episode profile).
2. The harmonic is the within-patient (fixed-effects) least-squares fit of z on
   ``cos``/``sin`` of the clock hour; ``mu`` is the mean of what remains.
3. ``noise_sd``, ``process_sd`` and ``ou_rate`` are fitted to the empirical semivariogram of
   the within-patient residuals, ``gamma(h) = noise^2 + process^2 (1 - exp(-rate h))``, binned
   on geometric lags up to 24 h (Diggle, Heagerty, Liang & Zeger, *Analysis of Longitudinal
   Data*, 2nd ed. 2002, ch. 5): a grid over the rate and non-negative least squares for the
   two variances, weighted by pair counts.  ``offset_sd^2`` is the pooled residual variance
   minus the two (floored at 0).
4. ``innovation_corr``: correlation across vitals of ``r(t_k) - exp(-rate dt) r(t_{k-1})`` at
   consecutive measurement rounds; ``offset_corr``: correlation of the patients' mean
   residuals; both projected to the nearest correlation matrix (eigenvalues floored).
5. Missingness: per vital, the share of measurement rounds (distinct times of a patient)
   without it; blood pressure as a pair (both missing, only systolic, only diastolic).
   The sampling interval is the median gap between consecutive rounds.
6. The episode profile is an event-study regression (two-way fixed effects): residuals of
   deteriorating patients on indicators of the bins of hours since onset, with a fixed effect
   per patient, so each patient's own pre-episode level is the reference.  Bins with data of
   fewer than :data:`MIN_BIN_PATIENTS` patients are not estimated (the nearest estimated bin
   is used).  ``severity_sd`` is the between-patient SD of each patient's least-squares
   scaling of the mean profile, minus its estimated noise variance (method of moments).

**Privacy.**  The model holds only aggregate statistics: means, SDs, correlations, shares and
counts over several patients (age-band shares, sex shares, the mean and SD of where in the
stay onsets fall, per-bin patient counts).  It holds no patient's ID, age, time or value; a
bin of the episode profile is estimated only from at least :data:`MIN_BIN_PATIENTS` patients.
This is not differential privacy: with a handful of patients, aggregates still say something
about each of them; :func:`evaluate_vitals` measures membership inference.  For a formal
guarantee fit with :func:`secured_bio.telemetry.synthetic_dp.fit_vitals_model_dp`
(``synth vitals --epsilon E``): patient-level (epsilon, delta)-DP on a restructured fit.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from secured_bio._inputs import read_table
from secured_bio.errors import (
    ConfigError,
    FormatError,
    InputError,
    InputFileNotFoundError,
    SchemaError,
    did_you_mean,
)
from secured_bio.telemetry.features import VITAL_UNITS
from secured_bio.telemetry.norms import vital_norms

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "REPORT_FORMAT",
    "REPORT_FORMAT_VERSION",
    "MIN_PATIENTS",
    "MIN_MEASUREMENTS",
    "MIN_BIN_PATIENTS",
    "EPISODE_EDGES",
    "VitalParams",
    "VitalsModel",
    "SyntheticVitals",
    "fit_vitals_model",
    "save_vitals_model",
    "load_vitals_model",
    "write_synthetic_vitals",
    "plot_vitals",
    "vitals_figure",
    "evaluate_vitals",
    "read_cohort",
]

logger = logging.getLogger(__name__)

#: Format name and version of a saved model (:func:`save_vitals_model`).
FORMAT = "secured_bio.vitals_model"
FORMAT_VERSION = 1
#: Format name and version of :func:`evaluate_vitals`'s report.
REPORT_FORMAT = "secured_bio.synth_vitals_report"
REPORT_FORMAT_VERSION = 1
#: Fewest patients with vital signs to fit a model.
MIN_PATIENTS = 5
#: Fewest baseline measurements of each vital to fit a model.
MIN_MEASUREMENTS = 20
#: Fewest patients behind each estimated bin of the episode profile (and episodes to fit one).
MIN_BIN_PATIENTS = 3
#: Bin edges of the episode profile, hours since onset.
EPISODE_EDGES: tuple[float, ...] = (-6, -3, 0, 1, 2, 3, 4, 6, 8, 12, 18, 24, 36, 48)

_VITALS = tuple(VITAL_UNITS)
_DECIMALS = {"temperature": 1}
_US_PER_HOUR = 3_600_000_000
_US_PER_MIN = 60_000_000
_MAX_LAG_H = 24.0
_MAX_OBS_VARIOGRAM = 240  # per patient and vital: bounds the number of pairs
_AGE_EDGES = (0.0, 1.0, 2.0, 5.0, 10.0, 13.0, 16.0, 18.0)
_ONSET_DEFAULT = (0.45, 0.15)  # share of the stay: mean, SD (when too few episodes)
_OFFSET = re.compile(r"(Z|[+-]\d\d:?\d\d)$")
_ID_OK = re.compile(r"[A-Za-z0-9\-.]{1,40}")
_TAG = "secured_bio.synthetic_vitals/1"


# ------------------------------------------------------------------------------ model


@dataclass(frozen=True)
class VitalParams:
    """Fitted parameters of one vital sign (z-score units; see the module docstring).

    Attributes
    ----------
    mean
        Population mean z-score ``mu``.
    offset_sd
        SD of the patients' offsets ``tau``.
    ou_rate
        Ornstein-Uhlenbeck rate per hour (time constant ``1 / ou_rate`` hours).
    process_sd
        Stationary SD of the fluctuation.
    noise_sd
        Measurement-noise SD.
    circadian_amplitude, circadian_peak_hour
        The 24-hour harmonic: amplitude (z) and local clock hour of its peak.
    missing_rate
        Share of measurement rounds without this vital.
    n_measurements
        Baseline measurements used.
    """

    mean: float
    offset_sd: float
    ou_rate: float
    process_sd: float
    noise_sd: float
    circadian_amplitude: float
    circadian_peak_hour: float
    missing_rate: float
    n_measurements: int

    @property
    def ar1_per_hour(self) -> float:
        """AR(1) coefficient over one hour, ``exp(-ou_rate)``."""
        return math.exp(-self.ou_rate)


@dataclass
class VitalsModel:
    """A fitted generator of paediatric vital-sign trajectories (aggregates only).

    Attributes
    ----------
    vitals
        :class:`VitalParams` of each vital, in the order of
        :data:`secured_bio.telemetry.features.VITAL_UNITS`.
    innovation_corr, offset_corr
        Correlation matrices across vitals (same order) of the fluctuation's innovations
        and of the patients' offsets.
    bp_missing
        Shares of rounds with ``both``, ``systolic_only`` or ``diastolic_only`` missing.
    interval_minutes
        Median minutes between measurement rounds; ``interval_quartiles`` the 25th/75th.
    utc_offset_minutes
        Most common UTC offset of the times (local clock for the circadian phase).
    age_edges, age_shares
        Age bands (years) and the share of patients in each.
    sex_shares
        Share of each ``sex`` code.
    deterioration_fraction
        Share of patients with a deterioration episode.
    onset_position
        Mean and SD of the onset's position in the stay (0 = first, 1 = last measurement).
    episode
        The episode profile (``edges_hours``, ``shift_mean``/``shift_sd`` per vital and bin,
        ``severity_sd`` per vital, ``patients_per_bin``, ``estimated``), or None when fewer
        than :data:`MIN_BIN_PATIENTS` episodes were available.
    n_patients, n_deteriorating, n_measurements
        What the model was fitted on (counts).
    stay_hours_median
        Median hours from a patient's first to last measurement.
    notes
        Free-text notes (e.g. the input had no UTC offsets).
    differential_privacy
        None for the ordinary fit (not differentially private); for
        :func:`secured_bio.telemetry.synthetic_dp.fit_vitals_model_dp` the guarantee: epsilon,
        delta, adjacency, clip bounds, budget split (rho and sigma per statistic group) and
        randomness.
    """

    vitals: dict[str, VitalParams]
    innovation_corr: list[list[float]]
    offset_corr: list[list[float]]
    bp_missing: dict[str, float]
    interval_minutes: float
    interval_quartiles: tuple[float, float]
    utc_offset_minutes: int
    age_edges: tuple[float, ...]
    age_shares: tuple[float, ...]
    sex_shares: dict[str, float]
    deterioration_fraction: float
    onset_position: tuple[float, float]
    episode: dict[str, Any] | None
    n_patients: int
    n_deteriorating: int
    n_measurements: int
    stay_hours_median: float
    notes: list[str] = field(default_factory=list)
    differential_privacy: dict[str, Any] | None = None

    # ------------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with format name and version (what :func:`save_vitals_model` writes)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "vital_order": list(_VITALS),
            "vitals": {v: {**p.__dict__} for v, p in self.vitals.items()},
            "innovation_corr": self.innovation_corr,
            "offset_corr": self.offset_corr,
            "bp_missing": self.bp_missing,
            "interval_minutes": self.interval_minutes,
            "interval_quartiles": list(self.interval_quartiles),
            "utc_offset_minutes": self.utc_offset_minutes,
            "age_edges": list(self.age_edges),
            "age_shares": list(self.age_shares),
            "sex_shares": self.sex_shares,
            "deterioration_fraction": self.deterioration_fraction,
            "onset_position": list(self.onset_position),
            "episode": self.episode,
            "n_patients": self.n_patients,
            "n_deteriorating": self.n_deteriorating,
            "n_measurements": self.n_measurements,
            "stay_hours_median": self.stay_hours_median,
            "notes": self.notes,
            "privacy": ("differentially private: ({:g}, {:g})-DP, {}".format(
                self.differential_privacy["epsilon"], self.differential_privacy["delta"],
                self.differential_privacy["adjacency"]) if self.differential_privacy
                else "aggregate statistics only (means, SDs, correlations, shares, counts); "
                     "no patient IDs, ages, times or values; NOT differentially private"),
            "differential_privacy": self.differential_privacy,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str = "model") -> VitalsModel:
        """Rebuild a model from :meth:`to_dict` output (format and version checked).

        Raises
        ------
        FormatError
            If the format name, version or a field is wrong.
        """
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise FormatError("not a vitals model", where=where, expected=f"format {FORMAT!r}",
                              got=repr(d.get("format")) if isinstance(d, dict) else "no object",
                              fix="pass a file written by save_vitals_model or "
                                  "`secured-bio synth vitals --model-out`")
        if d.get("format_version") != FORMAT_VERSION:
            raise FormatError("unsupported vitals model version", where=where,
                              expected=f"version {FORMAT_VERSION}",
                              got=f"version {d.get('format_version')!r}",
                              fix="upgrade secured_bio to read newer models, or refit")
        try:
            vitals = {v: VitalParams(**d["vitals"][v]) for v in _VITALS}
            model = cls(
                vitals=vitals,
                innovation_corr=[[float(x) for x in row] for row in d["innovation_corr"]],
                offset_corr=[[float(x) for x in row] for row in d["offset_corr"]],
                bp_missing={k: float(x) for k, x in d["bp_missing"].items()},
                interval_minutes=float(d["interval_minutes"]),
                interval_quartiles=(float(d["interval_quartiles"][0]),
                                    float(d["interval_quartiles"][1])),
                utc_offset_minutes=int(d["utc_offset_minutes"]),
                age_edges=tuple(float(x) for x in d["age_edges"]),
                age_shares=tuple(float(x) for x in d["age_shares"]),
                sex_shares={str(k): float(x) for k, x in d["sex_shares"].items()},
                deterioration_fraction=float(d["deterioration_fraction"]),
                onset_position=(float(d["onset_position"][0]), float(d["onset_position"][1])),
                episode=d["episode"],
                n_patients=int(d["n_patients"]),
                n_deteriorating=int(d["n_deteriorating"]),
                n_measurements=int(d["n_measurements"]),
                stay_hours_median=float(d["stay_hours_median"]),
                notes=[str(x) for x in d.get("notes", [])],
                differential_privacy=d.get("differential_privacy"),
            )
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise FormatError("vitals model is incomplete or malformed", where=where,
                              expected="every field written by save_vitals_model",
                              got=f"{type(e).__name__} on a field",
                              fix="refit the model") from e
        if np.asarray(model.innovation_corr).shape != (len(_VITALS), len(_VITALS)):
            raise FormatError("vitals model has a malformed correlation matrix", where=where,
                              expected=f"{len(_VITALS)} x {len(_VITALS)}", fix="refit the model")
        return model

    def describe(self) -> str:
        """Return a human-readable summary of the fitted parameters (no patient data).

        Examples
        --------
        >>> import tempfile
        >>> from secured_bio.testing import simulate_vitals
        >>> c = simulate_vitals(tempfile.mkdtemp(), n_sites=1, patients_per_site=8, hours=24)
        >>> m = fit_vitals_model(c.vitals_paths[0], c.patients_paths[0], c.events_paths[0])
        >>> m.describe().splitlines()[0]
        'Vitals model fitted on 8 patients (2 with deterioration), 1105 measurements'
        """
        lines = [
            f"Vitals model fitted on {self.n_patients} patients ({self.n_deteriorating} with "
            f"deterioration), {self.n_measurements} measurements",
            f"sampling interval {self.interval_minutes:g} min (quartiles "
            f"{self.interval_quartiles[0]:g}-{self.interval_quartiles[1]:g}), median stay "
            f"{self.stay_hours_median:.1f} h, UTC offset {self.utc_offset_minutes:+d} min",
            f"{'vital':<17}{'mean':>6}{'offset':>8}{'tau_h':>7}{'AR1/h':>7}{'proc':>6}"
            f"{'noise':>7}{'circ':>6}{'peak':>6}{'miss':>6}",
        ]
        for v, p in self.vitals.items():
            tau = 1.0 / p.ou_rate if p.ou_rate > 0 else math.inf
            lines.append(
                f"{v:<17}{p.mean:>6.2f}{p.offset_sd:>8.2f}{tau:>7.2f}{p.ar1_per_hour:>7.3f}"
                f"{p.process_sd:>6.2f}{p.noise_sd:>7.2f}{p.circadian_amplitude:>6.2f}"
                f"{p.circadian_peak_hour:>6.1f}{p.missing_rate:>6.3f}")
        dp = self.differential_privacy
        lines.insert(1, f"differentially private: ({dp['epsilon']:g}, {dp['delta']:g})-DP, "
                        f"{dp['adjacency']}; counts are noisy" if dp
                     else "not differentially private (aggregates of the real data)")
        if self.episode is None:
            lines.append("no deterioration profile (too few episodes)")
        else:
            ep = self.episode
            k = _plateau_bin(ep["edges_hours"])
            lo, hi = ep["edges_hours"][k], ep["edges_hours"][k + 1]
            shifts = ", ".join(f"{v} {ep['shift_mean'][v][k]:+.2f}" for v in _VITALS)
            lines.append(f"deterioration fraction {self.deterioration_fraction:.2f}; mean "
                         f"z-shift {lo:g}-{hi:g} h after onset: {shifts}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ sampling
    def sample(
        self,
        n: int,
        *,
        ages: Any = None,
        sexes: Any = None,
        deterioration: Any = None,
        onset_hours: Any = None,
        hours: float = 48,
        interval_minutes: float | None = None,
        start: datetime | str | None = None,
        seed: int = 0,
        id_prefix: str = "synth",
    ) -> SyntheticVitals:
        """Draw ``n`` synthetic patients with their vital signs, ages, sexes and events.

        Parameters
        ----------
        n
            Number of patients (>= 1).
        ages
            None: from the fitted age bands; a tuple ``(low, high)``: drawn from the fitted
            bands restricted to that range (years, within [0, 18]); any other array-like:
            one age per patient.
        sexes
            None: from the fitted shares; a string: every patient; array-like: per patient.
        deterioration
            None: the fitted share (none when the model has no episode profile); a number in
        [0, 1]: that share (``round(f * n)``
            patients exactly); True/False: all or none; array-like of bools: per patient.
        onset_hours
            None: each onset is drawn from the fitted position in the stay (on a measurement
            round); a number: every deteriorating patient; array-like: per patient (ignored
            where the patient does not deteriorate).  Hours after the first measurement,
            strictly inside the stay.
        hours
            Length of each stay (hours, > 0).
        interval_minutes
            Minutes between measurement rounds (default: the fitted median, whole minutes).
        start
            Earliest admission (timezone-aware datetime or ISO string with offset; default
            2026-01-05 08:00 at the fitted UTC offset).  Admissions are spread over the next
            7 days at whole hours.
        seed
            Seed (>= 0); the same seed and arguments give identical output.
        id_prefix
            Patient IDs are ``{id_prefix}-0001``, ... (letters, digits, ``-`` and ``.``:
            FHIR ids allow no ``_``).

        Returns
        -------
        SyntheticVitals

        Raises
        ------
        ConfigError
            If an argument is out of range or has the wrong length, or deteriorations are
            requested from a model without an episode profile.

        Examples
        --------
        >>> import tempfile
        >>> from secured_bio.testing import simulate_vitals
        >>> c = simulate_vitals(tempfile.mkdtemp(), n_sites=1, patients_per_site=10, hours=24)
        >>> m = fit_vitals_model(c.vitals_paths[0], c.patients_paths[0], c.events_paths[0])
        >>> s = m.sample(4, ages=(2, 5), deterioration=0.5, hours=12, seed=1)
        >>> s.patients["age_years"].between(2, 5).all(), int(s.events["deterioration"].sum())
        (np.True_, 2)
        """
        return _sample(self, n, ages=ages, sexes=sexes, deterioration=deterioration,
                       onset_hours=onset_hours, hours=hours, interval_minutes=interval_minutes,
                       start=start, seed=seed, id_prefix=id_prefix)


@dataclass(frozen=True)
class SyntheticVitals:
    """Synthetic patients drawn by :meth:`VitalsModel.sample`.

    Attributes
    ----------
    vitals
        Canonical long table ``patient_id,time,vital,value,unit`` (ISO times with offset;
        temperature to 1 decimal, other vitals whole numbers; within the plausibility ranges
        of ``data_specs/vitals.yaml``; sorted by patient, time, vital order).
    patients
        ``patient_id,age_years,sex``.
    events
        ``patient_id,deterioration,onset_time`` (1/0; ISO onset with offset, or empty).
    parameters
        The sampling arguments (JSON-ready).
    """

    vitals: pd.DataFrame
    patients: pd.DataFrame
    events: pd.DataFrame
    parameters: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------ inputs


@dataclass
class _Frames:
    """Internal layout: vitals (patient_id, time_us, off_min, vital, value), patients, events."""

    vitals: pd.DataFrame
    patients: pd.DataFrame  # index patient_id; age_years, sex
    events: pd.DataFrame | None  # index patient_id; onset_us (-1 none)
    where: str


@functools.lru_cache(maxsize=1)
def _ranges() -> dict[str, tuple[float, float]]:
    """Plausibility ranges of ``data_specs/vitals.yaml``."""
    from secured_bio.specs import load_spec

    rules = load_spec("vitals")["table"]["group_rules"]["rules"]
    return {v: (float(r["value"]["min"]), float(r["value"]["max"])) for v, r in rules.items()}


def _offset_minutes(times: pd.Series) -> np.ndarray:
    m = times.astype(str).str.strip().str.extract(_OFFSET)[0].fillna("Z")
    sign = np.where(m.str.startswith("-"), -1, 1)
    digits = m.str.replace(":", "", regex=False).str[1:]
    hh = pd.to_numeric(digits.str[:2], errors="coerce").fillna(0).to_numpy()
    mm = pd.to_numeric(digits.str[2:4], errors="coerce").fillna(0).to_numpy()
    return (sign * (hh * 60 + mm)).astype(np.int64)


def _read_csv_checked(path: Path, what: str) -> None:
    if not path.is_file():
        raise InputFileNotFoundError(f"{what} not found", where=str(path),
                                     expected=f"a CSV {what}", got="no such file",
                                     fix="check the path")
    with open(path, encoding="utf-8", errors="replace") as fh:
        if not fh.readline().strip():
            raise InputError(f"empty {what}", where=str(path), expected="a CSV with a header",
                             got="an empty file", fix="pass a non-empty table")


def _vitals_frame(vitals: Any) -> tuple[pd.DataFrame, str]:
    from secured_bio.telemetry.features import _parse_times, read_vitals

    if isinstance(vitals, (str, os.PathLike)):
        p = Path(vitals)
        _read_csv_checked(p, "vitals table")
        df = read_vitals(p)
        raw = read_table(p, "vitals table", dtype=str, keep_default_na=False, usecols=["time"])
        df["off_min"] = _offset_minutes(raw["time"])
        return df, str(p)
    if not isinstance(vitals, pd.DataFrame):
        raise ConfigError("vitals must be a path or a DataFrame", where="vitals",
                          expected="a CSV path or a canonical DataFrame",
                          got=type(vitals).__name__, fix="pass the vitals table")
    where = "vitals DataFrame"
    need = ["patient_id", "vital", "value"] + (["time_us"] if "time_us" in vitals else ["time"])
    missing = [c for c in need if c not in vitals.columns]
    if missing:
        raise SchemaError("vitals table lacks required columns", where=where,
                          expected="patient_id, time, vital, value, unit",
                          got=f"missing {', '.join(missing)}", fix="fix the columns")
    unknown = sorted(set(vitals["vital"].astype(str)) - set(VITAL_UNITS))
    if unknown:
        hint = did_you_mean(unknown[0], VITAL_UNITS)
        raise SchemaError("unknown vital signs", where=f"{where}:vital",
                          expected=", ".join(VITAL_UNITS),
                          got=f"{len(unknown)} unknown names" + (f" ({hint})" if hint else ""),
                          fix="rename them or run `secured-bio telemetry ingest`")
    value = pd.to_numeric(vitals["value"], errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(value).all():
        raise SchemaError("non-numeric values", where=f"{where}:value", expected="finite numbers",
                          got=f"{int((~np.isfinite(value)).sum())} non-numeric rows",
                          fix="drop or repair those rows")
    if "time_us" in vitals:
        t = vitals["time_us"].to_numpy(dtype=np.int64)
        off = (vitals["off_min"].to_numpy(dtype=np.int64) if "off_min" in vitals
               else np.zeros(len(vitals), dtype=np.int64))
    else:
        t = _parse_times(vitals["time"], f"{where}:time") if len(vitals) else np.zeros(
            0, dtype=np.int64)
        off = _offset_minutes(vitals["time"])
    return pd.DataFrame({"patient_id": vitals["patient_id"].astype(str).to_numpy(),
                         "time_us": t, "vital": vitals["vital"].astype(str).to_numpy(),
                         "value": value, "off_min": off}), where


def _patients_frame(patients: Any) -> pd.DataFrame:
    from secured_bio.telemetry.features import read_patients

    if isinstance(patients, (str, os.PathLike)):
        _read_csv_checked(Path(patients), "patients table")
        return read_patients(patients)
    if not isinstance(patients, pd.DataFrame):
        raise ConfigError("patients must be a path or a DataFrame", where="patients",
                          expected="patient_id, age_years, sex", got=type(patients).__name__,
                          fix="pass the patients table")
    df = patients if "patient_id" not in patients.columns else patients.set_index("patient_id")
    if "age_years" not in df.columns or "sex" not in df.columns:
        raise SchemaError("patients table lacks required columns", where="patients DataFrame",
                          expected="patient_id, age_years, sex", fix="fix the columns")
    age = pd.to_numeric(df["age_years"], errors="coerce")
    if not age.between(0, 120).all() or df.index.duplicated().any():
        raise SchemaError("invalid patients table", where="patients DataFrame",
                          expected="unique patient IDs and ages in years in [0, 120]",
                          fix="repair the patients table")
    return pd.DataFrame({"age_years": age.to_numpy(dtype=float),
                         "sex": df["sex"].astype(str).to_numpy()},
                        index=pd.Index(df.index.astype(str), name="patient_id"))


def _events_frame(events: Any) -> pd.DataFrame | None:
    from secured_bio.telemetry.features import _parse_times, read_events

    if events is None:
        return None
    if isinstance(events, (str, os.PathLike)):
        _read_csv_checked(Path(events), "events table")
        return read_events(events)
    if not isinstance(events, pd.DataFrame):
        raise ConfigError("events must be a path, a DataFrame or None", where="events",
                          expected="patient_id, deterioration, onset_time",
                          got=type(events).__name__, fix="pass the events table")
    df = events if "patient_id" not in events.columns else events.set_index("patient_id")
    if "onset_us" in df.columns:
        return pd.DataFrame({"onset_us": df["onset_us"].to_numpy(dtype=np.int64)},
                            index=pd.Index(df.index.astype(str), name="patient_id"))
    if "deterioration" not in df.columns or "onset_time" not in df.columns:
        raise SchemaError("events table lacks required columns", where="events DataFrame",
                          expected="patient_id, deterioration, onset_time",
                          fix="fix the columns")
    det = df["deterioration"].astype(str).str.strip()
    onset_s = df["onset_time"].fillna("").astype(str).str.strip()
    bad = ~det.isin(("0", "1")) | ((det == "1") & (onset_s == ""))
    if bad.any():
        raise SchemaError("invalid events table", where="events DataFrame",
                          expected="deterioration 0/1 and an onset_time when it is 1",
                          got=f"{int(bad.sum())} invalid rows", fix="repair the events table")
    onset = np.full(len(df), -1, dtype=np.int64)
    pos = (det == "1").to_numpy()
    if pos.any():
        onset[pos] = _parse_times(onset_s[pos], "events DataFrame:onset_time")
    return pd.DataFrame({"onset_us": onset},
                        index=pd.Index(df.index.astype(str), name="patient_id"))


def _frames(vitals: Any, patients: Any, events: Any) -> _Frames:
    v, where = _vitals_frame(vitals)
    p = _patients_frame(patients)
    e = _events_frame(events)
    unknown = ~v["patient_id"].isin(p.index)
    if unknown.any():
        raise SchemaError("patients without age", where=where,
                          expected="a row in the patients table for every patient with vitals",
                          got=f"{v.loc[unknown, 'patient_id'].nunique()} patients missing",
                          fix="add them to patients.csv")
    if e is not None:
        unknown = ~v["patient_id"].isin(e.index)
        if unknown.any():
            raise SchemaError("patients without an events row", where=where,
                              expected="a row in the events table for every patient with vitals",
                              got=f"{v.loc[unknown, 'patient_id'].nunique()} patients missing",
                              fix="add them to events.csv with deterioration 0 or 1")
    return _Frames(v, p, e, where)


def read_cohort(path: str | os.PathLike[str], *, patients: Any = None,
                events: Any = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """Read a cohort folder (or a vitals CSV) into canonical DataFrames, pooling sites.

    ``path`` is a folder holding ``vitals.csv``, ``patients.csv`` (and ``events.csv``), or
    a folder of site folders (``site*/`` or any subfolders holding ``vitals.csv``), pooled;
    or a ``vitals.csv`` file, with ``patients`` (default: ``patients.csv`` next to it) and
    ``events`` (default: ``events.csv`` next to it, when present).  Patient IDs that repeat
    across sites get the site name as prefix (``site2/0001``).

    Returns
    -------
    tuple
        ``(vitals, patients, events)`` as read from the CSVs (strings kept), ``events``
        None when there is none.

    Raises
    ------
    InputFileNotFoundError
        If the folder holds no ``vitals.csv`` (directly or in subfolders) or a file is missing.

    Examples
    --------
    >>> import tempfile
    >>> from secured_bio.testing import simulate_vitals
    >>> c = simulate_vitals(tempfile.mkdtemp(), n_sites=2, patients_per_site=2, hours=2)
    >>> v, p, e = read_cohort(c.out_dir)
    >>> sorted(p["patient_id"])
    ['site1-0001', 'site1-0002', 'site2-0001', 'site2-0002']
    """
    root = Path(path)
    if root.is_dir():
        if (root / "vitals.csv").is_file():
            dirs = [root]
        else:
            dirs = sorted(d for d in root.iterdir() if (d / "vitals.csv").is_file())
        if not dirs:
            raise InputFileNotFoundError("no vitals.csv in the cohort folder", where=str(root),
                                         expected="DIR/vitals.csv or DIR/site*/vitals.csv",
                                         got="none", fix="check --in")
        triples: list[tuple[Path, Any, Any]] = []
        for d in dirs:
            ev_path = d / "events.csv"
            triples.append((d / "vitals.csv", d / "patients.csv",
                            ev_path if (events is None and ev_path.is_file()) else events))
    else:
        if not root.is_file():
            raise InputFileNotFoundError("vitals input not found", where=str(root),
                                         expected="a cohort folder or a vitals.csv",
                                         got="no such file or folder", fix="check --in")
        pat = patients if patients is not None else root.parent / "patients.csv"
        ev_default = root.parent / "events.csv"
        ev_any = events if events is not None else (
            ev_default if ev_default.is_file() else None)
        triples = [(root, pat, ev_any)]
    vs, ps, es = [], [], []
    for vpath, ppath, epath in triples:
        for f, what in ((vpath, "vitals table"), (ppath, "patients table")):
            _read_csv_checked(Path(f), what)
        v = read_table(vpath, "vitals table", dtype=str, keep_default_na=False)
        p = read_table(ppath, "patients table", dtype=str, keep_default_na=False)
        e = None
        if epath is not None:
            _read_csv_checked(Path(epath), "events table")
            e = read_table(epath, "events table", dtype=str, keep_default_na=False)
        vs.append(v)
        ps.append(p)
        es.append(e)
    if len(triples) > 1:
        ids = pd.concat([p["patient_id"] for p in ps if "patient_id" in p])
        if ids.duplicated().any():
            for k, (vpath, _, _) in enumerate(triples):
                site = Path(vpath).parent.name
                for t in (vs[k], ps[k], es[k]):
                    if t is not None and "patient_id" in t:
                        t["patient_id"] = site + "/" + t["patient_id"]
    has_events = all(e is not None for e in es)
    return (pd.concat(vs, ignore_index=True), pd.concat(ps, ignore_index=True),
            pd.concat([e for e in es if e is not None], ignore_index=True) if has_events
            else None)


# ------------------------------------------------------------------------------ fitting


def _too_few(what: str, where: str, expected: str, got: str) -> InputError:
    return InputError(f"too few {what} to fit a vitals model", where=where, expected=expected,
                      got=got, fix="fit on a larger cohort (pool sites with --in DIR)")


def _nearest_corr(c: np.ndarray) -> list[list[float]]:
    """Nearest correlation matrix by eigenvalue flooring (Higham 2002, one projection step)."""
    c = np.where(np.isfinite(c), c, 0.0)
    c = (c + c.T) / 2
    np.fill_diagonal(c, 1.0)
    w, q = np.linalg.eigh(c)
    c = (q * np.maximum(w, 1e-6)) @ q.T
    d = np.sqrt(np.diag(c))
    c = c / np.outer(d, d)
    return [[round(float(x), 6) for x in row] for row in c]


def _pairwise_corr(x: np.ndarray, min_n: int = 10) -> np.ndarray:
    """Pairwise-complete Pearson correlation of the columns of ``x`` (NaN: missing)."""
    k = x.shape[1]
    c = np.eye(k)
    for a in range(k):
        for b in range(a + 1, k):
            m = np.isfinite(x[:, a]) & np.isfinite(x[:, b])
            if m.sum() >= min_n and x[m, a].std() > 0 and x[m, b].std() > 0:
                c[a, b] = c[b, a] = float(np.corrcoef(x[m, a], x[m, b])[0, 1])
            else:
                c[a, b] = c[b, a] = 0.0
    return c


def _variogram(pid: np.ndarray, t_h: np.ndarray, r: np.ndarray, interval_h: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binned semivariogram of within-patient residuals: (mean lag, gamma, pair count)."""
    lo = max(interval_h / 2, 1.0 / 120)
    edges = np.geomspace(lo, _MAX_LAG_H, 31)
    s_lag = np.zeros(30)
    s_g = np.zeros(30)
    cnt = np.zeros(30)
    order = np.lexsort((t_h, pid))
    pid, t_h, r = pid[order], t_h[order], r[order]
    bounds = np.flatnonzero(np.r_[True, pid[1:] != pid[:-1], True])
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        tt, rr = t_h[a:b], r[a:b]
        if len(tt) > _MAX_OBS_VARIOGRAM:
            keep = np.linspace(0, len(tt) - 1, _MAX_OBS_VARIOGRAM).round().astype(int)
            tt, rr = tt[keep], rr[keep]
        i, j = np.triu_indices(len(tt), k=1)
        lag = tt[j] - tt[i]
        ok = (lag > 0) & (lag <= _MAX_LAG_H)
        lag, g = lag[ok], 0.5 * (rr[j[ok]] - rr[i[ok]]) ** 2
        k = np.clip(np.searchsorted(edges, lag, side="right") - 1, 0, 29)
        np.add.at(s_lag, k, lag)
        np.add.at(s_g, k, g)
        np.add.at(cnt, k, 1)
    ok = cnt >= 10
    return s_lag[ok] / cnt[ok], s_g[ok] / cnt[ok], cnt[ok]


def _fit_variogram(h: np.ndarray, g: np.ndarray, n: np.ndarray) -> tuple[float, float, float]:
    """Fit ``gamma(h) = a + b (1 - exp(-rate h))``: (noise var a, process var b, rate)."""
    best = (math.inf, 0.0, 0.0, 1.0)
    w = n / n.sum()
    for rate in np.geomspace(0.005, 50.0, 600):
        x = 1 - np.exp(-rate * h)
        cands = []
        # Weighted least squares of the 2 variances, then the non-negative boundary fits.
        xm, gm = (w * x).sum(), (w * g).sum()
        sxx = (w * (x - xm) ** 2).sum()
        if sxx > 1e-12:
            b = (w * (x - xm) * (g - gm)).sum() / sxx
            cands.append((gm - b * xm, b))
        cands.append((gm, 0.0))
        cands.append((0.0, (w * x * g).sum() / max((w * x * x).sum(), 1e-12)))
        for a, b in cands:
            if a < 0 or b < 0:
                continue
            sse = float((w * (g - a - b * x) ** 2).sum())
            if sse < best[0] - 1e-15:
                best = (sse, float(a), float(b), float(rate))
    return best[1], best[2], best[3]


def _plateau_bin(edges: Sequence[float]) -> int:
    """Index of the episode bin [8, 12) h (or the last one that starts before 12 h)."""
    e = list(edges)
    k = max(i for i in range(len(e) - 1) if e[i] < 12)
    return k


def _age_z(v: pd.DataFrame, patients: pd.DataFrame) -> np.ndarray:
    """Each measurement as a z-score against the age norm of its patient (one per row)."""
    ages = patients["age_years"].reindex(v["patient_id"]).to_numpy(dtype=float)
    # Age norms per row (vectorised over the distinct ages).
    uniq_age, inv = np.unique(ages, return_inverse=True)
    norms = [vital_norms(a) for a in uniq_age]
    vit = v["vital"].to_numpy()
    med = np.empty(len(v))
    sd = np.empty(len(v))
    for name in _VITALS:
        m = vit == name
        table = np.array([nm[name] for nm in norms]).reshape(-1, 2)
        med[m] = table[inv[m], 0]
        sd[m] = table[inv[m], 1]
    return (v["value"].to_numpy(dtype=float) - med) / sd


def fit_vitals_model(
    vitals: str | os.PathLike[str] | pd.DataFrame,
    patients: str | os.PathLike[str] | pd.DataFrame,
    events: str | os.PathLike[str] | pd.DataFrame | None = None,
    *,
    seed: int = 0,
) -> VitalsModel:
    """Fit a :class:`VitalsModel` to real vital signs (see the module docstring).

    Parameters
    ----------
    vitals
        The canonical long table (CSV path, or a DataFrame with ``patient_id, time, vital,
        value`` or the ``time_us`` layout of :func:`secured_bio.telemetry.features.read_vitals`).
    patients
        ``patient_id, age_years, sex`` (CSV path or DataFrame, or the
        :func:`~secured_bio.telemetry.features.read_patients` layout).
    events
        ``patient_id, deterioration, onset_time`` (optional; without it no episode profile
        is fitted and every patient counts as not deteriorating).
    seed
        Kept for reproducibility of future randomised estimators; the fit is deterministic.

    Returns
    -------
    VitalsModel

    Raises
    ------
    InputFileNotFoundError
        If a file does not exist.
    SchemaError
        If a table violates its layout (see the readers), e.g. an unknown vital.
    InputError
        If a file is empty, or there are fewer than :data:`MIN_PATIENTS` patients, fewer than
        :data:`MIN_MEASUREMENTS` baseline measurements of a vital, or no repeated
        measurements to estimate the fluctuation from.

    Examples
    --------
    >>> import tempfile
    >>> from secured_bio.testing import simulate_vitals
    >>> c = simulate_vitals(tempfile.mkdtemp(), n_sites=1, patients_per_site=12, hours=24)
    >>> m = fit_vitals_model(c.vitals_paths[0], c.patients_paths[0], c.events_paths[0])
    >>> 1 < 1 / m.vitals["heart_rate"].ou_rate < 8  # the simulator's time constant is 3 h
    True
    """
    del seed  # deterministic; accepted so that callers can pass their seed everywhere
    fr = _frames(vitals, patients, events)
    v, where = fr.vitals, fr.where
    n_pat = int(v["patient_id"].nunique())
    if n_pat < MIN_PATIENTS:
        raise _too_few("patients", where, f">= {MIN_PATIENTS} patients with vital signs",
                       f"{n_pat}")
    z = _age_z(v, fr.patients)
    vit = v["vital"].to_numpy()
    t_us = v["time_us"].to_numpy(dtype=np.int64)
    pid = v["patient_id"].to_numpy()
    # Hours since the patient's first measurement, and the local clock hour.
    first = v.groupby("patient_id")["time_us"].transform("min").to_numpy(dtype=np.int64)
    t_h = (t_us - first) / _US_PER_HOUR
    off = v["off_min"].to_numpy(dtype=np.int64)
    clock = ((t_us // _US_PER_MIN + off) % (24 * 60)) / 60.0
    onset_us = np.full(len(v), -1, dtype=np.int64)
    det_ids: set[str] = set()
    if fr.events is not None:
        onset_us = fr.events["onset_us"].reindex(pid).to_numpy(dtype=np.int64)
        det_ids = set(fr.events.index[fr.events["onset_us"] >= 0]) & set(pid)
    rel_h = np.where(onset_us >= 0, (t_us - onset_us) / _US_PER_HOUR, np.nan)
    in_episode = np.isfinite(rel_h) & (rel_h >= EPISODE_EDGES[0])
    base = ~in_episode

    # Measurement rounds (distinct patient times): interval, stay, missingness.
    rounds = v[["patient_id", "time_us"]].drop_duplicates().sort_values(
        ["patient_id", "time_us"], kind="stable")
    gaps = rounds.groupby("patient_id")["time_us"].diff().dropna().to_numpy() / _US_PER_MIN
    gaps = gaps[gaps > 0]
    if len(gaps) == 0:
        raise _too_few("repeated measurements", where,
                       "patients measured at 2 or more times", "one time per patient")
    interval = float(np.median(gaps))
    q1, q3 = (float(x) for x in np.percentile(gaps, [25, 75]))
    n_rounds = len(rounds)
    stays = rounds.groupby("patient_id")["time_us"].agg(lambda s: (s.max() - s.min()))
    key = pd.MultiIndex.from_arrays([v["patient_id"], v["time_us"]])
    present = pd.DataFrame({"k": key, "vital": vit}).drop_duplicates()
    per_vital = present["vital"].value_counts()
    bp = v[v["vital"].isin(("systolic_bp", "diastolic_bp"))]
    bp_sets = bp.groupby(["patient_id", "time_us"])["vital"].agg(frozenset)
    n_both_present = int((bp_sets.map(len) == 2).sum())
    n_sys_only = int((bp_sets == frozenset({"systolic_bp"})).sum())
    n_dia_only = int((bp_sets == frozenset({"diastolic_bp"})).sum())
    bp_missing = {
        "both": (n_rounds - n_both_present - n_sys_only - n_dia_only) / n_rounds,
        "systolic_only": n_dia_only / n_rounds,
        "diastolic_only": n_sys_only / n_rounds,
    }

    params: dict[str, VitalParams] = {}
    resid = np.full(len(v), np.nan)
    for name in _VITALS:
        m = (vit == name) & base
        n_m = int(m.sum())
        if n_m < MIN_MEASUREMENTS:
            raise _too_few(f"{name} measurements", f"{where}:{name}",
                           f">= {MIN_MEASUREMENTS} baseline measurements of each vital",
                           f"{n_m}")
        zz, cc, pp = z[m], clock[m], pid[m]
        cs = np.cos(2 * np.pi * cc / 24)
        sn = np.sin(2 * np.pi * cc / 24)
        df = pd.DataFrame({"p": pp, "z": zz, "c": cs, "s": sn})
        dm = df[["z", "c", "s"]] - df.groupby("p")[["z", "c", "s"]].transform("mean")
        xtx = dm[["c", "s"]].to_numpy().T @ dm[["c", "s"]].to_numpy()
        if np.linalg.cond(xtx) < 1e6 and np.trace(xtx) > 1e-6 * len(dm):
            a, b = np.linalg.solve(xtx, dm[["c", "s"]].to_numpy().T @ dm["z"].to_numpy())
        else:  # stays too short or too few clock hours for a 24-hour harmonic
            a = b = 0.0
        amp = float(math.hypot(a, b))
        peak = float((math.degrees(math.atan2(b, a)) / 15.0) % 24) if amp > 0 else 0.0
        mrow = (vit == name)
        r_all = z[mrow] - (a * np.cos(2 * np.pi * clock[mrow] / 24)
                           + b * np.sin(2 * np.pi * clock[mrow] / 24))
        mu = float(np.mean(r_all[base[mrow]]))
        resid[mrow] = r_all - mu
        r = resid[m]
        lag, gam, cnt = _variogram(pp, t_h[m], r, interval / 60.0)
        if len(lag) < 3:
            raise _too_few(f"repeated {name} measurements", f"{where}:{name}",
                           "pairs of measurements of the same patient at 3 or more lags "
                           "(10 pairs each)", f"{len(lag)} lags")
        nug, proc, rate = _fit_variogram(lag, gam, cnt)
        total = float(np.mean(r**2))
        tau2 = max(total - nug - proc, 0.0)
        params[name] = VitalParams(
            mean=round(mu, 6), offset_sd=round(math.sqrt(tau2), 6), ou_rate=round(rate, 6),
            process_sd=round(math.sqrt(proc), 6), noise_sd=round(math.sqrt(nug), 6),
            circadian_amplitude=round(amp, 6), circadian_peak_hour=round(peak, 4),
            missing_rate=round(1.0 - float(per_vital.get(name, 0)) / n_rounds, 6),
            n_measurements=n_m)

    # Cross-vital correlations: wide residuals at each round (baseline only).
    wide = pd.DataFrame({"p": pid, "t": t_us, "v": vit, "r": resid})[base].pivot_table(
        index=["p", "t"], columns="v", values="r", aggfunc="mean").reindex(columns=list(_VITALS))
    wide = wide.sort_index()
    wv = wide.to_numpy(dtype=float)
    wp = wide.index.get_level_values(0).to_numpy()
    wt = wide.index.get_level_values(1).to_numpy(dtype=np.int64)
    same = np.r_[False, wp[1:] == wp[:-1]]
    dt = np.r_[0.0, np.diff(wt) / _US_PER_HOUR]
    rates = np.array([params[x].ou_rate for x in _VITALS])
    innov = wv - np.exp(-np.outer(dt, rates)) * np.r_[np.full((1, len(_VITALS)), np.nan),
                                                       wv[:-1]]
    innov[~same] = np.nan
    innovation_corr = _nearest_corr(_pairwise_corr(innov))
    pmeans = wide.groupby(level=0).mean().to_numpy(dtype=float)
    offset_corr = _nearest_corr(_pairwise_corr(pmeans, min_n=MIN_PATIENTS))

    # Patients: age bands, sex shares, deterioration, onset position.
    pat = fr.patients.loc[sorted(set(pid))]
    age_idx = np.clip(np.searchsorted(_AGE_EDGES, pat["age_years"].to_numpy(), side="right") - 1,
                      0, len(_AGE_EDGES) - 2)
    age_shares = np.bincount(age_idx, minlength=len(_AGE_EDGES) - 1) / len(pat)
    sex_shares = pat["sex"].value_counts(normalize=True).sort_index()
    n_det = len(det_ids)
    positions = []
    if n_det:
        ev = fr.events
        assert ev is not None
        for d in sorted(det_ids):
            span = int(stays[d])
            f0 = int(rounds.loc[rounds["patient_id"] == d, "time_us"].min())
            if span > 0:
                positions.append(float(np.clip((int(ev.at[d, "onset_us"]) - f0) / span, 0, 1)))
    onset_position = _ONSET_DEFAULT
    if len(positions) >= MIN_BIN_PATIENTS:
        onset_position = (round(float(np.mean(positions)), 4),
                          round(float(np.std(positions, ddof=1)), 4))

    episode = None
    if n_det >= MIN_BIN_PATIENTS:
        # Placebo onsets for patients who do not deteriorate, at the mean onset position:
        # their severity estimates measure the estimator's noise (true severity 0).
        span_row = stays.reindex(pid).to_numpy(dtype=np.int64)
        fake = first + (onset_position[0] * span_row).astype(np.int64)
        placebo_h = np.where((onset_us < 0) & (span_row > 0), (t_us - fake) / _US_PER_HOUR,
                             np.nan)
        episode = _fit_episode(pid, rel_h, placebo_h, vit, resid, params, sorted(det_ids))
    else:
        logger.info("no deterioration profile: %d episodes (fewer than %d)", n_det,
                    MIN_BIN_PATIENTS)
    model = VitalsModel(
        vitals=params, innovation_corr=innovation_corr, offset_corr=offset_corr,
        bp_missing={k: round(x, 6) for k, x in bp_missing.items()},
        interval_minutes=round(interval, 4), interval_quartiles=(round(q1, 4), round(q3, 4)),
        utc_offset_minutes=int(pd.Series(off).mode().iloc[0]),
        age_edges=_AGE_EDGES, age_shares=tuple(round(float(x), 6) for x in age_shares),
        sex_shares={str(k): round(float(x), 6) for k, x in sex_shares.items()},
        deterioration_fraction=round(n_det / n_pat, 6), onset_position=onset_position,
        episode=episode, n_patients=n_pat, n_deteriorating=n_det, n_measurements=len(v),
        stay_hours_median=round(float(np.median(stays.to_numpy())) / _US_PER_HOUR, 4),
        notes=([] if fr.events is not None else ["fitted without an events table"])
        + ([] if (off != 0).any() or not isinstance(vitals, pd.DataFrame)
           or "time_us" not in vitals else ["times without offsets: clock taken as UTC"]),
    )
    logger.info("fitted vitals model on %d patients (%d episodes), %d measurements", n_pat,
                n_det, len(v))
    return model


def _severity_scales(p: np.ndarray, k: np.ndarray, r: np.ndarray, prof: np.ndarray,
                     edges: np.ndarray) -> list[float]:
    """Each patient's least-squares scale of the profile ``prof`` (post-onset bins)."""
    nb = len(edges) - 1
    scales = []
    for q in sorted(set(p)):
        mq = p == q
        b0 = float(r[mq & (k < 0)].mean()) if (mq & (k < 0)).any() else 0.0
        post = mq & (k >= 0) & (k < nb)
        post[post] &= edges[k[post]] >= 0
        if not post.any():
            continue
        mk = prof[k[post]]
        den = float((mk**2).sum())
        if den > 1e-9:
            scales.append(float(((r[post] - b0) * mk).sum()) / den)
    return scales


def _bins(rel_h: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of hours since onset: -1 before the first edge, len(edges) - 1 after."""
    out = np.full(len(rel_h), -1)
    fin = np.isfinite(rel_h)
    out[fin] = np.searchsorted(edges, rel_h[fin], side="right") - 1
    out[fin & (rel_h >= edges[-1])] = len(edges) - 1
    out[~fin] = len(edges)  # no onset: unused
    return out


def _fit_episode(pid: np.ndarray, rel_h: np.ndarray, placebo_h: np.ndarray, vit: np.ndarray,
                 resid: np.ndarray, params: dict[str, VitalParams], det: list[str]
                 ) -> dict[str, Any]:
    """Event-study fit of the mean z-shift per bin of hours since onset (module docstring)."""
    edges = np.asarray(EPISODE_EDGES, dtype=float)
    nb = len(edges) - 1
    is_det = np.isin(pid, det)
    binidx = _bins(rel_h, edges)
    placebo_bin = _bins(placebo_h, edges)
    shift_mean: dict[str, list[float]] = {}
    shift_sd: dict[str, list[float]] = {}
    severity_sd: dict[str, float] = {}
    pats_per_bin = np.zeros(nb, dtype=int)
    estimated_any = np.zeros(nb, dtype=bool)
    for name in _VITALS:
        m = is_det & (vit == name) & (binidx < nb)
        p, k, r = pid[m], binidx[m], resid[m]
        npb = np.array([len(set(p[k == j])) for j in range(nb)])
        pats_per_bin = np.maximum(pats_per_bin, npb)
        est = npb >= MIN_BIN_PATIENTS
        estimated_any |= est
        cols = np.flatnonzero(est)
        keep = (k < 0) | np.isin(k, cols)
        p, k, r = p[keep], k[keep], r[keep]
        d = (k[:, None] == cols[None, :]).astype(float)
        has_base = len(set(p[k < 0])) >= 2
        if has_base:  # two-way fixed effects: demean within patient
            frame = pd.DataFrame(d).assign(_r=r, _p=p)
            g = frame.groupby("_p")
            dd = (frame.drop(columns=["_p"]) - g.transform("mean")).to_numpy()
            x, y = dd[:, :-1], dd[:, -1]
        else:  # no pre-episode reference: the population baseline (mean residual 0)
            x, y = d, r
        beta = np.zeros(len(cols))
        if len(cols):
            beta = np.linalg.lstsq(x, y, rcond=None)[0]
        prof = np.full(nb, np.nan)
        prof[cols] = beta
        # Bins not estimated: nearest estimated bin after the onset, 0 before it.
        for j in range(nb):
            if np.isnan(prof[j]):
                if edges[j] < 0 or not len(cols):
                    prof[j] = 0.0
                else:
                    near = cols[np.argmin(np.abs(cols - j))]
                    prof[j] = prof[near]
        # Severity: each patient's least-squares scale of the mean profile; its SD across
        # patients minus the estimator's noise, measured on placebo onsets of patients who
        # do not deteriorate (true severity 0; autocorrelation included), else a formula.
        scales = _severity_scales(p, k, r, prof, edges)
        mp = ~is_det & (vit == name) & (placebo_bin < nb)
        placebo = _severity_scales(pid[mp], placebo_bin[mp], resid[mp], prof, edges)
        var_s = 0.0
        if len(scales) >= MIN_BIN_PATIENTS:
            if len(placebo) >= MIN_BIN_PATIENTS:
                noise = float(np.var(placebo, ddof=1))
            else:
                post = prof[edges[:-1] >= 0]
                noise = (params[name].process_sd ** 2 + params[name].noise_sd ** 2) / max(
                    float((post**2).sum()), 1e-9)
            var_s = min(max(float(np.var(scales, ddof=1)) - noise, 0.0), 1.0)
        severity_sd[name] = round(math.sqrt(var_s), 6)
        shift_mean[name] = [round(float(x), 6) for x in prof]
        shift_sd[name] = [round(math.sqrt(var_s) * abs(float(x)), 6) for x in prof]
    return {
        "edges_hours": [float(e) for e in edges],
        "shift_mean": shift_mean,
        "shift_sd": shift_sd,
        "severity_sd": severity_sd,
        "patients_per_bin": [int(x) for x in pats_per_bin],
        "estimated": [bool(x) for x in estimated_any],
        "n_episodes": len(det),
    }


# ------------------------------------------------------------------------------ sampling


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError("number of synthetic patients must be a positive integer",
                          where="sample(n=...)", expected="an integer >= 1", got=repr(n),
                          fix="pass e.g. n=100")
    return int(n)


def _per_patient(x: Any, n: int, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1 or len(a) != n:
        raise ConfigError(f"{name} has the wrong length", where=f"sample({name}=...)",
                          expected=f"{n} values (one per patient)",
                          got=f"shape {a.shape}", fix="pass one value per patient or a "
                          "scalar/range")
    return a


def _ages(model: VitalsModel, ages: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    edges = np.asarray(model.age_edges, dtype=float)
    shares = np.asarray(model.age_shares, dtype=float)
    if ages is None:
        lo, hi = float(edges[0]), float(edges[-1])
    elif isinstance(ages, tuple):
        if len(ages) != 2:
            raise ConfigError("age range must be (low, high)", where="sample(ages=...)",
                              expected="a tuple (low, high) in years", got=f"{len(ages)} items",
                              fix="pass e.g. ages=(2, 5)")
        lo, hi = float(ages[0]), float(ages[1])
        if not (0.0 <= lo <= hi <= 18.0) or math.isnan(lo) or math.isnan(hi):
            raise ConfigError("age range out of bounds", where="sample(ages=...)",
                              expected="0 <= low <= high <= 18 (years)",
                              got=f"({lo:g}, {hi:g})", fix="pass a paediatric age range")
    else:
        a = _per_patient(ages, n, "ages").astype(float)
        if not (np.isfinite(a) & (a >= 0) & (a <= 18)).all():
            raise ConfigError("ages out of bounds", where="sample(ages=...)",
                              expected="ages in years in [0, 18]",
                              got=f"{int((~((a >= 0) & (a <= 18))).sum())} outside",
                              fix="pass paediatric ages")
        return a
    if lo == hi:
        return np.full(n, lo)
    lo_b = np.maximum(edges[:-1], lo)
    hi_b = np.minimum(edges[1:], hi)
    width = np.clip(hi_b - lo_b, 0, None)
    w = shares * width / np.diff(edges)
    if w.sum() <= 0:
        w = width
    band = rng.choice(len(w), size=n, p=w / w.sum())
    return lo_b[band] + rng.random(n) * (hi_b[band] - lo_b[band])


def _sexes(model: VitalsModel, sexes: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    if sexes is None:
        cats = sorted(model.sex_shares)
        p = np.array([model.sex_shares[c] for c in cats])
        return np.asarray(cats, dtype=object)[rng.choice(len(cats), size=n, p=p / p.sum())]
    if isinstance(sexes, str):
        return np.full(n, sexes, dtype=object)
    return _per_patient(sexes, n, "sexes").astype(str).astype(object)


def _deterioration(model: VitalsModel, det: Any, n: int, rng: np.random.Generator
                   ) -> np.ndarray:
    if det is None or (isinstance(det, (float, int, np.floating, np.integer))
                       and not isinstance(det, (bool, np.bool_))):
        frac = model.deterioration_fraction if det is None else float(det)
        if not 0.0 <= frac <= 1.0:
            raise ConfigError("deterioration fraction out of range",
                              where="sample(deterioration=...)", expected="a share in [0, 1]",
                              got=f"{frac:g}", fix="pass e.g. 0.3")
        k = int(round(frac * n))
        return rng.permutation(np.arange(n) < k)
    if isinstance(det, (bool, np.bool_)):
        return np.full(n, bool(det))
    a = _per_patient(det, n, "deterioration")
    if a.dtype != bool and not np.isin(a, (0, 1)).all():
        raise ConfigError("deterioration flags must be booleans", where="sample(deterioration=...)",
                          expected="True/False (or 1/0) per patient", got=f"dtype {a.dtype}",
                          fix="pass booleans")
    return a.astype(bool)


def _start(model: VitalsModel, start: Any) -> datetime:
    if start is None:
        return datetime(2026, 1, 5, 8, 0,
                        tzinfo=timezone(timedelta(minutes=model.utc_offset_minutes)))
    when = start
    if isinstance(start, str):
        try:
            when = datetime.fromisoformat(start)
        except ValueError as e:
            raise ConfigError("start is not an ISO 8601 time", where="sample(start=...)",
                              expected="e.g. 2026-01-05T08:00:00+01:00", got="unparseable",
                              fix="write it as YYYY-MM-DDThh:mm:ss+hh:mm") from e
    if not isinstance(when, datetime) or when.utcoffset() is None:
        raise ConfigError("start lacks a UTC offset", where="sample(start=...)",
                          expected="a timezone-aware time", got="a naive time",
                          fix="add the offset, e.g. +01:00")
    return when


def _sample(model: VitalsModel, n: Any, *, ages: Any, sexes: Any, deterioration: Any,
            onset_hours: Any, hours: float, interval_minutes: float | None, start: Any,
            seed: int, id_prefix: str) -> SyntheticVitals:
    n = _check_n(n)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError("seed must be a non-negative integer", where="sample(seed=...)",
                          expected="an integer >= 0", got=repr(seed), fix="pass e.g. seed=0")
    if not isinstance(id_prefix, str) or not _ID_OK.fullmatch(id_prefix):
        raise ConfigError("invalid id_prefix", where="sample(id_prefix=...)",
                          expected="1-40 letters, digits, '-' or '.' (FHIR id characters)",
                          got=f"{len(str(id_prefix))} characters", fix="e.g. id_prefix='synth'")
    hours = float(hours)
    if not (math.isfinite(hours) and hours > 0):
        raise ConfigError("hours must be positive", where="sample(hours=...)",
                          expected="a stay length in hours > 0", got=f"{hours:g}",
                          fix="pass e.g. hours=48")
    step = float(interval_minutes if interval_minutes is not None
                 else max(1.0, round(model.interval_minutes)))
    if not (math.isfinite(step) and 1 <= step <= hours * 60) or step != int(step):
        raise ConfigError("interval_minutes out of range", where="sample(interval_minutes=...)",
                          expected=f"whole minutes in [1, hours * 60 = {hours * 60:g}]",
                          got=f"{step:g}", fix="pass e.g. interval_minutes=60")
    step_i = int(step)
    n_t = max(1, int(hours * 60 // step_i))
    t0 = _start(model, start)
    rngs = [np.random.default_rng([int(seed), k]) for k in range(10)]
    age = np.round(_ages(model, ages, n, rngs[0]), 2)
    sex = _sexes(model, sexes, n, rngs[1])
    if deterioration is None and model.episode is None:
        deterioration = 0.0  # the fitted share cannot be drawn without a profile
    det = _deterioration(model, deterioration, n, rngs[2])
    if det.any() and model.episode is None:
        raise ConfigError("the model has no deterioration profile",
                          where="sample(deterioration=...)",
                          expected=f"a model fitted with events of >= {MIN_BIN_PATIENTS} "
                                   "deteriorating patients",
                          got=f"{int(det.sum())} deteriorations requested",
                          fix="pass deterioration=0, or refit with an events table")
    t_h = np.arange(n_t) * step_i / 60.0
    onset = np.full(n, np.nan)
    if det.any():
        if onset_hours is None:
            mpos, spos = model.onset_position
            pos = np.clip(rngs[3].normal(mpos, spos, n), 0.1, 0.9)
            span = t_h[-1] if n_t > 1 else hours
            onset = np.round(pos * span * 60 / step_i) * step_i / 60.0
        else:
            oh = (np.full(n, float(onset_hours)) if np.ndim(onset_hours) == 0
                  else _per_patient(onset_hours, n, "onset_hours").astype(float))
            bad = det & ~((oh > 0) & (oh < hours))
            if bad.any():
                raise ConfigError("onset outside the stay", where="sample(onset_hours=...)",
                                  expected=f"hours in (0, {hours:g}) for deteriorating patients",
                                  got=f"{int(bad.sum())} outside",
                                  fix="pass onsets within the stay")
            onset = oh
        onset = np.where(det, onset, np.nan)
    admit_h = rngs[4].integers(0, 7 * 24, n)
    vnames = list(_VITALS)
    nv = len(vnames)
    p = [model.vitals[x] for x in vnames]
    mu = np.array([q.mean for q in p])
    tau = np.array([q.offset_sd for q in p])
    psd = np.array([q.process_sd for q in p])
    nsd = np.array([q.noise_sd for q in p])
    amp = np.array([q.circadian_amplitude for q in p])
    peak = np.array([q.circadian_peak_hour for q in p])
    rate = np.array([q.ou_rate for q in p])
    c_off = np.linalg.cholesky(np.asarray(model.offset_corr) + 1e-9 * np.eye(nv))
    c_inn = np.linalg.cholesky(np.asarray(model.innovation_corr) + 1e-9 * np.eye(nv))
    b = (rngs[5].standard_normal((n, nv)) @ c_off.T) * tau
    phi = np.exp(-rate * step_i / 60.0)
    u = rngs[6].standard_normal((n, n_t, nv)) @ c_inn.T
    x = np.empty((n, n_t, nv))
    x[:, 0] = u[:, 0] * psd
    inno = psd * np.sqrt(1 - phi**2)
    for k in range(1, n_t):
        x[:, k] = phi * x[:, k - 1] + inno * u[:, k]
    clock = ((t0.hour + t0.minute / 60.0) + admit_h[:, None] + t_h[None, :]) % 24
    circ = amp * np.cos(2 * np.pi * (clock[..., None] - peak) / 24)
    z = mu + b[:, None, :] + x + circ + rngs[7].standard_normal((n, n_t, nv)) * nsd
    if det.any():
        ep = model.episode
        assert ep is not None
        edges = np.asarray(ep["edges_hours"], dtype=float)
        centres = (edges[:-1] + edges[1:]) / 2
        knots = np.r_[edges[0], centres]
        g = rngs[8].standard_normal(n)
        for j, name in enumerate(vnames):
            prof = np.r_[0.0, np.asarray(ep["shift_mean"][name], dtype=float)]
            sev = np.clip(1.0 + float(ep["severity_sd"][name]) * g, 0.0, None)
            rel = t_h[None, :] - onset[:, None]
            sh = np.interp(np.nan_to_num(rel, nan=-1e9), knots, prof, left=0.0,
                           right=prof[-1])
            z[:, :, j] += np.where(det[:, None], sh * sev[:, None], 0.0)
    norms = np.array([[vital_norms(a)[v] for v in vnames] for a in age])  # (n, nv, 2)
    values = norms[:, None, :, 0] + norms[:, None, :, 1] * z
    rng_v = _ranges()
    for j, name in enumerate(vnames):
        lo, hi = rng_v[name]
        values[:, :, j] = np.clip(np.round(values[:, :, j], _DECIMALS.get(name, 0)), lo, hi)
    js, jd = vnames.index("systolic_bp"), vnames.index("diastolic_bp")
    values[:, :, jd] = np.minimum(values[:, :, jd], values[:, :, js] - 1)
    # Missingness: each vital independently, blood pressure as a pair.
    rm = rngs[9].random((n, n_t, nv))
    miss = np.zeros((n, n_t, nv), dtype=bool)
    for j, name in enumerate(vnames):
        if name not in ("systolic_bp", "diastolic_bp"):
            miss[:, :, j] = rm[:, :, j] < model.vitals[name].missing_rate
    pb = model.bp_missing
    ub = rm[:, :, js]
    both = ub < pb["both"]
    sys_only = (ub >= pb["both"]) & (ub < pb["both"] + pb["systolic_only"])
    dia_only = (ub >= pb["both"] + pb["systolic_only"]) & (
        ub < pb["both"] + pb["systolic_only"] + pb["diastolic_only"])
    miss[:, :, js] = both | sys_only
    miss[:, :, jd] = both | dia_only
    # Long table in patient, time, vital order.
    width = max(4, len(str(n)))
    ids = np.array([f"{id_prefix}-{i + 1:0{width}d}" for i in range(n)], dtype=object)
    minutes = admit_h[:, None] * 60 + np.arange(n_t)[None, :] * step_i  # (n, n_t)
    uniq, inv = np.unique(minutes, return_inverse=True)
    iso = np.array([(t0 + timedelta(minutes=int(m))).isoformat() for m in uniq], dtype=object)
    keep = ~miss.reshape(-1)
    pid_long = np.repeat(ids, n_t * nv)[keep]
    time_long = np.repeat(iso[inv.reshape(-1)], nv)[keep]
    vital_long = np.tile(np.asarray(vnames, dtype=object), n * n_t)[keep]
    unit_long = np.tile(np.asarray([VITAL_UNITS[x] for x in vnames], dtype=object),
                        n * n_t)[keep]
    vitals_df = pd.DataFrame({"patient_id": pid_long, "time": time_long, "vital": vital_long,
                              "value": values.reshape(-1)[keep], "unit": unit_long})
    patients_df = pd.DataFrame({"patient_id": ids, "age_years": age, "sex": sex})
    onset_iso = [
        (t0 + timedelta(hours=int(admit_h[i]), minutes=float(onset[i]) * 60)).isoformat()
        if det[i] else "" for i in range(n)]
    events_df = pd.DataFrame({"patient_id": ids, "deterioration": det.astype(int),
                              "onset_time": onset_iso})
    params = {"n": n, "ages": None if ages is None else (list(ages) if isinstance(ages, tuple)
                                                          else "per patient"),
              "deterioration": int(det.sum()), "hours": hours, "interval_minutes": step_i,
              "start": t0.isoformat(), "seed": int(seed), "id_prefix": id_prefix}
    logger.info("sampled %d synthetic patients (%d deteriorating), %d measurements", n,
                int(det.sum()), len(vitals_df))
    return SyntheticVitals(vitals=vitals_df, patients=patients_df, events=events_df,
                           parameters=params)


# ------------------------------------------------------------------------------ files


def save_vitals_model(model: VitalsModel, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` as JSON (format ``secured_bio.vitals_model`` version 1), atomically.

    Examples
    --------
    >>> import tempfile
    >>> from secured_bio.testing import simulate_vitals
    >>> c = simulate_vitals(tempfile.mkdtemp(), n_sites=1, patients_per_site=8, hours=24)
    >>> m = fit_vitals_model(c.vitals_paths[0], c.patients_paths[0], c.events_paths[0])
    >>> p = save_vitals_model(m, c.out_dir / "model.json")
    >>> load_vitals_model(p).n_patients
    8
    """
    from secured_bio._atomic import atomic_write

    final = Path(path)
    with atomic_write(final) as fh:
        json.dump(model.to_dict(), fh, indent=1)
        fh.write("\n")
    return final


def load_vitals_model(path: str | os.PathLike[str]) -> VitalsModel:
    """Read a model written by :func:`save_vitals_model`.

    Raises
    ------
    InputFileNotFoundError
        If the file does not exist.
    FormatError
        If it is not JSON, names another format or version, or lacks a field.
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileNotFoundError("vitals model not found", where=str(p),
                                     expected="a JSON file written by save_vitals_model",
                                     got="no such file", fix="check --model")
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FormatError("vitals model is not JSON", where=str(p), expected="JSON",
                          fix="refit and save the model") from e
    return VitalsModel.from_dict(d, where=str(p))


def _fmt(v: float, decimals: int) -> str:
    return f"{v:.{decimals}f}"


def write_synthetic_vitals(result: SyntheticVitals, out_dir: str | os.PathLike[str], *,
                           fhir: bool = False) -> dict[str, Path]:
    """Write ``vitals.csv``, ``patients.csv``, ``events.csv`` (and ``vitals.fhir.json``).

    All files are written under temporary names and renamed together when complete
    (``vitals.csv`` last).  The layouts are those of
    :func:`secured_bio.testing.simulate_vitals`; the FHIR R4 Bundle holds the same
    measurements as vital-signs Observations (tagged ``secured_bio.synthetic_vitals/1``).

    Parameters
    ----------
    result
        From :meth:`VitalsModel.sample`.
    out_dir
        Folder to write into (created if needed; other files in it are left alone).
    fhir
        Also write ``vitals.fhir.json``.

    Returns
    -------
    dict
        ``{"vitals", "patients", "events"[, "fhir"]}`` -> path.

    Examples
    --------
    >>> import tempfile
    >>> from secured_bio.testing import simulate_vitals
    >>> c = simulate_vitals(tempfile.mkdtemp(), n_sites=1, patients_per_site=8, hours=24)
    >>> m = fit_vitals_model(c.vitals_paths[0], c.patients_paths[0], c.events_paths[0])
    >>> paths = write_synthetic_vitals(m.sample(3, hours=6), c.out_dir / "synth", fhir=True)
    >>> sorted(paths)
    ['events', 'fhir', 'patients', 'vitals']
    """
    import csv

    from secured_bio._atomic import atomic_paths
    from secured_bio.telemetry.fhir import FhirBundleWriter

    out = Path(out_dir)
    names = {"vitals": out / "vitals.csv", "patients": out / "patients.csv",
             "events": out / "events.csv"}
    if fhir:
        names["fhir"] = out / "vitals.fhir.json"
    v = result.vitals
    with atomic_paths(*names.values()) as tmps:
        tv, tp, te = tmps[:3]
        with open(tv, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["patient_id", "time", "vital", "value", "unit"])
            dec = v["vital"].map(lambda x: _DECIMALS.get(x, 0)).to_numpy()
            vals = [_fmt(x, d) for x, d in zip(v["value"].to_numpy(dtype=float), dec,
                                                strict=True)]
            w.writerows(zip(v["patient_id"], v["time"], v["vital"], vals, v["unit"],
                            strict=True))
        p = result.patients.assign(age_years=result.patients["age_years"].map(
            lambda a: f"{float(a):.2f}"))
        p[["patient_id", "age_years", "sex"]].to_csv(tp, index=False, lineterminator="\n")
        result.events[["patient_id", "deterioration", "onset_time"]].to_csv(
            te, index=False, lineterminator="\n")
        if fhir:
            with open(tmps[3], "w", encoding="utf-8") as fh:
                writer = FhirBundleWriter(fh, bundle_id="synthetic-vitals", tag=_TAG,
                                          tag_display="synthetic data (secured_bio)")
                key = v["patient_id"] + "|" + v["time"]
                codes, uniq = pd.factorize(key, sort=False)
                wide = np.full((len(uniq), len(_VITALS)), np.nan)
                col = v["vital"].map({x: i for i, x in enumerate(_VITALS)}).to_numpy()
                wide[codes, col] = v["value"].to_numpy(dtype=float)
                first = ~pd.Series(codes).duplicated().to_numpy()
                r_pid = v["patient_id"].to_numpy()[first]
                r_time = v["time"].to_numpy()[first]
                k = pd.Series(r_pid).groupby(r_pid).cumcount().to_numpy()
                for i in range(len(uniq)):
                    writer.add_round(str(r_pid[i]), int(k[i]), str(r_time[i]),
                                     dict(zip(_VITALS, wide[i].tolist(), strict=True)))
                writer.close()
    logger.info("wrote %d synthetic patients, %d measurements to %s", len(result.patients),
                len(v), out)
    return names


# ------------------------------------------------------------------------------ plot


def plot_vitals(
    vitals_df: pd.DataFrame | SyntheticVitals,
    patient_id: str,
    path: str | os.PathLike[str],
    *,
    onset: datetime | str | float | None = None,
    title: str | None = None,
    age_years: float | None = None,
) -> Path:
    """Plot one patient's vital signs as a PNG: one small panel per vital, onset marked.

    Panels: heart rate, respiratory rate, SpO2, temperature, and systolic/diastolic blood
    pressure together; x axis in hours since the patient's first measurement.  The age-norm
    band (median +/- 2 SD of :func:`~secured_bio.telemetry.norms.vital_norms`) is shaded
    when the age is known.  Patient IDs never appear in the figure or logs: ``title`` is
    the caller's choice (default "patient").

    Parameters
    ----------
    vitals_df
        The canonical long table (``time`` ISO strings, or ``time_us``), or a
        :class:`SyntheticVitals` (then age and onset default to its tables).
    patient_id
        The patient to draw.
    path
        PNG to write (atomically).
    onset
        Deterioration onset: a datetime, ISO string, or hours since the first measurement.
    title
        Figure title.
    age_years
        Age for the norm band (default: from the :class:`SyntheticVitals`, else no band).

    Returns
    -------
    Path

    Raises
    ------
    InputError
        If the patient has no measurements in the table.

    Examples
    --------
    >>> import tempfile
    >>> from secured_bio.testing import simulate_vitals
    >>> c = simulate_vitals(tempfile.mkdtemp(), n_sites=1, patients_per_site=12, hours=24)
    >>> m = fit_vitals_model(c.vitals_paths[0], c.patients_paths[0], c.events_paths[0])
    >>> s = m.sample(2, deterioration=1.0, hours=24)
    >>> plot_vitals(s, "synth-0001", c.out_dir / "p.png").read_bytes()[:4]
    b'\\x89PNG'
    """
    from secured_bio.telemetry.model import _save

    return _save(vitals_figure(vitals_df, patient_id, onset=onset, title=title,
                               age_years=age_years), path)


def vitals_figure(
    vitals_df: pd.DataFrame | SyntheticVitals,
    patient_id: str,
    *,
    onset: datetime | str | float | None = None,
    title: str | None = None,
    age_years: float | None = None,
) -> Any:
    """Build the figure of :func:`plot_vitals` (a matplotlib Figure, not written).

    Only vitals the patient has measurements of get a panel (no empty panels); a legend
    names every mark: the measurements, the age-norm band and the onset line.

    Examples
    --------
    >>> v = pd.DataFrame({"patient_id": ["p"] * 2, "time_us": [0, 3_600_000_000],
    ...                   "vital": ["heart_rate"] * 2, "value": [120.0, 150.0]})
    >>> fig = vitals_figure(v, "p", onset=0.5, age_years=3.0)
    >>> len(fig.axes), [t.get_text() for t in fig.legends[0].get_texts()]
    (1, ['heart rate', 'age norm (median +/- 2 SD)', 'deterioration onset'])
    """
    from matplotlib.patches import Patch

    from secured_bio.telemetry.features import _parse_times
    from secured_bio.telemetry.model import _figure

    if isinstance(vitals_df, SyntheticVitals):
        syn = vitals_df
        vitals_df = syn.vitals
        pr = syn.patients[syn.patients["patient_id"] == patient_id]
        if age_years is None and len(pr):
            age_years = float(pr["age_years"].iloc[0])
        er = syn.events[syn.events["patient_id"] == patient_id]
        if onset is None and len(er) and str(er["onset_time"].iloc[0]):
            onset = str(er["onset_time"].iloc[0])
    g = vitals_df[vitals_df["patient_id"].astype(str) == str(patient_id)]
    if g.empty:
        raise InputError("patient has no measurements", where="plot_vitals(patient_id=...)",
                         expected="a patient of the vitals table", got="no rows",
                         fix="pass a patient ID present in the table")
    t = (g["time_us"].to_numpy(dtype=np.int64) if "time_us" in g
         else _parse_times(g["time"], "plot_vitals:time"))
    t0 = int(t.min())
    th = (t - t0) / _US_PER_HOUR
    on_h: float | None = None
    if onset is not None:
        if isinstance(onset, (int, float)):
            on_h = float(onset)
        else:
            when = datetime.fromisoformat(onset) if isinstance(onset, str) else onset
            from secured_bio.telemetry.features import to_microseconds

            on_h = (to_microseconds(when) - t0) / _US_PER_HOUR
    norms = vital_norms(age_years) if age_years is not None else None
    panels = [("heart rate (/min)", ("heart_rate",)),
              ("respiratory rate (/min)", ("respiratory_rate",)),
              ("SpO2 (%)", ("spo2",)), ("temperature (Cel)", ("temperature",)),
              ("blood pressure (mm[Hg])", ("systolic_bp", "diastolic_bp"))]
    val = g["value"].to_numpy(dtype=float)
    vit = g["vital"].to_numpy()
    measured = set(vit[np.isfinite(val)].tolist())
    panels = [(label, tuple(n for n in names if n in measured)) for label, names in panels]
    panels = [(label, names) for label, names in panels if names]
    fig = _figure(1, max(len(panels), 1), size=(7.0, 1.6))
    if not panels:  # values all missing: say so instead of drawing empty axes
        ax = fig.subplots()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no measured values", ha="center", va="center")
        fig.suptitle(title if title is not None else "patient", fontsize=9)
        return fig
    fig.set_figheight(1.6 * len(panels) + 0.5)
    axes = np.atleast_1d(fig.subplots(len(panels), 1, sharex=True))
    colors = {"heart_rate": "tab:blue", "respiratory_rate": "tab:orange", "spo2": "tab:cyan",
              "temperature": "tab:purple", "systolic_bp": "tab:brown",
              "diastolic_bp": "tab:olive"}
    handles: list[Any] = []
    for ax, (label, names) in zip(axes, panels, strict=True):
        for name in names:
            m = (vit == name) & np.isfinite(val)
            if norms is not None:
                med, sd = norms[name]
                ax.axhspan(med - 2 * sd, med + 2 * sd, color="tab:green", alpha=0.12, lw=0)
            (line,) = ax.plot(th[m], val[m], marker=".", ms=3, lw=0.8, c=colors.get(name),
                              label=name.replace("_bp", " BP").replace("_", " ")
                              .replace("spo2", "SpO2"))
            handles.append(line)
        if on_h is not None:
            ax.axvline(on_h, c="tab:red", ls="--", lw=1)
        ax.set_ylabel(label, fontsize=7)
        ax.tick_params(labelsize=7)
    if norms is not None:
        handles.append(Patch(color="tab:green", alpha=0.25, label="age norm (median +/- 2 SD)"))
    if on_h is not None:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], c="tab:red", ls="--", lw=1, label="deterioration onset"))
    axes[-1].set_xlabel("hours since first measurement")
    fig.suptitle(title if title is not None else "patient", fontsize=9)
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4),
               fontsize=6)
    return fig


# ------------------------------------------------------------------------------ evaluate


def _as_frames(x: Any, label: str) -> _Frames:
    if isinstance(x, SyntheticVitals):
        return _frames(x.vitals, x.patients, x.events)
    if isinstance(x, tuple):
        if len(x) != 3:
            raise ConfigError(f"{label} must be (vitals, patients, events)", where=label,
                              expected="a 3-tuple of DataFrames", got=f"{len(x)} items",
                              fix="pass the three canonical tables")
        return _frames(*x)
    if isinstance(x, (str, os.PathLike)):
        v, p, e = read_cohort(x)
        fr = _frames(v, p, e)
        fr.where = str(x)
        return fr
    raise ConfigError(f"{label} has an unsupported type", where=label,
                      expected="a folder/CSV path, (vitals, patients, events) or "
                               "SyntheticVitals", got=type(x).__name__,
                      fix="pass one of those")


def _zscores(fr: _Frames) -> pd.DataFrame:
    v = fr.vitals
    age = fr.patients["age_years"].reindex(v["patient_id"]).to_numpy(dtype=float)
    norms = {a: vital_norms(a) for a in np.unique(age)}
    med = np.array([norms[a][x][0] for a, x in zip(age, v["vital"], strict=True)])
    sd = np.array([norms[a][x][1] for a, x in zip(age, v["vital"], strict=True)])
    out = v[["patient_id", "time_us", "vital", "value"]].copy()
    out["z"] = (v["value"].to_numpy(dtype=float) - med) / sd
    return out


def _lag1(z: pd.DataFrame, name: str) -> float | None:
    g = z[z["vital"] == name].sort_values(["patient_id", "time_us"], kind="stable")
    zz = g["z"] - g.groupby("patient_id")["z"].transform("mean")
    same = g["patient_id"].to_numpy()[1:] == g["patient_id"].to_numpy()[:-1]
    a, b = zz.to_numpy()[:-1][same], zz.to_numpy()[1:][same]
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _corr(z: pd.DataFrame) -> np.ndarray:
    w = z.pivot_table(index=["patient_id", "time_us"], columns="vital", values="z",
                      aggfunc="mean").reindex(columns=list(_VITALS))
    return _pairwise_corr(w.to_numpy(dtype=float))


def _episode_effect(z: pd.DataFrame, fr: _Frames, name: str) -> float | None:
    if fr.events is None:
        return None
    g = z[z["vital"] == name]
    on = fr.events["onset_us"].reindex(g["patient_id"]).to_numpy(dtype=np.int64)
    rel = np.where(on >= 0, (g["time_us"].to_numpy(dtype=np.int64) - on) / _US_PER_HOUR,
                   np.nan)
    d = pd.DataFrame({"p": g["patient_id"].to_numpy(), "z": g["z"].to_numpy(), "rel": rel})
    d = d[np.isfinite(d["rel"])]
    pre = d[d["rel"] < 0].groupby("p")["z"].mean()
    post = d[(d["rel"] >= 0) & (d["rel"] < 12)].groupby("p")["z"].mean()
    both = pre.index.intersection(post.index)
    if len(both) == 0:
        return None
    return float((post[both] - pre[both]).mean())


def _features(fr: _Frames, horizon: float, delay: float) -> pd.DataFrame:
    from secured_bio.telemetry.features import label_rows, window_features

    f = window_features(fr.vitals[["patient_id", "time_us", "vital", "value"]], fr.patients)
    assert fr.events is not None
    return label_rows(f, fr.events, horizon_hours=horizon, event_delay_hours=delay)


def _subset(fr: _Frames, ids: Sequence[str]) -> _Frames:
    s = set(ids)
    ev = fr.events.loc[fr.events.index.isin(s)] if fr.events is not None else None
    return _Frames(fr.vitals[fr.vitals["patient_id"].isin(s)],
                   fr.patients.loc[fr.patients.index.isin(s)], ev, fr.where)


def _summaries(fr: _Frames) -> pd.DataFrame:
    """One row per patient: age, sex, and per vital the mean/SD/min/max z-score."""
    z = _zscores(fr)
    agg = z.groupby(["patient_id", "vital"])["z"].agg(["mean", "std", "min", "max"])
    wide = agg.unstack("vital")
    cols = {}
    for name in _VITALS:
        for s in ("mean", "std", "min", "max"):
            key = (s, name)
            cols[f"{name}_{s}"] = (wide[key] if key in wide.columns
                                   else pd.Series(0.0, index=wide.index))
    out = pd.DataFrame(cols, index=wide.index).fillna(0.0)
    out.insert(0, "sex", fr.patients["sex"].reindex(out.index).astype(str))
    out.insert(0, "age_years", fr.patients["age_years"].reindex(out.index).astype(float))
    return out.reset_index(drop=True)


def _trajectory_keys(fr: _Frames) -> set[bytes]:
    """One key per patient: the sequence of values of each vital in time order."""
    v = fr.vitals.sort_values(["patient_id", "vital", "time_us"], kind="stable")
    keys = set()
    for _, g in v.groupby("patient_id", sort=False):
        parts = [name.encode() + np.round(g.loc[g["vital"] == name, "value"].to_numpy(
            dtype=float), 4).tobytes() for name in _VITALS]
        keys.add(b"|".join(parts))
    return keys


def holdout_ids(ids: Sequence[str], deteriorating: set[str], fraction: float,
                rng: np.random.Generator) -> list[str]:
    """Pick ``round(fraction * n)`` patients of each stratum (deteriorating first) to hold out.

    Examples
    --------
    >>> ids = [f"p{i}" for i in range(10)]
    >>> held = holdout_ids(ids, {"p0", "p1", "p2"}, 0.4, np.random.default_rng(0))
    >>> len(held), len(set(held) & {"p0", "p1", "p2"})
    (4, 1)
    """
    out: list[str] = []
    for grp in ([i for i in ids if i in deteriorating], [i for i in ids if i not in deteriorating]):
        k = int(round(fraction * len(grp)))
        out += [grp[j] for j in rng.permutation(len(grp))[:k]]
    return out


@contextlib.contextmanager
def _thread_limit(n: int | None) -> Iterator[None]:
    """Limit OpenMP/BLAS threads (without importing torch, unlike model._threads)."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(int(n)):
        yield


def evaluate_vitals(
    real_dir_or_frames: Any,
    synthetic: Any,
    *,
    holdout: Any = None,
    seed: int = 0,
    horizon_hours: float = 6.0,
    event_delay_hours: float = 6.0,
    n_threads: int | None = None,
    differential_privacy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fidelity, utility and privacy of synthetic vital signs against the real ones.

    Parameters
    ----------
    real_dir_or_frames
        The real data the generator was fitted on: a cohort folder or vitals CSV
        (:func:`read_cohort`), or a tuple ``(vitals, patients, events)`` of DataFrames.
    synthetic
        A :class:`SyntheticVitals`, a folder written by :func:`write_synthetic_vitals`, or a
        tuple of DataFrames.
    holdout
        Real patients NOT used for fitting (same forms as the real data).  Without it, the
        real patients are split 70/30 (seeded, stratified by deterioration): utility is then
        optimistic (the test patients shaped the generator) and membership inference is
        skipped.
    seed
        Seed of the split and of the models.
    horizon_hours, event_delay_hours
        Labels of the utility models (:func:`secured_bio.telemetry.features.label_rows`);
        the default delay of 6 h is the telemonitoring pilot's.
    n_threads
        Most OpenMP/BLAS threads while training the utility models (None: the libraries'
        default; 1 is often faster on a small or busy host).
    differential_privacy
        The generator's guarantee (``VitalsModel.differential_privacy``), stated in the
        privacy section; None: the section says the generator is not differentially private.

    Returns
    -------
    dict
        Format ``secured_bio.synth_vitals_report`` version 1 with ``fidelity`` (per vital:
        KS statistic and Wasserstein distance of values and of z-scores, lag-1
        autocorrelation real/synthetic, episode effect real/synthetic; the cross-vital
        correlation matrix's max and mean absolute difference), ``utility`` (AUROC of the
        gradient-boosting deterioration model trained on synthetic (TSTR) and on real
        training patients (TRTR), both tested on held-out real patients, and their ratio) and
        ``privacy`` (the DCR membership-inference attack and the count of exact copies),
        with ``attack`` describing the attack.

    Raises
    ------
    ConfigError
        If an input has an unsupported type.
    InputFileNotFoundError, SchemaError, InputError
        As the readers.

    Examples
    --------
    >>> import tempfile
    >>> from secured_bio.testing import simulate_vitals
    >>> c = simulate_vitals(tempfile.mkdtemp(), n_sites=1, patients_per_site=12, hours=24)
    >>> m = fit_vitals_model(c.vitals_paths[0], c.patients_paths[0], c.events_paths[0])
    >>> r = evaluate_vitals(c.out_dir, m.sample(12, hours=24), n_threads=1)
    >>> r["format"], r["privacy"]["exact_copies"]
    ('secured_bio.synth_vitals_report', 0)
    """
    from scipy.stats import ks_2samp, wasserstein_distance

    real = _as_frames(real_dir_or_frames, "real")
    syn = _as_frames(synthetic, "synthetic")
    hold = _as_frames(holdout, "holdout") if holdout is not None else None
    zr, zs = _zscores(real), _zscores(syn)
    fidelity: dict[str, Any] = {"per_vital": {}}
    for name in _VITALS:
        a, b = zr[zr["vital"] == name], zs[zs["vital"] == name]
        entry: dict[str, Any] = {"n_real": len(a), "n_synthetic": len(b)}
        if len(a) and len(b):
            for col, tag in (("value", "value"), ("z", "z")):
                x, y = a[col].to_numpy(dtype=float), b[col].to_numpy(dtype=float)
                entry[f"ks_{tag}"] = float(ks_2samp(x, y).statistic)
                entry[f"wasserstein_{tag}"] = float(wasserstein_distance(x, y))
        entry["lag1_autocorr_real"] = _lag1(zr, name)
        entry["lag1_autocorr_synthetic"] = _lag1(zs, name)
        entry["episode_shift_real"] = _episode_effect(zr, real, name)
        entry["episode_shift_synthetic"] = _episode_effect(zs, syn, name)
        fidelity["per_vital"][name] = entry
    cr, cs = _corr(zr), _corr(zs)
    off = ~np.eye(len(_VITALS), dtype=bool)
    diff = np.abs(cr - cs)[off]
    fidelity["correlation"] = {"max_abs_difference": float(diff.max()),
                               "mean_abs_difference": float(diff.mean()),
                               "real": np.round(cr, 4).tolist(),
                               "synthetic": np.round(cs, 4).tolist(),
                               "order": list(_VITALS)}
    # Train/test split of the real patients.
    ids = sorted(real.vitals["patient_id"].unique())
    if hold is not None:
        train_ids, test = ids, hold
        split = "holdout given: all real patients train, holdout patients test"
    else:
        det = (set(real.events.index[real.events["onset_us"] >= 0])
               if real.events is not None else set())
        test_ids = holdout_ids(ids, det, 0.3, np.random.default_rng(seed))
        train_ids = [i for i in ids if i not in set(test_ids)]
        test = _subset(real, test_ids)
        split = ("no holdout: real patients split 70/30 (seeded, stratified); the test "
                 "patients were seen by the generator, so utility is optimistic")
    train = _subset(real, train_ids)
    utility: dict[str, Any] = {"split": split, "model": "hgb (telemetry.model.train_model)",
                               "horizon_hours": horizon_hours,
                               "event_delay_hours": event_delay_hours}
    if real.events is None or syn.events is None or test.events is None:
        utility["skipped"] = "events tables are needed for labels"
    else:
        from sklearn.metrics import roc_auc_score

        from secured_bio.telemetry.model import train_model

        try:
            f_test = _features(test, horizon_hours, event_delay_hours)
            f_train = _features(train, horizon_hours, event_delay_hours)
            f_syn = _features(syn, horizon_hours, event_delay_hours)
            y = f_test["label"].to_numpy()
            aucs: dict[str, float | None] = {}
            for tag, f in (("trtr", f_train), ("tstr", f_syn)):
                try:
                    with _thread_limit(n_threads):
                        mdl = train_model(f, seed=seed, horizon_hours=horizon_hours)
                except ValueError as e:
                    # Degenerate synthetic data (e.g. a very noisy DP model): a feature
                    # never observed.  The real model must train; the synthetic one may fail.
                    if tag == "trtr":
                        raise
                    aucs[tag] = None
                    utility["tstr_failed"] = f"training on the synthetic data failed: {e}"
                    continue
                aucs[tag] = float(roc_auc_score(y, mdl.predict(
                    f_test[mdl.feature_names].to_numpy())))
            trtr, tstr = aucs["trtr"], aucs["tstr"]
            utility.update({
                "auroc_trtr": trtr, "auroc_tstr": tstr,
                "ratio": tstr / trtr if tstr is not None and trtr else None,
                "test_rows": len(f_test), "test_positive": int(y.sum()),
                "train_patients_real": len(train_ids),
                "train_patients_synthetic": int(syn.vitals["patient_id"].nunique()),
                "test_patients": int(test.vitals["patient_id"].nunique())})
        except InputError as e:  # a split without both classes
            utility["skipped"] = f"{e.what} ({e.got})"
    privacy: dict[str, Any] = {
        "attack": "distance to closest record (Gower) of per-patient summary vectors (age, "
                  "sex, mean/SD/min/max z-score of each vital) to the synthetic patients' "
                  "vectors; members (patients the generator was fitted on) should not be "
                  "closer than holdout patients: AUC 0.5 = no leakage "
                  "(secured_bio.privacy.assess.membership.dcr_membership)",
    }
    if differential_privacy:
        dp = differential_privacy
        privacy["differential_privacy"] = dp
        privacy["guarantee"] = (
            f"({dp['epsilon']:g}, {dp['delta']:g})-differential privacy, {dp['adjacency']}, "
            "for the fitted model and everything sampled from it"
            + ("" if dp.get("randomness", {}).get("secure", True)
               else " -- DOES NOT HOLD: insecure reproducible noise (tests only)"))
    else:
        privacy["differential_privacy"] = None
        privacy["guarantee"] = ("none: the generator is fitted on exact aggregates and is NOT "
                                "differentially private; the attacks below are empirical "
                                "evidence only")
    real_keys = _trajectory_keys(real) | (_trajectory_keys(hold) if hold is not None
                                          else set())
    privacy["exact_copies"] = len(_trajectory_keys(syn) & real_keys)
    if hold is None:
        privacy["membership_inference"] = None
        privacy["skipped"] = "no holdout: membership inference needs real non-members"
    else:
        from secured_bio.privacy.assess.membership import dcr_membership

        privacy["membership_inference"] = dcr_membership(
            _summaries(real), _summaries(hold), _summaries(syn))
    logger.info("evaluated %d synthetic against %d real patients",
                syn.vitals["patient_id"].nunique(), len(ids))
    return {"format": REPORT_FORMAT, "format_version": REPORT_FORMAT_VERSION,
            "n_real_patients": len(ids),
            "n_synthetic_patients": int(syn.vitals["patient_id"].nunique()),
            "n_holdout_patients": (int(hold.vitals["patient_id"].nunique())
                                   if hold is not None else 0),
            "fidelity": fidelity, "utility": utility, "privacy": privacy}
