"""Seeded multi-site paediatric vital-signs cohort: long CSV and FHIR R4 Observation bundles."""

from __future__ import annotations

import csv
import logging
import math
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from secured_bio._atomic import atomic_paths
from secured_bio.errors import ConfigError
from secured_bio.telemetry.fhir import _BP_PANEL, VITALS, FhirBundleWriter
from secured_bio.telemetry.norms import vital_norms
from secured_bio.testing._common import (
    as_dir,
    check_fraction,
    check_int,
    check_seed,
    child_rng,
    site_names,
    write_json,
)

__all__ = ["VitalsCohort", "simulate_vitals", "vital_norms", "VITALS"]

logger = logging.getLogger(__name__)

FORMAT_NAME = "secured_bio.demo_vitals"
FORMAT_VERSION = 1
_WHERE = "simulate_vitals"


# Planted deterioration (e.g. evolving sepsis or respiratory failure): a sigmoid ramp over
# ~6 h after onset; shifts in SD units for HR/RR/BP and absolute units for SpO2/temperature.
_DETERIORATION = {
    "heart_rate": 3.0, "respiratory_rate": 3.0, "systolic_bp": -1.0, "diastolic_bp": -0.5,
    "spo2": -6.0, "temperature": 1.3,
}
# The bundle writer lives in secured_bio.telemetry.fhir (shared with the synthetic-vitals
# writer); the old private name stays for callers and tests that patch it.
_FhirWriter = FhirBundleWriter
_TZ = timezone(timedelta(hours=1))
_START = datetime(2026, 1, 5, 8, 0, tzinfo=_TZ)


@dataclass(frozen=True)
class VitalsCohort:
    """What :func:`simulate_vitals` wrote.

    Attributes
    ----------
    out_dir
        Output folder.
    sites
        Site names.
    vitals_paths, fhir_paths, patients_paths, events_paths
        Per-site ``vitals.csv``, ``vitals.fhir.json``, ``patients.csv``, ``events.csv``.
    truth_path
        ``truth.json``.
    patient_ids
        All patient IDs (``site1-0001``, ...), in site order.
    deteriorating
        Whether each patient has a planted deterioration episode, same order.
    n_measurements
        Rows of each site's ``vitals.csv``.
    hours, interval_minutes
        Length of stay and time between measurement rounds.
    seed
        The seed used.
    """

    out_dir: Path
    sites: tuple[str, ...]
    vitals_paths: tuple[Path, ...]
    fhir_paths: tuple[Path, ...]
    patients_paths: tuple[Path, ...]
    events_paths: tuple[Path, ...]
    truth_path: Path
    patient_ids: tuple[str, ...]
    deteriorating: tuple[bool, ...]
    n_measurements: tuple[int, ...]
    hours: int
    interval_minutes: int
    seed: int


