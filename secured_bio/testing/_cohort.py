"""One entry point that writes the demo cohort of a built-in pilot (used by the CLI)."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secured_bio.errors import ConfigError, did_you_mean
from secured_bio.testing._clinical import ClinicalTable, simulate_clinical
from secured_bio.testing._common import as_dir, check_int, check_seed, child_seed, site_names
from secured_bio.testing._education import EducationCohort, simulate_education
from secured_bio.testing._genotypes import GenotypeCohort, simulate_genotypes
from secured_bio.testing._imaging import ImagingCohort, simulate_imaging
from secured_bio.testing._vitals import VitalsCohort, simulate_vitals

__all__ = ["ClinicalCohort", "simulate_clinical_sites", "simulate_cohort", "PILOT_SIMULATORS"]

_WHERE = "simulate_cohort"


@dataclass(frozen=True)
class ClinicalCohort:
    """What :func:`simulate_clinical_sites` wrote: one clinical table per site.

    Attributes
    ----------
    out_dir
        Output folder.
    sites
        Site names.
    tables
        One :class:`ClinicalTable` per site (``out_dir/site{i}/clinical.csv``).
    seed
        The seed used.
    """

    out_dir: Path
    sites: tuple[str, ...]
    tables: tuple[ClinicalTable, ...]
    seed: int


def simulate_clinical_sites(
    out_dir: str | os.PathLike[str],
    *,
    n_sites: int = 3,
    n_rows: int = 1000,
    seed: int = 0,
) -> ClinicalCohort:
    """Write one :func:`simulate_clinical` table per site, ``out_dir/site{i}/clinical.csv``.

    Each site's table uses its own seed derived from ``seed`` and the site number, and IDs
    prefixed by the site name, so IDs are unique across sites.

    Parameters
    ----------
    out_dir
        Output folder.
    n_sites
        Number of sites (>= 1).
    n_rows
        Rows per site (>= 1).
    seed
        Seed (>= 0).

    Returns
    -------
    ClinicalCohort
        The tables written.

    Raises
    ------
    ConfigError
        If a parameter is out of range.

    Examples
    --------
    >>> import tempfile
    >>> c = simulate_clinical_sites(tempfile.mkdtemp(), n_sites=2, n_rows=3)
    >>> [t.path.parent.name for t in c.tables]
    ['site1', 'site2']
    """
    where = "simulate_clinical_sites"
    n_sites = check_int("n_sites", n_sites, minimum=1, where=where)
    seed = check_seed(seed, where=where)
    out = as_dir(out_dir, where=where)
    sites = site_names(n_sites)
    tables = tuple(
        simulate_clinical(out / s / "clinical.csv", n_rows=n_rows, site=s,
                          seed=child_seed(seed, 50, i))
        for i, s in enumerate(sites)
    )
    return ClinicalCohort(out_dir=out, sites=sites, tables=tables, seed=seed)


PILOT_SIMULATORS: dict[str, Callable[..., Any]] = {
    "genomic_access": simulate_genotypes,
    "tumor_classification": simulate_imaging,
    "telemonitoring": simulate_vitals,
    "synthetic_education": simulate_education,
}
"""The simulator behind each built-in pilot's demo data."""


def simulate_cohort(
    out_dir: str | os.PathLike[str],
    *,
    pilot: str,
    n_sites: int = 3,
    seed: int = 0,
    **params: Any,
) -> GenotypeCohort | ImagingCohort | VitalsCohort | EducationCohort:
    """Write the demo cohort of a built-in pilot.

    ``genomic_access`` -> :func:`simulate_genotypes`; ``tumor_classification`` ->
    :func:`simulate_imaging` (fMRI unless ``modality='fus'``); ``telemonitoring`` ->
    :func:`simulate_vitals`; ``synthetic_education`` -> :func:`simulate_education`.

    Parameters
    ----------
    out_dir
        Output folder.
    pilot
        Pilot name (a key of :data:`PILOT_SIMULATORS`).
    n_sites
        Number of sites (>= 1).
    seed
        Seed (>= 0).
    **params
        Further keyword options of the pilot's simulator (e.g. ``samples_per_site``).

    Returns
    -------
    GenotypeCohort or ImagingCohort or VitalsCohort or EducationCohort
        What the simulator wrote.

    Raises
    ------
    ConfigError
        If the pilot or an option is unknown, or a value is out of range.

    Examples
    --------
    >>> import tempfile
    >>> c = simulate_cohort(tempfile.mkdtemp(), pilot="telemonitoring", n_sites=1,
    ...                     patients_per_site=2, hours=4)
    >>> type(c).__name__, c.sites
    ('VitalsCohort', ('site1',))
    """
    if pilot not in PILOT_SIMULATORS:
        raise ConfigError(
            "unknown pilot",
            where=f"{_WHERE}(pilot=...)",
            expected=" or ".join(repr(p) for p in PILOT_SIMULATORS),
            got=repr(pilot) if isinstance(pilot, str) else type(pilot).__name__,
            fix=did_you_mean(str(pilot), PILOT_SIMULATORS) or "choose a listed pilot",
        )
    func = PILOT_SIMULATORS[pilot]
    allowed = [
        name for name, p in inspect.signature(func).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("n_sites", "seed")
    ]
    for name in params:
        if name not in allowed:
            raise ConfigError(
                f"unknown option for pilot {pilot!r}",
                where=f"{_WHERE}({name}=...)",
                expected="one of " + ", ".join(allowed),
                got=repr(name),
                fix=did_you_mean(name, allowed) or f"see help({func.__name__})",
            )
    result: GenotypeCohort | ImagingCohort | VitalsCohort | EducationCohort = func(
        out_dir, n_sites=n_sites, seed=seed, **params
    )
    return result


#: Written at the root of a cohort folder by :func:`write_demo_cohort`.
COHORT_MANIFEST = "cohort.json"
COHORT_FORMAT = "secured_bio.demo_cohort"
COHORT_FORMAT_VERSION = 1


def write_demo_cohort(
    out_dir: str | os.PathLike[str],
    *,
    pilot: str,
    n_sites: int = 3,
    seed: int = 0,
    **params: Any,
) -> dict[str, Any]:
    """Write a pilot's demo cohort as a complete folder with a ``cohort.json`` manifest.

    Unlike :func:`simulate_cohort`, the folder appears only when complete and replaces an
    earlier cohort as a whole (no stale files of a bigger earlier run remain); a folder of
    other files is never replaced.

    Returns
    -------
    dict
        The manifest: format, pilot, sites, seed and simulator parameters.

    Raises
    ------
    ConfigError
        If the pilot or an option is unknown, or ``out_dir`` holds unrelated files.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "tm"
    >>> m = write_demo_cohort(d, pilot="telemonitoring", n_sites=1, patients_per_site=1, hours=2)
    >>> m["sites"]
    ['site1']
    >>> (d / "cohort.json").is_file()
    True
    """
    import json

    from secured_bio._atomic import atomic_dir, atomic_write, check_replaceable_dir

    check_replaceable_dir(out_dir, marker=COHORT_MANIFEST)
    with atomic_dir(out_dir) as tmp:
        cohort = simulate_cohort(tmp, pilot=pilot, n_sites=n_sites, seed=seed, **params)
        manifest = {
            "format": COHORT_FORMAT,
            "format_version": COHORT_FORMAT_VERSION,
            "pilot": pilot,
            "sites": list(cohort.sites),
            "seed": seed,
            "params": params,
        }
        with atomic_write(tmp / COHORT_MANIFEST) as fh:
            json.dump(manifest, fh, indent=2)
            fh.write("\n")
    return manifest
