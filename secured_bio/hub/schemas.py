"""Pydantic models of the REST API's request bodies (responses are plain JSON dicts)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AccessRequestIn", "DecisionIn", "JobIn", "RegisterIn", "ProgressIn", "CompleteIn",
           "PurposeTerms"]


class PurposeTerms(BaseModel):
    """The research purpose as DUO terms and the facts DUO modifiers ask about."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field("DUO:0000006", description="DUO purpose term (default: HMB, "
                      "health/medical/biomedical research)")
    disease: str = ""
    commercial: bool = False
    methods_development: bool = False
    genetic_study: bool = True
    ethics_approval: bool = False
    not_for_profit_org: bool = True


class AccessRequestIn(BaseModel):
    """``POST /api/v1/access-requests``."""

    model_config = ConfigDict(extra="forbid")
    datasets: list[int] = Field(min_length=1, max_length=200)
    purpose: str = Field(min_length=1, max_length=10_000)
    analyses: list[str] = Field(default_factory=lambda: ["gwas_secure"], max_length=10)
    purpose_terms: PurposeTerms = Field(default_factory=lambda: PurposeTerms.model_validate({}))


class DecisionIn(BaseModel):
    """``POST /api/v1/access-requests/{id}/decision``."""

    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "deny"]
    reason: str = Field(min_length=1, max_length=4000)
    expires_at: dt.datetime | None = None
    allowed_kinds: list[str] | None = None
    dp_budget: float | None = Field(default=None, gt=0)


class JobIn(BaseModel):
    """``POST /api/v1/jobs``."""

    model_config = ConfigDict(extra="forbid")
    access_request: int
    kind: str
    datasets: list[int] = Field(min_length=1, max_length=100)
    params: dict[str, Any] = Field(default_factory=dict)


class RegisterIn(BaseModel):
    """``POST /api/v1/agent/register``."""

    agent_version: str | None = Field(default=None, max_length=40)
    smpc_cert: str | None = Field(default=None, max_length=20_000)
    beacon_key: str | None = Field(default=None, max_length=64,
                                   pattern=r"^[A-Za-z0-9+/]{43}=$",
                                   description="X25519 public key (base64) for Beacon answers")
    datasets: list[dict[str, Any]] = Field(default_factory=list, max_length=500)


class ProgressIn(BaseModel):
    """``POST /api/v1/agent/tasks/{id}/progress``."""

    progress: float = Field(ge=0, le=1)
    message: str = Field(default="", max_length=500)


class CompleteIn(BaseModel):
    """``POST /api/v1/agent/tasks/{id}/complete``."""

    status: Literal["succeeded", "failed"]
    error: str | None = Field(default=None, max_length=4000)
