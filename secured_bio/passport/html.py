"""A self-contained HTML page of a privacy passport (no external assets, all text escaped)."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["passport_html"]

_COLOURS = {"anonymous": "#1b7f3b", "aggregate": "#1f5f99", "pseudonymous": "#b06d00",
            "personal": "#b3261e"}
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1100px;padding:0 1em;color:#1d1d1f;line-height:1.45}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top;
font-size:.92em}th{background:#f4f4f6}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.88em;
white-space:pre-wrap;word-break:break-word;margin:0}
.badge{display:inline-block;color:#fff;padding:.2em .7em;border-radius:.3em;font-weight:600;
font-size:1.3em}.box{border:2px solid;border-radius:.5em;padding:.6em 1em}
.ok{color:#1b7f3b}.fail{color:#b3261e}.na{color:#666}.disclaimer{background:#fff8e1;
border-left:4px solid #b06d00;padding:.6em 1em}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _value(x: Any) -> str:
    if x is None:
        return '<span class="na">-</span>'
    if isinstance(x, str):
        return _e(x)
    if isinstance(x, float):
        return _e(f"{x:.4g}")
    if isinstance(x, bool | int):
        return _e(x)
    return f"<pre>{_e(json.dumps(x, indent=1, default=str))}</pre>"


def _kv(d: Mapping[str, Any]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_value(v)}</td></tr>" for k, v in d.items())
    return f"<table>{rows}</table>"


def _rows(items: list[Mapping[str, Any]], cols: list[str]) -> str:
    if not items:
        return '<p class="na">none</p>'
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_value(i.get(c))}</td>" for c in cols) + "</tr>"
                   for i in items)
    return f"<table><tr>{head}</tr>{body}</table>"


def _list(items: list[Any]) -> str:
    if not items:
        return '<p class="na">none</p>'
    return "<ul>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"


def _passed(p: Any) -> str:
    if p is True:
        return '<span class="ok">passed</span>'
    if p is False:
        return '<span class="fail">failed</span>'
    return '<span class="na">not judged</span>'


def passport_html(passport: Mapping[str, Any]) -> str:
    """Render a passport as one self-contained HTML page (every text escaped).

    Examples
    --------
    >>> page = passport_html({"artifact": {"name": "<script>x</script>"},
    ...                       "classification": {"category": "personal"}})
    >>> "<script>" in page, "&lt;script&gt;" in page
    (False, True)
    """
    art = passport.get("artifact") or {}
    c = passport.get("classification") or {}
    cat = str(c.get("category", "unknown"))
    colour = _COLOURS.get(cat, "#444")
    ev = [dict(e, passed=e.get("passed")) for e in passport.get("evidence") or []]
    ev_rows = "".join(
        "<tr>" + "".join(f"<td>{_value(e.get(k))}</td>" for k in
                         ("name", "value", "ci", "threshold")) + f"<td>{_passed(e['passed'])}</td>"
        + "".join(f"<td>{_value(e.get(k))}</td>" for k in ("source", "criterion", "covers",
                                                             "note")) + "</tr>"
        for e in ev)
    ev_table = ("<table><tr>" + "".join(f"<th>{h}</th>" for h in (
        "evidence", "value", "95% CI", "threshold", "judged", "source", "Art. 29 criterion",
        "covers", "note")) + f"</tr>{ev_rows}</table>") if ev else '<p class="na">none</p>'
    criteria = c.get("criteria") or {}
    crit = _rows([{"criterion": k, "status": v.get("status"),
                   "evidence": ", ".join(v.get("evidence") or [])} for k, v in criteria.items()],
                 ["criterion", "status", "evidence"])
    thresholds = c.get("thresholds") or {}
    notes_t = c.get("threshold_notes") or {}
    thr = _rows([{"threshold": k, "value": v, "meaning": notes_t.get(k)}
                 for k, v in thresholds.items()], ["threshold", "value", "meaning"])
    tech = _rows(list(passport.get("technique") or []), ["name", "description", "details"])
    prod = dict(passport.get("produced_by") or {})
    params = prod.pop("parameters", {}) or {}
    du = passport.get("data_use") or {}
    notes = passport.get("notes") or {}
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<title>Privacy passport: {_e(art.get('name', ''))}</title><style>{_CSS}</style>",
        "</head><body>",
        f"<h1>Privacy passport: <code>{_e(art.get('name', ''))}</code></h1>",
        f"<p class=\"disclaimer\">{_e(passport.get('disclaimer', ''))}</p>",
        f"<div class=\"box\" style=\"border-color:{colour}\"><p>Classification: "
        f"<span class=\"badge\" style=\"background:{colour}\">{_e(cat)}</span></p>",
        f"<p>{_e(c.get('gdpr_status', ''))}</p>",
        "<h3>Reasons</h3>", _list(list(c.get("reasons") or [])),
        "<h3>Missing evidence</h3>", _list(list(c.get("missing_evidence") or [])),
        "<h3>Residual risks</h3>", _list(list(c.get("residual_risks") or [])),
        f"<h3>Criteria ({_e(c.get('framework', ''))})</h3>", crit,
        "</div>",
        "<h2>Artifact</h2>", _kv({k: v for k, v in art.items() if k != "companions"}),
        "<h3>Companion files</h3>", _rows(list(art.get("companions") or []),
                                         ["name", "sha256", "size"]),
        "<h2>Technique</h2>", tech,
        "<h2>Evidence</h2>", ev_table,
        "<h2>Thresholds</h2>", thr,
        "<h2>Produced by</h2>", _kv(prod), "<h3>Parameters</h3>", _kv(params),
        "<h2>Inputs</h2>", _rows(list(passport.get("inputs") or []),
                                 ["id", "site", "role", "sha256", "size", "duo"]),
        "<h2>Data use</h2>", _kv(du),
        "<h2>Notes: cross-border use</h2>", _list(list(notes.get("cross_border") or [])),
        "<h2>Notes: European Health Data Space</h2>", _list(list(notes.get("ehds") or [])),
        f"<p class=\"na\">{_e(passport.get('format', ''))} version "
        f"{_e(passport.get('format_version', ''))}, created {_e(passport.get('created', ''))}"
        "</p></body></html>\n",
    ]
    return "\n".join(parts)
