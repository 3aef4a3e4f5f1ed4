"""The YAML spec of a set of teaching cases: sources, generators, and the cases wanted.

A spec names the real data the generators learn from (paths relative to the spec file), the
generator of each part (case table, vital signs, images) and the groups of cases, each with
an exact count and conditions on the case table (``age: 5..10``, ``stage: III``)::

    title: Paediatric oncology - sepsis on the ward
    seed: 0
    sources: {table: "site*/clinical.csv", vitals: ".", images: imaging}
    table: {method: copula, drop: [patient_id], deterioration_column: sepsis}
    vitals: {hours: 48}
    images: {epochs: 20}
    cases:
      - title: Septic child with a stage III brain tumour
        count: 3
        where: {age: "5..10", diagnosis: CNS tumour, stage: III, sepsis: "yes"}
        image_label: 1
      - title: Toddler in ALL induction
        count: 2
        where: {diagnosis: ALL, treatment_phase: induction, age: "1..4"}

``secured-bio education example-spec`` prints a complete example with every key.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secured_bio.config import load_yaml, validate_config
from secured_bio.errors import ConfigError, InputFileNotFoundError

__all__ = ["SPEC_SCHEMA", "EducationSpec", "load_spec", "parse_spec", "example_spec",
           "with_overrides"]

_NULL_STR: dict[str, Any] = {"type": ["string", "null"]}
_VALUE = {"type": ["string", "number", "boolean"]}

#: JSON Schema of a case spec (defaults are filled in by :func:`parse_spec`).
SPEC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["cases"],
    "properties": {
        "title": {"type": "string", "default": "Synthetic teaching cases"},
        "seed": {"type": "integer", "minimum": 0, "default": 0},
        "sources": {
            "type": "object", "additionalProperties": False, "default": {},
            "description": "real data the generators learn from, relative to the spec file",
            "properties": {
                "table": {"type": ["string", "array"], "items": {"type": "string"},
                          "default": "site*/clinical.csv",
                          "description": "CSV file(s) or glob pattern(s) of the case table"},
                "vitals": {**_NULL_STR, "default": ".",
                           "description": "folder with vitals.csv/patients.csv/events.csv, "
                                          "or a cohort of site*/ folders; null: no vitals "
                                          "(left out: used when the folder has vitals)"},
                "images": {**_NULL_STR, "default": "imaging",
                           "description": "imaging cohort or NIfTI folder; null: no images "
                                          "(left out: used when the folder exists)"},
            },
        },
        "table": {
            "type": "object", "additionalProperties": False, "default": {},
            "properties": {
                "method": {"enum": ["copula", "tvae", "mst"], "default": "copula",
                           "description": "table generator (mst is differentially private)"},
                "epsilon": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": None,
                            "description": "privacy budget of method mst (> 0)"},
                "delta": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": None},
                "drop": {"type": "array", "items": {"type": "string"},
                         "default": ["patient_id"],
                         "description": "columns left out (identifiers)"},
                "holdout_fraction": {"type": "number", "minimum": 0.05, "maximum": 0.5,
                                     "default": 0.2,
                                     "description": "real rows kept out of the fit, as the "
                                                    "membership attack's non-members"},
                "target": {**_NULL_STR, "default": None,
                           "description": "class column of the utility figures"},
                "age_column": {**_NULL_STR, "default": "age",
                               "description": "age in years: vitals follow the case's age"},
                "sex_column": {**_NULL_STR, "default": "sex"},
                "deterioration_column": {
                    **_NULL_STR, "default": None,
                    "description": "yes/no column: a 'yes' case gets a deterioration episode "
                                   "in its vital signs"},
            },
        },
        "vitals": {
            "type": "object", "additionalProperties": False, "default": {},
            "properties": {
                "hours": {"type": "integer", "minimum": 1, "maximum": 720, "default": 48},
                "interval_minutes": {"type": ["integer", "null"], "minimum": 1,
                                     "default": None,
                                     "description": "default: the real data's interval"},
                "holdout_fraction": {"type": "number", "minimum": 0.1, "maximum": 0.5,
                                     "default": 0.3,
                                     "description": "real patients kept out of the fit, as "
                                                    "the membership attack's non-members"},
                "epsilon": {"type": ["number", "null"], "exclusiveMinimum": 0,
                            "default": None,
                            "description": "fit the vital-sign generator with (epsilon, "
                                           "delta)-differential privacy, patient-level "
                                           "(secured_bio.telemetry.synthetic_dp); null: "
                                           "exact aggregates, not differentially private"},
                "delta": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                          "default": 1e-6,
                          "description": "delta of the vitals DP guarantee (with epsilon)"},
            },
        },
        "images": {
            "type": "object", "additionalProperties": False, "default": {},
            "properties": {
                "epochs": {"type": "integer", "minimum": 1, "default": 20},
                "size": {"type": "integer", "minimum": 8, "maximum": 128, "default": 16},
                "slices": {"type": "integer", "minimum": 1, "default": 3},
                "conditional": {"type": "boolean", "default": True,
                                "description": "class-conditional model (needs labels)"},
                "timesteps": {"type": "integer", "minimum": 1, "default": 50},
                "device": {"enum": ["auto", "cpu", "cuda"], "default": "auto"},
                "label_names": {"type": "object", "additionalProperties": {"type": "string"},
                                "default": {"0": "low-grade tumour", "1": "high-grade tumour"}},
            },
        },
        "cases": {
            "type": "array", "minItems": 1,
            "items": {
                "type": "object", "additionalProperties": False, "required": ["count"],
                "properties": {
                    "title": {"type": "string"},
                    "count": {"type": "integer", "minimum": 1, "maximum": 10000},
                    "where": {"type": "object", "additionalProperties": _VALUE, "default": {},
                              "description": "column: value or LOW..HIGH (exact)"},
                    "deterioration": {"type": ["boolean", "null"], "default": None,
                                      "description": "force a vital-sign episode (or none)"},
                    "image": {"type": "boolean", "default": True,
                              "description": "give these cases a generated image"},
                    "image_label": {"type": ["integer", "null"], "default": None,
                                    "description": "image class of these cases"},
                },
            },
        },
    },
}


@dataclass(frozen=True)
class EducationSpec:
    """A validated case spec with paths resolved.

    Attributes
    ----------
    raw
        The spec with defaults filled in (what is recorded in ``cases.json``).
    base
        Folder that relative source paths start from.
    table_files
        The real case-table CSV files.
    vitals_dir, images_dir
        Real vital-sign and image sources, or None.
    """

    raw: dict[str, Any]
    base: Path
    table_files: tuple[Path, ...]
    vitals_dir: Path | None
    images_dir: Path | None

    @property
    def n_cases(self) -> int:
        """Total number of cases asked for."""
        return sum(int(g["count"]) for g in self.raw["cases"])


def _resolve_table(patterns: str | list[str], base: Path, where: str) -> tuple[Path, ...]:
    pats = [patterns] if isinstance(patterns, str) else list(patterns)
    files: list[Path] = []
    for pat in pats:
        full = pat if os.path.isabs(pat) else str(base / pat)
        found = sorted(Path(p) for p in glob.glob(full, recursive=True) if Path(p).is_file())
        if not found:
            raise InputFileNotFoundError(
                "no case table matches the source pattern", where=f"{where}: sources/table",
                expected="one or more CSV files", got=f"no file matches {full}",
                fix="fix sources.table (paths are relative to the spec file)")
        files += found
    return tuple(dict.fromkeys(files))


def _resolve_dir(value: str | None, base: Path, key: str, where: str) -> Path | None:
    if value is None:
        return None
    p = Path(value) if os.path.isabs(value) else base / value
    if not p.is_dir():
        raise InputFileNotFoundError(
            f"{key} source folder not found", where=f"{where}: sources/{key}", got=str(p),
            fix=f"fix sources.{key} (relative to the spec file) or set it to null")
    return p


def parse_spec(spec: dict[str, Any], *, base: str | os.PathLike[str] = ".",
               where: str = "spec") -> EducationSpec:
    """Validate a spec mapping, fill its defaults and resolve its source paths.

    Raises
    ------
    ConfigError
        If a key is unknown or a value is invalid (the key path is named).
    InputFileNotFoundError
        If a source file or folder does not exist.
    """
    raw = validate_config(spec, SPEC_SCHEMA, where=where)
    for i, group in enumerate(raw["cases"]):
        raw["cases"][i] = {"title": f"Case group {i + 1}", "where": {}, "deterioration": None,
                           "image": True, "image_label": None, **group}
    t = raw["table"]
    if t["method"] == "mst" and t["epsilon"] is None:
        raise ConfigError("the differentially private table generator needs a budget",
                          where=f"{where}: table/epsilon", expected="a number > 0",
                          got="null", fix="set table.epsilon (e.g. 1.0) or use method copula")
    if t["method"] != "mst" and t["epsilon"] is not None:
        raise ConfigError("epsilon applies to method mst only", where=f"{where}: table",
                          expected="method: mst with epsilon", got=f"method: {t['method']}",
                          fix="set method: mst, or remove epsilon")
    b = Path(base)
    src = raw["sources"]
    given = set((spec.get("sources") or {}) if isinstance(spec, dict) else ())
    # A source left at its default is optional: without data there, that part is skipped
    # (and the manifest says so); a source named in the spec must exist.
    if "vitals" not in given and not _has_vitals(b / str(src["vitals"])):
        src["vitals"] = None
    if "images" not in given and not (b / str(src["images"])).is_dir():
        src["images"] = None
    return EducationSpec(
        raw=raw, base=b,
        table_files=_resolve_table(src["table"], b, where),
        vitals_dir=_resolve_dir(src["vitals"], b, "vitals", where),
        images_dir=_resolve_dir(src["images"], b, "images", where),
    )


def _has_vitals(folder: Path) -> bool:
    return (folder / "vitals.csv").is_file() or any(folder.glob("*/vitals.csv"))


def with_overrides(raw: dict[str, Any], *, method: str | None = None,
                   epsilon: float | None = None, image_epochs: int | None = None,
                   vitals_epsilon: float | None = None) -> dict[str, Any]:
    """Return a copy of a spec mapping with table method/epsilon, epochs, vitals epsilon set."""
    import copy

    out = copy.deepcopy(raw)
    if method is not None:
        out.setdefault("table", {})["method"] = method
    if epsilon is not None:
        out.setdefault("table", {})["epsilon"] = float(epsilon)
    if image_epochs is not None:
        out.setdefault("images", {})["epochs"] = int(image_epochs)
    if vitals_epsilon is not None:
        out.setdefault("vitals", {})["epsilon"] = float(vitals_epsilon)
    return out


def load_spec(path: str | os.PathLike[str], *, sources: str | os.PathLike[str] | None = None,
              method: str | None = None, epsilon: float | None = None,
              image_epochs: int | None = None,
              vitals_epsilon: float | None = None) -> EducationSpec:
    """Read and validate a YAML case spec, with optional overrides (see :func:`with_overrides`).

    Relative source paths start at ``sources`` when given, else at the spec's folder.

    Raises
    ------
    InputFileNotFoundError, ConfigError
        See :func:`parse_spec` (and if the file is missing or not YAML).
    """
    p = Path(path)
    base = Path(sources) if sources is not None else p.parent
    if not base.is_dir():
        raise InputFileNotFoundError("sources folder not found", where=str(base),
                                     fix="pass an existing folder with --sources")
    raw = with_overrides(load_yaml(p, what="case spec"), method=method, epsilon=epsilon,
                         image_epochs=image_epochs, vitals_epsilon=vitals_epsilon)
    return parse_spec(raw, base=base, where=str(p))


def example_spec() -> str:
    """Return a complete example spec (for ``secured-bio demo synthetic_education``)."""
    return """\
