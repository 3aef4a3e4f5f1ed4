"""Tests of simulate_vitals: CSV and FHIR content, planted deterioration, atomic writes."""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from secured_bio.errors import ConfigError
from secured_bio.testing import VITALS, VitalsCohort, simulate_vitals, vital_norms

UNITS = {"heart_rate": "/min", "respiratory_rate": "/min", "spo2": "%", "temperature": "Cel",
         "systolic_bp": "mm[Hg]", "diastolic_bp": "mm[Hg]"}
LOINC = {"8867-4": "heart_rate", "9279-1": "respiratory_rate", "59408-5": "spo2",
         "8310-5": "temperature", "8480-6": "systolic_bp", "8462-4": "diastolic_bp"}
SMALL = dict(n_sites=2, patients_per_site=3, hours=6, interval_minutes=30)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> VitalsCohort:
    return simulate_vitals(tmp_path_factory.mktemp("vitals"), patients_per_site=10)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _all_bytes(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _fhir_measurements(path: Path) -> set[tuple[str, str, str, float]]:
    bundle = json.loads(path.read_text())
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    out = set()
    ids = set()
    for entry in bundle["entry"]:
        obs = entry["resource"]
        assert entry["fullUrl"].startswith("urn:uuid:")
        assert obs["resourceType"] == "Observation" and obs["status"] == "final"
        assert re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", obs["id"])  # FHIR id syntax
        ids.add(obs["id"])
        cat = obs["category"][0]["coding"][0]
        assert cat["code"] == "vital-signs"
        assert cat["system"] == "http://terminology.hl7.org/CodeSystem/observation-category"
        pid = obs["subject"]["reference"].removeprefix("Patient/")
        when = obs["effectiveDateTime"]
        assert datetime.fromisoformat(when).utcoffset() is not None
        code = obs["code"]["coding"][0]
        assert code["system"] == "http://loinc.org"
        if code["code"] == "85354-9":
            parts = [(c["code"]["coding"][0]["code"], c["valueQuantity"])
                     for c in obs["component"]]
            assert [p[0] for p in parts] == ["8480-6", "8462-4"]
        else:
            parts = [(code["code"], obs["valueQuantity"])]
        for loinc, q in parts:
            vital = LOINC[loinc]
            assert q["system"] == "http://unitsofmeasure.org"
            assert q["code"] == q["unit"] == UNITS[vital]
            out.add((pid, when, vital, float(q["value"])))
    assert len(ids) == len(bundle["entry"])
    return out


def test_simulate_vitals__csv_has_exact_columns_units_and_order(cohort: VitalsCohort) -> None:
    for path in cohort.vitals_paths:
        header = path.read_text().splitlines()[0]
        assert header == "patient_id,time,vital,value,unit"
        rows = _rows(path)
        assert len(rows) == cohort.n_measurements[cohort.vitals_paths.index(path)]
        assert {r["vital"] for r in rows} == set(UNITS)
        for r in rows:
            assert r["unit"] == UNITS[r["vital"]]
        keys = [(r["patient_id"], datetime.fromisoformat(r["time"])) for r in rows]
        assert keys == sorted(keys)
        for r in rows[:50]:
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", r["time"])
    assert set(VITALS) == set(UNITS)


def test_simulate_vitals__values_plausible_and_some_missing(cohort: VitalsCohort) -> None:
    rows = [r for p in cohort.vitals_paths for r in _rows(p)]
    by_vital = defaultdict(list)
    for r in rows:
        by_vital[r["vital"]].append(float(r["value"]))
    assert max(by_vital["spo2"]) <= 100 and min(by_vital["spo2"]) > 70
    assert 30 <= min(by_vital["heart_rate"]) and max(by_vital["heart_rate"]) < 260
    assert 34 < np.mean(by_vital["temperature"]) < 38.5
    assert np.all(np.array(by_vital["systolic_bp"]) > np.array(by_vital["diastolic_bp"]))
    full = 30 * 48 * 6
    assert 0.85 * full < len(rows) < full  # ~5 % missing
    assert len(by_vital["systolic_bp"]) == len(by_vital["diastolic_bp"])


def test_simulate_vitals__patients_and_events_consistent(cohort: VitalsCohort) -> None:
    pats = [r for p in cohort.patients_paths for r in _rows(p)]
    evts = [r for p in cohort.events_paths for r in _rows(p)]
    ids = [r["patient_id"] for r in pats]
    assert ids == list(cohort.patient_ids) == [r["patient_id"] for r in evts]
    assert len(set(ids)) == 30
    for i, site in enumerate(cohort.sites):
        assert all(pid.startswith(f"{site}-") for pid in ids[i * 10:(i + 1) * 10])
    ages = np.array([float(r["age_years"]) for r in pats])
    assert ages.min() >= 0 and ages.max() <= 18 and (ages < 1).any()
    assert {r["sex"] for r in pats} <= {"F", "M"}
    assert [r["deterioration"] == "1" for r in evts] == list(cohort.deteriorating)
    assert sum(cohort.deteriorating) == 9  # 30 % of 10 per site
    times = defaultdict(list)
    for p in cohort.vitals_paths:
        for r in _rows(p):
            times[r["patient_id"]].append(datetime.fromisoformat(r["time"]))
    for r in evts:
        if r["deterioration"] == "1":
            onset = datetime.fromisoformat(r["onset_time"])
            assert min(times[r["patient_id"]]) < onset < max(times[r["patient_id"]])
        else:
            assert r["onset_time"] == ""


def test_simulate_vitals__fhir_bundle_holds_same_measurements_as_csv(
    cohort: VitalsCohort,
) -> None:
    for csv_path, fhir_path in zip(cohort.vitals_paths, cohort.fhir_paths, strict=True):
        from_csv = {(r["patient_id"], r["time"], r["vital"], float(r["value"]))
                    for r in _rows(csv_path)}
        assert _fhir_measurements(fhir_path) == from_csv
        assert len(from_csv) == len(_rows(csv_path))


def test_simulate_vitals__max_heart_rate_zscore_flags_deterioration(
    cohort: VitalsCohort,
) -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    age = {r["patient_id"]: float(r["age_years"]) for p in cohort.patients_paths
           for r in _rows(p)}
    max_z: dict[str, float] = defaultdict(lambda: -np.inf)
    min_spo2: dict[str, float] = defaultdict(lambda: np.inf)
    for p in cohort.vitals_paths:
        for r in _rows(p):
            pid, v = r["patient_id"], float(r["value"])
            if r["vital"] == "heart_rate":
                med, sd = vital_norms(age[pid])["heart_rate"]
                max_z[pid] = max(max_z[pid], (v - med) / sd)
            elif r["vital"] == "spo2":
                min_spo2[pid] = min(min_spo2[pid], v)
    y = np.array(cohort.deteriorating, dtype=int)
    ids = cohort.patient_ids
    assert metrics.roc_auc_score(y, [max_z[i] for i in ids]) > 0.8
    assert metrics.roc_auc_score(y, [-min_spo2[i] for i in ids]) > 0.8


def test_simulate_vitals__norms_follow_age() -> None:
    newborn, teen = vital_norms(0.1), vital_norms(16)
    assert newborn["heart_rate"][0] > teen["heart_rate"][0] + 50
    assert newborn["respiratory_rate"][0] > 2 * teen["respiratory_rate"][0]
    assert newborn["systolic_bp"][0] < teen["systolic_bp"][0]
    assert all(sd > 0 for _, sd in vital_norms(5).values())


def test_simulate_vitals__same_seed_same_bytes(tmp_path: Path) -> None:
    simulate_vitals(tmp_path / "a", seed=5, **SMALL)
    simulate_vitals(tmp_path / "b", seed=5, **SMALL)
    assert _all_bytes(tmp_path / "a") == _all_bytes(tmp_path / "b")


def test_simulate_vitals__different_seed_different_content(tmp_path: Path) -> None:
    a = simulate_vitals(tmp_path / "a", seed=5, **SMALL)
    b = simulate_vitals(tmp_path / "b", seed=6, **SMALL)
    assert a.vitals_paths[0].read_text() != b.vitals_paths[0].read_text()


def test_simulate_vitals__no_temporary_files_left(cohort: VitalsCohort) -> None:
    files = [p for p in cohort.out_dir.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.endswith(".tmp") or p.name.startswith(".")]
    assert len(files) == 1 + 4 * 3


def test_simulate_vitals__failure_mid_write_leaves_no_final_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import secured_bio.testing._vitals as mod

    def boom(self: object) -> None:
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(mod._FhirWriter, "close", boom)
    with pytest.raises(OSError, match="simulated"):
        simulate_vitals(tmp_path, **SMALL)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_sites": 0}, "n_sites is too small"),
        ({"patients_per_site": 0}, "patients_per_site is too small"),
        ({"hours": 0}, "hours is too small"),
        ({"hours": 1, "interval_minutes": 90}, "interval_minutes is longer than the stay"),
        ({"deterioration_fraction": 1.5}, "deterioration_fraction is out of range"),
        ({"missing_rate": -0.1}, "missing_rate is out of range"),
        ({"seed": "1"}, "seed must be an integer"),
    ],
)
def test_simulate_vitals__bad_parameters_raise_config_error(
    tmp_path: Path, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        simulate_vitals(tmp_path, **kwargs)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
