"""The hub's database: SQLAlchemy 2 models (schema changes go through Alembic migrations).

Nothing here holds row-level data: datasets are described by aggregate metadata computed at
the site; artifacts are what a job released (summary statistics, models, anonymized or
synthetic tables, reports), each with its privacy passport.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "ROLES", "DATASET_KINDS", "JOB_KINDS", "JOB_STATES", "Base", "User", "Site", "Dataset",
    "AccessRequest", "AccessRequestDataset", "Job", "Task", "Artifact", "AuditEvent", "AuditHead",
    "utcnow",
]

ROLES = ("admin", "researcher", "committee", "steward")
DATASET_KINDS = ("genotypes", "imaging", "vitals", "clinical")
JOB_KINDS = ("gwas_secure", "fl_train", "anonymize", "synthesize", "education_cases")
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
REQUEST_STATES = ("pending", "approved", "denied")


def utcnow() -> dt.datetime:
    """Now, in UTC, without microseconds (stable across databases)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base of the hub's tables."""

    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Site(Base):
    """A data provider (hospital, national hub) with its agent's credentials."""

    __tablename__ = "sites"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    #: sha256 of the agent's bearer token (a 256-bit random secret, so a plain hash suffices)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    smpc_cert: Mapped[str | None] = mapped_column(Text)
    #: the agent's X25519 public key (base64) for masked Beacon answers
    beacon_key: Mapped[str | None] = mapped_column(String(64))
    agent_version: Mapped[str | None] = mapped_column(String(40))
    last_seen: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    datasets: Mapped[list[Dataset]] = relationship(back_populates="site")


class User(Base):
    """A person: admin, researcher, committee member or a site's data steward."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    site: Mapped[Site | None] = relationship()


class Dataset(Base):
    """A dataset a site holds, described by aggregate metadata (never rows)."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("site_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text, default="")
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    duo: Mapped[list[Any]] = mapped_column(JSON, default=list)
    contact: Mapped[str] = mapped_column(String(200), default="")
    fingerprint: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    site: Mapped[Site] = relationship(back_populates="datasets")


class AccessRequest(Base):
    """A researcher's request for datasets, and the committee's decision."""

    __tablename__ = "access_requests"
    id: Mapped[int] = mapped_column(primary_key=True)
    researcher_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    purpose: Mapped[str] = mapped_column(Text)
    #: DUO codes describing the stated purpose (e.g. DUO:0000006 health/medical research)
    purpose_codes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    analyses: Mapped[list[Any]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    duo_check: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    #: job kinds the grant allows (empty: the analyses asked for)
    allowed_kinds: Mapped[list[Any]] = mapped_column(JSON, default=list)
    dp_budget: Mapped[float | None] = mapped_column(Float)
    dp_spent: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    researcher: Mapped[User] = relationship(foreign_keys=[researcher_id])
    datasets: Mapped[list[AccessRequestDataset]] = relationship(cascade="all, delete-orphan")


class AccessRequestDataset(Base):
    """Link table: the datasets of an access request."""

    __tablename__ = "access_request_datasets"
    request_id: Mapped[int] = mapped_column(ForeignKey("access_requests.id"), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), primary_key=True)

    dataset: Mapped[Dataset] = relationship()


class Job(Base):
    """An analysis run within an approved access request; one task per site involved."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("access_requests.id"))
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dataset_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    #: what the hub set up for the sites (relay address and roster, Flower SuperLink...)
    coordination: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: the hub worker that owns the coordination (relay process), with its heartbeat
    coordinator: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    tasks: Mapped[list[Task]] = relationship(back_populates="job", order_by="Task.rank")
    artifacts: Mapped[list[Artifact]] = relationship(back_populates="job")
    request: Mapped[AccessRequest] = relationship()


class Task(Base):
    """One site's part of a job, claimed by that site's agent."""

    __tablename__ = "tasks"
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    rank: Mapped[int] = mapped_column(Integer, default=0)
    dataset_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    job: Mapped[Job] = relationship(back_populates="tasks")
    site: Mapped[Site] = relationship()


class Artifact(Base):
    """A released file, stored under its sha256 (never under a client-chosen path)."""

    __tablename__ = "artifacts"
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64), default="file")
    media_type: Mapped[str] = mapped_column(String(100), default="application/octet-stream")
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    passport: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    job: Mapped[Job] = relationship(back_populates="artifacts")


class AuditEvent(Base):
    """One entry of the append-only, hash-chained audit log."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    ts: Mapped[dt.datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's head (one row), locked while an event is appended."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64))
