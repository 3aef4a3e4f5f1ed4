"""Jobs: created within a grant, split into one task per site, claimed by the sites' agents.

A task is handed out by an atomic ``UPDATE tasks SET status='running' ... WHERE id = ? AND
status = 'queued'``: whichever hub worker serves the claim, a task runs once.  A job's status
follows its tasks: running once one is claimed, failed as soon as one fails (the others are
told to stop), succeeded when all have.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from secured_bio.hub.errors import Conflict, Forbidden, Invalid, NotFound
from secured_bio.hub.models import (
    JOB_KINDS,
    AccessRequest,
    Artifact,
    Dataset,
    Job,
    Site,
    Task,
    User,
    utcnow,
)
from secured_bio.hub.services.access import check_grant
from secured_bio.hub.services.audit import append_event

__all__ = ["KIND_DATASETS", "create_job", "claim_task", "report_progress", "complete_task",
           "cancel_job", "job_json", "get_job", "visible_jobs", "fail_orphaned_jobs",
           "refresh_status"]

#: job kind -> (dataset kinds allowed, whether one dataset per site across >= 2 sites)
KIND_DATASETS: dict[str, tuple[tuple[str, ...], bool]] = {
    "gwas_secure": (("genotypes",), True),
    "fl_train": (("imaging",), True),
    "anonymize": (("clinical",), False),
    "synthesize": (("clinical",), False),
    "education_cases": (("clinical",), False),
}
_PARAM = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
#: params that name files or outputs: the agent decides those, never the researcher
_FORBIDDEN_PARAMS = {"out", "passport", "site", "relay", "roster", "key", "cert", "vcf", "zarr",
                     "pheno", "covar", "data", "config", "log_file", "output", "input"}
_DP_PARAMS = ("epsilon", "dp_epsilon", "vitals_epsilon")


def _check_params(kind: str, params: dict[str, Any]) -> float:
    """Shape checks (the agent checks values against its allow-list); returns the epsilon."""
    if len(params) > 40:
        raise Invalid("too many params")
    eps = 0.0
    for k, v in params.items():
        if not _PARAM.match(k):
            raise Invalid(f"invalid param name {k[:50]!r}",
                          fix="params are named as the CLI options, with '_' for '-'")
        if k in _FORBIDDEN_PARAMS:
            raise Invalid(f"param {k!r} is chosen by the site, not by the job",
                          fix=f"leave {k!r} out")
        if not isinstance(v, (str, int, float, bool, list)) or (
                isinstance(v, str) and len(v) > 500):
            raise Invalid(f"param {k!r} must be a number, a short text, a flag or a list")
        if k in _DP_PARAMS:
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
                raise Invalid(f"param {k!r} must be a positive epsilon")
            eps += float(v)
    return eps


def create_job(session: Session, user: User, *, request_id: int, kind: str,
               dataset_ids: list[int], params: dict[str, Any],
               coordinate: Any = None) -> Job:
    """Create a job and its site tasks after checking the grant.

    ``coordinate(job, sites)`` (optional) sets up multi-site coordination (the relay) and
    returns the JSON the tasks receive.
    """
    if user.role != "researcher":
        raise Forbidden("only researchers run jobs", fix="log in as a researcher")
    if kind not in JOB_KINDS:
        raise Invalid(f"unknown job kind {kind!r}", fix=f"use one of {', '.join(JOB_KINDS)}")
    req = session.get(AccessRequest, request_id)
    if req is None or req.researcher_id != user.id:
        raise NotFound(f"no access request {request_id} of yours",
                       fix="give the id of your approved request")
    dataset_ids = list(dict.fromkeys(int(i) for i in dataset_ids))
    if not dataset_ids:
        raise Invalid("no dataset given", fix="give the datasets the job runs on")
    check_grant(req, user, kind, dataset_ids)
    eps = _check_params(kind, params)
    if kind != "fl_train":  # fl_train params are checked where its Flower run starts
        from secured_bio.errors import SecuredBioError
        from secured_bio.hub.agent.runners import check_params

        try:  # the agents' own allow-list: refuse now rather than fail at the sites
            check_params(kind, params)
        except SecuredBioError as e:
            raise Invalid(str(e), fix="params are named as the CLI options; see "
                          "docs/hub_design.md for each job kind's list") from e
    datasets = [session.get(Dataset, i) for i in dataset_ids]
    allowed, multi = KIND_DATASETS[kind]
    for ds in datasets:
        assert ds is not None  # granted datasets exist
        if ds.kind not in allowed:
            raise Invalid(f"{kind} runs on {' or '.join(allowed)} datasets; dataset {ds.id} "
                          f"holds {ds.kind}")
    sites: list[Site] = []
    for ds in datasets:
        assert ds is not None
        if ds.site in sites and multi:
            raise Invalid(f"{kind} takes one dataset per site; site {ds.site.name} appears "
                          "twice")
        if ds.site not in sites:
            sites.append(ds.site)
    if multi and len(sites) < 2:
        raise Invalid(f"{kind} runs across sites: give datasets of two or more sites")
    if not multi and len(datasets) != 1:
        raise Invalid(f"{kind} runs on one dataset at one site", fix="give one dataset")
    if kind == "gwas_secure" and len(sites) == 2:
        raise Invalid("a secure GWAS of two sites lets each site subtract its own sums from "
                      "the total and learn the other's", fix="use three or more sites (two "
                      "sites can run 'secured-bio gwas party --allow-two-sites' themselves)")
    if eps:
        if req.dp_budget is None:
            raise Forbidden("the grant sets no DP budget for differentially private jobs",
                            fix="ask the committee for an epsilon budget")
        if req.dp_spent + eps > req.dp_budget + 1e-12:
            raise Forbidden(f"the job needs epsilon {eps:g}; the grant has "
                            f"{req.dp_budget - req.dp_spent:g} of {req.dp_budget:g} left",
                            fix="lower epsilon or ask the committee for more budget")
        req.dp_spent += eps
    job = Job(request_id=req.id, created_by=user.id, kind=kind, params=dict(params),
              dataset_ids=dataset_ids, status="queued")
    session.add(job)
    session.flush()
    for rank, site in enumerate(sites):
        ids = [d.id for d in datasets if d is not None and d.site_id == site.id]
        session.add(Task(job_id=job.id, site_id=site.id, rank=rank, dataset_ids=ids))
    if coordinate is not None:
        job.coordination = coordinate(job, sites) or {}
        job.coordinator = job.coordination.get("worker")
    append_event(session, actor=user.username, action="job.create", target=f"job:{job.id}",
                 details={"kind": kind, "request": req.id, "datasets": dataset_ids,
                          "params": params, "epsilon_charged": eps})
    session.flush()
    session.refresh(job)
    return job


def claim_task(session: Session, site: Site) -> Task | None:
    """Hand the site's oldest queued task to its agent (each task at most once)."""
    now = utcnow()
    while True:
        task_id = session.scalar(
            select(Task.id).join(Job).where(Task.site_id == site.id, Task.status == "queued",
                                            Job.status.in_(("queued", "running")))
            .order_by(Task.id).limit(1))
        if task_id is None:
            return None
        won = session.execute(  # type: ignore[attr-defined]
            update(Task).where(Task.id == task_id, Task.status == "queued")
            .values(status="running", claimed_at=now, heartbeat_at=now,
                    message="claimed by the site agent")
            .execution_options(synchronize_session=False)
        ).rowcount
        if won == 1:
            task = session.get(Task, task_id)
            assert task is not None
            session.refresh(task)
            refresh_status(session, task.job)
            append_event(session, actor=f"site:{site.name}", action="task.claim",
                         target=f"task:{task.id}", details={"job": task.job_id})
            return task


