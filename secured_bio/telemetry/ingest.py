"""Read vital signs from FHIR R4 Observations or a CSV long table into one canonical long table.

Inputs (detected from the content, not the file name):

- a FHIR R4 JSON ``Bundle`` of Observations, a single ``Observation``, or NDJSON (one
  Observation per line, FHIR bulk-data export);
- a CSV long table ``patient_id,time,vital,value,unit`` (``data_specs/vitals.yaml``, with any
  convertible unit).

Output: the long table of ``data_specs/vitals.yaml``, ``patient_id,time,vital,value,unit``,
canonical UCUM units (:mod:`secured_bio.telemetry.units`), sorted by patient, instant, vital.

Handling, documented so that nothing is lost silently (every drop is counted by reason in the
:class:`IngestReport`):

- **Times** keep their original UTC offset (``2024-05-01T08:30:00+02:00`` stays so: the local
  clock time matters for circadian rhythms); ``Z`` is written ``+00:00``.  Sorting and
  duplicate detection use the instant, so the same instant in two offsets is one time.
  A time without offset or without a time part is an error (FHIR requires an offset when a time
  is given).  ``effectiveDateTime``, ``effectiveInstant`` or ``effectivePeriod.start`` is used.
- **Status** ``entered-in-error`` and ``cancelled``: dropped (``status``); other R4 statuses kept.
- **Not an Observation** (e.g. a Patient in the Bundle) or **not vital-signs category**: dropped
  (``not_observation``, ``not_vital_signs``).  An Observation **without a category** is kept
  when its LOINC code is a known vital sign (counted in ``without_category``: real exports
  often omit the category) and dropped as ``not_vital_signs`` otherwise.
- **Unknown LOINC code**: error naming the entry, or with ``skip_unknown`` dropped
  (``unknown_code``).  Known codes: those of ``data_specs/fhir.yaml`` (8867-4, 9279-1,
  59408-5, 2708-6, 8310-5, and the blood-pressure panel 85354-9 with components 8480-6 and
  8462-4) plus oral temperature 8331-1.  A panel component with another code is dropped
  (``unknown_component``).
- **No value** with a ``dataAbsentReason``: dropped (``data_absent``).
- **Units** are converted to canonical UCUM (values rounded to 4 decimals); a unit that cannot
  be converted is an error.  ``valueQuantity.code`` is used (``unit`` if there is no code).
- **Implausible values** (outside the ranges of ``data_specs/vitals.yaml``, e.g. a negative
  heart rate): ``on_invalid="error"`` (default) raises naming the entry; ``"drop"`` drops and
  counts them (``implausible``).
- **Duplicates** (same patient, instant and vital): identical values are kept once
  (``duplicate``); conflicting values are an error naming both entries.
- **Unsorted times** are sorted; how many records came earlier than the one before them for
  the same patient is reported (``out_of_order``).
- **Malformed JSON**: error with line and column.

Errors name the file and the entry position (``entry[12]``, ``line 7``), never values or
patient IDs (FHIR ids often embed them).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from secured_bio._atomic import atomic_path, atomic_write
from secured_bio.errors import (
    ConfigError,
    FormatError,
    InputFileNotFoundError,
    SchemaError,
    did_you_mean,
)
from secured_bio.telemetry.units import CANONICAL_UNITS, unit_conversion

__all__ = [
    "REPORT_FORMAT",
    "REPORT_FORMAT_VERSION",
    "ON_INVALID",
    "IngestReport",
    "VitalRecord",
    "read_vitals",
    "write_vitals_csv",
    "ingest_vitals",
]

logger = logging.getLogger(__name__)

REPORT_FORMAT = "secured_bio.telemetry_ingest_report"
"""Format name of :meth:`IngestReport.to_dict`."""
REPORT_FORMAT_VERSION = "1.0"
"""Format version of :meth:`IngestReport.to_dict`."""
ON_INVALID = ("error", "drop")
"""Choices for implausible values."""

COLUMNS = ("patient_id", "time", "vital", "value", "unit")
_EXTRA_LOINC = {"8331-1": "temperature"}  # oral temperature (LOINC), beside 8310-5 body temp.
_DROP_STATUSES = {"entered-in-error", "cancelled"}
_DECIMALS = 4  # values are rounded to 4 decimals after unit conversion
_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(?P<tz>Z|[+-]\d{2}:\d{2})?"
)


@dataclass(frozen=True, order=True)
class VitalRecord:
    """One measurement in canonical units (``instant`` is timezone-aware).

    Attributes
    ----------
    patient_id, instant, vital, value, unit
        The measurement; ``instant`` keeps its original UTC offset.
    source
        Where it came from (``entry[3].component[0]``, ``line 7``), for error messages.
    """

    patient_id: str
    instant: datetime
    vital: str
    value: float
    unit: str
    source: str = field(compare=False)


@dataclass
class IngestReport:
    """What :func:`read_vitals` read, kept and dropped (counts only, never values).

    Attributes
    ----------
    input, input_format
        The file and its detected format (``fhir-bundle``, ``fhir-observation``,
        ``fhir-ndjson``, ``csv``).
    records_read
        Observations (FHIR) or rows (CSV) read.
    kept
        Measurements written.
    dropped
        ``{reason: count}`` of dropped records or measurements.
    per_vital
        ``{vital: {"kept": n, <reason>: n}}``.
    out_of_order
        Records earlier than the previous record of the same patient (they were sorted).
    converted
        ``{"unit -> canonical": n}`` of converted values.
    output
        The written file, if any.
    without_category
        FHIR Observations without a ``category`` accepted as vital signs because their
        LOINC code is a vital sign's (one may still be dropped for another reason, counted
        under that reason); those without a category and with another code are dropped as
        ``not_vital_signs``.

    Examples
    --------
    >>> r = IngestReport(input="v.csv", input_format="csv", records_read=2, kept=2)
    >>> r.to_dict()["format"]
    'secured_bio.telemetry_ingest_report'
    """

    input: str
    input_format: str
    records_read: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    per_vital: dict[str, dict[str, int]] = field(default_factory=dict)
    out_of_order: int = 0
    converted: dict[str, int] = field(default_factory=dict)
    output: str | None = None
    without_category: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict carrying the report format and version.

        Returns
        -------
        dict
            ``format``, ``format_version`` and every field.

        Examples
        --------
        >>> IngestReport(input="x.json", input_format="fhir-bundle").to_dict()["kept"]
        0
        """
        return {
            "format": REPORT_FORMAT, "format_version": REPORT_FORMAT_VERSION,
            "input": self.input, "input_format": self.input_format, "output": self.output,
            "records_read": self.records_read, "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "dropped_total": sum(self.dropped.values()),
            "per_vital": {k: dict(v) for k, v in sorted(self.per_vital.items())},
            "out_of_order": self.out_of_order,
            "converted": dict(sorted(self.converted.items())),
            "without_category": self.without_category,
        }

    def summary(self) -> str:
        """One line for the command line.

        Returns
        -------
        str
            Counts of records read, kept and dropped by reason.

        Examples
        --------
        >>> IngestReport(input="x.csv", input_format="csv", records_read=3, kept=2,
        ...              dropped={"duplicate": 1}).summary()
        'read 3 records (csv), kept 2 measurements, dropped 1 (duplicate: 1), 0 out of order'
        """
        drops = ", ".join(f"{k}: {v}" for k, v in sorted(self.dropped.items()))
        return (f"read {self.records_read} records ({self.input_format}), kept {self.kept} "
                f"measurements, dropped {sum(self.dropped.values())}"
                + (f" ({drops})" if drops else "") + f", {self.out_of_order} out of order"
                + (f", {self.without_category} without category (vital-sign code)"
                   if self.without_category else ""))

    def _drop(self, reason: str, vital: str | None = None) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        if vital is not None:
            pv = self.per_vital.setdefault(vital, {"kept": 0})
            pv[reason] = pv.get(reason, 0) + 1


