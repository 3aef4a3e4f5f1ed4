"""REST API for people: health, login, datasets, access requests, jobs, artifacts, audit."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.security import OAuth2PasswordRequestForm

from secured_bio.hub import security
from secured_bio.hub.deps import SessionDep, SettingsDep, UserDep, require_role
from secured_bio.hub.errors import Invalid
from secured_bio.hub.models import DATASET_KINDS
from secured_bio.hub.schemas import AccessRequestIn, DecisionIn, JobIn
from secured_bio.hub.services import access, accounts, artifacts, catalogue, jobs
from secured_bio.hub.services.audit import append_event, verify_chain

router = APIRouter(prefix="/api/v1")


@router.get("/health", tags=["meta"])
def health(session: SessionDep) -> dict[str, Any]:
    """Liveness and database reachability."""
    from sqlalchemy import text

    session.execute(text("SELECT 1"))
    from secured_bio import __version__

    return {"status": "ok", "version": __version__}


@router.post("/auth/token", tags=["auth"])
def login(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()],
          session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """OAuth2 password flow: ``username`` + ``password`` -> a bearer ``access_token``."""
    client = request.client.host if request.client else "?"
    request.app.state.login_limiter.hit(form.username, client)
    user = accounts.authenticate(session, form.username, form.password, client=client)
    token, exp = security.issue_token(str(user.id), key=request.app.state.signing_key,
                                      minutes=settings.token_minutes,
                                      claims={"role": user.role})
    return {"access_token": token, "token_type": "bearer",
            "expires_in": settings.token_minutes * 60, "role": user.role}


@router.get("/me", tags=["auth"])
def me(user: UserDep) -> dict[str, Any]:
    """Who the token belongs to."""
    return {"id": user.id, "username": user.username, "role": user.role,
            "site": user.site.name if user.site else None}


@router.get("/datasets", tags=["catalogue"])
def datasets(session: SessionDep, user: UserDep, q: str | None = None,
             kind: str | None = None, site: str | None = None) -> list[dict[str, Any]]:
    """Return the catalogue: every site's datasets with aggregate metadata (never rows)."""
    if kind is not None and kind not in DATASET_KINDS:
        raise Invalid(f"unknown kind {kind!r}", fix=f"use one of {', '.join(DATASET_KINDS)}")
    return [catalogue.dataset_json(d) for d in catalogue.list_datasets(
        session, q=q, kind=kind, site=site)]


@router.get("/datasets/{dataset_id}", tags=["catalogue"])
def dataset(dataset_id: int, session: SessionDep, user: UserDep) -> dict[str, Any]:
    """One dataset."""
    return catalogue.dataset_json(catalogue.get_dataset(session, dataset_id))


@router.get("/access-requests", tags=["access"])
def list_requests(session: SessionDep, user: UserDep) -> list[dict[str, Any]]:
    """Return requests you may see (yours; all for the committee)."""
    return [access.request_json(r) for r in access.visible_requests(session, user)]


@router.post("/access-requests", status_code=201, tags=["access"])
def create_request(body: AccessRequestIn, session: SessionDep, user: UserDep
                   ) -> dict[str, Any]:
    """Ask for datasets with a purpose; DUO conditions are checked against it."""
    req = access.create_request(session, user, dataset_ids=body.datasets, purpose=body.purpose,
                                analyses=body.analyses,
                                purpose_terms=body.purpose_terms.model_dump())
    return access.request_json(req)


@router.get("/access-requests/{request_id}", tags=["access"])
def get_request(request_id: int, session: SessionDep, user: UserDep) -> dict[str, Any]:
    """One request."""
    return access.request_json(access.get_request(session, user, request_id))


@router.post("/access-requests/{request_id}/decision", tags=["access"])
def decide(request_id: int, body: DecisionIn, session: SessionDep, user: UserDep
           ) -> dict[str, Any]:
    """Approve or deny (committee), with a reason, an optional expiry and limits."""
    require_role(user, "committee")
    req = access.get_request(session, user, request_id)
    access.decide(session, user, req, decision=body.decision, reason=body.reason,
                  expires_at=body.expires_at, allowed_kinds=body.allowed_kinds,
                  dp_budget=body.dp_budget)
    return access.request_json(req)


