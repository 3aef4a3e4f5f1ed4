"""Telemonitoring of children in oncology care (pilot ``telemonitoring``)."""
