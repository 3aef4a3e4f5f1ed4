"""Classification of an artifact against Article 29 WP Opinion 05/2014, with stated thresholds.

Every threshold lives in :data:`THRESHOLDS` and is copied into each passport
(``classification.thresholds``), so a reader sees the figures a decision was judged by.
The rules are stated in the package docstring (:mod:`secured_bio.passport`); each one that
fires adds a sentence to ``classification.reasons``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from secured_bio.errors import ConfigError, did_you_mean

__all__ = ["THRESHOLDS", "CATEGORIES", "KINDS", "classify"]

#: The thresholds of every rule, in one place (recorded in each passport).
THRESHOLDS: dict[str, Any] = {
    "confidence": 0.95,
    "k_min": 5,
    "attack_risk_max": 0.05,
    "membership_auc_max": 0.6,
    "exact_copies_share_max": 0.01,
    "dp_epsilon_max": 10.0,
    "aggregate_min_samples": 50,
    "secure_min_sites": 3,
    "homer_power_max": 0.1,
}

#: Meaning of each threshold (recorded in each passport beside the figures).
THRESHOLD_NOTES: dict[str, str] = {
    "confidence": "confidence level of every interval used",
    "k_min": "smallest equivalence class (k-anonymity) as checked by pycanon",
    "attack_risk_max": "upper bound of the 95% CI of the singling-out, linkability and "
    "inference risks (anonymeter method: main vs control success rate)",
    "membership_auc_max": "upper bound of the 95% CI of the membership-inference AUC "
    "(0.5 = guessing)",
    "exact_copies_share_max": "share of synthetic rows that copy a training row",
    "dp_epsilon_max": "largest differential-privacy epsilon accepted as evidence",
    "aggregate_min_samples": "fewest pooled samples behind released aggregate statistics",
    "secure_min_sites": "fewest sites of a secure-sum protocol for the reveal set to stay "
    "pooled (with 2 sites each learns the other's sums)",
    "homer_power_max": "largest power (true-positive rate at the reported false-positive "
    "rate) of a Homer-style membership test on released frequencies",
}

CATEGORIES = ("anonymous", "pseudonymous", "personal", "aggregate")

#: Artifact kinds a passport can describe.
KINDS = ("gwas_summary_statistics", "anonymized_table", "synthetic_table", "synthetic_vitals",
         "synthetic_images", "federated_model", "education_cases", "report")

_CRITERIA = ("singling_out", "linkability", "inference")
_FRAMEWORK = ("Article 29 Working Party, Opinion 05/2014 on anonymisation techniques "
              "(WP216): singling out, linkability, inference")


def _by_criterion(evidence: Sequence[Mapping[str, Any]], criterion: str
                  ) -> list[Mapping[str, Any]]:
    return [e for e in evidence if e.get("criterion") == criterion]


def _find(evidence: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any] | None:
    return next((e for e in evidence if e["name"] == name), None)


def _fmt(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def _criteria(evidence: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Status of each Art. 29 criterion: passed / failed / not_measured, with its evidence."""
    out: dict[str, dict[str, Any]] = {}
    for c in _CRITERIA:
        items = [e for e in _by_criterion(evidence, c) if e.get("passed") is not None]
        if not items:
            status = "not_measured"
        elif all(e["passed"] for e in items):
            status = "passed"
        else:
            status = "failed"
        out[c] = {"status": status, "evidence": [e["name"] for e in items]}
    return out