def _own_task(session: Session, site: Site, task_id: int) -> Task:
    task = session.get(Task, task_id)
    if task is None or task.site_id != site.id:
        raise NotFound(f"no task {task_id} for site {site.name}")
    return task


def report_progress(session: Session, site: Site, task_id: int, progress: float,
                    message: str) -> bool:
    """Record progress; returns True when the site should stop (job cancelled or failed)."""
    task = _own_task(session, site, task_id)
    if task.status == "running":
        task.progress = max(0.0, min(1.0, float(progress)))
        task.message = message[:500]
        task.heartbeat_at = utcnow()
        task.job.updated_at = utcnow()
    return task.job.cancel_requested or task.job.status in ("failed", "cancelled") or \
        task.status != "running"


def complete_task(session: Session, site: Site, task_id: int, status: str,
                  error: str | None) -> Task:
    """Mark a site's task finished (again with the status it has: a no-op).

    The hub itself marks the tasks of a federated job succeeded when its run ends; the
    sites' agents then report the same end.
    """
    if status not in ("succeeded", "failed"):
        raise Invalid(f"unknown task status {status!r}", fix="use succeeded or failed")
    task = _own_task(session, site, task_id)
    if task.status == status:
        return task
    if task.status != "running":
        raise Conflict(f"task {task_id} is {task.status}, not running")
    task.status = status
    task.error = (error or "")[:2000] or None
    task.progress = 1.0 if status == "succeeded" else task.progress
    task.message = "finished" if status == "succeeded" else "failed"
    task.finished_at = utcnow()
    refresh_status(session, task.job)
    append_event(session, actor=f"site:{site.name}", action=f"task.{status}",
                 target=f"task:{task.id}", details={"job": task.job_id})
    return task


