"""Canonical UCUM units of the vital signs, and conversion from the units seen in practice.

Canonical units are those of the FHIR R4 vital-signs profiles and of ``data_specs/vitals.yaml``:
``/min`` (heart and respiratory rate), ``%`` (SpO2), ``Cel`` (temperature), ``mm[Hg]``
(blood pressure).  Every conversion is linear, ``canonical = value * scale + offset``.

References: UCUM (https://ucum.org/ucum), FHIR R4 vital signs
(https://hl7.org/fhir/R4/observation-vitalsigns.html).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from secured_bio.errors import SchemaError, did_you_mean

__all__ = ["CANONICAL_UNITS", "UNIT_ALIASES", "unit_conversion", "to_canonical"]

#: Canonical UCUM code of each vital sign.
CANONICAL_UNITS: Mapping[str, str] = MappingProxyType({
    "heart_rate": "/min",
    "respiratory_rate": "/min",
    "spo2": "%",
    "temperature": "Cel",
    "systolic_bp": "mm[Hg]",
    "diastolic_bp": "mm[Hg]",
})

# mm[Hg] per kPa: 1 mm[Hg] = 133.322387415 Pa (UCUM: 13.5951 g/cm3 x 9.80665 m/s2 x 1 mm).
_MMHG_PER_KPA = 1000.0 / 133.322387415

_RATE = {"/min": (1.0, 0.0), "1/min": (1.0, 0.0), "{beats}/min": (1.0, 0.0),
         "{beat}/min": (1.0, 0.0), "beats/min": (1.0, 0.0), "{breaths}/min": (1.0, 0.0),
         "{breath}/min": (1.0, 0.0), "breaths/min": (1.0, 0.0), "/s": (60.0, 0.0)}
_BY_CANONICAL: dict[str, dict[str, tuple[float, float]]] = {
    "/min": _RATE,
    # "1" is the UCUM unity: a fraction 0..1.
    "%": {"%": (1.0, 0.0), "1": (100.0, 0.0)},
    "Cel": {"Cel": (1.0, 0.0), "degC": (1.0, 0.0), "[degF]": (5.0 / 9.0, -160.0 / 9.0),
            "degF": (5.0 / 9.0, -160.0 / 9.0), "K": (1.0, -273.15)},
    "mm[Hg]": {"mm[Hg]": (1.0, 0.0), "mmHg": (1.0, 0.0), "kPa": (_MMHG_PER_KPA, 0.0)},
}

#: Accepted unit codes of each vital: ``{vital: {unit: (scale, offset)}}``.
UNIT_ALIASES: Mapping[str, Mapping[str, tuple[float, float]]] = MappingProxyType({
    vital: MappingProxyType(dict(_BY_CANONICAL[unit])) for vital, unit in CANONICAL_UNITS.items()
})


def _shown(unit: object) -> str:
    """Show a unit code only if it is short (a code, not arbitrary data)."""
    if isinstance(unit, str) and 0 < len(unit) <= 16 and unit.isprintable():
        return f"'{unit}'"
    return "no unit" if unit in (None, "") else "an unrecognised unit"


def unit_conversion(vital: str, unit: object, *, where: str = "unit") -> tuple[float, float]:
    """Return ``(scale, offset)`` that converts ``unit`` to the canonical unit of ``vital``.

    Parameters
    ----------
    vital
        A vital name of :data:`CANONICAL_UNITS`.
    unit
        The UCUM code found in the data (``[degF]``, ``kPa``, ``{beats}/min``, ``1``...).
    where
        The record concerned, shown in errors (e.g. ``"obs.json: entry[3].valueQuantity"``).

    Returns
    -------
    tuple of float
        ``canonical = value * scale + offset``.

    Raises
    ------
    SchemaError
        If ``vital`` is unknown, or ``unit`` cannot be converted to its canonical unit.

    Examples
    --------
    >>> scale, offset = unit_conversion("temperature", "[degF]")
    >>> round(98.6 * scale + offset, 6)
    37.0
    >>> unit_conversion("spo2", "1")
    (100.0, 0.0)
    """
    if vital not in UNIT_ALIASES:
        raise SchemaError("unknown vital sign", where=where,
                          expected="one of " + ", ".join(CANONICAL_UNITS),
                          got=_shown(vital), fix=did_you_mean(str(vital), CANONICAL_UNITS)
                          or "use a vital name of data_specs/vitals.yaml")
    table = UNIT_ALIASES[vital]
    if isinstance(unit, str) and unit in table:
        return table[unit]
    canonical = CANONICAL_UNITS[vital]
    raise SchemaError(
        f"unit cannot be converted for {vital}", where=where,
        expected=f"UCUM '{canonical}' or one of " + ", ".join(u for u in table if u != canonical),
        got=_shown(unit),
        fix=f"code the value in UCUM '{canonical}' (or a convertible unit)",
    )


def to_canonical(vital: str, value: float, unit: object, *, where: str = "unit") -> float:
    """Convert one value of ``vital`` from ``unit`` to its canonical UCUM unit.

    Parameters
    ----------
    vital
        A vital name of :data:`CANONICAL_UNITS`.
    value
        The value in ``unit``.
    unit
        Its UCUM code.
    where
        The record concerned, shown in errors.

    Returns
    -------
    float
        The value in ``CANONICAL_UNITS[vital]``.

    Raises
    ------
    SchemaError
        If the unit cannot be converted (see :func:`unit_conversion`).

    Examples
    --------
    >>> to_canonical("temperature", 310.15, "K")
    37.0
    >>> round(to_canonical("systolic_bp", 16.0, "kPa"), 1)
    120.0
    """
    scale, offset = unit_conversion(vital, unit, where=where)
    return float(value) * scale + offset
