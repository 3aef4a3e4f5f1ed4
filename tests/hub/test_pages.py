"""The hub's web pages: login, pages per role, permissions, CSRF, escaping, jobs, artifacts."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hub._hub import PASSWORD, SITES, dataset, register, seed_app

from secured_bio.hub.app import create_app
from secured_bio.hub.db import session_scope
from secured_bio.hub.models import AuditEvent
from secured_bio.hub.settings import HubSettings

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
PURPOSE = "Association of common variants with childhood asthma (health research)."
#: a 1x1 PNG
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")


@dataclass
class Hub:
    """The app, its sites' agent tokens and the registered dataset ids by name."""

    app: Any
    tokens: dict[str, str]
    datasets: dict[str, int]

    def client(self) -> TestClient:
        """A browser-like client (asks for HTML), not logged in."""
        return TestClient(self.app, headers={"accept": "text/html"})

    def agent(self, site: str) -> dict[str, str]:
        """Authorization header of ``site``'s agent."""
        return {"Authorization": f"Bearer {self.tokens[site]}"}


@pytest.fixture()
def hub(tmp_path: Path) -> Iterator[Hub]:
    """A hub with sites site1..3, the test users and a clinical dataset per site."""
    app = create_app(HubSettings(data_dir=tmp_path / "hub", login_attempts_per_minute=1000))
    tokens = seed_app(app).site_tokens
    ids: dict[str, int] = {}
    with TestClient(app) as c:
        for i, site in enumerate(SITES, 1):
            extra = {"description": XSS} if i == 1 else {}
            meta = {"n_rows": 100 * i, "n_columns": 5, "columns": [{"name": "age"}]}
            for d in register(c, tokens[site], [dataset(f"clin-{site}", metadata=meta,
                                                        **extra)]):
                ids[d["name"]] = d["id"]
    yield Hub(app, tokens, ids)
    app.state.engine.dispose()


def csrf_of(html: str) -> str:
    """The hidden CSRF token of a page's forms."""
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


def login(hub: Hub, user: str) -> TestClient:
    """A client logged in as ``user`` through the login form."""
    c = hub.client()
    r = c.get("/login")
    r = c.post("/login", data={"username": user, "password": PASSWORD,
                               "csrf_token": csrf_of(r.text), "next": "/"},
               follow_redirects=False)
    assert r.status_code == 303, r.text
    return c


def post_form(c: TestClient, page: str, url: str, data: dict[str, Any]) -> Any:
    """POST a form of ``page`` with the page's CSRF token."""
    token = csrf_of(c.get(page).text)
    return c.post(url, data={**data, "csrf_token": token}, follow_redirects=False)


def file_request(c: TestClient, ids: list[int], purpose: str = PURPOSE,
                 analyses: tuple[str, ...] = ("anonymize",)) -> int:
    """File an access request through the form; returns its id."""
    r = post_form(c, "/requests/new", "/requests/new",
                  {"datasets": ids, "purpose": purpose, "analyses": list(analyses),
                   "code": "DUO:0000006", "genetic_study": "on",
                   "not_for_profit_org": "on"})
    assert r.status_code == 303, r.text
    return int(r.headers["location"].rsplit("/", 1)[1])


def approve(hub: Hub, request_id: int, **extra: Any) -> None:
    """The committee approves through the decision form."""
    c = login(hub, "committee")
    page = f"/requests/{request_id}"
    r = post_form(c, page, f"{page}/decision",
                  {"decision": "approve", "reason": "fits the consent", **extra})
    assert r.status_code == 303, r.text


