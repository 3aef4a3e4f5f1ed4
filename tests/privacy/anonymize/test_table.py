"""Tabular anonymization: releases verified by pycanon, utility metrics, searches, bad input."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secured_bio.errors import (
    ConfigError,
    FormatError,
    InputError,
    InputFileNotFoundError,
    SchemaError,
)
from secured_bio.privacy.anonymize import (
    anonymize,
    anonymize_csv,
    interval_hierarchy,
    load_hierarchies,
    read_table_csv,
    recursive_c_l_diversity,
    utility_metrics,
    verify_with_pycanon,
)
from secured_bio.privacy.anonymize.hierarchies import flat_hierarchy
from secured_bio.privacy.anonymize.models import PrivacyModels
from secured_bio.privacy.anonymize.search import Problem, lattice_search
from secured_bio.testing import simulate_clinical

CLINICAL_QI = ["age", "sex", "postcode", "admission_date"]
DIABETES_QI = ["age", "sex", "bmi", "bp"]


@pytest.fixture(scope="module")
def clinical(tmp_path_factory) -> pd.DataFrame:
    t = simulate_clinical(tmp_path_factory.mktemp("c") / "clinical.csv", n_rows=600, seed=3)
    return read_table_csv(t.path)


@pytest.fixture(scope="module")
def diabetes() -> pd.DataFrame:
    """scikit-learn's diabetes table (442 patients, ships with the package, no download)."""
    from sklearn.datasets import load_diabetes

    x = load_diabetes(as_frame=True, scaled=False).frame
    return pd.DataFrame({c: x[c].map(lambda v: f"{v:g}") for c in
                         [*DIABETES_QI, "s1", "target"]})


def _for_pycanon(release: pd.DataFrame, qi: list[str], sensitive: str) -> pd.DataFrame:
    out = release[qi].copy()
    s = pd.to_numeric(release[sensitive], errors="coerce")
    out[sensitive] = s if s.notna().all() else release[sensitive]
    return out


CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("clinical", "mondrian", {"k": 5, "l": 2}),
    ("clinical", "lattice", {"k": 5, "l": 2}),
    ("clinical", "lattice", {"k": 3, "l": 2, "l_kind": "entropy"}),
    ("clinical", "mondrian", {"k": 4, "l": 2, "l_kind": "recursive", "c": 3.0}),
    ("clinical", "mondrian", {"k": 5, "t": 0.4}),
    ("clinical", "lattice", {"k": 2, "t": 0.5}),
    ("diabetes", "mondrian", {"k": 5, "l": 3}),
    ("diabetes", "lattice", {"k": 5, "l": 2, "t": 0.3}),
    ("diabetes", "plain-mondrian", {"k": 10, "l": 2, "l_kind": "entropy"}),
]


@pytest.mark.reference
@pytest.mark.parametrize(("table", "method", "models"), CASES,
                         ids=[f"{t}-{m}-{'-'.join(map(str, p.values()))}" for t, m, p in CASES])
def test_release__pycanon_confirms_models_and_agrees_with_our_figures(
        request, table, method, models):
    df = request.getfixturevalue(table)
    qi, sensitive = ((CLINICAL_QI, "diagnosis") if table == "clinical"
                     else (DIABETES_QI, "target"))
    r = anonymize(df, qi=qi, sensitive=sensitive, method=method, max_suppression=0.05,
                  drop=["patient_id"] if table == "clinical" else [], **models)
    check = _for_pycanon(r.table, qi, sensitive)
    kind = models.get("l_kind", "distinct") if "l" in models else None
    # pycanon's ordered EMD loops over every value of the numeric target: only when asked
    with_t = "t" in models or table == "clinical"
    theirs = verify_with_pycanon(check, qi, sensitive, l_kind=kind, t=with_t)
    ours = r.report["achieved"]["ours"]
    # the release satisfies the requested models according to pycanon
    assert theirs["k"] >= models["k"]
    if kind in ("distinct", "recursive"):
        assert theirs["l_distinct"] >= models["l"]
    if kind == "entropy":
        assert theirs["l_entropy"] >= models["l"]
    if "t" in models:
        assert theirs["t"] <= models["t"] + 1e-9
    # and our own figures are pycanon's
    assert ours["k"] == theirs["k"]
    if "l_distinct" in theirs:
        assert ours["l_distinct"] == theirs["l_distinct"]
    if "l_entropy" in theirs:
        assert np.floor(ours["l_entropy"] + 1e-6) in (theirs["l_entropy"],
                                                      theirs["l_entropy"] + 1)
    if with_t:
        assert ours["t"] == pytest.approx(theirs["t"], abs=1e-9)
    assert r.report["achieved"]["agree"] is True
    # suppression within the limit, suppressed records removed and counted
    rows = r.report["rows"]
    assert rows["suppressed"] <= 0.05 * len(df)
    assert rows["released"] == len(r.table) == len(df) - rows["suppressed"]


