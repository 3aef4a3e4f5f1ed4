"""Demo sources of the synthetic-education pilot: case table, vital signs and images per site."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from secured_bio.testing._common import as_dir, check_int, check_seed, child_seed, site_names
from secured_bio.testing._imaging import ImagingCohort, simulate_imaging
from secured_bio.testing._oncology import OncologyTable, simulate_oncology
from secured_bio.testing._vitals import VitalsCohort, simulate_vitals

__all__ = ["EducationCohort", "simulate_education"]

_WHERE = "simulate_education"


@dataclass(frozen=True)
class EducationCohort:
    """What :func:`simulate_education` wrote.

    Attributes
    ----------
    out_dir
        Output folder.
    sites
        Site names.
    tables
        One :class:`~secured_bio.testing._oncology.OncologyTable` per site
        (``out_dir/site{i}/clinical.csv``).
    vitals
        The vital-signs cohort (``out_dir/site{i}/vitals.csv``, ``patients.csv``,
        ``events.csv``, ``vitals.fhir.json``).
    imaging
        The imaging cohort (``out_dir/imaging``).
    seed
        The seed used.
    """

    out_dir: Path
    sites: tuple[str, ...]
    tables: tuple[OncologyTable, ...]
    vitals: VitalsCohort
    imaging: ImagingCohort
    seed: int


def simulate_education(
    out_dir: str | os.PathLike[str],
    *,
    n_sites: int = 3,
    n_rows: int = 300,
    patients_per_site: int = 20,
    hours: int = 48,
    imaging_subjects_per_site: int = 12,
    seed: int = 0,
) -> EducationCohort:
    """Write the real-data stand-ins that the education pilot's generators learn from.

    Per site ``out_dir/site{i}/``: a paediatric oncology case table ``clinical.csv``
    (:func:`~secured_bio.testing._oncology.simulate_oncology`) and the ward's vital signs
    (:func:`simulate_vitals`: ``vitals.csv``, ``vitals.fhir.json``, ``patients.csv``,
    ``events.csv``); and an imaging cohort ``out_dir/imaging`` (:func:`simulate_imaging`,
    low- vs high-grade tumour labels).  Each part has its own seed derived from ``seed``.

    Parameters
    ----------
    out_dir
        Output folder.
    n_sites
        Number of sites (>= 1).
    n_rows
        Rows of each site's case table (>= 1).
    patients_per_site
        Patients with vital signs per site (>= 1).
    hours
        Length of each vital-signs record (>= 1).
    imaging_subjects_per_site
        Imaging participants per site (>= 2).
    seed
        Seed (>= 0); the same seed gives byte-identical files.

    Returns
    -------
    EducationCohort
        What was written.

    Raises
    ------
    ConfigError
        If a parameter is out of range.
    """
    n_sites = check_int("n_sites", n_sites, minimum=1, where=_WHERE)
    check_int("imaging_subjects_per_site", imaging_subjects_per_site, minimum=2, where=_WHERE)
    seed = check_seed(seed, where=_WHERE)
    out = as_dir(out_dir, where=_WHERE)
    sites = site_names(n_sites)
    tables = tuple(
        simulate_oncology(out / s / "clinical.csv", n_rows=n_rows, site=s,
                          seed=child_seed(seed, 70, i))
        for i, s in enumerate(sites)
    )
    vitals = simulate_vitals(out, n_sites=n_sites, patients_per_site=patients_per_site,
                             hours=hours, seed=child_seed(seed, 71))
    imaging = simulate_imaging(out / "imaging", n_sites=n_sites,
                               subjects_per_site=imaging_subjects_per_site,
                               seed=child_seed(seed, 72))
    return EducationCohort(out_dir=out, sites=sites, tables=tables, vitals=vitals,
                           imaging=imaging, seed=seed)
