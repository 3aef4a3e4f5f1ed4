"""The site agent's HTTP client of the hub's agent API (outbound connections only).

Every call authenticates with the site token (``Authorization: Bearer``).  Connection errors
and 5xx answers (the hub restarting) are retried with exponential backoff; a 4xx answer
raises :class:`HubError` at once with the hub's ``detail`` message.  The token is never
logged.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from secured_bio.errors import ProtocolError

if TYPE_CHECKING:
    import httpx

    from secured_bio.hub.agent.discover import LocalDataset
    from secured_bio.hub.agent.runners import Release

__all__ = ["API_PREFIX", "HubClient", "HubError"]

log = logging.getLogger(__name__)

#: Path prefix of the agent API.
API_PREFIX = "/api/v1/agent"


class HubError(ProtocolError):
    """The hub refused a call (4xx) or stayed unreachable after every retry.

    Attributes
    ----------
    status_code
        The HTTP status, or None when the hub could not be reached.
    """

    def __init__(self, what: str, *, status_code: int | None = None, **kwargs: Any) -> None:
        self.status_code = status_code
        super().__init__(what, **kwargs)


class HubClient:
    """Call the hub's agent API as one site.

    Parameters
    ----------
    base_url
        The hub's address, e.g. ``https://hub.example.org``.
    token
        The site token (from the hub's admin, ``secured-bio hub add-site``).
    timeout
        Seconds per HTTP request.
    retries
        Attempts after the first one for connection errors and 5xx answers.
    backoff
        Seconds before the first retry; doubled each time (with jitter), at most 30 s.
    transport
        An ``httpx`` transport (tests: ``httpx.ASGITransport``/``MockTransport``).

    Examples
    --------
    >>> import httpx
    >>> def hub(request):
    ...     return httpx.Response(200, json={"task": None})
    >>> c = HubClient("http://hub", "t0k", transport=httpx.MockTransport(hub))
    >>> c.claim() is None
    True
    """

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0, retries: int = 6,
                 backoff: float = 0.5, transport: httpx.BaseTransport | None = None) -> None:
        import httpx

        if not token or not token.strip():
            raise HubError("empty site token", fix="put the site token in the token file")
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self._client = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport,
            headers={"Authorization": f"Bearer {token.strip()}",
                     "User-Agent": f"secured-bio-agent/{_version()}"})

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the API --------------------------------------------------------------------------------

    def register(self, datasets: Sequence[LocalDataset], *, smpc_cert: str | None,
                 agent_version: str | None = None,
                 beacon_key: str | None = None) -> dict[str, Any]:
        """Register the site's datasets and SMPC certificate (``POST /agent/register``).

        Returns
        -------
        dict
            ``{"site": name, "datasets": [{"id", "name"}]}``.
        """
        body = {"agent_version": agent_version or _version(), "smpc_cert": smpc_cert,
                "datasets": [d.to_registration() for d in datasets]}
        if beacon_key is not None:
            body["beacon_key"] = beacon_key
        answer: dict[str, Any] = self._call("POST", "/register", json=body)
        return answer

    def claim(self) -> dict[str, Any] | None:
        """Claim the next queued task of this site (``POST /agent/tasks/claim``), or None."""
        answer = self._call("POST", "/tasks/claim")
        task = answer.get("task") if isinstance(answer, dict) else None
        return task if isinstance(task, dict) else None

    def progress(self, task_id: Any, fraction: float, message: str) -> bool:
        """Report a task's progress; return True when the hub asks to cancel it."""
        answer = self._call("POST", f"/tasks/{task_id}/progress",
                            json={"progress": min(max(float(fraction), 0.0), 1.0),
                                  "message": message[:500]})
        return bool(answer.get("cancel", False)) if isinstance(answer, dict) else False

    def upload(self, task_id: Any, release: Release) -> Any:
        """Upload one release of a task (multipart ``file``, ``name``, ``passport``).

        Returns
        -------
        Any
            The artifact ``id`` the hub gave it.
        """
        data = {"name": release.name, "kind": release.kind}
        if release.passport is not None:
            data["passport"] = json.dumps(release.passport)

        def files() -> dict[str, Any]:  # a fresh file handle per attempt
            return {"file": (release.name, release.path.open("rb"),
                             "application/octet-stream")}

        answer = self._call("POST", f"/tasks/{task_id}/artifacts", data=data, files=files)
        return answer.get("id") if isinstance(answer, dict) else None

    def complete(self, task_id: Any, status: str, error: str | None = None) -> None:
        """Report a task's end: ``succeeded`` or ``failed`` with the error message."""
        if status not in ("succeeded", "failed"):
            raise ValueError(f"status must be 'succeeded' or 'failed', got {status!r}")
        self._call("POST", f"/tasks/{task_id}/complete",
                   json={"status": status, "error": error})

    def beacon_claim(self, *, wait_s: float = 10.0) -> list[dict[str, Any]]:
        """Wait up to ``wait_s`` for Beacon queries of this site (``POST /agent/beacon/claim``)."""
        answer = self._call("POST", "/beacon/claim", json={"wait_s": wait_s})
        queries = answer.get("queries") if isinstance(answer, dict) else None
        return [q for q in queries or [] if isinstance(q, dict)]

    def beacon_answer(self, query_id: Any, *, values: list[int] | None = None,
                      error: str | None = None) -> None:
        """Send this site's masked answer (or an error message) to a Beacon query."""
        body: dict[str, Any] = {"values": values} if error is None else {"error": error}
        self._call("POST", f"/beacon/{query_id}/answer", json=body)

    # -- plumbing ---------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, json: Any = None, data: Any = None,
              files: Any = None) -> Any:
        import httpx

        url = API_PREFIX + path
        delay = self.backoff
        last = ""
        for attempt in range(self.retries + 1):
            opened = files() if callable(files) else files
            try:
                resp = self._client.request(method, url, json=json, data=data, files=opened)
            except httpx.TransportError as e:
                last = f"{type(e).__name__}"
                resp = None
            finally:
                for _name, spec in (opened or {}).items():
                    spec[1].close()
            if resp is not None:
                if resp.status_code < 400:
                    return _json(resp)
                if resp.status_code < 500 and resp.status_code != 429:
                    raise HubError(
                        f"the hub refused {method} {url}", status_code=resp.status_code,
                        got=f"HTTP {resp.status_code}: {_detail(resp)}",
                        fix=_fix(resp.status_code))
                last = f"HTTP {resp.status_code}"
            if attempt < self.retries:
                log.warning("hub %s %s: %s; retrying in %.1f s", method, url, last, delay)
                time.sleep(delay * (1 + 0.2 * random.random()))
                delay = min(delay * 2, 30.0)
        raise HubError(f"the hub is unreachable: {method} {url}", where=self.base_url,
                       got=last, fix="check the hub address and that it is running")


def _json(resp: Any) -> Any:
    if not resp.content:
        return {}
    try:
        return resp.json()
    except ValueError as e:
        raise HubError("the hub answered with something that is not JSON",
                       status_code=resp.status_code,
                       got=resp.headers.get("content-type", "?")) from e


def _detail(resp: Any) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.reason_phrase or "no detail"
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # FastAPI validation errors
        detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d)
                           for d in detail)
    return str(detail or resp.reason_phrase or "no detail")[:500]


def _fix(status: int) -> str:
    if status == 401:
        return "check the site token (the hub admin can issue a new one)"
    if status == 403:
        return "this site token may not do this (ask the hub admin)"
    if status == 404:
        return "the task or route is unknown: is the hub the same version as the agent?"
    return "see the hub's message"


def _version() -> str:
    from secured_bio import __version__

    return __version__
