"""The whole story in a real browser, against the real demo hub and its three site agents.

Researcher logs in, finds the genomic datasets, requests access; a committee member approves;
the researcher runs a secure GWAS over the three sites from the job form and watches it
finish; opens the Manhattan plot and the passport; downloads the summary statistics, which
equal the CLI's ``gwas secure`` on the same data.  SQLite and PostgreSQL.  Screenshots go to
``tmp_path`` (and ``$SECURED_BIO_SCREENSHOTS``).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hub._demo import PASSWORD, running_demo

from secured_bio.cli import main as cli_main

pytestmark = pytest.mark.slow


def _chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium"
                                        if os.path.exists("/usr/bin/chromium") else None)
    if path is None:
        pytest.fail("chromium missing: run 'make sysdeps' (apt-get install chromium)",
                    pytrace=False)
    return path


def _cli_gwas(sites: Path, names: list[str], out: Path) -> Path:
    """``secured-bio gwas secure`` on the sites' files (pheno/covar rows of all sites)."""
    for kind in ("pheno", "covar"):
        parts = [(sites / s / "genomics" / f"{kind}.tsv").read_text().splitlines()
                 for s in names]
        lines = parts[0][:1] + [line for p in parts for line in p[1:]]
        (out.parent / f"{kind}.tsv").write_text("\n".join(lines) + "\n")
    args = ["gwas", "secure", "--pheno", str(out.parent / "pheno.tsv"), "--covar",
            str(out.parent / "covar.tsv"), "--test", "linear", "--out", str(out)]
    for s in names:
        args += ["--site", f"{s}={sites / s / 'genomics' / s}.vcf.gz"]
    assert cli_main(args) == 0
    return out.with_name(out.name + ".linear.tsv")


def _neglog10(path: Path) -> pd.Series:
    df = pd.read_csv(path, sep="\t")
    return pd.Series(-np.log10(df["P"].to_numpy(float)), index=df["ID"].to_numpy())


def test_story__request_approve_secure_gwas_passport_download(tmp_path: Path,
                                                              db_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = [tmp_path / "screenshots"]
    if os.environ.get("SECURED_BIO_SCREENSHOTS"):
        shots.append(Path(os.environ["SECURED_BIO_SCREENSHOTS"]))
    for d in shots:
        d.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    t0 = time.monotonic()

    def shot(page: Any, name: str) -> None:
        page.screenshot(path=str(shots[0] / f"{name}.png"), full_page=True)
        for d in shots[1:]:
            shutil.copy(shots[0] / f"{name}.png", d / f"story-{name}.png")

    def watch(page: Any) -> None:
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))

    with running_demo(tmp_path, db_url) as demo, sync_playwright() as p:
        url = demo.url
        browser = p.chromium.launch(executable_path=_chromium(),
                                    args=["--no-sandbox", "--headless=new"])

        def log_in(context: Any, user: str) -> Any:
            page = context.new_page()
            watch(page)
            page.goto(f"{url}/login")
            page.get_by_label("User name").fill(user)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page.locator("header .user")).to_have_text(user)
            return page

        try:
            researcher = browser.new_context(viewport={"width": 1280, "height": 900},
                                             accept_downloads=True)
            page = log_in(researcher, "researcher")
            page.get_by_role("link", name="Catalogue", exact=True).click()
            page.get_by_label("Search", exact=True).fill("genomic")
            page.get_by_role("button", name="Search").click()
            rows = page.locator("#pick tbody tr")
            expect(rows).to_have_count(3)
            shot(page, "catalogue")
            for site in ("site1", "site2", "site3"):
                row = rows.filter(has_text=site)
                row.locator("input[type=checkbox]").check()
            page.get_by_role("button", name="Request access to the selected datasets").click()
            page.get_by_label("Purpose of the research").fill(
                "Genome-wide association study of a quantitative trait across three sites.")
            page.get_by_label("gwas_secure").check()
            page.get_by_role("button", name="File the request").click()
            expect(page.locator("h1")).to_contain_text("pending")
            request_url = page.url

            committee = browser.new_context(viewport={"width": 1280, "height": 900})
            cpage = log_in(committee, "committee")
            cpage.goto(request_url)
            cpage.get_by_label("Approve").check()
            cpage.get_by_label("Reason").fill("Health research within the consent (DUO HMB).")
            shot(cpage, "decision")
            cpage.get_by_role("button", name="Record the decision").click()
            expect(cpage.locator("h1")).to_contain_text("approved")

            page.reload()
            page.get_by_role("link", name="Start a job").click()
            page.get_by_label("Analysis", exact=True).select_option("gwas_secure")
            for box in page.locator("input[name=datasets]").all():
                box.check()
            page.get_by_label("Association test").select_option("linear")
            page.get_by_role("button", name="Start the job").click()
            # the page follows the three sites without a reload until the job ends
            expect(page.locator("h1 [data-field=status]")).to_have_text("succeeded",
                                                                        timeout=240_000)
            shot(page, "job-succeeded")
            page.reload()
            page.get_by_role("link", name="gwas.linear.manhattan.png").click()
            assert page.locator("img.preview").evaluate("i => i.naturalWidth") > 200
            expect(page.locator(".classification strong")).to_have_text("aggregate")
            expect(page.frame_locator("iframe.passport").locator("body")).to_contain_text(
                "reveal")
            shot(page, "manhattan-passport")
            page.go_back()
            page.get_by_role("link", name="gwas.linear.tsv", exact=True).click()
            with page.expect_download() as dl:
                page.get_by_role("link", name="Download").click()
            hub_tsv = tmp_path / "hub.linear.tsv"
            dl.value.save_as(hub_tsv)
        finally:
            browser.close()
        cli_tsv = _cli_gwas(demo.data_dir / "sites", ["site1", "site2", "site3"],
                            tmp_path / "cli")
    a, b = _neglog10(hub_tsv), _neglog10(cli_tsv)
    assert a.index.equals(b.index)
    assert float(np.nanmax(np.abs(a.to_numpy() - b.to_numpy()))) <= 1e-9
    assert not problems, problems
    print(f"browser story wall time: {time.monotonic() - t0:.1f} s")
