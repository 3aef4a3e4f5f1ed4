"""Helpers of the hub's tests (import as ``hub._hub``; ``tests/`` is on ``sys.path``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secured_bio.hub.db import session_scope
from secured_bio.hub.settings import HubSettings

PASSWORD = "correct horse battery staple"
SITES = ("site1", "site2", "site3")
#: (user name, role, site)
USERS = (
    ("admin", "admin", None),
    ("researcher", "researcher", None),
    ("researcher2", "researcher", None),
    ("committee", "committee", None),
    ("steward-site1", "steward", "site1"),
    ("steward-site2", "steward", "site2"),
    ("steward-site3", "steward", "site3"),
)
ANON = {"k": 5, "quasi_identifiers": ["age", "sex"]}
PURPOSE = "Association of common variants with childhood asthma (health research)."


@dataclass
class Seed:
    """What the ``seed`` fixture created."""

    site_tokens: dict[str, str]
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def agent(self, site: str) -> dict[str, str]:
        """Authorization header of ``site``'s agent."""
        return {"Authorization": f"Bearer {self.site_tokens[site]}"}


def login(client: Any, user: str, password: str = PASSWORD) -> dict[str, str]:
    """Log ``user`` in through the API; returns the Authorization header."""
    r = client.post("/api/v1/auth/token", data={"username": user, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def dataset(name: str, kind: str = "clinical", duo: tuple[str, ...] = ("DUO:0000042",),
            **extra: Any) -> dict[str, Any]:
    """A dataset description as an agent registers it."""
    return {"name": name, "kind": kind, "description": f"{kind} data of {name}",
            "metadata": {"n": 100, "variables": ["age", "sex"]}, "duo": list(duo),
            "contact": "steward@example.org", **extra}


def register(client: Any, site_token: str, datasets: list[dict[str, Any]],
             smpc_cert: str | None = None) -> list[dict[str, Any]]:
    """Register datasets through the agent API; returns ``[{id, name}]``."""
    r = client.post("/api/v1/agent/register",
                    headers={"Authorization": f"Bearer {site_token}"},
                    json={"agent_version": "test", "smpc_cert": smpc_cert,
                          "datasets": datasets})
    assert r.status_code == 200, r.text
    return r.json()["datasets"]


def request_access(client: Any, headers: dict[str, str], datasets: list[int],
                   analyses: tuple[str, ...] = ("anonymize", "synthesize"),
                   purpose: str = PURPOSE, **terms: Any) -> dict[str, Any]:
    """File an access request (201 expected)."""
    body: dict[str, Any] = {"datasets": datasets, "purpose": purpose,
                            "analyses": list(analyses)}
    if terms:
        body["purpose_terms"] = terms
    r = client.post("/api/v1/access-requests", headers=headers, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def decide(client: Any, headers: dict[str, str], request_id: int, decision: str = "approve",
           reason: str = "fits the datasets' consent", **extra: Any) -> dict[str, Any]:
    """The committee decides a request (200 expected)."""
    r = client.post(f"/api/v1/access-requests/{request_id}/decision", headers=headers,
                    json={"decision": decision, "reason": reason, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def create_job(client: Any, headers: dict[str, str], request_id: int, datasets: list[int],
               kind: str = "anonymize", params: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    """Create a job (201 expected)."""
    r = client.post("/api/v1/jobs", headers=headers,
                    json={"access_request": request_id, "kind": kind, "datasets": datasets,
                          "params": params if params is not None else ANON})
    assert r.status_code == 201, r.text
    return r.json()


@dataclass
class World:
    """A seeded hub with datasets, an approved request and the actors' headers."""

    seed: Seed
    headers: dict[str, dict[str, str]]
    datasets: dict[str, int]
    request_id: int

    def agent(self, site: str) -> dict[str, str]:
        """Authorization header of ``site``'s agent."""
        return self.seed.agent(site)


def build_world(client: Any, seed: Seed, dp_budget: float | None = 2.0) -> World:
    """Register clinical data at every site, log everyone in, approve one request."""
    ids: dict[str, int] = {}
    for site in SITES:
        for d in register(client, seed.site_tokens[site], [dataset(f"clin-{site}")]):
            ids[d["name"]] = d["id"]
    headers = {name: login(client, name) for name, _, _ in USERS}
    req = request_access(client, headers["researcher"], [ids["clin-site1"]])
    extra: dict[str, Any] = {"dp_budget": dp_budget} if dp_budget else {}
    decide(client, headers["committee"], req["id"], **extra)
    return World(seed, headers, ids, req["id"])


def hub_settings(tmp_path: Path, db_url: str, **extra: Any) -> HubSettings:
    """Settings of a test hub (no login rate limit in the way of the matrix tests)."""
    return HubSettings(data_dir=tmp_path / "hub", db=db_url,
                       **{"login_attempts_per_minute": 100_000, **extra})


def seed_app(app: Any) -> Seed:
    """Users (admin, researcher, researcher2, committee, steward-site1..3), sites site1..3."""
    from secured_bio.hub.services.accounts import create_site, create_user

    tokens = {}
    with session_scope(app.state.sessions) as s:
        for site in SITES:
            _, tokens[site] = create_site(s, site, title=f"Hospital {site}")
        for name, role, site in USERS:
            create_user(s, name, PASSWORD, role, site=site)
    return Seed(site_tokens=tokens)
