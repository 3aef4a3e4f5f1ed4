"""``secured-bio assess table``: report keys, figures equal the library's, chart, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli

from secured_bio.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from secured_bio.privacy.assess import reidentification_risk
from secured_bio.privacy.assess.cli import read_table
from secured_bio.testing import simulate_clinical

QI = "age,sex,postcode,admission_date"
KEYS = ("prosecutor", "journalist", "marketer", "sample_uniques", "population_uniqueness",
        "linkage", "singling_out", "linkability", "inference")


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    """main.csv (release source), control.csv (held out), released.csv (coarsened main)."""
    t = pd.read_csv(simulate_clinical(tmp_path / "c.csv", n_rows=400, seed=1).path, dtype=str)
    out = {"main": tmp_path / "main.csv", "control": tmp_path / "control.csv",
           "released": tmp_path / "released.csv"}
    t[:250].to_csv(out["main"], index=False)
    t[250:].to_csv(out["control"], index=False)
    rel = t[:250].drop(columns=["patient_id"])
    lo = rel["age"].astype(int) // 10 * 10
    rel["age"] = [f"[{a}-{a + 9}]" for a in lo]
    rel["postcode"] = rel["postcode"].str[:3] + "**"
    rel["admission_date"] = rel["admission_date"].str[:7]
    rel.to_csv(out["released"], index=False)
    return out


def _args(files: dict[str, Path], tmp_path: Path, *extra: str) -> list[str]:
    return ["assess", "table", "--original", str(files["main"]), "--released",
            str(files["released"]), "--qi", QI, "--report", str(tmp_path / "risk.json"),
            "--n-attacks", "60", *extra]


def test_assess_table_cli__writes_report_with_model_keys_and_chart(files, tmp_path, cli_env):
    plot = tmp_path / "risk.png"
    res = run_cli(*_args(files, tmp_path, "--control", str(files["control"]), "--sensitive",
                         "diagnosis", "--id", "patient_id", "--plot", str(plot)), env=cli_env)
    assert res.returncode == EXIT_OK, res.stderr
    assert "prosecutor highest" in res.stdout
    report = json.loads((tmp_path / "risk.json").read_text())
    assert report["format"] == "secured_bio.risk_report" and report["format_version"] == "1"
    for key in KEYS:
        assert key in report
    ref = reidentification_risk(pd.read_csv(files["released"], dtype=str), qi=QI,
                                population=pd.read_csv(files["main"], dtype=str))
    for key in ("prosecutor", "marketer", "sample_uniques"):
        assert report[key] == pytest.approx(ref[key])
    for attack in (report["singling_out"]["multivariate"], report["linkability"],
                   report["inference"]):
        assert attack["risk"] is not None and len(attack["risk_ci"]) == 2
    assert report["linkage"]["correct_unique"] is not None
    assert report["inputs"]["control"]["rows"] == 150
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".*.tmp"))


def test_assess_table_cli__without_control_reports_null_risks_with_reason(files, tmp_path,
                                                                          capsys):
    assert main(_args(files, tmp_path, "--sensitive", "diagnosis")) == EXIT_OK
    report = json.loads((tmp_path / "risk.json").read_text())
    for attack in (report["singling_out"]["univariate"], report["singling_out"]["multivariate"],
                   report["linkability"], report["inference"]):
        assert attack["risk"] is None and "no control set" in attack["reason"]
    assert "singling out n/a" in capsys.readouterr().out


def test_assess_table_cli__coarser_release_reports_lower_risk(files, tmp_path):
    raw = tmp_path / "raw.json"
    assert main(["assess", "table", "--original", str(files["main"]), "--released",
                 str(files["main"]), "--qi", QI, "--report", str(raw), "--n-attacks",
                 "30"]) == EXIT_OK
    assert main(_args(files, tmp_path, "--n-attacks", "30")) == EXIT_OK
    a = json.loads(raw.read_text())
    b = json.loads((tmp_path / "risk.json").read_text())
    assert b["prosecutor"]["average"] < a["prosecutor"]["average"]
    assert b["sample_uniques"]["count"] < a["sample_uniques"]["count"]


# ---------------------------------------------------------------- bad input


def test_assess_table_cli__missing_qi_column_fails_with_did_you_mean(files, tmp_path, capsys):
    args = _args(files, tmp_path)
    args[args.index(QI)] = "age,sex,postcod"
    assert main(args) == EXIT_USAGE  # a column named on the command line: a usage error
    err = capsys.readouterr().err
    assert "did you mean 'postcode'" in err
    assert not (tmp_path / "risk.json").exists()


def test_assess_table_cli__non_utf8_csv_fails_with_line(files, tmp_path, capsys):
    files["released"].write_bytes(b"age,sex\n34,F\n\xe9t\xe9,M\n")
    assert main(_args(files, tmp_path)) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "not UTF-8" in err and "released.csv:3" in err
    assert not (tmp_path / "risk.json").exists()


def test_assess_table_cli__ragged_csv_fails_with_line_without_values(files, tmp_path, capsys):
    files["control"].write_text("age,sex\n34,F\n99,SECRETVALUE,extra\n")
    assert main(_args(files, tmp_path, "--control", str(files["control"]))) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "ragged CSV" in err and "control.csv:3" in err and "SECRETVALUE" not in err


@pytest.mark.parametrize(("content", "match"), [("", "empty"), ("age,sex\n", "no data rows")])
def test_assess_table_cli__empty_table_fails(files, tmp_path, capsys, content, match):
    files["released"].write_text(content)
    assert main(_args(files, tmp_path)) == EXIT_FAILED
    assert match in capsys.readouterr().err


def test_assess_table_cli__missing_file_fails(files, tmp_path, capsys):
    files["released"].unlink()
    assert main(_args(files, tmp_path)) == EXIT_FAILED
    assert "released table not found" in capsys.readouterr().err


def test_assess_table_cli__sensitive_among_qi_is_a_usage_error(files, tmp_path, capsys):
    assert main(_args(files, tmp_path, "--sensitive", "age")) == EXIT_USAGE
    assert "also a quasi-identifier" in capsys.readouterr().err


def test_read_table__duplicate_header_raises(tmp_path):
    from secured_bio.errors import FormatError

    p = tmp_path / "t.csv"
    p.write_text("a,a\n1,2\n")
    with pytest.raises(FormatError, match="column name repeated"):
        read_table(p, "released")


def test_read_table__keeps_values_as_strings_and_strips_bom(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes("\ufeffpostcode,age\n01234,007\n".encode())
    t = read_table(p, "released")
    assert list(t.columns) == ["postcode", "age"]
    assert t.iloc[0].tolist() == ["01234", "007"]
