"""Synthetic patient cases for medical education (pilot ``synthetic_education``)."""
