"""REST API for site agents (site token): register datasets, claim tasks, report, upload."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile

from secured_bio.hub.deps import SessionDep, SettingsDep, SiteDep
from secured_bio.hub.errors import Invalid, NotFound
from secured_bio.hub.models import Dataset, Task
from secured_bio.hub.schemas import CompleteIn, ProgressIn, RegisterIn
from secured_bio.hub.services import artifacts, catalogue, jobs

router = APIRouter(prefix="/api/v1/agent", tags=["agent"])


@router.post("/register")
def register(body: RegisterIn, session: SessionDep, site: SiteDep) -> dict[str, Any]:
    """Publish the site's datasets (aggregate metadata) and its SMPC certificate."""
    datasets = catalogue.register_datasets(session, site, body.datasets,
                                           smpc_cert=body.smpc_cert,
                                           agent_version=body.agent_version,
                                           beacon_key=body.beacon_key)
    return {"site": site.name, "datasets": [{"id": d.id, "name": d.name} for d in datasets]}


@router.post("/tasks/claim")
def claim(session: SessionDep, site: SiteDep) -> dict[str, Any]:
    """Return the site's next task, or ``{"task": null}``."""
    task = jobs.claim_task(session, site)
    if task is None:
        return {"task": None}
    job = task.job
    coordination = {k: v for k, v in job.coordination.items() if k != "worker"}
    names = {d.id: d.name for d in (session.get(Dataset, i) for i in task.dataset_ids) if d}
    return {"task": {
        "id": task.id, "job_id": job.id, "kind": job.kind, "params": job.params,
        "datasets": [{"id": i, "name": names.get(i)} for i in task.dataset_ids],
        "rank": task.rank, "world_size": len(job.tasks), "coordination": coordination,
    }}


@router.post("/tasks/{task_id}/progress")
def progress(task_id: int, body: ProgressIn, session: SessionDep, site: SiteDep
             ) -> dict[str, Any]:
    """Record progress; the reply says whether to stop."""
    return {"cancel": jobs.report_progress(session, site, task_id, body.progress,
                                           body.message)}


@router.post("/tasks/{task_id}/artifacts", status_code=201)
def upload(task_id: int, request: Request, session: SessionDep, site: SiteDep,
           settings: SettingsDep, file: Annotated[UploadFile, File()],
           name: Annotated[str, Form(max_length=200)],
           kind: Annotated[str, Form(max_length=64)] = "file",
           passport: Annotated[str, Form(max_length=2_000_000)] = "{}") -> dict[str, Any]:
    """Upload one release of the task (stored by hash; passport enriched by the hub)."""
    task = session.get(Task, task_id)
    if task is None or task.site_id != site.id:
        raise NotFound(f"no task {task_id} for site {site.name}")
    try:
        doc = json.loads(passport) if passport else {}
    except json.JSONDecodeError as e:
        raise Invalid("the passport is not JSON", fix="send the --passport file as is") from e
    if not isinstance(doc, dict):
        raise Invalid("the passport must be a JSON object")
    art = artifacts.store_upload(session, task, name=name, kind=kind, stream=file.file,
                                 root=settings.artifacts_dir,
                                 max_bytes=settings.max_upload_mb << 20, passport=doc,
                                 site_name=site.name)
    return {"id": art.id, "sha256": art.sha256, "size": art.size}


@router.post("/tasks/{task_id}/complete")
def complete(task_id: int, body: CompleteIn, session: SessionDep, site: SiteDep
             ) -> dict[str, Any]:
    """Finish the task (succeeded, or failed with the error the site's CLI gave)."""
    task = jobs.complete_task(session, site, task_id, body.status, body.error)
    return {"task": task.id, "job_status": task.job.status}
