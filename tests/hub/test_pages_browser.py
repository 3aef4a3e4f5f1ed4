"""The hub's pages in a real browser (Playwright, the system chromium, a live uvicorn server).

A researcher logs in through the form, searches the catalogue, files a request; a committee
member (another browser context) approves it; the researcher starts a job whose progress the
page's script updates while a simulated site agent reports, then opens the released artifact.
Screenshots of the main pages go to ``tmp_path`` (and to ``$SECURED_BIO_SCREENSHOTS``).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hub._hub import PASSWORD, SITES, dataset, seed_app

from secured_bio.hub.app import create_app
from secured_bio.hub.settings import HubSettings

CHROMIUM = "/usr/bin/chromium"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def live_hub(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A seeded hub served by uvicorn in a thread: its URL and the sites' agent tokens."""
    import uvicorn

    port = _free_port()
    app = create_app(HubSettings(data_dir=tmp_path / "hub", port=port,
                                 login_attempts_per_minute=1000))
    tokens = seed_app(app).site_tokens
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off", ws="none"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    for i, site in enumerate(SITES, 1):
        meta = {"n_rows": 100 * i, "n_columns": 4,
                "columns": [{"name": "age", "n_missing": 0}, {"name": "sex"}]}
        r = httpx.post(f"{url}/api/v1/agent/register",
                       headers={"Authorization": f"Bearer {tokens[site]}"},
                       json={"agent_version": "test",
                             "datasets": [dataset(f"clin-{site}", metadata=meta)]})
        assert r.status_code == 200, r.text
    try:
        yield url, tokens
    finally:
        server.should_exit = True
        thread.join(15)
        app.state.engine.dispose()


def _chromium() -> str:
    path = shutil.which("chromium") or (CHROMIUM if os.path.exists(CHROMIUM) else None)
    if path is None:
        pytest.fail("chromium missing: run 'make sysdeps' (apt-get install chromium)",
                    pytrace=False)
    return path


