"""Read technique, evidence and inputs out of the reports secured_bio commands write.

One reader per report format (the ``format`` field each report carries); a report of an
unknown format gives no evidence (and so never an "anonymous" classification).  The readers
take plain dicts: this module imports no domain or privacy module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from secured_bio.passport.classify import THRESHOLDS

__all__ = ["extract"]

_ANONYMETER = "secured_bio (anonymeter method, Giomi et al. 2023)"


def _item(name: str, value: Any, *, ci: Sequence[float] | None = None,
          threshold: Any = None, passed: bool | None = None, source: str = "secured_bio",
          covers: str = "", criterion: str | None = None, note: str | None = None
          ) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": name, "value": value, "ci": None if ci is None else [float(x) for x in ci],
        "threshold": threshold, "passed": passed, "source": source, "covers": covers,
    }
    if criterion is not None:
        item["criterion"] = criterion
    if note:
        item["note"] = note
    return item


def _attack(name: str, a: Mapping[str, Any] | None, criterion: str, covers: str
            ) -> dict[str, Any] | None:
    """Turn an anonymeter-style attack result into evidence (risk with its CI)."""
    if not isinstance(a, Mapping):
        return None
    risk, ci = a.get("risk"), a.get("risk_ci")
    limit = THRESHOLDS["attack_risk_max"]
    note = a.get("reason") or a.get("note")
    main, base = (a.get("main") or {}).get("value"), (a.get("baseline") or {}).get("value")
    passed: bool | None = None
    if risk is not None and ci:
        passed = bool(ci[1] <= limit)
        if main is not None and base is not None and main <= base:
            # An attack no better than random guessing says nothing (anonymeter's advice).
            passed = None
            note = note or "the attack does not beat the naive baseline: not evidence"
    return _item(name, risk, ci=ci, threshold={"upper_ci_max": limit}, passed=passed,
                 source=_ANONYMETER, covers=covers, criterion=criterion, note=note)


def _art29_attacks(attacks: Mapping[str, Any], covers: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    so = attacks.get("singling_out")
    if isinstance(so, Mapping) and "risk" not in so:  # {univariate, multivariate}
        for mode, a in so.items():
            out.append(_attack(f"singling_out_risk_{mode}", a, "singling_out", covers) or {})
    else:
        out.append(_attack("singling_out_risk", so, "singling_out", covers) or {})
    out.append(_attack("linkability_risk", attacks.get("linkability"), "linkability",
                       covers) or {})
    out.append(_attack("inference_risk", attacks.get("inference"), "inference", covers) or {})
    return [o for o in out if o]


def _mia(name: str, m: Mapping[str, Any] | None, covers: str) -> dict[str, Any] | None:
    if not isinstance(m, Mapping) or m.get("auc") is None:
        return None
    ci = m.get("auc_ci")
    limit = THRESHOLDS["membership_auc_max"]
    return _item(name, float(m["auc"]), ci=ci, threshold={"upper_ci_max": limit},
                 passed=bool(ci[1] <= limit) if ci else None, covers=covers,
                 note=m.get("attack"))


def _copies(name: str, share: Any, covers: str) -> dict[str, Any] | None:
    if share is None:
        return None
    limit = THRESHOLDS["exact_copies_share_max"]
    return _item(name, float(share), threshold={"max": limit}, passed=float(share) <= limit,
                 covers=covers)


def _dp(epsilon: Any, delta: Any, *, holds: bool, covers: str, source: str = "secured_bio",
        note: str | None = None) -> list[dict[str, Any]]:
    limit = THRESHOLDS["dp_epsilon_max"]
    eps = float(epsilon)
    return [
        _item("dp_epsilon", eps, threshold={"max": limit}, passed=holds and eps <= limit,
              source=source, covers=covers,
              note=note if holds else "the DP noise was not secure: the epsilon does NOT hold"),
        _item("dp_delta", None if delta is None else float(delta), source=source,
              covers=covers),
    ]


def _homer(found: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not isinstance(found, Mapping) or found.get("power") is None:
        return None
    limit = THRESHOLDS["homer_power_max"]
    power = float(found["power"])
    return _item("homer_membership_power", power, threshold={"max": limit},
                 passed=power <= limit, criterion="inference",
                 covers=f"released allele frequencies ({found.get('n_snps', '?')} SNPs), "
                 f"test at false-positive rate {found.get('fpr', '?')} (Homer et al. 2008)")


# ------------------------------------------------------------------------------ readers
def _gwas(r: Mapping[str, Any], facts: dict[str, Any]) -> tuple[list[Any], list[Any],
                                                                   list[Any]]:
    t = THRESHOLDS
    p = r.get("protocol")
    n = r.get("n_samples")
    evidence: list[dict[str, Any]] = []
    if n is not None:
        evidence.append(_item("n_samples", int(n), threshold={"min": t["aggregate_min_samples"]},
                              passed=int(n) >= t["aggregate_min_samples"],
                              covers="samples pooled into every released statistic"))
    evidence.append(_item("n_variants_tested", r.get("n_variants_tested"),
                          covers="rows of the released table"))
    inputs: list[dict[str, Any]] = []
    ins = r.get("inputs") or {}
    if p:
        reveal = p.get("reveal_set") or {}
        facts["reveal_set"] = sorted(reveal)
        facts["reveal_pooled"] = sorted(k for k, v in reveal.items()
                                        if not str(v).startswith("per site"))
        facts["reveal_per_site"] = sorted(k for k, v in reveal.items()
                                          if str(v).startswith("per site"))
        facts["two_site_disclosure"] = p.get("two_site_disclosure")
        sites = list(p.get("sites") or [])
        evidence.append(_item("n_sites", len(sites), threshold={"min": t["secure_min_sites"]},
                              passed=len(sites) >= t["secure_min_sites"],
                              covers="sites of the secure-sum protocol"))
        evidence.append(_item("reveal_set", dict(reveal), source="secured_bio (protocol)",
                              covers="everything any site learns during the protocol"))
        transport = p.get("transport") or {}
        evidence.append(_item("transport_encrypted", bool(transport.get("encrypted")),
                              covers=str(transport.get("detail", ""))))
        technique = [{
            "name": "SMPC",
            "description": "secure multi-party computation: every site keeps its genotypes; "
            "per-variant sums are added by pairwise-masked secure aggregation (Bonawitz et "
            "al. 2017) and only the reveal set is learnt",
            "details": {k: p.get(k) for k in ("name", "version", "threat_model", "dealer",
                                               "transport", "float_precision_bits",
                                               "two_site_disclosure")} | {"sites": sites},
        }]
        inputs += [{"id": s, "site": s, "sha256": None, "role": "genotypes"} for s in sites]
    else:
        technique = [{"name": "none", "description": "plaintext association analysis run by "
                      "the data holder on its own data; only summary statistics are released",
                      "details": {"plink_equivalent": r.get("plink_equivalent")}}]
        if ins.get("genotypes"):
            inputs.append({"id": str(ins["genotypes"]), "role": "genotypes"})
    for role in ("pheno", "covar"):
        if ins.get(role):
            inputs.append({"id": str(ins[role]), "role": role})
    return technique, evidence, inputs


def _anon_table(r: Mapping[str, Any], facts: dict[str, Any]) -> tuple[list[Any], list[Any],
                                                                        list[Any]]:
    t = THRESHOLDS
    a = r.get("achieved") or {}
    ours, theirs = a.get("ours") or {}, a.get("pycanon")
    models = r.get("privacy_models") or {}
    evidence: list[dict[str, Any]] = []
    src, fig = ("pycanon", theirs) if isinstance(theirs, Mapping) else ("secured_bio", ours)
    if fig.get("k") is not None:
        evidence.append(_item("k_anonymity", int(fig["k"]), threshold={"min": t["k_min"]},
                              passed=int(fig["k"]) >= t["k_min"], source=src,
                              covers="smallest class of records sharing all quasi-identifiers "
                              f"({', '.join(r.get('quasi_identifiers') or [])})"))
    if fig.get("l_distinct") is not None or ours.get("l_distinct") is not None:
        lsrc, lval = (src, fig["l_distinct"]) if fig.get("l_distinct") is not None else (
            "secured_bio", ours["l_distinct"])
        want = models.get("l")
        evidence.append(_item("l_diversity_distinct", lval,
                              threshold=None if want is None else {"min": want},
                              passed=None if want is None else lval >= want, source=lsrc,
                              covers=f"distinct values of '{r.get('sensitive')}' per class"))
    tval = fig.get("t") if fig.get("t") is not None else ours.get("t")
    if tval is not None:
        want = models.get("t")
        evidence.append(_item("t_closeness", float(tval),
                              threshold=None if want is None else {"max": want},
                              passed=None if want is None else tval <= want,
                              source=src if fig.get("t") is not None else "secured_bio",
                              covers=f"distance of each class's '{r.get('sensitive')}' "
                              "distribution to the whole table's (EMD)"))
    if "agree" in a:
        evidence.append(_item("pycanon_agrees", bool(a["agree"]), passed=bool(a["agree"]),
                              source="pycanon", covers="our k/l/t figures equal pycanon's"))
    rows = r.get("rows") or {}
    if rows:
        evidence.append(_item("suppressed_fraction", rows.get("suppressed_fraction"),
                              threshold={"max": r.get("max_suppression")},
                              covers="share of input records removed from the release"))
    bias = r.get("bias") or {}
    if "flagged" in bias:
        evidence.append(_item("bias_flagged_groups", len(bias["flagged"]),
                              passed=len(bias["flagged"]) == 0,
                              covers="groups that pay clearly more suppression or "
                              "generalization than the whole (bias audit)"))
    name = "k-anonymity" + ("/l-diversity" if models.get("l") else "") + (
        "/t-closeness" if models.get("t") else "")
    technique = [{"name": name, "description": f"{r.get('method')} generalization of the "
                  "quasi-identifiers and record suppression; direct identifiers dropped",
                  "details": {"privacy_models": dict(models),
                              "quasi_identifiers": r.get("quasi_identifiers"),
                              "sensitive": r.get("sensitive"),
                              "dropped_columns": r.get("dropped_columns"),
                              "max_suppression": r.get("max_suppression")}}]
    ins = r.get("inputs") or {}
    inputs = [{"id": str(ins["table"]), "role": "table"}] if ins.get("table") else []
    return technique, evidence, inputs


def _synthetic_eval(ev: Mapping[str, Any] | None, suffix: str = "") -> list[dict[str, Any]]:
    if not isinstance(ev, Mapping):
        return []
    p = ev.get("privacy") or {}
    out = [_mia("membership_inference_auc" + suffix, p.get("membership_inference"),
                "real training rows vs held-out real rows, distance to the closest synthetic "
                "record"),
           _copies("exact_copies_share" + suffix, (p.get("exact_copies") or {}).get("share"),
                   "synthetic rows equal to a training row")]
    dcr = p.get("dcr") or {}
    if dcr.get("share_closer_than_holdout_5th_percentile") is not None:
        out.append(_item("dcr_share_closer_than_holdout_p5" + suffix,
                         dcr["share_closer_than_holdout_5th_percentile"],
                         covers="synthetic rows closer to a training row than 95% of "
                         "held-out rows are"))
    found = [o for o in out if o]
    found += _art29_attacks(p.get("attacks") or {}, "attacks on the synthetic table with "
                            "real training rows as targets and held-out rows as control")
    return found


def _synth_table(r: Mapping[str, Any], facts: dict[str, Any]) -> tuple[list[Any], list[Any],
                                                                         list[Any]]:
    evidence = _synthetic_eval(r.get("evaluation"))
    technique = [{"name": "synthetic generator", "description": f"{r.get('method')} "
                  "generator fitted on the real table; released rows are sampled from it",
                  "details": {"method": r.get("method"), "params": r.get("params"),
                              "n_rows_input": r.get("n_rows_input"),
                              "n_rows_output": r.get("n_rows_output")}}]
    priv = r.get("privacy")
    if r.get("differentially_private") and isinstance(priv, Mapping):
        facts["dp"] = True
        technique.append({"name": "DP", "description": "differentially private generator "
                          f"({priv.get('reference', 'MST')})",
                          "details": {k: priv.get(k) for k in ("epsilon", "delta",
                                                               "accounting", "neighbouring",
                                                               "domain", "epsilon_holds")}})
        evidence += _dp(priv["epsilon"], priv.get("delta"),
                        holds=bool(priv.get("epsilon_holds", True)),
                        covers=f"the whole synthetic table; neighbouring: "
                        f"{priv.get('neighbouring', 'add/remove one row')}"
                        + (f"; domain: {priv['domain']}" if priv.get("domain") else ""))
    inputs = [{"id": str(r["input"]), "role": "table"}] if r.get("input") else []
    return technique, evidence, inputs


def _vitals_dp(dp: Any, evidence: list[dict[str, Any]], technique: list[dict[str, Any]],
               facts: dict[str, Any]) -> None:
    if not isinstance(dp, Mapping) or dp.get("epsilon") is None:
        return
    facts["dp"] = True
    technique.append({"name": "DP", "description": "differentially private vitals generator",
                      "details": dict(dp)})
    holds = bool(dp.get("epsilon_holds", (dp.get("randomness") or {}).get("secure", True)))
    evidence += _dp(dp["epsilon"], dp.get("delta"), holds=holds,
                    covers=f"the fitted model and all samples; adjacency: "
                    f"{dp.get('adjacency', 'add/remove one patient')}")


def _synth_vitals(r: Mapping[str, Any], facts: dict[str, Any]) -> tuple[list[Any], list[Any],
                                                                          list[Any]]:
    technique: list[dict[str, Any]] = [{
        "name": "synthetic generator", "description": "vital-sign trajectory model fitted on "
        "aggregate statistics of the real patients; released patients are sampled from it",
        "details": dict(r.get("run") or r).get("parameters")}]
    evidence: list[dict[str, Any]] = []
    p = r.get("privacy")
    if isinstance(p, Mapping):
        m = _mia("membership_inference_auc", p.get("membership_inference"),
                 "real patients the model was fitted on vs held-out patients")
        if m:
            evidence.append(m)
        n = r.get("n_synthetic_patients")
        if p.get("exact_copies") is not None and n:
            c = _copies("exact_copies_share", int(p["exact_copies"]) / int(n),
                        "synthetic trajectories equal to a real one")
            if c:
                evidence.append(c)
        _vitals_dp(p.get("differential_privacy"), evidence, technique, facts)
    else:
        _vitals_dp(r.get("differential_privacy"), evidence, technique, facts)
    nested = r.get("run")
    run: Mapping[str, Any] = nested if isinstance(nested, Mapping) else r
    inputs = [{"id": str(run["input"]), "role": "vitals"}] if run.get("input") else []
    return technique, evidence, inputs


def _federated(r: Mapping[str, Any], facts: dict[str, Any]) -> tuple[list[Any], list[Any],
                                                                       list[Any]]:
    cfg = r.get("config") or {}
    sites = list((r.get("split") or {}).get("sites") or [])
    evidence = [_item("n_sites", len(sites) or cfg.get("sites"),
                      covers="sites whose updates are averaged")]
    technique = [{"name": "FL", "description": f"federated learning (Flower, "
                  f"{cfg.get('strategy', 'fedavg')}): only model updates leave a site",
                  "details": {k: cfg.get(k) for k in ("rounds", "strategy", "engine",
                                                       "local_epochs", "tls", "node_auth")}}]
    if r.get("secagg"):
        facts["secagg"] = True
        technique.append({"name": "SecAgg+", "description": "secure aggregation (Bell et al. "
                          "2020): the server learns only the sum of the sites' updates",
                          "details": dict(r["secagg"])})
    dp = r.get("dp")
    if isinstance(dp, Mapping) and dp.get("epsilon") is not None:
        facts["dp"] = True
        technique.append({"name": "DP", "description": dp.get("mechanism", "central DP"),
                          "details": {k: dp.get(k) for k in (
                              "mode", "level", "epsilon", "delta", "noise_multiplier", "clip",
                              "accountant", "adjacency", "not_covered")}})
        secure = bool((dp.get("randomness") or {}).get("secure", True))
        evidence += _dp(dp["epsilon"], dp.get("delta"), holds=secure,
                        covers=f"{dp.get('epsilon_covers', 'the released model')}; adjacency: "
                        f"{dp.get('adjacency', '?')}",
                        note="not covered: " + "; ".join(dp.get("not_covered") or [])
                        if dp.get("not_covered") else None)
    data = r.get("data") or {}
    inputs = [{"id": s, "site": s, "role": "training data"
               + (f" ({data['source']})" if data.get("source") else "")} for s in sites]
    return technique, evidence, inputs


def _education(r: Mapping[str, Any], facts: dict[str, Any]) -> tuple[list[Any], list[Any],
                                                                       list[Any]]:
    priv = r.get("privacy") or {}
    tab = priv.get("table") or {}
    technique: list[dict[str, Any]] = [{
        "name": "synthetic generator", "description": "teaching cases sampled from generators "
        "fitted on real sources (table, vital signs, images); no real patient is included",
        "details": {"table": tab.get("generator"),
                    "vitals": (priv.get("vitals") or {}).get("generator"),
                    "image": (priv.get("image") or {}).get("generator")}}]
    evidence: list[dict[str, Any]] = []
    m = _mia("membership_inference_auc", {"auc": tab.get("membership_inference_auc"),
                                          "auc_ci": tab.get("membership_inference_auc_ci")},
             "case table: real training rows vs held-out rows")
    c = _copies("exact_copies_share", tab.get("exact_copies_share"),
                "case-table rows equal to a training row")
    evidence += [x for x in (m, c) if x]
    if tab.get("differentially_private") and tab.get("epsilon") is not None:
        facts["dp"] = True
        evidence += _dp(tab["epsilon"], tab.get("delta"), holds=True,
                        covers="the case table's generator (add/remove one row)")
    vit = priv.get("vitals")
    if isinstance(vit, Mapping):
        vm = _mia("membership_inference_auc_vitals", {"auc": vit.get("membership_inference_auc"),
                                                      "auc_ci": None},
                  "vital signs: real patients vs held-out patients")
        if vm:
            evidence.append(vm)
        else:
            facts.setdefault("missing", []).append("membership-inference AUC of the vitals")
    if priv.get("image"):
        facts.setdefault("missing", []).append("membership inference against the image "
                                               "generator (only nearest-real distances)")
        img = priv["image"]
        evidence.append(_item("image_nearest_real_distance_min",
                              img.get("nearest_real_distance_min"),
                              covers="smallest distance of a generated image to a real one"))
    src = r.get("sources") or {}
    inputs = [{"id": str(s), "role": "table"} for s in src.get("table") or []]
    inputs += [{"id": str(src[k]), "role": k} for k in ("vitals", "images") if src.get(k)]
    return technique, evidence, inputs


_READERS = {
    "secured_bio.gwas_summary": _gwas,
    "secured_bio.anonymize_table_report": _anon_table,
    "secured_bio.synthetic_table_report": _synth_table,
    "secured_bio.synth_vitals_report": _synth_vitals,
    "secured_bio.synth_vitals_run": _synth_vitals,
    "secured_bio.pilot_metrics": _federated,
    "secured_bio.education_cases": _education,
}


def extract(report: Mapping[str, Any] | None,
            assessments: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Technique, evidence, inputs and facts from a command's report and extra assessments.

    Parameters
    ----------
    report
        The command's own report (its ``format`` selects the reader); None = no report.
    assessments
        Further reports about the same artifact: a ``secured_bio.risk_report``
        (``secured-bio assess table``: singling out, linkability, inference), a synthetic
        evaluation, or a Homer-style membership power (``{"power", "fpr", "auc", "n_snps"}``).

    Returns
    -------
    dict
        ``technique``, ``evidence``, ``inputs``, ``facts``, ``report_format``.
    """
    facts: dict[str, Any] = {}
    technique: list[Any] = []
    evidence: list[Any] = []
    inputs: list[Any] = []
    fmt = None
    if report is not None:
        fmt = report.get("format")
        reader = _READERS.get(str(fmt))
        if reader is not None:
            technique, evidence, inputs = reader(report, facts)
        h = _homer(report.get("membership_power"))
        if h:
            evidence.append(h)
    for a in assessments:
        if a.get("format") == "secured_bio.risk_report":
            evidence += _art29_attacks(a, "attacks on the release with the original records "
                                       "as targets and a control set (anonymeter method)")
            pros = a.get("prosecutor") or {}
            if pros.get("highest") is not None:
                evidence.append(_item("prosecutor_risk_highest", pros["highest"],
                                      covers="largest record re-identification probability "
                                      "(1/class size; El Emam 2013)"))
        elif a.get("format") == "secured_bio.synthetic_evaluation":
            have = {e["name"] for e in evidence}
            evidence += [e for e in _synthetic_eval(a) if e["name"] not in have]
        else:
            h = _homer(a.get("membership_power", a))
            if h:
                evidence.append(h)
    return {"technique": technique, "evidence": evidence, "inputs": inputs, "facts": facts,
            "report_format": fmt}
