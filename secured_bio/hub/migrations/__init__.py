"""Alembic migrations of the hub database."""
