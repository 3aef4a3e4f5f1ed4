"""FastAPI dependencies: the database session, the caller (user or site agent), settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from secured_bio.hub import security
from secured_bio.hub.errors import Forbidden, Unauthorized
from secured_bio.hub.models import Site, User
from secured_bio.hub.services.accounts import site_for_token
from secured_bio.hub.settings import HubSettings

__all__ = ["user_of_token", "db_slot", "get_session", "get_settings", "current_user",
           "current_site", "require_role", "SessionDep", "UserDep", "SiteDep", "SettingsDep"]

_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def get_settings(request: Request) -> HubSettings:
    """Return the app's settings."""
    return request.app.state.settings  # type: ignore[no-any-return]


async def db_slot(request: Request) -> AsyncIterator[None]:
    """Wait, on the event loop, for one of this process's database slots.

    A request's session spans several hops through the worker-thread pool (dependencies, then
    the route).  Were every worker thread blocked waiting for the database (SQLite's single
    writer lock, or a free pooled connection) while the request that holds it waits for a
    thread to run its route, the hub would stall until the database timeouts (30 s) and
    answer 500.  Waiting here holds no thread, so the holder always gets one.
    """
    limit = getattr(request.app.state, "db_slots", 0)
    if not limit:
        yield
        return
    loop = asyncio.get_running_loop()
    semaphores = request.app.state.db_slot_semaphores
    sem = semaphores.get(loop)
    if sem is None:
        sem = semaphores[loop] = asyncio.Semaphore(limit)
    async with sem:
        yield


def get_session(request: Request,
                _slot: Annotated[None, Depends(db_slot, scope="function")]) -> Iterator[Session]:
    """Return a session per request: committed when the route returns, rolled back on error.

    Committed before the response is sent (``scope="function"``), so a client that got its
    answer reads its own write in its next request.
    """
    with request.app.state.sessions() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[HubSettings, Depends(get_settings)]


def current_user(request: Request, session: SessionDep,
                 token: Annotated[str | None, Depends(_bearer)]) -> User:
    """Return the user of a bearer token (API) - agents' site tokens are refused here."""
    if not token:
        raise Unauthorized("not logged in",
                           fix="POST /api/v1/auth/token with username and password, then send "
                           "'Authorization: Bearer <access_token>'")
    return user_of_token(request, session, token)


def user_of_token(request: Request, session: Session, token: str) -> User:
    """Return the user a bearer token was issued to (401/403 when it is not a user's)."""
    if token.startswith("sbsite_"):
        raise Forbidden("a site agent's token cannot act as a user")
    try:
        claims = security.read_token(token, key=request.app.state.signing_key)
    except security.TokenError as e:
        raise Unauthorized(str(e), fix="POST /api/v1/auth/token for a new token") from e
    user = session.get(User, int(claims["sub"])) if str(claims["sub"]).isdigit() else None
    if user is None or user.disabled:
        raise Unauthorized("the account no longer exists or is disabled")
    return user


def current_site(request: Request, session: SessionDep,
                 token: Annotated[str | None, Depends(_bearer)]) -> Site:
    """Return the site of an agent token."""
    if not token or not token.startswith("sbsite_"):
        raise Unauthorized("agent routes need the site's token",
                           fix="run 'secured-bio hub agent --token-file FILE' with the token "
                           "from 'secured-bio hub add-site'")
    return site_for_token(session, token)


UserDep = Annotated[User, Depends(current_user)]
SiteDep = Annotated[Site, Depends(current_site)]


def require_role(user: User, *roles: str) -> None:
    """Raise 403 unless ``user`` has one of ``roles``."""
    if user.role not in roles:
        raise Forbidden(f"this needs the {' or '.join(roles)} role; you are {user.role}")
