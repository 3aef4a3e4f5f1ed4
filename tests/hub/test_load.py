"""The load benchmark at CI size: no 5xx and no lost write on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from secured_bio.testing._postgres import INSTALL_HINT, find_pg_bin


def test_hub_load_quick(repo, cli_env, tmp_path) -> None:  # noqa: ANN001
    if find_pg_bin() is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    out = tmp_path / "load.json"
    r = subprocess.run([sys.executable, str(repo / "benchmarks" / "hub_load.py"), "--quick",
                        "--out", str(out)], env=cli_env, capture_output=True, text=True,
                       timeout=300)
    assert out.is_file(), r.stdout[-2000:] + r.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [x["database"] for x in report["results"]] == ["sqlite", "postgresql"]
    for x in report["results"]:
        assert x["requests"] == 80 and x["server_errors_5xx"] == 0, x
        assert x["writes_acknowledged"] > 0 and x["lost_writes"] == 0, x
    assert report["ok"] and r.returncode == 0
