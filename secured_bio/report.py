"""Readable summaries of pilot runs (what ``make demo`` prints at the end).

Three views of the same ``metrics.json`` files:

- :func:`curated_summary`: a short text (about 20 lines) with each pilot's headline result
  in words and numbers, what it means and what to look at next (printed by ``make demo``);
- :func:`results_page`: one self-contained HTML page with each pilot's key figures, their
  plain-language explanations and its main plots (embedded PNGs) with captions;
- :func:`summarize_results`: every figure of every metrics.json (the full detail).
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secured_bio.errors import FormatError, InputFileNotFoundError

__all__ = [
    "Figure", "PilotDigest", "Plot", "curated_summary", "digest_pilot", "find_pilot_metrics",
    "results_page", "summarize_results",
]


#: Detail that stays in the JSON files (named in the summary, not spelled out).
_DETAIL_KEYS = ("reveal_set", "per_site")


def _is_table(v: Any) -> bool:
    """Tell whether ``v`` maps names to mappings with the same scalar keys (a table)."""
    if not isinstance(v, dict) or len(v) < 2 or not all(isinstance(x, dict) for x in v.values()):
        return False
    keys = [tuple(x) for x in v.values()]
    return len(set(keys)) == 1 and all(
        not isinstance(y, dict | list) for x in v.values() for y in x.values()
    )


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if k in _DETAIL_KEYS:
            out[key] = "(see the JSON file)"
        elif _is_table(v):
            continue  # rendered as a table by _tables
        elif isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, list) and any(isinstance(x, dict | list) for x in v):
            out[key] = f"[{len(v)} records: see the JSON file]"
        elif isinstance(v, list):
            out[key] = ", ".join(map(str, v)) if len(v) <= 8 else f"[{len(v)} items]"
        else:
            out[key] = v
    return out


def _tables(d: dict[str, Any], prefix: str = "") -> list[str]:
    """Markdown tables for every mapping of same-shaped mappings (rows = outer keys)."""
    lines: list[str] = []
    for k, v in d.items():
        if _is_table(v):
            cols = list(next(iter(v.values())))
            lines += ["", f"{prefix}{k}:", "", "| | " + " | ".join(cols) + " |",
                      "| --- |" + " --- |" * len(cols)]
            lines += [f"| {row} | " + " | ".join(str(x[c]) for c in cols) + " |"
                      for row, x in v.items()]
            lines.append("")
        elif isinstance(v, dict) and k not in _DETAIL_KEYS:
            lines += _tables(v, f"{prefix}{k}.")
    return lines


#: Headline figures of a validation summary, per kind, in the order they are shown.
_HEADLINE = ("samples", "records", "rows", "subjects", "entries", "shape", "tr_seconds")


def _inputs_table(validation: Path) -> list[str]:
    """Return a Markdown table of the validated input files (one row per file)."""
    if not validation.is_file():
        return []
    reports = json.loads(validation.read_text(encoding="utf-8"))
    rows = ["", "| input | kind | figures |", "| --- | --- | --- |"]
    for r in reports:
        summary = r.get("summary", {})
        figures = ", ".join(
            f"{k} {'x'.join(map(str, v)) if isinstance(v, list) else v}"
            for k in _HEADLINE if (v := summary.get(k)) is not None
        )
        if isinstance(summary.get("traits"), dict):
            figures += ", traits " + ", ".join(f"{k} ({t})" for k, t in summary["traits"].items())
        rows.append(f"| `{r.get('path', '?')}` | {r.get('kind', '?')} | {figures} |")
    return [*rows, ""]


def summarize_results(results: str | Path) -> str:
    """Return a Markdown summary of every ``metrics.json`` found under ``results``.

    Raises
    ------
    InputFileNotFoundError
        If ``results`` does not exist or holds no metrics.json.
    FormatError
        If a metrics.json is not a pilot metrics document (other secured_bio documents with
        a ``format`` of their own, such as a model report, are skipped).
    """
    lines = ["# secured_bio results", ""]
    for f, doc in find_pilot_metrics(results):
        pilot, status = doc["pilot"], doc["status"]
        lines += [f"## {pilot} ({status})", "", f"- metrics: `{f}`"]
        outputs = sorted(
            p.relative_to(f.parent).as_posix()
            for p in f.parent.rglob("*") if p.is_file() and p != f
        )
        lines.append(f"- outputs: {len(outputs)} files")
        lines += _inputs_table(f.parent / "validation.json")
        flat = _flatten({k: v for k, v in doc.items()
                         if k not in ("format", "format_version", "pilot", "status", "config")})
        for key, value in flat.items():
            lines.append(f"- {key}: {value}")
        lines += _tables(doc)
        lines.append("")
    return "\n".join(lines)


def find_pilot_metrics(results: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """Return ``(path, document)`` of every pilot ``metrics.json`` under ``results``.

    Other secured_bio documents named metrics.json (a model report in a run folder) are
    skipped.

    Raises
    ------
    InputFileNotFoundError
        If ``results`` does not exist or holds no metrics.json.
    FormatError
        If a metrics.json is neither a pilot metrics document nor another secured_bio one.
    """
    root = Path(results)
    files = sorted(root.glob("**/metrics.json")) if root.is_dir() else []
    if not files:
        raise InputFileNotFoundError(
            "no pilot results found",
            where=str(root),
            expected="at least one <pilot>/run/metrics.json",
            fix="run the workflow first (make demo) or point to its results folder",
        )
    found = []
    for f in files:
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
            if (isinstance(doc, dict) and str(doc.get("format", "")).startswith("secured_bio.")
                    and doc["format"] != "secured_bio.pilot_metrics"):
                continue  # another secured_bio document (e.g. a model report) in a run folder
            doc["pilot"], doc["status"]  # noqa: B018 (both are required)
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise FormatError(
                "not a pilot metrics file", where=str(f),
                expected="JSON with 'pilot' and 'status'", fix="delete it and rerun the pilot",
            ) from e
        found.append((f, doc))
    return found


# ------------------------------------------------------------------------ curated digest
@dataclass(frozen=True)
class Figure:
    """One key figure of a pilot: a label, its value with units, and what it means."""

    label: str
    value: str
    meaning: str


@dataclass(frozen=True)
class Plot:
    """One of a pilot's main plots and its caption."""

    path: Path
    caption: str


