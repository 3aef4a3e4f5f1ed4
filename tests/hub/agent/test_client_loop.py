from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from secured_bio.errors import InputFileNotFoundError
from secured_bio.hub.agent.client import HubClient, HubError
from secured_bio.hub.agent.command import agent
from secured_bio.hub.agent.loop import read_token, run_agent


class FakeHub:
    """The agent API of the hub, in memory (what the server side must answer)."""

    def __init__(self, tasks: list[dict[str, Any]]) -> None:
        self.tasks = list(tasks)
        self.calls: list[tuple[str, str]] = []
        self.registered: dict[str, Any] = {}
        self.uploads: list[tuple[int, bytes]] = []
        self.completed: dict[int, dict[str, Any]] = {}
        self.progress: list[tuple[int, float]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls.append((request.method, path))
        if request.headers.get("authorization") != "Bearer s3cret":
            return httpx.Response(401, json={"detail": "invalid site token"})
        if path == "/api/v1/agent/register":
            self.registered = json.loads(request.content)
            return httpx.Response(200, json={"site": "site1", "datasets": [
                {"id": i, "name": d["name"]}
                for i, d in enumerate(self.registered["datasets"])]})
        if path == "/api/v1/agent/tasks/claim":
            return httpx.Response(200, json={"task": self.tasks.pop(0) if self.tasks else None})
        task_id = int(path.split("/")[5])
        if path.endswith("/progress"):
            self.progress.append((task_id, json.loads(request.content)["progress"]))
            return httpx.Response(200, json={"cancel": False})
        if path.endswith("/artifacts"):
            self.uploads.append((task_id, request.read()))
            return httpx.Response(200, json={"id": len(self.uploads)})
        if path.endswith("/complete"):
            self.completed[task_id] = json.loads(request.content)
            return httpx.Response(200, json={})
        return httpx.Response(404, json={"detail": "not found"})


def _client(handler: Any, token: str = "s3cret") -> HubClient:
    return HubClient("http://hub.test", token, transport=httpx.MockTransport(handler),
                     retries=3, backoff=0.01)


def test_run_agent__serves_tasks_and_reports_failures(hub_demo: dict[str, Path],
                                                      tmp_path: Path) -> None:
    good = {"id": 1, "job_id": 1, "kind": "anonymize",
            "params": {"quasi_identifiers": ["age", "sex"], "k": 5},
            "datasets": [{"id": 2, "name": "oncology_cases"}], "rank": 0, "world_size": 1,
            "coordination": {}}
    bad = {**good, "id": 2, "params": {"quasi_identifiers": ["age"], "k": 5,
                                       "out": "/etc/passwd"}}
    broken = {**good, "id": 3, "kind": "teleport"}
    hub = FakeHub([good, bad, broken])
    served = run_agent("http://hub.test", "site1", tmp_path / "unused", hub_demo["site1"],
                       state_dir=tmp_path / "state", once=True, client=_client(hub))
    assert served == 3
    reg = hub.registered
    assert reg["smpc_cert"].startswith("-----BEGIN CERTIFICATE-----")
    assert {d["kind"] for d in reg["datasets"]} == {"genotypes", "vitals", "clinical", "imaging"}
    text = json.dumps(reg)
    assert not [i for i in hub_demo["ids"].read_text().split() if i in text]
    assert [t for t, _ in hub.uploads] == [1, 1]
    assert b'name="name"' in hub.uploads[0][1] and b"anonymized.csv" in hub.uploads[0][1]
    assert hub.completed[1] == {"status": "succeeded", "error": None}
    assert hub.completed[2]["status"] == "failed" and "params.out" in hub.completed[2]["error"]
    assert "unknown job kind" in hub.completed[3]["error"]
    assert not list((tmp_path / "state" / "work").iterdir())  # work folders removed
    assert (tmp_path / "state" / "smpc" / "site1.key.pem").is_file()


def test_hub_client__retries_5xx_and_connection_errors() -> None:
    answers = iter([503, "drop", 502, 200])

    def flaky(request: httpx.Request) -> httpx.Response:
        a = next(answers)
        if a == "drop":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(a, json={"task": None} if a == 200 else {"detail": "restarting"})

    assert _client(flaky).claim() is None


def test_hub_client__4xx_raises_with_the_hubs_detail_at_once() -> None:
    hub = FakeHub([])
    with pytest.raises(HubError, match="HTTP 401: invalid site token.*site token") as e:
        _client(hub, token="wrong").claim()
    assert e.value.status_code == 401 and len(hub.calls) == 1


def test_hub_client__unreachable_after_retries() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(HubError, match="unreachable") as e:
        _client(down).complete(1, "succeeded")
    assert e.value.status_code is None


def test_read_token__missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(InputFileNotFoundError, match="token file not found"):
        read_token(tmp_path / "t")
    (tmp_path / "t").write_text("\n")
    with pytest.raises(Exception, match="token file is empty"):
        read_token(tmp_path / "t")
    (tmp_path / "t").write_text("abc\n")
    assert read_token(tmp_path / "t") == "abc"


def test_agent_command__options() -> None:
    result = CliRunner().invoke(agent, ["--help"])
    assert result.exit_code == 0
    for opt in ("--hub", "--site", "--token-file", "--data", "--state", "--poll", "--once"):
        assert opt in result.output
