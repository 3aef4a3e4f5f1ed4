"""Seeded clinical table with quasi-identifiers and a sensitive attribute (anonymization demos)."""

from __future__ import annotations

import csv
import logging
import os
import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from secured_bio._atomic import atomic_paths
from secured_bio.errors import ConfigError
from secured_bio.testing._common import check_int, check_seed, child_rng, json_text

__all__ = ["ClinicalTable", "simulate_clinical", "AGE_BANDS", "DIAGNOSES"]

logger = logging.getLogger(__name__)

FORMAT_NAME = "secured_bio.demo_clinical"
FORMAT_VERSION = 1
_WHERE = "simulate_clinical"
COLUMNS = ("patient_id", "age", "sex", "postcode", "admission_date", "ethnicity", "diagnosis",
           "length_of_stay")
QUASI_IDENTIFIERS = ("age", "sex", "postcode", "admission_date")
SENSITIVE = ("diagnosis",)

AGE_BANDS = ("0-14", "15-44", "45-64", "65+")
"""Age bands (years) on which the diagnosis distribution depends."""
_BAND_EDGES = np.array([15, 45, 65])
_BAND_WEIGHTS = np.array([0.10, 0.30, 0.25, 0.35])  # share of admissions per band
_BAND_RANGES = ((0, 14), (15, 44), (45, 64), (65, 95))

DIAGNOSES = ("asthma", "appendicitis", "pneumonia", "fracture", "pregnancy_complication",
             "type2_diabetes", "heart_failure", "copd", "stroke", "depression")
"""Diagnosis categories (the sensitive attribute)."""
# P(diagnosis | age band), rows = AGE_BANDS, columns = DIAGNOSES; loosely shaped on hospital
# admission statistics (childhood asthma, obstetric admissions at 15-44, cardiorespiratory
# disease after 65).  Sex modifiers are applied in _diagnosis_probs.
_DIAG_BY_BAND = np.array([
    [0.30, 0.20, 0.20, 0.20, 0.00, 0.00, 0.00, 0.00, 0.00, 0.10],
    [0.08, 0.15, 0.07, 0.20, 0.25, 0.05, 0.01, 0.01, 0.02, 0.16],
    [0.05, 0.05, 0.10, 0.12, 0.00, 0.20, 0.12, 0.12, 0.10, 0.14],
    [0.03, 0.02, 0.18, 0.17, 0.00, 0.12, 0.22, 0.12, 0.12, 0.02],
])
_MEAN_LOS = np.array([2.0, 3.0, 6.0, 7.0, 3.0, 5.0, 8.0, 7.0, 12.0, 10.0])  # days

# Postcodes: a few cities with many codes and some small rural ones, so that some
# (postcode, age, sex) combinations are rare.  Leading zeros are significant ('06000').
_REGIONS: tuple[tuple[tuple[str, ...], float], ...] = (
    (tuple(f"750{k:02d}" for k in range(1, 21)), 0.35),  # Paris
    (tuple(f"6900{k}" for k in range(1, 10)), 0.20),  # Lyon
    (tuple(f"130{k:02d}" for k in range(1, 17)), 0.20),  # Marseille
    (("06000", "06100", "06200", "06300"), 0.164),  # Nice
    (("48000",), 0.004), (("23000",), 0.004), (("15000",), 0.004), (("04000",), 0.004),  # rural
)
_ETHNICITY = ("White", "Black", "Asian", "Mixed", "Other", "Not stated")
_ETHNICITY_P = np.array([0.70, 0.08, 0.08, 0.04, 0.04, 0.06])
_FIRST_DAY = date(2024, 1, 1)
_N_DAYS = 731  # 2024-01-01 .. 2025-12-31
_SITE_RE = re.compile(r"^[A-Za-z0-9]+$")


@dataclass(frozen=True)
class ClinicalTable:
    """What :func:`simulate_clinical` wrote.

    Attributes
    ----------
    path
        The CSV file.
    meta_path
        Its JSON sidecar (format name/version, column meanings, seed).
    n_rows
        Number of data rows.
    columns
        Column names, in file order.
    quasi_identifiers
        Columns an attacker could link to other data (age, sex, postcode, admission_date).
    sensitive
        Sensitive attribute columns (diagnosis).
    seed
        The seed used.
    """

    path: Path
    meta_path: Path
    n_rows: int
    columns: tuple[str, ...]
    quasi_identifiers: tuple[str, ...]
    sensitive: tuple[str, ...]
    seed: int


