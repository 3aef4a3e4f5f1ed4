"""A real demo hub for end-to-end tests: uvicorn + three site-agent processes.

The three sites' demo cohorts are written once per test process and copied into each test's
demo folder, so every test gets fresh sites, a fresh database and fresh artifact storage.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from secured_bio.hub.demo import DemoHub, start_demo

PASSWORD = "demo password for tests"
_CACHE: dict[str, Path] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sites() -> Path:
    """Demo site folders, written once per test process."""
    if "sites" not in _CACHE:
        from secured_bio.hub.demo_data import write_hub_demo_data

        root = Path(tempfile.mkdtemp(prefix="hub-demo-sites-"))
        write_hub_demo_data(root / "sites")
        _CACHE["sites"] = root / "sites"
    return _CACHE["sites"]


@contextmanager
def running_demo(tmp_path: Path, db_url: str) -> Iterator[DemoHub]:
    """Start the demo hub with its agents on a free port; stop it afterwards."""
    data_dir = tmp_path / "demo"
    shutil.copytree(_sites(), data_dir / "sites")
    demo = start_demo(port=_free_port(), data_dir=data_dir, db=db_url, password=PASSWORD,
                      poll_s=0.3, say=lambda _m: None)
    try:
        yield demo
    finally:
        demo.stop()


class Api:
    """A logged-in API client of one demo user."""

    def __init__(self, url: str, user: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=120)
        r = self.http.post("/api/v1/auth/token", data={"username": user, "password": PASSWORD})
        r.raise_for_status()
        self.http.headers["Authorization"] = "Bearer " + r.json()["access_token"]

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, **kw: Any) -> Any:
        r = self.http.get(path, **kw)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        r = self.http.post(path, json=body)
        assert r.status_code in (200, 201), (r.status_code, r.text)
        return r.json()

    def wait_job(self, job_id: int, timeout_s: float = 240) -> dict[str, Any]:
        import time

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.get(f"/api/v1/jobs/{job_id}")
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job  # type: ignore[no-any-return]
            time.sleep(0.5)
        raise AssertionError(f"job {job_id} did not finish in {timeout_s} s: {job}")


def grant(researcher: Api, committee: Api, datasets: list[int], analyses: list[str],
          **decision: Any) -> int:
    """File a request as the researcher and approve it as the committee; return its id."""
    req = researcher.post("/api/v1/access-requests", {
        "datasets": datasets, "analyses": analyses,
        "purpose": "Health research on paediatric cohorts across three hospitals."})
    assert req["status"] == "pending"
    committee.post(f"/api/v1/access-requests/{req['id']}/decision",
                   {"decision": "approve", "reason": "fits the data-use conditions", **decision})
    return int(req["id"])