@dataclass(frozen=True)
class PilotDigest:
    """What a newcomer needs from one pilot run.

    Attributes
    ----------
    pilot, title
        The pilot's name and a title in words.
    metrics
        Path of the pilot's metrics.json (the full detail).
    headline
        The headline result in words and numbers with units.
    meaning
        What the result means (one sentence).
    next_step
        What to look at or change next.
    figures, plots
        Key figures and main plots for the results page.
    """

    pilot: str
    title: str
    metrics: Path
    headline: str
    meaning: str
    next_step: str
    figures: list[Figure] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)


def _get(d: Any, *keys: str | int) -> Any:
    for k in keys:
        if isinstance(d, Mapping) and isinstance(k, str):
            d = d.get(k)
        elif isinstance(d, list) and isinstance(k, int) and -len(d) <= k < len(d):
            d = d[k]
        else:
            return None
    return d


def _num(x: Any) -> float | None:
    """``x`` as a finite float, or None."""
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return None
    return float(x)


def _f(x: Any, digits: int = 2) -> str:
    v = _num(x)
    return "n/a" if v is None else f"{v:.{digits}f}"


def _n(x: Any) -> str:
    v = _num(x)
    return "n/a" if v is None else f"{int(v):,}"


def _pct(x: Any) -> str:
    v = _num(x)
    return "n/a" if v is None else f"{100 * v:.0f}%"


def _plots(root: Path, items: list[tuple[str, str]]) -> list[Plot]:
    """Return the plots among ``(relative path, caption)`` that exist under ``root``."""
    return [Plot(root / rel, cap) for rel, cap in items if (root / rel).is_file()]


AUROC_MEANING = "area under the ROC curve: 0.5 = chance, 1 = perfect ranking"