def test_login_logout__session_cookie_and_redirects(hub: Hub) -> None:
    c = hub.client()
    r = c.get("/jobs?x=1", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fjobs%3Fx%3D1"
    r = c.get("/login")
    assert r.status_code == 200 and "secured_bio" in r.text and "Innohub" in r.text
    assert "sb_csrf" in r.cookies
    bad = c.post("/login", data={"username": "researcher", "password": "wrong password!",
                                 "csrf_token": csrf_of(r.text)})
    assert bad.status_code == 401 and "wrong user name or password" in bad.text
    ok = c.post("/login", data={"username": "researcher", "password": PASSWORD,
                                "csrf_token": csrf_of(r.text), "next": "/jobs"},
                follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/jobs"
    assert "sb_session" in c.cookies
    home = c.get("/")
    assert home.status_code == 200 and "researcher" in home.text
    assert "My access requests" in home.text
    # a redirect elsewhere after login is refused
    r = c.get("/login")
    off = c.post("/login", data={"username": "researcher", "password": PASSWORD,
                                 "csrf_token": csrf_of(r.text), "next": "//evil.example/"},
                 follow_redirects=False)
    assert off.headers["location"] == "/"
    out = post_form(c, "/", "/logout", {})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert c.get("/", follow_redirects=False).status_code == 303
    # without asking for HTML (scripts), a page answers JSON 401
    plain = TestClient(hub.app)
    assert plain.get("/pages-api/jobs/1").status_code == 401


def test_pages__render_per_role_with_the_api_permissions(hub: Hub) -> None:
    ds1 = hub.datasets["clin-site1"]
    researcher = login(hub, "researcher")
    rid = file_request(researcher, [ds1])
    expect = {
        "researcher": ["My access requests", "My jobs"],
        "committee": ["Pending requests", PURPOSE[:40]],
        "steward-site1": ["Datasets of site1", "clin-site1"],
        "admin": ["Sites", "Users", "chain intact", "steward-site2"],
    }
    for user, texts in expect.items():
        c = login(hub, user)
        home = c.get("/")
        assert home.status_code == 200, (user, home.text)
        for text in texts:
            assert text in home.text, (user, text)
        cat = c.get("/datasets", params={"q": "clin", "kind": "clinical"})
        assert cat.status_code == 200 and "clin-site3" in cat.text
        assert "GRU (general research use)" in cat.text and "100 rows" in cat.text
        assert ("Request access to the selected" in cat.text) == (user == "researcher")
        detail = c.get(f"/datasets/{ds1}")
        assert detail.status_code == 200 and "<dt>n_columns</dt>" in detail.text
        assert c.get("/requests").status_code == 200
        assert c.get("/jobs").status_code == 200
        req = c.get(f"/requests/{rid}")
        # stewards see requests for their site's data; others as the API decides
        assert req.status_code == 200, (user, req.text)
        audit = c.get("/audit")
        assert audit.status_code == (200 if user in ("admin", "committee") else 403), user
    filtered = researcher.get("/datasets", params={"site": "site2"})
    assert "clin-site2" in filtered.text and "clin-site1" not in filtered.text
    assert login(hub, "steward-site2").get(f"/requests/{rid}").status_code == 404
    assert login(hub, "researcher2").get(f"/requests/{rid}").status_code == 404
    missing = researcher.get("/datasets/999")
    assert missing.status_code == 404 and "no dataset 999" in missing.text
    audit = login(hub, "admin").get("/audit")
    assert "chain intact" in audit.text and "request.create" in audit.text


def test_decision__only_the_committee_sees_the_form_and_decides(hub: Hub) -> None:
    researcher = login(hub, "researcher")
    rid = file_request(researcher, [hub.datasets["clin-site1"]])
    page = researcher.get(f"/requests/{rid}")
    assert page.status_code == 200 and 'id="decision"' not in page.text
    r = post_form(researcher, f"/requests/{rid}", f"/requests/{rid}/decision",
                  {"decision": "approve", "reason": "self-service"})
    assert r.status_code == 403 and "committee" in r.text
    committee = login(hub, "committee")
    page = committee.get(f"/requests/{rid}")
    assert 'id="decision"' in page.text and "Allowed job kinds" in page.text
    past = post_form(committee, f"/requests/{rid}", f"/requests/{rid}/decision",
                     {"decision": "approve", "reason": "ok", "expires_at": "2001-01-01"})
    assert past.status_code == 422 and "the expiry is in the past" in past.text
    approve(hub, rid, expires_at="2999-12-31", allowed_kinds=["anonymize", "synthesize"],
            dp_budget="2.5")
    done = researcher.get(f"/requests/{rid}")
    assert "approved" in done.text and "anonymize, synthesize" in done.text
    assert "0.0 of 2.5 spent" in done.text and "/jobs/new?request=" in done.text
    again = post_form(committee, f"/requests/{rid}", f"/requests/{rid}/decision",
                      {"decision": "deny", "reason": "changed my mind"})
    assert again.status_code == 409 and "already decided" in again.text
    assert 'id="decision"' not in again.text
    assert researcher.get("/requests/new").status_code == 200
    assert committee.get("/requests/new").status_code == 403


def test_csrf__posts_without_or_with_a_wrong_token_are_refused(hub: Hub) -> None:
    c = hub.client()
    c.get("/login")
    r = c.post("/login", data={"username": "researcher", "password": PASSWORD})
    assert r.status_code == 403 and "the form expired, reload the page" in r.text
    c = login(hub, "researcher")
    body = {"datasets": [hub.datasets["clin-site1"]], "purpose": PURPOSE,
            "analyses": ["anonymize"], "code": "DUO:0000006"}
    assert c.post("/requests/new", data=body).status_code == 403
    wrong = c.post("/requests/new", data={**body, "csrf_token": "0" * 40})
    assert wrong.status_code == 403 and "the form expired" in wrong.text
    # a token of another browser (another cookie) does not fit this browser's cookie
    other = hub.client().get("/login")
    assert c.post("/requests/new", data={**body, "csrf_token": csrf_of(other.text)}
                  ).status_code == 403
    assert c.post("/logout").status_code == 403
    assert c.get("/").status_code == 200  # still logged in
    assert c.get("/requests").text.count("/requests/") >= 1
    with session_scope(hub.app.state.sessions) as s:
        assert s.query(AuditEvent).filter_by(action="request.create").count() == 0
    r = c.get("/login")
    assert r.headers["content-security-policy"].count("script-src 'self'") == 1


def test_html_injection__purpose_and_description_are_escaped(hub: Hub) -> None:
    c = login(hub, "researcher")
    cat = c.get("/datasets")
    assert ESCAPED in cat.text and XSS not in cat.text
    detail = c.get(f"/datasets/{hub.datasets['clin-site1']}")
    assert ESCAPED in detail.text and XSS not in detail.text
    rid = file_request(c, [hub.datasets["clin-site1"]], purpose=f"Asthma study {XSS} here")
    for user in ("researcher", "committee"):
        for page in (f"/requests/{rid}", "/requests", "/"):
            text = login(hub, user).get(page).text
            assert XSS not in text, (user, page)
        assert ESCAPED in login(hub, user).get(f"/requests/{rid}").text
    # a failed form shows the typed text back, escaped
    r = post_form(c, "/requests/new", "/requests/new",
                  {"datasets": [], "purpose": XSS, "analyses": ["anonymize"]})
    assert r.status_code == 422 and ESCAPED in r.text and XSS not in r.text
    assert "<script" not in re.sub(r'<script src="/static/hub.js" defer></script>', "", r.text)


def _run_task(hub: Hub, site: str, *, upload: bytes | None = None, finish: bool = True
              ) -> int:
    """The site's agent claims its task, reports progress, uploads, completes."""
    c = TestClient(hub.app)
    task = c.post("/api/v1/agent/tasks/claim", headers=hub.agent(site)).json()["task"]
    assert task is not None
    tid = task["id"]
    r = c.post(f"/api/v1/agent/tasks/{tid}/progress", headers=hub.agent(site),
               json={"progress": 0.5, "message": "anonymizing"})
    assert r.status_code == 200 and r.json() == {"cancel": False}
    if upload is not None:
        passport = {"classification": {"category": "anonymous",
                                       "treat_as_personal_data": False}}
        r = c.post(f"/api/v1/agent/tasks/{tid}/artifacts", headers=hub.agent(site),
                   files={"file": ("plot.png", io.BytesIO(upload), "image/png")},
                   data={"name": "plot.png", "kind": "figure",
                         "passport": json.dumps(passport)})
        assert r.status_code == 201, r.text
    if finish:
        r = c.post(f"/api/v1/agent/tasks/{tid}/complete", headers=hub.agent(site),
                   json={"status": "succeeded"})
        assert r.status_code == 200, r.text
    return int(task["job_id"])


def test_jobs__form_live_json_cancel_and_artifact_gating(hub: Hub) -> None:
    ds1 = hub.datasets["clin-site1"]
    researcher = login(hub, "researcher")
    rid = file_request(researcher, [ds1], analyses=("anonymize", "synthesize"))
    assert researcher.get(f"/jobs/new?request={rid}").status_code == 403  # pending
    approve(hub, rid)
    form = researcher.get(f"/jobs/new?request={rid}")
    assert form.status_code == 200 and 'name="anonymize.k"' in form.text
    bad = post_form(researcher, f"/jobs/new?request={rid}", "/jobs/new",
                    {"request": rid, "kind": "anonymize", "datasets": [ds1],
                     "anonymize.k": "5", "extra": "out=/etc/passwd"})
    assert bad.status_code == 422 and "chosen by the site" in bad.text
    r = post_form(researcher, f"/jobs/new?request={rid}", "/jobs/new",
                  {"request": rid, "kind": "anonymize", "datasets": [ds1],
                   "anonymize.k": "5", "anonymize.quasi_identifiers": "age, sex",
                   "extra": "max_suppression=0.1\n# comment\nmethod=mondrian"})
    assert r.status_code == 303, r.text
    job_id = int(r.headers["location"].rsplit("/", 1)[1])
    live = researcher.get(f"/pages-api/jobs/{job_id}")
    assert live.status_code == 200
    assert live.json()["params"] == {"k": 5, "quasi_identifiers": ["age", "sex"],
                                     "max_suppression": 0.1, "method": "mondrian"}
    page = researcher.get(f"/jobs/{job_id}")
    assert f'data-url="/pages-api/jobs/{job_id}"' in page.text
    assert "Cancel the job" in page.text and "queued" in page.text

    assert _run_task(hub, "site1", upload=PNG, finish=False) == job_id
    mid = researcher.get(f"/pages-api/jobs/{job_id}").json()
    assert mid["status"] == "running" and mid["sites"][0]["progress"] == 0.5
    assert mid["sites"][0]["message"] == "anonymizing"
    c = TestClient(hub.app)
    tid = c.post("/api/v1/agent/tasks/claim", headers=hub.agent("site1")).json()
    assert tid == {"task": None}
    with session_scope(hub.app.state.sessions) as s:
        from secured_bio.hub.models import Task

        task_id = s.query(Task).filter_by(job_id=job_id).one().id
    c.post(f"/api/v1/agent/tasks/{task_id}/complete", headers=hub.agent("site1"),
           json={"status": "succeeded"})
    done = researcher.get(f"/jobs/{job_id}")
    assert "succeeded" in done.text and "Cancel the job" not in done.text
    art_id = researcher.get(f"/pages-api/jobs/{job_id}").json()["artifacts"][0]["id"]
    assert f'href="/artifacts/{art_id}"' in done.text

    art = researcher.get(f"/artifacts/{art_id}")
    with session_scope(hub.app.state.sessions) as s:
        from secured_bio.hub.models import Artifact

        doc = s.get(Artifact, art_id).passport  # the hub builds one for a bare release
    category = doc["classification"]["category"]
    assert art.status_code == 200
    assert f'class="classification class-{category}"' in art.text
    assert f"<strong>{category}</strong>" in art.text
    assert f'<img src="/artifacts/{art_id}/download"' in art.text
    assert "sandbox" in art.text or "All passport fields" in art.text
    dl = researcher.get(f"/artifacts/{art_id}/download")
    assert dl.status_code == 200 and dl.content == PNG
    assert dl.headers["content-type"] == "image/png"
    with session_scope(hub.app.state.sessions) as s:
        assert s.query(AuditEvent).filter_by(action="artifact.download").count() == 1
    committee = login(hub, "committee")
    page = committee.get(f"/artifacts/{art_id}")
    assert page.status_code == 200 and "Download not available" in page.text
    assert "<img" not in page.text
    assert committee.get(f"/artifacts/{art_id}/download").status_code == 403
    assert login(hub, "steward-site1").get(f"/artifacts/{art_id}/download").content == PNG
    assert login(hub, "steward-site2").get(f"/artifacts/{art_id}").status_code == 404
    other = login(hub, "researcher2")
    assert other.get(f"/artifacts/{art_id}").status_code == 404
    assert other.get(f"/artifacts/{art_id}/download").status_code == 404
    assert other.get(f"/pages-api/jobs/{job_id}").status_code == 404

    # a second job, cancelled from its page
    r = post_form(researcher, f"/jobs/new?request={rid}", "/jobs/new",
                  {"request": rid, "kind": "anonymize", "datasets": [ds1],
                   "anonymize.k": "3", "anonymize.quasi_identifiers": "age"})
    second = int(r.headers["location"].rsplit("/", 1)[1])
    assert post_form(other, "/", f"/jobs/{second}/cancel", {}).status_code == 404
    r = post_form(researcher, f"/jobs/{second}", f"/jobs/{second}/cancel", {})
    assert r.status_code == 303
    assert researcher.get(f"/pages-api/jobs/{second}").json()["status"] == "cancelled"
    listing = researcher.get("/jobs")
    assert f'href="/jobs/{second}"' in listing.text and "cancelled" in listing.text