def test_recursive_cl__matches_sorted_counts_per_class(clinical):
    r = anonymize(clinical, qi=CLINICAL_QI, sensitive="diagnosis", k=4, l=2,
                  l_kind="recursive", c=3.0, drop=["patient_id"])
    worst = 0.0
    for _, g in r.table.groupby(CLINICAL_QI):
        counts = sorted(Counter(g["diagnosis"]).values(), reverse=True)
        worst = max(worst, counts[0] / sum(counts[1:]))
    assert worst < 3.0
    assert recursive_c_l_diversity(r.table, CLINICAL_QI, "diagnosis", 2) == pytest.approx(worst)


def test_release__keeps_non_qi_columns_and_drops_identifiers(clinical):
    r = anonymize(clinical, qi=CLINICAL_QI, sensitive="diagnosis", k=5, drop=["patient_id"])
    assert list(r.table.columns) == [c for c in clinical.columns if c != "patient_id"]
    kept = clinical.drop(columns="patient_id")
    for col in ("ethnicity", "diagnosis", "length_of_stay"):
        assert Counter(r.table[col]) == Counter(kept[col])  # Mondrian suppresses nothing


def test_mondrian__lower_information_loss_than_plain_mondrian(clinical):
    ours = anonymize(clinical, qi=CLINICAL_QI, sensitive="diagnosis", k=5, l=2,
                     method="mondrian", verify=False, drop=["patient_id"])
    plain = anonymize(clinical, qi=CLINICAL_QI, sensitive="diagnosis", k=5, l=2,
                      method="plain-mondrian", verify=False, drop=["patient_id"])
    assert ours.report["utility"]["ncp"] < plain.report["utility"]["ncp"]


def test_lattice__report_names_level_and_label_per_column(clinical):
    r = anonymize(clinical, qi=CLINICAL_QI, sensitive="diagnosis", k=5, method="lattice",
                  drop=["patient_id"])
    cols = r.report["transformation"]["columns"]
    hier = load_hierarchies(clinical, CLINICAL_QI)
    for q in CLINICAL_QI:
        level = cols[q]["level"]
        assert cols[q]["level_name"] == hier[q].names[level]
        assert cols[q]["example_label"] in hier[q].labels[level]
        assert set(r.table[q]) <= set(hier[q].labels[level])


# ------------------------------------------------------------------ utility, hand computed
def test_utility__tiny_table_metrics_equal_hand_computed_values():
    df = pd.DataFrame({"age": ["31", "35", "42", "44", "47", "49"],
                       "sex": ["F", "F", "M", "M", "F", "F"]})
    h = {"age": interval_hierarchy("age", df["age"], widths=[10])}
    r = anonymize(df, qi=["age", "sex"], k=2, hierarchies=h, method="lattice",
                  max_suppression=0.0)
    # by hand: only (age width 10, sex kept) is 2-anonymous without suppression; classes
    # [30-39]/F, [40-49]/M, [40-49]/F of 2 records; age NCP (39 - 30) / (49 - 31) = 0.5
    assert list(r.table["age"]) == ["[30-39]"] * 2 + ["[40-49]"] * 4
    u = r.report["utility"]
    assert u["ncp"] == pytest.approx((6 * 0.5 + 6 * 0.0) / 12)
    assert u["ncp_per_qi"] == {"age": 0.5, "sex": 0.0}
    assert u["discernibility"] == 2**2 * 3
    assert (u["n_classes"], u["avg_class_size"], u["c_avg"], u["suppressed"]) == (3, 2, 1, 0)


