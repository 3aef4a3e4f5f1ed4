"""Errors the hub's services raise; the app turns each into JSON with its HTTP status.

Every message says what is wrong and how to fix it, and never holds data values.
"""

from __future__ import annotations

__all__ = ["HubError", "Unauthorized", "Forbidden", "NotFound", "Conflict", "Invalid",
           "TooLarge", "TooManyRequests"]


class HubError(Exception):
    """Base class: ``status`` is the HTTP status, ``fix`` what the client can do."""

    status = 400

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def to_json(self) -> dict[str, str]:
        """Return the error as the API returns it."""
        body = {"detail": self.message}
        if self.fix:
            body["fix"] = self.fix
        return body


class Unauthorized(HubError):
    """No or invalid credentials (401)."""

    status = 401


class Forbidden(HubError):
    """Authenticated, but this role/user may not do that (403)."""

    status = 403


class NotFound(HubError):
    """No such object, or not visible to this user (404)."""

    status = 404


class Conflict(HubError):
    """The object's state does not allow that (409)."""

    status = 409


class Invalid(HubError):
    """The request is well-formed but its values are not acceptable (422)."""

    status = 422


class TooLarge(HubError):
    """An upload exceeds the hub's limit (413)."""

    status = 413


class TooManyRequests(HubError):
    """Rate limit reached (429)."""

    status = 429