def simulate_vitals(
    out_dir: str | os.PathLike[str],
    *,
    n_sites: int = 3,
    patients_per_site: int = 20,
    hours: int = 48,
    interval_minutes: int = 60,
    deterioration_fraction: float = 0.3,
    missing_rate: float = 0.05,
    seed: int = 0,
    group_shift: float = 0.0,
) -> VitalsCohort:
    """Simulate paediatric ward vital signs at several sites, with planted deteriorations.

    Patients are 0-18 years old (about a third infants).  Each vital sign is the age norm
    (:func:`vital_norms`) plus a patient offset, a slow AR(1) fluctuation (3 h time constant),
    a circadian rhythm (HR, RR, temperature lowest around 04:00) and measurement noise.
    A share ``deterioration_fraction`` of patients (rounded, per site) deteriorate: from an
    onset between 20 % and 75 % of the stay, HR and RR rise by 3 SD, SpO2 falls by 6 %,
    temperature rises by 1.3 Cel and blood pressure falls, along a sigmoid ramp of ~6 h.
    About ``missing_rate`` of measurements are missing (systolic and diastolic together).

    Files written in ``out_dir/site{i}/`` (``vitals.csv`` appears last) and ``out_dir``:

    - ``vitals.csv``: long table ``patient_id,time,vital,value,unit``; ``vital`` in
      :data:`VITALS`, UCUM units, ISO 8601 times with UTC offset; sorted by patient, time.
    - ``vitals.fhir.json``: FHIR R4 Bundle (``collection``) of vital-signs Observations
      holding the same measurements (blood pressure as one panel with two components).
    - ``patients.csv``: ``patient_id,age_years,sex`` (sex ``F``/``M``).
    - ``events.csv``: ``patient_id,deterioration,onset_time`` (1/0; empty onset if 0).
    - ``out_dir/truth.json``: format name/version, parameters, norms source, seed.

    Patient IDs are ``site{i}-{nnnn}``: hyphens, because FHIR resource ids allow no ``_``.

    Parameters
    ----------
    out_dir
        Output folder.
    n_sites
        Number of sites (>= 1).
    patients_per_site
        Patients per site (>= 1).
    hours
        Length of each stay in hours (>= 1).
    interval_minutes
        Minutes between measurement rounds (1 to ``hours * 60``).
    deterioration_fraction
        Share of patients with a deterioration episode, in [0, 1].
    missing_rate
        Share of missing measurements, in [0, 0.9].
    seed
        Seed (>= 0); the same seed gives byte-identical files.
    group_shift
        Planted subgroup shift for fairness benchmarks, in [0, 1] (0, the default, changes
        nothing): children aged 1-4 years (the audit's ``1-4`` band, about 16 % of patients)
        present deterioration atypically -- the HR, RR, blood-pressure and temperature
        changes are scaled by ``1 - 2 * group_shift`` (0.5 removes them, 1 reverses them:
        falling heart and breathing rates, as in exhausted toddlers) and the SpO2 fall by
        ``1 - group_shift``, so a model fitted mostly on the other children mis-ranks their
        episodes unless it learns the age interaction (``age_years`` is a feature).

    Returns
    -------
    VitalsCohort
        Paths, patients and which of them deteriorate.

    Raises
    ------
    ConfigError
        If a parameter is out of range.

    Examples
    --------
    >>> import tempfile
    >>> c = simulate_vitals(tempfile.mkdtemp(), n_sites=1, patients_per_site=4, hours=6,
    ...                     seed=1)
    >>> c.patient_ids, sum(c.deteriorating)
    (('site1-0001', 'site1-0002', 'site1-0003', 'site1-0004'), 1)
    """
    n_sites = check_int("n_sites", n_sites, minimum=1, where=_WHERE)
    patients_per_site = check_int("patients_per_site", patients_per_site, minimum=1,
                                  where=_WHERE)
    hours = check_int("hours", hours, minimum=1, where=_WHERE)
    interval_minutes = check_int("interval_minutes", interval_minutes, minimum=1, where=_WHERE)
    if interval_minutes > hours * 60:
        raise ConfigError(
            "interval_minutes is longer than the stay",
            where=_WHERE,
            expected=f"interval_minutes <= hours * 60 = {hours * 60}",
            got=f"interval_minutes={interval_minutes}",
            fix="lower interval_minutes or raise hours",
        )
    deterioration_fraction = check_fraction("deterioration_fraction", deterioration_fraction,
                                            where=_WHERE)
    missing_rate = check_fraction("missing_rate", missing_rate, where=_WHERE, high=0.9)
    group_shift = check_fraction("group_shift", group_shift, where=_WHERE)
    seed = check_seed(seed, where=_WHERE)
    out = as_dir(out_dir, where=_WHERE)
    sites = site_names(n_sites)
    n_times = hours * 60 // interval_minutes
    width = max(4, len(str(patients_per_site)))

    all_ids: list[str] = []
    all_det: list[bool] = []
    n_meas: list[int] = []
    paths: list[tuple[Path, Path, Path, Path]] = []
    for i, site in enumerate(sites):
        site_dir = out / site
        p = (site_dir / "vitals.csv", site_dir / "vitals.fhir.json",
             site_dir / "patients.csv", site_dir / "events.csv")
        n_det = int(round(deterioration_fraction * patients_per_site))
        det = child_rng(seed, 30, i).permutation(np.arange(patients_per_site) < n_det)
        rows = 0
        with atomic_paths(*p) as (t_csv, t_fhir, t_pat, t_evt), \
                open(t_csv, "w", encoding="utf-8", newline="") as f_csv, \
                open(t_fhir, "w", encoding="utf-8") as f_fhir, \
                open(t_pat, "w", encoding="utf-8", newline="") as f_pat, \
                open(t_evt, "w", encoding="utf-8", newline="") as f_evt:
            w_csv = csv.writer(f_csv, lineterminator="\n")
            w_pat = csv.writer(f_pat, lineterminator="\n")
            w_evt = csv.writer(f_evt, lineterminator="\n")
            w_csv.writerow(["patient_id", "time", "vital", "value", "unit"])
            w_pat.writerow(["patient_id", "age_years", "sex"])
            w_evt.writerow(["patient_id", "deterioration", "onset_time"])
            fhir = _FhirWriter(f_fhir, bundle_id=f"{site}-vitals",
                               tag=f"{FORMAT_NAME}/{FORMAT_VERSION}")
            for j in range(patients_per_site):
                pid = f"{site}-{j + 1:0{width}d}"
                pat = _simulate_patient(child_rng(seed, 31, i, j), bool(det[j]), n_times,
                                        interval_minutes, missing_rate, group_shift)
                w_pat.writerow([pid, f"{pat['age']:.2f}", pat["sex"]])
                w_evt.writerow([pid, int(det[j]),
                                pat["onset"].isoformat() if pat["onset"] is not None else ""])
                for k, when in enumerate(pat["times"]):
                    iso = when.isoformat()
                    for vital, spec in VITALS.items():
                        v = pat["values"][vital][k]
                        if not math.isnan(v):
                            w_csv.writerow([pid, iso, vital, _fmt(v, spec.decimals), spec.unit])
                            rows += 1
                    fhir.add_round(pid, k, iso, {vn: pat["values"][vn][k] for vn in VITALS})
                all_ids.append(pid)
                all_det.append(bool(det[j]))
            fhir.close()
        paths.append(p)
        n_meas.append(rows)
        logger.info("wrote %d measurements of %d patients for %s", rows, patients_per_site, site)

    truth_path = out / "truth.json"
    write_json(truth_path, {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "generator": "secured_bio.testing.simulate_vitals",
        "seed": seed,
        "parameters": {
            "n_sites": n_sites,
            "patients_per_site": patients_per_site,
            "hours": hours,
            "interval_minutes": interval_minutes,
            "deterioration_fraction": deterioration_fraction,
            "missing_rate": missing_rate,
            **({"group_shift": group_shift, "group_shift_ages": [1, 5]}
               if group_shift else {}),
        },
        "vitals": {k: {"unit": v.unit, "loinc": v.loinc} for k, v in VITALS.items()},
        "blood_pressure_panel_loinc": _BP_PANEL[0],
        "norms": "HR/RR: Fleming et al. Lancet 2011; BP: NHBPEP 2004 / Flynn et al. 2017",
        "deterioration_shift": _DETERIORATION,
        "files": {"per_site": [q.name for q in paths[0]]},
    })
    return VitalsCohort(
        out_dir=out,
        sites=sites,
        vitals_paths=tuple(q[0] for q in paths),
        fhir_paths=tuple(q[1] for q in paths),
        patients_paths=tuple(q[2] for q in paths),
        events_paths=tuple(q[3] for q in paths),
        truth_path=truth_path,
        patient_ids=tuple(all_ids),
        deteriorating=tuple(all_det),
        n_measurements=tuple(n_meas),
        hours=hours,
        interval_minutes=interval_minutes,
        seed=seed,
    )


