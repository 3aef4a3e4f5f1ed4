"""The audit log: every login, decision, job and download appends an event; edits, deletions,
forged rows and a cut tail are each detected with the event's number (API, library, CLI)."""

from __future__ import annotations

import io
import json

from hub._hub import PASSWORD, create_job, login
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from secured_bio.cli import main
from secured_bio.hub.db import session_scope
from secured_bio.hub.models import AuditEvent
from secured_bio.hub.services.audit import ChainReport, _digest, verify_chain


def _tampered(engine: Engine, *statements: tuple[str, dict]) -> ChainReport:
    """Apply raw SQL in a transaction, verify inside it, roll back."""
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            for sql, params in statements:
                conn.execute(text(sql), params)
            with Session(bind=conn) as s:
                return verify_chain(s)
        finally:
            trans.rollback()


def _forged(engine: Engine, last: AuditEvent) -> ChainReport:
    """Append a well-formed event (correct hash, linked) behind the hub's back."""
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            with Session(bind=conn) as s:
                ev = AuditEvent(id=last.id + 1, ts=last.ts, actor="committee",
                                action="request.approved", target="request:999", details={},
                                prev_hash=last.hash)
                ev.hash = _digest(ev.id, ev.ts.isoformat(), ev.actor, ev.action, ev.target,
                                  ev.details, ev.prev_hash)
                s.add(ev)
                s.flush()
                return verify_chain(s)
        finally:
            trans.rollback()


def test_audit_trail_and_tampering(client, hub_app, world, db_url, capsys) -> None:  # noqa: ANN001
    r, a1 = world.headers["researcher"], world.agent("site1")
    assert client.post("/api/v1/auth/token", data={"username": "researcher",
                                                   "password": "wrong" + PASSWORD}
                       ).status_code == 401
    job = create_job(client, r, world.request_id, [world.datasets["clin-site1"]])
    task = client.post("/api/v1/agent/tasks/claim", headers=a1).json()["task"]["id"]
    art = client.post(f"/api/v1/agent/tasks/{task}/artifacts", headers=a1,
                      files={"file": ("x", io.BytesIO(b"1,2\n"))}, data={"name": "out.csv"})
    client.post(f"/api/v1/agent/tasks/{task}/complete", headers=a1, json={"status": "succeeded"})
    assert client.get(f"/api/v1/artifacts/{art.json()['id']}/download",
                      headers=r).status_code == 200
    login(client, "admin")

    engine = hub_app.state.engine
    with session_scope(hub_app.state.sessions) as s:
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
        report = verify_chain(s)
    assert report.ok and report.events == len(events), report
    actions = [(e.actor, e.action, e.target) for e in events]
    for expected in [("researcher", "login.failed", ""), ("committee", "request.approved",
                     f"request:{world.request_id}"), ("researcher", "job.create",
                     f"job:{job['id']}"), ("site:site1", "task.claim", f"task:{task}"),
                     ("site:site1", "artifact.upload", f"artifact:{art.json()['id']}"),
                     ("site:site1", "task.succeeded", f"task:{task}"),
                     ("researcher", "artifact.download", f"artifact:{art.json()['id']}"),
                     ("admin", "login", "")]:
        assert expected in actions, expected
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    n = len(events)
    audit = client.get("/api/v1/audit", headers=world.headers["committee"]).json()
    assert audit["chain_ok"] and audit["head"] == report.head_hash

    edited = _tampered(engine, ("UPDATE audit_events SET details = :d WHERE id = 3",
                                {"d": json.dumps({"name": "site9"})}))
    assert not edited.ok and edited.first_bad == 3 and "event 3 was changed" in edited.reason
    ev3 = events[2]
    rehashed = _digest(3, ev3.ts.isoformat(), ev3.actor, ev3.action, ev3.target,
                       {"name": "site9"}, ev3.prev_hash)
    relinked = _tampered(engine, ("UPDATE audit_events SET details = :d, hash = :h WHERE id = 3",
                                  {"d": json.dumps({"name": "site9"}), "h": rehashed}))
    assert relinked.first_bad == 4 and "event 4 does not link" in relinked.reason
    deleted = _tampered(engine, ("DELETE FROM audit_events WHERE id = 4", {}))
    assert deleted.first_bad == 4 and "event 4 is missing" in deleted.reason
    forged = _forged(engine, events[-1])
    assert not forged.ok and forged.first_bad == n + 1
    assert f"event {n + 1} comes after the chain's head" in forged.reason
    cut = _tampered(engine, ("DELETE FROM audit_events WHERE id > :k", {"k": n - 2}))
    assert cut.first_bad == n - 1 and "removed from the end" in cut.reason
    with session_scope(hub_app.state.sessions) as s:
        assert verify_chain(s).ok  # every tampering above was rolled back

    capsys.readouterr()
    assert main(["hub", "verify-audit", "--db", db_url]) == 0
    assert f"audit log OK: {n}" in capsys.readouterr().out
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE id = 5"))
    assert main(["hub", "verify-audit", "--db", db_url]) == 1
    err = capsys.readouterr().err
    assert "does not verify" in err and "event 5 is missing" in err
    bad = client.get("/api/v1/audit", headers=world.headers["admin"]).json()
    assert bad["chain_ok"] is False and "event 5" in bad["problem"]


def test_verify_audit_cli_data_dir(tmp_path, capsys) -> None:  # noqa: ANN001
    """``--data-dir`` finds the SQLite database; a folder without one is a clear error."""
    from secured_bio.hub.app import create_app
    from secured_bio.hub.settings import HubSettings

    app = create_app(HubSettings(data_dir=tmp_path / "hub"))
    app.state.engine.dispose()
    assert main(["hub", "verify-audit", "--data-dir", str(tmp_path / "hub")]) == 0
    assert "audit log OK: 0 events" in capsys.readouterr().out
    assert main(["hub", "verify-audit", "--data-dir", str(tmp_path / "empty")]) != 0
    assert "no hub database" in capsys.readouterr().err
