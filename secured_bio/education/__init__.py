"""Synthetic patient cases for medical education (the ``synthetic_education`` pilot's library).

A YAML spec (:mod:`~secured_bio.education.spec`) asks for groups of cases ("3 children aged
5-10 with stage III disease and a septic episode"); :func:`make_cases` fits the table,
vital-sign and image generators of :mod:`secured_bio.privacy.synthetic` and
:mod:`secured_bio.telemetry.synthetic` on real sources, draws the cases with their
conditions met exactly, and writes a JSON, Markdown and HTML page per case
(:mod:`~secured_bio.education.pages`) with a privacy statement from the generators' audit.
"""

from secured_bio.education.cases import FORMAT, FORMAT_VERSION, MANIFEST, make_cases
from secured_bio.education.spec import EducationSpec, example_spec, load_spec, parse_spec

__all__ = ["make_cases", "load_spec", "parse_spec", "example_spec", "EducationSpec", "FORMAT",
           "FORMAT_VERSION", "MANIFEST"]
