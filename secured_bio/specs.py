"""Data specs of every input kind, and a validator that checks a file against its spec.

Each input kind (``vcf``, ``phenotype``, ``nifti``, ``vitals``, ``fhir``, ``clinical``) is
described once, as data, in ``data_specs/<kind>.yaml`` (shipped as the package
``secured_bio.data_specs``). :func:`validate` loads the spec and checks a file against it,
streaming where the format allows, and returns a :class:`ValidationReport` of counts and
shapes. The first problem found is raised (``SchemaError``, ``FormatError``...) with where
it is (file, line or record, column), what was expected and got, and how to fix it.

Tables (``phenotype``, ``vitals``, ``clinical``) are checked by one generic engine driven by
the spec's ``table`` section: columns with ``dtype`` (integer, number, string, date,
datetime), ``required``, ``nullable`` (with the table's ``missing`` tokens), ``allowed``,
``min``/``max``, ``unique`` and ``pattern``; a ``key`` of columns that must be unique
together; a ``sort`` order; and ``group_rules`` (constraints that depend on a category
column, such as the unit and plausible range of each vital sign). The other kinds have a
checker each, driven by their spec's ``rules``.

Privacy rule: reports and messages give names, shapes, dtypes, counts, paths and line
numbers, never data values (no genotypes, IDs, measurements or voxels). Values are shown
only for columns the spec marks ``vocabulary: true`` (controlled terms such as vital names
and units) and for header metadata such as the repetition time.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import functools
import gzip
import importlib.resources
import io
import json
import logging
import math
import os
import re
import warnings as _pywarnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import yaml

from secured_bio._bgzf import compression as _compression
from secured_bio._bgzf import has_bgzf_eof as _has_bgzf_eof
from secured_bio._inputs import reading, reject_folder
from secured_bio.errors import (
    ConfigError,
    FormatError,
    InputFileNotFoundError,
    SchemaError,
    SecuredBioError,
    UnknownColumnError,
    did_you_mean,
)

__all__ = [
    "SPEC_FORMAT",
    "SPEC_FORMAT_VERSION",
    "REPORT_FORMAT",
    "REPORT_FORMAT_VERSION",
    "ValidationReport",
    "list_kinds",
    "load_spec",
    "validate",
]

logger = logging.getLogger(__name__)

SPEC_FORMAT = "secured_bio.data_spec"
"""Format name every spec file carries in its ``format`` field."""
SPEC_FORMAT_VERSION = "1.0"
"""Spec format version this module writes and reads (any ``1.x`` is read)."""
REPORT_FORMAT = "secured_bio.validation_report"
"""Format name of :meth:`ValidationReport.to_dict` output."""
REPORT_FORMAT_VERSION = "1.0"
"""Format version of :meth:`ValidationReport.to_dict` output."""

_CHUNK_ROWS = 50_000

# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationReport:
    """What :func:`validate` found in a file that passed its spec.

    Attributes
    ----------
    kind
        The kind asked for (an alias such as ``covariate`` is kept as given).
    path
        The validated file.
    ok
        True: a file that fails its spec raises instead of returning a report. The field is
        kept so that JSON consumers see the outcome explicitly.
    summary
        Counts, shapes and dtypes (never data values).
    warnings
        Problems that do not stop the analysis (missing index, unsorted rows...), each with
        its fix.

    Examples
    --------
    >>> r = ValidationReport("vitals", "v.csv", True, {"rows": 3}, [])
    >>> r.to_dict()["summary"]
    {'rows': 3}
    """

    kind: str
    path: str
    ok: bool
    summary: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict that carries the report format and version.

        Returns
        -------
        dict
            ``format``, ``format_version`` and every field of the report.

        Examples
        --------
        >>> import json
        >>> r = ValidationReport("nifti", "bold.nii.gz", True, {"shape": [4, 4, 2, 12]})
        >>> json.loads(json.dumps(r.to_dict()))["format"]
        'secured_bio.validation_report'
        """
        out: dict[str, Any] = {"format": REPORT_FORMAT, "format_version": REPORT_FORMAT_VERSION}
        out.update(_jsonable(asdict(self)))
        return out