def test_utility__suppressed_records_cost_one_per_cell_and_n_in_discernibility():
    loss = np.array([[0.5, 0.0], [0.5, 0.0], [1.0, 1.0]])
    m = utility_metrics(loss, np.array([0, 0]), np.array([True, True, False]), k=2,
                        qi=["a", "b"])
    assert m["ncp"] == pytest.approx(3 / 6, abs=1e-6)
    assert m["discernibility"] == 4 + 1 * 3
    assert m["suppressed"] == 1


# ------------------------------------------------------------------ lattice optimality
def _brute_force(df, qi, hier, k, max_sup):
    """Best mean NCP over every full-domain level combination (the reference)."""
    best = None
    n, q = len(df), len(qi)
    for levels in itertools.product(*[range(hier[c].n_levels) for c in qi]):
        labels, losses = {}, np.zeros(n)
        for c, lv in zip(qi, levels, strict=True):
            leaf = [hier[c].leaves.index(v) for v in df[c]]
            node = hier[c].codes[lv][leaf]
            labels[c] = [hier[c].labels[lv][j] for j in node]
            losses += hier[c].loss[lv][node]
        size = pd.DataFrame(labels).groupby(qi)[qi[0]].transform("size").to_numpy()
        small = size < k
        if small.sum() > max_sup or small.all():
            continue
        loss = (losses[~small].sum() + small.sum() * q) / (n * q)
        best = loss if best is None else min(best, loss)
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lattice__finds_the_brute_force_optimum(seed):
    rng = np.random.default_rng(seed)
    n = 40
    df = pd.DataFrame({"age": rng.integers(20, 60, n).astype(str),
                       "zip": rng.choice(["75011", "75012", "75020", "69001", "69002"], n),
                       "sex": rng.choice(["F", "M"], n)})
    hier = load_hierarchies(df, ["age", "zip", "sex"])
    r = anonymize(df, qi=["age", "zip", "sex"], k=3, method="lattice", max_suppression=0.1,
                  verify=False)
    expected = _brute_force(df, ["age", "zip", "sex"], hier, 3, int(0.1 * n))
    assert r.report["utility"]["ncp"] == pytest.approx(expected, abs=1e-6)


def test_lattice__too_large_lattice_raises():
    h = flat_hierarchy("a", ["x", "y"])
    p = Problem(np.zeros((2, 3), dtype=np.int64), (h, h, h), None, 0, False,
                PrivacyModels(k=1), 0)
    with pytest.raises(ConfigError, match="lattice is too large.*8 nodes"):
        lattice_search(p, max_nodes=4)


# ------------------------------------------------------------------ property test
@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property__release_satisfies_k(data):
    n = data.draw(st.integers(2, 30), label="n")
    ages = data.draw(st.lists(st.integers(0, 99), min_size=n, max_size=n), label="age")
    sexes = data.draw(st.lists(st.sampled_from("FMX"), min_size=n, max_size=n), label="sex")
    k = data.draw(st.integers(1, n), label="k")
    method = data.draw(st.sampled_from(["mondrian", "plain-mondrian", "lattice"]))
    df = pd.DataFrame({"age": [str(a) for a in ages], "sex": sexes})
    r = anonymize(df, qi=["age", "sex"], k=k, method=method, max_suppression=0.2,
                  verify=False)
    sizes = r.table.groupby(["age", "sex"]).size()
    assert len(r.table) > 0 and sizes.min() >= k
    assert r.report["rows"]["suppressed"] <= 0.2 * n


# ------------------------------------------------------------------ bad input
def test_missing_qi_column__raises_with_did_you_mean(clinical):
    with pytest.raises(SchemaError, match="column 'postcod' is not in.*did you mean 'postcode'"):
        anonymize(clinical, qi=["age", "postcod"], k=5, drop=["patient_id"])


def test_k_larger_than_table__raises(clinical):
    with pytest.raises(InputError, match="k is larger than the table.*k <= 600"):
        anonymize(clinical, qi=CLINICAL_QI, k=601, drop=["patient_id"])