def _genomic_access(f: Path, doc: Mapping[str, Any]) -> PilotDigest:
    root, g = f.parent, doc.get("gwas") or {}
    sites = doc.get("sites") or []
    lam = _num(g.get("lambda_gc"))
    # the principal components the GWAS adjusted for (its summary says; the config may not)
    pcs = int(_num(g.get("principal_components", _get(doc, "config", "pcs"))) or 0)
    pc = g.get("planted_causal") or {}
    out = {k: root / v for k, v in (g.get("outputs") or {}).items()}
    qq, manhattan = out.get("qq", root / "gwas"), out.get("manhattan", root / "gwas")
    headline = (f"secure {g.get('test', '?')} GWAS over {len(sites)} sites: "
                f"{_n(g.get('n_samples'))} samples, {_n(g.get('n_variants_tested'))} variants "
                f"tested, {_n(g.get('n_genome_wide_hits'))} genome-wide hits (P < 5e-8)")
    if pc:
        meaning = (f"{pc.get('genome_wide_significant')} of {pc.get('n')} planted causal variants "
                   f"are genome-wide significant; the sites revealed only summed statistics")
    else:
        meaning = (f"smallest P {_num(g.get('min_p')) or float('nan'):.1e}; the sites revealed "
                   "only summed statistics")
    if lam is None:
        next_step = f"lambda_GC not available: look at the QQ plot {qq}"
    elif lam > 1.1 and not pcs:
        next_step = (f"lambda_GC {lam:.3f} (> 1.1): population structure not corrected; "
                     f"rerun with pcs=4 (QQ plot: {qq})")
    elif lam > 1.1:
        next_step = (f"lambda_GC {lam:.3f} (> 1.1) even with {pcs} principal components: "
                     "residual inflation (polygenic signal, relatedness or more structure); "
                     f"try more PCs and look at the QQ plot: {qq}")
    else:
        next_step = f"lambda_GC {lam:.2f}: no sign of inflation; Manhattan plot: {manhattan}"
    figures = [
        Figure("sites", str(len(sites)), "each ran its own process on its own genotypes"),
        Figure("samples", _n(g.get("n_samples")), "individuals with genotypes and phenotype"),
        Figure("variants tested", _n(g.get("n_variants_tested")),
               f"of {_n(g.get('n_variants'))} variants in the stores"),
        Figure("genome-wide hits", _n(g.get("n_genome_wide_hits")),
               "variants with P < 5e-8, the usual genome-wide threshold"),
        Figure("lambda_GC", _f(lam), "genomic inflation: median chi-square over its expected "
               "value; near 1.0 is good, above 1.1 suggests uncorrected population structure "
               "or relatedness"),
    ]
    if pc:
        figures.append(Figure(
            "planted causal variants found", f"{pc.get('genome_wide_significant')} of "
            f"{pc.get('n')}", f"the demo cohort's known causal variants reaching P < 5e-8 "
            f"({pc.get('in_top_n')} among the {pc.get('n')} smallest P values)"))
    test = g.get("test", "linear")
    plots = _plots(root, [
        (f"gwas/cohort.{test}.manhattan.png", "Manhattan plot: -log10 P of every variant along "
         "the genome from the secure multi-site GWAS; the line marks genome-wide significance "
         "(P = 5e-8), and peaks above it are associated regions."),
        (f"gwas/cohort.{test}.qq.png", "QQ plot: observed against expected -log10 P under no "
         "association. Points on the diagonal with only the tail rising mean true signals; a "
         "whole curve above it (lambda_GC > 1.1) means inflation, often population structure "
         "that principal components (pcs) correct."),
    ])
    return PilotDigest(doc["pilot"], "Genomic access: secure multi-site GWAS", f, headline,
                       meaning, next_step, figures, plots)


def _worst_gap(fairness: Any, gap: str = "equalized_odds_difference") -> tuple[str, float | None]:
    """Return the attribute with the largest defined ``gap`` in a fairness audit."""
    best: tuple[str, float | None] = ("", None)
    for attr, a in (_get(fairness, "attributes") or {}).items():
        v = _num(_get(a, "gaps", gap))
        if v is not None and (best[1] is None or v > best[1]):
            best = (attr, v)
    return best


def _fairness_figures(fs: Any) -> list[Figure]:
    """Worst-group AUROC and the group gaps of ``fairness_summary``, with their 95 % CIs."""
    if not isinstance(fs, Mapping):
        return []

    def ci(key: str) -> str:
        v = _get(fs, key) or {}
        if _num(v.get("value")) is None:
            return "n/a"
        if _num(v.get("lo")) is None:
            return _f(v.get("value"))
        return f"{_f(v.get('value'))} [{_f(v.get('lo'))}-{_f(v.get('hi'))}]"

    option = str(fs.get("option", "none"))
    return [
        Figure("worst-group AUROC", f"{ci('worst_group_auroc')} (mean {ci('mean_auroc')}, "
               f"worst site {ci('worst_site_auroc')})",
               "lowest AUROC of a sex or age-band group of held-out rows, 95 % bootstrap CI "
               f"in brackets; fairness option: {option}"),
        Figure("group gaps", f"equalized odds {ci('equalized_odds_gap')}, demographic "
               f"parity {ci('demographic_parity_gap')}",
               "largest difference between groups in error rates / in the share predicted "
               "positive at 0.5, with 95 % bootstrap CIs (at demo sizes a gap without a CI "
               "means little)"),
    ]


