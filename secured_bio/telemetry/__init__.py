"""Telemonitoring of vital signs: FHIR/CSV ingest, PEWS, deterioration models, streaming.

Submodules are imported on use (no heavy imports here):

- :mod:`secured_bio.telemetry.units`: canonical UCUM units and conversions.
- :mod:`secured_bio.telemetry.ingest`: FHIR R4 / CSV vital signs to the canonical long table.
- :mod:`secured_bio.telemetry.pews`: the Bedside Paediatric Early Warning System score.
"""

__all__ = ["units", "ingest", "pews"]
