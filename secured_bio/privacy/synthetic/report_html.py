"""Write a synthetic-data evaluation as JSON and as one self-contained HTML page.

The page needs no network and no other file: its charts are PNG images drawn with
matplotlib's Agg canvas and inlined as ``data:image/png;base64`` URIs; its styles are inline.
It shows the privacy figures first (the membership attack, its ROC curve, DCR histograms,
exact copies, anonymeter risks), then fidelity (per-column distributions, correlation
differences) and utility (TSTR vs TRTR AUROC).  Every figure comes from the evaluation dict;
no record of any table is read here.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from secured_bio._atomic import atomic_paths
from secured_bio.errors import FormatError, InputError, InputFileNotFoundError
from secured_bio.privacy.synthetic.evaluate import FORMAT, FORMAT_VERSION

__all__ = ["write_report", "read_evaluation", "render_html"]

_PER_FIGURE = 24  # distribution panels per chart
_REAL, _SYN, _HOLD = "#1f4e79", "#e69500", "#7f7f7f"


# ----------------------------------------------------------------------- checks and JSON
def _check(evaluation: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(evaluation, Mapping) or evaluation.get("format") != FORMAT:
        raise InputError("not a synthetic-data evaluation", where=where,
                         expected=f"a dict with format '{FORMAT}'",
                         got=f"a {type(evaluation).__name__} without it",
                         fix="pass the result of evaluate_synthetic")
    if evaluation.get("format_version") != FORMAT_VERSION:
        raise FormatError("unsupported evaluation version", where=where,
                          expected=f"format_version {FORMAT_VERSION}",
                          got=f"format_version {evaluation.get('format_version')!r}",
                          fix="re-run the evaluation with this version of secured_bio "
                              "(or upgrade secured_bio to read it)")
    return evaluation


def _jsonable(x: Any) -> Any:
    """Plain JSON values: numpy scalars to Python, NaN and infinities to None."""
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple | np.ndarray):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def read_evaluation(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an evaluation JSON written by :func:`write_report`.

    Parameters
    ----------
    path
        The JSON file.

    Returns
    -------
    dict
        The evaluation.

    Raises
    ------
    InputFileNotFoundError
        If the file does not exist.
    FormatError
        If it is not JSON, or of another format or version.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from secured_bio.privacy.synthetic.evaluate import FORMAT, FORMAT_VERSION
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "e.json"
    >>> _ = p.write_text('{"format": "%s", "format_version": %d}' % (FORMAT, FORMAT_VERSION))
    >>> read_evaluation(p)["format_version"] == FORMAT_VERSION
    True
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileNotFoundError("evaluation file not found", where=str(p),
                                     fix="check the path (write it with write_report)")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FormatError("evaluation file is not JSON", where=str(p), expected="JSON",
                          got=type(e).__name__, fix="pass the .json written by write_report"
                          ) from e
    try:
        return dict(_check(data, str(p)))
    except InputError as e:
        raise FormatError(e.what, where=str(p), expected=e.expected, got=e.got, fix=e.fix
                          ) from e


def _targets(out: str | os.PathLike[str]) -> tuple[Path, Path]:
    p = Path(out)
    if p.suffix.lower() == ".json":
        return p, p.with_suffix(".html")
    if p.suffix.lower() in (".html", ".htm"):
        return p.with_suffix(".json"), p
    return p / "synthetic_evaluation.json", p / "synthetic_evaluation.html"


def write_report(
    evaluation: Mapping[str, Any], out: str | os.PathLike[str], *, html: bool = True
) -> list[Path]:
    """Write an evaluation as JSON and (by default) a self-contained HTML page, atomically.

    Parameters
    ----------
    evaluation
        The result of :func:`~secured_bio.privacy.synthetic.evaluate.evaluate_synthetic`.
    out
        A ``.json`` path (the page goes next to it as ``.html``), an ``.html`` path (the JSON
        goes next to it), or a folder (``synthetic_evaluation.json`` and ``.html`` inside).
    html
        Also write the HTML page.

    Returns
    -------
    list of pathlib.Path
        The files written (JSON first).

    Raises
    ------
    InputError
        If ``evaluation`` is not an evaluation dict.
    FormatError
        If its format version is not supported.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, pandas as pd
    >>> from secured_bio.privacy.synthetic.evaluate import evaluate_synthetic
    >>> rng = np.random.default_rng(0)
    >>> t = pd.DataFrame({"x": rng.normal(size=60), "g": rng.choice(["a", "b"], 60)})
    >>> ev = evaluate_synthetic(t[:30], t[30:], n_attacks=5)
    >>> paths = write_report(ev, pathlib.Path(tempfile.mkdtemp()) / "eval.json")
    >>> [p.suffix for p in paths], "data:image/png;base64," in paths[1].read_text()
    (['.json', '.html'], True)
    """
    ev = _jsonable(_check(evaluation, "evaluation"))
    json_path, html_path = _targets(out)
    text = json.dumps(ev, indent=2, allow_nan=False)
    page = render_html(ev) if html else None
    finals = [json_path] + ([html_path] if page is not None else [])
    with atomic_paths(*finals) as tmps:
        tmps[0].write_text(text + "\n", encoding="utf-8")
        if page is not None:
            tmps[1].write_text(page, encoding="utf-8")
    return finals


# ----------------------------------------------------------------------- charts
def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=90)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> str:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _short(label: str, n: int = 12) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def _distribution_charts(columns: Mapping[str, Any]) -> list[str]:
    names = list(columns)
    charts = []
    for start in range(0, len(names), _PER_FIGURE):
        chunk = names[start:start + _PER_FIGURE]
        ncol = min(4, len(chunk))
        nrow = math.ceil(len(chunk) / ncol)
        fig = _figure(3.2 * ncol, 2.4 * nrow)
        for i, name in enumerate(chunk):
            ax = fig.add_subplot(nrow, ncol, i + 1)
            col = columns[name]
            if col.get("kind") == "categorical" and col.get("bars"):
                b = col["bars"]
                xs = np.arange(len(b["categories"]))
                ax.bar(xs - 0.2, b["real"], width=0.4, color=_REAL, label="real")
                ax.bar(xs + 0.2, b["synthetic"], width=0.4, color=_SYN, label="synthetic")
                ax.set_xticks(xs)
                ax.set_xticklabels([_short(str(c)) for c in b["categories"]], rotation=60,
                                   fontsize=6, ha="right")
                ax.set_title(f"{_short(name, 24)} (TVD {col['tvd']:.3f})", fontsize=8)
            elif col.get("histogram"):
                h = col["histogram"]
                edges = np.asarray(h["edges"])
                ax.stairs(h["real"], edges, color=_REAL, fill=True, alpha=0.45, label="real")
                ax.stairs(h["synthetic"], edges, color=_SYN, lw=1.5, label="synthetic")
                unit = " (days)" if col.get("kind") == "date" else ""
                ax.set_title(f"{_short(name, 24)}{unit} (KS {col['ks']:.3f})", fontsize=8)
                ax.tick_params(labelsize=6)
            else:
                ax.text(0.5, 0.5, "no values", ha="center", va="center", fontsize=8)
                ax.set_title(_short(name, 24), fontsize=8)
            ax.set_ylabel("share", fontsize=6)
            if i == 0:
                ax.legend(fontsize=6)
        charts.append(_png(fig))
    return charts


def _heatmap_chart(pairs: Mapping[str, Any]) -> str | None:
    kinds = [k for k in ("pearson", "spearman", "cramers_v") if pairs.get(k)]
    if not kinds:
        return None
    size = max(len(pairs[k]["columns"]) for k in kinds)
    side = min(9.0, 2.0 + 0.35 * size)
    fig = _figure(side * len(kinds), side)
    for i, k in enumerate(kinds):
        m = pairs[k]
        d = np.array([[math.nan if v is None else v for v in row] for row in m["difference"]])
        ax = fig.add_subplot(1, len(kinds), i + 1)
        im = ax.imshow(d, vmin=-1, vmax=1, cmap="RdBu_r")
        labels = [_short(str(c)) for c in m["columns"]]
        ax.set_xticks(range(len(labels)))
        ax.set_yticks(range(len(labels)))
        fs = 7 if len(labels) <= 20 else 5
        ax.set_xticklabels(labels, rotation=90, fontsize=fs)
        ax.set_yticklabels(labels, fontsize=fs)
        title = {"pearson": "Pearson", "spearman": "Spearman", "cramers_v": "Cramér's V"}[k]
        ax.set_title(f"{title}: synthetic - real", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return _png(fig)


def _utility_chart(u: Mapping[str, Any]) -> str | None:
    if u.get("trtr_auroc") is None and u.get("tstr_auroc") is None:
        return None
    fig = _figure(4.0, 3.0)
    ax = fig.add_subplot(1, 1, 1)
    names = ["TRTR (real)", "TSTR (synthetic)"]
    vals = [u.get("trtr_auroc"), u.get("tstr_auroc")]
    for i, v in enumerate(vals):
        if v is None:
            ax.text(i, 0.02, "n/a", ha="center", fontsize=8)
            continue
        ax.bar(i, v, color=(_REAL, _SYN)[i], width=0.6)
        ax.text(i, v + 0.02, f"{v:.3f}", ha="center", fontsize=8)
    ax.axhline(0.5, color=_HOLD, ls=":", lw=1)
    ax.set_xticks([0, 1])
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("AUROC on real hold-out", fontsize=8)
    ax.set_title(f"utility: {u.get('target')}", fontsize=9)
    return _png(fig)


def _roc_chart(mia: Mapping[str, Any]) -> str | None:
    roc = mia.get("roc")
    if not roc:
        return None
    fig = _figure(3.6, 3.4)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(roc["fpr"], roc["tpr"], color="#c00000", lw=1.5,
            label=f"attack (AUC {mia['auc']:.3f})")
    ax.plot([0, 1], [0, 1], color=_HOLD, ls="--", lw=1, label="guessing")
    ax.set_xlabel("false-positive rate", fontsize=8)
    ax.set_ylabel("true-positive rate", fontsize=8)
    ax.set_title("membership inference ROC", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def _dcr_chart(dcr: Mapping[str, Any]) -> str | None:
    h = dcr.get("histogram")
    if not h:
        return None
    edges = np.asarray(h["edges"])
    fig = _figure(4.4, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    if "holdout" in h:
        ax.stairs(h["holdout"], edges, color=_HOLD, fill=True, alpha=0.45,
                  label="hold-out -> train")
    ax.stairs(h["synthetic"], edges, color=_SYN, lw=1.5, label="synthetic -> train")
    ax.set_xlabel("Gower distance to closest training record", fontsize=8)
    ax.set_ylabel("share of records", fontsize=8)
    ax.set_title("distance to closest record (DCR)", fontsize=9)
    ax.legend(fontsize=7)
    return _png(fig)


# ----------------------------------------------------------------------- HTML
def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    if isinstance(v, Sequence) and not isinstance(v, str) and len(v) == 2:
        return f"[{_fmt(v[0], digits)}, {_fmt(v[1], digits)}]"
    return html.escape(str(v))


def _img(b64: str | None, alt: str) -> str:
    if b64 is None:
        return f"<p class='na'>{html.escape(alt)}: not available</p>"
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{b64}'>"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _reason(d: Mapping[str, Any] | None) -> str:
    r = (d or {}).get("reason")
    return f"<p class='na'>{html.escape(str(r))}</p>" if r else ""


def _privacy_html(p: Mapping[str, Any]) -> str:
    mia = p.get("membership_inference") or {}
    parts = ["<h2>Privacy</h2>", "<h3>The attack: membership inference</h3>"]
    if mia.get("description"):
        parts.append(f"<p>{html.escape(mia['description'])}</p>")
    parts.append(_reason(mia))
    if mia.get("auc") is not None:
        rows = [["AUC (0.5 = no leakage)", _fmt(mia["auc"])],
                [f"AUC {int(100 * mia.get('confidence', 0.95))}% CI", _fmt(mia.get("auc_ci"))],
                ["membership advantage (max TPR - FPR)", _fmt(mia.get("advantage"))]]
        rows += [[f"TPR at FPR {html.escape(k)}", _fmt(v)]
                 for k, v in (mia.get("tpr_at_fpr") or {}).items()]
        rows += [["members / non-members", f"{mia.get('n_members')} / {mia.get('n_nonmembers')}"],
                 ["median distance: members / non-members",
                  f"{_fmt(mia.get('median_distance_members'))} / "
                  f"{_fmt(mia.get('median_distance_nonmembers'))}"]]
        parts.append(_table(["figure", "value"], rows))
        parts.append(_img(_roc_chart(mia), "membership ROC"))
    ec = p.get("exact_copies") or {}
    parts.append("<h3>Exact copies of training rows</h3>")
    parts.append(_table(["figure", "value"], [
        ["synthetic rows that copy a training row", _fmt(ec.get("count"))],
        ["share of synthetic rows", _fmt(ec.get("share"), 4)],
        ["distinct training rows copied", _fmt(ec.get("distinct_training_rows_copied"))],
        ["hold-out rows that also occur in train (baseline)",
         _fmt(ec.get("holdout_rows_in_train_share"), 4)]]))
    dcr, nndr = p.get("dcr") or {}, p.get("nndr") or {}
    parts.append("<h3>Secondary: distance to closest record and nearest-neighbour ratio</h3>")
    parts.append("<p>Distances alone can miss leaks that the membership attack finds; they "
                 "compare synthetic rows with new real (hold-out) rows.</p>")
    parts.append(_reason(dcr))
    qrows = []
    for name, block in (("DCR", dcr), ("NNDR", nndr)):
        for who, qs in (block.get("quantiles") or {}).items():
            qrows.append([name, html.escape(f"{who} -> train")]
                         + [_fmt(qs.get(q)) for q in ("0.01", "0.05", "0.25", "0.5")])
    parts.append(_table(["figure", "records", "1%", "5%", "25%", "median"], qrows))
    parts.append(f"<p>Share of synthetic rows closer to the training data than the 5th "
                 f"percentile of hold-out rows: "
                 f"{_fmt(dcr.get('share_closer_than_holdout_5th_percentile'))} "
                 f"(about 0.05 expected).</p>")
    parts.append(_img(_dcr_chart(dcr), "DCR histogram"))
    parts.append("<h3>Singling out, linkability, inference (anonymeter's method)</h3>")
    rows = []
    for name, r in (p.get("attacks") or {}).items():
        main = (r.get("main") or {}).get("value")
        ctl = (r.get("control") or {}).get("value") if r.get("control") else None
        note = r.get("reason") or r.get("note") or ""
        rows.append([html.escape(name.replace("_", " ")), _fmt(r.get("risk")),
                     _fmt(r.get("risk_ci")), _fmt(main), _fmt(ctl), html.escape(str(note))])
    parts.append(_table(["attack", "risk", "risk CI", "main rate", "control rate", "note"],
                        rows))
    return "\n".join(parts)


def _fidelity_html(f: Mapping[str, Any]) -> str:
    s = f.get("summary") or {}
    parts = ["<h2>Fidelity</h2>", _table(["figure", "value"], [
        ["column similarity (1 - mean KS/TVD)", _fmt(s.get("column_similarity"))],
        ["mean KS statistic (numbers, dates)", _fmt(s.get("mean_ks"))],
        ["mean Wasserstein / IQR", _fmt(s.get("mean_wasserstein_normalized"))],
        ["mean TVD (categories)", _fmt(s.get("mean_tvd"))],
        ["mean |Pearson difference|", _fmt(s.get("mean_abs_pearson_difference"))],
        ["mean |Spearman difference|", _fmt(s.get("mean_abs_spearman_difference"))],
        ["mean |Cramér's V difference|", _fmt(s.get("mean_abs_cramers_v_difference"))]])]
    rows = []
    for name, c in (f.get("columns") or {}).items():
        if c.get("kind") == "categorical":
            rows.append([html.escape(name), "categorical", "", "", _fmt(c.get("tvd"))])
        else:
            rows.append([html.escape(name), html.escape(str(c.get("kind"))), _fmt(c.get("ks")),
                         _fmt(c.get("wasserstein_normalized")), ""])
    parts.append("<h3>Per column</h3>")
    parts.append(_table(["column", "kind", "KS", "Wasserstein / scale", "TVD"], rows))
    for i, b64 in enumerate(_distribution_charts(f.get("columns") or {})):
        parts.append(_img(b64, f"distributions {i + 1}"))
    parts.append("<h3>Correlation differences</h3>")
    parts.append(_img(_heatmap_chart(f.get("pairs") or {}), "correlation differences"))
    return "\n".join(parts)


def _utility_html(u: Mapping[str, Any]) -> str:
    parts = ["<h2>Utility</h2>",
             "<p>Train on synthetic, test on real (TSTR) against train on real, test on real "
             f"(TRTR): {html.escape(str(u.get('model')))}, tested on the real hold-out.</p>",
             _reason(u)]
    if u.get("trtr_auroc") is not None or u.get("tstr_auroc") is not None:
        parts.append(_table(["figure", "value"], [
            ["target", html.escape(str(u.get("target")))],
            ["task", html.escape(str(u.get("task")))],
            ["TRTR AUROC", _fmt(u.get("trtr_auroc"))],
            ["TSTR AUROC", _fmt(u.get("tstr_auroc"))],
            ["TSTR / TRTR", _fmt(u.get("ratio"))]]))
        parts.append(_img(_utility_chart(u), "utility"))
    return "\n".join(parts)


_CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1em}td,th{border:1px solid #ccc;padding:3px 8px;
font-size:0.9em;text-align:left}th{background:#f0f0f0}img{max-width:100%;display:block;
margin:0.5em 0}.na{color:#777;font-style:italic}"""