def _jsonable(obj: Any) -> Any:
    """Convert numpy scalars, tuples and paths to plain JSON types."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


# --------------------------------------------------------------------------------------
# Spec loading
# --------------------------------------------------------------------------------------

_DTYPES = ["integer", "number", "string", "date", "datetime"]

_COLUMN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "dtype"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "dtype": {"enum": _DTYPES},
        "required": {"type": "boolean"},
        "nullable": {"type": "boolean"},
        "unique": {"type": "boolean"},
        "allowed": {"type": "array", "minItems": 1},
        "min": {"type": "number"},
        "max": {"type": "number"},
        "pattern": {"type": "string"},
        "require_offset": {"type": "boolean"},
        "vocabulary": {"type": "boolean"},
        "description": {"type": "string"},
    },
}

_META_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["kind", "title", "description", "format", "format_version"],
    "properties": {
        "kind": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
        "aliases": {"type": "array", "items": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"}},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "format": {"const": SPEC_FORMAT},
        "format_version": {"type": "string"},
        "input_format": {"type": "string"},
        "references": {"type": "array", "items": {"type": "string"}},
        "rules": {"type": "object"},
        "options": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["default", "description"],
                "properties": {"default": {}, "description": {"type": "string"}},
            },
        },
        "table": {
            "type": "object",
            "required": ["delimiter", "missing", "columns"],
            "additionalProperties": False,
            "properties": {
                "delimiter": {"enum": ["whitespace", ",", "\t", ";"]},
                "comment_prefix": {"type": ["string", "null"]},
                "missing": {"type": "array", "items": {"type": "string"}},
                "columns": {"type": "array", "items": _COLUMN_SCHEMA},
                "id_header_variants": {
                    "type": "array",
                    "items": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                },
                "other_columns": {
                    "type": "object",
                    "required": ["dtype"],
                    "properties": {"dtype": {"enum": _DTYPES}, "nullable": {"type": "boolean"}},
                },
                "extra_columns": {"enum": ["allow", "warn", "error"]},
                "key": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "sort": {
                    "type": "object",
                    "required": ["by"],
                    "properties": {
                        "by": {"type": "string"},
                        "within": {"type": "array", "items": {"type": "string"}},
                        "on_violation": {"enum": ["warn", "error"]},
                    },
                },
                "counts_by": {"type": "string"},
                "group_rules": {
                    "type": "object",
                    "required": ["column", "rules"],
                    "properties": {
                        "column": {"type": "string"},
                        "rules": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "object",
                                "additionalProperties": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "equals": {"type": "string"},
                                        "min": {"type": "number"},
                                        "max": {"type": "number"},
                                    },
                                },
                            },
                        },
                    },
                },
                "trait_types": {"type": "object"},
            },
        },
    },
}


def _spec_root() -> Traversable | Path:
    """Return the folder of spec files: the installed package, else the source tree."""
    try:
        root: Traversable | Path = importlib.resources.files("secured_bio.data_specs")
        if any(entry.name.endswith(".yaml") for entry in root.iterdir()):
            return root
    except (ModuleNotFoundError, TypeError, FileNotFoundError, NotADirectoryError):
        pass
    # Running from a source tree (PYTHONPATH=repo): data_specs/ sits next to secured_bio/.
    return Path(__file__).resolve().parent.parent / "data_specs"


def _check_spec(spec: Any, source: str) -> None:
    """Refuse a spec file of another format, a newer version, or a malformed structure."""
    import jsonschema

    if not isinstance(spec, dict):
        raise ConfigError(
            "data spec is not a mapping", where=source, expected="a YAML mapping",
            got=type(spec).__name__,
        )
    if spec.get("format") != SPEC_FORMAT:
        raise ConfigError(
            "file is not a secured_bio data spec", where=f"{source}: format",
            expected=f"'{SPEC_FORMAT}'", got=repr(spec.get("format")),
            fix="set format: secured_bio.data_spec",
        )
    version = str(spec.get("format_version", ""))
    if version.split(".")[0] != SPEC_FORMAT_VERSION.split(".")[0]:
        raise ConfigError(
            "data spec has an unsupported format_version", where=f"{source}: format_version",
            expected=f"{SPEC_FORMAT_VERSION.split('.')[0]}.x", got=repr(version),
            fix="upgrade secured_bio to a release that reads this spec version",
        )
    try:
        jsonschema.validate(spec, _META_SCHEMA)
    except jsonschema.ValidationError as e:
        # Spec files are ours, not participant data: the schema message may be shown.
        loc = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise ConfigError(
            "data spec is malformed", where=f"{source}: {loc}", got=e.message,
            fix="correct the spec file (see secured_bio.specs for the spec format)",
        ) from e
    table = spec.get("table")
    if table and table.get("counts_by"):
        cols = {c["name"]: c for c in table["columns"]}
        if not cols.get(table["counts_by"], {}).get("vocabulary"):
            # Counting by a free-text column would put data values into the report.
            raise ConfigError(
                "counts_by must name a vocabulary column", where=f"{source}: table/counts_by",
                fix="mark the column 'vocabulary: true' or drop counts_by",
            )


@functools.cache
def _registry() -> dict[str, tuple[str, dict[str, Any]]]:
    """Map every accepted kind name (and alias) to (canonical kind, spec)."""
    root = _spec_root()
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    entries = sorted(
        (e for e in root.iterdir() if e.name.endswith(".yaml")), key=lambda e: e.name
    )
    for entry in entries:
        source = f"data_specs/{entry.name}"
        try:
            spec = yaml.safe_load(entry.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise ConfigError("data spec is not valid YAML", where=source) from e
        _check_spec(spec, source)
        if spec["kind"] != entry.name[: -len(".yaml")]:
            raise ConfigError(
                "data spec kind does not match its file name", where=f"{source}: kind",
                expected=repr(entry.name[: -len(".yaml")]), got=repr(spec["kind"]),
            )
        for name in [spec["kind"], *spec.get("aliases", [])]:
            if name in found:
                raise ConfigError("data spec kind defined twice", where=f"{source}: {name}")
            found[name] = (spec["kind"], spec)
    logger.debug("loaded %d data spec names from %s", len(found), root)
    return found


def _resolve_kind(kind: str) -> tuple[str, dict[str, Any]]:
    registry = _registry()
    if not isinstance(kind, str) or kind not in registry:
        hint = did_you_mean(str(kind), registry)
        raise ConfigError(
            "unknown data kind", where="kind", expected="one of " + ", ".join(sorted(registry)),
            got=repr(kind), fix=hint or "pick one of the kinds listed by list_kinds()",
        )
    return registry[kind]


def list_kinds() -> list[str]:
    """Return every kind name :func:`validate` accepts, aliases included, sorted.

    Returns
    -------
    list of str
        Kind names, e.g. ``['clinical', 'covariate', 'fhir', ...]``.

    Raises
    ------
    ConfigError
        If a shipped spec file is malformed or of an unsupported format version.

    Examples
    --------
    >>> "vcf" in list_kinds() and "covariate" in list_kinds()
    True
    """
    return sorted(_registry())


def load_spec(kind: str) -> dict[str, Any]:
    """Return the data spec of ``kind`` (a copy: changing it changes nothing else).

    Parameters
    ----------
    kind
        A kind or alias from :func:`list_kinds`.

    Returns
    -------
    dict
        The parsed YAML spec: ``kind``, ``title``, ``description``, ``format``,
        ``format_version`` and the structured rules (``table`` or ``rules``).

    Raises
    ------
    ConfigError
        If ``kind`` is unknown (with a "did you mean" hint and the list of kinds).

    Examples
    --------
    >>> spec = load_spec("vitals")
    >>> spec["format"], [c["name"] for c in spec["table"]["columns"]][:2]
    ('secured_bio.data_spec', ['patient_id', 'time'])
    >>> load_spec("covariate")["kind"]
    'phenotype'
    """
    return copy.deepcopy(_resolve_kind(kind)[1])


def _resolve_options(kind: str, spec: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    declared = spec.get("options", {}) or {}
    resolved = {name: meta["default"] for name, meta in declared.items()}
    for name, value in options.items():
        if name not in declared:
            hint = did_you_mean(name, declared)
            raise ConfigError(
                f"unknown option for kind '{kind}'", where=f"option '{name}'",
                expected=("one of " + ", ".join(sorted(declared))) if declared else "no options",
                got=repr(name), fix=hint or "remove the option",
            )
        if value is not None:
            resolved[name] = value
    return resolved


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------


def validate(kind: str, path: str | os.PathLike[str], **options: Any) -> ValidationReport:
    r"""Check that the file at ``path`` meets the data spec of ``kind``.

    Parameters
    ----------
    kind
        One of :func:`list_kinds`: ``vcf``, ``phenotype`` (alias ``covariate``),
        ``nifti``, ``vitals``, ``fhir``, ``clinical``.
    path
        The input file.
    **options
        Kind-specific options, declared in the spec's ``options`` section:

        - ``vcf``: ``max_records`` (int or None) scans at most that many records.
        - ``nifti``: ``atlas`` (path) checks a 3D label image on the same grid;
          ``min_timepoints`` (int) overrides the spec's minimum.
        - ``clinical``: ``id_column`` (default ``patient_id``), ``qi`` (list of
          quasi-identifier columns), ``sensitive`` (the sensitive attribute column).

    Returns
    -------
    ValidationReport
        ``ok=True``, a summary of counts and shapes, and warnings.

    Raises
    ------
    ConfigError
        If ``kind`` or an option is unknown (with a "did you mean" hint), or an option
        value is invalid.
    InputFileNotFoundError
        If ``path`` (or the atlas) does not exist.
    FormatError
        If the file is not in the expected format (not BGZF, not NIfTI, a record that
        does not parse, a truncated file, not JSON...).
    SchemaError
        If the file violates its spec (missing column, value out of range, duplicated
        IDs, unsorted records, wrong dimensions...).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "v.csv").write_text(
    ...     "patient_id,time,vital,value,unit\n"
    ...     "p1,2024-05-01T08:00:00+02:00,heart_rate,72,/min\n"
    ...     "p1,2024-05-01T08:00:00+02:00,spo2,97,%\n")
    >>> report = validate("vitals", d / "v.csv")
    >>> report.ok, report.summary["rows"], report.summary["counts"]
    (True, 2, {'heart_rate': 1, 'spo2': 1})
    """
    canonical, spec = _resolve_kind(kind)
    opts = _resolve_options(kind, spec, options)
    p = Path(path)
    if not p.exists():
        raise InputFileNotFoundError(
            f"{kind} input file not found", where=str(p),
            expected=f"an existing file ({spec['title']})", fix="check the path",
        )
    if p.is_dir():
        raise InputFileNotFoundError(
            f"{kind} input is a folder, not a file", where=str(p),
            expected=f"a file ({spec['title']})", fix="point to the file itself",
        )
    logger.info("validating %s as %r", p, kind)
    try:
        summary, warnings = _CHECKERS[canonical](p, spec, opts)
    except SecuredBioError as e:
        e.add_note(f"while validating {p} as {kind!r} against data_specs/{canonical}.yaml")
        raise
    for w in warnings:
        logger.info("%s: %s", p, w)
    return ValidationReport(kind=kind, path=str(p), ok=True, summary=summary, warnings=warnings)


# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------


def _loc(path: Path, *, line: int | None = None, column: str | None = None,
         record: int | None = None, extra: str | None = None) -> str:
    parts = []
    if record is not None:
        parts.append(f"record {record}" + (f" (line {line})" if line is not None else ""))
    elif line is not None:
        parts.append(f"line {line}")
    if column is not None:
        parts.append(f"column '{column}'")
    if extra:
        parts.append(extra)
    return f"{path}: " + ", ".join(parts) if parts else str(path)


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _ordinal_list(names: Sequence[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


# --------------------------------------------------------------------------------------
# Tables: phenotype, vitals, clinical
# --------------------------------------------------------------------------------------


@dataclass
class _Column:
    name: str
    dtype: str
    required: bool = True
    nullable: bool = False
    unique: bool = False
    allowed: list[Any] | None = None
    min: float | None = None
    max: float | None = None
    pattern: str | None = None
    require_offset: bool = False
    vocabulary: bool = False

    @classmethod
    def from_spec(cls, d: dict[str, Any]) -> _Column:
        d = {k: v for k, v in d.items() if k != "description"}
        return cls(**d)


_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(?P<tz>Z|[+-]\d{2}:?\d{2})?"
)
_ISO_DATETIME_TZ = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})"
)
_ISO_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _open_text(path: Path) -> IO[str]:
    if _is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _iter_rows(path: Path, delimiter: str, comment: str | None) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields) of each non-blank row; line numbers count from 1."""
    with _open_text(path) as f:
        try:
            if delimiter == "whitespace":
                for lineno, line in enumerate(f, start=1):
                    if not line.strip() or (comment and line.startswith(comment)):
                        continue
                    yield lineno, line.split()
            else:
                reader = csv.reader(f, delimiter=delimiter)
                last = 0
                for fields in reader:
                    start, last = last + 1, reader.line_num
                    if not fields or (len(fields) == 1 and not fields[0].strip()):
                        continue
                    if comment and fields[0].startswith(comment):
                        continue
                    yield start, fields
        except UnicodeDecodeError as e:
            raise FormatError(
                "file is not UTF-8 text", where=str(path), expected="a UTF-8 text table",
                got="bytes that are not UTF-8 (a binary file?)",
                fix="export the table as UTF-8 CSV/TSV",
            ) from e
        except (csv.Error, EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise FormatError(
                "table could not be read", where=str(path), expected="a well-formed text table",
                got=type(e).__name__, fix="check quoting and compression of the file",
            ) from e


class _TableChecker:
    """Generic streaming checker of a delimited table against a spec ``table`` section."""

    def __init__(self, path: Path, table: dict[str, Any], *,
                 extra_required: dict[str, str] | None = None,
                 class_columns: list[str] | None = None,
                 sensitive: str | None = None) -> None:
        self.path = path
        self.table = table
        self.missing = list(table["missing"])
        self.columns = [_Column.from_spec(c) for c in table["columns"]]
        self.extra_required = extra_required or {}
        self.class_columns = class_columns or []
        self.sensitive = sensitive
        self.warnings: list[str] = []
        self.summary: dict[str, Any] = {}

    # -- header ------------------------------------------------------------------
    def _check_header(self, header: list[str], line: int) -> list[_Column]:
        path, table = self.path, self.table
        # Header cells are not echoed: in a file without a header row they are data.
        dups = [i + 1 for i, h in enumerate(header) if h in header[:i]]
        if dups:
            raise SchemaError(
                "duplicated column names in the header", where=_loc(path, line=line),
                expected="unique column names",
                got=f"{len(dups)} repeated (first at field {dups[0]})",
                fix="rename or drop the duplicated columns (is the header row missing?)",
            )
        variants = table.get("id_header_variants")
        if variants:
            if not any(header[: len(v)] == v for v in variants):
                # The first token is not shown: a file without a header starts with an ID.
                raise SchemaError(
                    "header does not start with the ID columns", where=_loc(path, line=line),
                    expected="a header starting with "
                    + " or ".join(f"'{' '.join(v)}'" for v in variants),
                    got="another first column (is the header row missing?)",
                    fix="add or rename the header, e.g. '#FID IID <trait>...'",
                )
            # plink2 allows a leading '#': map '#FID'/'#IID' to the spec names.
            header = [h.lstrip("#") if i == 0 else h for i, h in enumerate(header)]
        present = set(header)
        for col in self.columns:
            if col.required and col.name not in present:
                self._missing_column(col.name, "required column", header, line)
        for name, role in self.extra_required.items():
            if name not in present:
                self._missing_column(name, role, header, line, named_by_caller=True)
        declared = {c.name for c in self.columns}
        extra = [h for h in header if h not in declared]
        other = table.get("other_columns")
        if other:
            self.columns += [
                _Column(name=h, dtype=other["dtype"], required=False,
                        nullable=other.get("nullable", True))
                for h in extra
            ]
        else:
            policy = table.get("extra_columns", "allow")
            if extra and policy == "error":
                raise SchemaError(
                    "unexpected columns", where=_loc(path, line=line),
                    expected="only " + _ordinal_list(sorted(declared)),
                    got=f"{len(extra)} more", fix="drop the other columns",
                )
            if extra and policy == "warn":
                self.warnings.append(f"{len(extra)} column{'' if len(extra) == 1 else 's'} not in "
                                     "the spec ignored")
        self.header = header
        return [c for c in self.columns if c.name in present]

    def _missing_column(self, name: str, role: str, header: list[str], line: int, *,
                        named_by_caller: bool = False) -> None:
        hint = did_you_mean(name, header)
        # A column the caller named (--qi...) is a usage error; one the spec requires is not.
        raise (UnknownColumnError if named_by_caller else SchemaError)(
            f"{role} '{name}' is missing", where=_loc(self.path, line=line),
            expected=f"a column named '{name}'",
            got=f"a header of {len(header)} columns without it",
            fix=hint or f"add the column '{name}' or rename the matching one "
            "(is the header row missing?)",
        )

    # -- one chunk ---------------------------------------------------------------
    def _first(self, mask: np.ndarray, lines: np.ndarray) -> int:
        return int(lines[int(np.argmax(mask))])

    def _check_column(self, col: _Column, raw: pd.Series, lines: np.ndarray) -> tuple[Any, Any]:
        """Check one column of a chunk; return (parsed values, missing mask)."""
        path = self.path
        missing = raw.isin(self.missing).to_numpy()
        if not col.nullable and missing.any():
            raise SchemaError(
                f"missing value in column '{col.name}'",
                where=_loc(path, line=self._first(missing, lines), column=col.name),
                expected="a value (this column may not be missing)",
                got=f"a missing-value token ({_ordinal_list(self.missing)})",
                fix="fill in the value or drop the row",
            )
        present = ~missing
        parsed: Any = raw
        if col.dtype in ("integer", "number"):
            num = pd.to_numeric(raw.where(present), errors="coerce").to_numpy(dtype=float)
            bad = present & ~np.isfinite(num)
            if bad.any():
                raise SchemaError(
                    f"non-numeric value in column '{col.name}'",
                    where=_loc(path, line=self._first(bad, lines), column=col.name),
                    expected="a finite number" + (
                        f" (missing as {_ordinal_list(self.missing)})" if col.nullable else ""),
                    got="a value that is not a finite number",
                    fix="correct the value, or mark it missing" if col.nullable
                    else "correct the value",
                )
            if col.dtype == "integer":
                bad = present & (np.mod(np.where(present, num, 0), 1) != 0)
                if bad.any():
                    raise SchemaError(
                        f"non-integer value in column '{col.name}'",
                        where=_loc(path, line=self._first(bad, lines), column=col.name),
                        expected="an integer", got="a number with a fractional part",
                        fix="round or correct the value",
                    )
            self._check_range(col.name, num, present, lines, col.min, col.max, "")
            parsed = num
        elif col.dtype == "date":
            shape_ok = raw.str.fullmatch(_ISO_DATE.pattern, na=False).to_numpy(dtype=bool)
            when = pd.to_datetime(raw.where(present & shape_ok), format="%Y-%m-%d", errors="coerce")
            bad = present & (~shape_ok | when.isna().to_numpy())
            if bad.any():
                raise SchemaError(
                    f"invalid date in column '{col.name}'",
                    where=_loc(path, line=self._first(bad, lines), column=col.name),
                    expected="a date YYYY-MM-DD", got="a value that is not a valid YYYY-MM-DD date",
                    fix="write dates as YYYY-MM-DD (ISO 8601)",
                )
            parsed = when.to_numpy(dtype="datetime64[ns]").astype("int64")
        elif col.dtype == "datetime":
            # One regex pass on the good path; the first failing value picks the message.
            shape = _ISO_DATETIME_TZ if col.require_offset else _ISO_DATETIME
            shape_ok = raw.str.fullmatch(shape.pattern, na=False).to_numpy(dtype=bool)
            bad = present & ~shape_ok
            if col.require_offset and bad.any():
                i = int(np.argmax(bad))
                if not _ISO_OFFSET.search(str(raw.iloc[i])):
                    raise SchemaError(
                        f"date-time without UTC offset in column '{col.name}'",
                        where=_loc(path, line=int(lines[i]), column=col.name),
                        expected="ISO 8601 with offset, e.g. 2024-05-01T08:30:00+02:00 or ...Z",
                        got="a date-time without offset",
                        fix="append the UTC offset of the site's local time (or Z for UTC)",
                    )
            when = pd.to_datetime(raw.where(present & shape_ok), utc=True, format="ISO8601",
                                  errors="coerce")
            bad = present & (~shape_ok | when.isna().to_numpy())
            if bad.any():
                raise SchemaError(
                    f"invalid date-time in column '{col.name}'",
                    where=_loc(path, line=self._first(bad, lines), column=col.name),
                    expected="an ISO 8601 date-time, e.g. 2024-05-01T08:30:00+02:00",
                    got="a value that is not a valid ISO 8601 date-time",
                    fix="write times as YYYY-MM-DDThh:mm:ss+hh:mm",
                )
            parsed = when.to_numpy(dtype="datetime64[ns]").astype("int64")
        if col.pattern is not None:
            ok = raw.str.fullmatch(col.pattern, na=False).to_numpy(dtype=bool)
            bad = present & ~ok
            if bad.any():
                raise SchemaError(
                    f"value does not match the pattern of column '{col.name}'",
                    where=_loc(path, line=self._first(bad, lines), column=col.name),
                    expected=f"a value matching /{col.pattern}/", got="a value that does not",
                    fix="correct the value",
                )
        if col.allowed is not None:
            allowed = [str(a) for a in col.allowed]
            bad = present & ~raw.isin(allowed).to_numpy()
            if bad.any():
                i = int(np.argmax(bad))
                value = str(raw.iloc[i])
                hint = did_you_mean(value, allowed) if col.vocabulary else None
                raise SchemaError(
                    f"unknown value in column '{col.name}'",
                    where=_loc(path, line=int(lines[i]), column=col.name),
                    expected="one of " + _ordinal_list(allowed),
                    got=f"'{value}'" if col.vocabulary else "a value outside the allowed set",
                    fix=hint or "use one of the allowed values",
                )
        return parsed, missing

    def _check_range(self, name: str, num: np.ndarray, mask: np.ndarray, lines: np.ndarray,
                     lo: float | None, hi: float | None, context: str) -> None:
        for bound, bad, word in (
            (lo, mask & (num < lo) if lo is not None else None, "below the minimum"),
            (hi, mask & (num > hi) if hi is not None else None, "above the maximum"),
        ):
            if bad is not None and bad.any():
                raise SchemaError(
                    f"value out of range in column '{name}'{context}",
                    where=_loc(self.path, line=self._first(bad, lines), column=name),
                    expected=f"a value in [{_fmt(lo)}, {_fmt(hi)}]",
                    got=f"a value {word} {_fmt(bound)}",
                    fix="check the unit and the entry; drop or correct implausible values",
                )

    def _check_group_rules(self, parsed: dict[str, Any], raw: pd.DataFrame, lines: np.ndarray,
                           missing: dict[str, np.ndarray]) -> None:
        gr = self.table.get("group_rules")
        if not gr:
            return
        gcol = gr["column"]
        by_name = {c.name: c for c in self.columns}
        for category, rules in gr["rules"].items():
            in_cat = (raw[gcol] == category).to_numpy()
            if not in_cat.any():
                continue
            for target, rule in rules.items():
                if target not in raw.columns:
                    continue
                present = in_cat & ~missing[target]
                context = f" for {gcol} '{category}'"
                if "equals" in rule:
                    bad = present & (raw[target] != rule["equals"]).to_numpy()
                    if bad.any():
                        i = int(np.argmax(bad))
                        vocab = by_name[target].vocabulary if target in by_name else False
                        raise SchemaError(
                            f"wrong {target}{context}",
                            where=_loc(self.path, line=int(lines[i]), column=target),
                            expected=f"'{rule['equals']}'",
                            got=f"'{raw[target].iloc[i]}'" if vocab else "another value",
                            fix=f"convert the values to {rule['equals']} and write "
                            f"'{rule['equals']}' in column '{target}'",
                        )
                if "min" in rule or "max" in rule:
                    self._check_range(target, parsed[target], present, lines,
                                      rule.get("min"), rule.get("max"), context)

    # -- the whole table ---------------------------------------------------------
    def run(self) -> tuple[dict[str, Any], list[str]]:
        table, path = self.table, self.path
        rows = _iter_rows(path, table["delimiter"], table.get("comment_prefix"))
        first = next(rows, None)
        if first is None:
            raise SchemaError("table is empty", where=str(path), expected="a header row",
                              got="no rows", fix="check that the right file was given")
        header_line, header = first
        cols = self._check_header(list(first[1]), header_line)
        header = self.header
        n_cols = len(header)

        uniq_cols = [c.name for c in cols if c.unique]
        seen_unique: dict[str, set[Any]] = {c: set() for c in uniq_cols}
        dup_unique: dict[str, list[int]] = {c: [0, 0] for c in uniq_cols}  # count, first line
        key = table.get("key")
        seen_key: set[tuple[Any, ...]] = set()
        dup_key = [0, 0]
        sort = table.get("sort")
        last_sort: dict[tuple[Any, ...], Any] = {}
        unsorted = [0, 0]
        counts: Counter[str] = Counter()
        n_missing: Counter[str] = Counter()
        distinct: dict[str, set[float]] = {
            c.name: set() for c in cols if c.dtype in ("integer", "number")
        }
        classes: Counter[tuple[str, ...]] = Counter()
        sens: dict[tuple[str, ...], set[str]] = {}
        n_rows = 0

        def chunks() -> Iterator[tuple[np.ndarray, list[list[str]]]]:
            buf_lines: list[int] = []
            buf_rows: list[list[str]] = []
            for lineno, fields in rows:
                if len(fields) != n_cols:
                    raise FormatError(
                        "row has the wrong number of fields", where=_loc(path, line=lineno),
                        expected=f"{n_cols} fields (as in the header)", got=f"{len(fields)} fields",
                        fix="check delimiters and quoting on that line",
                    )
                buf_lines.append(lineno)
                buf_rows.append(fields)
                if len(buf_rows) >= _CHUNK_ROWS:
                    yield np.asarray(buf_lines), buf_rows
                    buf_lines, buf_rows = [], []
            if buf_rows:
                yield np.asarray(buf_lines), buf_rows

        for lines, chunk_rows in chunks():
            raw = pd.DataFrame(chunk_rows, columns=header, dtype=object)
            n_rows += len(raw)
            parsed: dict[str, Any] = {}
            missing: dict[str, np.ndarray] = {}
            for col in cols:
                parsed[col.name], missing[col.name] = self._check_column(col, raw[col.name], lines)
                n_missing[col.name] += int(missing[col.name].sum())
                # Only up to 3 distinct values matter (binary trait detection).
                if col.name in distinct and len(distinct[col.name]) <= 3:
                    vals = parsed[col.name][~missing[col.name]]
                    distinct[col.name].update(np.unique(vals).tolist())
            self._check_group_rules(parsed, raw, lines, missing)
            for name in uniq_cols:
                s, d = seen_unique[name], dup_unique[name]
                for ln, v, m in zip(lines, raw[name], missing[name], strict=True):
                    if m:
                        continue
                    if v in s:
                        d[0] += 1
                        d[1] = d[1] or int(ln)
                    else:
                        s.add(v)
            if key:
                kv = [parsed[k] if k in parsed else raw[k] for k in key]
                for ln, k in zip(lines, zip(*kv, strict=True), strict=True):
                    if k in seen_key:
                        dup_key[0] += 1
                        dup_key[1] = dup_key[1] or int(ln)
                    else:
                        seen_key.add(k)
            if sort:
                by = parsed[sort["by"]]
                by_missing = missing[sort["by"]]
                within = [raw[w] for w in sort.get("within", [])]
                groups = zip(*within, strict=True) if within else (() for _ in range(len(raw)))
                for ln, g, v, m in zip(lines, groups, by, by_missing, strict=True):
                    if m:
                        continue
                    prev = last_sort.get(g)
                    if prev is not None and v < prev:
                        unsorted[0] += 1
                        unsorted[1] = unsorted[1] or int(ln)
                        if sort.get("on_violation", "warn") == "error":
                            self._raise_unsorted(sort, unsorted)
                    last_sort[g] = v
            if table.get("counts_by"):
                counts.update(raw[table["counts_by"]].tolist())
            if self.class_columns:
                qi_vals = zip(*(raw[c] for c in self.class_columns), strict=True)
                if self.sensitive:
                    for q, s in zip(qi_vals, raw[self.sensitive], strict=True):
                        classes[q] += 1
                        sens.setdefault(q, set()).add(s)
                else:
                    classes.update(qi_vals)

        for name, (n, line) in dup_unique.items():
            if n:
                raise SchemaError(
                    f"duplicated values in unique column '{name}'",
                    where=_loc(path, column=name), expected="unique values",
                    got=f"{n} duplicated {'value' if n == 1 else 'values'} (first at line {line})",
                    fix="remove or merge the duplicated rows",
                )
        if dup_key[0]:
            raise SchemaError(
                "duplicated rows for the key " + "(" + ", ".join(key or []) + ")",
                where=str(path), expected="at most one row per key",
                got=f"{dup_key[0]} duplicated {'row' if dup_key[0] == 1 else 'rows'} "
                f"(first at line {dup_key[1]})",
                fix="remove repeated measurements or aggregate them",
            )
        summary: dict[str, Any] = {"rows": n_rows, "columns": list(header)}
        if sort:
            summary["unsorted_rows"] = unsorted[0]
            if unsorted[0]:
                self.warnings.append(self._unsorted_text(sort, unsorted))
        if table.get("counts_by"):
            order = [str(a) for a in next(
                (c.allowed for c in cols if c.name == table["counts_by"]), None) or sorted(counts)]
            summary["counts"] = {k: counts[k] for k in order if counts[k]}
        summary["missing"] = {c.name: n_missing[c.name] for c in cols if n_missing[c.name]}
        if table.get("trait_types"):
            summary["traits"] = self._trait_types(cols, distinct)
        if self.class_columns:
            summary["quasi_identifiers"] = list(self.class_columns)
            summary["equivalence_classes"] = len(classes)
            summary["k_anonymity"] = min(classes.values()) if classes else 0
            if self.sensitive:
                summary["sensitive"] = self.sensitive
                summary["l_diversity"] = min((len(v) for v in sens.values()), default=0)
        if n_rows == 0:
            self.warnings.append("the table has a header but no rows")
        return summary, self.warnings

    def _unsorted_text(self, sort: dict[str, Any], unsorted: list[int]) -> str:
        within = sort.get("within") or []
        scope = f" within {', '.join(within)}" if within else ""
        return (f"'{sort['by']}' decreases{scope} at {unsorted[0]} "
                f"{'row' if unsorted[0] == 1 else 'rows'} (first at line {unsorted[1]}); "
                f"sort by {', '.join([*within, sort['by']])}")

    def _raise_unsorted(self, sort: dict[str, Any], unsorted: list[int]) -> None:
        raise SchemaError(
            "rows are not sorted", where=_loc(self.path, line=unsorted[1], column=sort["by"]),
            expected=f"non-decreasing '{sort['by']}'", got="a value lower than the previous row",
            fix=f"sort by {', '.join([*(sort.get('within') or []), sort['by']])}",
        )

    def _trait_types(self, cols: list[_Column], distinct: dict[str, set[float]]) -> dict[str, str]:
        tt = self.table["trait_types"]
        codings = {
            name: set(map(float, vals)) for name, vals in tt.get("binary_codings", {}).items()
        }
        out: dict[str, str] = {}
        declared = {c["name"] for c in self.table["columns"]}
        for col in cols:
            if col.name in declared or col.name not in distinct:
                continue
            vals = distinct[col.name]
            kind = "quantitative"
            if not vals:
                kind = "empty"
                self.warnings.append(f"column '{col.name}' has only missing values")
            elif len(vals) == 1:
                self.warnings.append(f"column '{col.name}' is constant (1 distinct value)")
            for name, coding in codings.items():
                if len(vals) == 2 and vals <= coding:
                    kind = f"binary ({name})"
                    if name in tt.get("warn_on", {}):
                        self.warnings.append(f"column '{col.name}' is coded {name}: "
                                             f"{tt['warn_on'][name]}")
                    break
            out[col.name] = kind
        return out


def _fmt(x: float | None) -> str:
    if x is None:
        return "-inf"
    return str(int(x)) if float(x).is_integer() else str(x)


def _check_phenotype(path: Path, spec: dict[str, Any], opts: dict[str, Any]) -> tuple[
        dict[str, Any], list[str]]:
    return _TableChecker(path, spec["table"]).run()


def _check_vitals(path: Path, spec: dict[str, Any], opts: dict[str, Any]) -> tuple[
        dict[str, Any], list[str]]:
    return _TableChecker(path, spec["table"]).run()


def _check_clinical(path: Path, spec: dict[str, Any], opts: dict[str, Any]) -> tuple[
        dict[str, Any], list[str]]:
    table = copy.deepcopy(spec["table"])
    id_column = opts["id_column"]
    if not isinstance(id_column, str) or not id_column:
        raise ConfigError("id_column must be a column name", where="option 'id_column'",
                          got=type(id_column).__name__)
    # The first declared column is the ID column; the option renames it.
    table["columns"][0]["name"] = id_column
    table["columns"] = [table["columns"][0]] + [
        c for c in table["columns"][1:] if c["name"] != id_column
    ]
    qi = opts["qi"]
    if isinstance(qi, str):
        qi = [qi]
    qi = list(qi or [])
    sensitive = opts["sensitive"]
    if sensitive is not None and not isinstance(sensitive, str):
        raise ConfigError("sensitive must be one column name", where="option 'sensitive'",
                          got=type(sensitive).__name__, fix="pass sensitive='diagnosis'")
    for name, role in [(n, "quasi-identifier") for n in qi] + (
            [(sensitive, "sensitive attribute")] if sensitive else []):
        if name == id_column:
            raise ConfigError(f"the ID column cannot be a {role}", where=f"option '{name}'",
                              fix="drop the ID column before anonymization; it is a direct "
                              "identifier, not a quasi-identifier")
    if sensitive and sensitive in qi:
        raise ConfigError("the sensitive attribute is also a quasi-identifier",
                          where=f"option sensitive='{sensitive}'",
                          fix="remove it from qi")
    extra = {n: "quasi-identifier column" for n in qi}
    if sensitive:
        extra[sensitive] = "sensitive attribute column"
    return _TableChecker(path, table, extra_required=extra, class_columns=qi,
                         sensitive=sensitive).run()


# --------------------------------------------------------------------------------------
# VCF / BCF
# --------------------------------------------------------------------------------------

_FORMAT_ID = re.compile(r"^##FORMAT=<ID=([^,>]+)")






@contextlib.contextmanager
def _quiet_htslib() -> Iterator[None]:
    """Silence htslib's stderr messages (they can quote record content) while scanning.

    pysam's "no BGZF EOF marker" warning is silenced too: truncation is reported as an
    error naming the record where the data ends (see ``_open_variant_file``).
    """
    import pysam

    previous = pysam.set_verbosity(0)
    try:
        with _pywarnings.catch_warnings():
            _pywarnings.filterwarnings("ignore", message="no BGZF EOF marker")
            yield
    finally:
        pysam.set_verbosity(previous)


def _open_variant_file(path: Path, input_format: str) -> Any:
    import pysam

    try:
        # ignore_truncation: read up to the cut so that the error can name the record.
        return pysam.VariantFile(str(path), ignore_truncation=True)
    except (OSError, ValueError) as e:
        raise FormatError(
            f"{input_format} could not be opened by htslib", where=str(path),
            expected=f"a readable {input_format} header", got=type(e).__name__,
            fix="the file may be truncated or corrupted; check it with bcftools view -h",
        ) from e


def _close_quietly(vf: Any) -> None:
    # Closing a truncated BGZF fails; close here so that pysam's __dealloc__ does not
    # report an "Exception ignored" later.
    with contextlib.suppress(OSError):
        vf.close()


def _read_vcf_header(path: Path, compression: str, rules: dict[str, Any]) -> dict[str, Any]:
    """Parse the text header up to #CHROM; return version, samples, FORMAT ids, line count."""
    opener: Callable[..., IO[str]] = gzip.open if compression == "bgzf" else open  # type: ignore[assignment]
    versions = rules["fileformat_versions"]
    formats: set[str] = set()
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as f:
            first = f.readline().rstrip("\r\n")
            if not first.startswith("##fileformat="):
                raise FormatError(
                    "missing ##fileformat header", where=_loc(path, line=1),
                    expected="'##fileformat=VCFv4.x' as the first line",
                    got="a first line without it", fix="check that this is a VCF file",
                )
            version = first.split("=", 1)[1]
            if version not in versions:
                raise FormatError(
                    "unsupported VCF version", where=_loc(path, line=1),
                    expected="one of " + ", ".join(versions), got=repr(version[:16]),
                    fix="convert the file with bcftools view -Oz",
                )
            lineno = 1
            for raw in f:
                lineno += 1
                line = raw.rstrip("\r\n")
                if line.startswith("##"):
                    m = _FORMAT_ID.match(line)
                    if m:
                        formats.add(m.group(1))
                    continue
                if line.startswith("#CHROM"):
                    return {"version": version, "columns": line.split("\t"), "formats": formats,
                            "header_lines": lineno}
                break
    except (EOFError, gzip.BadGzipFile, UnicodeDecodeError, OSError, zlib.error) as e:
        raise FormatError(
            "VCF header could not be read", where=str(path),
            expected="a complete text header", got=type(e).__name__,
            fix="the file may be truncated or corrupted: re-create or re-copy it",
        ) from e
    raise FormatError(
        "missing #CHROM header line", where=str(path),
        expected="a '#CHROM POS ID REF ALT QUAL FILTER INFO FORMAT <samples>' line before "
        "the first record", got="a record or end of file first",
        fix="restore the header (bcftools reheader)",
    )


def _check_vcf_samples(path: Path, samples: list[str], rules: dict[str, Any], line: int | None
                       ) -> None:
    if len(samples) < rules["min_samples"]:
        raise SchemaError(
            "VCF has no samples", where=_loc(path, line=line),
            expected=f"at least {rules['min_samples']} sample column(s) after FORMAT",
            got=f"{len(samples)} samples (a sites-only VCF)",
            fix="use the VCF with genotype columns",
        )
    if rules.get("unique_samples"):
        counts = Counter(samples)
        n_dup = sum(c - 1 for c in counts.values() if c > 1)
        if n_dup:
            first = next(i for i, s in enumerate(samples) if counts[s] > 1 and
                         samples.index(s) != i)
            raise SchemaError(
                "duplicated sample IDs", where=_loc(path, line=line, extra="#CHROM header"),
                expected="unique sample IDs",
                got=f"{n_dup} duplicated sample {'ID' if n_dup == 1 else 'IDs'} "
                f"(first duplicate is sample column {first + 1})",
                fix="rename the duplicates (bcftools reheader -s) or drop them",
            )


def _check_vcf(path: Path, spec: dict[str, Any], opts: dict[str, Any]) -> tuple[
        dict[str, Any], list[str]]:
    rules = spec["rules"]
    warnings: list[str] = []
    max_records = opts["max_records"]
    if max_records is not None and (not isinstance(max_records, int) or max_records < 0):
        raise ConfigError("max_records must be a non-negative integer or None",
                          where="option 'max_records'", got=type(max_records).__name__)
    compression = _compression(path)
    if compression == "gzip":
        raise FormatError(
            "file is gzip-compressed but not BGZF", where=str(path),
            expected="BGZF (bgzip) compression or plain text",
            got="plain gzip", fix=f"recompress: zcat {path} | bgzip > out.vcf.gz",
        )
    if compression == "bgzf":
        with reading(path, "BGZF file", fix="re-create or re-copy it"), \
                gzip.open(path, "rb") as g:
            magic = g.read(3)
    else:
        with open(path, "rb") as fb:
            magic = fb.read(3)
    is_bcf = magic == b"BCF"

    header_lines: int | None = None
    if is_bcf:
        input_format = "BCF"
        with _quiet_htslib():
            vf = _open_variant_file(path, input_format)
            version = str(vf.header.version)
            samples = list(vf.header.samples)
            formats = set(vf.header.formats)
            _close_quietly(vf)
        _check_vcf_samples(path, samples, rules, None)
    else:
        input_format = "VCF"
        hdr = _read_vcf_header(path, compression, rules)
        version, columns, formats = hdr["version"], hdr["columns"], hdr["formats"]
        header_lines = hdr["header_lines"]
        fixed = rules["fixed_columns"]
        if columns[: len(fixed)] != fixed:
            raise FormatError(
                "malformed #CHROM header line", where=_loc(path, line=header_lines),
                expected="tab-separated " + " ".join(fixed),
                got=f"{len(columns)} tab-separated fields, not in that order",
                fix="the header line must be tab-separated; restore it with bcftools reheader",
            )
        if len(columns) > len(fixed) and columns[len(fixed)] != rules["format_column"]:
            raise SchemaError(
                "FORMAT column missing", where=_loc(path, line=header_lines),
                expected=f"'{rules['format_column']}' after INFO",
                got="another column name", fix="the file must carry per-sample genotypes",
            )
        _check_vcf_samples(path, columns[len(fixed) + 1:], rules, header_lines)
        samples = columns[len(fixed) + 1:]
    for fid in rules["required_format_fields"]:
        if fid not in formats:
            raise SchemaError(
                f"FORMAT field {fid} is not declared in the header", where=str(path),
                expected=f"a ##FORMAT=<ID={fid},...> header line",
                got=f"{len(formats)} declared FORMAT fields" + (
                    f" ({', '.join(sorted(formats))})" if formats else ""),
                fix=f"add the ##FORMAT line for {fid} (bcftools annotate -h)",
            )

    index = None
    if compression == "bgzf":
        index = next((path.with_name(path.name + ext) for ext in rules["index_extensions"]
                      if path.with_name(path.name + ext).exists()), None)
        if index is None:
            warnings.append(
                f"no index ({' or '.join(rules['index_extensions'])}) next to the file; "
                f"fix: {rules['index_fix'].format(path=path)}")
        elif index.stat().st_mtime < path.stat().st_mtime:
            warnings.append(f"index {index.name} is older than the file; re-create it: "
                            f"{rules['index_fix'].format(path=path)}")
    else:
        warnings.append(f"plain-text VCF: compress and index it for random access "
                        f"(bgzip {path}; tabix -p vcf {path}.gz)")

    ploidy_ok = set(rules["ploidy"])
    required = rules["required_format_fields"]
    n = n_multi = n_calls = n_missing = 0
    ploidies: Counter[int] = Counter()
    contigs: list[str] = []
    seen_contigs: set[str] = set()
    prev_pos = -1
    complete = True

    def where(record: int, **kw: Any) -> str:
        line = header_lines + record if header_lines is not None else None
        return _loc(path, record=record, line=line, **kw)

    with _quiet_htslib():
        vf = _open_variant_file(path, input_format)
        try:
            it = iter(vf)
            while True:
                if max_records is not None and n >= max_records:
                    try:
                        complete = next(it, None) is None
                    except (OSError, ValueError):
                        complete = False  # beyond the records asked for
                    break
                try:
                    rec = next(it)
                except StopIteration:
                    break
                except (OSError, ValueError) as e:
                    truncated = compression == "bgzf" and not _has_bgzf_eof(path)
                    raise FormatError(
                        f"{input_format} record could not be parsed", where=where(n + 1),
                        expected=f"a valid {input_format} record",
                        got="a truncated file (no BGZF end-of-file block)" if truncated
                        else "a malformed record",
                        fix="the file was cut short: re-copy or re-create it" if truncated
                        else "inspect that record (bcftools view) and correct or drop it",
                    ) from e
                n += 1
                chrom = rec.chrom
                if chrom != (contigs[-1] if contigs else None):
                    if chrom in seen_contigs:
                        raise SchemaError(
                            "records are not sorted: contig appears in two blocks",
                            where=where(n, extra=f"contig '{chrom}'"),
                            expected="all records of a contig together",
                            got="a contig that reappears after another one",
                            fix=rules["sort_fix"].format(path=path),
                        )
                    contigs.append(chrom)
                    seen_contigs.add(chrom)
                    prev_pos = -1
                if rec.pos < prev_pos:
                    raise SchemaError(
                        "records are not sorted by position",
                        where=where(n, extra=f"contig '{chrom}'"),
                        expected="non-decreasing POS within each contig",
                        got="a position lower than the previous record's",
                        fix=rules["sort_fix"].format(path=path),
                    )
                prev_pos = rec.pos
                fmt = list(rec.format)
                for fid in required:
                    if fid not in fmt:
                        raise SchemaError(
                            f"record has no {fid} in FORMAT", where=where(n),
                            expected=f"{fid} among the FORMAT fields",
                            got=f"FORMAT fields {':'.join(fmt) or '(none)'}",
                            fix=f"keep only records with {fid} (bcftools view -i 'GT!=\"mis\"')",
                        )
                n_alleles = len(rec.alleles or ())
                if n_alleles > 2:
                    n_multi += 1
                for smp in rec.samples.itervalues():
                    gt = smp["GT"]
                    k = len(gt)
                    if k not in ploidy_ok:
                        raise SchemaError(
                            "unsupported ploidy", where=where(n),
                            expected="ploidy " + " or ".join(map(str, sorted(ploidy_ok))),
                            got=f"a call of ploidy {k}",
                            fix="split or drop non-diploid records (e.g. bcftools +fixploidy)",
                        )
                    ploidies[k] += 1
                    n_calls += 1
                    if None in gt:
                        n_missing += 1
                    elif max(gt) >= n_alleles:
                        raise FormatError(
                            "malformed GT: allele index out of range", where=where(n),
                            expected=f"allele indices below {n_alleles} (REF + ALT alleles)",
                            got="a larger index", fix="correct the genotype or the ALT column",
                        )
        finally:
            _close_quietly(vf)
    if compression == "bgzf" and not _has_bgzf_eof(path):
        raise FormatError(
            "BGZF file is truncated", where=str(path) + (f": after record {n}" if complete else ""),
            expected="the BGZF end-of-file block", got="a file that ends without it",
            fix="the file was cut short: re-copy or re-create it",
        )
    if not complete:
        warnings.append(f"scanned the first {n} records only (max_records={max_records}); "
                        "later records were not checked")
    summary = {
        "format": input_format,
        "fileformat": version,
        "compression": compression,
        "index": index.suffix.lstrip(".") if index is not None else None,
        "samples": len(samples),
        "records": n,
        "all_records_scanned": complete,
        "contigs": len(contigs),
        "multiallelic_records": n_multi,
        "missing_call_fraction": (n_missing / n_calls) if n_calls else 0.0,
        "ploidy": {str(k): v for k, v in sorted(ploidies.items())},
    }
    return summary, warnings


# --------------------------------------------------------------------------------------
# NIfTI
# --------------------------------------------------------------------------------------


def _load_nifti(path: Path, role: str) -> Any:
    import nibabel as nib

    try:
        img = nib.load(path)
    except (nib.filebasedimages.ImageFileError, OSError, ValueError, EOFError,
            zlib.error) as e:
        raise FormatError(
            f"{role} is not a readable NIfTI image", where=str(path),
            expected="a NIfTI-1 or NIfTI-2 file (.nii or .nii.gz)", got=type(e).__name__,
            fix="convert the image to NIfTI (e.g. dcm2niix for DICOM)",
        ) from e
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise FormatError(
            f"{role} is not NIfTI", where=str(path), expected="a NIfTI-1 or NIfTI-2 image",
            got=type(img).__name__, fix="convert the image to NIfTI",
        )
    return img


def _check_affine(path: Path, affine: np.ndarray, role: str) -> None:
    if not np.all(np.isfinite(affine)):
        raise SchemaError(f"{role} affine has non-finite entries", where=f"{path}: affine",
                          expected="a finite 4x4 affine", got="NaN or inf entries",
                          fix="repair the sform/qform (e.g. nibabel set_sform)")
    det = float(np.linalg.det(affine[:3, :3]))
    if not abs(det) > 1e-12:
        raise SchemaError(f"{role} affine is singular", where=f"{path}: affine",
                          expected="a non-singular affine (non-zero voxel sizes)",
                          got="a 3x3 block with determinant 0",
                          fix="repair the sform/qform and pixdim[1:4]")


def _check_series_shape(path: Path, shape: tuple[int, ...], ndim: int, min_t: int) -> None:
    """Refuse a series that is not 4D or has fewer than ``min_t`` volumes."""
    if len(shape) != ndim:
        raise SchemaError(
            f"image is {len(shape)}D, not {ndim}D", where=f"{path}: shape",
            expected="a 4D series (x, y, z, time)", got=f"shape {shape}",
            fix="give the functional series, not a single volume (stack volumes with "
            "nibabel.funcs.concat_images)",
        )
    if shape[3] < min_t:
        raise SchemaError(
            "too few timepoints", where=f"{path}: shape",
            expected=f"at least {min_t} volumes", got=f"{shape[3]} volumes",
            fix="check that the full series was exported",
        )


def _count_nonfinite(path: Path, img: Any, data: np.ndarray | None = None) -> tuple[int, int]:
    """Count NaN/inf voxel values of a 4D image and the volumes holding them.

    Reads one volume at a time unless the data array is given.  Counts only: the values
    never appear in a message.
    """
    n_volumes = int(img.shape[3])
    if data is not None:
        if data.dtype.kind not in "fc":
            return 0, 0
        bad = ~np.isfinite(data)
        return int(np.count_nonzero(bad)), int(np.count_nonzero(bad.any(axis=(0, 1, 2))))
    n_bad = 0
    bad_volumes = 0
    t = 0
    try:
        for t in range(n_volumes):
            vol = np.asanyarray(img.dataobj[..., t])
            if vol.dtype.kind in "fc":
                k = int(np.count_nonzero(~np.isfinite(vol)))
                n_bad += k
                bad_volumes += k > 0
    except (OSError, EOFError, ValueError, gzip.BadGzipFile, zlib.error) as e:
        raise FormatError("image data could not be read", where=f"{path}: volume {t}",
                          expected=f"{n_volumes} complete volumes", got=type(e).__name__,
                          fix="the file may be truncated: re-export it") from e
    return n_bad, bad_volumes


def _raise_nonfinite(path: Path, n_bad: int, bad_volumes: int, n_volumes: int) -> None:
    raise SchemaError(
        "image has non-finite values", where=f"{path}: data",
        expected="finite values only",
        got=f"{n_bad} NaN/inf voxel values in {bad_volumes} of {n_volumes} volumes",
        fix="mask or replace them (e.g. numpy.nan_to_num) before analysis",
    )


def _check_nifti(path: Path, spec: dict[str, Any], opts: dict[str, Any]) -> tuple[
        dict[str, Any], list[str]]:
    rules = spec["rules"]
    warnings: list[str] = []
    min_t = opts["min_timepoints"]
    if min_t is None:
        min_t = rules["min_timepoints"]
    img = _load_nifti(path, "image")
    hdr = img.header
    shape = tuple(int(s) for s in img.shape)
    _check_series_shape(path, shape, rules["ndim"], min_t)
    _check_affine(path, img.affine, "image")
    if int(hdr["sform_code"]) == 0 and int(hdr["qform_code"]) == 0:
        warnings.append("sform_code and qform_code are both 0: the affine is only a scaling and "
                        "the image has no defined orientation")
    space_unit, time_unit = hdr.get_xyzt_units()
    tr = float(hdr["pixdim"][4])
    scale = rules["time_units"].get(time_unit)
    if scale is None:
        raise SchemaError(
            "repetition time has no time unit", where=f"{path}: header xyzt_units",
            expected="time units " + ", ".join(rules["time_units"]),
            got=f"'{time_unit}'", fix="set it, e.g. img.header.set_xyzt_units(t='sec')",
        )
    if not (math.isfinite(tr) and tr > 0):
        raise SchemaError(
            "repetition time must be positive", where=f"{path}: header pixdim[4]",
            expected="TR > 0", got=f"pixdim[4] = {tr:g}",
            fix="set the TR, e.g. img.header['pixdim'][4] = 2.0 with units 'sec'",
        )
    n_bad, bad_volumes = _count_nonfinite(path, img)
    if rules.get("finite") and n_bad:
        _raise_nonfinite(path, n_bad, bad_volumes, shape[3])
    zooms = [float(z) for z in hdr.get_zooms()[:3]]
    summary: dict[str, Any] = {
        "shape": list(shape),
        "timepoints": shape[3],
        "dtype": str(hdr.get_data_dtype()),
        "voxel_size": zooms,
        "space_unit": space_unit,
        "tr_seconds": tr * scale,
        "nifti_version": 2 if type(img).__name__ == "Nifti2Image" else 1,
    }
    if opts["atlas"] is not None:
        summary["atlas"] = _check_atlas(Path(opts["atlas"]), img, rules["atlas"],
                                        rules["affine_atol"], warnings)
    return summary, warnings


def _check_atlas(apath: Path, img: Any, rules: dict[str, Any], atol: float,
                 warnings: list[str]) -> dict[str, Any]:
    atlas, data = _read_atlas(apath, rules, warnings, like_shape=tuple(img.shape[:3]))
    _check_atlas_grid(apath, atlas.affine, tuple(img.shape[:3]), img.affine, atol)
    n_labels = int(np.count_nonzero(np.unique(data) != rules["background"]))
    return {"path": str(apath), "shape": list(data.shape), "labels": n_labels,
            "dtype": str(atlas.header.get_data_dtype())}


def _read_atlas(apath: Path, rules: dict[str, Any], warnings: list[str], *,
                like_shape: tuple[int, ...] | None = None) -> tuple[Any, np.ndarray]:
    """Load a 3D label atlas and check it (also used by :mod:`secured_bio.imaging.io`).

    Checks, in order: the file exists and is NIfTI, it is 3D, its shape is ``like_shape``
    (when given), its affine is finite and non-singular, its labels are integers and there
    are at least ``rules['min_labels']`` besides the background.  Returns the image and its
    data as an integer array.
    """
    reject_folder(apath, "nifti atlas", option="--atlas", expected="a 3D label image file")
    if not apath.exists():
        raise InputFileNotFoundError("nifti atlas file not found", where=str(apath),
                                     expected="an existing 3D label image",
                                     fix="check the atlas path")
    atlas = _load_nifti(apath, "atlas")
    ashape = tuple(int(s) for s in atlas.shape)
    if len(ashape) == 4 and ashape[3] == 1:
        ashape = ashape[:3]
    if len(ashape) != rules["ndim"]:
        raise SchemaError(f"atlas is {len(ashape)}D, not 3D", where=f"{apath}: shape",
                          expected="a 3D label image", got=f"shape {ashape}",
                          fix="give a deterministic (label) atlas, not a probabilistic one")
    if like_shape is not None and ashape != like_shape:
        raise SchemaError(
            "atlas grid does not match the series", where=f"{apath}: shape",
            expected=f"shape {like_shape} (the series' x, y, z)",
            got=f"shape {ashape}",
            fix="resample the atlas to the series (nilearn.image.resample_to_img, "
            "interpolation='nearest')",
        )
    _check_affine(apath, atlas.affine, "atlas")
    try:
        data = np.asanyarray(atlas.dataobj).reshape(ashape)
    except (OSError, EOFError, ValueError, gzip.BadGzipFile, zlib.error) as e:
        raise FormatError("atlas data could not be read", where=str(apath),
                          got=type(e).__name__, fix="re-export the atlas") from e
    on_disk = atlas.header.get_data_dtype()
    if data.dtype.kind == "f":
        if not np.all(np.isfinite(data)) or not np.all(np.mod(data, 1) == 0):
            raise SchemaError("atlas labels are not integers", where=f"{apath}: data",
                              expected="integer labels", got=f"non-integral {data.dtype} values",
                              fix="give a label atlas (integers), not a probability map")
        warnings.append(f"atlas labels are stored as {on_disk}; an integer dtype is safer")
        data = data.astype(np.int64)
    elif data.dtype.kind not in "iu":
        raise SchemaError("atlas labels are not integers", where=f"{apath}: dtype",
                          expected="an integer dtype", got=str(data.dtype),
                          fix="convert the atlas to an integer dtype")
    labels = np.unique(data)
    n_labels = int(np.count_nonzero(labels != rules["background"]))
    if n_labels < rules["min_labels"]:
        raise SchemaError(
            "atlas has too few labels", where=f"{apath}: data",
            expected=f"at least {rules['min_labels']} labels besides background "
            f"{rules['background']}", got=f"{n_labels}",
            fix="check that this is a parcellation, not a binary mask",
        )
    return atlas, np.asarray(data)


def _check_atlas_grid(apath: Path, atlas_affine: np.ndarray, shape: tuple[int, ...],
                      affine: np.ndarray, atol: float) -> None:
    """Refuse an atlas whose affine differs from the series' by more than ``atol``."""
    if not np.allclose(atlas_affine, affine, atol=atol, rtol=0):
        diff = float(np.max(np.abs(atlas_affine - affine)))
        raise SchemaError(
            "atlas affine does not match the series", where=f"{apath}: affine",
            expected=f"the series' affine within {atol:g}",
            got=f"a largest difference of {diff:.3g}",
            fix="resample the atlas to the series (nilearn.image.resample_to_img, "
            "interpolation='nearest')",
        )


# --------------------------------------------------------------------------------------
# FHIR
# --------------------------------------------------------------------------------------

# FHIR dateTime (R4 2.24.0.6) with a time part; the offset group is checked separately.
_FHIR_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(?P<tz>Z|[+-]\d{2}:\d{2})?"
)
_TYPE_NAME = re.compile(r"[A-Z][A-Za-z]{0,63}")


