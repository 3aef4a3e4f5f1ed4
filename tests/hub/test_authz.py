"""Authorization matrix: every API route x every kind of caller -> the intended status.

The routes are enumerated from the app, so a new route without a row here fails the test.
Rows that change state get fresh objects for each caller (a new pending request, a new job,
a new running task), so each cell is judged on its own.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hub._hub import ANON, PASSWORD, World, create_job, request_access
from sqlalchemy import select
from starlette.routing import Route

from secured_bio.hub.db import session_scope
from secured_bio.hub.models import Task
from secured_bio.hub.services.jobs import refresh_status

CALLERS = ("anonymous", "admin", "researcher", "researcher2", "committee", "steward-site1",
           "steward-site2", "agent-site1", "agent-site2")
USER_CALLERS = CALLERS[1:7]


def users(admin: int, researcher: int, researcher2: int, committee: int, steward_own: int,
          steward_other: int) -> dict[str, int]:
    """A people's route: anonymous 401, site agents 403 (their token is not a user's)."""
    return {"anonymous": 401, "admin": admin, "researcher": researcher,
            "researcher2": researcher2, "committee": committee, "steward-site1": steward_own,
            "steward-site2": steward_other, "agent-site1": 403, "agent-site2": 403}


def agents(own: int, other: int) -> dict[str, int]:
    """An agent route: only site tokens (401 for people and anonymous)."""
    return {**dict.fromkeys(CALLERS, 401), "agent-site1": own, "agent-site2": other}


def everyone(status: int) -> dict[str, int]:
    """A public route."""
    return dict.fromkeys(CALLERS, status)


@dataclass
class Ctx:
    """The scene: the researcher's job at site1 with one artifact (task still running)."""

    client: Any
    app: Any
    world: World
    job: int
    task: int
    artifact: int

    def new_job(self) -> int:
        return create_job(self.client, self.world.headers["researcher"], self.world.request_id,
                          [self.world.datasets["clin-site1"]])["id"]

    def new_running_task(self) -> int:
        job = self.new_job()
        with session_scope(self.app.state.sessions) as s:
            task = s.scalars(select(Task).where(Task.job_id == job)).one()
            task.status = "running"
            refresh_status(s, task.job)
            return task.id

    def new_pending_request(self) -> int:
        return request_access(self.client, self.world.headers["researcher"],
                              [self.world.datasets["clin-site1"]])["id"]


Req = Callable[[Ctx], dict[str, Any]]


def _get(url: str) -> Req:
    return lambda c: {"method": "GET", "url": url.format(c=c)}


