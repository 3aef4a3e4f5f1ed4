"""The hub's application factory.

>>> from secured_bio.hub.settings import HubSettings
>>> import tempfile, pathlib
>>> app = create_app(HubSettings(data_dir=pathlib.Path(tempfile.mkdtemp())))
>>> app.title
'secured_bio Innohub'
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from secured_bio.hub.db import (
    is_sqlite,
    make_engine,
    make_sessionmaker,
    migrate,
    session_scope,
)
from secured_bio.hub.errors import HubError
from secured_bio.hub.settings import HubSettings

__all__ = ["create_app"]

log = logging.getLogger(__name__)

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'"),
}


class _Guard:
    """Security headers on every response; oversized request bodies refused up front."""

    def __init__(self, app: ASGIApp, *, max_body: int, hsts: bool) -> None:
        self.app, self.max_body, self.hsts = app, max_body, hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            resp = JSONResponse(
                {"detail": f"the request exceeds {self.max_body >> 20} MB",
                 "fix": "release a smaller file or raise max_upload_mb"}, status_code=413)
            await resp(scope, receive, send)
            return
        seen = 0
        max_body = self.max_body

        async def guarded_receive() -> Any:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > max_body:
                    raise _TooLargeStream()
            return msg

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.lower().encode(), v.encode()) for k, v in _SECURITY_HEADERS.items()]
                if self.hsts:
                    extra.append((b"strict-transport-security", b"max-age=31536000"))
                existing = {k for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in extra if k not in existing]
            await send(message)

        try:
            await self.app(scope, guarded_receive, send_with_headers)
        except _TooLargeStream:
            resp = JSONResponse({"detail": "the request body is too large"}, status_code=413)
            await resp(scope, receive, send_with_headers)


class _TooLargeStream(StarletteHTTPException):
    """A body streamed without Content-Length passed the limit.

    An HTTPException, so FastAPI's body parsing re-raises it (it turns other exceptions into
    400 "error parsing the body") and the app's handler answers 413.
    """

    def __init__(self) -> None:
        super().__init__(413, "the request body is too large")


def create_app(settings: HubSettings | None = None, *, run_migrations: bool = True) -> FastAPI:
    """Build the hub: database (migrated), routes, pages, middleware.

    Parameters
    ----------
    settings
        The hub's settings (default: from the environment).
    run_migrations
        Bring the database schema up to date first (Alembic).
    """
    from secured_bio.hub.routes import agent, api, beacon
    from secured_bio.hub.services.accounts import LoginLimiter
    from secured_bio.hub.services.audit import ensure_head
    from secured_bio.hub.services.beacon import BeaconBroker
    from secured_bio.hub.services.coordination import worker_alive
    from secured_bio.hub.services.jobs import fail_orphaned_jobs

    settings = settings or HubSettings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    if run_migrations:
        migrate(engine)
    sessions = make_sessionmaker(engine)
    with session_scope(sessions) as s:
        ensure_head(s)
    with session_scope(sessions) as s:
        failed = fail_orphaned_jobs(s, stale_s=settings.task_stale_s, alive=worker_alive)
        if failed:
            log.warning("failed %d job(s) orphaned by a hub restart", len(failed))

    app = FastAPI(title="secured_bio Innohub", version=_version(), lifespan=_lifespan,
                  openapi_url="/api/v1/openapi.json", docs_url="/api/v1/docs", redoc_url=None)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    # concurrent request sessions per process (see deps.db_slot): SQLite has one writer (every
    # transaction is BEGIN IMMEDIATE); PostgreSQL at most the pool's connections
    app.state.db_slots = 1 if is_sqlite(engine) else (
        engine.pool.size() + engine.pool._max_overflow)  # type: ignore[attr-defined]
    app.state.db_slot_semaphores = weakref.WeakKeyDictionary()
    app.state.signing_key = settings.signing_key()
    app.state.login_limiter = LoginLimiter(settings.login_attempts_per_minute)
    app.state.coordinate = _coordinator(settings, sessions)
    app.state.beacon = BeaconBroker()

    @app.exception_handler(HubError)
    async def _hub_error(request: Request, exc: HubError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if _wants_html(request) and exc.status in (401, 403, 404):
            from secured_bio.hub.routes.pages import error_page

            return error_page(request, exc)
        return JSONResponse(exc.to_json(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
        return JSONResponse(
            {"detail": "invalid request: " + "; ".join(problems[:10]),
             "fix": "see the API schema at /api/v1/openapi.json",
             "errors": [{"loc": list(e.get("loc", ())), "msg": e.get("msg")}
                        for e in exc.errors()[:20]]},
            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        fix = "see /api/v1/docs for the routes" if exc.status_code == 404 else None
        body = {"detail": str(exc.detail)}
        if fix:
            body["fix"] = fix
        return JSONResponse(body, status_code=exc.status_code)

    app.include_router(api.router)
    app.include_router(agent.router)
    app.include_router(beacon.router)
    app.include_router(beacon.agent_router)
    app.include_router(beacon.page_router)
    _mount_pages(app, settings)
    app.add_middleware(SessionMiddleware, secret_key=app.state.signing_key,
                       session_cookie="sb_session", max_age=settings.session_minutes * 60,
                       same_site="strict", https_only=settings.secure_cookies)
    app.add_middleware(_Guard, max_body=(settings.max_upload_mb << 20) + (1 << 20),
                       hsts=settings.secure_cookies)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Stop this worker's Flower runs when the server shuts down (also done at exit)."""
    yield
    from secured_bio.hub.services.flower import stop_fl_jobs

    stop_fl_jobs()


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", "")


def _mount_pages(app: FastAPI, settings: HubSettings) -> None:
    """Server-rendered pages and static files, when present."""
    import importlib.util

    from fastapi.staticfiles import StaticFiles

    static = Path(__file__).with_name("static")
    if static.is_dir():
        app.mount("/static", StaticFiles(directory=static), name="static")
    if importlib.util.find_spec("secured_bio.hub.routes.pages") is not None:
        from secured_bio.hub.routes import pages

        app.include_router(pages.router)


def _coordinator(settings: HubSettings, sessions: Any) -> Any:
    from secured_bio.hub.services.coordination import start_gwas_relay

    def coordinate(job: Any, sites: list[Any]) -> dict[str, Any]:
        if job.kind == "fl_train":
            from secured_bio.hub.services.flower import start_fl_job

            return start_fl_job(job.id, sites, job.params, data_dir=settings.data_dir,
                                host=settings.relay_address, listen=settings.relay_listen,
                                sessions=sessions, artifacts_dir=settings.artifacts_dir,
                                max_bytes=settings.max_upload_mb << 20)
        if job.kind == "gwas_secure":
            return start_gwas_relay(job.id, sites, data_dir=settings.data_dir,
                                    host=settings.relay_address, listen=settings.relay_listen,
                                    port=settings.relay_port)
        return {}

    return coordinate


def _version() -> str:
    from secured_bio import __version__

    return __version__
