"""GA4GH Beacon v2 at ``/beacon/v2`` and the agents' Beacon routes (``/api/v1/agent/beacon``).

A query's database work (login, budget, grants, roster; then the audit entry) runs in two
short transactions, and the wait for the sites' answers between them holds no database slot:
the agents' answers need the database too (their token), and on SQLite one slot is all.
See :mod:`secured_bio.hub.services.beacon` for the protocol and its threat model.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable
from typing import Any, TypeVar, cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from secured_bio.hub.deps import db_slot, user_of_token
from secured_bio.hub.errors import Forbidden, HubError, Invalid, Unauthorized
from secured_bio.hub.models import Site, User
from secured_bio.hub.services import beacon as svc

__all__ = ["agent_router", "page_router", "router", "run_query"]

router = APIRouter(prefix="/beacon/v2", tags=["beacon"])
agent_router = APIRouter(prefix="/api/v1/agent/beacon", tags=["agent"])

T = TypeVar("T")
_MAX_BODY = 64_000


async def _in_slot(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(session, *args)`` in one committed transaction, inside a database slot."""
    gen = cast("AsyncGenerator[None, None]", db_slot(request))
    await gen.__anext__()
    try:
        def tx() -> T:
            with request.app.state.sessions() as session:
                try:
                    out = fn(session, *args)
                    session.commit()
                    return out
                except BaseException:
                    session.rollback()
                    raise
        return await run_in_threadpool(tx)
    finally:
        await gen.aclose()


def _token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _user_of(request: Request, session: Any, token: str | None) -> User | None:
    if token is None:
        uid = request.session.get("uid") if "session" in request.scope else None
        if isinstance(uid, int):  # the hub's own pages (session cookie)
            user = session.get(User, uid)
            return user if user is not None and not user.disabled else None
        return None
    if token.startswith("sbsite_"):
        raise Forbidden("a site agent's token cannot query the Beacon")
    return user_of_token(request, session, token)


async def run_query(request: Request, entry_type: str, query: dict[str, Any] | None,
                    body: dict[str, Any] | None) -> dict[str, Any]:
    """Answer a Beacon query of ``g_variants`` or ``individuals`` (raises HubError)."""
    settings = request.app.state.settings
    svc.check_single_worker(settings)
    policy = svc.policy_of(settings)
    q = svc.parse_request(entry_type, query, body)
    token = _token(request)
    client = request.client.host if request.client else "?"

    def plan(session: Any) -> tuple[Any, dict[str, Any]]:
        user = _user_of(request, session, token)
        p = svc.plan_query(session, user, q, policy=policy,
                           anonymous_boolean=settings.beacon_anonymous, client=client)
        return p, svc.message_of(p)

    p, message = await _in_slot(request, plan)
    totals = await run_in_threadpool(request.app.state.beacon.run, message, p.roster,
                                     n_slots=len(p.slots), timeout_s=settings.beacon_timeout_s)
    return await _in_slot(request, lambda s: svc.finish_query(s, p, totals, policy=policy))


