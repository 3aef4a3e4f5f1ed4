"""``secured-bio synth vitals``: outputs, model reuse, report, exit codes, nothing on failure."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from secured_bio.cli import main
from secured_bio.specs import validate
from secured_bio.telemetry.synthetic import load_vitals_model
from secured_bio.testing import VitalsCohort, simulate_vitals


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> VitalsCohort:
    return simulate_vitals(tmp_path_factory.mktemp("synth_cli"), n_sites=2,
                           patients_per_site=12, hours=36, seed=4)


def test_synth_vitals_cli__fits_writes_all_files_and_reuses_the_model(
        demo: VitalsCohort, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, model = tmp_path / "out", tmp_path / "model.json"
    code = main(["synth", "vitals", "--in", str(demo.out_dir), "--n", "10", "--out", str(out),
                 "--deterioration-fraction", "0.4", "--age", "1..5", "--hours", "24",
                 "--interval-minutes", "30", "--seed", "3", "--fhir", "--plot",
                 "--model-out", str(model)])
    assert code == 0, capsys.readouterr().err
    assert "wrote 10 synthetic patients (4 deteriorating)" in capsys.readouterr().out
    names = {p.name for p in out.iterdir()}
    assert names == {"vitals.csv", "patients.csv", "events.csv", "vitals.fhir.json",
                     "synth_vitals.json", "plots"}
    assert len(list((out / "plots").glob("*.png"))) == 4
    assert validate("vitals", out / "vitals.csv").ok
    pat = pd.read_csv(out / "patients.csv")
    assert len(pat) == 10 and pat["age_years"].between(1, 5).all()
    assert pd.read_csv(out / "events.csv")["deterioration"].sum() == 4
    assert load_vitals_model(model).n_patients == 24
    summary = json.loads((out / "synth_vitals.json").read_text())
    assert summary["parameters"]["interval_minutes"] == 30 and summary["patients"] == 10
    # Same seed with the saved model (no fitting, no --in): the same vitals.csv.
    again = tmp_path / "again"
    code = main(["synth", "vitals", "--model", str(model), "--n", "10", "--out", str(again),
                 "--deterioration-fraction", "0.4", "--age", "1..5", "--hours", "24",
                 "--interval-minutes", "30", "--seed", "3"])
    assert code == 0
    assert (again / "vitals.csv").read_bytes() == (out / "vitals.csv").read_bytes()
    # The output folder is an earlier output: replaced.
    code = main(["synth", "vitals", "--model", str(model), "--n", "3", "--out", str(out),
                 "--hours", "6"])
    assert code == 0
    assert len(pd.read_csv(out / "patients.csv")) == 3 and not (out / "plots").exists()


def test_synth_vitals_cli__report_with_holdout(demo: VitalsCohort, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "r.json"
    code = main(["synth", "vitals", "--in", str(demo.out_dir / "site1"), "--n", "12",
                 "--out", str(tmp_path / "o"), "--report", str(report),
                 "--holdout", str(demo.out_dir / "site2"), "--threads", "1"])
    assert code == 0, capsys.readouterr().err
    r = json.loads(report.read_text())
    assert r["format"] == "secured_bio.synth_vitals_report"
    assert r["privacy"]["membership_inference"]["n_nonmembers"] == 12
    assert "auroc_tstr" in r["utility"] and r["run"]["patients"] == 12


@pytest.mark.parametrize("args, message", [
    (["--age", "5..2"], "invalid --age range"),
    (["--age", "a..b"], "invalid --age range"),
    (["--n", "0"], "--n"),
    (["--model", "m.json", "--model-out", "x.json"], "exclude each other"),
    (["--holdout", "h"], "--holdout only feeds the report"),
])
def test_synth_vitals_cli__bad_options_exit_2_and_write_nothing(
        demo: VitalsCohort, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        args: list[str], message: str) -> None:
    out = tmp_path / "out"
    base = ["synth", "vitals", "--in", str(demo.out_dir), "--n", "5", "--out", str(out)]
    assert main(base + args) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_synth_vitals_cli__bad_input_exits_1_and_writes_nothing(
        demo: VitalsCohort, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, model = tmp_path / "out", tmp_path / "m.json"
    assert main(["synth", "vitals", "--in", str(tmp_path / "none"), "--n", "5",
                 "--out", str(out), "--model-out", str(model)]) == 1
    assert "not found" in capsys.readouterr().err
    few = tmp_path / "few"
    few.mkdir()
    v = pd.read_csv(demo.vitals_paths[0], dtype=str)
    v[v["patient_id"].isin(sorted(set(v["patient_id"]))[:3])].to_csv(few / "vitals.csv",
                                                                      index=False)
    for name in ("patients.csv", "events.csv"):
        (few / name).write_bytes((demo.vitals_paths[0].parent / name).read_bytes())
    assert main(["synth", "vitals", "--in", str(few), "--n", "5", "--out", str(out),
                 "--model-out", str(model)]) == 1
    err = capsys.readouterr().err
    assert "too few patients" in err and ">= 5" in err and "site1-" not in err
    assert not out.exists() and not model.exists()


def test_synth_vitals_cli__refuses_to_replace_an_unrelated_folder(
        demo: VitalsCohort, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["synth", "vitals", "--in", str(demo.out_dir), "--n", "3",
                 "--out", str(out)]) == 2
    assert "not an earlier secured_bio output" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_synth_vitals_cli__help_shows_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "vitals", "--help"]) == 0
    text = capsys.readouterr().out
    assert "secured-bio synth vitals --in" in text and "--deterioration-fraction" in text
