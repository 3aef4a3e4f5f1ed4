"""Access requests and the committee's decisions (GA4GH/EGA data-access model)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from secured_bio.hub.errors import Conflict, Forbidden, Invalid, NotFound
from secured_bio.hub.models import (
    JOB_KINDS,
    AccessRequest,
    AccessRequestDataset,
    Dataset,
    User,
    utcnow,
)
from secured_bio.hub.services import duo
from secured_bio.hub.services.audit import append_event

__all__ = ["create_request", "decide", "visible_requests", "get_request", "request_json",
           "check_grant"]


def create_request(session: Session, user: User, *, dataset_ids: list[int], purpose: str,
                   analyses: list[str], purpose_terms: dict[str, Any] | None) -> AccessRequest:
    """File a request; DUO conditions of every dataset are checked against the purpose."""
    if user.role != "researcher":
        raise Forbidden("only researchers request access", fix="log in as a researcher")
    if not dataset_ids:
        raise Invalid("no dataset requested", fix="give one or more dataset ids")
    if len(purpose.strip()) < 10:
        raise Invalid("the purpose is too short", fix="describe the research in a sentence")
    bad = [a for a in analyses if a not in JOB_KINDS]
    if bad:
        raise Invalid(f"unknown analysis {bad[0]!r}", fix=f"use {', '.join(JOB_KINDS)}")
    datasets = []
    for i in dict.fromkeys(dataset_ids):
        ds = session.get(Dataset, i)
        if ds is None:
            raise NotFound(f"no dataset {i}", fix="list them at GET /api/v1/datasets")
        datasets.append(ds)
    p = duo.Purpose.from_dict(purpose_terms)
    if p.code not in duo.PURPOSES:
        raise Invalid(f"unknown purpose term {p.code!r}",
                      fix="use " + ", ".join(f"{c} {duo.describe(c)}" for c in duo.PURPOSES))
    checks = duo.check([(d.id, d.duo) for d in datasets], p)
    violations = [f"dataset {c.dataset}: {v}" for c in checks for v in c.violations]
    if violations:
        raise Invalid("the stated purpose does not fit the data-use conditions: "
                      + "; ".join(violations),
                      fix="change the purpose terms or leave those datasets out")
    req = AccessRequest(
        researcher_id=user.id, purpose=purpose.strip()[:10_000], analyses=list(analyses),
        purpose_codes=[p.code], status="pending",
        duo_check={"purpose": p.__dict__, "datasets": [
            {"dataset": c.dataset, "codes": c.codes, "conditions": c.conditions}
            for c in checks]},
    )
    req.datasets = [AccessRequestDataset(dataset_id=d.id) for d in datasets]
    session.add(req)
    session.flush()
    append_event(session, actor=user.username, action="request.create",
                 target=f"request:{req.id}", details={"datasets": [d.id for d in datasets],
                                                      "analyses": list(analyses)})
    return req


def decide(session: Session, user: User, req: AccessRequest, *, decision: str, reason: str,
           expires_at: dt.datetime | None = None, allowed_kinds: list[str] | None = None,
           dp_budget: float | None = None) -> AccessRequest:
    """Approve or deny a pending request (committee members only)."""
    if user.role != "committee":
        raise Forbidden("only the data-access committee decides requests",
                        fix="ask a committee member")
    if decision not in ("approve", "deny"):
        raise Invalid(f"unknown decision {decision!r}", fix="use 'approve' or 'deny'")
    if req.status != "pending":
        raise Conflict(f"request {req.id} was already decided ({req.status})",
                       fix="file a new request to change the terms")
    if not reason.strip():
        raise Invalid("a decision needs a reason", fix="give the reason")
    kinds = list(allowed_kinds or [])
    bad = [k for k in kinds if k not in JOB_KINDS]
    if bad:
        raise Invalid(f"unknown job kind {bad[0]!r}", fix=f"use {', '.join(JOB_KINDS)}")
    if dp_budget is not None and not dp_budget > 0:
        raise Invalid("the DP budget must be a positive epsilon")
    if expires_at is not None and expires_at.tzinfo is not None:
        expires_at = expires_at.astimezone(dt.UTC).replace(tzinfo=None)
    if expires_at is not None and expires_at <= utcnow():
        raise Invalid("the expiry is in the past", fix="give a future date")
    req.status = "approved" if decision == "approve" else "denied"
    req.decided_by, req.decided_at = user.id, utcnow()
    req.decision_reason = reason.strip()[:4000]
    req.expires_at, req.dp_budget = expires_at, dp_budget
    req.allowed_kinds = kinds or list(req.analyses)
    append_event(session, actor=user.username, action=f"request.{req.status}",
                 target=f"request:{req.id}",
                 details={"allowed_kinds": req.allowed_kinds, "dp_budget": dp_budget,
                          "expires_at": expires_at.isoformat() if expires_at else None})
    return req


def visible_requests(session: Session, user: User) -> list[AccessRequest]:
    """Return the requests the user may see.

    Researchers see their own; committee and admin all; stewards those on their site's data.
    """
    stmt = select(AccessRequest).order_by(AccessRequest.id.desc())
    rows = list(session.scalars(stmt))
    return [r for r in rows if can_see(user, r)]


def can_see(user: User, req: AccessRequest) -> bool:
    """Whether ``user`` may see ``req``."""
    if user.role in ("committee", "admin"):
        return True
    if user.role == "researcher":
        return req.researcher_id == user.id
    return any(link.dataset.site_id == user.site_id for link in req.datasets)


def get_request(session: Session, user: User, request_id: int) -> AccessRequest:
    """Return a request the user may see (404 otherwise, so ids of others' requests do not leak)."""
    req = session.get(AccessRequest, request_id)
    if req is None or not can_see(user, req):
        raise NotFound(f"no access request {request_id}",
                       fix="list yours at GET /api/v1/access-requests")
    return req


def check_grant(req: AccessRequest, user: User, kind: str, dataset_ids: list[int]) -> None:
    """Raise unless ``user`` may run a ``kind`` job on ``dataset_ids`` under ``req``."""
    if req.researcher_id != user.id:
        raise Forbidden("jobs run only under your own approved request")
    if req.status != "approved":
        raise Forbidden(f"access request {req.id} is {req.status}, not approved",
                        fix="wait for the committee's approval")
    if req.expires_at is not None and req.expires_at <= utcnow():
        raise Forbidden(f"access request {req.id} expired", fix="file a new request")
    if kind not in (req.allowed_kinds or req.analyses):
        raise Forbidden(f"the grant does not allow {kind!r} jobs",
                        fix="allowed: " + ", ".join(req.allowed_kinds or req.analyses))
    granted = {link.dataset_id for link in req.datasets}
    outside = [i for i in dataset_ids if i not in granted]
    if outside:
        raise Forbidden(f"dataset {outside[0]} is not part of access request {req.id}",
                        fix="request access to it first")


def request_json(req: AccessRequest) -> dict[str, Any]:
    """Return the API's view of a request."""
    return {
        "id": req.id, "status": req.status, "purpose": req.purpose,
        "purpose_codes": req.purpose_codes, "analyses": req.analyses,
        "datasets": [link.dataset_id for link in req.datasets],
        "researcher": req.researcher.username, "duo_check": req.duo_check,
        "decision_reason": req.decision_reason,
        "decided_at": req.decided_at.isoformat() + "Z" if req.decided_at else None,
        "expires_at": req.expires_at.isoformat() + "Z" if req.expires_at else None,
        "allowed_kinds": req.allowed_kinds, "dp_budget": req.dp_budget,
        "dp_spent": req.dp_spent, "created_at": req.created_at.isoformat() + "Z",
    }
