"""Seeded paediatric oncology case table (the synthetic-education pilot's seed data)."""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from secured_bio._atomic import atomic_paths
from secured_bio.errors import ConfigError
from secured_bio.testing._common import check_int, check_seed, child_rng, json_text

__all__ = ["OncologyTable", "simulate_oncology", "ONCOLOGY_DIAGNOSES", "ONCOLOGY_COLUMNS"]

logger = logging.getLogger(__name__)

FORMAT_NAME = "secured_bio.demo_oncology"
FORMAT_VERSION = 1
_WHERE = "simulate_oncology"

ONCOLOGY_COLUMNS = (
    "patient_id", "age", "sex", "diagnosis", "stage", "diagnosis_date", "treatment_phase",
    "weight_kg", "height_cm", "neutrophils", "crp", "febrile_neutropenia", "sepsis",
    "length_of_stay",
)

# diagnosis: (share of cases, age model, stage probabilities I..IV or None = not staged).
# Shares and age peaks loosely follow childhood-cancer registries (leukaemia ~30 %, CNS
# tumours ~25 %; neuroblastoma and Wilms tumour in the first years; bone sarcoma in teens).
_DIAG: dict[str, tuple[float, tuple[str, float, float], tuple[float, ...] | None]] = {
    "ALL": (0.27, ("gamma", 2.5, 1.8), None),
    "AML": (0.05, ("uniform", 0.0, 17.9), None),
    "CNS tumour": (0.23, ("uniform", 0.5, 17.9), (0.30, 0.30, 0.25, 0.15)),
    "lymphoma": (0.12, ("normal", 13.0, 3.0), (0.15, 0.35, 0.30, 0.20)),
    "neuroblastoma": (0.08, ("gamma", 1.5, 1.2), (0.15, 0.20, 0.20, 0.45)),
    "Wilms tumour": (0.06, ("gamma", 3.0, 1.1), (0.40, 0.25, 0.25, 0.10)),
    "bone sarcoma": (0.09, ("normal", 14.0, 2.5), (0.10, 0.50, 0.20, 0.20)),
    "soft tissue sarcoma": (0.10, ("uniform", 0.0, 17.9), (0.25, 0.25, 0.30, 0.20)),
}
ONCOLOGY_DIAGNOSES = tuple(_DIAG)
"""Diagnosis categories of :func:`simulate_oncology`."""
_STAGES = ("I", "II", "III", "IV")
_PHASES = ("induction", "consolidation", "maintenance", "relapse")
_PHASE_P = np.array([0.35, 0.30, 0.28, 0.07])
_FIRST_DAY = date(2023, 1, 1)
_N_DAYS = 1096  # 2023-01-01 .. 2025-12-31


@dataclass(frozen=True)
class OncologyTable:
    """What :func:`simulate_oncology` wrote.

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
    seed
        The seed used.
    """

    path: Path
    meta_path: Path
    n_rows: int
    columns: tuple[str, ...]
    seed: int


def _ages(rng: np.random.Generator, model: tuple[str, float, float], n: int) -> np.ndarray:
    kind, a, b = model
    if kind == "gamma":
        x = rng.gamma(a, b, size=n)
    elif kind == "normal":
        x = rng.normal(a, b, size=n)
    else:
        x = rng.uniform(a, b, size=n)
    return np.clip(x, 0.0, 17.99)


# Median growth (CDC/WHO charts, rounded): age (years) -> height (cm), weight (kg).
_GROWTH_AGE = np.array([0, 1, 2, 5, 8, 10, 12, 15, 18])
_HEIGHT = {"F": np.array([49, 74, 86, 108, 127, 138, 151, 162, 164]),
           "M": np.array([50, 76, 88, 110, 128, 139, 150, 170, 176])}
_WEIGHT = {"F": np.array([3.3, 9.2, 12.0, 18.0, 25.0, 32.0, 41.0, 52.0, 56.0]),
           "M": np.array([3.5, 9.8, 12.5, 18.5, 25.5, 32.0, 40.0, 56.0, 65.0])}