def test_pages__researcher_and_committee_in_chromium(live_hub: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, tokens = live_hub
    shots = [tmp_path / "screenshots"]
    if os.environ.get("SECURED_BIO_SCREENSHOTS"):
        shots.append(Path(os.environ["SECURED_BIO_SCREENSHOTS"]))
    for d in shots:
        d.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []

    def shot(page: Any, name: str) -> None:
        page.screenshot(path=str(shots[0] / f"{name}.png"), full_page=True)
        for d in shots[1:]:
            shutil.copy(shots[0] / f"{name}.png", d / f"{name}.png")

    def watch(page: Any) -> None:
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("response", lambda r: problems.append(f"{r.status} {r.url}")
                if r.status >= 400 else None)

    def log_in(page: Any, user: str) -> None:
        page.goto(f"{url}/")
        expect(page).to_have_url(f"{url}/login?next=%2F")
        page.get_by_label("User name").fill(user)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("header .user")).to_have_text(user)

    agent = {s: {"Authorization": f"Bearer {t}"} for s, t in tokens.items()}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(),
                                    args=["--no-sandbox", "--headless=new"])
        try:
            researcher = browser.new_context(viewport={"width": 1280, "height": 900})
            page = researcher.new_page()
            watch(page)
            page.goto(f"{url}/login")
            shot(page, "login")
            log_in(page, "researcher")
            expect(page.locator("header")).to_contain_text("secured_bio Innohub")
            shot(page, "dashboard-researcher")

            page.get_by_role("link", name="Catalogue", exact=True).click()
            page.get_by_label("Search", exact=True).fill("clin-site2")
            page.get_by_role("button", name="Search").click()
            rows = page.locator("#pick tbody tr")
            expect(rows).to_have_count(1)
            expect(rows.first).to_contain_text("GRU (general research use)")
            page.goto(f"{url}/datasets")
            expect(page.locator("#pick tbody tr")).to_have_count(3)
            shot(page, "catalogue")
            page.get_by_label("select clin-site1").check()
            page.get_by_role("button", name="Request access to the selected datasets").click()
            expect(page.get_by_label("clin-site1")).to_be_checked()
            page.get_by_label("Purpose of the research").fill(
                "Anonymized release of the asthma cohort for teaching.")
            page.get_by_label("anonymize").check()
            page.get_by_label("gwas_secure").uncheck()
            shot(page, "request-new")
            page.get_by_role("button", name="File the request").click()
            expect(page.locator("h1")).to_contain_text("pending")
            request_url = page.url

            committee = browser.new_context(viewport={"width": 1280, "height": 900})
            cpage = committee.new_page()
            watch(cpage)
            log_in(cpage, "committee")
            expect(cpage.locator("main")).to_contain_text("Pending requests")
            shot(cpage, "dashboard-committee")
            cpage.goto(request_url)
            cpage.get_by_label("Approve").check()
            cpage.get_by_label("Reason").fill("Consent covers teaching releases.")
            shot(cpage, "request-decision")
            cpage.get_by_role("button", name="Record the decision").click()
            expect(cpage.locator("h1")).to_contain_text("approved")

            page.reload()
            expect(page.locator("h1")).to_contain_text("approved")
            page.get_by_role("link", name="Start a job").click()
            page.get_by_label("Analysis", exact=True).select_option("anonymize")
            expect(page.locator("fieldset[data-kind=anonymize]")).to_be_visible()
            page.get_by_label("k (k-anonymity)").fill("5")
            page.get_by_label("Quasi-identifier columns, comma-separated").fill("age, sex")
            shot(page, "job-new")
            page.get_by_role("button", name="Start the job").click()
            expect(page.locator("h1")).to_contain_text("queued")

            # the site's agent works; the page's script follows it without a reload
            task = httpx.post(f"{url}/api/v1/agent/tasks/claim",
                              headers=agent["site1"]).json()["task"]
            httpx.post(f"{url}/api/v1/agent/tasks/{task['id']}/progress",
                       headers=agent["site1"], json={"progress": 0.5, "message": "halfway"})
            expect(page.locator("tr[data-rank='0'] [data-field=message]")).to_have_text(
                "halfway", timeout=10_000)
            expect(page.locator("h1 [data-field=status]")).to_have_text("running")
            shot(page, "job-running")
            passport = {"classification": {"category": "anonymous",
                                           "treat_as_personal_data": False}}
            r = httpx.post(f"{url}/api/v1/agent/tasks/{task['id']}/artifacts",
                           headers=agent["site1"],
                           files={"file": ("plot.png", io.BytesIO(PNG), "image/png")},
                           data={"name": "plot.png", "kind": "figure",
                                 "passport": json.dumps(passport)})
            assert r.status_code == 201, r.text
            httpx.post(f"{url}/api/v1/agent/tasks/{task['id']}/complete",
                       headers=agent["site1"], json={"status": "succeeded"})
            expect(page.locator("h1 [data-field=status]")).to_have_text("succeeded",
                                                                        timeout=10_000)
            page.get_by_role("link", name="plot.png").click()  # after the script's reload
            expect(page.locator(".classification strong")).to_have_text(
                re.compile("^(anonymous|pseudonymous|personal|aggregate)$"))
            expect(page.frame_locator("iframe.passport").locator("body")).to_contain_text(
                "plot.png")
            assert page.locator("img.preview").evaluate("i => i.naturalWidth") == 1
            shot(page, "artifact")

            cpage.goto(f"{url}/audit")
            expect(cpage.locator("main")).to_contain_text("chain intact")
            shot(cpage, "audit")
        finally:
            browser.close()
    assert not problems, problems  # no CSP violation, no script error
    assert all((shots[0] / f"{n}.png").stat().st_size > 10_000
               for n in ("dashboard-researcher", "catalogue", "job-running", "artifact"))