# Teaching cases generated by `secured-bio education cases --spec THIS.yaml --out DIR`.
# Source paths are relative to this file; here: a folder made by
#   secured-bio demo synthetic_education --out demo   (put this file inside demo/).
title: Paediatric oncology on the ward
seed: 0
sources:
  table: "site*/clinical.csv"     # real case table(s), pooled
  vitals: "."                      # site*/vitals.csv + patients.csv + events.csv
  images: imaging                  # imaging cohort (participants.tsv labels)
table:
  method: copula                   # copula | tvae | mst (differentially private)
  epsilon: null                    # mst only, e.g. 1.0
  drop: [patient_id]
  holdout_fraction: 0.2            # real rows kept out of the fit for the privacy audit
  target: sepsis                   # utility: train on synthetic, test on real
  age_column: age
  sex_column: sex
  deterioration_column: sepsis     # "yes" -> the vitals carry a deterioration episode
vitals:
  hours: 48
  epsilon: null                    # e.g. 1.0: differentially private vitals generator
images:
  epochs: 20
  label_names: {"0": low-grade tumour, "1": high-grade tumour}
cases:
  - title: Septic child with a stage III brain tumour
    count: 3
    where: {age: "5..10", diagnosis: CNS tumour, stage: III, sepsis: "yes"}
    image_label: 1                 # high-grade tumour image
  - title: Toddler with ALL in induction
    count: 2
    where: {diagnosis: ALL, treatment_phase: induction, age: "1..4", sepsis: "no"}
    image: false                   # no brain image for a leukaemia case
  - title: Teenager with a low-stage brain tumour
    count: 2
    where: {diagnosis: CNS tumour, stage: I, age: "13..17"}
    image_label: 0
"""