def refresh_status(session: Session, job: Job) -> None:
    """Derive the job's status from its tasks."""
    if job.status in ("succeeded", "failed", "cancelled"):
        return
    states = [t.status for t in job.tasks]
    failed = [t for t in job.tasks if t.status == "failed"]
    if failed:
        job.status = "failed"
        job.error = "; ".join(f"site {t.site.name}: {t.error or 'failed'}" for t in failed)
        for t in job.tasks:
            if t.status == "queued":
                t.status = "cancelled"
    elif states and all(s == "succeeded" for s in states):
        job.status = "succeeded"
    elif any(s != "queued" for s in states):
        job.status = "running"
    if job.status in ("succeeded", "failed"):
        job.finished_at = utcnow()
    job.updated_at = utcnow()


def cancel_job(session: Session, user: User, job: Job) -> Job:
    """Cancel a job (its owner or an admin); running sites stop at their next report."""
    if user.role != "admin" and job.created_by != user.id:
        raise Forbidden("only the job's owner or an admin cancels it")
    if job.status in ("succeeded", "failed", "cancelled"):
        raise Conflict(f"job {job.id} already {job.status}")
    job.cancel_requested = True
    job.status = "cancelled"
    job.finished_at = utcnow()
    for t in job.tasks:
        if t.status in ("queued", "running"):
            t.status = "cancelled"
    append_event(session, actor=user.username, action="job.cancel", target=f"job:{job.id}")
    return job


def fail_orphaned_jobs(session: Session, *, stale_s: float, alive: Any) -> list[int]:
    """Fail the jobs a hub restart orphaned; return their ids.

    A job fails when its relay died with the worker that ran it, or when a site's agent went
    silent for ``stale_s`` seconds.
    """
    import datetime as dt

    failed = []
    now = utcnow()
    jobs = session.scalars(select(Job).where(Job.status.in_(("queued", "running"))))
    for job in jobs:
        reason = None
        if job.coordinator and not alive(job.coordinator):
            reason = ("the hub restarted while the job ran and its relay stopped; "
                      "no result was released - start the job again")
        else:
            for t in job.tasks:
                if t.status == "running" and t.heartbeat_at is not None and (
                        now - t.heartbeat_at > dt.timedelta(seconds=stale_s)):
                    reason = (f"site {t.site.name} stopped reporting for more than "
                              f"{stale_s:.0f} s; start the job again")
        if reason:
            job.status, job.error, job.finished_at = "failed", reason, now
            for t in job.tasks:
                if t.status in ("queued", "running"):
                    t.status, t.error = "cancelled", reason
            append_event(session, actor="hub", action="job.failed", target=f"job:{job.id}",
                         details={"reason": reason})
            failed.append(job.id)
    return failed


def can_see_job(user: User, job: Job) -> bool:
    """Owner, admin, committee, or a steward of a site in the job."""
    if user.role in ("admin", "committee") or job.created_by == user.id:
        return True
    return user.role == "steward" and any(t.site_id == user.site_id for t in job.tasks)


def get_job(session: Session, user: User, job_id: int) -> Job:
    """Return a job the user may see (404 otherwise)."""
    job = session.get(Job, job_id)
    if job is None or not can_see_job(user, job):
        raise NotFound(f"no job {job_id}", fix="list yours at GET /api/v1/jobs")
    return job


def visible_jobs(session: Session, user: User) -> list[Job]:
    """Jobs the user may see, newest first."""
    return [j for j in session.scalars(select(Job).order_by(Job.id.desc()))
            if can_see_job(user, j)]


def _artifact_visible(a: Artifact) -> bool:
    return a.sha256 != ""


def job_json(job: Job) -> dict[str, Any]:
    """Return the API's view of a job (the contract: id, status, progress, artifacts, error)."""
    tasks = job.tasks
    progress = sum(t.progress for t in tasks) / len(tasks) if tasks else 0.0
    if job.status == "succeeded":
        progress = 1.0
    return {
        "id": job.id, "kind": job.kind, "status": job.status, "progress": round(progress, 4),
        "error": job.error, "access_request": job.request_id, "datasets": job.dataset_ids,
        "params": job.params,
        "sites": [{"site": t.site.name, "rank": t.rank, "status": t.status,
                   "progress": round(t.progress, 4), "message": t.message, "error": t.error}
                  for t in tasks],
        "artifacts": [{"id": a.id, "name": a.name, "kind": a.kind, "size": a.size}
                      for a in job.artifacts if _artifact_visible(a)],
        "created_at": job.created_at.isoformat() + "Z",
        "finished_at": job.finished_at.isoformat() + "Z" if job.finished_at else None,
    }
