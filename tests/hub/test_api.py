"""The hub's JSON contract, on SQLite and PostgreSQL: login, catalogue, requests, jobs, agents,
artifacts, and the errors (status + ``detail`` + ``fix``) of each refusal."""

from __future__ import annotations

import datetime as dt
import io
import json

from hub._hub import (
    PASSWORD,
    World,
    create_job,
    dataset,
    decide,
    login,
    register,
    request_access,
)

from secured_bio.hub import security
from secured_bio.hub.db import session_scope
from secured_bio.hub.models import AccessRequest, User

API = "/api/v1"


def _error(r, status: int, *words: str) -> dict:  # noqa: ANN001
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["detail"], str) and body["detail"]
    for w in words:
        assert w in body["detail"], body
    return body


def test_health_and_openapi(client) -> None:  # noqa: ANN001
    r = client.get(f"{API}/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert r.headers["x-content-type-options"] == "nosniff"
    paths = client.get(f"{API}/openapi.json").json()["paths"]
    for p in ("/api/v1/health", "/api/v1/auth/token", "/api/v1/datasets",
              "/api/v1/access-requests", "/api/v1/access-requests/{request_id}/decision",
              "/api/v1/jobs", "/api/v1/jobs/{job_id}", "/api/v1/jobs/{job_id}/cancel",
              "/api/v1/artifacts/{artifact_id}/download", "/api/v1/agent/register",
              "/api/v1/agent/tasks/claim", "/api/v1/agent/tasks/{task_id}/artifacts",
              "/api/v1/agent/tasks/{task_id}/complete"):
        assert p in paths, p


def test_login_tokens_and_expiry(client, hub_app, seed) -> None:  # noqa: ANN001
    r = client.post(f"{API}/auth/token", data={"username": "researcher", "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["role"] == "researcher"
    me = client.get(f"{API}/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["username"] == "researcher"
    bad = client.post(f"{API}/auth/token", data={"username": "researcher", "password": "nope"})
    assert _error(bad, 401, "wrong user name or password")["fix"]
    assert bad.headers["www-authenticate"] == "Bearer"
    unknown = client.post(f"{API}/auth/token", data={"username": "ghost", "password": "x"})
    assert unknown.json()["detail"] == bad.json()["detail"]  # no user enumeration
    assert _error(client.get(f"{API}/me"), 401, "not logged in")["fix"]
    with session_scope(hub_app.state.sessions) as s:
        uid = s.query(User).filter_by(username="researcher").one().id
    old, _ = security.issue_token(str(uid), key=hub_app.state.signing_key, minutes=-1)
    _error(client.get(f"{API}/me", headers={"Authorization": f"Bearer {old}"}), 401, "expired")
    forged, _ = security.issue_token(str(uid), key="not-the-hub-key-" * 4, minutes=5)
    _error(client.get(f"{API}/me", headers={"Authorization": f"Bearer {forged}"}), 401,
           "not valid")


def test_catalogue(client, world: World) -> None:  # noqa: ANN001
    h = world.headers["researcher"]
    rows = client.get(f"{API}/datasets", headers=h).json()
    assert {r["name"] for r in rows} == {"clin-site1", "clin-site2", "clin-site3"}
    for r in rows:
        assert {"id", "name", "site", "kind"} <= r.keys()
        assert r["kind"] in ("genotypes", "imaging", "vitals", "clinical")
    register(client, world.seed.site_tokens["site2"],
             [dataset("gen-site2", "genotypes", description="asthma GWAS array")])
    found = client.get(f"{API}/datasets", params={"q": "ASTHMA"}, headers=h).json()
    assert [d["name"] for d in found] == ["gen-site2"]
    by_site = client.get(f"{API}/datasets", params={"site": "site2"}, headers=h).json()
    assert {d["name"] for d in by_site} == {"clin-site2", "gen-site2"}
    assert [d["kind"] for d in client.get(f"{API}/datasets", params={"kind": "genotypes"},
                                          headers=h).json()] == ["genotypes"]
    _error(client.get(f"{API}/datasets", params={"kind": "rows"}, headers=h), 422, "kind")
    one = client.get(f"{API}/datasets/{world.datasets['clin-site1']}", headers=h).json()
    assert one["site"] == "site1" and one["duo"] == ["DUO:0000042"]
    assert _error(client.get(f"{API}/datasets/99999", headers=h), 404)["fix"]


def test_request_decisions(client, world: World) -> None:  # noqa: ANN001
    r, c = world.headers["researcher"], world.headers["committee"]
    ids = [world.datasets["clin-site2"], world.datasets["clin-site3"]]
    req = request_access(client, r, ids)
    assert req["status"] == "pending" and sorted(req["datasets"]) == sorted(ids)
    denied = decide(client, c, req["id"], "deny", reason="purpose too vague")
    assert denied["status"] == "denied" and denied["decision_reason"] == "purpose too vague"
    again = client.post(f"{API}/access-requests/{req['id']}/decision", headers=c,
                        json={"decision": "approve", "reason": "changed my mind"})
    assert _error(again, 409, "already decided")["fix"]
    job = client.post(f"{API}/jobs", headers=r, json={
        "access_request": req["id"], "kind": "anonymize", "datasets": ids[:1]})
    _error(job, 403, "denied")
    _error(client.post(f"{API}/access-requests/{req['id']}/decision", headers=c,
                       json={"decision": "maybe", "reason": "x"}), 422, "decision")
    listed = client.get(f"{API}/access-requests", headers=r).json()
    assert {x["id"] for x in listed} == {req["id"], world.request_id}
    _error(client.post(f"{API}/access-requests", headers=r,
                       json={"datasets": [999999], "purpose": "long enough purpose"}), 404)
    _error(client.post(f"{API}/access-requests", headers=r,
                       json={"datasets": ids, "purpose": "short"}), 422, "purpose")


def test_job_lifecycle_with_agent(client, world: World) -> None:  # noqa: ANN001
    r = world.headers["researcher"]
    job = create_job(client, r, world.request_id, [world.datasets["clin-site1"]],
                     params={"k": 5, "quasi_identifiers": ["age", "sex"]})
    assert job["status"] == "queued" and job["progress"] == 0 and job["artifacts"] == []
    a1 = world.agent("site1")
    assert client.post(f"{API}/agent/tasks/claim", headers=world.agent("site2")).json() == {
        "task": None}
    task = client.post(f"{API}/agent/tasks/claim", headers=a1).json()["task"]
    assert task["job_id"] == job["id"] and task["kind"] == "anonymize"
    assert task["params"]["k"] == 5 and task["world_size"] == 1 and task["rank"] == 0
    assert task["datasets"] == [{"id": world.datasets["clin-site1"], "name": "clin-site1"}]
    assert client.post(f"{API}/agent/tasks/claim", headers=a1).json() == {"task": None}
    assert client.get(f"{API}/jobs/{job['id']}", headers=r).json()["status"] == "running"
    p = client.post(f"{API}/agent/tasks/{task['id']}/progress", headers=a1,
                    json={"progress": 0.5, "message": "anonymizing"})
    assert p.json() == {"cancel": False}
    assert client.get(f"{API}/jobs/{job['id']}", headers=r).json()["progress"] == 0.5
    content = b"age,sex,diagnosis\n30-39,F,J45\n"
    up = client.post(f"{API}/agent/tasks/{task['id']}/artifacts", headers=a1,
                     files={"file": ("anon.csv", io.BytesIO(content), "text/csv")},
                     data={"name": "anonymized.csv", "kind": "table",
                               "passport": json.dumps(
                               {"classification": {"category": "anonymized"}})})
    assert up.status_code == 201, up.text
    done = client.post(f"{API}/agent/tasks/{task['id']}/complete", headers=a1,
                       json={"status": "succeeded"})
    assert done.json() == {"task": task["id"], "job_status": "succeeded"}
    again = client.post(f"{API}/agent/tasks/{task['id']}/complete", headers=a1,
                        json={"status": "succeeded"})
    assert again.status_code == 200  # the same end reported twice: a no-op
    _error(client.post(f"{API}/agent/tasks/{task['id']}/complete", headers=a1,
                       json={"status": "failed", "error": "x"}), 409, "not running")
    final = client.get(f"{API}/jobs/{job['id']}", headers=r).json()
    assert final["status"] == "succeeded" and final["progress"] == 1.0
    assert final["error"] is None
    [art] = final["artifacts"]
    assert art["id"] == up.json()["id"] and art["name"] == "anonymized.csv"
    meta = client.get(f"{API}/artifacts/{art['id']}", headers=r).json()
    assert meta["size"] == len(content) and meta["sha256"] == up.json()["sha256"]
    dl = client.get(meta["download"], headers=r)
    assert dl.status_code == 200 and dl.content == content
    passport = client.get(meta["passport"], headers=r).json()
    assert passport["classification"]["category"] == meta["classification"]
    assert str(job["id"]) in json.dumps(passport["produced_by"])  # the hub names the job
    assert "clin-site1" in json.dumps(passport["inputs"])
    assert passport["data_use"]["duo"] == ["DUO:0000042"]
    assert passport["artifact"]["sha256"] == meta["sha256"]
    html = client.get(f"{API}/artifacts/{art['id']}/passport.html", headers=r)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert [j["id"] for j in client.get(f"{API}/jobs", headers=r).json()] == [job["id"]]


def test_failed_and_cancelled_jobs(client, world: World) -> None:  # noqa: ANN001
    r, a1 = world.headers["researcher"], world.agent("site1")
    ds = [world.datasets["clin-site1"]]
    job = create_job(client, r, world.request_id, ds)
    task = client.post(f"{API}/agent/tasks/claim", headers=a1).json()["task"]
    client.post(f"{API}/agent/tasks/{task['id']}/complete", headers=a1,
                json={"status": "failed", "error": "k=5 not reachable"})
    failed = client.get(f"{API}/jobs/{job['id']}", headers=r).json()
    assert failed["status"] == "failed" and "site1" in failed["error"]
    assert "k=5 not reachable" in failed["error"]
    _error(client.post(f"{API}/jobs/{job['id']}/cancel", headers=r), 409, "failed")
    # cancelled while queued: never handed out
    queued = create_job(client, r, world.request_id, ds)
    assert client.post(f"{API}/jobs/{queued['id']}/cancel", headers=r).json()[
        "status"] == "cancelled"
    assert client.post(f"{API}/agent/tasks/claim", headers=a1).json() == {"task": None}
    # cancelled while running: the agent is told at its next report
    running = create_job(client, r, world.request_id, ds)
    task = client.post(f"{API}/agent/tasks/claim", headers=a1).json()["task"]
    assert client.post(f"{API}/jobs/{running['id']}/cancel", headers=r).status_code == 200
    p = client.post(f"{API}/agent/tasks/{task['id']}/progress", headers=a1,
                    json={"progress": 0.9, "message": "x"})
    assert p.json() == {"cancel": True}
    _error(client.post(f"{API}/agent/tasks/{task['id']}/artifacts", headers=a1,
                       files={"file": ("a", b"x")}, data={"name": "late.csv"}), 422,
           "cancelled")
    _error(client.get(f"{API}/jobs/424242", headers=r), 404)


def test_duo_violation_is_422(client, seed) -> None:  # noqa: ANN001
    [ds] = register(client, seed.site_tokens["site1"], [
        dataset("asthma-only", duo=("DUO:0000007", "DUO:0000046"))])
    h = login(client, "researcher")
    r = client.post(f"{API}/access-requests", headers=h, json={
        "datasets": [ds["id"]], "purpose": "General population health study",
        "purpose_terms": {"code": "DUO:0000006", "commercial": True}})
    body = _error(r, 422, "data-use conditions", "disease", "commercial")
    assert body["fix"]
    ok = client.post(f"{API}/access-requests", headers=h, json={
        "datasets": [ds["id"]], "purpose": "Asthma exacerbations in children",
        "analyses": ["anonymize"],
        "purpose_terms": {"code": "DUO:0000007", "disease": "MONDO:0004979"}})
    assert ok.status_code == 201 and ok.json()["status"] == "pending"


def test_grant_limits(client, hub_app, world: World) -> None:  # noqa: ANN001
    r = world.headers["researcher"]
    ds = [world.datasets["clin-site1"]]
    # DP budget of the grant is 2.0
    mst = {"rows": 50, "method": "mst"}
    create_job(client, r, world.request_id, ds, "synthesize", {**mst, "epsilon": 1.5})
    over = client.post(f"{API}/jobs", headers=r, json={
        "access_request": world.request_id, "kind": "synthesize", "datasets": ds,
        "params": {**mst, "epsilon": 1.0}})
    assert _error(over, 403, "epsilon")["fix"]
    assert client.get(f"{API}/access-requests/{world.request_id}",
                      headers=r).json()["dp_spent"] == 1.5
    create_job(client, r, world.request_id, ds, "synthesize", {**mst, "epsilon": 0.5})
    # kinds outside the grant, datasets outside the grant, forbidden params
    _error(client.post(f"{API}/jobs", headers=r, json={
        "access_request": world.request_id, "kind": "education_cases", "datasets": ds}),
        403, "does not allow")
    _error(client.post(f"{API}/jobs", headers=r, json={
        "access_request": world.request_id, "kind": "anonymize",
        "datasets": [world.datasets["clin-site2"]]}), 403, "not part of")
    _error(client.post(f"{API}/jobs", headers=r, json={
        "access_request": world.request_id, "kind": "anonymize", "datasets": ds,
        "params": {"out": "/tmp/x"}}), 422, "chosen by the site")
    # an expired grant
    with session_scope(hub_app.state.sessions) as s:
        s.get(AccessRequest, world.request_id).expires_at = (
            dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=1))
    _error(client.post(f"{API}/jobs", headers=r, json={
        "access_request": world.request_id, "kind": "anonymize", "datasets": ds}),
        403, "expired")


def test_malformed_requests(client, world: World) -> None:  # noqa: ANN001
    r = world.headers["researcher"]
    bad = client.post(f"{API}/access-requests", headers={**r, "content-type":
                      "application/json"}, content=b'{"datasets": [1], "purpose": ')
    body = _error(bad, 422, "invalid request")
    assert body["fix"] and body["errors"]
    wrong = client.post(f"{API}/jobs", headers=r, json={"access_request": "x", "kind": 3,
                                                        "datasets": []})
    assert "access_request" in _error(wrong, 422)["detail"]
    _error(client.get(f"{API}/no-such-route", headers=r), 404)
    _error(client.post(f"{API}/agent/tasks/claim",
                       headers={"Authorization": "Bearer sbsite_not-a-token"}), 401,
           "unknown site token")