def classify(kind: str, evidence: Sequence[Mapping[str, Any]], *,
             facts: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Classify an artifact as anonymous, pseudonymous, personal or aggregate.

    Parameters
    ----------
    kind
        Artifact kind (one of :data:`KINDS`).
    evidence
        Evidence items (``name``, ``value``, ``ci``, ``threshold``, ``passed``, ``source``,
        ``covers``, optional ``criterion``) as built by :func:`secured_bio.passport.build_passport`.
    facts
        Facts of the technique that are not measurements: ``reveal_set`` (list of revealed
        keys), ``n_sites``, ``two_site_disclosure``, ``dp`` (bool), ``secagg`` (bool).

    Returns
    -------
    dict
        ``category``, ``treat_as_personal_data``, ``gdpr_status``, ``reasons``,
        ``missing_evidence``, ``residual_risks``, ``criteria`` (per Art. 29 criterion: status
        and evidence names), ``framework`` and ``thresholds`` (with their meaning).

    Raises
    ------
    ConfigError
        If ``kind`` is unknown.

    Examples
    --------
    >>> c = classify("anonymized_table", [{"name": "k_anonymity", "value": 1, "ci": None,
    ...     "threshold": 5, "passed": False, "source": "pycanon", "covers": "release"}])
    >>> c["category"], c["treat_as_personal_data"]
    ('personal', True)
    """
    if kind not in KINDS:
        raise ConfigError("unknown passport kind", where="kind", expected=", ".join(KINDS),
                          got=repr(kind), fix=did_you_mean(kind, KINDS) or "choose a listed kind")
    facts = dict(facts or {})
    reasons: list[str] = []
    missing: list[str] = []
    residual: list[str] = []
    criteria = _criteria(evidence)
    t = THRESHOLDS
    for c, info in criteria.items():
        if info["status"] == "not_measured":
            missing.append(f"{c.replace('_', ' ')} risk (Art. 29 WP criterion) not measured")
        elif info["status"] == "failed":
            bad = [e for e in _by_criterion(evidence, c) if e.get("passed") is False]
            reasons.append(f"{c.replace('_', ' ')}: risk not shown under {t['attack_risk_max']} ("
                           + ", ".join(f"{e['name']} {_fmt(e['value'])}, upper CI bound "
                                       f"{_fmt((e.get('ci') or [None, None])[1])}" for e in bad)
                           + ")")
    art29_ok = all(info["status"] == "passed" for info in criteria.values())

    if kind == "gwas_summary_statistics":
        category = _aggregate_rules(evidence, facts, reasons, missing, residual)
    elif kind == "anonymized_table":
        category = _table_rules(evidence, reasons, missing, art29_ok)
    elif kind in ("synthetic_table", "synthetic_vitals", "synthetic_images", "education_cases"):
        category = _synthetic_rules(evidence, facts, criteria, reasons, missing, residual)
    elif kind == "federated_model":
        category = _model_rules(evidence, facts, reasons, missing, residual)
    else:  # report
        category = "aggregate"
        reasons.append("a report of summary figures (counts, metrics), not records")
        missing.append("small-cell check of the report's figures")
        residual.append("figures computed on few people can single them out; check that no "
                        "figure describes fewer than a handful of people")
    if category == "anonymous" and missing:  # pragma: no cover - a guard on the rules above
        category = "personal"
    # Only the Art. 29 rows that decide anonymity are "missing" for non-anonymity claims.
    if category == "aggregate":
        missing = [m for m in missing if "Art. 29" not in m]
    treat = category in ("personal", "pseudonymous")
    status = {
        "anonymous": "not personal data if the measured evidence holds (GDPR Recital 26): "
        "every Art. 29 criterion was measured and is under its threshold",
        "aggregate": "aggregate statistics: outside the GDPR only while no person can be "
        "singled out, linked or inferred from them (see residual risks)",
        "pseudonymous": "personal data: pseudonymised data remain personal data (GDPR "
        "Art. 4(5), Recital 26)",
        "personal": "personal data (GDPR Art. 4(1)): treat as such",
    }[category]
    return {
        "category": category,
        "treat_as_personal_data": treat,
        "gdpr_status": status,
        "reasons": reasons,
        "missing_evidence": missing,
        "residual_risks": residual,
        "criteria": criteria,
        "framework": _FRAMEWORK,
        "thresholds": dict(t),
        "threshold_notes": dict(THRESHOLD_NOTES),
    }


def _aggregate_rules(evidence: Sequence[Mapping[str, Any]], facts: Mapping[str, Any],
                     reasons: list[str], missing: list[str], residual: list[str]) -> str:
    t = THRESHOLDS
    category = "aggregate"
    n = _find(evidence, "n_samples")
    if n is None:
        missing.append("number of pooled samples")
        category = "personal"
        reasons.append("the number of samples behind the statistics is unknown")
    elif not n["passed"]:
        category = "personal"
        reasons.append(f"statistics over {n['value']} samples (< {t['aggregate_min_samples']}): "
                       "too few for the per-variant figures to count as aggregates")
    else:
        reasons.append(f"per-variant summary statistics pooled over {n['value']} samples, "
                       "no row-level data")
    if facts.get("reveal_set"):
        reasons.append("the secure protocol reveals only pooled values ("
                       + ", ".join(facts.get("reveal_pooled", [])) + ") and per-site metadata ("
                       + ", ".join(facts.get("reveal_per_site", [])) + "), no site's own sums")
    sites = _find(evidence, "n_sites")
    if sites is not None and not sites["passed"]:
        residual.append(facts.get("two_site_disclosure") or
                        f"only {sites['value']} sites: each learns the other's sums")
    homer = _find(evidence, "homer_membership_power")
    if homer is None:
        residual.append("Homer-style membership inference from released allele frequencies "
                        "or effect sizes (Homer et al. 2008; Visscher & Hill 2009): not "
                        "measured for this release")
        missing.append("Homer-style membership power on the released statistics")
    elif homer["passed"] is False:
        category = "personal"
        reasons.append(f"Homer-style membership test has power {_fmt(homer['value'])} "
                       f"(> {t['homer_power_max']}): membership of a person can be inferred")
    else:
        residual.append(f"Homer-style membership inference: measured power "
                        f"{_fmt(homer['value'])} (<= {t['homer_power_max']})")
    return category


def _table_rules(evidence: Sequence[Mapping[str, Any]], reasons: list[str],
                 missing: list[str], art29_ok: bool) -> str:
    t = THRESHOLDS
    k = _find(evidence, "k_anonymity")
    if k is None:
        missing.append("k-anonymity checked by pycanon")
        reasons.append("k-anonymity was not checked by pycanon: no claim of anonymity")
        return "personal"
    if k["value"] is None or k["value"] < 2:
        reasons.append(f"k = {k['value']}: some records are unique on the quasi-identifiers "
                       "and can be singled out")
        return "personal"
    if k["source"] != "pycanon":
        missing.append("k-anonymity checked by pycanon")
    if not k["passed"]:
        reasons.append(f"k = {k['value']} (< {t['k_min']}): small classes allow singling out")
    else:
        reasons.append(f"k = {k['value']} (>= {t['k_min']}) checked by {k['source']}")
    if k["passed"] and k["source"] == "pycanon" and art29_ok:
        reasons.append("singling out, linkability and inference risks measured and under "
                       f"{t['attack_risk_max']} (upper CI bound)")
        return "anonymous"
    reasons.append("generalized and suppressed records remain attributable with additional "
                   "information: pseudonymous, not anonymous")
    return "pseudonymous"


def _synthetic_rules(evidence: Sequence[Mapping[str, Any]], facts: Mapping[str, Any],
                     criteria: Mapping[str, Mapping[str, Any]], reasons: list[str],
                     missing: list[str], residual: list[str]) -> str:
    t = THRESHOLDS
    ok = True
    for prefix, what, limit in (
            ("membership_inference_auc", "membership-inference AUC against held-out real "
             "records", "membership_auc_max"),
            ("exact_copies_share", "share of synthetic rows that copy a training row",
             "exact_copies_share_max")):
        items = [e for e in evidence if e["name"].startswith(prefix)]
        if not items or all(e["passed"] is None for e in items):
            missing.append(what)
            ok = False
        for e in items:
            if e["passed"] is None:
                continue
            ci = f", 95% CI {_fmt(e['ci'][0])}-{_fmt(e['ci'][1])}" if e["ci"] else ""
            if e["passed"]:
                reasons.append(f"{e['name']} = {_fmt(e['value'])}{ci} (<= {t[limit]})")
            else:
                ok = False
                reasons.append(f"{e['name']} = {_fmt(e['value'])}{ci}: upper bound above "
                               f"{t[limit]}")
    for m in facts.get("missing", []):
        missing.append(m)
        ok = False
    dp = _find(evidence, "dp_epsilon")
    if dp is not None:
        if dp["passed"]:
            reasons.append(f"differential privacy, epsilon {_fmt(dp['value'])} "
                           f"(<= {t['dp_epsilon_max']}): {dp['covers']}")
        else:
            ok = False
            reasons.append(f"differential privacy claimed but not accepted as evidence "
                           f"(epsilon {_fmt(dp['value'])}, or the noise was not secure)")
    else:
        residual.append("no differential privacy: the guarantees are empirical (attacks), "
                        "not formal")
    for c, info in criteria.items():
        if info["status"] == "failed":
            ok = False
        elif info["status"] == "not_measured":
            residual.append(f"{c.replace('_', ' ')} not measured directly; membership "
                            "inference and exact copies stand in for it")
    # For synthetic data the membership test and copies stand in for unmeasured Art. 29
    # attacks (a generator keeps no one-to-one link to real records); measured failures count.
    missing[:] = [m for m in missing if "Art. 29" not in m]
    if ok:
        return "anonymous"
    reasons.append("evidence of anonymity is missing or failed: treat the synthetic data as "
                   "personal data derived from the training records")
    return "personal"


def _model_rules(evidence: Sequence[Mapping[str, Any]], facts: Mapping[str, Any],
                 reasons: list[str], missing: list[str], residual: list[str]) -> str:
    t = THRESHOLDS
    sites = _find(evidence, "n_sites")
    reasons.append("model parameters aggregated over "
                   + (f"{sites['value']} sites" if sites else "several sites")
                   + " by federated averaging; no record left a site")
    if facts.get("secagg"):
        reasons.append("secure aggregation (SecAgg+): the server saw only the sum of updates")
    dp = _find(evidence, "dp_epsilon")
    if dp is None:
        residual.append("no differential privacy: membership inference and model inversion "
                        "against the model are not bounded")
    elif dp["passed"]:
        reasons.append(f"differential privacy, epsilon {_fmt(dp['value'])} "
                       f"(<= {t['dp_epsilon_max']}): {dp['covers']}")
    else:
        residual.append(f"differential privacy epsilon {_fmt(dp['value'])} above "
                        f"{t['dp_epsilon_max']}: a weak bound")
    if _find(evidence, "membership_inference_auc") is None:
        missing.append("membership-inference AUC of the released model")
        residual.append("membership inference against the model: not measured")
    return "aggregate"
