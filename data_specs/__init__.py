"""Data specs (YAML) of every input kind that secured_bio validates; see ``secured_bio.specs``."""
