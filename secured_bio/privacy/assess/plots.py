"""Charts of assessment results: fairness audits, per-site metrics, training curves, risks.

All charts are PNG files drawn with matplotlib's Agg canvas (no display, no global pyplot
state) and written atomically: a crash never leaves a file that looks finished.  Charts show
names, counts and aggregate metrics only, never individual rows.
"""

from __future__ import annotations

import math
import numbers
import os
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from secured_bio._atomic import atomic_path
from secured_bio.errors import InputError

__all__ = ["plot_fairness", "plot_per_site", "plot_training_curves", "plot_risk"]

_COLORS = {"auroc": "#1f4e79", "tpr": "#2e8b57", "fpr": "#c00000", "accuracy": "#e69500",
           "loss": "#1f4e79"}
_FALLBACK = ("#6a3d9a", "#8c564b", "#17becf", "#7f7f7f")


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | os.PathLike[str]) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def _color(metric: str, i: int) -> str:
    return _COLORS.get(metric, _FALLBACK[i % len(_FALLBACK)])


def _value(v: Any, where: str) -> float | None:
    """Return a metric value as float (None and NaN mean 'undefined'); refuse non-numbers."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise InputError(
            "metric value is not a number", where=where, expected="a number or None",
            got=f"a {type(v).__name__}", fix="pass the metrics as numbers",
        )
    f = float(v)
    return f if math.isfinite(f) else None


#: Bars shorter than this share of the axis get a marker at their base (else invisible).
_THIN = 0.01


def _bars(ax: Any, names: Sequence[str], series: Mapping[str, Sequence[float | None]],
          *, top: float = 1.0) -> None:
    """Draw grouped bars, one colour per metric, each labelled with its value.

    An undefined value gets an 'n/a' mark; a zero (or near-zero) bar, which would be
    invisible, gets a marker of its colour at its base, so 0 and "not drawn" differ.
    """
    k = len(series)
    width = 0.8 / k
    for j, (metric, vals) in enumerate(series.items()):
        xs = [i + (j - (k - 1) / 2) * width for i in range(len(names))]
        color = _color(metric, j)
        ax.bar([x for x, v in zip(xs, vals, strict=True) if v is not None],
               [v for v in vals if v is not None], width=width, color=color,
               label=metric.upper() if len(metric) <= 5 else metric)
        thin = [(x, v) for x, v in zip(xs, vals, strict=True)
                if v is not None and abs(v) < _THIN * top]
        if thin:
            ax.plot([x for x, _ in thin], [0.0] * len(thin), ls="", marker="o", ms=4,
                    color=color, markeredgecolor="black", markeredgewidth=0.5,
                    clip_on=False, zorder=3)
        for x, v in zip(xs, vals, strict=True):
            if v is None:
                ax.text(x, 0.02 * top, "n/a", ha="center", va="bottom", fontsize=7,
                        rotation=90)
            else:
                ax.text(x, max(v, 0.0) + 0.015 * top, f"{v:.2f}", ha="center", va="bottom",
                        fontsize=6, rotation=90)
    ax.set_xticks(list(range(len(names))))
    ax.set_xticklabels(list(names), fontsize=8)


def plot_fairness(
    audit: Mapping[str, Any], path: str | os.PathLike[str], *, title: str | None = None
) -> Any:
    """Draw a fairness audit: per attribute, per-group AUROC, TPR and FPR with overall lines.

    One panel per grouping attribute; dashed lines show the overall value of each metric.
    Every bar carries its value; a zero bar gets a marker at its base.  Groups below
    ``min_group_size`` are marked ``*``; undefined metrics are marked ``n/a``.

    Parameters
    ----------
    audit
        The result of :func:`secured_bio.privacy.assess.fairness_audit`.
    path
        PNG file to write (atomically).
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure written.

    Raises
    ------
    InputError
        If ``audit`` is not a fairness audit of a supported version, or has no grouping
        attribute with groups.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from secured_bio.privacy.assess import fairness_audit
    >>> a = fairness_audit([1, 0, 1, 0], [0.8, 0.3, 0.4, 0.6], groups={"site": list("aabb")},
    ...                    min_group_size=1)
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "fairness.png"
    >>> fig = plot_fairness(a, out)
    >>> out.read_bytes()[:4] == b"\\x89PNG"
    True
    """
    from secured_bio.privacy.assess.fairness import FORMAT, FORMAT_VERSION

    if not isinstance(audit, Mapping) or audit.get("format") != FORMAT:
        raise InputError(
            "not a fairness audit", where="audit", expected=f"a dict with format '{FORMAT}'",
            got=f"a {type(audit).__name__} without it", fix="pass the result of fairness_audit",
        )
    if audit.get("format_version") != FORMAT_VERSION:
        raise InputError(
            "unsupported fairness audit version", where="audit",
            expected=f"format_version {FORMAT_VERSION}",
            got=f"format_version {audit.get('format_version')!r}",
            fix="re-run the audit with this version of secured_bio (or upgrade it)",
        )
    attributes = {k: v for k, v in audit.get("attributes", {}).items() if v.get("groups")}
    if not attributes:
        raise InputError(
            "fairness audit has no grouping attributes to plot", where="audit['attributes']",
            expected="at least 1 attribute with groups", got="0",
            fix="pass groups= (e.g. site, sex, age_band) to fairness_audit",
        )
    overall = audit["overall"]
    widest = max(len(a["groups"]) for a in attributes.values())
    fig = _figure(max(7.0, 1.2 * widest + 3.0), 3.2 * len(attributes))
    metrics = ("auroc", "tpr", "fpr")
    for i, (name, attr) in enumerate(attributes.items()):
        ax = fig.add_subplot(len(attributes), 1, i + 1)
        groups = attr["groups"]
        labels = [f"{g}{'*' if m['small'] else ''}\n(n={m['n']})" for g, m in groups.items()]
        series = {
            m: [_value(groups[g][m], f"audit['attributes'][{name!r}]") for g in groups]
            for m in metrics
        }
        _bars(ax, labels, series)
        for j, m in enumerate(metrics):
            v = _value(overall.get(m), "audit['overall']")
            if v is not None:
                ax.axhline(v, color=_color(m, j), ls="--", lw=1.0)
        gaps = attr["gaps"]
        parts = [f"{short} {gaps[key]:.2f}" for key, short in
                 (("demographic_parity_difference", "DP diff"),
                  ("equalized_odds_difference", "EO diff"), ("auroc_gap", "AUROC gap"))
                 if gaps.get(key) is not None]
        ax.set_title(f"{name}" + (f"  ({', '.join(parts)})" if parts else ""), fontsize=10)
        ax.set_ylim(0, 1.2)
        ax.set_ylabel("rate / AUROC")
        ax.plot([], [], color="#7f7f7f", ls="--", lw=1.0, label="overall")
        ax.plot([], [], ls="", marker="o", ms=4, color="white", markeredgecolor="black",
                markeredgewidth=0.5, label="value 0")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return fig


def _site_rows(per_site_metrics: Any) -> list[tuple[str, Mapping[str, Any]]]:
    if isinstance(per_site_metrics, Mapping):
        rows = [(str(k), v) for k, v in per_site_metrics.items()]
    elif isinstance(per_site_metrics, Sequence) and not isinstance(per_site_metrics, str):
        rows = []
        for i, m in enumerate(per_site_metrics):
            if not isinstance(m, Mapping) or "site" not in m:
                raise InputError(
                    "per-site entry has no site name", where=f"per_site_metrics[{i}]",
                    expected="a dict with a 'site' key", got=f"a {type(m).__name__} without it",
                    fix="add the site name under 'site'",
                )
            rows.append((str(m["site"]), m))
    else:
        raise InputError(
            "per-site metrics have the wrong type", where="per_site_metrics",
            expected="a list of dicts with 'site', or a dict site -> metrics",
            got=f"a {type(per_site_metrics).__name__}", fix="pass metrics.json's per_site",
        )
    if not rows:
        raise InputError(
            "no per-site metrics to plot", where="per_site_metrics", expected="at least 1 site",
            got="0", fix="check that the federated run produced per-site metrics",
        )
    for name, m in rows:
        if not isinstance(m, Mapping):
            raise InputError(
                "per-site metrics must be dicts", where=f"per_site_metrics[{name!r}]",
                expected="metric name -> value", got=f"a {type(m).__name__}",
                fix="pass metrics.json's per_site",
            )
    return rows


def plot_per_site(
    per_site_metrics: Sequence[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    metrics: Sequence[str] = ("auroc", "accuracy"),
    title: str | None = None,
) -> Any:
    """Draw per-site bars of AUROC and accuracy (or other metrics) of a federated model.

    Parameters
    ----------
    per_site_metrics
        A list of dicts, each with ``site`` and the metrics (``metrics.json``'s ``per_site``),
        or a dict site -> metrics.  A missing or None metric is drawn as ``n/a``.
    path
        PNG file to write (atomically).
    metrics
        Metric keys to draw, one bar colour each.
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure written.

    Raises
    ------
    InputError
        If there are no sites, an entry lacks its site name, a value is not a number, or
        no site has one of ``metrics``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> sites = [{"site": "site1", "auroc": 0.81, "accuracy": 0.74},
    ...          {"site": "site2", "auroc": 0.77, "accuracy": 0.70}]
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "per_site.png"
    >>> fig = plot_per_site(sites, out)
    >>> out.read_bytes()[:4] == b"\\x89PNG"
    True
    """
    rows = _site_rows(per_site_metrics)
    if not metrics:
        raise InputError(
            "no metrics to plot", where="metrics", expected="at least 1 metric name", got="0",
            fix="pass e.g. metrics=('auroc', 'accuracy')",
        )
    series: dict[str, list[float | None]] = {}
    for metric in metrics:
        vals = [_value(m.get(metric), f"per_site_metrics[{name!r}][{metric!r}]")
                for name, m in rows]
        if all(v is None for v in vals):
            raise InputError(
                "no site has this metric", where=f"metric {metric!r}",
                expected="a value in at least 1 site", got=f"none of {len(rows)} sites",
                fix="pass metrics= with the keys present in the per-site metrics",
            )
        series[metric] = vals
    fig = _figure(max(5.0, 1.1 * len(rows) + 2.0), 3.5)
    ax = fig.add_subplot(1, 1, 1)
    top = max(1.0, max(v for vals in series.values() for v in vals if v is not None))
    _bars(ax, [name for name, _ in rows], series, top=top)
    ax.set_ylim(0, top * 1.2)
    ax.set_xlabel("site")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title or "per-site metrics", fontsize=10)
    _save(fig, path)
    return fig


def plot_training_curves(
    rounds: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    centralized: Mapping[str, Any] | None = None,
    metrics: Sequence[str] = ("loss", "auroc"),
    title: str | None = None,
    descriptions: Mapping[str, str] | None = None,
    final: Mapping[str, Any] | None = None,
    centralized_label: str = "centralized",
    final_label: str = "final model",
) -> Any:
    """Draw per-round federated metrics (loss, AUROC...) with optional centralized references.

    Per-round values and end-of-run values are often different quantities (e.g. the mean of
    the sites' own AUROCs each round vs the final model's AUROC on the pooled held-out rows):
    ``descriptions`` says under each panel what its curve is, and ``final`` and
    ``centralized`` are drawn with their own labelled marks.

    Parameters
    ----------
    rounds
        One dict per federated round: ``round`` (optional; defaults to 1, 2, ...) and the
        metric values.  A missing or None value leaves a gap in the curve.
    path
        PNG file to write (atomically).
    centralized
        Metric -> value of centralized training on the same data, drawn as a dashed line.
    metrics
        Metric keys to draw, one panel each.
    title
        Figure title.
    descriptions
        Metric -> what the per-round value is, written under its panel.
    final
        Metric -> value of the final model, drawn as a star at the last round.
    centralized_label, final_label
        Legend labels of the ``centralized`` line and the ``final`` star.

    Returns
    -------
    matplotlib.figure.Figure
        The figure written.

    Raises
    ------
    InputError
        If ``rounds`` is empty or not a list of dicts, a value is not a number, or no round
        has one of ``metrics``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> rounds = [{"round": 1, "loss": 0.69, "auroc": 0.61}, {"round": 2, "loss": 0.52,
    ...           "auroc": 0.74}, {"round": 3, "loss": 0.45, "auroc": 0.79}]
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "curves.png"
    >>> fig = plot_training_curves(rounds, out, centralized={"auroc": 0.80})
    >>> out.read_bytes()[:4] == b"\\x89PNG"
    True
    """
    if isinstance(rounds, str | bytes | Mapping) or not isinstance(rounds, Sequence) or not all(
        isinstance(r, Mapping) for r in rounds
    ):
        raise InputError(
            "rounds must be a list of dicts", where="rounds",
            expected="one dict of metrics per round", got=f"a {type(rounds).__name__}",
            fix="pass metrics.json's rounds",
        )
    if not rounds:
        raise InputError(
            "no rounds to plot", where="rounds", expected="at least 1 round", got="0",
            fix="check that the federated run completed at least one round",
        )
    if not metrics:
        raise InputError(
            "no metrics to plot", where="metrics", expected="at least 1 metric name", got="0",
            fix="pass e.g. metrics=('loss', 'auroc')",
        )
    from matplotlib.ticker import MaxNLocator

    xs = [_value(r.get("round", i + 1), f"rounds[{i}]['round']") for i, r in enumerate(rounds)]
    fig = _figure(5.0 * len(metrics), 3.5)
    for k, metric in enumerate(metrics):
        ys = [_value(r.get(metric), f"rounds[{i}][{metric!r}]") for i, r in enumerate(rounds)]
        if all(y is None for y in ys):
            raise InputError(
                "no round has this metric", where=f"metric {metric!r}",
                expected="a value in at least 1 round", got=f"none of {len(rounds)} rounds",
                fix="pass metrics= with the keys present in the rounds",
            )
        ax = fig.add_subplot(1, len(metrics), k + 1)
        pts = [(x, y) for x, y in zip(xs, ys, strict=True) if x is not None]
        ax.plot([x for x, _ in pts], [math.nan if y is None else y for _, y in pts],
                marker="o", color=_color(metric, k), label="federated, per round")
        ref = _value((centralized or {}).get(metric), f"centralized[{metric!r}]")
        if ref is not None:
            ax.axhline(ref, color="#7f7f7f", ls="--", lw=1.0,
                       label=f"{centralized_label}: {ref:.3g}")
        end = _value((final or {}).get(metric), f"final[{metric!r}]")
        if end is not None and pts:
            ax.plot([max(x for x, _ in pts)], [end], ls="", marker="*", ms=11,
                    color="#c00000", label=f"{final_label}: {end:.3g}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        desc = (descriptions or {}).get(metric)
        ax.set_xlabel("\n".join(["round", *textwrap.wrap(desc or "", 60)]),
                      fontsize=8 if desc else None)
        ax.set_ylabel(metric)
        ax.set_title(metric, fontsize=10)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return fig


def _risk_rows(report: Mapping[str, Any]) -> list[tuple[str, str, float | None, Any, str]]:
    """(group, label, value, ci, note) for each figure of a risk report."""

    def get(*keys: str) -> Any:
        v: Any = report
        for k in keys:
            v = v.get(k) if isinstance(v, Mapping) else None
        return v

    def attack(name: str, label: str, *keys: str) -> tuple[str, str, float | None, Any, str]:
        r = get(*keys)
        if not isinstance(r, Mapping):
            return ("attack", label, None, None, "not run")
        return ("attack", label, _value(r.get("risk"), f"report[{name!r}]"), r.get("risk_ci"),
                "" if r.get("risk") is not None else "n/a: " + str(r.get("reason") or "refused"))

    rows: list[tuple[str, str, float | None, Any, str]] = []
    for model in ("prosecutor", "journalist"):
        for stat in ("highest", "average"):
            rows.append(("model", f"{model} {stat}",
                         _value(get(model, stat), f"report[{model!r}][{stat!r}]"), None, ""))
    rows.append(("model", "marketer", _value(get("marketer", "risk"), "report['marketer']"),
                 None, ""))
    rows.append(("model", "sample uniques", _value(get("sample_uniques", "share"),
                                                   "report['sample_uniques']"), None, ""))
    rows.append(("model", "population uniques",
                 _value(get("population_uniqueness", "share"), "report['population_uniqueness']"),
                 None, ""))
    link = get("linkage")
    if isinstance(link, Mapping):
        correct = link.get("correct_unique_share")
        rows.append(("attack", "linkage (unique, correct)" if correct is not None
                     else "linkage (unique links)",
                     _value(correct if correct is not None else link.get("share"),
                            "report['linkage']"), None, ""))
    rows.append(attack("singling_out", "singling out (univariate)", "singling_out", "univariate"))
    rows.append(attack("singling_out", "singling out (multivariate)", "singling_out",
                       "multivariate"))
    rows.append(attack("linkability", "linkability", "linkability"))
    rows.append(attack("inference", "inference", "inference"))
    return rows


def plot_risk(
    report: Mapping[str, Any], path: str | os.PathLike[str], *, title: str | None = None
) -> None:
    """Draw a re-identification risk report: risk models and attack risks with intervals.

    Horizontal bars on a 0-1 scale: prosecutor and journalist risk (highest, average),
    marketer risk, shares of sample and population uniques, the linkage attack's share of
    unique (correct) links, and the anonymeter-style attack risks with their confidence
    intervals.  A refused risk is marked ``n/a`` with its reason.

    Parameters
    ----------
    report
        The result of :func:`secured_bio.privacy.assess.attacks.assess_table` or
        :func:`secured_bio.privacy.assess.risk.reidentification_risk`.
    path
        PNG file to write (atomically).
    title
        Figure title.

    Raises
    ------
    InputError
        If ``report`` is not a risk report of a supported version, or a value is not a number.

    Examples
    --------
    >>> import tempfile, pathlib, pandas as pd
    >>> from secured_bio.privacy.assess.risk import reidentification_risk
    >>> r = reidentification_risk(pd.DataFrame({"age": ["30", "30", "41"]}), qi=["age"])
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "risk.png"
    >>> plot_risk(r, out)
    >>> out.read_bytes()[:4] == b"\\x89PNG"
    True
    """
    from secured_bio.privacy.assess.risk import FORMAT, FORMAT_VERSION

    if not isinstance(report, Mapping) or report.get("format") != FORMAT:
        raise InputError(
            "not a risk report", where="report", expected=f"a dict with format '{FORMAT}'",
            got=f"a {type(report).__name__} without it",
            fix="pass the result of assess_table or reidentification_risk",
        )
    if report.get("format_version") != FORMAT_VERSION:
        raise InputError(
            "unsupported risk report version", where="report",
            expected=f"format_version {FORMAT_VERSION}",
            got=f"format_version {report.get('format_version')!r}",
            fix="re-run the assessment with this version of secured_bio (or upgrade it)",
        )
    rows = [r for r in _risk_rows(report) if not (r[0] == "attack" and r[4] == "not run")]
    fig = _figure(7.5, 0.38 * len(rows) + 1.4)
    ax = fig.add_subplot(1, 1, 1)
    ys = list(range(len(rows)))[::-1]
    for y, (group, label, value, ci, note) in zip(ys, rows, strict=True):
        color = "#1f4e79" if group == "model" else "#c00000"
        if value is None:
            ax.text(0.01, y, note or "n/a", va="center", fontsize=7, color="#7f7f7f")
            continue
        ax.barh(y, value, color=color, height=0.6)
        if ci is not None:
            lo, hi = (_value(c, f"report CI of {label!r}") for c in ci)
            if lo is not None and hi is not None:
                ax.errorbar(value, y, xerr=[[max(0.0, value - lo)], [max(0.0, hi - value)]],
                            color="black", capsize=3, lw=1)
        ax.text(min(value, 1.0) + 0.01, y + 0.25, f"{value:.3f}", va="center", fontsize=7)
    ax.set_yticks(ys)
    ax.set_yticklabels([r[1] for r in rows], fontsize=8)
    ax.set_xlim(0, 1.1)
    ax.axvline(float(report.get("prosecutor", {}).get("threshold", 0.2)), color="#7f7f7f",
               ls=":", lw=1)
    ax.set_xlabel("risk / share of records (attacks: 95% CI)")
    n = report.get("n_records")
    ax.set_title(title or f"re-identification risk ({n} records)", fontsize=10)
    _save(fig, path)