def _growth(age: np.ndarray, sex: np.ndarray, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
    """Height (cm) and weight (kg) around median growth curves, with spread."""
    height = np.empty(age.size)
    weight = np.empty(age.size)
    for s in ("F", "M"):
        sel = sex == s
        height[sel] = np.interp(age[sel], _GROWTH_AGE, _HEIGHT[s])
        weight[sel] = np.interp(age[sel], _GROWTH_AGE, _WEIGHT[s])
    height = height * np.exp(rng.normal(0, 0.04, size=age.size))
    weight = weight * np.exp(rng.normal(0, 0.13, size=age.size))
    return np.round(height), np.round(weight, 1)


def simulate_oncology(
    path: str | os.PathLike[str],
    *,
    n_rows: int = 300,
    site: str = "site1",
    seed: int = 0,
) -> OncologyTable:
    """Simulate a paediatric oncology admissions table (children 0-17 years).

    Columns (:data:`ONCOLOGY_COLUMNS`): ``patient_id`` (``{site}-{nnnnn}``), ``age`` (int
    years), ``sex`` (``F``/``M``), ``diagnosis`` (:data:`ONCOLOGY_DIAGNOSES`), ``stage``
    (``I``-``IV`` for solid tumours and lymphomas, empty for leukaemias), ``diagnosis_date``
    (``YYYY-MM-DD``, 2023-2025), ``treatment_phase``, ``weight_kg`` and ``height_cm`` (growth
    curves), ``neutrophils`` (x10^9/L), ``crp`` (mg/L), ``febrile_neutropenia`` and ``sepsis``
    (``yes``/``no``) and ``length_of_stay`` (days).

    Planted structure: age depends on the diagnosis (neuroblastoma and Wilms tumour in the
    first years, bone sarcoma and lymphoma in teenagers), weight and height on age and sex,
    neutrophils are low during induction and in AML, febrile neutropenia follows low
    neutrophils, sepsis mostly follows febrile neutropenia and raises CRP and the stay.

    Parameters
    ----------
    path
        CSV file to write (its folder is created if missing); a JSON sidecar goes next to it.
    n_rows
        Number of rows (>= 1).
    site
        ID prefix (letters and digits).
    seed
        Seed (>= 0); the same seed gives byte-identical files.

    Returns
    -------
    OncologyTable
        Paths, row count and columns.

    Raises
    ------
    ConfigError
        If a parameter is out of range or ``path`` is a folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> t = simulate_oncology(pathlib.Path(tempfile.mkdtemp()) / "c.csv", n_rows=5)
    >>> t.n_rows, t.columns[:4]
    (5, ('patient_id', 'age', 'sex', 'diagnosis'))
    """
    n_rows = check_int("n_rows", n_rows, minimum=1, where=_WHERE)
    seed = check_seed(seed, where=_WHERE)
    if not isinstance(site, str) or not site.isalnum() or not site.isascii():
        raise ConfigError("site is not a valid site name", where=f"{_WHERE}(site=...)",
                          expected="letters and digits, e.g. 'site1'",
                          got=type(site).__name__ if not isinstance(site, str)
                          else f"{len(site)} characters")
    out = Path(path)
    if out.is_dir():
        raise ConfigError("path is a folder", where=f"{_WHERE}(path=...)",
                          expected="a CSV file path", got=f"existing folder {out}",
                          fix="pass a file name such as clinical.csv")
    rng = child_rng(seed, 60)
    names = list(_DIAG)
    share = np.array([_DIAG[d][0] for d in names])
    diag = rng.choice(len(names), size=n_rows, p=share / share.sum())
    age = np.empty(n_rows)
    stage = np.full(n_rows, "", dtype=object)
    for k, name in enumerate(names):
        sel = diag == k
        if not sel.any():
            continue
        age[sel] = _ages(rng, _DIAG[name][1], int(sel.sum()))
        probs = _DIAG[name][2]
        if probs is not None:
            stage[sel] = rng.choice(_STAGES, size=int(sel.sum()), p=np.array(probs))
    sex = np.where(rng.random(n_rows) < 0.45, "F", "M")  # childhood cancer: ~55 % boys
    height, weight = _growth(age, sex, rng)
    phase = rng.choice(len(_PHASES), size=n_rows, p=_PHASE_P)
    leuk = np.isin(diag, [names.index("ALL"), names.index("AML")])
    log_anc = (rng.normal(0.7, 0.6, size=n_rows) - 1.2 * (phase == 0) - 0.8 * leuk
               - 0.9 * (diag == names.index("AML")) - 0.4 * (phase == 3))
    anc = np.round(np.exp(log_anc), 1)
    p_fn = 1 / (1 + np.exp(-(-1.0 - 2.2 * log_anc)))
    fn = rng.random(n_rows) < p_fn
    p_sep = np.where(fn, 0.30, 0.03) * np.where(stage == "IV", 1.4, 1.0)
    sepsis = rng.random(n_rows) < np.minimum(p_sep, 0.9)
    crp = np.round(np.exp(rng.normal(1.5, 0.8, size=n_rows) + 1.3 * fn + 1.6 * sepsis))
    los = rng.negative_binomial(2, 2 / (2 + 4 + 6 * fn + 9 * sepsis + 5 * (phase == 0)))
    day = rng.integers(0, _N_DAYS, size=n_rows)

    width = max(5, len(str(n_rows)))
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "generator": "secured_bio.testing.simulate_oncology",
        "seed": seed,
        "parameters": {"n_rows": n_rows, "site": site},
        "columns": {
            "patient_id": "synthetic ID, site-prefixed",
            "age": "age at admission, whole years (0-17)",
            "sex": "F or M",
            "diagnosis": "cancer type: " + ", ".join(names),
            "stage": "I-IV for solid tumours and lymphomas; empty for leukaemias",
            "diagnosis_date": "YYYY-MM-DD",
            "treatment_phase": ", ".join(_PHASES),
            "weight_kg": "body weight, kg",
            "height_cm": "height, cm",
            "neutrophils": "absolute neutrophil count, 10^9/L",
            "crp": "C-reactive protein, mg/L",
            "febrile_neutropenia": "yes/no during the admission",
            "sepsis": "yes/no: septic episode during the admission",
            "length_of_stay": "days",
        },
    }
    meta_path = out.with_name(out.stem + ".json")
    with atomic_paths(out, meta_path) as (t_csv, t_meta):
        t_meta.write_text(json_text(meta), encoding="utf-8")
        with open(t_csv, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(ONCOLOGY_COLUMNS)
            for i in range(n_rows):
                w.writerow([
                    f"{site}-{i + 1:0{width}d}", int(age[i]), sex[i], names[diag[i]], stage[i],
                    (_FIRST_DAY + timedelta(days=int(day[i]))).isoformat(), _PHASES[phase[i]],
                    f"{weight[i]:.1f}", int(height[i]), f"{anc[i]:.1f}", int(crp[i]),
                    "yes" if fn[i] else "no", "yes" if sepsis[i] else "no", int(los[i]),
                ])
    logger.info("wrote a paediatric oncology table of %d rows", n_rows)
    return OncologyTable(path=out, meta_path=meta_path, n_rows=n_rows,
                         columns=ONCOLOGY_COLUMNS, seed=seed)
