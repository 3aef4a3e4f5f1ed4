"""FHIR R4 / CSV vital-sign ingest: units, panels, time zones, demo round trip, bad input."""

from __future__ import annotations

import csv
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import scipy.constants as sc

from secured_bio.errors import ConfigError, FormatError, InputFileNotFoundError, SchemaError
from secured_bio.specs import validate
from secured_bio.telemetry.ingest import (
    REPORT_FORMAT,
    IngestReport,
    ingest_vitals,
    read_vitals,
)

_CAT = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                     "code": "vital-signs"}]}]
_UCUM = "http://unitsofmeasure.org"
# Distinctive patient id and values: error messages must never show them.
SECRET_PID = "zq-secret-7731"


def obs(code: str, value: float | None = None, unit: str = "/min", *,
        time: str = "2024-05-01T08:00:00+02:00", pid: str = SECRET_PID, status: str = "final",
        oid: str | None = None, **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Observation", "status": status, "category": _CAT,
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": time,
    }
    if oid:
        res["id"] = oid
    if value is not None:
        res["valueQuantity"] = {"value": value, "unit": unit, "system": _UCUM, "code": unit}
    res.update(extra)
    return res


def bp(sys_v: float, dia_v: float, unit: str = "mm[Hg]", **kw: Any) -> dict[str, Any]:
    res = obs("85354-9", **kw)
    res["component"] = [
        {"code": {"coding": [{"system": "http://loinc.org", "code": c}]},
         "valueQuantity": {"value": v, "unit": unit, "system": _UCUM, "code": unit}}
        for c, v in (("8480-6", sys_v), ("8462-4", dia_v))
    ]
    return res