def test_no_solution_within_suppression_limit__raises():
    df = pd.DataFrame({"a": ["1", "2", "3", "4"], "s": ["x", "x", "x", "y"]})
    with pytest.raises(InputError, match="no release satisfies"):
        anonymize(df, qi=["a"], sensitive="s", k=2, l=3, method="lattice",
                  max_suppression=0.0)
    with pytest.raises(InputError, match="no release satisfies"):
        anonymize(df, qi=["a"], sensitive="s", k=2, l=3)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"k": 0}, "invalid k"),
    ({"k": 2, "l": 2}, "need a sensitive column"),
    ({"k": 2, "sensitive": "diagnosis", "l": 1}, "invalid l"),
    ({"k": 2, "sensitive": "diagnosis", "l": 2, "l_kind": "recursive"}, "needs c > 0"),
    ({"k": 2, "sensitive": "diagnosis", "l": 2, "l_kind": "max"}, "unknown l-diversity"),
    ({"k": 2, "sensitive": "diagnosis", "t": 1.5}, "invalid t"),
    ({"k": 2, "sensitive": "age"}, "also a quasi-identifier"),
    ({"k": 2, "method": "mondrain"}, "did you mean 'mondrian'"),
    ({"k": 2, "max_suppression": 1.0}, "invalid suppression limit"),
    ({"k": 2, "drop": ["age"]}, "dropped column is also"),
    ({"k": 2, "drop": ["patient"]}, "did you mean 'patient_id'"),
])
def test_invalid_options__raise_config_errors(clinical, kwargs, match):
    kwargs = {"drop": ["patient_id"], **kwargs}
    with pytest.raises((ConfigError, SchemaError), match=match):
        anonymize(clinical, qi=CLINICAL_QI, **kwargs)


def test_release__apparent_direct_identifier_is_refused_unless_kept(clinical):
    with pytest.raises(ConfigError, match="looks like a direct identifier") as e:
        anonymize(clinical, qi=CLINICAL_QI, sensitive="diagnosis", k=5)
    assert "patient_id" in str(e.value) and clinical["patient_id"].iloc[0] not in str(e.value)
    r = anonymize(clinical, qi=CLINICAL_QI, sensitive="diagnosis", k=5, keep_unique=True)
    assert "patient_id" in r.table.columns  # the user said it identifies nobody


