"""Readable summaries of pilot runs (what ``make demo`` prints at the end)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from secured_bio.errors import FormatError, InputFileNotFoundError

__all__ = ["summarize_results"]


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
    root = Path(results)
    files = sorted(root.glob("**/metrics.json")) if root.is_dir() else []
    if not files:
        raise InputFileNotFoundError(
            "no pilot results found",
            where=str(root),
            expected="at least one <pilot>/metrics.json",
            fix="run the workflow first (make demo) or point to its results folder",
        )
    lines = ["# secured_bio results", ""]
    for f in files:
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
            if (isinstance(doc, dict) and str(doc.get("format", "")).startswith("secured_bio.")
                    and doc["format"] != "secured_bio.pilot_metrics"):
                continue  # another secured_bio document (e.g. a model report) in a run folder
            pilot, status = doc["pilot"], doc["status"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise FormatError(
                "not a pilot metrics file", where=str(f),
                expected="JSON with 'pilot' and 'status'", fix="delete it and rerun the pilot",
            ) from e
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