MATRIX: dict[tuple[str, str], tuple[dict[str, int], Req]] = {
    ("GET", "/api/v1/health"): (everyone(200), _get("/api/v1/health")),
    ("GET", "/api/v1/openapi.json"): (everyone(200), _get("/api/v1/openapi.json")),
    ("GET", "/api/v1/docs"): (everyone(200), _get("/api/v1/docs")),
    ("POST", "/api/v1/auth/token"): (everyone(200), lambda c: {
        "method": "POST", "url": "/api/v1/auth/token",
        "data": {"username": "researcher", "password": PASSWORD}}),
    ("GET", "/api/v1/me"): (users(200, 200, 200, 200, 200, 200), _get("/api/v1/me")),
    ("GET", "/api/v1/datasets"): (users(200, 200, 200, 200, 200, 200),
                                  _get("/api/v1/datasets")),
    ("GET", "/api/v1/datasets/{dataset_id}"): (
        users(200, 200, 200, 200, 200, 200),
        _get("/api/v1/datasets/{c.world.datasets[clin-site1]}")),
    ("GET", "/api/v1/access-requests"): (users(200, 200, 200, 200, 200, 200),
                                         _get("/api/v1/access-requests")),
    ("POST", "/api/v1/access-requests"): (users(403, 201, 201, 403, 403, 403), lambda c: {
        "method": "POST", "url": "/api/v1/access-requests",
        "json": {"datasets": [c.world.datasets["clin-site2"]],
                 "purpose": "Outcomes of asthma treatment in children",
                 "analyses": ["anonymize"]}}),
    ("GET", "/api/v1/access-requests/{request_id}"): (
        users(200, 200, 404, 200, 200, 404), _get("/api/v1/access-requests/{c.world.request_id}")),
    ("POST", "/api/v1/access-requests/{request_id}/decision"): (
        users(403, 403, 403, 200, 403, 403), lambda c: {
            "method": "POST", "url": f"/api/v1/access-requests/{c.new_pending_request()}/decision",
            "json": {"decision": "approve", "reason": "consent fits"}}),
    ("GET", "/api/v1/jobs"): (users(200, 200, 200, 200, 200, 200), _get("/api/v1/jobs")),
    ("POST", "/api/v1/jobs"): (users(403, 201, 404, 403, 403, 403), lambda c: {
        "method": "POST", "url": "/api/v1/jobs",
        "json": {"access_request": c.world.request_id, "kind": "anonymize",
                 "datasets": [c.world.datasets["clin-site1"]], "params": ANON}}),
    ("GET", "/api/v1/jobs/{job_id}"): (users(200, 200, 404, 200, 200, 404),
                                       _get("/api/v1/jobs/{c.job}")),
    ("POST", "/api/v1/jobs/{job_id}/cancel"): (users(200, 200, 404, 403, 403, 404), lambda c: {
        "method": "POST", "url": f"/api/v1/jobs/{c.new_job()}/cancel"}),
    ("GET", "/api/v1/artifacts/{artifact_id}"): (users(200, 200, 404, 200, 200, 404),
                                                 _get("/api/v1/artifacts/{c.artifact}")),
    ("GET", "/api/v1/artifacts/{artifact_id}/download"): (
        users(200, 200, 404, 403, 200, 404), _get("/api/v1/artifacts/{c.artifact}/download")),
    ("GET", "/api/v1/artifacts/{artifact_id}/passport"): (
        users(200, 200, 404, 200, 200, 404), _get("/api/v1/artifacts/{c.artifact}/passport")),
    ("GET", "/api/v1/artifacts/{artifact_id}/passport.html"): (
        users(200, 200, 404, 200, 200, 404),
        _get("/api/v1/artifacts/{c.artifact}/passport.html")),
    ("GET", "/api/v1/audit"): (users(200, 403, 403, 200, 403, 403), _get("/api/v1/audit")),
    ("POST", "/api/v1/agent/register"): (agents(200, 200), lambda c: {
        "method": "POST", "url": "/api/v1/agent/register",
        "json": {"agent_version": "t", "datasets": []}}),
    ("POST", "/api/v1/agent/tasks/claim"): (agents(200, 200), lambda c: {
        "method": "POST", "url": "/api/v1/agent/tasks/claim"}),
    ("POST", "/api/v1/agent/tasks/{task_id}/progress"): (agents(200, 404), lambda c: {
        "method": "POST", "url": f"/api/v1/agent/tasks/{c.new_running_task()}/progress",
        "json": {"progress": 0.3, "message": "working"}}),
    ("POST", "/api/v1/agent/tasks/{task_id}/artifacts"): (agents(201, 404), lambda c: {
        "method": "POST", "url": f"/api/v1/agent/tasks/{c.new_running_task()}/artifacts",
        "files": {"file": ("r.csv", io.BytesIO(b"a,b\n1,2\n"), "text/csv")},
        "data": {"name": "r.csv"}}),
    ("POST", "/api/v1/agent/tasks/{task_id}/complete"): (agents(200, 404), lambda c: {
        "method": "POST", "url": f"/api/v1/agent/tasks/{c.new_running_task()}/complete",
        "json": {"status": "succeeded"}}),
    ("POST", "/api/v1/agent/beacon/claim"): (agents(200, 200), lambda c: {
        "method": "POST", "url": "/api/v1/agent/beacon/claim", "json": {"wait_s": 0}}),
    ("POST", "/api/v1/agent/beacon/{query_id}/answer"): (agents(404, 404), lambda c: {
        "method": "POST", "url": "/api/v1/agent/beacon/0123abcd/answer",
        "json": {"values": [1]}}),
}


