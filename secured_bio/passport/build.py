"""Build, validate and write privacy passports (see :mod:`secured_bio.passport`)."""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import importlib.resources
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from secured_bio.errors import ConfigError, InputFileNotFoundError, SchemaError
from secured_bio.passport.classify import KINDS, classify
from secured_bio.passport.extract import extract

__all__ = ["FORMAT", "FORMAT_VERSION", "DISCLAIMER", "build_passport", "validate_passport",
           "write_passport", "digest", "input_record"]

FORMAT = "secured_bio.passport"
FORMAT_VERSION = 1
DISCLAIMER = (
    "Decision support for a data-protection officer (DPO), not a legal opinion. It records "
    "what was measured about this artifact and judges it against stated thresholds and the "
    "three criteria of the Article 29 Working Party Opinion 05/2014 on anonymisation "
    "techniques; the decision whether the artifact is personal data, and on any release or "
    "transfer, rests with the controller and its DPO. It never claims 'anonymous' without "
    "measured evidence for every criterion."
)
_SCHEMA = "passport.schema.json"
_CHUNK = 1 << 20


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("secured_bio")
    except Exception:  # noqa: BLE001 - not installed: the source tree's version
        import secured_bio

        return str(getattr(secured_bio, "__version__", "unknown"))


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def digest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """SHA-256 and size of a file, or of a folder (over its sorted files' paths and hashes).

    Raises
    ------
    InputFileNotFoundError
        If ``path`` does not exist.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = p.write_text("abc")
    >>> d = digest(p)
    >>> d["sha256"][:12], d["size"], d["type"]
    ('ba7816bf8f01', 3, 'file')
    """
    p = Path(path)
    if p.is_file():
        return {"name": p.name, "sha256": _file_sha256(p), "size": p.stat().st_size,
                "type": "file"}
    if p.is_dir():
        h = hashlib.sha256()
        size = n = 0
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            rel = f.relative_to(p).as_posix()
            h.update(f"{rel}\t{_file_sha256(f)}\n".encode())
            size += f.stat().st_size
            n += 1
        return {"name": p.name, "sha256": h.hexdigest(), "size": size, "type": "directory",
                "n_files": n, "digest_method": "sha256 over lines '<relative path>\\t<sha256>' "
                "of every file, sorted by path"}
    raise InputFileNotFoundError("artifact not found", where=str(p),
                                 fix="write the artifact before its passport")


