"""Tests of the simulate_cohort dispatcher and of the public API of secured_bio.testing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import secured_bio.testing as sbt
from secured_bio.errors import ConfigError
from secured_bio.testing import (
    EducationCohort,
    GenotypeCohort,
    ImagingCohort,
    VitalsCohort,
    simulate_clinical_sites,
    simulate_cohort,
)


@pytest.mark.parametrize(
    ("pilot", "params", "kind"),
    [
        ("genomic_access", {"samples_per_site": 8, "n_variants": 30, "n_causal": 1},
         GenotypeCohort),
        ("tumor_classification", {"subjects_per_site": 2, "n_timepoints": 12,
                                  "shape": (8, 8, 4), "n_rois": 3}, ImagingCohort),
        ("telemonitoring", {"patients_per_site": 2, "hours": 4}, VitalsCohort),
        ("synthetic_education", {"n_rows": 20, "patients_per_site": 2, "hours": 4,
                                 "imaging_subjects_per_site": 2}, EducationCohort),
    ],
)
def test_simulate_cohort__dispatches_each_pilot(
    tmp_path: Path, pilot: str, params: dict[str, object], kind: type
) -> None:
    c = simulate_cohort(tmp_path, pilot=pilot, n_sites=2, seed=1, **params)
    assert isinstance(c, kind)
    assert c.sites == ("site1", "site2")
    assert c.seed == 1
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_simulate_cohort__tumor_classification_defaults_to_fmri(tmp_path: Path) -> None:
    c = simulate_cohort(tmp_path, pilot="tumor_classification", n_sites=1,
                        subjects_per_site=2, n_timepoints=10, shape=(8, 8, 4), n_rois=2)
    assert isinstance(c, ImagingCohort) and c.modality == "fmri"


def test_simulate_cohort__unknown_pilot_suggests_closest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown pilot.*did you mean 'telemonitoring'"):
        simulate_cohort(tmp_path, pilot="telemonitorng")


def test_simulate_cohort__unknown_option_suggests_closest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown option.*did you mean 'samples_per_site'"):
        simulate_cohort(tmp_path, pilot="genomic_access", sample_per_site=10)
    assert list(tmp_path.iterdir()) == []


def test_simulate_cohort__bad_value_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="n_sites is too small"):
        simulate_cohort(tmp_path, pilot="telemonitoring", n_sites=0)


def test_simulate_clinical_sites__ids_unique_across_sites(tmp_path: Path) -> None:
    c = simulate_clinical_sites(tmp_path, n_sites=3, n_rows=40, seed=2)
    frames = [pd.read_csv(t.path, dtype=str) for t in c.tables]
    ids = pd.concat(frames)["patient_id"]
    assert ids.is_unique and len(ids) == 120
    for site, f in zip(c.sites, frames, strict=True):
        assert f["patient_id"].str.startswith(f"{site}_").all()
    assert frames[0]["age"].tolist() != frames[1]["age"].tolist()  # independent sites


def test_testing__public_api_is_exported() -> None:
    for name in sbt.__all__:
        assert hasattr(sbt, name), name
    assert set(sbt.PILOT_SIMULATORS) == {
        "genomic_access", "tumor_classification", "telemonitoring", "synthetic_education"}


def test_testing__import_is_light() -> None:
    code = (
        "import sys, secured_bio.testing; "
        "heavy = {'msprime', 'tskit', 'pysam', 'nibabel', 'nilearn', 'torch', 'scipy'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