def render_html(evaluation: Mapping[str, Any]) -> str:
    """Render an evaluation as one self-contained HTML page (inline CSS and PNG charts).

    Parameters
    ----------
    evaluation
        The result of :func:`~secured_bio.privacy.synthetic.evaluate.evaluate_synthetic`.

    Returns
    -------
    str
        The page.

    Raises
    ------
    InputError
        If ``evaluation`` is not an evaluation dict.
    FormatError
        If its format version is not supported.

    Examples
    --------
    >>> import pandas as pd
    >>> from secured_bio.privacy.synthetic.evaluate import evaluate_synthetic
    >>> t = pd.DataFrame({"g": ["a", "b", "a", "b"] * 5})
    >>> page = render_html(evaluate_synthetic(t[:10], t[10:], n_attacks=5))
    >>> page.startswith("<!DOCTYPE html>"), "src='data:image/png;base64," in page
    (True, True)
    """
    ev = _check(evaluation, "evaluation")
    n = ev.get("n_rows") or {}
    kinds = ev.get("columns") or {}
    head = _table(["table", "rows"], [[html.escape(k), str(v)] for k, v in n.items()])
    cols = ", ".join(f"{html.escape(c)} ({html.escape(str(k))})" for c, k in kinds.items())
    body = "\n".join([
        "<h1>Synthetic data evaluation</h1>",
        f"<p>Format {html.escape(FORMAT)} version {FORMAT_VERSION}; seed {ev.get('seed')}.</p>",
        head, f"<p>Columns: {cols}</p>",
        _privacy_html(ev.get("privacy") or {}),
        _fidelity_html(ev.get("fidelity") or {}),
        _utility_html(ev.get("utility") or {}),
    ])
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>Synthetic data evaluation</title><style>{_CSS}</style></head>"
            f"<body>\n{body}\n</body></html>\n")
