"""Fixtures of the site agent's tests: the hub demo data, written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from secured_bio.hub.demo_data import write_hub_demo_data


@pytest.fixture(scope="session")
def hub_demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three small demo site folders and ids.txt (read-only for the tests)."""
    return write_hub_demo_data(tmp_path_factory.mktemp("hub_demo") / "demo", seed=3)