@router.get("/jobs", tags=["jobs"])
def list_jobs(session: SessionDep, user: UserDep) -> list[dict[str, Any]]:
    """Jobs you may see."""
    return [jobs.job_json(j) for j in jobs.visible_jobs(session, user)]


@router.post("/jobs", status_code=201, tags=["jobs"])
def create_job(request: Request, body: JobIn, session: SessionDep, user: UserDep
               ) -> dict[str, Any]:
    """Run an analysis within an approved request; the sites' agents pick it up."""
    job = jobs.create_job(session, user, request_id=body.access_request, kind=body.kind,
                          dataset_ids=body.datasets, params=body.params,
                          coordinate=request.app.state.coordinate)
    return jobs.job_json(job)


@router.get("/jobs/{job_id}", tags=["jobs"])
def get_job(job_id: int, session: SessionDep, user: UserDep) -> dict[str, Any]:
    """Status, progress per site, artifacts, error."""
    return jobs.job_json(jobs.get_job(session, user, job_id))


@router.post("/jobs/{job_id}/cancel", tags=["jobs"])
def cancel_job(job_id: int, session: SessionDep, user: UserDep) -> dict[str, Any]:
    """Cancel a queued or running job."""
    job = jobs.cancel_job(session, user, jobs.get_job(session, user, job_id))
    return jobs.job_json(job)


@router.get("/artifacts/{artifact_id}", tags=["artifacts"])
def get_artifact(artifact_id: int, session: SessionDep, user: UserDep) -> dict[str, Any]:
    """Return an artifact's description (download and passport links)."""
    return artifacts.artifact_json(artifacts.get_artifact(session, user, artifact_id))


@router.get("/artifacts/{artifact_id}/download", tags=["artifacts"])
def download(artifact_id: int, session: SessionDep, user: UserDep, settings: SettingsDep
             ) -> FileResponse:
    """Return the artifact's bytes, if the grant allows (audited)."""
    art = artifacts.get_artifact(session, user, artifact_id)
    artifacts.can_download(user, art)
    append_event(session, actor=user.username, action="artifact.download",
                 target=f"artifact:{art.id}", details={"sha256": art.sha256})
    session.commit()
    return FileResponse(artifacts.artifact_path(settings.artifacts_dir, art.sha256),
                        media_type=art.media_type, filename=art.name)


@router.get("/artifacts/{artifact_id}/passport", tags=["artifacts"])
def passport(artifact_id: int, session: SessionDep, user: UserDep) -> dict[str, Any]:
    """Return the artifact's privacy passport (JSON)."""
    return artifacts.get_artifact(session, user, artifact_id).passport


@router.get("/artifacts/{artifact_id}/passport.html", tags=["artifacts"],
            response_class=HTMLResponse)
def passport_html(artifact_id: int, session: SessionDep, user: UserDep) -> HTMLResponse:
    """Render the passport as a page."""
    from secured_bio.passport import passport_html as render

    return HTMLResponse(render(artifacts.get_artifact(session, user, artifact_id).passport))


@router.get("/audit", tags=["audit"])
def audit(session: SessionDep, user: UserDep, limit: int = 200) -> dict[str, Any]:
    """Return the newest audit events and whether the chain verifies (admin and committee)."""
    from sqlalchemy import select

    from secured_bio.hub.models import AuditEvent

    require_role(user, "admin", "committee")
    rows = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())
                           .limit(max(1, min(limit, 1000))))
    report = verify_chain(session)
    return {"chain_ok": report.ok, "events": report.events, "head": report.head_hash,
            "problem": report.reason or None,
            "recent": [{"id": e.id, "ts": e.ts.isoformat() + "Z", "actor": e.actor,
                        "action": e.action, "target": e.target} for e in rows]}
