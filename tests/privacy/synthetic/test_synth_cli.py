"""``secured-bio synth table``: outputs, report, exit codes, nothing written on failure."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli

from secured_bio.cli import main


@pytest.fixture(scope="module")
def clinical(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from secured_bio.testing import simulate_clinical

    d = tmp_path_factory.mktemp("synth_cli")
    simulate_clinical(d / "train.csv", n_rows=400, seed=1)
    simulate_clinical(d / "holdout.csv", n_rows=200, seed=2, site="site2")
    return d


def _table(d: Path, out: Path, *extra: str) -> list[str]:
    return ["synth", "table", "--in", str(d / "train.csv"), "--n", "60", "--drop", "patient_id",
            "--out", str(out), *extra]


def test_table__writes_csv_and_report(clinical: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out, rep = tmp_path / "s.csv", tmp_path / "s.json"
    assert main(_table(clinical, out, "--report", str(rep), "--condition", "age=5..10",
                       "--condition", "sex=F", "--holdout", str(clinical / "holdout.csv"),
                       "--target", "sex", "--seed", "4")) == 0
    printed = capsys.readouterr().out
    assert "wrote 60 synthetic rows x 7 columns (" in printed and "chosen by auto)" in printed
    real = pd.read_csv(clinical / "train.csv", dtype=str)
    synth = pd.read_csv(out, dtype=str)
    assert list(synth.columns) == [c for c in real.columns if c != "patient_id"]
    assert synth["age"].astype(int).between(5, 10).all() and (synth["sex"] == "F").all()
    doc = json.loads(rep.read_text())
    assert doc["format"] == "secured_bio.synthetic_table_report"
    assert doc["requested_method"] == "auto" and doc["method"] in ("copula", "cart")
    auto = doc["auto"]  # the default compares the candidates and says why one won
    assert auto["winner"] == doc["method"] and auto["target"] == "sex" and auto["reason"]
    assert set(auto["results"]) == {"copula", "cart"}
    assert all({"utility_ratio", "membership_auc", "exact_copy_share", "score", "eligible"}
               <= set(r) for r in auto["results"].values())
    assert doc["conditions"] == ["age=5..10", "sex=F"] and doc["n_rows_output"] == 60
    assert doc["privacy"] is None and doc["seed"] == 4
    if importlib.util.find_spec("secured_bio.privacy.synthetic.evaluate") is not None:
        assert doc["evaluation"]["format"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv", "s.json"]


def test_table__html_page_of_the_evaluation(clinical: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out, rep, page = tmp_path / "s.csv", tmp_path / "s.json", tmp_path / "s.html"
    assert main(_table(clinical, out, "--report", str(rep), "--html", str(page),
                       "--holdout", str(clinical / "holdout.csv"), "--target", "sex")) == 0
    text = page.read_text()
    doc = json.loads(rep.read_text())
    auc = doc["evaluation"]["privacy"]["membership_inference"]["auc"]
    assert text.lower().startswith("<!doctype html") and "data:image/png;base64," in text
    assert f"{auc:.3f}" in text  # the page shows the report's attack figure
    # --html needs an evaluation; refused before anything is written
    capsys.readouterr()
    other = tmp_path / "o"
    other.mkdir()
    assert main(_table(clinical, other / "s.csv", "--html", str(other / "s.html"))) == 2
    assert "--report" in capsys.readouterr().err and list(other.iterdir()) == []
    assert main(_table(clinical, other / "s.csv", "--report", str(other / "s.json"),
                       "--html", str(other / "s.json"))) == 2
    assert list(other.iterdir()) == []


def test_table__mst_reports_epsilon(clinical: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    out, rep = tmp_path / "s.csv", tmp_path / "s.json"
    assert main(_table(clinical, out, "--method", "mst", "--epsilon", "0.5", "--report",
                       str(rep), "--no-evaluate")) == 0
    assert "(epsilon=0.5, delta=1e-06)-DP" in capsys.readouterr().out
    doc = json.loads(rep.read_text())
    assert doc["privacy"]["epsilon"] == 0.5 and doc["differentially_private"]
    assert doc["evaluation"] is None


def test_table__public_domain_file(clinical: Path, tmp_path: Path) -> None:
    dom = tmp_path / "domain.json"
    dom.write_text(json.dumps({"sex": ["F", "M", "X"], "age": [0, 120]}))
    out, rep = tmp_path / "s.csv", tmp_path / "s.json"
    assert main(_table(clinical, out, "--method", "mst", "--epsilon", "1", "--public-domain",
                       str(dom), "--report", str(rep), "--no-evaluate")) == 0
    assert json.loads(rep.read_text())["privacy"]["domain"] == "partly public"


def test_table__same_seed_same_file(clinical: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert main(_table(clinical, a, "--seed", "9")) == 0
    assert main(_table(clinical, b, "--seed", "9")) == 0
    assert a.read_bytes() == b.read_bytes()


def test_table__mst_twice_same_seed_gives_different_outputs(clinical: Path,
                                                          tmp_path: Path) -> None:
    # DP noise must not be a function of the data and public settings (the seed).
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    ra, rb = tmp_path / "a.json", tmp_path / "b.json"
    for out, rep in ((a, ra), (b, rb)):
        assert main(_table(clinical, out, "--method", "mst", "--epsilon", "1", "--seed", "3",
                           "--report", str(rep), "--no-evaluate")) == 0
    assert a.read_bytes() != b.read_bytes()
    priv = json.loads(ra.read_text())["privacy"]
    assert priv["epsilon_holds"] is True and priv["randomness"]["secure"] is True


def test_table__insecure_reproducible_dp_is_explicit_and_says_epsilon_fails(
        clinical: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b, rep = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "a.json"
    flags = ("--method", "mst", "--epsilon", "1", "--seed", "3", "--insecure-reproducible-dp")
    assert main(_table(clinical, a, *flags, "--report", str(rep), "--no-evaluate")) == 0
    assert "epsilon does NOT hold" in capsys.readouterr().out
    assert main(_table(clinical, b, *flags)) == 0
    assert a.read_bytes() == b.read_bytes()
    priv = json.loads(rep.read_text())["privacy"]
    assert priv["epsilon_holds"] is False and "does NOT hold" in priv["randomness"]["warning"]


def test_table__help_says_seed_covers_only_non_private_parts() -> None:
    from click.testing import CliRunner

    from secured_bio.privacy.synthetic.cli import table

    text = " ".join(CliRunner().invoke(table, ["--help"]).output.split())
    assert "NON-PRIVATE parts only" in text and "--insecure-reproducible-dp" in text


@pytest.mark.parametrize(("extra", "code", "pattern"), [
    ((), 1, "free text or an identifier"),
    (("--drop", "patient_id", "--condition", "agee=3"), 2, "did you mean 'age'"),
    (("--drop", "patient_id", "--condition", "sex=Q"), 2, "not in the column's domain"),
    (("--drop", "patient_id", "--condition", "age=200..300"), 2, "outside the column's domain"),
    (("--drop", "patient_id", "--condition", "age=9..3"), 2, "condition range is empty"),
    (("--drop", "patient_id", "--method", "mst", "--epsilon", "0"), 2, "epsilon must be"),
    (("--drop", "patient_id", "--method", "mst", "--epsilon", "-2"), 2, "epsilon must be"),
    (("--drop", "patient_id", "--epsilon", "1"), 2, "apply only to a differentially"),
    (("--drop", "patient_id", "--method", "copula", "--target", "sex"), 2, "only feed the report"),
    (("--drop", "patient_id", "--method", "copula", "--min-leaf", "3"), 2, "sequential CART"),
    (("--drop", "patient_id", "--method", "cart", "--order", "agee"), 2, "did you mean"),
])
def test_table__bad_input_fails_and_writes_nothing(clinical: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   extra: tuple[str, ...], code: int,
                                                   pattern: str) -> None:
    out_dir = tmp_path / "out"
    args = ["synth", "table", "--in", str(clinical / "train.csv"), "--n", "10", "--out",
            str(out_dir / "s.csv"), "--report", str(out_dir / "s.json"), *extra]
    if "--target" in extra:
        args.remove("--report")
        args.remove(str(out_dir / "s.json"))
    assert main(args) == code
    err = capsys.readouterr().err
    assert pattern in " ".join(err.split())
    assert "site1_0" not in err  # no identifiers echoed
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_table__empty_table_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "empty.csv"
    src.write_text("age,sex\n")
    assert main(["synth", "table", "--in", str(src), "--n", "5", "--out",
                 str(tmp_path / "s.csv")]) == 1
    assert "no data rows" in capsys.readouterr().err
    assert not (tmp_path / "s.csv").exists()


def test_table__missing_input_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "table", "--in", str(tmp_path / "absent.csv"), "--n", "5", "--out",
                 str(tmp_path / "s.csv")]) == 1
    assert "input table not found" in capsys.readouterr().err


def test_synth__listed_by_the_installed_command(cli_env: dict[str, str]) -> None:
    r = run_cli("synth", "table", "--help", env=cli_env)
    assert r.returncode == 0, r.stderr
    assert "--condition" in r.stdout and "--epsilon" in r.stdout