def simulate_clinical(
    path: str | os.PathLike[str],
    *,
    n_rows: int = 1000,
    site: str = "site1",
    seed: int = 0,
) -> ClinicalTable:
    """Simulate a hospital admissions table for anonymization and synthetic-data demos.

    Columns: ``patient_id`` (``{site}_{nnnnnn}``), ``age`` (int years, 0-95), ``sex``
    (``F``/``M``), ``postcode`` (5-digit string from a few cities and rare rural areas),
    ``admission_date`` (``YYYY-MM-DD`` in 2024-2025), ``ethnicity`` (categorical),
    ``diagnosis`` (sensitive; depends on age band and sex) and ``length_of_stay`` (int days,
    negative binomial with a diagnosis-specific mean, longer after 65).

    Planted structure: the diagnosis distribution differs strongly between :data:`AGE_BANDS`
    (pregnancy complications only in women aged 15-44, heart failure mostly after 65...);
    the quasi-identifiers include exact ages and dates, so the raw table has many sample
    uniques (it is not k-anonymous for any k > 1).

    A JSON sidecar ``<stem>.json`` next to the CSV records the format name/version, columns,
    quasi-identifiers and sensitive attributes; the CSV appears last.

    Parameters
    ----------
    path
        CSV file to write (its folder is created if missing).
    n_rows
        Number of rows (>= 1).
    site
        Site name used as the ID prefix (letters and digits).
    seed
        Seed (>= 0); the same seed gives byte-identical files.

    Returns
    -------
    ClinicalTable
        Paths, row count, quasi-identifiers and sensitive columns.

    Raises
    ------
    ConfigError
        If a parameter is out of range or ``path`` is a folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> t = simulate_clinical(pathlib.Path(tempfile.mkdtemp()) / "c.csv", n_rows=5)
    >>> t.n_rows, t.quasi_identifiers, t.sensitive
    (5, ('age', 'sex', 'postcode', 'admission_date'), ('diagnosis',))
    """
    n_rows = check_int("n_rows", n_rows, minimum=1, where=_WHERE)
    seed = check_seed(seed, where=_WHERE)
    if not isinstance(site, str) or not _SITE_RE.match(site):
        raise ConfigError(
            "site is not a valid site name",
            where=f"{_WHERE}(site=...)",
            expected="letters and digits, e.g. 'site1'",
            got=type(site).__name__ if not isinstance(site, str) else f"{len(site)} characters",
        )
    out = Path(path)
    if out.is_dir():
        raise ConfigError(
            "path is a folder",
            where=f"{_WHERE}(path=...)",
            expected="a CSV file path",
            got=f"existing folder {out}",
            fix="pass a file name such as clinical.csv",
        )
    meta_path = out.with_name(out.stem + ".json")

    rng = child_rng(seed, 40)
    band = rng.choice(len(AGE_BANDS), size=n_rows, p=_BAND_WEIGHTS)
    lo = np.array([r[0] for r in _BAND_RANGES])[band]
    hi = np.array([r[1] for r in _BAND_RANGES])[band]
    age = rng.integers(lo, hi + 1)
    sex = np.where(rng.random(n_rows) < 0.52, "F", "M")
    region_p = np.array([w for _, w in _REGIONS])
    region = rng.choice(len(_REGIONS), size=n_rows, p=region_p / region_p.sum())
    postcode = [
        _REGIONS[r][0][int(rng.integers(len(_REGIONS[r][0])))] for r in region
    ]
    day = rng.integers(0, _N_DAYS, size=n_rows)
    ethnicity = rng.choice(len(_ETHNICITY), size=n_rows, p=_ETHNICITY_P)
    diagnosis = np.empty(n_rows, dtype=int)
    for b in range(len(AGE_BANDS)):
        for s in ("F", "M"):
            sel = (band == b) & (sex == s)
            if sel.any():
                diagnosis[sel] = rng.choice(len(DIAGNOSES), size=int(sel.sum()),
                                            p=_diagnosis_probs(b, s))
    mean_los = _MEAN_LOS[diagnosis] * (1 + 0.02 * np.maximum(age - 65, 0))
    los = rng.negative_binomial(2, 2 / (2 + mean_los))

    width = max(6, len(str(n_rows)))
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "generator": "secured_bio.testing.simulate_clinical",
        "seed": seed,
        "parameters": {"n_rows": n_rows, "site": site},
        "columns": {
            "patient_id": "synthetic ID, site-prefixed",
            "age": "int, years",
            "sex": "F or M",
            "postcode": "5-digit string (keep leading zeros)",
            "admission_date": "YYYY-MM-DD",
            "ethnicity": "categorical: " + ", ".join(_ETHNICITY),
            "diagnosis": "categorical (sensitive): " + ", ".join(DIAGNOSES),
            "length_of_stay": "int, days",
        },
        "quasi_identifiers": list(QUASI_IDENTIFIERS),
        "sensitive": list(SENSITIVE),
        "planted_signal": "diagnosis depends on age band " + "/".join(AGE_BANDS) + " and sex",
    }
    with atomic_paths(out, meta_path) as (tmp_csv, tmp_meta):
        with open(tmp_csv, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(COLUMNS)
            for k in range(n_rows):
                w.writerow([
                    f"{site}_{k + 1:0{width}d}",
                    int(age[k]),
                    sex[k],
                    postcode[k],
                    (_FIRST_DAY + timedelta(days=int(day[k]))).isoformat(),
                    _ETHNICITY[ethnicity[k]],
                    DIAGNOSES[diagnosis[k]],
                    int(los[k]),
                ])
        tmp_meta.write_text(json_text(meta), encoding="utf-8")
    logger.info("wrote a clinical table of %d rows", n_rows)
    return ClinicalTable(
        path=out,
        meta_path=meta_path,
        n_rows=n_rows,
        columns=COLUMNS,
        quasi_identifiers=QUASI_IDENTIFIERS,
        sensitive=SENSITIVE,
        seed=seed,
    )


def _diagnosis_probs(band: int, sex: str) -> np.ndarray:
    """P(diagnosis | age band, sex): the band row with sex modifiers, renormalised."""
    p = _DIAG_BY_BAND[band].copy()
    idx = {d: i for i, d in enumerate(DIAGNOSES)}
    if sex == "M":
        p[idx["pregnancy_complication"]] = 0.0
        p[idx["heart_failure"]] *= 1.3
    else:
        p[idx["depression"]] *= 1.3
        if band == 3:  # osteoporotic fractures in older women
            p[idx["fracture"]] *= 1.3
    return p / p.sum()
