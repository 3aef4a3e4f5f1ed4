"""Seeded demo-cohort simulators for tests, tutorials and the pilots' demo runs.

Every simulator takes ``seed`` (the same seed gives byte-identical files), writes each file
through a temporary name (a crash never leaves a file that looks finished), names sites
``site1``, ``site2``, ... and returns a frozen dataclass describing what it wrote, including
the truth of the planted signal that tests can check for:

- :func:`simulate_genotypes`: msprime cohort with population structure, bgzipped + tabix VCFs,
  plink2 phenotype/covariate files with causal variants (``genomic_access``).
- :func:`simulate_imaging`: 4D fMRI or functional-ultrasound NIfTI series with an atlas and a
  connectivity difference between two classes (``tumor_classification``).
- :func:`simulate_vitals`: paediatric vital signs as a long CSV and FHIR R4 Observations,
  with planted deteriorations (``telemonitoring``).
- :func:`simulate_clinical`: admissions table with quasi-identifiers and a sensitive
  diagnosis (anonymization demos; :func:`simulate_clinical_sites` writes one per site).
- :func:`simulate_oncology`: paediatric oncology case table; :func:`simulate_education`
  writes it per site with vital signs and images (``synthetic_education``).
- :func:`simulate_cohort`: dispatch on a pilot name (used by the CLI).

Heavy dependencies (msprime, pysam, nibabel, scipy) are imported only when a simulator runs.
"""

from secured_bio.testing._clinical import AGE_BANDS, DIAGNOSES, ClinicalTable, simulate_clinical
from secured_bio.testing._cohort import (
    COHORT_MANIFEST,
    PILOT_SIMULATORS,
    ClinicalCohort,
    simulate_clinical_sites,
    simulate_cohort,
    write_demo_cohort,
)
from secured_bio.testing._education import EducationCohort, simulate_education
from secured_bio.testing._federated import DiabetesTableTask, LinearToyTask
from secured_bio.testing._genotypes import GenotypeCohort, simulate_genotypes
from secured_bio.testing._imaging import MODALITIES, ROI_PAIR, ImagingCohort, simulate_imaging
from secured_bio.testing._oncology import ONCOLOGY_DIAGNOSES, OncologyTable, simulate_oncology
from secured_bio.testing._phantom import HeadPhantom, simulate_head_phantom
from secured_bio.testing._vitals import VITALS, VitalsCohort, simulate_vitals, vital_norms

__all__ = [
    "DiabetesTableTask",
    "simulate_genotypes",
    "simulate_imaging",
    "simulate_vitals",
    "simulate_clinical",
    "simulate_clinical_sites",
    "simulate_oncology",
    "simulate_education",
    "simulate_cohort",
    "write_demo_cohort",
    "vital_norms",
    "GenotypeCohort",
    "ImagingCohort",
    "VitalsCohort",
    "ClinicalTable",
    "ClinicalCohort",
    "OncologyTable",
    "EducationCohort",
    "ONCOLOGY_DIAGNOSES",
    "PILOT_SIMULATORS",
    "COHORT_MANIFEST",
    "MODALITIES",
    "ROI_PAIR",
    "VITALS",
    "AGE_BANDS",
    "DIAGNOSES",
    "LinearToyTask",
    "HeadPhantom",
    "simulate_head_phantom",
]
