"""Write vital signs as a FHIR R4 ``collection`` Bundle of vital-signs Observations.

One writer for every producer of demo or synthetic vital signs
(:func:`secured_bio.testing.simulate_vitals`,
:func:`secured_bio.telemetry.synthetic.write_synthetic_vitals`): Observations follow the
FHIR R4 vital-signs profiles (http://hl7.org/fhir/R4/observation-vitalsigns.html), with
canonical UCUM units and LOINC codes; blood pressure is one panel Observation (85354-9) with
systolic (8480-6) and diastolic (8462-4) components.  The bundle is streamed one entry at a
time, so large cohorts never sit in memory; :func:`secured_bio.telemetry.ingest.read_vitals`
reads it back to the canonical long table.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from typing import IO, Any

__all__ = ["VITALS", "FhirBundleWriter"]


@dataclass(frozen=True)
class _Vital:
    unit: str  # UCUM code (also used as the display unit)
    loinc: str
    display: str
    decimals: int


#: Canonical UCUM unit, LOINC code, display name and decimals of each vital sign.
VITALS: dict[str, _Vital] = {
    "heart_rate": _Vital("/min", "8867-4", "Heart rate", 0),
    "respiratory_rate": _Vital("/min", "9279-1", "Respiratory rate", 0),
    "spo2": _Vital("%", "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", 0),
    "temperature": _Vital("Cel", "8310-5", "Body temperature", 1),
    "systolic_bp": _Vital("mm[Hg]", "8480-6", "Systolic blood pressure", 0),
    "diastolic_bp": _Vital("mm[Hg]", "8462-4", "Diastolic blood pressure", 0),
}
_BP_PANEL = ("85354-9", "Blood pressure panel with all children optional")
_UCUM = "http://unitsofmeasure.org"
_LOINC = "http://loinc.org"
_ABSENT = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                       "code": "unknown", "display": "Unknown"}]}
_CATEGORY = {
    "coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
        "code": "vital-signs",
        "display": "Vital Signs",
    }]
}
_SHORT = {"heart_rate": "hr", "respiratory_rate": "rr", "spo2": "spo2", "temperature": "temp"}
_UUID_NS = uuid.UUID("6f1c1d2e-8f0a-5b4c-9d3e-2a1b0c9d8e7f")  # fixed: reproducible fullUrls


class FhirBundleWriter:
    """Stream a FHIR R4 collection Bundle of vital-signs Observations, one entry at a time.

    Parameters
    ----------
    fh
        Text file open for writing.
    bundle_id
        The Bundle's ``id``.
    tag
        ``meta.tag`` code saying what produced the bundle (format name/version).
    tag_display
        Display text of the tag.

    Examples
    --------
    >>> import io, json
    >>> buf = io.StringIO()
    >>> w = FhirBundleWriter(buf, bundle_id="b", tag="demo/1")
    >>> w.add_round("p-1", 0, "2026-01-05T08:00:00+01:00",
    ...             {"heart_rate": 120.0, "respiratory_rate": float("nan"), "spo2": 97.0,
    ...              "temperature": 36.9, "systolic_bp": 90.0, "diastolic_bp": 50.0})
    >>> w.close()
    >>> len(json.loads(buf.getvalue())["entry"])
    4
    """

    def __init__(self, fh: IO[str], *, bundle_id: str, tag: str,
                 tag_display: str = "synthetic demo data") -> None:
        self._fh = fh
        self._first = True
        head = {
            "resourceType": "Bundle",
            "id": bundle_id,
            "meta": {"tag": [{"system": "urn:secured_bio:format", "code": tag,
                              "display": tag_display}]},
            "type": "collection",
        }
        fh.write(json.dumps(head, indent=1)[:-2] + ',\n "entry": [\n')

    def _entry(self, resource: dict[str, Any]) -> None:
        full = f"urn:uuid:{uuid.uuid5(_UUID_NS, resource['id'])}"
        sep = "" if self._first else ",\n"
        self._first = False
        self._fh.write(sep + "  " + json.dumps({"fullUrl": full, "resource": resource}))

    def add_round(self, pid: str, k: int, iso: str, vals: dict[str, float]) -> None:
        """Add the measurements of patient ``pid`` at round ``k`` (time ``iso``; NaN: missing).

        Observation ids are ``{pid}-{hr|rr|spo2|temp|bp}-{k}``, so ``pid`` must use FHIR id
        characters (letters, digits, ``-``, ``.``).
        """
        for vital in ("heart_rate", "respiratory_rate", "spo2", "temperature"):
            v = vals[vital]
            if math.isnan(v):
                continue
            spec = VITALS[vital]
            coding = [{"system": _LOINC, "code": spec.loinc, "display": spec.display}]
            if vital == "spo2":  # the FHIR oxygen-saturation profile also requires 2708-6
                coding.append({"system": _LOINC, "code": "2708-6",
                               "display": "Oxygen saturation in Arterial blood"})
            obs = self._observation(f"{pid}-{_SHORT[vital]}-{k}", pid, iso, coding)
            obs["valueQuantity"] = _quantity(v, spec)
            self._entry(obs)
        if not (math.isnan(vals["systolic_bp"]) and math.isnan(vals["diastolic_bp"])):
            obs = self._observation(
                f"{pid}-bp-{k}", pid, iso,
                [{"system": _LOINC, "code": _BP_PANEL[0], "display": _BP_PANEL[1]}],
            )
            # One pressure missing: its component carries a dataAbsentReason (the FHIR
            # blood-pressure profile requires both components).
            obs["component"] = [
                {"code": {"coding": [{"system": _LOINC, "code": VITALS[c].loinc,
                                      "display": VITALS[c].display}]},
                 **({"dataAbsentReason": _ABSENT} if math.isnan(vals[c])
                    else {"valueQuantity": _quantity(vals[c], VITALS[c])})}
                for c in ("systolic_bp", "diastolic_bp")
            ]
            self._entry(obs)

    @staticmethod
    def _observation(oid: str, pid: str, iso: str, coding: list[dict[str, str]]
                     ) -> dict[str, Any]:
        return {
            "resourceType": "Observation",
            "id": oid,
            "status": "final",
            "category": [_CATEGORY],
            "code": {"coding": coding, "text": coding[0]["display"]},
            "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": iso,
        }

    def close(self) -> None:
        """Close the entry list and the Bundle (the file handle stays open)."""
        self._fh.write("\n ]\n}\n")


def _quantity(v: float, spec: _Vital) -> dict[str, Any]:
    value: float | int = round(float(v), spec.decimals) if spec.decimals else int(round(v))
    return {"value": value, "unit": spec.unit, "system": _UCUM, "code": spec.unit}
