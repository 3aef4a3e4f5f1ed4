"""Shared fixtures: the repository root and an environment in which `secured-bio` runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture()
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for subprocesses: the venv's bin first on PATH, no progress bars."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["SECURED_BIO_PROGRESS"] = "0"
    env["HOME"] = str(tmp_path / "home")
    return env


def run_cli(*args: str, env: dict[str, str], cwd: Path | None = None, timeout: int = 300):
    """Run the installed `secured-bio` console script and capture its output."""
    return subprocess.run(
        [str(BIN / "secured-bio"), *args], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=timeout,
    )