# --------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------


def _specs() -> tuple[dict[str, str], dict[str, dict[str, str]], dict[str, tuple[float, float]],
                      dict[str, Any]]:
    """LOINC map, panels, plausibility ranges (from data_specs) and the FHIR rules."""
    from secured_bio.specs import load_spec

    fhir = load_spec("fhir")["rules"]
    vit = load_spec("vitals")["table"]["group_rules"]["rules"]
    ranges = {v: (float(r["value"]["min"]), float(r["value"]["max"])) for v, r in vit.items()}
    panels = {code: dict(p["components"]) for code, p in fhir["panels"].items()}
    return {**fhir["loinc"], **_EXTRA_LOINC}, panels, ranges, fhir


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


def _detect(path: Path, text: str) -> str:
    head = text.lstrip("\ufeff \t\r\n")[:1]
    if head in ("{", "["):
        return "json"
    return "csv"


def _json_error(path: Path, e: json.JSONDecodeError, *, line_offset: int = 0) -> FormatError:
    # e.msg describes the syntax ("Expecting ',' delimiter"), never the content.
    return FormatError("file is not valid JSON",
                       where=f"{path}: line {e.lineno + line_offset}, column {e.colno}",
                       expected="a FHIR R4 JSON Bundle, Observation or NDJSON", got=e.msg,
                       fix="export the resources as FHIR JSON (not XML)")


