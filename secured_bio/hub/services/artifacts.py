"""Released artifacts: stored by content hash, visible only once complete, each with a passport.

Uploads stream to a temporary file in the artifact folder, are hashed and size-checked while
they arrive, then renamed to their SHA-256; the database row is written last, so a crash leaves
no half-visible artifact.  Names are display labels checked against a strict pattern; the
stored path never comes from the client.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import secrets
from pathlib import Path
from typing import IO, Any

from sqlalchemy.orm import Session

from secured_bio.hub.errors import Forbidden, Invalid, NotFound, TooLarge
from secured_bio.hub.models import AccessRequest, Artifact, Dataset, Job, Task, User, utcnow
from secured_bio.hub.services.audit import append_event
from secured_bio.hub.services.jobs import can_see_job

__all__ = ["store_upload", "get_artifact", "artifact_path", "can_download", "artifact_json",
           "SAFE_NAME"]

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_CHUNK = 1 << 20


def _check_name(name: str) -> str:
    if not SAFE_NAME.match(name) or ".." in name:
        raise Invalid("invalid artifact name",
                      fix="use a plain file name: letters, digits, '.', '_', '-' (no folders)")
    return name


def artifact_path(root: Path, sha256: str) -> Path:
    """Where an artifact's bytes live (by hash; the hash is checked to be hex)."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise Invalid("invalid artifact hash")
    return root / sha256[:2] / sha256


def store_upload(session: Session, task: Task | None, *, name: str, kind: str,
                 stream: IO[bytes], root: Path, max_bytes: int,
                 passport: dict[str, Any] | None, site_name: str,
                 job: Job | None = None) -> Artifact:
    """Store an uploaded release of ``task`` and record it with its enriched passport.

    ``task=None`` with ``job``: an artifact the hub itself produced for the job (the model a
    federated job aggregated at the hub); ``site_name`` then names the producer (``hub``).
    """
    _check_name(name)
    if task is None:
        if job is None:
            raise Invalid("an artifact belongs to a task or, made by the hub, to a job")
    elif task.status != "running":
        raise Invalid(f"task {task.id} is {task.status}: uploads only while it runs")
    job = task.job if task is not None else job
    assert job is not None
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".upload-{secrets.token_hex(8)}.tmp"
    h, size = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as out:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"the upload exceeds {max_bytes // (1 << 20)} MB",
                                   fix="release a smaller file or raise max_upload_mb")
                h.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        digest = h.hexdigest()
        final = artifact_path(root, digest)
        final.parent.mkdir(exist_ok=True)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    doc = _enrich_passport(session, passport or {}, name=name, digest=digest, size=size,
                           job=job, site=site_name, path=final, kind=kind)
    art = Artifact(job_id=job.id, task_id=None if task is None else task.id, name=name,
                   kind=kind[:64] or "file",
                   media_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
                   sha256=digest, size=size, passport=doc)
    session.add(art)
    session.flush()
    append_event(session, actor=f"site:{site_name}" if task is not None else site_name,
                 action="artifact.upload",
                 target=f"artifact:{art.id}",
                 details={"job": job.id, "name": name, "sha256": digest, "size": size})
    return art


def _enrich_passport(session: Session, doc: dict[str, Any], *, name: str, digest: str,
                     size: int, job: Job, site: str, path: Path, kind: str) -> dict[str, Any]:
    """Add what only the hub knows (the job, the input datasets and their DUO codes).

    A release that came without a passport (a plot, a log) gets one built here from the
    stored file, so every artifact has one; the result must validate against the schema.
    """
    from secured_bio.passport import KINDS, build_passport, validate_passport

    inputs: list[dict[str, Any]] = []
    duo: list[str] = []
    for i in job.dataset_ids:
        ds = session.get(Dataset, i)
        if ds is None:
            continue
        inputs.append({"id": f"dataset:{ds.id}", "sha256": ds.fingerprint or None,
                       "size": None, "site": ds.site.name, "role": ds.kind,
                       "duo": list(ds.duo), "name": ds.name})
        duo.extend(c for c in ds.duo if c not in duo)
    if doc.get("format") != "secured_bio.passport":
        doc = build_passport(path, kind=kind if kind in KINDS else "report", report=None,
                             command=f"hub job {job.kind}", parameters=dict(job.params),
                             job=str(job.id))
    doc = dict(doc)
    doc["artifact"] = {**doc.get("artifact", {}), "name": name, "sha256": digest, "size": size}
    produced = dict(doc.get("produced_by") or {})
    produced["job"] = str(job.id)
    produced["hub_job"] = {"id": job.id, "kind": job.kind, "access_request": job.request_id,
                           "params": job.params, "site": site}
    doc["produced_by"] = produced
    doc["inputs"] = inputs
    prev: dict[str, Any] = doc["data_use"] if isinstance(doc.get("data_use"), dict) else {}
    codes = list(dict.fromkeys([*(prev.get("duo") or []), *duo]))
    doc["data_use"] = {
        "duo": codes,
        "source": "the input datasets' DUO codes (Data Use Ontology, GA4GH) as registered "
                  "at the hub",
        "note": None if codes else "no DUO codes were given with the inputs: ask the data "
                "holders for the data-use conditions before any reuse",
    }
    try:
        validate_passport(doc)
    except Exception as e:  # noqa: BLE001 - SchemaError names the field, no data values
        raise Invalid(f"the release's passport does not fit the passport schema: {e}",
                      fix="send the passport the secured-bio command wrote (--passport)") from e
    return doc


def get_artifact(session: Session, user: User, artifact_id: int) -> Artifact:
    """Return an artifact whose job the user may see (404 otherwise)."""
    art = session.get(Artifact, artifact_id)
    if art is None or not can_see_job(user, art.job):
        raise NotFound(f"no artifact {artifact_id}", fix="see the job's artifacts list")
    return art


def can_download(user: User, art: Artifact) -> None:
    """Raise unless the grant (or the user's role) allows downloading ``art``."""
    job = art.job
    if user.role == "admin":
        return
    if user.role == "steward" and any(t.site_id == user.site_id for t in job.tasks):
        return
    if user.id == job.created_by:
        req: AccessRequest = job.request
        if req.status != "approved":
            raise Forbidden(f"access request {req.id} is {req.status}")
        if req.expires_at is not None and req.expires_at <= utcnow():
            raise Forbidden(f"access request {req.id} expired; downloads are closed",
                            fix="file a new request")
        return
    raise Forbidden("downloads are for the job's owner under an approved grant",
                    fix="the committee sees the passport; ask the owner for the result")


def artifact_json(art: Artifact) -> dict[str, Any]:
    """Return the API's view of an artifact."""
    return {"id": art.id, "name": art.name, "kind": art.kind, "job": art.job_id,
            "sha256": art.sha256, "size": art.size, "media_type": art.media_type,
            "created_at": art.created_at.isoformat() + "Z",
            "classification": (art.passport.get("classification") or {}).get("category"),
            "download": f"/api/v1/artifacts/{art.id}/download",
            "passport": f"/api/v1/artifacts/{art.id}/passport"}
