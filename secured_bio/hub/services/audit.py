"""The audit log: append-only and tamper-evident (a SHA-256 hash chain).

Each event's hash covers its sequence number, time, actor, action, target, details and the
previous event's hash; the chain's head (last sequence number and hash) sits in its own row,
locked while an event is appended, so concurrent hub workers extend one chain.  Editing,
deleting or inserting a row breaks the chain at that row, which :func:`verify_chain` reports
(``secured-bio hub verify-audit``).  An attacker with write access to the database can rewrite
the whole chain from the edited row on; to detect that too, copy the head hash
(``verify-audit`` prints it) somewhere the attacker cannot write, and compare later.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from secured_bio.hub.models import AuditEvent, AuditHead, utcnow

__all__ = ["GENESIS", "append_event", "ensure_head", "verify_chain", "ChainReport"]

GENESIS = "0" * 64


def _digest(seq: int, ts: str, actor: str, action: str, target: str, details: dict[str, Any],
            prev_hash: str) -> str:
    body = json.dumps(
        {"seq": seq, "ts": ts, "actor": actor, "action": action, "target": target,
         "details": details, "prev": prev_hash},
        sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def ensure_head(session: Session) -> None:
    """Create the chain's head row if missing (safe when several workers start at once)."""
    if session.get(AuditHead, 1) is None:
        try:
            with session.begin_nested():
                session.add(AuditHead(id=1, seq=0, hash=GENESIS))
        except IntegrityError:
            pass


def append_event(session: Session, *, actor: str, action: str, target: str = "",
                 details: dict[str, Any] | None = None) -> AuditEvent:
    """Append an event to the chain (committed with the caller's transaction).

    ``details`` must never hold data values (genotypes, IDs): names, counts and parameters.
    """
    head = session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        ensure_head(session)
        head = session.execute(
            select(AuditHead).where(AuditHead.id == 1).with_for_update()
        ).scalar_one()
    details = json.loads(json.dumps(details or {}, default=str))
    ts = utcnow()
    seq = head.seq + 1
    event = AuditEvent(
        id=seq, ts=ts, actor=actor[:100], action=action[:64], target=target[:200],
        details=details, prev_hash=head.hash,
        hash=_digest(seq, ts.isoformat(), actor[:100], action[:64], target[:200], details,
                     head.hash),
    )
    session.add(event)
    head.seq, head.hash = seq, event.hash
    session.flush()
    return event


@dataclass(frozen=True)
class ChainReport:
    """Result of :func:`verify_chain`."""

    ok: bool
    events: int
    head_hash: str
    first_bad: int | None = None
    reason: str = ""


def verify_chain(session: Session) -> ChainReport:
    """Recompute the chain and report the first event that does not fit.

    The events and the head are read by two statements; an event appended by another worker
    in between makes them disagree, so a disagreement at the end is read again before it is
    reported.
    """
    report, at_head = _verify_once(session)
    for _ in range(3):
        if not at_head:
            break
        report, at_head = _verify_once(session)
    return report


def _verify_once(session: Session) -> tuple[ChainReport, bool]:
    """One pass; the flag says whether the problem is only a mismatch with the head."""
    prev, expected_seq, count = GENESIS, 1, 0
    rows = session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars()
    for ev in rows:
        count += 1
        if ev.id != expected_seq:
            return ChainReport(False, count, prev, expected_seq,
                               f"event {expected_seq} is missing (next is {ev.id})"), False
        if ev.prev_hash != prev:
            return ChainReport(False, count, prev, ev.id,
                               f"event {ev.id} does not link to event {ev.id - 1}"), False
        digest = _digest(ev.id, ev.ts.isoformat(), ev.actor, ev.action, ev.target,
                         ev.details, ev.prev_hash)
        if digest != ev.hash:
            return ChainReport(False, count, prev, ev.id,
                               f"event {ev.id} was changed after it was written"), False
        prev, expected_seq = ev.hash, expected_seq + 1
    last = expected_seq - 1
    # a fresh read (not the session's cached object): the head as committed now
    head = session.execute(
        select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).first()
    if head is None or (head.seq == last and head.hash == prev):
        return ChainReport(True, count, prev), False
    if head.seq < last:
        return ChainReport(False, count, prev, head.seq + 1,
                           f"event {head.seq + 1} comes after the chain's head (event "
                           f"{head.seq}): it was inserted, not appended by the hub"), True
    if head.seq > last:
        return ChainReport(False, count, prev, last + 1,
                           f"the chain ends at event {last} but the head says {head.seq}: "
                           "events were removed from the end"), True
    return ChainReport(False, count, prev, last,
                       f"event {last} does not match the chain's head: the chain was "
                       "rewritten"), True