def test_read_table_csv__non_utf8_raises_with_line(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes("age,city\n41,Paris\n52,K\xf6ln\n".encode("latin-1"))
    with pytest.raises(FormatError, match=r"not UTF-8 text \[.*t\.csv:3\]"):
        read_table_csv(p)


def test_read_table_csv__ragged_row_raises_with_line(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("age,sex\n41,F\n52,M,extra\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"ragged CSV.*t\.csv:3.*expected 2 fields, got 3"):
        read_table_csv(p)


def test_read_table_csv__missing_file_empty_and_duplicate_header_raise(tmp_path):
    with pytest.raises(InputFileNotFoundError, match="input table not found"):
        read_table_csv(tmp_path / "none.csv")
    (tmp_path / "e.csv").write_text("", encoding="utf-8")
    with pytest.raises(FormatError, match="no header row"):
        read_table_csv(tmp_path / "e.csv")
    (tmp_path / "d.csv").write_text("a,a\n1,2\n", encoding="utf-8")
    with pytest.raises(FormatError, match="column name repeated"):
        read_table_csv(tmp_path / "d.csv")


def test_load_hierarchies__missing_folder_raises(clinical, tmp_path):
    with pytest.raises(InputFileNotFoundError, match="hierarchy folder not found"):
        load_hierarchies(clinical, ["age"], tmp_path / "none")


def _write_clinical(tmp_path: Path, n: int = 200) -> Path:
    return simulate_clinical(tmp_path / "in.csv", n_rows=n, seed=5).path


def test_anonymize_csv__uncovered_hierarchy_value_writes_nothing(tmp_path):
    src = _write_clinical(tmp_path)
    hdir = tmp_path / "h"
    hdir.mkdir()
    (hdir / "ethnicity.csv").write_text("White;European\nAsian;Asian\n", encoding="utf-8")
    with pytest.raises(InputError, match="does not cover every value"):
        anonymize_csv(src, tmp_path / "o.csv", tmp_path / "r.json", hierarchies_dir=hdir,
                      qi=["age", "ethnicity"], k=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h", "in.csv", "in.json"]


@pytest.mark.parametrize(("content", "match"), [
    (b"age,sex\n41,F\n52\n", "ragged CSV"),
    ("age,city\n41,K\xf6ln\n".encode("latin-1"), "not UTF-8"),
    (b"age,sex\n41,F\n", "k is larger than the table"),
])
def test_anonymize_csv__bad_input_writes_nothing(tmp_path, content, match):
    src = tmp_path / "in.csv"
    src.write_bytes(content)
    with pytest.raises((FormatError, InputError), match=match):
        anonymize_csv(src, tmp_path / "o.csv", tmp_path / "r.json", qi=["age"], k=2)
    assert [p.name for p in tmp_path.iterdir()] == ["in.csv"]


def test_anonymize_csv__output_is_a_folder_or_the_input_raises(tmp_path):
    src = _write_clinical(tmp_path, 20)
    with pytest.raises(ConfigError, match="output path is a folder"):
        anonymize_csv(src, tmp_path, tmp_path / "r.json", qi=["age"], k=2)
    with pytest.raises(ConfigError, match="would overwrite the input"):
        anonymize_csv(src, src, tmp_path / "r.json", qi=["age"], k=2)


@pytest.mark.parametrize("method", ["lattice", "mondrian"])
def test_anonymize_csv__user_hierarchy_is_used_and_reported(tmp_path, method):
    src = _write_clinical(tmp_path)
    hdir = tmp_path / "h"
    hdir.mkdir()
    (hdir / "ethnicity.csv").write_text(
        "White;Group A\nBlack;Group B\nAsian;Group B\nMixed;Group B\nOther;Group B\n"
        "Not stated;Group A\n", encoding="utf-8")
    r = anonymize_csv(src, tmp_path / "o.csv", tmp_path / "r.json", hierarchies_dir=hdir,
                      qi=["age", "ethnicity"], k=5, method=method, drop=["patient_id"])
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["transformation"]["columns"]["ethnicity"]["hierarchy"] == "csv"
    assert set(r.table["ethnicity"]) <= {"White", "Black", "Asian", "Mixed", "Other",
                                         "Not stated", "Group A", "Group B", "*"}
    assert r.table.groupby(["age", "ethnicity"]).size().min() >= 5
    assert report["format"] == "secured_bio.anonymize_table_report"
    assert report["format_version"] == 1


# ------------------------------------------------------------------ CLI
def test_cli_table__writes_release_and_report(tmp_path, cli_env):
    src = _write_clinical(tmp_path)
    res = run_cli("anonymize", "table", "--in", str(src), "--qi", ",".join(CLINICAL_QI),
                  "--sensitive", "diagnosis", "--k", "5", "--l", "2", "--drop", "patient_id",
                  "--out", str(tmp_path / "o.csv"), "--report", str(tmp_path / "r.json"),
                  env=cli_env)
    assert res.returncode == 0, res.stderr
    assert "pycanon agrees" in res.stderr
    out = pd.read_csv(tmp_path / "o.csv", dtype=str)
    report = json.loads((tmp_path / "r.json").read_text())
    assert "patient_id" not in out.columns
    assert report["achieved"]["pycanon"]["k"] >= 5
    assert report["rows"]["released"] == len(out)
    assert report["dropped_columns"] == ["patient_id"]


def test_cli_table__missing_column_fails_and_writes_nothing(tmp_path, cli_env):
    src = _write_clinical(tmp_path, 30)
    res = run_cli("anonymize", "table", "--in", str(src), "--qi", "age,sexe", "--k", "2",
                  "--out", str(tmp_path / "o.csv"), "--report", str(tmp_path / "r.json"),
                  env=cli_env)
    assert res.returncode == 2  # a column named on the command line: a usage error
    assert "did you mean 'sex'" in res.stderr
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "r.json").exists()
