"""Bias audit of anonymized releases: per-group suppression, NCP and AUROC, flagged groups."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from secured_bio.errors import ConfigError
from secured_bio.privacy.anonymize import anonymize
from secured_bio.privacy.anonymize.bias import group_audit, release_group_audit


def _planted(n: int = 1000, minority: int = 15, seed: int = 0) -> pd.DataFrame:
    """Ages 20-70, except a small group ('X') whose ages (90-99) nobody else shares."""
    rng = np.random.default_rng(seed)
    age = rng.integers(20, 71, n)
    ethnicity = rng.choice(["A", "B", "C"], n)
    ethnicity[:minority] = "X"
    age[:minority] = rng.integers(90, 100, minority)
    outcome = rng.random(n) < 1 / (1 + np.exp(-(age - 45) / 8))
    return pd.DataFrame({"age": age.astype(str), "sex": rng.choice(["F", "M"], n),
                         "ethnicity": ethnicity, "diagnosis": rng.choice(["d1", "d2", "d3"], n),
                         "outcome": outcome.astype(int).astype(str)})


def test_bias__mondrian_over_generalized_small_group_is_flagged() -> None:
    r = anonymize(_planted(), qi=["age", "sex"], k=20, sensitive="diagnosis",
                  groups=["ethnicity"])
    bias = r.report["bias"]
    groups = bias["columns"]["ethnicity"]["groups"]
    assert groups["X"]["n"] == 15 and groups["X"]["small"]
    assert groups["X"]["ncp_per_qi"]["age"] >= 2 * bias["overall"]["ncp_per_qi"]["age"]
    assert [(f["column"], f["group"], f["flags"], f["generalized_qi"])
            for f in bias["flagged"]] == [("ethnicity", "X", ["generalized"], ["age"])]
    assert all(not groups[g]["flags"] for g in "ABC")
    assert set(bias["columns"]) == {"diagnosis", "ethnicity"}  # the sensitive column too


def test_bias__lattice_suppressed_small_group_is_flagged() -> None:
    r = anonymize(_planted(), qi=["age", "sex"], k=20, method="lattice",
                  max_suppression=0.05, groups=["ethnicity"])
    x = r.report["bias"]["columns"]["ethnicity"]["groups"]["X"]
    assert x["suppressed"] == 15 and x["suppressed_fraction"] == 1.0
    assert "suppressed" in x["flags"]
    assert r.report["bias"]["overall"]["suppressed"] == r.report["rows"]["suppressed"]


def test_group_audit__rule_needs_ratio_and_margin() -> None:
    df = pd.DataFrame({"g": ["a"] * 50 + ["b"] * 50})
    keep = np.ones(100, dtype=bool)
    # group b: 0.45 vs overall 0.3 -> above, but not 2x: no flag
    loss = np.array([[0.15]] * 50 + [[0.45]] * 50)
    assert group_audit(df, keep=keep, loss=loss, columns=["g"])["flagged"] == []
    # group b: 0.1 vs overall 0.05 -> 2x, but only 0.05 above: no flag
    loss = np.array([[0.0]] * 50 + [[0.1]] * 50)
    assert group_audit(df, keep=keep, loss=loss, columns=["g"])["flagged"] == []


def test_group_audit__many_distinct_values_are_skipped_with_reason() -> None:
    df = pd.DataFrame({"g": [str(i) for i in range(60)]})
    a = group_audit(df, keep=np.ones(60, dtype=bool), loss=np.zeros((60, 1)), columns=["g"])
    assert "skipped" in a["columns"]["g"] and a["flagged"] == []


def test_bias__target_reports_per_group_auroc_of_release_and_original_models() -> None:
    r = anonymize(_planted(600, seed=1), qi=["age", "sex"], k=10, groups=["ethnicity"],
                  target="outcome")
    t = r.report["bias"]["target"]
    assert t["n_test"] == 180 and t["n_train"] == 420 and t["positive_label"] == "1"
    for entry in [t["overall"], *t["columns"]["ethnicity"]["groups"].values()]:
        if entry["gap"] is not None:
            assert 0 <= entry["auroc_release"] <= 1 and 0 <= entry["auroc_original"] <= 1
            assert entry["gap"] == pytest.approx(entry["auroc_original"] - entry["auroc_release"],
                                                 abs=1e-5)
    assert t["overall"]["auroc_original"] > 0.6 and t["overall"]["auroc_release"] > 0.6


def test_bias__non_binary_target_raises() -> None:
    with pytest.raises(ConfigError, match="not binary"):
        anonymize(_planted(200), qi=["age"], k=5, target="diagnosis")


def test_cli_table__flagged_group_is_warned(tmp_path: Path, cli_env: dict[str, str]) -> None:
    src = tmp_path / "in.csv"
    _planted().to_csv(src, index=False)
    res = run_cli("anonymize", "table", "--in", str(src), "--qi", "age,sex", "--k", "20",
                  "--sensitive", "diagnosis", "--groups", "ethnicity",
                  "--out", str(tmp_path / "o.csv"), "--report", str(tmp_path / "r.json"),
                  env=cli_env)
    assert res.returncode == 0, res.stderr
    assert "warning: bias: group ethnicity=X (15 records)" in res.stderr
    assert "over-generalized: age" in res.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["bias"]["flagged"][0]["group"] == "X"


@pytest.mark.parametrize(("method", "flag"), [("mondrian", "generalized"),
                                              ("lattice", "suppressed")])
def test_release_group_audit__flags_planted_group_from_tables_alone(method: str,
                                                                    flag: str) -> None:
    original = _planted()
    r = anonymize(original, qi=["age", "sex"], k=20, method=method, max_suppression=0.05)
    a = release_group_audit(original, r.table, qi=["age", "sex"], columns=["ethnicity"])
    assert [f["group"] for f in a["flagged"]] == ["X"]
    assert flag in a["flagged"][0]["flags"]
    assert a["overall"]["suppressed"] == r.report["rows"]["suppressed"]


def test_release_group_audit__quasi_identifier_as_group_raises() -> None:
    df = _planted(100)
    with pytest.raises(ConfigError, match="grouping column is a quasi-identifier"):
        release_group_audit(df, df, qi=["age"], columns=["age"])


def test_cli_assess_table__groups_flag_planted_group(tmp_path: Path,
                                                     cli_env: dict[str, str]) -> None:
    original = _planted()
    r = anonymize(original, qi=["age", "sex"], k=20, method="lattice")
    original.to_csv(tmp_path / "orig.csv", index=False)
    r.table.to_csv(tmp_path / "rel.csv", index=False)
    res = run_cli("assess", "table", "--original", str(tmp_path / "orig.csv"),
                  "--released", str(tmp_path / "rel.csv"), "--qi", "age,sex",
                  "--sensitive", "diagnosis", "--groups", "ethnicity", "--n-attacks", "20",
                  "--report", str(tmp_path / "a.json"), env=cli_env)
    assert res.returncode == 0, res.stderr
    assert "warning: bias: group ethnicity=X (15 records)" in res.stderr
    assert "100% suppressed" in res.stderr
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["bias"]["columns"]["ethnicity"]["groups"]["X"]["suppressed"] == 15
    assert "diagnosis" in report["bias"]["columns"]
