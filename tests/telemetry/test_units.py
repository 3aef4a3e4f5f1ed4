"""Unit conversion to canonical UCUM units, checked against independent definitions."""

from __future__ import annotations

import pytest
import scipy.constants as sc

from secured_bio.errors import SchemaError
from secured_bio.telemetry.units import (
    CANONICAL_UNITS,
    UNIT_ALIASES,
    to_canonical,
    unit_conversion,
)


def test_canonical_units__match_the_vitals_data_spec() -> None:
    from secured_bio.specs import load_spec

    rules = load_spec("vitals")["table"]["group_rules"]["rules"]
    assert dict(CANONICAL_UNITS) == {v: r["unit"]["equals"] for v, r in rules.items()}


def test_canonical_units__match_the_simulator_units() -> None:
    from secured_bio.testing._vitals import VITALS

    assert dict(CANONICAL_UNITS) == {v: s.unit for v, s in VITALS.items()}


@pytest.mark.parametrize("unit", ["degF", "[degF]"])
@pytest.mark.parametrize("fahrenheit", [-40.0, 32.0, 98.6, 104.0])
def test_to_canonical__fahrenheit_to_celsius(unit: str, fahrenheit: float) -> None:
    expected = sc.convert_temperature(fahrenheit, "Fahrenheit", "Celsius")
    assert to_canonical("temperature", fahrenheit, unit) == pytest.approx(expected, abs=1e-12)


def test_to_canonical__kelvin_to_celsius() -> None:
    expected = sc.convert_temperature(310.15, "Kelvin", "Celsius")
    assert to_canonical("temperature", 310.15, "K") == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("vital", ["systolic_bp", "diastolic_bp"])
def test_to_canonical__kpa_to_mmhg(vital: str) -> None:
    # scipy's mmHg is the torr (101325/760 Pa); the UCUM mm[Hg] differs by ~1e-7 relative.
    assert to_canonical(vital, 16.0, "kPa") == pytest.approx(16.0e3 / sc.mmHg, rel=1e-6)


def test_to_canonical__fraction_to_percent() -> None:
    assert to_canonical("spo2", 0.97, "1") == pytest.approx(97.0)


@pytest.mark.parametrize("unit", ["/min", "{beats}/min", "beats/min", "{beat}/min"])
def test_to_canonical__heart_rate_aliases_are_identity(unit: str) -> None:
    assert to_canonical("heart_rate", 72.0, unit) == 72.0


@pytest.mark.parametrize("unit", ["/min", "{breaths}/min", "breaths/min"])
def test_to_canonical__respiratory_rate_aliases_are_identity(unit: str) -> None:
    assert to_canonical("respiratory_rate", 18.0, unit) == 18.0


def test_unit_aliases__canonical_unit_is_identity_for_every_vital() -> None:
    for vital, unit in CANONICAL_UNITS.items():
        assert UNIT_ALIASES[vital][unit] == (1.0, 0.0)


def test_unit_conversion__unconvertible_unit_raises_naming_the_record() -> None:
    with pytest.raises(SchemaError, match=r"unit cannot be converted for heart_rate "
                       r"\[obs.json: entry\[4\]\].*got 'mm\[Hg\]'"):
        unit_conversion("heart_rate", "mm[Hg]", where="obs.json: entry[4]")


def test_unit_conversion__missing_unit_raises() -> None:
    with pytest.raises(SchemaError, match="got no unit"):
        unit_conversion("spo2", None)


def test_unit_conversion__long_unit_text_is_not_echoed() -> None:
    junk = "patient-SECRET-1234 some free text"
    with pytest.raises(SchemaError, match="an unrecognised unit") as info:
        unit_conversion("temperature", junk)
    assert junk not in str(info.value)


def test_unit_conversion__unknown_vital_raises_with_hint() -> None:
    with pytest.raises(SchemaError, match="unknown vital sign.*did you mean 'heart_rate'"):
        unit_conversion("heartrate", "/min")


def test_to_canonical__unconvertible_unit_raises() -> None:
    with pytest.raises(SchemaError, match="unit cannot be converted for temperature"):
        to_canonical("temperature", 37.0, "mm[Hg]")
