"""``secured-bio telemetry ingest`` and ``pews``: outputs, exit codes, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli

from secured_bio.cli import main
from secured_bio.telemetry.ingest import read_vitals
from secured_bio.telemetry.pews import score_pews


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    from secured_bio.testing import simulate_vitals

    return simulate_vitals(tmp_path_factory.mktemp("tele_cli"), n_sites=1, patients_per_site=3,
                           hours=8, seed=9)


def test_ingest_cli__writes_table_and_report(demo, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out, rep = tmp_path / "v.csv", tmp_path / "r.json"
    code = main(["telemetry", "ingest", "--in", str(demo.fhir_paths[0]), "--out", str(out),
                 "--report", str(rep)])
    assert code == 0
    assert "kept" in capsys.readouterr().out
    records, _ = read_vitals(demo.fhir_paths[0])
    written = pd.read_csv(out, dtype={"patient_id": str})
    assert len(written) == len(records)
    assert json.loads(rep.read_text())["kept"] == len(records)


def test_ingest_cli__bad_input_fails_with_exit_1_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "bad.json"
    src.write_text('{"resourceType": "Bundle", "entry": [\n{]}')
    out = tmp_path / "out" / "v.csv"
    assert main(["telemetry", "ingest", "--in", str(src), "--out", str(out)]) == 1
    assert "file is not valid JSON" in capsys.readouterr().err
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_ingest_cli__unknown_on_invalid_choice_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["telemetry", "ingest", "--in", "x.json", "--out", str(tmp_path / "v.csv"),
                 "--on-invalid", "ignore"])
    assert code == 2
    assert "--on-invalid" in capsys.readouterr().err


def test_pews_cli__scores_equal_the_library(demo, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "scores.csv"
    code = main(["telemetry", "pews", "--in", str(demo.vitals_paths[0]), "--ages",
                 str(demo.patients_paths[0]), "--out", str(out), "--window", "2h"])
    assert code == 0, capsys.readouterr().err
    got = pd.read_csv(out, dtype={"patient_id": str, "time": str})
    want = score_pews(pd.read_csv(demo.vitals_paths[0], dtype={"patient_id": str}),
                      pd.read_csv(demo.patients_paths[0], dtype={"patient_id": str}),
                      window="2h")
    assert got["pews"].tolist() == want["pews"].tolist()
    assert got["time"].tolist() == want["time"].tolist()


def test_pews_cli__missing_ages_file_fails(demo, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "scores.csv"
    code = main(["telemetry", "pews", "--in", str(demo.vitals_paths[0]), "--ages",
                 str(tmp_path / "none.csv"), "--out", str(out)])
    assert code == 1
    assert "ages file not found" in capsys.readouterr().err
    assert not out.exists()


def test_telemetry_cli__installed_command_runs_end_to_end(demo, tmp_path: Path,
                                                          cli_env: dict[str, str]) -> None:
    vit, scores = tmp_path / "v.csv", tmp_path / "s.csv"
    proc = run_cli("telemetry", "ingest", "--in", str(demo.fhir_paths[0]), "--out", str(vit),
                   env=cli_env)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("telemetry", "pews", "--in", str(vit), "--ages",
                   str(demo.patients_paths[0]), "--out", str(scores), env=cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "Bedside PEWS" in proc.stdout and scores.is_file()
