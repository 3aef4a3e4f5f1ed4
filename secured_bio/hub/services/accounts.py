"""Users, sites and logins."""

from __future__ import annotations

import re

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import select
from sqlalchemy.orm import Session

from secured_bio.hub import security
from secured_bio.hub.errors import Conflict, Invalid, NotFound, TooManyRequests, Unauthorized
from secured_bio.hub.models import ROLES, Site, User, utcnow
from secured_bio.hub.services.audit import append_event

__all__ = ["create_user", "create_site", "authenticate", "site_for_token", "LoginLimiter",
           "rotate_site_token"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _check_name(name: str, what: str) -> None:
    if not _NAME.match(name):
        raise Invalid(f"invalid {what} name",
                      fix="use 1-64 letters, digits, '.', '_' or '-', starting with a letter "
                      "or digit")


def create_site(session: Session, name: str, *, title: str = "", actor: str = "system"
                ) -> tuple[Site, str]:
    """Register a site; returns it and its agent token (shown once, stored hashed)."""
    _check_name(name, "site")
    if session.scalar(select(Site).where(Site.name == name)) is not None:
        raise Conflict(f"site {name!r} exists", fix="choose another name")
    token = security.new_site_token()
    site = Site(name=name, title=title or name, token_hash=security.site_token_hash(token))
    session.add(site)
    session.flush()
    append_event(session, actor=actor, action="site.create", target=f"site:{site.id}",
                 details={"name": name})
    return site, token


def rotate_site_token(session: Session, site: Site, *, actor: str) -> str:
    """Issue a new agent token for ``site`` (the old one stops working)."""
    token = security.new_site_token()
    site.token_hash = security.site_token_hash(token)
    append_event(session, actor=actor, action="site.token", target=f"site:{site.id}")
    return token


def create_user(session: Session, username: str, password: str, role: str, *,
                site: str | None = None, display_name: str = "", actor: str = "system") -> User:
    """Create a user (``steward`` users belong to a site)."""
    _check_name(username, "user")
    if role not in ROLES:
        raise Invalid(f"unknown role {role!r}", fix=f"use one of {', '.join(ROLES)}")
    if len(password) < 12:
        raise Invalid("the password is too short", fix="use at least 12 characters")
    site_obj = None
    if role == "steward":
        if site is None:
            raise Invalid("a steward belongs to a site", fix="give the site name")
        site_obj = session.scalar(select(Site).where(Site.name == site))
        if site_obj is None:
            raise NotFound(f"no site {site!r}", fix="create the site first")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} exists", fix="choose another name")
    user = User(username=username, password_hash=security.hash_password(password), role=role,
                site_id=site_obj.id if site_obj else None, display_name=display_name or username)
    session.add(user)
    session.flush()
    append_event(session, actor=actor, action="user.create", target=f"user:{user.id}",
                 details={"username": username, "role": role, "site": site})
    return user


class LoginLimiter:
    """At most N login attempts per minute per user name and per client address.

    Kept in the worker's memory (``limits``' moving window): with W workers an attacker gets
    at most W x N guesses a minute per name; argon2id makes each guess slow as well.
    """

    def __init__(self, per_minute: int) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._item = RateLimitItemPerMinute(per_minute)

    def hit(self, username: str, client: str) -> None:
        """Count an attempt; raise when over the limit."""
        ok_user = self._limiter.hit(self._item, "user", username.lower())
        ok_client = self._limiter.hit(self._item, "client", client)
        if not (ok_user and ok_client):
            raise TooManyRequests("too many login attempts",
                                  fix="wait a minute before trying again")


def authenticate(session: Session, username: str, password: str, *, client: str = "") -> User:
    """Check a user's password; audit the attempt either way.

    Raises
    ------
    Unauthorized
        If the name or password is wrong or the account is disabled (one message for all).
    """
    user = session.scalar(select(User).where(User.username == username))
    ok = security.verify_password(user.password_hash if user else None, password)
    if not ok or user is None or user.disabled:
        append_event(session, actor=username[:64] or "?", action="login.failed",
                     details={"client": client})
        session.commit()
        raise Unauthorized("wrong user name or password",
                           fix="check both; after 10 tries a minute, wait a minute")
    if security.needs_rehash(user.password_hash):
        user.password_hash = security.hash_password(password)
    append_event(session, actor=user.username, action="login", details={"client": client})
    return user


def site_for_token(session: Session, token: str) -> Site:
    """Return the site an agent token belongs to.

    Raises
    ------
    Unauthorized
        If no site has this token.
    """
    site = session.scalar(select(Site).where(Site.token_hash == security.site_token_hash(token)))
    if site is None:
        raise Unauthorized("unknown site token",
                           fix="give the token the hub issued for this site (hub add-site)")
    site.last_seen = utcnow()
    return site