def _walk(routes: list[Any], prefix: str = "") -> list[tuple[str, set[str]]]:
    out = []
    for r in routes:
        included = getattr(r, "original_router", None)  # FastAPI >= 0.13x wraps routers
        if included is not None:
            ctx = getattr(r, "include_context", None)
            out += _walk(included.routes, prefix + (getattr(ctx, "prefix", "") or ""))
        elif isinstance(r, Route):
            out.append((prefix + r.path, set(r.methods or ())))
    return out


def api_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every route under /api/ (included routers walked)."""
    return {(m, path) for path, methods in _walk(app.routes) if path.startswith("/api/")
            for m in methods - {"HEAD", "OPTIONS"}}


def _scene(client: Any, app: Any, world: World) -> Ctx:
    r, a1 = world.headers["researcher"], world.agent("site1")
    job = create_job(client, r, world.request_id, [world.datasets["clin-site1"]])["id"]
    task = client.post("/api/v1/agent/tasks/claim", headers=a1).json()["task"]["id"]
    art = client.post(f"/api/v1/agent/tasks/{task}/artifacts", headers=a1,
                      files={"file": ("t.csv", io.BytesIO(b"x\n1\n"), "text/csv")},
                      data={"name": "table.csv"})
    assert art.status_code == 201, art.text
    return Ctx(client, app, world, job, task, art.json()["id"])


def _headers(world: World, caller: str) -> dict[str, str]:
    if caller == "anonymous":
        return {}
    if caller.startswith("agent-"):
        return world.agent(caller.removeprefix("agent-"))
    return world.headers[caller]


def test_every_route_has_a_row(hub_app) -> None:  # noqa: ANN001
    routes = api_routes(hub_app)
    missing = sorted(routes - MATRIX.keys())
    assert not missing, f"routes without an authorization row in test_authz.MATRIX: {missing}"
    gone = sorted(MATRIX.keys() - routes)
    assert not gone, f"rows for routes that no longer exist: {gone}"


def test_authorization_matrix(client, hub_app, world: World) -> None:  # noqa: ANN001
    ctx = _scene(client, hub_app, world)
    wrong = []
    for (method, path), (expected, make) in sorted(MATRIX.items()):
        if (method, path) not in api_routes(hub_app):
            continue  # reported by test_every_route_has_a_row
        for caller in CALLERS:
            req = make(ctx)
            headers = {**_headers(world, caller), **req.pop("headers", {})}
            r = client.request(headers=headers, **req)
            if r.status_code != expected[caller]:
                wrong.append(f"{method} {path} as {caller}: {r.status_code} "
                             f"(expected {expected[caller]}) {r.text[:120]}")
            elif r.status_code >= 400:
                body = r.json()
                if not (isinstance(body.get("detail"), str) and body["detail"]):
                    wrong.append(f"{method} {path} as {caller}: error without a detail")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_researcher_cannot_stretch_a_grant(client, world: World) -> None:  # noqa: ANN001
    """A second researcher's own approved grant does not reach the first one's datasets."""
    r2, c = world.headers["researcher2"], world.headers["committee"]
    mine = request_access(client, r2, [world.datasets["clin-site2"]])
    client.post(f"/api/v1/access-requests/{mine['id']}/decision", headers=c,
                json={"decision": "approve", "reason": "ok"})
    outside = client.post("/api/v1/jobs", headers=r2, json={
        "access_request": mine["id"], "kind": "anonymize",
        "datasets": [world.datasets["clin-site1"]]})
    assert outside.status_code == 403 and "not part of" in outside.json()["detail"]
    theirs = client.post("/api/v1/jobs", headers=r2, json={
        "access_request": world.request_id, "kind": "anonymize",
        "datasets": [world.datasets["clin-site1"]]})
    assert theirs.status_code == 404
    # a steward can see the request touching their site but cannot decide it
    s1 = world.headers["steward-site1"]
    assert client.get(f"/api/v1/access-requests/{world.request_id}",
                      headers=s1).status_code == 200
    assert client.post(f"/api/v1/access-requests/{mine['id']}/decision", headers=s1,
                       json={"decision": "deny", "reason": "x"}).status_code == 403