def _json_resources(path: Path, text: str) -> tuple[str, list[tuple[str, Any]]]:
    """Return the detected format and ``(position, resource)`` pairs of a JSON/NDJSON file."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg != "Extra data":
            raise _json_error(path, e) from e
        out = []
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                out.append((f"line {i}", json.loads(line)))
            except json.JSONDecodeError as e2:
                raise _json_error(path, e2, line_offset=i - 1) from e2
        return "fhir-ndjson", out
    if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
        entries = doc.get("entry", [])
        if not isinstance(entries, list):
            raise SchemaError("Bundle.entry is not a list", where=f"{path}: entry",
                              expected="a JSON array", got=f"a JSON {type(entries).__name__}")
        return "fhir-bundle", [
            (f"entry[{i}]", e.get("resource") if isinstance(e, dict) else None)
            for i, e in enumerate(entries)
        ]
    if isinstance(doc, dict) and doc.get("resourceType") == "Observation":
        return "fhir-observation", [("Observation", doc)]
    raise SchemaError("JSON is neither a Bundle nor an Observation", where=f"{path}: resourceType",
                      expected="'Bundle' or 'Observation'",
                      got="another resourceType" if isinstance(doc, dict) else
                      f"a JSON {type(doc).__name__}",
                      fix="give a FHIR R4 Bundle of Observations, one Observation, or NDJSON")


def _codings(concept: Any) -> list[dict[str, Any]]:
    concepts = concept if isinstance(concept, list) else [concept]
    out: list[dict[str, Any]] = []
    for c in concepts:
        if isinstance(c, dict) and isinstance(c.get("coding"), list):
            out += [cd for cd in c["coding"] if isinstance(cd, dict)]
    return out


def _parse_time(value: Any, where: str) -> datetime:
    m = _DATETIME.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise SchemaError("time is missing or not an ISO 8601 date-time", where=where,
                          expected="YYYY-MM-DDThh:mm:ss+hh:mm",
                          got="a missing value" if value in (None, "") else "another format",
                          fix="give the measurement time with its UTC offset")
    if not m.group("tz"):
        raise SchemaError("time without UTC offset", where=where,
                          expected="a time with offset, e.g. 2024-05-01T08:30:00+02:00 or ...Z",
                          got="a time without offset",
                          fix="append the UTC offset of the site's local time (or Z for UTC)")
    try:
        return datetime.fromisoformat(value)
    except ValueError as e:
        raise SchemaError("time is not a valid date-time", where=where,
                          expected="a real calendar date and clock time",
                          got="an impossible date or time", fix="correct the time") from e


def _patient(res: dict[str, Any], where: str) -> str:
    subj = res.get("subject")
    ref = subj.get("reference") if isinstance(subj, dict) else None
    if isinstance(ref, str) and ref.startswith("urn:uuid:") and len(ref) > 9:
        return ref
    if isinstance(ref, str) and "Patient/" in ref:
        pid = ref.split("Patient/", 1)[1].split("/_history", 1)[0]
        if pid:
            return pid
    raise SchemaError("Observation.subject is missing or not a Patient reference",
                      where=f"{where}.subject.reference",
                      expected="'Patient/<id>' or 'urn:uuid:<uuid>'",
                      got="a missing or other reference",
                      fix="reference the patient the measurement belongs to")


class _Reader:
    def __init__(self, path: Path, report: IngestReport, *, on_invalid: str,
                 skip_unknown: bool) -> None:
        self.path = path
        self.report = report
        self.on_invalid = on_invalid
        self.skip_unknown = skip_unknown
        self.loinc, self.panels, self.ranges, self.rules = _specs()

    # ---------------------------------------------------------------- one measurement
    def _value(self, pid: str, instant: datetime, vital: str, value: Any, unit: Any,
               where: str) -> VitalRecord | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
                value):
            raise SchemaError(f"{vital} value is not a finite number", where=where,
                              expected="a number", got="another type or a non-finite value",
                              fix="write the value as a number")
        scale, offset = unit_conversion(vital, unit, where=where)
        canonical = CANONICAL_UNITS[vital]
        if unit != canonical:
            key = f"{unit} -> {canonical}"
            self.report.converted[key] = self.report.converted.get(key, 0) + 1
        v = round(float(value) * scale + offset, _DECIMALS)
        lo, hi = self.ranges[vital]
        if not lo <= v <= hi:
            if self.on_invalid == "drop":
                self.report._drop("implausible", vital)
                return None
            raise SchemaError(
                f"{vital} value out of plausible range", where=where,
                expected=f"a value in [{lo:g}, {hi:g}] {canonical} (data_specs/vitals.yaml)",
                got="a value " + ("below the minimum" if v < lo else "above the maximum"),
                fix="check the unit and the entry, or use --on-invalid drop to drop and count "
                    "implausible values",
            )
        return VitalRecord(pid, instant, vital, v, canonical, where)

    # ---------------------------------------------------------------- FHIR
    def observation(self, res: Any, pos: str) -> list[VitalRecord]:
        at = f"{self.path}: {pos}"
        if not isinstance(res, dict):
            raise SchemaError("entry has no resource", where=at,
                              expected="an object with a 'resource'", got="none")
        if res.get("resourceType") != "Observation":
            self.report._drop("not_observation")
            return []
        status = res.get("status")
        if status not in self.rules["statuses"]:
            raise SchemaError("Observation.status is missing or invalid", where=f"{at}.status",
                              expected="one of " + ", ".join(self.rules["statuses"]),
                              got="a missing value" if status is None else "another value",
                              fix="set \"status\": \"final\"")
        codes = [c.get("code") for c in _codings(res.get("code"))
                 if c.get("system") == self.rules["code_system"]]
        code = next((c for c in codes if c in self.loinc or c in self.panels), None)
        cat = self.rules["category"]
        categories = _codings(res.get("category"))
        if not categories:
            # Real exports often omit the (optional, 0..*) category: a vital-sign LOINC code
            # identifies the vital sign on its own, so keep it; any other code is dropped.
            if code is None:
                self.report._drop("not_vital_signs")
                return []
            self.report.without_category += 1
        elif not any(c.get("system") == cat["system"] and c.get("code") == cat["code"]
                     for c in categories):
            self.report._drop("not_vital_signs")
            return []
        if status in _DROP_STATUSES:  # withdrawn: dropped whatever else it holds
            vitals_dropped: list[str | None] = [None] if code is None else (
                [self.loinc[code]] if code in self.loinc else list(self.panels[code].values()))
            for v in vitals_dropped:
                self.report._drop("status", v)
            return []
        if code is None:
            if self.skip_unknown:
                self.report._drop("unknown_code")
                return []
            known = sorted([*self.loinc, *self.panels])
            shown = codes[0] if codes and isinstance(codes[0], str) and re.fullmatch(
                r"[0-9]{1,8}-[0-9]", codes[0]) else None
            hint = did_you_mean(shown, known) if shown else None
            raise SchemaError(
                "unknown LOINC code for a vital sign", where=f"{at}.code",
                expected="one of " + ", ".join(known),
                got=f"'{shown}'" if shown else "no known-format LOINC coding",
                fix=(f"{hint}; " if hint else "") + "code it with a vital-signs LOINC code, "
                "or use --skip-unknown to drop and count such Observations",
            )
        pid = _patient(res, at)
        for key in ("effectiveDateTime", "effectiveInstant"):
            if key in res:
                tkey, tval = key, res[key]
                break
        else:
            per = res.get("effectivePeriod")
            tkey, tval = "effectivePeriod.start", per.get("start") if isinstance(per, dict) \
                else None
        instant = _parse_time(tval, f"{at}.{tkey}")
        if code in self.loinc:
            return self._quantity(res, pid, instant, self.loinc[code], at)
        comps = res.get("component")
        if comps is None and "dataAbsentReason" in res:
            for v in self.panels[code].values():
                self.report._drop("data_absent", v)
            return []
        if not isinstance(comps, list):
            raise SchemaError("panel has no components", where=f"{at}.component",
                              expected="components " + ", ".join(self.panels[code]),
                              got="none", fix="add one component per measurement")
        out: list[VitalRecord] = []
        for j, comp in enumerate(comps):
            ccodes = [c.get("code") for c in _codings(comp.get("code") if isinstance(
                comp, dict) else None) if c.get("system") == self.rules["code_system"]]
            ccode = next((c for c in ccodes if c in self.panels[code]), None)
            if ccode is None:
                self.report._drop("unknown_component")
                continue
            out += self._quantity(comp, pid, instant, self.panels[code][ccode],
                                  f"{at}.component[{j}]")
        return out

    def _quantity(self, holder: dict[str, Any], pid: str, instant: datetime, vital: str,
                  at: str) -> list[VitalRecord]:
        q = holder.get("valueQuantity")
        if q is None and "dataAbsentReason" in holder:
            self.report._drop("data_absent", vital)
            return []
        where = f"{at}.valueQuantity"
        if not isinstance(q, dict):
            raise SchemaError(f"{vital} has no valueQuantity", where=where,
                              expected="a Quantity with a UCUM code", got="none",
                              fix="give the value as valueQuantity (or a dataAbsentReason)")
        system = q.get("system")
        if system is not None and system != self.rules["unit_system"]:
            raise SchemaError(f"{vital} unit is not UCUM", where=f"{where}.system",
                              expected=f"'{self.rules['unit_system']}'", got="another system",
                              fix="code units with UCUM")
        unit = q.get("code", q.get("unit"))
        rec = self._value(pid, instant, vital, q.get("value"), unit, where)
        return [] if rec is None else [rec]

    # ---------------------------------------------------------------- CSV
    def csv_rows(self, text: str) -> Iterator[VitalRecord]:
        rows = csv.reader(text.lstrip("\ufeff").splitlines())
        header = next(rows, None)
        if header is None or [h.strip() for h in header[:5]] != list(COLUMNS):
            raise SchemaError("CSV header is not the vitals long table", where=f"{self.path}: "
                              "line 1", expected=",".join(COLUMNS),
                              got="other columns" if header else "an empty file",
                              fix="write the columns patient_id,time,vital,value,unit first")
        for i, row in enumerate(rows, start=2):
            if not row or not any(c.strip() for c in row):
                continue
            at = f"{self.path}: line {i}"
            self.report.records_read += 1
            if len(row) < 5:
                raise FormatError("row has too few fields", where=at, expected="5 fields",
                                  got=f"{len(row)} fields", fix="check the delimiter (comma)")
            pid, t, vital, value, unit = (c.strip() for c in row[:5])
            if not pid:
                raise SchemaError("patient_id is empty", where=at, expected="a patient id",
                                  got="an empty field")
            if vital not in CANONICAL_UNITS:
                if self.skip_unknown:
                    self.report._drop("unknown_code")
                    continue
                shown = f"'{vital}'" if re.fullmatch(r"[a-z_0-9]{1,32}", vital) else \
                    "another name"
                raise SchemaError("unknown vital sign", where=f"{at}, column 'vital'",
                                  expected="one of " + ", ".join(CANONICAL_UNITS), got=shown,
                                  fix=(did_you_mean(vital, CANONICAL_UNITS) or "rename it")
                                  + "; or use --skip-unknown to drop and count such rows")
            instant = _parse_time(t, f"{at}, column 'time'")
            try:
                num = float(value)
            except ValueError as e:
                raise SchemaError(f"{vital} value is not a number",
                                  where=f"{at}, column 'value'", expected="a number",
                                  got="text", fix="write the value as a number") from e
            rec = self._value(pid, instant, vital, num, unit, f"{at}")
            if rec is not None:
                yield rec


def _finish(records: list[VitalRecord], report: IngestReport, path: Path) -> list[VitalRecord]:
    """Count out-of-order records, sort, deduplicate identical and refuse conflicting ones."""
    last: dict[str, datetime] = {}
    for r in records:
        prev = last.get(r.patient_id)
        if prev is not None and r.instant < prev:
            report.out_of_order += 1
        else:
            last[r.patient_id] = r.instant
    ordered = sorted(records, key=lambda r: (r.patient_id, r.instant, r.vital))
    out: list[VitalRecord] = []
    for r in ordered:
        if out and (out[-1].patient_id, out[-1].instant, out[-1].vital) == (
                r.patient_id, r.instant, r.vital):
            if math.isclose(out[-1].value, r.value, rel_tol=1e-9, abs_tol=1e-9):
                report._drop("duplicate", r.vital)
                continue
            raise SchemaError(
                f"conflicting duplicate {r.vital} measurements", where=f"{path}: "
                f"{out[-1].source} and {r.source}",
                expected="one value per patient, time and vital", got="two different values",
                fix="remove or correct one of them (identical duplicates are kept once)",
            )
        out.append(r)
    for r in out:
        report.per_vital.setdefault(r.vital, {"kept": 0})["kept"] += 1
    report.kept = len(out)
    return out


def read_vitals(
    path: str | os.PathLike[str],
    *,
    on_invalid: Literal["error", "drop"] = "error",
    skip_unknown: bool = False,
) -> tuple[list[VitalRecord], IngestReport]:
    r"""Read FHIR R4 vital-sign Observations or a CSV long table into canonical records.

    See the module docstring for the handling of every kind of bad input.

    Parameters
    ----------
    path
        A FHIR R4 JSON Bundle, a single Observation, NDJSON of Observations, or a CSV long
        table ``patient_id,time,vital,value,unit``.
    on_invalid
        ``"error"`` (default): an implausible value raises; ``"drop"``: it is dropped and
        counted as ``implausible``.
    skip_unknown
        Drop and count (``unknown_code``) Observations with an unknown LOINC code (CSV rows
        with an unknown vital) instead of raising.

    Returns
    -------
    records : list of VitalRecord
        Sorted by patient, instant, vital; canonical units; duplicates removed.
    report : IngestReport
        Counts read, kept, dropped by reason and per vital.

    Raises
    ------
    InputFileNotFoundError
        If ``path`` does not exist.
    ConfigError
        If ``on_invalid`` is not ``"error"`` or ``"drop"``.
    FormatError
        If the JSON is malformed (line and column given) or a CSV row is short.
    SchemaError
        Unknown LOINC code or vital, unit that cannot be converted, implausible value,
        conflicting duplicates, missing time offset or subject.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "v.csv").write_text(
    ...     "patient_id,time,vital,value,unit\n"
    ...     "p1,2024-05-01T09:00:00+02:00,temperature,98.6,[degF]\n"
    ...     "p1,2024-05-01T08:00:00+02:00,heart_rate,72,{beats}/min\n")
    >>> recs, rep = read_vitals(d / "v.csv")
    >>> [(r.vital, r.value, r.unit) for r in recs]
    [('heart_rate', 72.0, '/min'), ('temperature', 37.0, 'Cel')]
    >>> rep.out_of_order
    1
    """
    if on_invalid not in ON_INVALID:
        raise ConfigError("invalid on_invalid", where="on_invalid",
                          expected="one of " + ", ".join(ON_INVALID), got=repr(on_invalid),
                          fix=did_you_mean(str(on_invalid), ON_INVALID) or "use 'error'")
    p = Path(path)
    if not p.is_file():
        raise InputFileNotFoundError("vital-signs input not found", where=str(p),
                                     expected="an existing FHIR JSON/NDJSON or CSV file",
                                     fix="check the path")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise FormatError("file is not UTF-8 text", where=str(p), expected="UTF-8 JSON or CSV",
                          got="bytes that are not UTF-8", fix="export as UTF-8") from e
    report = IngestReport(input=str(p), input_format="csv")
    reader = _Reader(p, report, on_invalid=on_invalid, skip_unknown=skip_unknown)
    records: list[VitalRecord] = []
    if _detect(p, text) == "json":
        report.input_format, resources = _json_resources(p, text)
        for pos, res in resources:
            report.records_read += 1
            records += reader.observation(res, pos)
    else:
        records = list(reader.csv_rows(text))
    out = _finish(records, report, p)
    logger.info("%s: %s", p, report.summary())
    return out, report


def _fmt_value(v: float) -> str:
    return f"{v:.{_DECIMALS}f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


def write_vitals_csv(records: list[VitalRecord], out: str | os.PathLike[str]) -> Path:
    """Write records as the vitals long table, atomically.

    Parameters
    ----------
    records
        From :func:`read_vitals`.
    out
        Output CSV path.

    Returns
    -------
    Path
        ``out``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from datetime import datetime
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> r = VitalRecord("p1", datetime.fromisoformat("2024-05-01T08:00:00Z"), "spo2", 97.0,
    ...                 "%", "line 2")
    >>> print(write_vitals_csv([r], d / "o.csv").read_text(), end="")
    patient_id,time,vital,value,unit
    p1,2024-05-01T08:00:00+00:00,spo2,97,%
    """
    target = Path(out)
    with atomic_write(target, newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in records:
            w.writerow([r.patient_id, r.instant.isoformat(), r.vital, _fmt_value(r.value),
                        r.unit])
    return target


def ingest_vitals(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    on_invalid: Literal["error", "drop"] = "error",
    skip_unknown: bool = False,
    report_path: str | os.PathLike[str] | None = None,
) -> IngestReport:
    r"""Read vital signs (FHIR or CSV) and write the canonical long table and a report.

    Nothing is written when reading fails; both files are written atomically.

    Parameters
    ----------
    path
        Input (see :func:`read_vitals`).
    out
        Output CSV ``patient_id,time,vital,value,unit``.
    on_invalid, skip_unknown
        See :func:`read_vitals`.
    report_path
        Optional JSON report (counts read/kept/dropped by reason and per vital).

    Returns
    -------
    IngestReport
        The counts, with ``output`` set.

    Raises
    ------
    InputFileNotFoundError, ConfigError, FormatError, SchemaError
        As :func:`read_vitals`.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> obs = {"resourceType": "Observation", "status": "final",
    ...        "category": [{"coding": [{"system":
    ...            "http://terminology.hl7.org/CodeSystem/observation-category",
    ...            "code": "vital-signs"}]}],
    ...        "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
    ...        "subject": {"reference": "Patient/p1"},
    ...        "effectiveDateTime": "2024-05-01T08:00:00-05:00",
    ...        "valueQuantity": {"value": 100.4, "system": "http://unitsofmeasure.org",
    ...                          "code": "[degF]"}}
    >>> _ = (d / "o.json").write_text(json.dumps(obs))
    >>> rep = ingest_vitals(d / "o.json", d / "v.csv")
    >>> (d / "v.csv").read_text().splitlines()[1]
    'p1,2024-05-01T08:00:00-05:00,temperature,38,Cel'
    """
    records, report = read_vitals(path, on_invalid=on_invalid, skip_unknown=skip_unknown)
    if report_path is not None:
        with atomic_path(out) as tmp_out, atomic_write(report_path) as fh:
            write_vitals_csv(records, tmp_out)
            report.output = str(out)
            json.dump(report.to_dict(), fh, indent=2)
            fh.write("\n")
    else:
        write_vitals_csv(records, out)
        report.output = str(out)
    return report