def _type_name(value: Any) -> str:
    """Show a resourceType only if it looks like one (a type name, not arbitrary data)."""
    if isinstance(value, str) and _TYPE_NAME.fullmatch(value):
        return f"'{value}'"
    return "a missing or non-type value" if value is None else f"a JSON {type(value).__name__}"


def _check_fhir(path: Path, spec: dict[str, Any], opts: dict[str, Any]) -> tuple[
        dict[str, Any], list[str]]:
    rules = spec["rules"]
    vitals_rules = _resolve_kind("vitals")[1]["table"]["group_rules"]["rules"]
    warnings: list[str] = []
    try:
        with open(path, encoding="utf-8-sig") as f:
            doc = json.load(f)
    except json.JSONDecodeError as e:
        # e.msg describes the syntax ("Expecting ',' delimiter"), not the content.
        raise FormatError("file is not valid JSON", where=_loc(path, line=e.lineno,
                          extra=f"character {e.colno}"), expected="a FHIR R4 JSON Bundle",
                          got=e.msg, fix="export the Bundle as JSON (not XML or NDJSON)") from e
    except UnicodeDecodeError as e:
        raise FormatError("file is not UTF-8 text", where=str(path),
                          expected="a FHIR R4 JSON Bundle", got="bytes that are not UTF-8",
                          fix="export the Bundle as UTF-8 JSON") from e
    if not isinstance(doc, dict) or doc.get("resourceType") != rules["resource_type"]:
        got = _type_name(doc.get("resourceType")) if isinstance(doc, dict) else \
            f"a JSON {type(doc).__name__}"
        raise SchemaError(
            "wrong resourceType", where=f"{path}: resourceType",
            expected=f"'{rules['resource_type']}'", got=got,
            fix="wrap the Observations in a Bundle: {\"resourceType\": \"Bundle\", "
            "\"type\": \"collection\", \"entry\": [...]}",
        )
    if doc.get("type") not in rules["bundle_types"]:
        raise SchemaError("Bundle.type is missing or invalid", where=f"{path}: type",
                          expected="one of " + ", ".join(rules["bundle_types"]),
                          got=_vocab(doc.get("type")), fix="set \"type\": \"collection\"")
    entries = doc.get("entry", [])
    if not isinstance(entries, list):
        raise SchemaError("Bundle.entry is not a list", where=f"{path}: entry",
                          expected="a JSON array", got=f"a JSON {type(entries).__name__}")
    if not entries:
        warnings.append("the Bundle has no entries")
    counts: Counter[str] = Counter()
    subjects: set[str] = set()
    absent = 0
    loinc, panels = rules["loinc"], rules["panels"]
    known = sorted([*loinc, *panels])
    for i, entry in enumerate(entries):
        at = f"{path}: entry[{i}]"
        res = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(res, dict):
            raise SchemaError("entry has no resource", where=at,
                              expected="an object with a 'resource'", got="none")
        if res.get("resourceType") != rules["entry_resource_type"]:
            raise SchemaError("entry is not an Observation", where=f"{at}.resource.resourceType",
                              expected=f"'{rules['entry_resource_type']}'",
                              got=_type_name(res.get("resourceType")),
                              fix="keep only vital-sign Observations in the Bundle")
        if res.get("status") not in rules["statuses"]:
            raise SchemaError("Observation.status is missing or invalid", where=f"{at}.status",
                              expected="one of " + ", ".join(rules["statuses"]),
                              got=_vocab(res.get("status")), fix="set \"status\": \"final\"")
        cat = rules["category"]
        if not any(c.get("system") == cat["system"] and c.get("code") == cat["code"]
                   for c in _codings(res.get("category"), many=True)):
            raise SchemaError(
                "Observation is not in category vital-signs", where=f"{at}.category",
                expected=f"a coding {cat['system']}|{cat['code']}", got="none",
                fix="add the vital-signs category coding",
            )
        codes = [c.get("code") for c in _codings(res.get("code"))
                 if c.get("system") == rules["code_system"]]
        if not codes:
            raise SchemaError("Observation.code has no LOINC coding", where=f"{at}.code",
                              expected=f"a coding with system {rules['code_system']}",
                              got="none", fix="code the Observation with LOINC")
        code = next((c for c in codes if c in loinc or c in panels), None)
        if code is None:
            shown = codes[0] if isinstance(codes[0], str) else None
            raise SchemaError(
                "unknown LOINC code for a vital sign", where=f"{at}.code",
                expected="one of " + ", ".join(known),
                got=f"'{shown[:20]}'" if shown else "a non-string code",
                fix=(did_you_mean(shown, known) if shown else None)
                or "use a vital-signs LOINC code",
            )
        sref = (res.get("subject") or {}).get("reference") if isinstance(
            res.get("subject"), dict) else None
        if not (isinstance(sref, str) and (sref.startswith(("Patient/", "urn:uuid:"))
                                          or "/Patient/" in sref)):
            raise SchemaError("Observation.subject is missing or not a Patient reference",
                              where=f"{at}.subject.reference",
                              expected="'Patient/<id>' or 'urn:uuid:<uuid>'",
                              got="a missing or other reference",
                              fix="reference the patient the measurement belongs to")
        subjects.add(sref)
        eff = res.get("effectiveDateTime")
        m = _FHIR_DATETIME.fullmatch(eff) if isinstance(eff, str) else None
        if m is None:
            raise SchemaError(
                "effectiveDateTime is missing or not a FHIR dateTime with time",
                where=f"{at}.effectiveDateTime",
                expected="YYYY-MM-DDThh:mm:ss+hh:mm",
                got="a missing value" if eff is None else "another format",
                fix="set effectiveDateTime to the measurement time with its offset",
            )
        if rules.get("require_offset") and not m.group("tz"):
            raise SchemaError(
                "effectiveDateTime without UTC offset", where=f"{at}.effectiveDateTime",
                expected="a time with offset, e.g. 2024-05-01T08:30:00+02:00 or ...Z",
                got="a time without offset (FHIR requires one when a time is given)",
                fix="append the UTC offset of the site's local time (or Z for UTC)",
            )
        if code in panels:
            panel = panels[code]
            comps = res.get("component")
            if not isinstance(comps, list):
                raise SchemaError(f"{panel['name']} panel has no components",
                                  where=f"{at}.component",
                                  expected="components " + ", ".join(panel["components"]),
                                  got="none", fix="add one component per measurement")
            for ccode, vital in panel["components"].items():
                j = next((j for j, c in enumerate(comps) if isinstance(c, dict) and any(
                    cd.get("system") == rules["code_system"] and cd.get("code") == ccode
                    for cd in _codings(c.get("code")))), None)
                if j is None:
                    raise SchemaError(f"{panel['name']} panel lacks a component",
                                      where=f"{at}.component",
                                      expected=f"a component coded LOINC {ccode} ({vital})",
                                      got="none", fix="add the component")
                _check_quantity(comps[j].get("valueQuantity"), vital, vitals_rules[vital],
                                rules, f"{at}.component[{j}].valueQuantity")
                counts[vital] += 1
        else:
            vital = loinc[code]
            q = res.get("valueQuantity")
            if q is None and "dataAbsentReason" in res:
                absent += 1
                continue
            _check_quantity(q, vital, vitals_rules[vital], rules, f"{at}.valueQuantity")
            counts[vital] += 1
    order = list(vitals_rules)
    summary = {
        "bundle_type": doc["type"],
        "entries": len(entries),
        "subjects": len(subjects),
        "counts": {v: counts[v] for v in order if counts[v]},
        "absent_values": absent,
    }
    return summary, warnings


