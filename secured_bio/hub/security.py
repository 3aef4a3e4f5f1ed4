"""Credentials: argon2id password hashes, signed bearer tokens (JWT), site agent tokens.

Nothing home-made: argon2-cffi hashes passwords, PyJWT signs and checks tokens (HS256 with
the hub's 256-bit secret), ``secrets`` makes agent tokens.  An agent token is 256 random bits,
so the database keeps only its SHA-256 (a slow hash adds nothing against guessing 2^256).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "hash_password", "verify_password", "needs_rehash", "issue_token", "read_token",
    "new_site_token", "site_token_hash", "TokenError",
]

_HASHER = PasswordHasher()  # argon2id, the library's (RFC 9106) defaults
_ALGORITHM = "HS256"
_SITE_TOKEN_PREFIX = "sbsite_"
#: verified when a user name is unknown, so a login takes as long either way
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


class TokenError(Exception):
    """A bearer token is missing, malformed, expired or not signed by this hub."""


def hash_password(password: str) -> str:
    """Argon2id hash of ``password``."""
    return _HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash`` (constant work for unknown users)."""
    try:
        return _HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Whether the hash uses outdated parameters."""
    return _HASHER.check_needs_rehash(stored_hash)


def issue_token(subject: str, *, key: str, minutes: int, claims: dict[str, Any] | None = None
                ) -> tuple[str, dt.datetime]:
    """Sign a bearer token for ``subject``; returns it and its expiry (UTC)."""
    now = dt.datetime.now(dt.UTC)
    exp = now + dt.timedelta(minutes=minutes)
    payload = {"sub": subject, "iat": now, "exp": exp, "jti": secrets.token_hex(8),
               **(claims or {})}
    return jwt.encode(payload, key, algorithm=_ALGORITHM), exp


def read_token(token: str, *, key: str) -> dict[str, Any]:
    """Check a bearer token's signature and expiry and return its claims.

    Raises
    ------
    TokenError
        If the token is invalid or expired.
    """
    try:
        return jwt.decode(token, key, algorithms=[_ALGORITHM], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError as e:
        raise TokenError("the token has expired: log in again") from e
    except jwt.PyJWTError as e:
        raise TokenError("the token is not valid: log in again") from e


def new_site_token() -> str:
    """Return a new agent token (256 random bits)."""
    return _SITE_TOKEN_PREFIX + secrets.token_urlsafe(32)


def site_token_hash(token: str) -> str:
    """SHA-256 of an agent token (what the database keeps)."""
    return hashlib.sha256(token.strip().encode()).hexdigest()
