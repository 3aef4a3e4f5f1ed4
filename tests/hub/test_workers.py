"""Real hub processes on one database: two workers never hand a task out twice, and a hub
killed with SIGKILL mid-job restarts into a consistent state (resumable single-site tasks,
failed coordinated jobs, no half-visible artifact, an intact audit chain)."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import count
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from hub._hub import (
    SITES,
    build_world,
    create_job,
    dataset,
    decide,
    hub_settings,
    login,
    register,
    request_access,
    seed_app,
)
from sqlalchemy import func, select

from secured_bio.cli import main
from secured_bio.hub.app import create_app
from secured_bio.hub.db import session_scope
from secured_bio.hub.models import Artifact, Job, Task
from secured_bio.testing._hubserver import start_hub

TASKS_PER_SITE = 10


def _files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_two_hub_processes_hand_out_each_task_once(db_url, tmp_path, cli_env) -> None:  # noqa: ANN001
    app = create_app(hub_settings(tmp_path, db_url))
    seed = seed_app(app)
    with TestClient(app) as c:
        world = build_world(c, seed, dp_budget=None)
        r = world.headers["researcher"]
        ids = [world.datasets[f"clin-{s}"] for s in SITES]
        req = request_access(c, r, ids, analyses=("anonymize",))
        decide(c, world.headers["committee"], req["id"])
        jobs = [create_job(c, r, req["id"], [ds])["id"] for _ in range(TASKS_PER_SITE)
                for ds in ids]
    app.state.engine.dispose()
    hubs = [start_hub(db_url, tmp_path / "hub", env=cli_env) for _ in range(2)]
    try:
        claimed: list[tuple[int, int, str, str]] = []
        lock = threading.Lock()
        turn = count()

        def agent(i: int) -> None:
            site = SITES[i % len(SITES)]
            empty = 0
            with httpx.Client(timeout=60, headers=seed.agent(site)) as h:
                while empty < 3:
                    hub = hubs[next(turn) % 2]
                    resp = h.post(f"{hub.url}/api/v1/agent/tasks/claim")
                    assert resp.status_code == 200, resp.text
                    task = resp.json()["task"]
                    if task is None:
                        empty += 1
                        continue
                    with lock:
                        claimed.append((task["id"], task["job_id"], site, hub.url))

        with ThreadPoolExecutor(12) as pool:
            for f in [pool.submit(agent, i) for i in range(12)]:
                f.result()
        task_ids = [t for t, *_ in claimed]
        assert len(task_ids) == len(set(task_ids)), "a task was handed out twice"
        assert sorted(j for _, j, _, _ in claimed) == sorted(jobs), "a task was lost"
        assert {u for *_, u in claimed} == {h.url for h in hubs}  # both served claims
        app = create_app(hub_settings(tmp_path, db_url), run_migrations=False)
        with session_scope(app.state.sessions) as s:
            states = s.execute(select(Task.status, func.count()).group_by(Task.status)).all()
        app.state.engine.dispose()
        assert dict(states) == {"running": len(jobs)}
    finally:
        for h in hubs:
            h.stop()
    assert main(["hub", "verify-audit", "--db", db_url]) == 0


def _slow_multipart(started: threading.Event, stop: threading.Event):  # noqa: ANN202
    boundary = "killtestboundary"
    yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n"
           f"partial.bin\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
           "filename=\"f\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
    for _ in range(400):
        yield b"\0" * 65536
        started.set()
        if stop.wait(0.05):
            return
    yield f"\r\n--{boundary}--\r\n".encode()


def test_sigkill_mid_job_then_restart(db_url, tmp_path, cli_env) -> None:  # noqa: ANN001
    from secured_bio.privacy.smpc import create_identity

    data = tmp_path / "hub"
    app = create_app(hub_settings(tmp_path, db_url))
    seed = seed_app(app)
    ids: dict[str, int] = {}
    with TestClient(app) as c:
        for site in SITES:
            create_identity(site, tmp_path / "keys")
            pem = (tmp_path / "keys" / f"{site}.cert.pem").read_text()
            for d in register(c, seed.site_tokens[site],
                              [dataset(f"clin-{site}"), dataset(f"gen-{site}", "genotypes")],
                              smpc_cert=pem):
                ids[d["name"]] = d["id"]
        r = login(c, "researcher")
        req = request_access(c, r, list(ids.values()), analyses=("anonymize", "gwas_secure"))
        decide(c, login(c, "committee"), req["id"])
        anon = create_job(c, r, req["id"], [ids["clin-site1"]])["id"]
    app.state.engine.dispose()

    hub = start_hub(db_url, data, env=cli_env)
    a1 = seed.agent("site1")
    with httpx.Client(base_url=hub.url, timeout=60) as h:
        gwas = h.post("/api/v1/jobs", headers=r, json={
            "access_request": req["id"], "kind": "gwas_secure",
            "datasets": [ids[f"gen-{s}"] for s in SITES], "params": {"test": "linear"}})
        assert gwas.status_code == 201, gwas.text
        gwas_id = gwas.json()["id"]
        task = h.post("/api/v1/agent/tasks/claim", headers=a1).json()["task"]
        assert task["job_id"] == anon
        assert h.post(f"/api/v1/agent/tasks/{task['id']}/progress", headers=a1,
                      json={"progress": 0.4, "message": "half"}).json() == {"cancel": False}
    started, stop, outcome = threading.Event(), threading.Event(), []

    def upload() -> None:
        try:
            with httpx.Client(timeout=60) as h:
                outcome.append(h.post(
                    f"{hub.url}/api/v1/agent/tasks/{task['id']}/artifacts",
                    headers={**a1, "content-type": "multipart/form-data; boundary="
                             "killtestboundary"},
                    content=_slow_multipart(started, stop)).status_code)
        except httpx.HTTPError as e:
            outcome.append(type(e).__name__)

    sender = threading.Thread(target=upload)
    sender.start()
    assert started.wait(30)
    hub.kill()  # SIGKILL while the upload streams in
    stop.set()
    sender.join(60)
    assert outcome and not isinstance(outcome[0], int), outcome  # the upload never finished

    check = create_app(hub_settings(tmp_path, db_url), run_migrations=False)
    with session_scope(check.state.sessions) as s:
        assert s.get(Job, gwas_id).coordinator == f"{socket.gethostname()}:{hub.proc.pid}"
        assert s.scalar(select(func.count()).select_from(Artifact)) == 0
    check.state.engine.dispose()
    # nothing under its final (hash) name; a temporary file at most
    assert all(n.startswith(".upload-") for n in _files(data / "artifacts"))

    hub2 = start_hub(db_url, data, env=cli_env)
    try:
        with httpx.Client(base_url=hub2.url, timeout=60) as h:
            failed = h.get(f"/api/v1/jobs/{gwas_id}", headers=r).json()
            assert failed["status"] == "failed" and "restarted" in failed["error"], failed
            assert {t["status"] for t in failed["sites"]} == {"cancelled"}
            for site in ("site2", "site3"):  # the dead relay's tasks are not handed out
                assert h.post("/api/v1/agent/tasks/claim",
                              headers=seed.agent(site)).json() == {"task": None}
            assert h.get(f"/api/v1/jobs/{anon}", headers=r).json()["status"] == "running"
            assert h.post(f"/api/v1/agent/tasks/{task['id']}/progress", headers=a1,
                          json={"progress": 0.9, "message": "resumed"}).json() == {
                              "cancel": False}
            up = h.post(f"/api/v1/agent/tasks/{task['id']}/artifacts", headers=a1,
                        files={"file": ("f", b"k-anonymous table\n")},
                        data={"name": "anonymized.csv"})
            assert up.status_code == 201, up.text
            done = h.post(f"/api/v1/agent/tasks/{task['id']}/complete", headers=a1,
                          json={"status": "succeeded"})
            assert done.json()["job_status"] == "succeeded"
            job = h.get(f"/api/v1/jobs/{anon}", headers=r).json()
            assert [a["name"] for a in job["artifacts"]] == ["anonymized.csv"]
    finally:
        hub2.stop()
    assert [n for n in _files(data / "artifacts") if not n.startswith(".")] == [
        up.json()["sha256"]]
    assert main(["hub", "verify-audit", "--db", db_url]) == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_more_clients_than_worker_threads_do_not_stall(db_url, tmp_path, cli_env) -> None:  # noqa: ANN001
    """64 simultaneous requests (the thread pool has 40): none may wait out a database timeout.

    Regression: every pool thread blocked on SQLite's write lock while the request holding it
    waited for a thread -> a 30 s stall, then 500s ("database is locked").
    """
    app = create_app(hub_settings(tmp_path, db_url))
    seed = seed_app(app)
    with TestClient(app) as c:
        world = build_world(c, seed, dp_budget=None)
    app.state.engine.dispose()
    hub = start_hub(db_url, tmp_path / "hub", env=cli_env)
    barrier = threading.Barrier(64)

    def burst(i: int) -> list[int]:
        with httpx.Client(base_url=hub.url, timeout=120,
                          headers=world.headers["researcher"]) as h:
            barrier.wait()
            return [h.get("/api/v1/datasets" if i % 2 else "/api/v1/access-requests"
                          ).status_code for _ in range(4)]

    try:
        t0 = time.monotonic()
        with ThreadPoolExecutor(64) as pool:
            codes = [c for f in [pool.submit(burst, i) for i in range(64)] for c in f.result()]
        wall = time.monotonic() - t0
    finally:
        hub.stop()
    assert codes == [200] * 256
    assert wall < 25, f"{wall:.1f} s: requests waited out a database timeout"
