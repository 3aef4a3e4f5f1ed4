"""The catalogue: what each site holds, as the site's agent describes it (never rows)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from secured_bio.hub.errors import Invalid, NotFound
from secured_bio.hub.models import DATASET_KINDS, Dataset, Site, utcnow
from secured_bio.hub.services.audit import append_event

__all__ = ["register_datasets", "list_datasets", "get_dataset", "dataset_json"]

_MAX_META_BYTES = 64_000


def register_datasets(session: Session, site: Site, datasets: list[dict[str, Any]], *,
                      smpc_cert: str | None, agent_version: str | None,
                      beacon_key: str | None = None) -> list[Dataset]:
    """Insert or update the site's datasets (by name); keep ids stable across restarts."""
    import json

    existing = {d.name: d for d in site.datasets}
    out = []
    for item in datasets:
        name, kind = str(item.get("name", "")), str(item.get("kind", ""))
        if not name or len(name) > 128:
            raise Invalid("a dataset needs a name of 1-128 characters")
        if kind not in DATASET_KINDS:
            raise Invalid(f"dataset {name!r}: unknown kind {kind!r}",
                          fix=f"use one of {', '.join(DATASET_KINDS)}")
        meta = item.get("metadata") or {}
        if len(json.dumps(meta, default=str)) > _MAX_META_BYTES:
            raise Invalid(f"dataset {name!r}: metadata larger than 64 kB",
                          fix="send aggregate metadata only")
        ds = existing.get(name) or Dataset(site_id=site.id, name=name)
        ds.kind = kind
        ds.description = str(item.get("description") or "")[:4000]
        ds.meta = meta
        ds.duo = [str(c) for c in item.get("duo") or []]
        ds.contact = str(item.get("contact") or "")[:200]
        fp = str(item.get("fingerprint") or "").removeprefix("sha256:").lower()
        ds.fingerprint = fp if re.fullmatch(r"[0-9a-f]{64}", fp) else ""
        ds.updated_at = utcnow()
        session.add(ds)
        out.append(ds)
    if smpc_cert is not None:
        site.smpc_cert = smpc_cert
    if beacon_key is not None:
        site.beacon_key = beacon_key
    if agent_version:
        site.agent_version = agent_version[:40]
    session.flush()
    append_event(session, actor=f"site:{site.name}", action="site.register",
                 target=f"site:{site.id}", details={"datasets": [d.id for d in out]})
    return out


def list_datasets(session: Session, *, q: str | None = None, kind: str | None = None,
                  site: str | None = None) -> list[Dataset]:
    """Datasets matching a free-text query (name, description, variables), kind and site."""
    stmt = select(Dataset).join(Site).options(selectinload(Dataset.site)).order_by(Dataset.id)
    if kind:
        stmt = stmt.where(Dataset.kind == kind)
    if site:
        stmt = stmt.where(Site.name == site)
    rows = list(session.scalars(stmt))
    if q:
        needle = q.lower()
        rows = [d for d in rows if needle in " ".join(
            [d.name, d.description, d.kind, d.site.name, json_text(d.meta)]).lower()]
    return rows


def json_text(meta: dict[str, Any]) -> str:
    """Metadata flattened to searchable text."""
    import json

    return json.dumps(meta, default=str)


def get_dataset(session: Session, dataset_id: int) -> Dataset:
    """One dataset, or :class:`NotFound`."""
    ds = session.get(Dataset, dataset_id)
    if ds is None:
        raise NotFound(f"no dataset {dataset_id}", fix="list them at GET /api/v1/datasets")
    return ds


def dataset_json(ds: Dataset) -> dict[str, Any]:
    """Return the API's view of a dataset."""
    from secured_bio.hub.services.duo import describe

    return {
        "id": ds.id, "name": ds.name, "site": ds.site.name, "kind": ds.kind,
        "description": ds.description, "metadata": ds.meta, "duo": ds.duo,
        "duo_labels": [describe(c) for c in ds.duo], "contact": ds.contact,
        "fingerprint": ds.fingerprint, "updated_at": ds.updated_at.isoformat() + "Z",
    }
