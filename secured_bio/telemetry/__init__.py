"""Telemonitoring of vital signs: FHIR/CSV ingest, PEWS, deterioration models, streaming.

Submodules are imported on use (no heavy imports here):

- :mod:`secured_bio.telemetry.units`: canonical UCUM units and conversions.
- :mod:`secured_bio.telemetry.ingest`: FHIR R4 / CSV vital signs to the canonical long table.
- :mod:`secured_bio.telemetry.pews`: the Bedside Paediatric Early Warning System score.
- :mod:`secured_bio.telemetry.features`: sliding-window features and deterioration labels.
- :mod:`secured_bio.telemetry.model`: gradient boosting / torch models, evaluation, plots.
- :mod:`secured_bio.telemetry.stream`: incremental real-time scoring of observation streams.
- :mod:`secured_bio.telemetry.federated`: the telemonitoring task of the federation layer.
- :mod:`secured_bio.telemetry.synthetic`: a generator of synthetic vital-sign trajectories
  fitted on real ones (``secured-bio synth vitals``), with its evaluation.
- :mod:`secured_bio.telemetry.fhir`: FHIR R4 vital-signs bundle writer.
"""

__all__ = ["features", "federated", "fhir", "ingest", "model", "pews", "stream", "synthetic",
           "units"]
