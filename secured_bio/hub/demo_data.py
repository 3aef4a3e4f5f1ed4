"""Demo data of the hub: three site folders, each holding its share of the pilots' cohorts.

:func:`write_hub_demo_data` writes ``site1/``, ``site2/``, ``site3/`` (each with a
``datasets.yaml`` that a site agent discovers) and, beside them, ``ids.txt``: every
participant, patient and sample ID of the cohorts, so a test can check that none of them
reached the hub.  Every site folder holds only its own rows.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from secured_bio.errors import ConfigError

__all__ = ["DEMO_MARKER", "DEMO_SITES", "write_hub_demo_data"]

#: Written at the root of the demo folder (marks a folder that may be replaced).
DEMO_MARKER = "hub_demo.json"
DEMO_FORMAT = "secured_bio.hub_demo"
DEMO_FORMAT_VERSION = 1
DEMO_SITES = ("site1", "site2", "site3")

#: Cohort sizes: small (a 3-site secure GWAS in well under a minute on 2 cores) and full.
_SIZES: dict[bool, dict[str, dict[str, Any]]] = {
    True: {
        "genomic_access": {"samples_per_site": 120, "n_variants": 600},
        "telemonitoring": {"patients_per_site": 8, "hours": 24},
        "synthetic_education": {"n_rows": 150, "patients_per_site": 2, "hours": 4,
                                "imaging_subjects_per_site": 2},
        "tumor_classification": {"subjects_per_site": 4},
    },
    False: {
        "genomic_access": {"samples_per_site": 400, "n_variants": 2000},
        "telemonitoring": {"patients_per_site": 20, "hours": 48},
        "synthetic_education": {"n_rows": 300, "patients_per_site": 2, "hours": 4,
                                "imaging_subjects_per_site": 2},
        "tumor_classification": {"subjects_per_site": 12},
    },
}

_CONTACT = "data-office@{site}.example.org"


def write_hub_demo_data(out: str | os.PathLike[str], *, seed: int = 0,
                        small: bool = True) -> dict[str, Path]:
    """Write three demo site folders for the hub and the list of every ID they hold.

    Each site gets: ``genomics/`` (its VCF with index and its own rows of ``pheno.tsv`` and
    ``covar.tsv``; pilot genomic_access), ``vitals/`` (telemonitoring), ``clinical/`` (the
    paediatric oncology case table of synthetic_education) and ``imaging/`` (fMRI series,
    its rows of ``participants.tsv`` and the atlas; tumor_classification), described by a
    ``datasets.yaml`` (see :mod:`secured_bio.hub.agent.discover`).

    Parameters
    ----------
    out
        Output folder: new, empty, or an earlier demo folder (replaced as a whole).
    seed
        Seed of the cohorts (>= 0).
    small
        Small cohorts (a few hundred samples, 600 variants) for tests and quick demos.

    Returns
    -------
    dict
        ``site1``, ``site2``, ``site3`` -> site folders, and ``ids`` -> ``out/ids.txt``.

    Raises
    ------
    ConfigError
        If ``out`` holds unrelated files, or ``seed`` is invalid.

    Examples
    --------
    >>> import tempfile
    >>> paths = write_hub_demo_data(Path(tempfile.mkdtemp()) / "hub_demo")
    >>> sorted(paths)
    ['ids', 'site1', 'site2', 'site3']
    >>> (paths["site1"] / "datasets.yaml").is_file()
    True
    """
    from secured_bio._atomic import atomic_dir, atomic_write, check_replaceable_dir
    from secured_bio.testing import write_demo_cohort

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError("invalid seed", where="write_hub_demo_data(seed=...)",
                          expected="an integer >= 0", got=repr(seed))
    target = Path(out)
    check_replaceable_dir(target, marker=DEMO_MARKER)
    sizes = _SIZES[bool(small)]
    with atomic_dir(target) as tmp, tempfile.TemporaryDirectory(
            dir=tmp, prefix=".cohorts-") as work:
        cohorts = Path(work)
        for pilot, params in sizes.items():
            write_demo_cohort(cohorts / pilot, pilot=pilot, n_sites=len(DEMO_SITES), seed=seed,
                              **params)
        ids: set[str] = set()
        for site in DEMO_SITES:
            ids |= _write_site(cohorts, tmp / site, site)
        with atomic_write(tmp / "ids.txt") as fh:
            fh.write("".join(f"{i}\n" for i in sorted(ids)))
        with atomic_write(tmp / DEMO_MARKER) as fh:
            json.dump({"format": DEMO_FORMAT, "format_version": DEMO_FORMAT_VERSION,
                       "seed": seed, "small": bool(small), "sites": list(DEMO_SITES),
                       "sizes": sizes}, fh, indent=2)
            fh.write("\n")
    paths = {site: target / site for site in DEMO_SITES}
    paths["ids"] = target / "ids.txt"
    return paths


def _write_site(cohorts: Path, dest: Path, site: str) -> set[str]:
    import pysam
    import yaml

    ids: set[str] = set()
    # genomic_access: this site's VCF, and only its rows of the pooled pheno/covar tables
    gen = dest / "genomics"
    gen.mkdir(parents=True)
    src = cohorts / "genomic_access"
    for suffix in (".vcf.gz", ".vcf.gz.tbi"):
        shutil.copy2(src / f"{site}{suffix}", gen / f"{site}{suffix}")
    with pysam.VariantFile(str(gen / f"{site}.vcf.gz")) as vf:
        samples = set(vf.header.samples)
    ids |= samples
    for table in ("pheno.tsv", "covar.tsv"):
        _filter_rows(src / table, gen / table, "\t", lambda row: row[0] in samples)

    # telemonitoring: the site's vital signs, patients and events
    vit = dest / "vitals"
    vit.mkdir()
    for name in ("vitals.csv", "patients.csv", "events.csv"):
        shutil.copy2(cohorts / "telemonitoring" / site / name, vit / name)
    ids |= _column(vit / "patients.csv", "patient_id", ",")
    ids |= _column(vit / "vitals.csv", "patient_id", ",")

    # synthetic_education: the site's oncology case table and its data dictionary
    cli = dest / "clinical"
    cli.mkdir()
    for name in ("clinical.csv", "clinical.json"):
        shutil.copy2(cohorts / "synthetic_education" / site / name, cli / name)
    ids |= _column(cli / "clinical.csv", "patient_id", ",")

    # tumor_classification: the site's fMRI series, its participants' rows, the atlas
    img = dest / "imaging"
    tc = cohorts / "tumor_classification"
    shutil.copytree(tc / site, img)
    shutil.copy2(tc / "atlas.nii.gz", img / "atlas.nii.gz")
    _filter_rows(tc / "participants.tsv", img / "participants.tsv", "\t",
                 lambda row: row[1] == site)
    participants = _column(img / "participants.tsv", "participant_id", "\t")
    ids |= participants | {p.removeprefix("sub-") for p in participants}

    manifest = {
        "format": "secured_bio.site_datasets",
        "format_version": 1,
        "datasets": [
            {"name": "genomic_access_gwas", "kind": "genotypes",
             "description": f"Genotyped cohort of {site} with a quantitative trait (quant), "
                            "a binary trait (case) and covariates (demo data)",
             "duo": ["DUO:0000006", "DUO:0000018"], "contact": _CONTACT.format(site=site),
             "files": {"genotypes": f"genomics/{site}.vcf.gz", "pheno": "genomics/pheno.tsv",
                       "covar": "genomics/covar.tsv"}},
            {"name": "telemonitoring_vitals", "kind": "vitals",
             "description": f"Paediatric ward vital signs of {site} (demo data)",
             "duo": ["DUO:0000006"], "contact": _CONTACT.format(site=site),
             "files": {"vitals": "vitals/vitals.csv", "patients": "vitals/patients.csv",
                       "events": "vitals/events.csv"}},
            {"name": "oncology_cases", "kind": "clinical",
             "description": f"Paediatric oncology admissions of {site} (demo data)",
             "duo": ["DUO:0000042"], "contact": _CONTACT.format(site=site),
             "files": {"table": "clinical/clinical.csv"}},
            {"name": "tumor_fmri", "kind": "imaging",
             "description": f"Resting-state fMRI of brain tumour patients of {site} (demo)",
             "duo": ["DUO:0000006", "DUO:0000021"], "contact": _CONTACT.format(site=site),
             "files": {"series": "imaging/sub-*/func/*_bold.nii.gz",
                       "participants": "imaging/participants.tsv",
                       "atlas": "imaging/atlas.nii.gz"}},
        ],
    }
    (dest / "datasets.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False),
                                        encoding="utf-8")
    return ids


def _filter_rows(src: Path, dest: Path, delimiter: str, keep: Any) -> None:
    with open(src, newline="", encoding="utf-8") as fin, \
            open(dest, "w", newline="", encoding="utf-8") as fout:
        reader = csv.reader(fin, delimiter=delimiter)
        writer = csv.writer(fout, delimiter=delimiter, lineterminator="\n")
        writer.writerow(next(reader))
        for row in reader:
            if row and keep(row):
                writer.writerow(row)


def _column(path: Path, name: str, delimiter: str) -> set[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {row[name] for row in csv.DictReader(fh, delimiter=delimiter) if row.get(name)}