def _federated_plots(root: Path, what: str) -> list[tuple[str, str]]:
    return [
        ("training_curves.png", f"Training curves of the federated {what} model: loss and "
         "held-out AUROC per Flower round; the dashed line is the centralized model trained "
         "on the pooled rows (the reference)."),
        ("per_site.png", f"Per-site performance of the federated {what} model on each site's "
         "held-out rows, next to the centralized model: a site far below the others is "
         "served worse by the shared model."),
        ("fairness.png", f"Fairness audit of the federated {what} model: AUROC, true- and "
         "false-positive rates per group (site, sex, age band); large gaps between groups "
         "(equalized-odds difference) mean unequal errors."),
    ]


def _tumor_classification(f: Path, doc: Mapping[str, Any]) -> PilotDigest:
    root = f.parent
    fed, cen = _num(_get(doc, "federated", "auroc")), _num(_get(doc, "centralized", "auroc"))
    gap = _num(_get(doc, "gap", "auroc"))
    sites = _get(doc, "split", "sites") or []
    rounds = len(doc.get("rounds") or [])
    headline = (f"federated AUROC {_f(fed)} vs centralized {_f(cen)} on "
                f"{_n(_get(doc, 'split', 'n_test'))} held-out scans ({len(sites)} sites, "
                f"{rounds} Flower rounds)")
    attr, eod = _worst_gap(doc.get("fairness"))
    ei = doc.get("encrypted_inference") or {}
    if fed is not None and fed < 0.6:
        meaning = "the federated model is barely better than chance (AUROC < 0.6)"
    else:
        meaning = ("federated training " + ("matches" if gap is not None and abs(gap) <= 0.05
                                            else "differs from") +
                   " pooling the scans without moving them")
    if eod is not None:
        meaning += f"; largest equalized-odds difference {eod:.2f} ({attr})"
    if ei:
        meaning += (f"; encrypted inference of {ei.get('n_scans')} scans within "
                    f"{_num(ei.get('max_abs_diff_probability')) or 0.0:.0e} of plaintext")
    if fed is not None and fed < 0.6:
        next_step = (f"too few scans to learn from? run a larger cohort (demo subjects_per_site);"
                     f" curves: {root / 'training_curves.png'}")
    elif gap is not None and gap < -0.05:
        next_step = (f"federated trails centralized by {-gap:.2f} AUROC: try more rounds or "
                     f"strategy=fedprox (curves: {root / 'training_curves.png'})")
    elif eod is not None and eod > 0.2:
        next_step = f"check the groups behind the {attr} gap: {root / 'fairness.png'}"
    else:
        next_step = f"per-site and fairness plots: {root / 'per_site.png'}"
    figures = [
        Figure("federated AUROC", _f(fed), AUROC_MEANING + "; model trained with Flower, "
               "scans never left their site"),
        Figure("centralized AUROC", _f(cen), "the same model trained on pooled scans (the "
               "reference federated learning is compared with)"),
        Figure("gap", _f(gap), "federated minus centralized AUROC; within +-0.05 is a match"),
        Figure("held-out scans", _n(_get(doc, "split", "n_test")), "test scans from all sites"),
    ]
    if eod is not None:
        figures.append(Figure("largest equalized-odds difference", f"{eod:.2f} ({attr})",
                              "largest gap in true- or false-positive rate between groups; "
                              "0 = equal errors for every group"))
    figures += _fairness_figures(doc.get("fairness_summary"))
    if ei:
        figures.append(Figure(
            "encrypted inference", f"{ei.get('n_scans')} scans, max difference "
            f"{_num(ei.get('max_abs_diff_probability')) or 0.0:.1e}",
            "CrypTen: the hospital keeps the features, the model owner the weights; the "
            "probability differs from plaintext only by fixed-point rounding"))
    return PilotDigest(doc["pilot"], "Tumour classification: federated imaging model", f,
                       headline, meaning, next_step, figures,
                       _plots(root, _federated_plots(root, "tumour classifier")))


