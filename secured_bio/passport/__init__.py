"""The privacy passport: what was measured about a released artifact, and what it means.

Every artifact secured_bio releases (GWAS summary statistics, an anonymized or synthetic
table, synthetic vital signs, a federated model, teaching cases, a report) can carry a
passport: a JSON document (``format: secured_bio.passport``, ``format_version: 1``, schema
``data_specs/passport.schema.json``, JSON Schema draft 2020-12) and an HTML page beside it.
The commands write one with ``--passport FILE`` (the JSON to FILE, the page to FILE with the
suffix ``.html``); the hub stores it with the artifact.

The passport is **decision support for a data-protection officer, not a legal opinion**,
and says so (``disclaimer``). It never claims "anonymous" without measured evidence for each
of the three criteria of the Article 29 Working Party Opinion 05/2014 on anonymisation
techniques (singling out, linkability, inference).

Keys
----
format, format_version, created, disclaimer
    Header.
artifact
    ``name``, ``sha256``, ``size``, ``type`` (file or directory: a folder is hashed over its
    files' sorted relative paths and SHA-256s), ``kind``, ``companions`` (files released
    with it, hashed).
produced_by
    ``command``, ``job`` (hub job ID or null), ``secured_bio_version``, ``parameters``,
    ``report_format`` (the report the evidence was read from).
inputs
    Datasets used: ``id``, ``sha256`` (when the file was at hand), ``site``, ``role``, ``duo``.
technique
    SMPC, FL, SecAgg+, DP, k-anonymity/l-diversity/t-closeness, synthetic generator, or
    ``none``: ``name``, ``description``, ``details`` (threat model, parameters...).
evidence
    Each measured result: ``name``, ``value``, ``ci`` ([low, high] or null), ``threshold``,
    ``passed`` (true/false, or null when not judged), ``source`` (``pycanon``,
    ``secured_bio``, ``secured_bio (anonymeter method, ...)``), ``covers`` (what the figure
    is about) and, for attack risks, ``criterion`` (the Art. 29 criterion it measures).
classification
    ``category`` (anonymous, pseudonymous, personal or aggregate), ``treat_as_personal_data``,
    ``gdpr_status``, ``reasons``, ``missing_evidence``, ``residual_risks``, ``criteria``
    (per Art. 29 criterion: passed / failed / not_measured and the evidence behind it),
    ``framework``, ``thresholds`` and ``threshold_notes``.
data_use
    DUO codes inherited from the inputs (and any given with the artifact).
notes (two lists of sentences)
    ``cross_border`` (GDPR Chapter V: adequacy decision Art. 45, appropriate safeguards such
    as standard contractual clauses Art. 46, derogations Art. 49) and ``ehds`` (secondary use
    under Regulation (EU) 2025/327, purposes of Art. 53, data permits, secure processing
    environments).

Thresholds
----------
One table, :data:`THRESHOLDS`, copied into every passport: ``k_min`` 5 (k checked by
pycanon); ``attack_risk_max`` 0.05 (upper bound of the 95% CI of the singling-out,
linkability and inference risks, anonymeter's method); ``membership_auc_max`` 0.6 (upper
bound of the 95% CI of the membership-inference AUC); ``exact_copies_share_max`` 0.01;
``dp_epsilon_max`` 10; ``aggregate_min_samples`` 50; ``secure_min_sites`` 3;
``homer_power_max`` 0.1; ``confidence`` 0.95.

Rules
-----
An attack result counts only when it has a CI and beats the naive baseline (anonymeter's
advice); a criterion is ``passed`` when every judged result for it passes, ``failed`` when
one fails, ``not_measured`` otherwise. Missing evidence never gives "anonymous".

* GWAS summary statistics -> ``aggregate`` when pooled over at least
  ``aggregate_min_samples`` samples; the reasons list the protocol's reveal set (pooled sums
  and per-site metadata). Residual risk: Homer-style membership inference from released
  frequencies and effect sizes, with the measured power when an assessment gives one;
  power above ``homer_power_max``, or too few samples -> ``personal``. Two sites: each learns
  the other's sums (residual risk).
* Anonymized table -> ``anonymous`` only if pycanon's k >= ``k_min`` and the singling-out,
  linkability and inference risks are all measured (``secured-bio assess table``, passed
  as ``assessments``) with upper CI bounds <= ``attack_risk_max``; k = 1 (or k unknown) ->
  ``personal``; otherwise ``pseudonymous``, naming what is missing or failed.
* Synthetic table, vitals, images, teaching cases -> ``anonymous`` only with every measured
  membership-inference AUC's upper CI bound <= ``membership_auc_max``, exact copies <=
  ``exact_copies_share_max``, differential privacy (when present) with a secure noise
  source and epsilon <= ``dp_epsilon_max``, and no measured Art. 29 attack above its
  threshold (unmeasured attacks are listed as residual risks: the membership test and
  copies stand in for them); anything missing or failed -> ``personal``.
* Federated model -> ``aggregate`` (parameters averaged over sites), with SecAgg+ and DP
  (epsilon, delta, what epsilon covers and its adjacency) as reasons; membership inference
  against the model is listed as missing evidence / residual risk.
* Report -> ``aggregate``, with a small-cell check listed as missing.

Example
-------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "release.csv").write_text("age\\n[30-39]\\n")
>>> report = {"format": "secured_bio.anonymize_table_report", "quasi_identifiers": ["age"],
...           "achieved": {"ours": {"k": 1}, "pycanon": {"k": 1}, "agree": True}}
>>> p = build_passport(d / "release.csv", kind="anonymized_table", report=report,
...                    command="secured-bio anonymize table", parameters={"k": 1})
>>> p["classification"]["category"]
'personal'
>>> [f.name for f in write_passport(p, d / "release.passport.json")]
['release.passport.json', 'release.passport.html']
"""

from secured_bio.passport.build import (
    DISCLAIMER,
    FORMAT,
    FORMAT_VERSION,
    build_passport,
    digest,
    input_record,
    validate_passport,
    write_passport,
)
from secured_bio.passport.classify import CATEGORIES, KINDS, THRESHOLDS, classify
from secured_bio.passport.html import passport_html

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "DISCLAIMER",
    "THRESHOLDS",
    "CATEGORIES",
    "KINDS",
    "build_passport",
    "classify",
    "digest",
    "input_record",
    "passport_html",
    "validate_passport",
    "write_passport",
]
