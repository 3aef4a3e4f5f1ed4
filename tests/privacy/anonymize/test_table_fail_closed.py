"""``anonymize`` / ``anonymize table`` fail closed: below the request or unconfirmed -> nothing.

The search is meant to reach the request; these tests break it on purpose (a search that
ignores k, a pycanon that reports other figures) and check that no release is returned, no
file is written and the message names the model, the request and both figures.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from secured_bio import cli
from secured_bio.errors import InputError
from secured_bio.privacy.anonymize import table as table_mod
from secured_bio.privacy.anonymize.models import PrivacyModels
from secured_bio.privacy.anonymize.table import anonymize, anonymize_csv, read_table_csv
from secured_bio.testing import simulate_clinical

QI = ["age", "sex", "postcode", "admission_date"]


@pytest.fixture(scope="module")
def clinical_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate_clinical(tmp_path_factory.mktemp("c") / "clinical.csv", n_rows=300,
                             seed=5).path


@pytest.fixture()
def search_ignores_k(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken search: Mondrian run for k=1, whatever was asked."""
    original = table_mod.mondrian

    def mondrian(p: Any, *, plain: bool = False) -> Any:
        return original(dataclasses.replace(p, models=PrivacyModels(k=1)), plain=plain)

    monkeypatch.setattr(table_mod, "mondrian", mondrian)


def _pycanon_says(monkeypatch: pytest.MonkeyPatch, **changes: int) -> None:
    original = table_mod.verify_with_pycanon

    def verify(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {**original(*args, **kwargs), **changes}

    monkeypatch.setattr(table_mod, "verify_with_pycanon", verify)


def test_anonymize__release_below_requested_k_raises(clinical_csv: Path,
                                                      search_ignores_k: None) -> None:
    df = read_table_csv(clinical_csv)
    with pytest.raises(InputError, match="does not meet the requested privacy models") as info:
        anonymize(df, qi=QI, k=5, drop=["patient_id"])
    notes = "\n".join(info.value.__notes__)
    assert "k-anonymity: requested k >= 5; ours: k = 1  <- NOT MET" in notes
    assert "k-anonymity: requested k >= 5; pycanon: k = 1  <- NOT MET" in notes
    assert "--max-suppression" in str(info.value) and "--qi" in str(info.value)


def test_anonymize__pycanon_below_request_raises(clinical_csv: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _pycanon_says(monkeypatch, k=4, l_distinct=1)
    df = read_table_csv(clinical_csv)
    with pytest.raises(InputError, match="does not meet") as info:
        anonymize(df, qi=QI, k=5, sensitive="diagnosis", l=2, drop=["patient_id"])
    assert "k-anonymity (pycanon), distinct l-diversity (pycanon) not met" in str(info.value)
    assert "pycanon's figures also differ" in str(info.value)
    notes = "\n".join(info.value.__notes__)
    assert "requested l >= 2; pycanon: l = 1  <- NOT MET" in notes


def test_anonymize__pycanon_disagreement_alone_raises(clinical_csv: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _pycanon_says(monkeypatch, k=10_000)  # above the request, but not our figure
    df = read_table_csv(clinical_csv)
    with pytest.raises(InputError, match="pycanon's privacy figures differ from ours"):
        anonymize(df, qi=QI, k=5, drop=["patient_id"])


def test_anonymize__release_meeting_request_is_flagged(clinical_csv: Path) -> None:
    r = anonymize(read_table_csv(clinical_csv), qi=QI, k=5, drop=["patient_id"])
    assert r.report["achieved"]["meets_request"] is True
    assert r.report["achieved"]["agree"] is True


def test_anonymize_csv__below_request_writes_nothing(clinical_csv: Path, tmp_path: Path,
                                                     search_ignores_k: None) -> None:
    with pytest.raises(InputError, match="does not meet"):
        anonymize_csv(clinical_csv, tmp_path / "o.csv", tmp_path / "r.json", qi=QI, k=5,
                      drop=["patient_id"])
    assert list(tmp_path.iterdir()) == []


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(args)
    return code, " ".join(capsys.readouterr().err.split())


def _cli_args(src: Path, out: Path) -> list[str]:
    return ["anonymize", "table", "--in", str(src), "--qi", ",".join(QI), "--sensitive",
            "diagnosis", "--k", "5", "--l", "2", "--drop", "patient_id",
            "--out", str(out / "o.csv"), "--report", str(out / "r.json")]


def test_cli_table__below_request_exits_1_and_writes_nothing(
        clinical_csv: Path, tmp_path: Path, search_ignores_k: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(_cli_args(clinical_csv, tmp_path), capsys)
    assert code == 1
    assert "does not meet the requested privacy models" in err
    assert "k-anonymity: requested k >= 5; ours: k = 1 <- NOT MET" in err
    assert "pycanon: k = 1" in err
    assert "--max-suppression" in err and "coarser hierarchies" in err and "--qi" in err
    assert list(tmp_path.iterdir()) == []


def test_cli_table__pycanon_disagreement_exits_1_and_writes_nothing(
        clinical_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    _pycanon_says(monkeypatch, k=3)
    code, err = _run(_cli_args(clinical_csv, tmp_path), capsys)
    assert code == 1
    assert "k-anonymity: requested k >= 5; pycanon: k = 3 <- NOT MET" in err
    assert list(tmp_path.iterdir()) == []
    # No input value reaches the message: only figures, names and paths.
    df = pd.read_csv(clinical_csv, dtype=str)
    assert not any(pid in err for pid in df["patient_id"])


def test_cli_table__request_that_cannot_be_met_exits_1_and_writes_nothing(
        clinical_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _cli_args(clinical_csv, tmp_path)
    args[args.index("--l") + 1] = "50"  # more distinct diagnoses than the table holds
    code, err = _run(args, capsys)
    assert code == 1 and "no release satisfies" in err
    assert list(tmp_path.iterdir()) == []
