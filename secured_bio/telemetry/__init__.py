"""Telemonitoring of vital signs: FHIR/CSV ingest, PEWS, deterioration models, streaming."""