def _fmt(v: float, decimals: int) -> str:
    return f"{v:.{decimals}f}"


def _simulate_patient(
    rng: np.random.Generator, deteriorates: bool, n_times: int, interval: int,
    missing_rate: float, group_shift: float = 0.0,
) -> dict[str, Any]:
    """One patient's age, sex, measurement times and values (NaN = missing)."""
    age = float(rng.uniform(0.05, 1.0) if rng.random() < 0.3 else rng.uniform(1.0, 18.0))
    sex = str(rng.choice(["F", "M"]))
    start = _START + timedelta(hours=int(rng.integers(0, 7 * 24)))
    t_h = np.arange(n_times) * interval / 60.0
    times = [start + timedelta(minutes=k * interval) for k in range(n_times)]
    clock = (start.hour + t_h) % 24
    circadian = np.cos(2 * np.pi * (clock - 16) / 24)  # peak 16:00, trough 04:00
    phi = math.exp(-(interval / 60.0) / 3.0)  # AR(1), 3 h time constant
    onset_h = None
    ramp = np.zeros(n_times)
    if deteriorates:
        onset_h = float(rng.uniform(0.2, 0.75) * n_times * interval / 60.0)
        onset_h = round(onset_h * 60 / interval) * interval / 60  # on a measurement round
        ramp = 1.0 / (1.0 + np.exp(-(t_h - onset_h - 3.0) / 1.2))
    norms = vital_norms(age)
    values: dict[str, np.ndarray] = {}
    for vital in VITALS:
        offset = rng.normal(0.0, 0.6)
        ar = np.empty(n_times)
        ar[0] = rng.normal(0.0, 0.5)
        innov = rng.normal(0.0, 0.5 * math.sqrt(1 - phi**2), n_times)
        for k in range(1, n_times):
            ar[k] = phi * ar[k - 1] + innov[k]
        circ = 0.4 * circadian if vital in ("heart_rate", "respiratory_rate", "temperature") \
            else 0.0
        z = offset + ar + circ + rng.normal(0.0, 0.3, n_times)
        med, sd = norms[vital]
        shift = _DETERIORATION[vital] * ramp
        if group_shift and 1.0 <= age < 5.0:  # atypical presentation (planted shift)
            shift = shift * (1.0 - (1.0 if vital == "spo2" else 2.0) * group_shift)
        if vital in ("spo2", "temperature"):
            x = med + sd * z + shift
        else:
            x = med + sd * (z + shift)
        if vital == "spo2":
            x = np.minimum(x, 100.0)
        values[vital] = np.round(x, VITALS[vital].decimals)
    values["respiratory_rate"] = np.maximum(values["respiratory_rate"], 4.0)
    values["heart_rate"] = np.maximum(values["heart_rate"], 30.0)
    # Missing measurements: each vital independently, blood pressure as a pair.
    for vital in ("heart_rate", "respiratory_rate", "spo2", "temperature", "systolic_bp"):
        miss = rng.random(n_times) < missing_rate
        values[vital][miss] = np.nan
        if vital == "systolic_bp":
            values["diastolic_bp"][miss] = np.nan
    onset = start + timedelta(hours=onset_h) if onset_h is not None else None
    return {"age": age, "sex": sex, "times": times, "values": values, "onset": onset}
