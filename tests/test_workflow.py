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
    "sites": 3,  # the secure GWAS needs three sites (with two, each learns the other's sums)
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
            for rule, jobs in (("ingest", 3), ("qc", 3), ("gwas", 1), ("metrics", 1)):
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


def _paths_in(doc):
    """Strings of a JSON document that look like file paths (relative ones or absolute)."""
    if isinstance(doc, dict):
        doc = list(doc.values())
    if isinstance(doc, list):
        return [p for x in doc for p in _paths_in(x)]
    if isinstance(doc, str) and re.fullmatch(r"[\w./-]+/[\w.-]+|[\w-]+\.(json|png|html)", doc):
        return [doc]
    return []


@pytest.mark.slow
def test_real_run__tiny_demo_all_pilots_and_report(workdir, cli_env):
    res = snakemake("--cores", "2", cwd=workdir, env=cli_env)
    assert res.returncode == 0, res.stderr[-4000:]
    results = workdir / "results"
    summary = (results / "summary.md").read_text()
    assert len(summary.splitlines()) <= 28, summary  # `make demo` prints it: <= 30 lines
    assert "Results page: results/index.html" in summary
    assert (results / "index.html").is_file() and (results / "summary_full.md").is_file()
    sites = ["site1", "site2", "site3"]
    for pilot in TINY_CONFIG["demo"]:
        assert f"## {pilot}" in summary
        assert (workdir / "logs" / pilot / "demo.log").is_file()
        # one layout for every pilot: cohort in demo/, outputs and metrics.json in run/
        text = (results / pilot / "run" / "metrics.json").read_text()
        assert ".tmp" not in text, pilot  # paths name the finished folder
        for path in _paths_in(json.loads(text)):  # ... and the files exist
            assert (workdir / path).exists() or (results / pilot / "run" / path).exists(), path
        if pilot in ("genomic_access", "synthetic_education"):
            continue
        metrics = json.loads(text)
        assert metrics["validation"]["all_ok"] is True
        assert metrics["data"]["source"] == "given"
    for out in ("summary.md", "summary_full.md", "index.html"):
        assert ".tmp" not in (results / out).read_text(), out
    ga = results / "genomic_access" / "run"
    metrics = json.loads((ga / "metrics.json").read_text())
    assert metrics["sites"] == sites and set(metrics["qc"]) == set(sites)
    assert metrics["gwas"]["test"] == "linear" and metrics["gwas"]["n_variants_tested"] > 0
    for site in sites:
        assert (ga / "stores" / f"{site}.zarr" / "zarr.json").is_file()
        assert (ga / "qc" / f"{site}.hardy").is_file()
        assert (workdir / "logs" / "genomic_access" / f"ingest_{site}.log").is_file()
    se = results / "synthetic_education" / "run"
    metrics = json.loads((se / "metrics.json").read_text())
    assert metrics["cases"]["n"] > 0 and metrics["cases"]["conditions_met_share"] == 1.0
    assert (se / "cases" / "index.html").is_file()
    assert metrics["table"]["membership_inference_auc"] is not None
    rep = snakemake("--report", "report.html", cwd=workdir, env=cli_env)
    assert rep.returncode == 0, rep.stderr[-2000:]
    assert (workdir / "report.html").stat().st_size > 10_000
    # every pilot's plots are in the report, each with its caption
    # (tumour classification and telemonitoring both have the three federated plots; the
    # summary has the results page and the education pilot its index of cases)
    listing = rep.stdout + rep.stderr
    for name, n in (("training_curves.png", 2), ("per_site.png", 2), ("fairness.png", 2),
                    ("roc_pr.png", 1), ("cohort.linear.qq.png", 1), ("index.html", 2),
                    ("summary.md", 1)):
        assert listing.count(f"Adding {name} ") == n, name
    # nothing left to do: the workflow is complete and consistent
    again = snakemake("--dry-run", cwd=workdir, env=cli_env)
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]

