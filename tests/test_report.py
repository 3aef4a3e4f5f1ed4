"""What a newcomer sees after `make demo`: the curated summary, the results page, metrics paths."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

from secured_bio.cli import main
from secured_bio.report import curated_summary, results_page

#: `make demo` prints 1 blank line, the summary and 1 closing line: at most 30 in all.
MAX_SUMMARY_LINES = 28


def _png(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot([0, 1, 2], [0, 1, 4])
    fig.savefig(path, dpi=60)
    plt.close(fig)


def _fairness(eod: float | None) -> dict:
    gaps = {"equalized_odds_difference": eod, "demographic_parity_difference": 0.01}
    return {"attributes": {"sex": {"gaps": gaps}, "site": {"gaps": {
        "equalized_odds_difference": None}}}}


def _federated(auroc: float, central: float) -> dict:
    return {
        "centralized": {"auroc": central}, "federated": {"auroc": auroc},
        "gap": {"auroc": auroc - central},
        "rounds": [{"round": r, "train_loss": 0.5} for r in range(1, 6)],
        "fairness": _fairness(0.08),
        "per_site": [{"site": "site1", "auroc": 0.9}, {"site": "site2", "auroc": 0.8}],
        "timing": {"round_overhead_share": 3.92},
        "split": {"sites": ["site1", "site2", "site3"], "n_train": 84, "n_test": 36},
    }


def _write(root: Path, pilot: str, doc: dict, plots: tuple[str, ...] = ()) -> Path:
    run = root / pilot / "run"
    run.mkdir(parents=True, exist_ok=True)
    for p in plots:
        _png(run / p)
    full = {"format": "secured_bio.pilot_metrics", "format_version": 1, "pilot": pilot,
            "status": "ready", "config": {}, "elapsed_s": 16.5, **doc}
    (run / "metrics.json").write_text(json.dumps(full))
    return run


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    """A results folder with the metrics of the four pilots (shapes as the pilots write)."""
    root = tmp_path / "results"
    _write(root, "genomic_access", {
        "sites": ["site1", "site2", "site3"],
        "qc": {f"site{i}": {"samples": 500, "variants": 2000} for i in (1, 2, 3)},
        "gwas": {"test": "linear", "n_variants": 2000, "n_variants_tested": 1980,
                 "lambda_gc": 1.96, "n_genome_wide_hits": 14, "min_p": 3e-12,
                 "n_samples": 1500, "protocol": {"reveal_set": {"x": "y"}},
                 "outputs": {"qq": "gwas/cohort.linear.qq.png",
                             "manhattan": "gwas/cohort.linear.manhattan.png"},
                 "planted_causal": {"n": 5, "genome_wide_significant": 4, "in_top_n": 4,
                                    "other_genome_wide_hits": 10}},
    }, plots=("gwas/cohort.linear.manhattan.png", "gwas/cohort.linear.qq.png"))
    _write(root, "tumor_classification", {
        **_federated(0.91, 0.93),
        "encrypted_inference": {"n_scans": 4, "max_abs_diff_probability": 2e-5},
    }, plots=("training_curves.png", "per_site.png", "fairness.png"))
    _write(root, "telemonitoring", {
        "model": {"auroc": 0.85, "auprc": 0.5, "n_rows": 2800, "n_positive": 120,
                  "test_patients": 60, "horizon_hours": 6.0, "alert_budget": 0.05,
                  "ppv": 0.4, "sensitivity": 0.6, "lead_time_hours": 3.0,
                  "calibration": [{"low": 0.0, "high": 0.1, "observed": 0.01}]},
        "pews": {"auroc": 0.78},
        "federated": {"auroc": 0.8, "centralized_auroc": 0.82, "gap": -0.02},
        "federated_run": _federated(0.8, 0.82),
        "dp": {"epsilon": 1.0, "mia_auc": 0.51, "test": {"auroc": 0.7}},
        "nodp": {"mia_auc": 0.58},
    }, plots=("report/roc_pr.png", "report/calibration.png", "report/timelines.png",
              "training_curves.png", "per_site.png", "fairness.png"))
    se = _write(root, "synthetic_education", {
        "collect_s": 0.8,
        "cases": {"n": 7, "groups": 3, "conditions_met_share": 1.0, "index": "cases/index.html"},
        "table": {"generator": "copula", "differentially_private": False, "epsilon": None,
                  "membership_inference_auc": 0.52, "exact_copies_share": 0.0,
                  "tstr_auroc": 0.8, "trtr_auroc": 0.85},
    }, plots=("cases/cases/case-0001/vitals.png", "cases/cases/case-0001/image.png"))
    (se / "cases" / "index.html").write_text("<html></html>")
    # another secured_bio document in a run folder is not a pilot
    (root / "telemonitoring" / "run" / "report" / "metrics.json").write_text(
        json.dumps({"format": "secured_bio.telemetry_metrics", "auroc": 0.85}))
    return root


def test_curated_summary__short_headline_meaning_next_step(results):
    text = curated_summary(results, page=results / "index.html", full="summary_full.md")
    lines = text.splitlines()
    assert len(lines) <= MAX_SUMMARY_LINES, text
    for pilot in ("genomic_access", "tumor_classification", "telemonitoring",
                  "synthetic_education"):
        assert f"## {pilot} (ready)" in text
    # genomic inflation is flagged in words, with the advice
    assert "lambda_GC 1.960 (> 1.1): population structure not corrected; rerun with pcs=4" in text
    assert "1,500 samples" in text and "4 of 5 planted causal variants" in text
    assert "AUROC 0.85 vs PEWS 0.78" in text and "lead time 3.0 h" in text
    assert "federated AUROC 0.91 vs centralized 0.93" in text
    assert "7 teaching cases" in text
    assert f"Results page: {results / 'index.html'}" in text
    # no raw dicts, no timing noise, no temporary paths
    assert "{'" not in text and "elapsed_s" not in text and "overhead" not in text
    assert ".tmp" not in text
    # every path it names exists
    for path in re.findall(r"\S+\.(?:png|html)\b", text):
        if "index.html" not in path or "cases" in path:
            assert Path(path).is_file(), path


def test_curated_summary__no_inflation_points_to_manhattan(results):
    f = results / "genomic_access" / "run" / "metrics.json"
    doc = json.loads(f.read_text())
    doc["gwas"]["lambda_gc"] = 1.02
    f.write_text(json.dumps(doc))
    text = curated_summary(results)
    assert "lambda_GC 1.02: no sign of inflation" in text and "pcs=" not in text


def test_summarize_cli__writes_summary_full_detail_and_page(results, tmp_path):
    out, full, page = results / "summary.md", results / "summary_full.md", results / "index.html"
    assert main(["summarize", str(results), "--out", str(out), "--full", str(full),
                 "--html", str(page)]) == 0
    assert out.read_text() == curated_summary(results, page=page, full=full)
    detail = full.read_text()
    assert "gwas.lambda_gc: 1.96" in detail and len(detail.splitlines()) > 40
    assert "{'low'" not in detail  # lists of records are not printed as Python reprs
    html = page.read_text()
    assert html.count("<section") == 4
    assert not [f for f in os.listdir(results) if f.endswith(".tmp")]


def test_results_page__self_contained_figures_and_captions(results):
    html = results_page(results)
    # every plot embedded as a PNG, none linked: the file stands alone
    n_plots = len(list(results.glob("**/*.png")))
    assert html.count('src="data:image/png;base64,') == n_plots == 13
    assert not re.search(r'(src|href)="(?!data:|#)', html)
    assert html.count("<figcaption>") == n_plots
    for words in ("genomic inflation", "0.5 = chance", "no better than guessing",
                  "population structure", "Fairness audit", "QQ plot"):
        assert words in html, words
    assert "telemonitoring/run/fairness.png" in html  # captions name their file
    assert ".tmp" not in html


def test_results_page__unknown_pilot_gets_a_plain_section(tmp_path):
    _write(tmp_path, "my_pilot", {"validation": {"files": 3, "all_ok": True}})
    html = results_page(tmp_path)
    assert "my_pilot" in html and "3 input files validated (all ok)" in html


def test_run_pilot__metrics_paths_name_the_final_folder(tmp_path, monkeypatch):
    """A pilot records paths while it runs in the temporary folder; metrics.json names the
    folder the run ends in, and those paths exist."""
    from secured_bio.pilots._registry import run_pilot

    monkeypatch.chdir(tmp_path)

    def run(out: Path, cfg):
        (out / "sites" / "site1").mkdir(parents=True)
        (out / "plot.png").write_bytes(b"png")
        return {"relative": str(out / "sites" / "site1"),
                "absolute": str((out / "plot.png").resolve()),
                "nested": {"dirs": [str(out / "sites"), Path(out / "plot.png")]},
                "text": f"written to {out}/plot.png"}

    doc = run_pilot("tumor_classification", "results/x/run", {}, run=run)
    saved = (tmp_path / "results/x/run/metrics.json").read_text()
    assert ".tmp" not in saved and ".tmp" not in json.dumps(doc, default=str)
    assert doc["relative"] == "results/x/run/sites/site1"
    assert doc["absolute"] == str((tmp_path / "results/x/run/plot.png").resolve())
    assert doc["text"] == "written to results/x/run/plot.png"
    for p in (doc["relative"], doc["absolute"], *doc["nested"]["dirs"]):
        assert Path(p).exists(), p


def test_collect_pilot__times_only_the_collection(tmp_path):
    from secured_bio.pilots import collect_pilot

    run = tmp_path / "run"
    (run / "cases").mkdir(parents=True)
    (run / "cases" / "cases.json").write_text(json.dumps({
        "n_cases": 1, "groups": [{}], "conditions_met": {"share": 1.0},
        "privacy": {"table": {"generator": "copula", "differentially_private": False,
                              "epsilon": None, "membership_inference_auc": 0.5,
                              "exact_copies_share": 0.0}},
        "timings": {"total_seconds": 16.5}}))
    doc = collect_pilot("synthetic_education", run)
    assert "elapsed_s" not in doc and doc["collect_s"] >= 0


# ------------------------------------------------------------------ the page in a browser
CHROMIUM = "/usr/bin/chromium"


def test_results_page__renders_readably_in_headless_chromium(results, tmp_path):
    """The page renders in a real browser at 1280 px: no horizontal scrolling, every image
    decoded and within the width, headline text visible (screenshot kept for people)."""
    chromium = shutil.which("chromium") or (CHROMIUM if os.path.exists(CHROMIUM) else None)
    if chromium is None:
        pytest.fail("chromium missing: run 'make sysdeps' (apt-get install chromium)",
                    pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright missing: pip install -c constraints.txt -e '.[dev]'",
                    pytrace=False)
    page_file = results / "index.html"
    page_file.write_text(results_page(results))
    shot = tmp_path / "index.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium,
                                    args=["--no-sandbox", "--headless=new"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(page_file.as_uri())
            page.wait_for_load_state("load")
            state = page.evaluate("""() => ({
                scroll: document.documentElement.scrollWidth,
                images: [...document.images].map(i => [i.complete, i.naturalWidth,
                                                      i.getBoundingClientRect().width]),
                text: document.body.innerText,
                fontPx: parseFloat(getComputedStyle(document.body).fontSize),
            })""")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert state["scroll"] <= 1280, "the page scrolls sideways at 1280 px"
    assert len(state["images"]) == 13
    assert all(ok and natural > 0 and 0 < width <= 1280 for ok, natural, width in
               state["images"]), state["images"]
    assert state["fontPx"] >= 14
    assert "population structure not corrected" in state["text"]
    assert shot.stat().st_size > 50_000  # a real rendering, not a blank page


def test_summarize_cli__subprocess_prints_curated_summary(results, cli_env):
    res = run_cli("summarize", str(results), env=cli_env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("# secured_bio results: 4 pilots")
    assert len(res.stdout.splitlines()) <= MAX_SUMMARY_LINES