def _telemonitoring(f: Path, doc: Mapping[str, Any]) -> PilotDigest:
    root, m, pews = f.parent, doc.get("model") or {}, doc.get("pews") or {}
    auroc, p_auroc = _num(m.get("auroc")), _num(pews.get("auroc"))
    n_pos = _num(m.get("n_positive"))
    headline = (f"deterioration model AUROC {_f(auroc)} vs PEWS {_f(p_auroc)} on "
                f"{_n(m.get('test_patients'))} later-admitted patients "
                f"({_n(n_pos)} positive of {_n(m.get('n_rows'))} windows, "
                f"{_f(m.get('horizon_hours'), 0)} h ahead)")
    meaning = (f"at a {_pct(m.get('alert_budget'))} alert budget: PPV {_f(m.get('ppv'))}, "
               f"sensitivity {_f(m.get('sensitivity'))}, lead time "
               f"{_f(m.get('lead_time_hours'), 1)} h; federated AUROC "
               f"{_f(_get(doc, 'federated', 'auroc'))}")
    dp = doc.get("dp") or {}
    if dp:
        meaning += (f"; with DP-SGD (epsilon {_f(dp.get('epsilon'), 1)}) membership attack AUC "
                    f"{_f(dp.get('mia_auc'))} vs {_f(_get(doc, 'nodp', 'mia_auc'))} without")
    if n_pos is not None and n_pos < 30:
        next_step = (f"only {int(n_pos)} positive windows: figures are uncertain; run a larger "
                     f"cohort (demo patients_per_site); ROC: {root / 'report' / 'roc_pr.png'}")
    elif auroc is not None and p_auroc is not None and auroc < p_auroc:
        next_step = ("the learned model does not beat PEWS here: compare them in "
                     f"{root / 'report' / 'roc_pr.png'}")
    else:
        next_step = f"alerts per patient over time: {root / 'report' / 'timelines.png'}"
    figures = [
        Figure("model AUROC", _f(auroc), AUROC_MEANING + "; gradient boosting on vital-sign "
               "windows, patients admitted later held out"),
        Figure("PEWS AUROC", _f(p_auroc), "the Bedside PEWS (vital-sign items) on the same "
               "windows: the clinical baseline to beat"),
        Figure("PPV / sensitivity", f"{_f(m.get('ppv'))} / {_f(m.get('sensitivity'))}",
               f"share of alerts that were real / of deteriorations caught, when "
               f"{_pct(m.get('alert_budget'))} of windows may alert"),
        Figure("lead time", f"{_f(m.get('lead_time_hours'), 1)} h", "median time from the "
               "first alert to the clinical event"),
        Figure("federated AUROC", _f(_get(doc, "federated", "auroc")), "the torch model "
               "trained with Flower across hospitals, without DP (centralized: "
               f"{_f(_get(doc, 'federated', 'centralized_auroc'))})"),
        *_fairness_figures(_get(doc, "federated_run", "fairness_summary")),
    ]
    if dp:
        figures += [
            Figure("DP-SGD epsilon", _f(dp.get("epsilon"), 2), "record-level privacy budget "
                   "per hospital (smaller = more private); covers the model parameters sent"),
            Figure("membership attack AUC", f"{_f(dp.get('mia_auc'))} with DP, "
                   f"{_f(_get(doc, 'nodp', 'mia_auc'))} without", "how well an attacker "
                   "tells training patients from others; 0.5 = no better than guessing"),
            Figure("DP model AUROC", _f(_get(dp, "test", "auroc")), "the price of privacy "
                   "in accuracy"),
        ]
    plots = _plots(root, [
        ("report/roc_pr.png", "ROC and precision-recall curves of the deterioration model and "
         "the PEWS baseline on later-admitted patients: higher and further left is better."),
        ("report/calibration.png", "Calibration: predicted risk against the observed event "
         "rate per risk bin; points on the diagonal mean the risks can be read as "
         "probabilities."),
        ("report/timelines.png", "Risk over time for a few held-out patients, with the alert "
         "threshold and the clinical event: alerts before the event are the lead time."),
        ("report/privacy_utility.png", "What DP buys and costs: ROC of the membership attack "
         "(training patients vs same-period held-out patients) on the models trained without "
         "and with DP-SGD, beside each model's test AUROC; an attack AUC near 0.5 means no "
         "measurable leakage (intervals are wide at demo size)."),
        *_federated_plots(root, "deterioration"),
    ])
    return PilotDigest(doc["pilot"], "Telemonitoring: early warning of deterioration", f,
                       headline, meaning, next_step, figures, plots)


