"""Shared run function of pilots whose analysis is not built yet: demo cohort + validation.

A pilot at status ``demo-data-only`` runs this: it writes its demo cohort (or takes an
existing cohort folder via the ``data`` config key), checks every input file against its
data spec, and reports what it found.  It computes no analysis result: none is claimed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from secured_bio._atomic import atomic_write
from secured_bio._progress import track
from secured_bio.errors import InputFileNotFoundError, SchemaError

__all__ = [
    "InputRule", "cohort_sites", "demo_data_run", "prepare_cohort", "validate_inputs",
]

log = logging.getLogger(__name__)

#: ``(kind, glob pattern relative to the cohort folder, validator options)``; string
#: options may use ``{data}`` for the cohort folder, e.g. ``{"atlas": "{data}/atlas.nii.gz"}``.
InputRule = tuple[str, str, Mapping[str, Any]]


def demo_data_run(
    pilot: str, out_dir: Path, config: Mapping[str, Any], inputs: Sequence[InputRule]
) -> dict[str, Any]:
    """Make (or take) a pilot's cohort and validate every input file against its spec.

    Parameters
    ----------
    pilot
        Pilot name (selects the simulator of :func:`secured_bio.testing.simulate_cohort`).
    out_dir
        Run folder; the simulated cohort goes to ``out_dir/demo``.
    config
        Validated pilot config with ``sites``, ``seed``, ``demo`` (simulator parameters)
        and ``data`` (an existing cohort folder, or None to simulate).
    inputs
        Which files to validate as which kind.

    Returns
    -------
    dict
        ``{"data": ..., "inputs": {kind: n_files}, "validation": {...}}`` for metrics.json.

    Raises
    ------
    InputFileNotFoundError
        If the cohort folder is missing or a rule matches no file.
    SchemaError
        If an input violates its spec (raised by :func:`secured_bio.specs.validate`).
    """
    data, source = prepare_cohort(pilot, out_dir, config)
    return validate_inputs(pilot, data, source, out_dir, inputs)


def prepare_cohort(pilot: str, out_dir: Path, config: Mapping[str, Any]) -> tuple[Path, str]:
    """Return ``(cohort folder, "given"|"simulated")``: ``config['data']`` or a new demo cohort.

    Raises
    ------
    InputFileNotFoundError
        If ``config['data']`` names a folder that does not exist.
    """
    from secured_bio.testing import write_demo_cohort

    if config.get("data"):
        data = Path(config["data"])
        if not data.is_dir():
            raise InputFileNotFoundError(
                "cohort folder not found", where=str(data),
                fix=f"make one with 'secured-bio demo {pilot} --out {data}'",
            )
        return data, "given"
    data = out_dir / "demo"
    write_demo_cohort(
        data, pilot=pilot, n_sites=int(config["sites"]), seed=int(config["seed"]),
        **dict(config.get("demo") or {}),
    )
    return data, "simulated"


def cohort_sites(data: Path) -> list[str] | None:
    """Site names from the cohort's ``cohort.json`` manifest, or None without one."""
    from secured_bio.testing import COHORT_MANIFEST

    manifest = data / COHORT_MANIFEST
    if not manifest.is_file():
        return None
    sites = json.loads(manifest.read_text(encoding="utf-8")).get("sites")
    return [str(s) for s in sites] if isinstance(sites, list) else None


def validate_inputs(
    pilot: str, data: Path, source: str, out_dir: Path, inputs: Sequence[InputRule]
) -> dict[str, Any]:
    """Validate the cohort's input files; write ``out_dir/validation.json``; return metrics.

    Raises
    ------
    InputFileNotFoundError
        If a rule matches no file.
    SchemaError
        If an input violates its spec.
    """
    from secured_bio.specs import validate

    jobs: list[tuple[str, Path, dict[str, Any]]] = []
    for kind, pattern, options in inputs:
        matches = sorted(data.glob(pattern))
        if not matches:
            raise InputFileNotFoundError(
                f"no {kind} input found", where=f"{data}/{pattern}",
                expected=f"at least one file matching {pattern}",
                fix="check the cohort folder layout (see 'secured-bio demo --help')",
            )
        opts = {k: (Path(v.format(data=data)) if isinstance(v, str) else v)
                for k, v in options.items()}
        jobs += [(kind, p, opts) for p in matches]
    reports = []
    counts: dict[str, int] = {}
    for kind, path, opts in track(jobs, f"{pilot}: validating inputs", total=len(jobs)):
        try:
            rep = validate(kind, path, **opts)
        except SchemaError as e:
            e.add_note(f"while validating the {pilot} cohort in {data}")
            raise
        d = rep.to_dict()
        d["path"] = path.relative_to(data).as_posix()
        reports.append(d)
        counts[kind] = counts.get(kind, 0) + 1
    with atomic_write(out_dir / "validation.json") as fh:
        json.dump(reports, fh, indent=2, default=str)
    log.info("%s: %d input files validated", pilot, len(reports))
    sites = cohort_sites(data)
    return {
        "data": {"source": source, "folder": "demo" if source == "simulated" else str(data),
                 "sites": len(sites) if sites is not None else None},
        "inputs": counts,
        "validation": {"files": len(reports), "all_ok": all(r["ok"] for r in reports),
                       "warnings": sum(len(r["warnings"]) for r in reports),
                       "report": "validation.json"},
    }