def _vocab(value: Any) -> str:
    """Show a coded field's value if it is a short code, else only its JSON type."""
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9\-]{1,32}", value):
        return f"'{value}'"
    return "none" if value is None else f"a JSON {type(value).__name__}"


def _codings(concept: Any, *, many: bool = False) -> list[dict[str, Any]]:
    """Return the codings of a CodeableConcept (or of a list of them), ignoring junk."""
    concepts = concept if many and isinstance(concept, list) else [concept]
    out = []
    for c in concepts:
        if isinstance(c, dict) and isinstance(c.get("coding"), list):
            out += [cd for cd in c["coding"] if isinstance(cd, dict)]
    return out


def _check_quantity(q: Any, vital: str, vrule: dict[str, Any], rules: dict[str, Any],
                    at: str) -> None:
    unit = vrule["unit"]["equals"]
    if not isinstance(q, dict):
        raise SchemaError(f"{vital} has no valueQuantity", where=at,
                          expected=f"a Quantity in {unit}", got="none",
                          fix="give the value as valueQuantity (or a dataAbsentReason)")
    value = q.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SchemaError(f"{vital} value is not a number", where=f"{at}.value",
                          expected="a JSON number", got="another JSON type",
                          fix="write the value as a JSON number")
    if q.get("system") != rules["unit_system"]:
        raise SchemaError(f"{vital} unit is not UCUM", where=f"{at}.system",
                          expected=f"'{rules['unit_system']}'", got="another or no system",
                          fix="code units with UCUM")
    if q.get("code") != unit:
        code = q.get("code")
        raise SchemaError(
            f"wrong unit for {vital}", where=f"{at}.code", expected=f"UCUM '{unit}'",
            got=f"'{code}'" if isinstance(code, str) and len(code) <= 16 else "another code",
            fix=f"convert the value to {unit}",
        )
    lo, hi = vrule["value"].get("min"), vrule["value"].get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise SchemaError(
            f"{vital} value out of plausible range", where=f"{at}.value",
            expected=f"a value in [{_fmt(lo)}, {_fmt(hi)}] {unit}",
            got="a value " + ("below the minimum" if lo is not None and value < lo
                              else "above the maximum"),
            fix="check the unit and the entry; drop or correct implausible values",
        )


_CHECKERS: dict[str, Callable[[Path, dict[str, Any], dict[str, Any]],
                              tuple[dict[str, Any], list[str]]]] = {
    "vcf": _check_vcf,
    "phenotype": _check_phenotype,
    "nifti": _check_nifti,
    "vitals": _check_vitals,
    "fhir": _check_fhir,
    "clinical": _check_clinical,
}
