"""Shared fixtures: the repository root and an environment in which `secured-bio` runs."""

from __future__ import annotations

import os
import shutil
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


#: Independent reference tools the cross-checks compare against; `make test` installs them
#: (Makefile target `sysdeps`), so in CI a missing tool is an error, never a silent skip.
REFERENCE_TOOLS = ("plink2", "plink1.9", "bcftools", "tabix")


def require_tools(*names: str) -> None:
    """Fail (not skip) when a reference tool is missing, saying how to install it."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        pytest.fail(f"reference tool(s) missing: {', '.join(missing)}; run 'make sysdeps' "
                    "(apt-get install plink2 plink1.9 bcftools tabix)", pytrace=False)


def requires_tools(*names: str) -> pytest.MarkDecorator:
    """Mark a test that runs reference tools: it fails (never skips) when one is missing."""
    return pytest.mark.requires_tools(*names)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail the set-up of a test marked ``requires_tools`` whose tools are missing."""
    for mark in item.iter_markers("requires_tools"):
        require_tools(*mark.args)


def pytest_configure(config: pytest.Config) -> None:
    """In CI, refuse to run when a reference tool is missing (its tests would be skipped)."""
    config.addinivalue_line(
        "markers", "requires_tools(*names): the test runs these reference tools; it fails "
        "with the install hint (make sysdeps) when one is missing, never skips")
    missing = [n for n in REFERENCE_TOOLS if shutil.which(n) is None]
    if missing and os.environ.get("CI"):
        raise pytest.UsageError(f"reference tools missing in CI: {', '.join(missing)}")


#: Real genotype files (1000 Genomes EUR, chromosomes 21-22) from Debian's bio-eagle-examples
#: package; `make sysdeps` installs it.
REAL_VCF_DIR = Path("/usr/share/doc/bio-eagle/examples")
REAL_VCF_FILES = ("EUR_test.vcf.gz", "ref.bcf.gz", "ref.bcf.csi", "target.vcf.gz",
                  "target.vcf.gz.tbi", "phased.vcf.gz", "target.phased.vcf.gz")


def real_vcf_dir() -> Path:
    """Return the folder of the real test VCFs; fail (not skip) when they are missing."""
    missing = [f for f in REAL_VCF_FILES if not (REAL_VCF_DIR / f).is_file()]
    if missing:
        pytest.fail(f"real test VCFs missing from {REAL_VCF_DIR}: {', '.join(missing)}; run "
                    "'make sysdeps' (apt-get install bio-eagle-examples)", pytrace=False)
    return REAL_VCF_DIR