def _synthetic_education(f: Path, doc: Mapping[str, Any]) -> PilotDigest:
    root, c, t = f.parent, doc.get("cases") or {}, doc.get("table") or {}
    dp = (f"differentially private, epsilon {_f(t.get('epsilon'), 1)}"
          if t.get("differentially_private") else "not differentially private")
    headline = (f"{_n(c.get('n'))} teaching cases in {_n(c.get('groups'))} groups, "
                f"{_pct(c.get('conditions_met_share'))} meet their conditions; table generator "
                f"{t.get('generator')} ({dp})")
    mia = _num(t.get("membership_inference_auc"))
    meaning = (f"membership attack AUC {_f(mia)} on the case table (0.5 = guessing), "
               f"{_pct(t.get('exact_copies_share'))} exact copies of real rows; a model trained "
               f"on synthetic rows scores AUROC {_f(t.get('tstr_auroc'))} on real ones")
    index = root / str(c.get("index") or "cases/index.html")
    if mia is not None and mia > 0.6:
        next_step = (f"membership attack AUC {mia:.2f} > 0.6: the generator may memorise; "
                     f"rerun with method=mst and an epsilon; cases: {index}")
    else:
        next_step = f"open the cases and their privacy statements: {index}"
    figures = [
        Figure("cases", _n(c.get("n")), f"in {_n(c.get('groups'))} groups of the case spec"),
        Figure("conditions met", _pct(c.get("conditions_met_share")),
               "cases matching every condition their group asked for"),
        Figure("membership attack AUC", _f(mia), "can an attacker tell which real patients "
               "trained the generator? 0.5 = no better than guessing"),
        Figure("exact copies", _pct(t.get("exact_copies_share")),
               "synthetic rows identical to a real row"),
        Figure("utility (TSTR / TRTR AUROC)",
               f"{_f(t.get('tstr_auroc'))} / {_f(t.get('trtr_auroc'))}",
               "a model trained on synthetic / on real rows, both tested on held-out real rows"),
    ]
    vitals = sorted(root.glob("cases/cases/*/vitals.png"))[:1]
    images = sorted(root.glob("cases/cases/*/image.png"))[:1]
    plots = [Plot(p, f"Synthetic vital-sign chart of teaching case {p.parent.name} "
                  "(generated, not a real patient).") for p in vitals]
    plots += [Plot(p, f"Synthetic image of teaching case {p.parent.name} (generated by the "
                   "image model, not a real scan).") for p in images]
    return PilotDigest(doc["pilot"], "Synthetic education: teaching cases", f, headline,
                       meaning, next_step, figures, plots)


def _generic(f: Path, doc: Mapping[str, Any]) -> PilotDigest:
    v = doc.get("validation") or {}
    headline = f"status {doc.get('status')}"
    if v:
        headline += (f"; {_n(v.get('files'))} input files validated "
                     f"({'all ok' if v.get('all_ok') else 'with errors'})")
    return PilotDigest(str(doc["pilot"]), str(doc["pilot"]), f, headline,
                       "the pilot's own figures are in its metrics.json",
                       f"details: {f}", [Figure("status", str(doc.get("status")), "")])


_DIGESTS: dict[str, Callable[[Path, Mapping[str, Any]], PilotDigest]] = {
    "genomic_access": _genomic_access,
    "tumor_classification": _tumor_classification,
    "telemonitoring": _telemonitoring,
    "synthetic_education": _synthetic_education,
}


def digest_pilot(path: str | Path, doc: Mapping[str, Any]) -> PilotDigest:
    """Return the curated digest of one pilot's ``metrics.json`` document.

    Parameters
    ----------
    path
        Where ``doc`` was read (paths in the digest are relative to its folder).
    doc
        The pilot metrics document.

    Returns
    -------
    PilotDigest
        Headline, meaning, next step, key figures and main plots.

    Examples
    --------
    >>> d = digest_pilot("results/x/run/metrics.json", {"pilot": "x", "status": "preview"})
    >>> d.headline
    'status preview'
    """
    return _DIGESTS.get(str(doc.get("pilot")), _generic)(Path(path), doc)