def bundle(tmp_path: Path, *resources: dict[str, Any], name: str = "b.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                             "entry": [{"resource": r} for r in resources]}))
    return p


def no_data_in(e: BaseException, *values: object) -> None:
    text = str(e) + " ".join(getattr(e, "__notes__", []))
    # file paths are not data, and pytest's tmp folders carry numbers ("pytest-295")
    text = re.sub(r"/[^\s:\]]*", "<path>", text)
    for v in (SECRET_PID, *values):
        assert str(v) not in text


# ------------------------------------------------------------------------ conversions
def test_read_vitals__fahrenheit_observation_becomes_celsius(tmp_path: Path) -> None:
    p = bundle(tmp_path, obs("8310-5", 101.3, "[degF]"))
    (rec,), rep = read_vitals(p)
    expected = sc.convert_temperature(101.3, "Fahrenheit", "Celsius")
    assert (rec.vital, rec.unit) == ("temperature", "Cel")
    assert rec.value == pytest.approx(expected, abs=1e-4)
    assert rep.converted == {"[degF] -> Cel": 1}


def test_read_vitals__blood_pressure_panel_gives_both_components(tmp_path: Path) -> None:
    p = bundle(tmp_path, bp(15.0, 9.0, "kPa"))
    recs, rep = read_vitals(p)
    got = {r.vital: r.value for r in recs}
    assert got == pytest.approx({"systolic_bp": 15e3 / sc.mmHg, "diastolic_bp": 9e3 / sc.mmHg},
                                rel=1e-5)
    assert {r.unit for r in recs} == {"mm[Hg]"} and rep.kept == 2


def test_read_vitals__spo2_fraction_and_second_loinc_code(tmp_path: Path) -> None:
    p = bundle(tmp_path, obs("2708-6", 0.95, "1"))
    (rec,), _ = read_vitals(p)
    assert (rec.vital, rec.value, rec.unit) == ("spo2", 95.0, "%")


# ------------------------------------------------------------------------ time zones
def test_read_vitals__offsets_are_kept_and_instants_preserved(tmp_path: Path) -> None:
    times = ["2024-05-01T08:00:00+02:00", "2024-05-01T03:30:00-05:00", "2024-05-01T07:00:00Z"]
    p = bundle(tmp_path, *(obs("8867-4", 80 + i, time=t) for i, t in enumerate(times)))
    out = tmp_path / "v.csv"
    ingest_vitals(p, out)
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    written = [datetime.fromisoformat(r["time"]) for r in rows]
    want = sorted(datetime.fromisoformat(t.replace("Z", "+00:00")) for t in times)
    assert written == want  # same instants, sorted by instant (not by text)
    assert [w.utcoffset() for w in written] == [w.utcoffset() for w in want]  # offsets kept
    assert rows[0]["time"] == "2024-05-01T08:00:00+02:00"


def test_read_vitals__same_instant_in_two_offsets_is_one_duplicate(tmp_path: Path) -> None:
    p = bundle(tmp_path, obs("8867-4", 90, time="2024-05-01T08:00:00+02:00"),
               obs("8867-4", 90, time="2024-05-01T01:00:00-05:00"))
    recs, rep = read_vitals(p)
    assert len(recs) == 1 and rep.dropped == {"duplicate": 1}
    assert rep.per_vital["heart_rate"] == {"kept": 1, "duplicate": 1}


def test_read_vitals__same_instant_conflicting_values_raises(tmp_path: Path) -> None:
    p = bundle(tmp_path, obs("8867-4", 90, time="2024-05-01T08:00:00+02:00"),
               obs("8867-4", 95, time="2024-05-01T06:00:00Z"))
    with pytest.raises(SchemaError, match=r"conflicting duplicate heart_rate measurements "
                       r"\[.*entry\[0\].*and.*entry\[1\]") as info:
        read_vitals(p)
    no_data_in(info.value, 90, 95)


def test_read_vitals__effective_instant_and_period_start(tmp_path: Path) -> None:
    a = obs("8867-4", 90)
    del a["effectiveDateTime"]
    a["effectiveInstant"] = "2024-05-01T09:00:00.250+02:00"
    b = obs("9279-1", 20)
    del b["effectiveDateTime"]
    b["effectivePeriod"] = {"start": "2024-05-01T10:00:00+02:00"}
    recs, _ = read_vitals(bundle(tmp_path, a, b))
    assert [r.instant.isoformat() for r in recs] == ["2024-05-01T09:00:00.250000+02:00",
                                                     "2024-05-01T10:00:00+02:00"]


def test_read_vitals__time_without_offset_raises(tmp_path: Path) -> None:
    p = bundle(tmp_path, obs("8867-4", 90, time="2024-05-01T08:00:00"))
    with pytest.raises(SchemaError, match=r"time without UTC offset \[.*entry\[0\]"
                       r"\.effectiveDateTime\]"):
        read_vitals(p)


def test_read_vitals__unsorted_times_are_sorted_and_counted(tmp_path: Path) -> None:
    times = [f"2024-05-01T{h:02d}:00:00+02:00" for h in (9, 8, 10, 7)]
    p = bundle(tmp_path, *(obs("8867-4", 90, time=t) for t in times))
    recs, rep = read_vitals(p)
    assert [r.instant for r in recs] == sorted(r.instant for r in recs)
    assert rep.out_of_order == 2 and rep.kept == 4


# ------------------------------------------------------------------------ drops, counted
def test_read_vitals__entered_in_error_and_cancelled_are_dropped_and_counted(
        tmp_path: Path) -> None:
    p = bundle(tmp_path, obs("8867-4", 90), obs("8867-4", 91, status="entered-in-error",
                                                time="2024-05-01T09:00:00+02:00"),
               bp(100, 60, status="cancelled"))
    recs, rep = read_vitals(p)
    assert len(recs) == 1
    assert rep.dropped == {"status": 3}
    assert rep.per_vital["systolic_bp"] == {"kept": 0, "status": 1}


def test_read_vitals__withdrawn_observation_with_unknown_code_is_dropped(
        tmp_path: Path) -> None:
    recs, rep = read_vitals(bundle(tmp_path, obs("29463-7", 20, "kg", status="cancelled")))
    assert recs == [] and rep.dropped == {"status": 1} and rep.per_vital == {}


def test_read_vitals__absent_panel_is_counted_per_component(tmp_path: Path) -> None:
    res = obs("85354-9", dataAbsentReason={"text": "refused"})
    recs, rep = read_vitals(bundle(tmp_path, res))
    assert recs == [] and rep.dropped == {"data_absent": 2}
    assert rep.per_vital["diastolic_bp"] == {"kept": 0, "data_absent": 1}


def test_read_vitals__panel_without_components_raises(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"panel has no components \[.*entry\[0\]"):
        read_vitals(bundle(tmp_path, obs("85354-9")))


def test_read_vitals__other_resources_and_categories_are_counted(tmp_path: Path) -> None:
    lab = obs("8867-4", 90)
    lab["category"] = [{"coding": [{"system": _CAT[0]["coding"][0]["system"],
                                    "code": "laboratory"}]}]
    absent = obs("8867-4", time="2024-05-01T09:00:00+02:00",
                 dataAbsentReason={"text": "asleep"})
    p = bundle(tmp_path, {"resourceType": "Patient", "id": "x"}, lab, absent)
    recs, rep = read_vitals(p)
    assert recs == [] and rep.records_read == 3
    assert rep.dropped == {"not_observation": 1, "not_vital_signs": 1, "data_absent": 1}


def test_read_vitals__unknown_loinc_code_raises_naming_the_entry(tmp_path: Path) -> None:
    p = bundle(tmp_path, obs("8867-4", 90), obs("29463-7", 20, "kg"))
    with pytest.raises(SchemaError, match=r"unknown LOINC code for a vital sign "
                       r"\[.*entry\[1\]\.code\].*--skip-unknown") as info:
        read_vitals(p)
    no_data_in(info.value)


def test_read_vitals__skip_unknown_drops_and_counts(tmp_path: Path) -> None:
    p = bundle(tmp_path, obs("8867-4", 90), obs("29463-7", 20, "kg"))
    recs, rep = read_vitals(p, skip_unknown=True)
    assert len(recs) == 1 and rep.dropped == {"unknown_code": 1}


def test_read_vitals__negative_heart_rate_raises_without_the_value(tmp_path: Path) -> None:
    p = bundle(tmp_path, obs("8867-4", -37.25))
    with pytest.raises(SchemaError, match=r"heart_rate value out of plausible range "
                       r"\[.*entry\[0\]\.valueQuantity\].*below the minimum") as info:
        read_vitals(p)
    no_data_in(info.value, "-37.25", "37.25")


def test_read_vitals__on_invalid_drop_counts_implausible_values(tmp_path: Path) -> None:
    p = bundle(tmp_path, obs("8867-4", -37.25), obs("8867-4", 80, time="2024-05-01T09:00:00Z"),
               obs("8310-5", 212.0, "[degF]"))
    recs, rep = read_vitals(p, on_invalid="drop")
    assert [r.value for r in recs] == [80.0]
    assert rep.dropped == {"implausible": 2}
    assert rep.per_vital["temperature"] == {"kept": 0, "implausible": 1}


def test_read_vitals__unconvertible_unit_raises_naming_the_entry(tmp_path: Path) -> None:
    p = bundle(tmp_path, obs("8310-5", 37.0, "mm[Hg]"))
    with pytest.raises(SchemaError, match=r"unit cannot be converted for temperature "
                       r"\[.*entry\[0\]\.valueQuantity\]"):
        read_vitals(p)


def test_read_vitals__non_ucum_system_raises(tmp_path: Path) -> None:
    o = obs("8867-4", 90)
    o["valueQuantity"]["system"] = "http://example.org/units"
    with pytest.raises(SchemaError, match="heart_rate unit is not UCUM"):
        read_vitals(bundle(tmp_path, o))


def test_read_vitals__missing_subject_raises(tmp_path: Path) -> None:
    o = obs("8867-4", 90)
    del o["subject"]
    with pytest.raises(SchemaError, match=r"subject is missing.*entry\[0\]\.subject"):
        read_vitals(bundle(tmp_path, o))


def test_read_vitals__invalid_status_raises(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"Observation.status is missing or invalid"):
        read_vitals(bundle(tmp_path, obs("8867-4", 90, status="done")))


# ------------------------------------------------------------------------ formats
def test_read_vitals__malformed_json_raises_with_line_and_column(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text('{"resourceType": "Bundle",\n "type": "collection",\n "entry": [\n  {,}]}\n')
    with pytest.raises(FormatError, match=r"not valid JSON \[.*bad.json: line 4, column 4\]"):
        read_vitals(p)


def test_read_vitals__ndjson_reads_each_line(tmp_path: Path) -> None:
    p = tmp_path / "o.ndjson"
    p.write_text("\n".join(json.dumps(o) for o in (
        obs("8867-4", 90), obs("9279-1", 22), bp(100, 60))) + "\n")
    recs, rep = read_vitals(p)
    assert rep.input_format == "fhir-ndjson" and rep.records_read == 3
    assert sorted(r.vital for r in recs) == ["diastolic_bp", "heart_rate", "respiratory_rate",
                                             "systolic_bp"]


def test_read_vitals__malformed_ndjson_line_is_named(tmp_path: Path) -> None:
    p = tmp_path / "o.ndjson"
    p.write_text(json.dumps(obs("8867-4", 90)) + "\n" + json.dumps(obs("8867-4", 91))
                 + "\n" + '{"resourceType": "Observation", "status": }\n')
    with pytest.raises(FormatError, match=r"line 3, column"):
        read_vitals(p)


def test_read_vitals__single_observation(tmp_path: Path) -> None:
    p = tmp_path / "o.json"
    p.write_text(json.dumps(obs("59408-5", 97, "%")))
    recs, rep = read_vitals(p)
    assert rep.input_format == "fhir-observation" and recs[0].vital == "spo2"


def test_read_vitals__other_json_resource_raises(tmp_path: Path) -> None:
    p = tmp_path / "o.json"
    p.write_text(json.dumps({"resourceType": "Patient"}))
    with pytest.raises(SchemaError, match="neither a Bundle nor an Observation"):
        read_vitals(p)


def test_read_vitals__csv_converts_units_and_sorts(tmp_path: Path) -> None:
    p = tmp_path / "v.csv"
    p.write_text("patient_id,time,vital,value,unit\n"
                 "a,2024-05-01T09:00:00+02:00,temperature,310.15,K\n"
                 "a,2024-05-01T08:00:00+02:00,respiratory_rate,20,{breaths}/min\n")
    recs, rep = read_vitals(p)
    assert [(r.vital, r.unit) for r in recs] == [("respiratory_rate", "/min"),
                                                 ("temperature", "Cel")]
    assert recs[1].value == pytest.approx(sc.convert_temperature(310.15, "Kelvin", "Celsius"))
    assert rep.out_of_order == 1 and rep.input_format == "csv"


def test_read_vitals__csv_unknown_vital_raises_or_is_skipped(tmp_path: Path) -> None:
    p = tmp_path / "v.csv"
    p.write_text("patient_id,time,vital,value,unit\n"
                 "a,2024-05-01T09:00:00+02:00,weight,12,kg\n")
    with pytest.raises(SchemaError, match=r"unknown vital sign \[.*line 2, column 'vital'\]"):
        read_vitals(p)
    recs, rep = read_vitals(p, skip_unknown=True)
    assert recs == [] and rep.dropped == {"unknown_code": 1}


def test_read_vitals__csv_non_numeric_value_raises(tmp_path: Path) -> None:
    p = tmp_path / "v.csv"
    p.write_text("patient_id,time,vital,value,unit\n"
                 "a,2024-05-01T09:00:00+02:00,spo2,high,%\n")
    with pytest.raises(SchemaError, match=r"spo2 value is not a number \[.*line 2"):
        read_vitals(p)


def test_read_vitals__csv_wrong_header_raises(tmp_path: Path) -> None:
    p = tmp_path / "v.csv"
    p.write_text("id,when,what\n")
    with pytest.raises(SchemaError, match="CSV header is not the vitals long table"):
        read_vitals(p)


def test_read_vitals__csv_short_row_raises(tmp_path: Path) -> None:
    p = tmp_path / "v.csv"
    p.write_text("patient_id,time,vital,value,unit\na;b;c\n")
    with pytest.raises(FormatError, match=r"row has too few fields \[.*line 2\]"):
        read_vitals(p)


def test_read_vitals__missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(InputFileNotFoundError, match="vital-signs input not found"):
        read_vitals(tmp_path / "nope.json")


def test_read_vitals__non_utf8_raises(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(FormatError, match="not UTF-8"):
        read_vitals(p)


def test_read_vitals__invalid_on_invalid_raises(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid on_invalid.*did you mean 'drop'"):
        read_vitals(tmp_path / "x.csv", on_invalid="dorp")  # type: ignore[arg-type]


# ------------------------------------------------------------------------ outputs
def test_ingest_vitals__nothing_written_on_failure(tmp_path: Path) -> None:
    src = bundle(tmp_path, obs("8867-4", 90), obs("8867-4", -1.0, time="2024-05-01T10:00Z"))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(SchemaError, match="out of plausible range"):
        ingest_vitals(src, out_dir / "v.csv", report_path=out_dir / "r.json")
    assert list(out_dir.iterdir()) == []


def test_ingest_vitals__report_json_has_format_and_counts(tmp_path: Path) -> None:
    src = bundle(tmp_path, obs("8867-4", 90), obs("8867-4", 90), bp(100, 60, status="cancelled"))
    rep = ingest_vitals(src, tmp_path / "v.csv", report_path=tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["format"] == REPORT_FORMAT and doc["format_version"] == "1.0"
    assert doc["records_read"] == 3 and doc["kept"] == 1
    assert doc["dropped"] == {"duplicate": 1, "status": 2} and doc["dropped_total"] == 3
    assert doc == rep.to_dict()
    assert isinstance(rep, IngestReport) and rep.output == str(tmp_path / "v.csv")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    from secured_bio.testing import simulate_vitals

    return simulate_vitals(tmp_path_factory.mktemp("vitals"), n_sites=2, patients_per_site=3,
                           hours=12, seed=5)


def _rows(path: Path) -> list[tuple[str, datetime, str, float, str]]:
    with path.open(newline="") as fh:
        return sorted((r["patient_id"], datetime.fromisoformat(r["time"]), r["vital"],
                       float(r["value"]), r["unit"]) for r in csv.DictReader(fh))


def test_ingest_vitals__demo_fhir_bundle_equals_demo_csv(demo, tmp_path: Path) -> None:
    for fhir, vcsv in zip(demo.fhir_paths, demo.vitals_paths, strict=True):
        n_rows = len(vcsv.read_text().splitlines()) - 1
        out = tmp_path / f"{fhir.parent.name}.csv"
        rep = ingest_vitals(fhir, out)
        assert _rows(out) == _rows(vcsv)
        assert rep.kept == n_rows and rep.dropped == {}
        assert validate("vitals", out).ok  # the output meets the vitals data spec
        assert validate("fhir", fhir).summary["counts"] == {
            v: c["kept"] for v, c in rep.per_vital.items()}


def test_ingest_vitals__demo_csv_round_trips_byte_identical_rows(demo, tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    ingest_vitals(demo.fhir_paths[0], a)
    ingest_vitals(demo.vitals_paths[0], b)
    assert a.read_text() == b.read_text()


def test_read_vitals__vital_code_without_category_is_kept_and_counted(tmp_path: Path) -> None:
    # Real exports often omit Observation.category: the LOINC code identifies the vital sign.
    hr = obs("8867-4", 90)
    del hr["category"]
    pressure = bp(120, 80, time="2024-05-01T09:00:00+02:00")
    del pressure["category"]
    weight = obs("29463-7", 20, "kg", time="2024-05-01T10:00:00+02:00")
    del weight["category"]
    recs, rep = read_vitals(bundle(tmp_path, hr, pressure, weight))
    assert len(recs) == 3
    assert rep.kept == 3 and rep.without_category == 2
    assert rep.dropped == {"not_vital_signs": 1}
    assert rep.to_dict()["without_category"] == 2
    assert "2 without category" in rep.summary()
