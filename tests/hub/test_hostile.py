"""Hostile input: injection strings stored verbatim and returned inert, path tricks in
artifact names refused, oversized uploads refused without a trace, malformed JSON explained."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hub._hub import (
    build_world,
    create_job,
    dataset,
    hub_settings,
    register,
    request_access,
    seed_app,
)
from sqlalchemy import func, select

from secured_bio.hub.app import create_app
from secured_bio.hub.db import session_scope
from secured_bio.hub.models import Artifact, Task

NASTY = [
    "Robert'); DROP TABLE users; --",
    "' OR '1'='1' --",
    "1; DELETE FROM audit_events WHERE 1=1; --",
    '<script>alert("x")</script><img src=x onerror=alert(1)>',
    "\" UNION SELECT password_hash FROM users --",
]


def _claimed_task(client, world) -> int:  # noqa: ANN001
    create_job(client, world.headers["researcher"], world.request_id,
               [world.datasets["clin-site1"]])
    return client.post("/api/v1/agent/tasks/claim",
                       headers=world.agent("site1")).json()["task"]["id"]


def _artifact_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_injection_strings_are_stored_verbatim(client, hub_app, world) -> None:  # noqa: ANN001
    r, c = world.headers["researcher"], world.headers["committee"]
    token = world.seed.site_tokens["site2"]
    names = [f"{n} #{i}" for i, n in enumerate(NASTY)]
    reg = register(client, token, [dataset(n, description=n, contact=n[:200],
                                           metadata={"note": n}) for n in names])
    got = {d["id"]: d for d in client.get("/api/v1/datasets", headers=r,
                                          params={"site": "site2"}).json()}
    for d, n in zip(reg, names, strict=True):
        assert got[d["id"]]["name"] == n and got[d["id"]]["description"] == n
        assert got[d["id"]]["metadata"] == {"note": n}
    # search with an injection string is a plain substring search
    assert [d["name"] for d in client.get("/api/v1/datasets", headers=r,
                                          params={"q": names[1]}).json()] == [names[1]]
    for n in NASTY:
        req = request_access(client, r, [reg[0]["id"]], purpose=f"purpose: {n}")
        assert req["purpose"] == f"purpose: {n}"
        resp = client.post(f"/api/v1/access-requests/{req['id']}/decision", headers=c,
                           json={"decision": "approve", "reason": n, "dp_budget": 1})
        assert resp.headers["content-type"].startswith("application/json")
        assert resp.json()["decision_reason"] == n
        params = {"k": 3, "sensitive": n, "quasi_identifiers": [n, "age"]}
        if "/" in n:  # params never hold a path separator (the sites' allow-list)
            bad = client.post("/api/v1/jobs", headers=r, json={
                "access_request": req["id"], "kind": "anonymize", "datasets": [reg[0]["id"]],
                "params": params})
            assert bad.status_code == 422 and "params.sensitive" in bad.json()["detail"]
            continue
        job = create_job(client, r, req["id"], [reg[0]["id"]], params=params)
        assert job["params"]["sensitive"] == n and job["params"]["quasi_identifiers"][0] == n
    # the agent's progress message and error text
    task = client.post("/api/v1/agent/tasks/claim", headers={"Authorization": f"Bearer {token}"}
                       ).json()["task"]
    client.post(f"/api/v1/agent/tasks/{task['id']}/progress",
                headers={"Authorization": f"Bearer {token}"},
                json={"progress": 0.1, "message": NASTY[3]})
    running = client.get(f"/api/v1/jobs/{task['job_id']}", headers=r).json()
    assert running["sites"][0]["message"] == NASTY[3]
    client.post(f"/api/v1/agent/tasks/{task['id']}/complete",
                headers={"Authorization": f"Bearer {token}"},
                json={"status": "failed", "error": NASTY[0]})
    job = client.get(f"/api/v1/jobs/{task['job_id']}", headers=r)
    assert job.headers["content-type"].startswith("application/json")
    assert NASTY[0] in job.json()["error"]
    # an injection string as a param *name* is refused, not executed
    bad = client.post("/api/v1/jobs", headers=r, json={
        "access_request": world.request_id, "kind": "anonymize",
        "datasets": [world.datasets["clin-site1"]], "params": {NASTY[0]: 1}})
    assert bad.status_code == 422 and "param name" in bad.json()["detail"]
    # the database still works and still holds everyone
    assert client.get("/api/v1/health").json()["status"] == "ok"
    assert client.get("/api/v1/me", headers=r).json()["username"] == "researcher"
    assert len(client.get("/api/v1/datasets", headers=r).json()) == 3 + len(NASTY)
    audit = client.get("/api/v1/audit", headers={**c}).json()
    assert audit["chain_ok"] is True


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_artifact_names_cannot_escape(client, hub_app, world) -> None:  # noqa: ANN001
    root = hub_app.state.settings.artifacts_dir
    task = _claimed_task(client, world)
    a1 = world.agent("site1")
    for name in ["../x", "/etc/passwd", "a/b", "..", "...", ".hidden", "a\\b", "x/../../y",
                 "..\u2215x", "a\u2215b", "\uff0e\uff0e\uff0fx", "r\u00e9sum\u00e9.csv",
                 "a\u202egpj.exe", "nul\x00.csv", " lead.csv", "", "a" * 201]:
        r = client.post(f"/api/v1/agent/tasks/{task}/artifacts", headers=a1,
                        files={"file": ("f", io.BytesIO(b"data"), "text/plain")},
                        data={"name": name})
        assert r.status_code == 422, (name, r.status_code, r.text)
        assert r.json()["detail"]
    assert _artifact_files(root) == []
    # a hostile *file* name in the multipart header is ignored: bytes land under their hash
    ok = client.post(f"/api/v1/agent/tasks/{task}/artifacts", headers=a1,
                     files={"file": ("../../../../etc/cron.d/x", io.BytesIO(b"data"))},
                     data={"name": "result.txt"})
    assert ok.status_code == 201
    [stored] = _artifact_files(root)
    assert stored.name == ok.json()["sha256"] and stored.parent.parent == root
    with session_scope(hub_app.state.sessions) as s:
        assert s.scalar(select(func.count()).select_from(Artifact)) == 1


def _multipart(name: str, payload: bytes) -> tuple[bytes, str]:
    boundary = "hubtestboundary7MA4YWxk"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + payload + (
            f"\r\n--{boundary}--\r\n").encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_oversized_uploads_leave_nothing(db_url, tmp_path) -> None:  # noqa: ANN001
    app = create_app(hub_settings(tmp_path, db_url, max_upload_mb=1))
    try:
        seed = seed_app(app)
        with TestClient(app) as client:
            world = build_world(client, seed)
            task = _claimed_task(client, world)
            url, a1 = f"/api/v1/agent/tasks/{task}/artifacts", world.agent("site1")
            root = app.state.settings.artifacts_dir
            # over max_upload_mb but under the request limit: refused while it streams in
            r = client.post(url, headers=a1, data={"name": "big.bin"},
                            files={"file": ("f", io.BytesIO(os.urandom(3 << 19)))})
            assert r.status_code == 413 and "exceeds 1 MB" in r.json()["detail"], r.text
            # over the request limit: refused from its Content-Length, before reading it
            r = client.post(url, headers=a1, data={"name": "big.bin"},
                            files={"file": ("f", io.BytesIO(os.urandom(3 << 20)))})
            assert r.status_code == 413 and r.json()["detail"]
            # chunked (no Content-Length): refused once the stream passes the limit
            body, ctype = _multipart("big.bin", os.urandom(3 << 20))
            r = client.post(url, headers={**a1, "content-type": ctype},
                            content=(body[i:i + 65536] for i in range(0, len(body), 65536)))
            assert r.status_code == 413, r.text
            assert _artifact_files(root) == []
            with session_scope(app.state.sessions) as s:
                assert s.scalar(select(func.count()).select_from(Artifact)) == 0
            ok = client.post(url, headers=a1, data={"name": "small.bin"},
                             files={"file": ("f", io.BytesIO(b"x" * 1000))})
            assert ok.status_code == 201 and len(_artifact_files(root)) == 1
    finally:
        app.state.engine.dispose()


def test_malformed_json_is_422(client, world) -> None:  # noqa: ANN001
    r = world.headers["researcher"]
    for raw in (b"{", b'{"datasets": [1,], "purpose": "x"}', b"\xff\xfe", b"null", b"[]"):
        resp = client.post("/api/v1/access-requests", content=raw,
                           headers={**r, "content-type": "application/json"})
        assert resp.status_code == 422, (raw, resp.text)
        body = resp.json()
        assert body["detail"].startswith("invalid request") and body["fix"]
    agent = client.post("/api/v1/agent/register", content=b'{"datasets": "all"',
                        headers={**world.agent("site1"), "content-type": "application/json"})
    assert agent.status_code == 422 and "invalid request" in agent.json()["detail"]
    with session_scope(client.app.state.sessions) as s:
        assert s.scalar(select(func.count()).select_from(Task)) == 0