def input_record(path: str | os.PathLike[str] | None = None, *, id: str | None = None,
                 site: str | None = None, role: str | None = None,
                 duo: Sequence[str] | None = None) -> dict[str, Any]:
    """One ``inputs`` entry: dataset ID, hash (when the file is here), site, role, DUO codes.

    Examples
    --------
    >>> input_record(id="cohort-7", site="hospital_a", duo=["DUO:0000007"])["duo"]
    ['DUO:0000007']
    """
    rec: dict[str, Any] = {"id": id or (Path(path).name if path is not None else "unknown"),
                           "sha256": None, "size": None, "site": site, "role": role,
                           "duo": list(duo or [])}
    if path is not None and Path(path).exists():
        d = digest(path)
        rec["sha256"], rec["size"] = d["sha256"], d["size"]
    return rec


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple | set | frozenset):
        return [_jsonable(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, int | str):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    if hasattr(x, "item"):  # numpy scalars
        return _jsonable(x.item())
    return str(x)


def _merge_inputs(found: list[dict[str, Any]], given: Sequence[Mapping[str, Any]] | None
                  ) -> list[dict[str, Any]]:
    """Given inputs win; report-derived ones fill in those not given (matched by id)."""
    out: list[dict[str, Any]] = []
    for g in given or []:
        rec: dict[str, Any] = {"id": None, "sha256": None, "size": None, "site": None,
                               "role": None, "duo": []}
        rec.update(_jsonable(g))
        rec["id"] = str(rec["id"] if rec["id"] is not None else "unknown")
        out.append(rec)
    ids = {o["id"] for o in out} | {o["site"] for o in out if o.get("site")}
    for f in found:
        if f["id"] in ids:
            continue
        rec = {"id": f["id"], "sha256": None, "size": None, "site": f.get("site"),
               "role": f.get("role"), "duo": []}
        out.append(rec)
    return out


def _notes(classification: Mapping[str, Any]) -> dict[str, list[str]]:
    personal = classification["treat_as_personal_data"]
    lead = ("The passport classifies this artifact as personal data: a transfer outside the "
            "EU/EEA is a transfer of personal data under GDPR Chapter V."
            if personal else
            "The passport does not classify this artifact as personal data; if the DPO "
            "judges otherwise (e.g. the residual risks are not acceptable), the following "
            "applies.")
    return {
        "cross_border": [
            lead,
            "A transfer to a third country or international organisation needs an adequacy "
            "decision (GDPR Art. 45) or appropriate safeguards (Art. 46: standard contractual "
            "clauses, binding corporate rules Art. 47...) with a transfer impact assessment, "
            "or, exceptionally, a derogation (Art. 49).",
            "Within the EU/EEA a lawful basis (Art. 6) and, for health and genetic data, an "
            "Art. 9(2) condition are still needed; a data processing agreement (Art. 28) "
            "binds any processor.",
        ],
        "ehds": [
            "Secondary use of electronic health data under the European Health Data Space "
            "(Regulation (EU) 2025/327) is allowed only for the purposes of Art. 53, through "
            "a data permit from a health data access body, in a secure processing "
            "environment; results leave it only in anonymous form unless the permit says "
            "otherwise.",
            "Data-use conditions of the inputs (DUO codes under data_use) travel with the "
            "artifact and must be honoured by every recipient.",
        ],
    }


def build_passport(
    artifact: str | os.PathLike[str],
    *,
    kind: str,
    report: Mapping[str, Any] | None,
    command: str,
    parameters: Mapping[str, Any],
    inputs: Sequence[Mapping[str, Any]] | None = None,
    data_use: Sequence[str] | None = None,
    assessments: Sequence[Mapping[str, Any]] = (),
    job: str | None = None,
    companions: Sequence[str | os.PathLike[str]] = (),
) -> dict[str, Any]:
    """Build the privacy passport of an artifact from the report of the command that made it.

    Parameters
    ----------
    artifact
        The released file or folder (hashed here).
    kind
        One of ``gwas_summary_statistics``, ``anonymized_table``, ``synthetic_table``,
        ``synthetic_vitals``, ``synthetic_images``, ``federated_model``,
        ``education_cases``, ``report``.
    report
        The command's own JSON report (as a dict); None when there is none (then no
        evidence, never "anonymous").
    command
        The command (e.g. ``secured-bio gwas secure``) or job that produced the artifact.
    parameters
        Its parameters (made JSON-safe: paths become strings).
    inputs
        Input datasets (``id``, ``sha256``, ``site``, ``role``, ``duo``; see
        :func:`input_record`); inputs named in the report are added without a hash.
    data_use
        DUO codes that apply besides those of the inputs.
    assessments
        Further reports on the same artifact (``secured-bio assess table``'s risk report, a
        synthetic evaluation, a Homer-style membership power); their evidence is added.
    job
        The hub job ID, when the artifact comes from one.
    companions
        Files released with the artifact (hashed and listed under ``artifact.companions``).

    Returns
    -------
    dict
        The passport (valid against ``data_specs/passport.schema.json``).

    Raises
    ------
    ConfigError
        If ``kind`` is unknown.
    InputFileNotFoundError
        If the artifact (or a companion) does not exist.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
    >>> _ = p.write_text("counts")
    >>> pp = build_passport(p, kind="report", report=None, command="manual", parameters={})
    >>> pp["format"], pp["classification"]["category"]
    ('secured_bio.passport', 'aggregate')
    """
    if kind not in KINDS:  # before hashing a large artifact
        classify(kind, [])
    art = digest(artifact)
    art["kind"] = kind
    art["companions"] = [digest(c) for c in companions]
    assessments = list(assessments)
    linked = ((report or {}).get("privacy") or {}).get("table", {}) if kind == (
        "education_cases") else {}
    if isinstance(linked, Mapping) and linked.get("evaluation") and Path(artifact).is_dir():
        # Teaching cases keep the table generator's full evaluation (attacks) beside them.
        ev_path = Path(artifact) / str(linked["evaluation"])
        if ev_path.is_file():
            assessments.append(json.loads(ev_path.read_text(encoding="utf-8")))
    found = extract(report, assessments)
    evidence = _jsonable(found["evidence"])
    facts = found["facts"]
    classification = classify(kind, evidence, facts=facts)
    ins = _merge_inputs(found["inputs"], inputs)
    codes = sorted({str(c) for i in ins for c in i.get("duo") or []} | set(data_use or []))
    passport: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "disclaimer": DISCLAIMER,
        "artifact": art,
        "produced_by": {"command": command, "job": job, "secured_bio_version": _version(),
                        "parameters": _jsonable(parameters),
                        "report_format": found["report_format"]},
        "inputs": ins,
        "technique": _jsonable(found["technique"]),
        "evidence": evidence,
        "classification": classification,
        "data_use": {
            "duo": codes,
            "source": "inherited from the inputs' DUO codes (Data Use Ontology, GA4GH)"
            + (" and given with the artifact" if data_use else ""),
            "note": None if codes else "no DUO codes were given with the inputs: ask the data "
            "holders for the data-use conditions before any reuse",
        },
        "notes": _notes(classification),
    }
    return passport