def _beacon_json(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn hub errors of a Beacon route into Beacon error responses."""
    import functools

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except HubError as e:
            return JSONResponse(svc.error_response(e), status_code=e.status)
    return wrapper


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        raise Invalid("the Beacon request body is too large")
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as e:
        raise Invalid("the request body is not JSON", fix="send a Beacon request body") from e
    if not isinstance(doc, dict):
        raise Invalid("the request body must be a JSON object")
    return doc


def _base_url(request: Request) -> str:
    return str(request.app.state.settings.public_url or request.base_url)


@router.get("/")
@router.get("/info")
async def beacon_info(request: Request) -> dict[str, Any]:
    """Return the Beacon's information (``beaconInfoResponse``)."""
    return svc.info(_base_url(request), svc.policy_of(request.app.state.settings))


@router.get("/configuration")
async def beacon_configuration() -> dict[str, Any]:
    """Return the Beacon's configuration (``beaconConfigurationResponse``)."""
    return svc.configuration()


@router.get("/map")
async def beacon_map(request: Request) -> dict[str, Any]:
    """Return the Beacon's map of endpoints (``beaconMapResponse``)."""
    return svc.beacon_map(_base_url(request))


@router.get("/entry_types")
async def beacon_entry_types() -> dict[str, Any]:
    """Return the entry types (``beaconEntryTypesResponse``)."""
    return svc.entry_types()


@router.get("/filtering_terms")
@_beacon_json
async def beacon_filtering_terms(request: Request) -> Any:
    """Return the filtering terms (``beaconFilteringTermsResponse``)."""
    return await _in_slot(request, svc.filtering_terms)


@router.get("/g_variants")
@_beacon_json
async def g_variants_get(request: Request) -> Any:
    """Query variants: ``referenceName``, ``start`` (0-based), ``alternateBases``... ."""
    return await run_query(request, "g_variants", dict(request.query_params), None)


@router.post("/g_variants")
@_beacon_json
async def g_variants_post(request: Request) -> Any:
    """Query variants with a Beacon request body."""
    return await run_query(request, "g_variants", None, await _body(request))


@router.get("/individuals")
@_beacon_json
async def individuals_get(request: Request) -> Any:
    """Count individuals matching ``filters`` (comma-separated filtering term ids)."""
    return await run_query(request, "individuals", dict(request.query_params), None)


@router.post("/individuals")
@_beacon_json
async def individuals_post(request: Request) -> Any:
    """Count individuals with a Beacon request body (filters with operators)."""
    return await run_query(request, "individuals", None, await _body(request))


async def _collections(request: Request, entry_type: str, body: dict[str, Any] | None
                       ) -> Any:
    query = dict(request.query_params) if body is None else None
    q = svc.parse_request(entry_type, query, body)
    token = _token(request)
    settings = request.app.state.settings

    def run(session: Any) -> dict[str, Any]:
        user = _user_of(request, session, token)
        if user is None and not settings.beacon_anonymous:
            raise Unauthorized("the Beacon answers logged-in users",
                               fix="POST /api/v1/auth/token first")
        return svc.collections_response(session, entry_type, q)

    return await _in_slot(request, run)


@router.get("/datasets")
@_beacon_json
async def datasets_get(request: Request) -> Any:
    """List the Beacon's datasets (``beaconCollectionsResponse``)."""
    return await _collections(request, "datasets", None)


@router.post("/datasets")
@_beacon_json
async def datasets_post(request: Request) -> Any:
    """List the Beacon's datasets (request body form)."""
    return await _collections(request, "datasets", await _body(request))


@router.get("/cohorts")
@_beacon_json
async def cohorts_get(request: Request) -> Any:
    """List the Beacon's cohorts (``beaconCollectionsResponse``)."""
    return await _collections(request, "cohorts", None)


@router.post("/cohorts")
@_beacon_json
async def cohorts_post(request: Request) -> Any:
    """List the Beacon's cohorts (request body form)."""
    return await _collections(request, "cohorts", await _body(request))


# -- the agents' side ------------------------------------------------------------------------------

async def _site(request: Request) -> str:
    from secured_bio.hub.services.accounts import site_for_token

    token = _token(request)
    if not token or not token.startswith("sbsite_"):
        raise Unauthorized("agent routes need the site's token")

    def auth(session: Any) -> str:
        site: Site = site_for_token(session, token)
        return site.name

    return await _in_slot(request, auth)


@agent_router.post("/claim")
async def beacon_claim(request: Request) -> dict[str, Any]:
    """Return the Beacon queries for this site; wait up to ``wait_s`` (at most 25 s)."""
    svc.check_single_worker(request.app.state.settings)
    site = await _site(request)
    body = await _body(request)
    try:
        wait_s = min(max(float(body.get("wait_s", 10.0)), 0.0), 25.0)
    except (TypeError, ValueError) as e:
        raise Invalid("wait_s must be a number of seconds") from e
    import time

    deadline = time.monotonic() + wait_s
    while True:  # in short waits, so a closed connection (agent stopped) ends the request
        remaining = deadline - time.monotonic()
        queries = await run_in_threadpool(request.app.state.beacon.claim, site,
                                          wait_s=min(1.0, max(remaining, 0.0)))
        if queries or remaining <= 1.0 or await request.is_disconnected():
            return {"queries": queries}


@agent_router.post("/{query_id}/answer")
async def beacon_answer(query_id: str, request: Request) -> dict[str, Any]:
    """Take a site's masked answer (``values``) or its ``error`` for a query."""
    site = await _site(request)
    body = await _body(request)
    error = body.get("error")
    values = body.get("values")
    if error is not None and not isinstance(error, str):
        raise Invalid("error must be a message")
    if error is None and not isinstance(values, list):
        raise Invalid("give values (the masked answer) or error")
    request.app.state.beacon.answer(site, query_id, values, error)
    return {"ok": True}


# -- the page ------------------------------------------------------------------------------------

page_router = APIRouter(include_in_schema=False)


@page_router.get("/beacon")
async def beacon_page(request: Request, variant: str = "",
                      granularity: str = "count") -> Any:
    """Search form: ``CHR:POS:REF:ALT`` and a granularity; the Beacon's answer below it."""
    from secured_bio.hub.routes.pages import _render, csrf_protect, error_page

    def who(session: Any) -> int:
        uid = request.session.get("uid")
        user = session.get(User, uid) if isinstance(uid, int) else None
        if user is None or user.disabled:
            raise Unauthorized("log in first", fix="log in at /login")
        return int(user.id)

    try:
        uid = await _in_slot(request, who)
    except Unauthorized as e:
        return error_page(request, e)
    granularity = granularity if granularity in svc.GRANULARITIES else "count"
    result, error = None, None
    if variant.strip():
        from secured_bio.errors import ConfigError
        from secured_bio.hub.beacon_cli import parse_variant

        try:
            params = parse_variant(variant)
            result = await run_query(request, "g_variants", None, {"query": {
                "requestParameters": params, "requestedGranularity": granularity}})
        except ConfigError as e:
            error = f"{e.what}: expected {e.expected}"
        except HubError as e:
            error = e.message + (f" ({e.fix})" if e.fix else "")

    def render(session: Any) -> Any:  # in a session: the page header reads the user's site
        return _render(request, "beacon.html", session.get(User, uid), csrf_protect(request),
                       variant=variant, granularity=granularity,
                       granularities=svc.GRANULARITIES, result=result,
                       result_json=json.dumps(result, indent=2) if result else "",
                       error=error)

    return await _in_slot(request, render)