def curated_summary(
    results: str | Path, *, page: str | Path | None = None, full: str | Path | None = None
) -> str:
    """Return the short summary ``make demo`` prints: per pilot a headline, meaning, next step.

    Parameters
    ----------
    results
        Folder holding the pilots' ``metrics.json`` files.
    page, full
        Paths of the results page and of the full-detail summary, named at the end.

    Returns
    -------
    str
        About five lines per pilot (Markdown).

    Raises
    ------
    InputFileNotFoundError
        If ``results`` holds no metrics.json.
    FormatError
        If a metrics.json is not a pilot metrics document.
    """
    found = find_pilot_metrics(results)
    lines = [f"# secured_bio results: {len(found)} pilot{'s' * (len(found) != 1)}", ""]
    for f, doc in found:
        d = digest_pilot(f, doc)
        subtitle = d.title.split(": ", 1)[-1]
        heading = f"## {d.pilot} ({doc.get('status')})"
        lines += [heading + (f": {subtitle}" if subtitle != d.pilot else ""),
                  f"- {d.headline}", f"- {d.meaning}", f"- next: {d.next_step}"]
    lines.append("")
    if page is not None:
        lines.append(f"Results page: {page}")
    detail = "each pilot's metrics.json" + (f" and {full}" if full is not None else "")
    lines.append(f"Full detail: {detail}")
    return "\n".join(lines) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:0 auto;
padding:1.5em;color:#1d2329;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:2px solid #d5dbe1;
padding-bottom:.2em}p.lead{font-size:1.08em}p.next{background:#f3f6f9;border-left:4px solid
#3b6ea5;padding:.5em .8em}table{border-collapse:collapse;width:100%;margin:.8em 0}
th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid #e3e7eb;vertical-align:top}
td.v{white-space:nowrap;font-weight:600}figure{margin:1em 0}
figure img{max-width:100%;height:auto;border:1px solid #e3e7eb}
figcaption{color:#4a5560;font-size:.95em}code{font-size:.92em}nav a{margin-right:1em}
"""


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.name)}">'


def results_page(results: str | Path, *, full: str | Path | None = None) -> str:
    """Return one self-contained HTML page of every pilot's key figures and main plots.

    Plots are embedded (base64 PNG), so the page can be mailed or opened anywhere; the full
    detail stays in the JSON files it names.  Paths are shown relative to ``results``.

    Raises
    ------
    InputFileNotFoundError
        If ``results`` holds no metrics.json.
    FormatError
        If a metrics.json is not a pilot metrics document.
    """
    root = Path(results)

    def rel(p: Path) -> str:
        try:
            return p.relative_to(root).as_posix()
        except ValueError:
            return p.as_posix()

    esc = html.escape
    digests = [digest_pilot(f, doc) for f, doc in find_pilot_metrics(root)]
    parts = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>secured_bio results</title><style>{_CSS}</style></head><body>",
             "<h1>secured_bio results</h1>",
             f"<p>{len(digests)} pilots. Each section gives the headline result, what it "
             "means, what to look at next, the key figures and the main plots. Everything "
             "else is in each pilot's <code>metrics.json</code>"
             + (f" and in <code>{esc(rel(Path(full)))}</code>" if full else "") + ".</p>",
             "<nav>" + "".join(f'<a href="#{esc(d.pilot)}">{esc(d.title.split(":")[0])}</a>'
                               for d in digests) + "</nav>"]
    for d in digests:
        parts += [f'<section id="{esc(d.pilot)}"><h2>{esc(d.title)}</h2>',
                  f'<p class="lead">{esc(d.headline[:1].upper() + d.headline[1:])}.</p>',
                  f"<p>{esc(d.meaning[:1].upper() + d.meaning[1:])}.</p>",
                  f'<p class="next"><b>Next:</b> {esc(d.next_step.replace(str(root) + "/", ""))}'
                  "</p>",
                  "<table><tr><th>figure</th><th>value</th><th>what it means</th></tr>"]
        parts += [f'<tr><td>{esc(x.label)}</td><td class="v">{esc(x.value)}</td>'
                  f"<td>{esc(x.meaning)}</td></tr>" for x in d.figures]
        parts.append(f"</table><p>Full detail: <code>{esc(rel(d.metrics))}</code></p>")
        parts += [f"<figure>{_img(p.path)}<figcaption>{esc(p.caption)} "
                  f"(<code>{esc(rel(p.path))}</code>)</figcaption></figure>" for p in d.plots]
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
