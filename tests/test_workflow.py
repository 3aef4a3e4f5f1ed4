"""The Snakemake workflow: lint, dry run, a real run on a tiny demo, and the HTML report."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import BIN, REPO

pytestmark = pytest.mark.snakemake

TINY_CONFIG = {
    "sites": 2,
    "seed": 1,
    "fl_engine": {"tumor_classification": "inprocess", "telemonitoring": "inprocess"},
    "demo": {
        "genomic_access": {"samples_per_site": 20, "n_variants": 60, "n_causal": 2},
        "tumor_classification": {"subjects_per_site": 6, "n_timepoints": 20},
        "telemonitoring": {"patients_per_site": 8, "hours": 48},
        "synthetic_education": {"n_rows": 60, "patients_per_site": 10},
    },
    "education": {"image_epochs": 2},
}


def snakemake(*args: str, cwd: Path, env: dict[str, str], timeout: int = 600):
    cmd = [str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "config", tmp_path / "config")
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(TINY_CONFIG))
    return tmp_path


def test_lint__clean(workdir, cli_env):
    res = snakemake("--lint", cwd=workdir, env=cli_env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Lints for" not in res.stdout + res.stderr


def test_dry_run__plans_every_pilot(workdir, cli_env):
    res = snakemake("--dry-run", "--quiet", "rules", cwd=workdir, env=cli_env)
    assert res.returncode == 0, res.stderr
    for pilot in TINY_CONFIG["demo"]:
        assert f"{pilot}_demo" in res.stdout
        if pilot == "genomic_access":  # its steps are rules, one job per site where local
            for rule, jobs in (("ingest", 2), ("qc", 2), ("gwas", 1), ("metrics", 1)):
                assert re.search(rf"genomic_access_{rule}\s+{jobs}\n", res.stdout), rule
        elif pilot == "synthetic_education":
            for rule in ("spec", "cases", "metrics"):
                assert re.search(rf"synthetic_education_{rule}\s+1\n", res.stdout), rule
        else:
            assert f"{pilot}_run" in res.stdout
    assert "summary" in res.stdout


def test_config__schema_violation_is_reported(workdir, cli_env):
    (workdir / "config" / "config.yaml").write_text("sites: 0\n")
    res = snakemake("--dry-run", cwd=workdir, env=cli_env)
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "sites" in out and "minimum" in out


@pytest.mark.slow
def test_real_run__tiny_demo_all_pilots_and_report(workdir, cli_env):
    res = snakemake("--cores", "2", cwd=workdir, env=cli_env)
    assert res.returncode == 0, res.stderr[-4000:]
    summary = (workdir / "results" / "summary.md").read_text()
    for pilot in TINY_CONFIG["demo"]:
        assert f"## {pilot}" in summary
        assert (workdir / "logs" / pilot / "demo.log").is_file()
        if pilot in ("genomic_access", "synthetic_education"):
            continue
        metrics = json.loads((workdir / "results" / pilot / "run" / "metrics.json").read_text())
        assert metrics["validation"]["all_ok"] is True
        assert metrics["data"]["source"] == "given"
    ga = workdir / "results" / "genomic_access"
    metrics = json.loads((ga / "metrics.json").read_text())
    assert metrics["sites"] == ["site1", "site2"] and set(metrics["qc"]) == {"site1", "site2"}
    assert metrics["gwas"]["test"] == "linear" and metrics["gwas"]["n_variants_tested"] > 0
    for site in ("site1", "site2"):
        assert (ga / "stores" / f"{site}.zarr" / "zarr.json").is_file()
        assert (ga / "qc" / f"{site}.hardy").is_file()
        assert (workdir / "logs" / "genomic_access" / f"ingest_{site}.log").is_file()
    se = workdir / "results" / "synthetic_education"
    metrics = json.loads((se / "metrics.json").read_text())
    assert metrics["cases"]["n"] > 0 and metrics["cases"]["conditions_met_share"] == 1.0
    assert (se / "cases" / "index.html").is_file()
    assert metrics["table"]["membership_inference_auc"] is not None
    rep = snakemake("--report", "report.html", cwd=workdir, env=cli_env)
    assert rep.returncode == 0, rep.stderr[-2000:]
    assert (workdir / "report.html").stat().st_size > 10_000
    # nothing left to do: the workflow is complete and consistent
    again = snakemake("--dry-run", cwd=workdir, env=cli_env)
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]