@functools.cache
def _schema() -> dict[str, Any]:
    try:
        text = (importlib.resources.files("secured_bio.data_specs") / _SCHEMA).read_text(
            encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError, TypeError):
        # A source tree (PYTHONPATH=repo): data_specs/ sits next to secured_bio/.
        text = (Path(__file__).resolve().parents[2] / "data_specs" / _SCHEMA).read_text(
            encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_passport(doc: Mapping[str, Any]) -> None:
    """Check a passport against ``data_specs/passport.schema.json`` (JSON Schema 2020-12).

    Raises
    ------
    SchemaError
        If the document is not a passport of a version this release reads, or violates
        the schema (the message names the first failing field).

    Examples
    --------
    >>> try:
    ...     validate_passport({"format": "other"})
    ... except SchemaError as e:
    ...     print(e.what)
    document is not a secured_bio passport
    """
    import jsonschema

    if not isinstance(doc, Mapping) or doc.get("format") != FORMAT:
        raise SchemaError("document is not a secured_bio passport", where="format",
                          expected=f"'{FORMAT}'",
                          got=repr(doc.get("format")) if isinstance(doc, Mapping) else
                          type(doc).__name__)
    if doc.get("format_version") != FORMAT_VERSION:
        raise SchemaError("unsupported passport format_version", where="format_version",
                          expected=str(FORMAT_VERSION), got=repr(doc.get("format_version")),
                          fix="upgrade secured_bio to a release that reads this version")
    validator = jsonschema.Draft202012Validator(_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(doc)))
    if error is not None:
        loc = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise SchemaError("passport violates its schema", where=loc,
                          got=error.message[:300],
                          fix="build passports with secured_bio.passport.build_passport")


def write_passport(passport: Mapping[str, Any], path: str | os.PathLike[str], *,
                   html: bool = True) -> list[Path]:
    """Validate and write the passport JSON to ``path`` and its HTML page beside it.

    The HTML page is ``path`` with the suffix ``.html``; both files are written atomically,
    together (both or neither).

    Returns
    -------
    list of Path
        The files written (JSON first).

    Raises
    ------
    ConfigError
        If ``path`` ends in ``.html`` (the page would overwrite the JSON) or is a folder.
    SchemaError
        If the passport is invalid (nothing is written).
    """
    from secured_bio._atomic import atomic_paths
    from secured_bio.passport.html import passport_html

    p = Path(path)
    if p.is_dir():
        raise ConfigError("passport path is a folder", where=str(p), expected="a file path",
                          fix="e.g. --passport release.passport.json")
    if html and p.suffix.lower() in (".html", ".htm"):
        raise ConfigError("passport path must not end in .html", where=str(p),
                          expected="a .json name (the HTML page goes beside it)",
                          fix=f"e.g. {p.with_suffix('.json')}")
    validate_passport(passport)
    paths = [p] + ([p.with_suffix(".html")] if html else [])
    with atomic_paths(*paths) as tmps:
        tmps[0].write_text(json.dumps(passport, indent=2, allow_nan=False) + "\n",
                           encoding="utf-8")
        if html:
            tmps[1].write_text(passport_html(passport), encoding="utf-8")
    return paths
