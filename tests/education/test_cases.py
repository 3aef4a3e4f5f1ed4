"""Teaching cases from a YAML spec: exact conditions, pages, privacy statement, bad specs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from secured_bio.cli import main
from secured_bio.education import example_spec, load_spec, make_cases, parse_spec
from secured_bio.errors import ConfigError, InputFileNotFoundError
from secured_bio.testing import simulate_oncology


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with two sites' oncology tables (no vitals, no images)."""
    d = tmp_path_factory.mktemp("edu_src")
    for i in (1, 2):
        simulate_oncology(d / f"site{i}" / "clinical.csv", n_rows=150, site=f"site{i}",
                          seed=i)
    return d


def table_spec(**cases: object) -> dict:
    raw = yaml.safe_load(example_spec())
    raw["sources"] = {"table": "site*/clinical.csv", "vitals": None, "images": None}
    if cases:
        raw["cases"] = cases["cases"]
    return raw


def test_make_cases__counts_and_conditions_hold_exactly(source: Path, tmp_path: Path) -> None:
    raw = table_spec()
    out = tmp_path / "cases"
    m = make_cases(parse_spec(raw, base=source), out)
    wanted = sum(g["count"] for g in raw["cases"])
    table = pd.read_csv(out / "cases.csv", dtype=str, keep_default_na=False)
    assert m["n_cases"] == len(table) == wanted
    assert m["conditions_met"]["share"] == 1.0
    # checked here again on the written text, independently of the library's own mask
    g0 = table[table["group"] == "0"]
    assert len(g0) == raw["cases"][0]["count"]
    assert g0["age"].astype(int).between(5, 10).all()
    assert (g0["stage"] == "III").all() and (g0["sepsis"] == "yes").all()
    assert (g0["diagnosis"] == "CNS tumour").all()
    g1 = table[table["group"] == "1"]
    assert (g1["diagnosis"] == "ALL").all() and (g1["treatment_phase"] == "induction").all()
    assert g1["age"].astype(int).between(1, 4).all() and (g1["sepsis"] == "no").all()
    assert "patient_id" not in table.columns  # dropped identifier
    for cid in table["case_id"]:
        folder = out / "cases" / cid
        doc = json.loads((folder / "case.json").read_text())
        assert doc["case_id"] == cid and doc["privacy"]["real_patients_included"] is False
        assert "membership-inference" in doc["privacy"]["text"]
        assert (folder / "case.md").read_text().startswith(f"# {cid}:")
        assert "<html" in (folder / "case.html").read_text()
    assert (out / "index.html").is_file() and (out / "privacy" / "table_evaluation.html").is_file()


def test_make_cases__privacy_statement_reflects_the_audit(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "cases"
    m = make_cases(parse_spec(table_spec(), base=source), out)
    ev = json.loads((out / "privacy" / "table_evaluation.json").read_text())
    priv = m["privacy"]["table"]
    assert priv["membership_inference_auc"] == ev["privacy"]["membership_inference"]["auc"]
    assert priv["fitted_on_rows"] + priv["held_out_rows"] == 300
    assert 0.3 <= priv["membership_inference_auc"] <= 0.7
    assert priv["exact_copies_share"] <= 0.01


def test_make_cases__no_real_identifier_leaves(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "cases"
    make_cases(parse_spec(table_spec(), base=source), out)
    real_ids = set(pd.concat(pd.read_csv(p, dtype=str)["patient_id"]
                             for p in source.glob("site*/clinical.csv")))
    for f in out.rglob("*"):
        if f.is_file() and f.suffix in (".json", ".md", ".html", ".csv"):
            text = f.read_text()
            assert not any(i in text for i in real_ids), f.name


def test_make_cases__same_seed_same_cases(source: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make_cases(parse_spec(table_spec(), base=source), a)
    make_cases(parse_spec(table_spec(), base=source), b)
    assert (a / "cases.csv").read_bytes() == (b / "cases.csv").read_bytes()
    raw = table_spec()
    raw["seed"] = 5
    c = tmp_path / "c"
    make_cases(parse_spec(raw, base=source), c)
    assert (a / "cases.csv").read_bytes() != (c / "cases.csv").read_bytes()


def test_make_cases__dp_generator_reports_epsilon(source: Path, tmp_path: Path) -> None:
    raw = table_spec()
    raw["table"].update(method="mst", epsilon=1.0)
    m = make_cases(parse_spec(raw, base=source), tmp_path / "dp")
    assert m["privacy"]["table"]["differentially_private"] is True
    assert m["privacy"]["table"]["epsilon"] == pytest.approx(1.0)
    assert "differential privacy" in m["privacy"]["text"]
    assert m["conditions_met"]["share"] == 1.0


@pytest.mark.parametrize(
    ("where", "message"),
    [({"nonexistent": "x"}, "unknown"), ({"diagnosis": "influenza"}, "domain"),
     ({"age": "40..50"}, "range")],
)
def test_make_cases__bad_condition_is_clear_and_writes_nothing(
        source: Path, tmp_path: Path, where: dict, message: str) -> None:
    raw = table_spec(cases=[{"count": 2, "where": where}])
    out = tmp_path / "cases"
    with pytest.raises(ConfigError, match=message):
        make_cases(parse_spec(raw, base=source), out)
    assert not out.exists()


def test_parse_spec__default_sources_are_optional_named_ones_are_not(source: Path) -> None:
    raw = yaml.safe_load(example_spec())
    raw.pop("sources")  # defaults: site*/clinical.csv, vitals in ".", images in "imaging"
    spec = parse_spec(raw, base=source)
    assert spec.vitals_dir is None and spec.images_dir is None  # none there: skipped
    assert len(spec.table_files) == 2
    raw["sources"] = {"images": "imaging"}
    with pytest.raises(InputFileNotFoundError, match="images source folder not found"):
        parse_spec(raw, base=source)


def test_make_cases__named_vitals_source_without_vitals_is_clear(source: Path,
                                                                 tmp_path: Path) -> None:
    raw = table_spec()
    raw["sources"]["vitals"] = "site1"  # exists, holds no vitals.csv
    out = tmp_path / "cases"
    with pytest.raises(InputFileNotFoundError) as e:
        make_cases(parse_spec(raw, base=source), out)
    assert "sources/vitals" in e.value.where and "sources.vitals" in e.value.fix
    assert not out.exists()


def test_parse_spec__errors_name_the_key(source: Path) -> None:
    raw = table_spec()
    raw["cases"][0]["cuont"] = 3
    with pytest.raises(ConfigError, match="cuont") as e:
        parse_spec(raw, base=source)
    assert "cases/0" in e.value.where
    raw = table_spec()
    raw["table"]["method"] = "mst"
    with pytest.raises(ConfigError, match="budget"):
        parse_spec(raw, base=source)
    raw = table_spec()
    raw["table"]["epsilon"] = 0
    with pytest.raises(ConfigError, match="epsilon"):
        parse_spec(raw, base=source)
    raw = table_spec()
    raw["cases"] = []
    with pytest.raises(ConfigError):
        parse_spec(raw, base=source)
    raw = table_spec()
    raw["sources"]["table"] = "nowhere/*.csv"
    with pytest.raises(InputFileNotFoundError, match="no case table"):
        parse_spec(raw, base=source)


def test_cli__cases_with_sources_and_overrides(source: Path, tmp_path: Path, capsys) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(table_spec()))
    out = tmp_path / "out"
    assert main(["education", "cases", "--spec", str(spec), "--sources", str(source),
                 "--out", str(out), "--no-progress"]) == 0
    assert "100% meet their conditions" in capsys.readouterr().out
    assert main(["education", "cases", "--spec", str(spec), "--sources", str(source),
                 "--out", str(out), "--method", "mst", "--no-progress"]) == 2
    assert "budget" in capsys.readouterr().err
    assert (out / "cases.json").is_file()  # the earlier output is intact
    assert main(["education", "example-spec"]) == 0
    assert load_spec(spec, sources=source).n_cases == 7


@pytest.fixture(scope="module")
def source_with_vitals(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Oncology tables and a ward's vital signs (2 sites x 20 children)."""
    from secured_bio.testing import simulate_vitals

    d = tmp_path_factory.mktemp("edu_vitals")
    for i in (1, 2):
        simulate_oncology(d / f"site{i}" / "clinical.csv", n_rows=150, site=f"site{i}",
                          seed=i)
    simulate_vitals(d, n_sites=2, patients_per_site=20, hours=48, seed=4)
    return d


def test_make_cases__vitals_follow_each_case(source_with_vitals: Path, tmp_path: Path) -> None:
    raw = table_spec()
    raw["sources"]["vitals"] = "."
    raw["vitals"] = {"hours": 24}
    out = tmp_path / "cases"
    m = make_cases(parse_spec(raw, base=source_with_vitals), out)
    table = pd.read_csv(out / "cases.csv", dtype=str, keep_default_na=False)
    patients = pd.read_csv(out / "vitals" / "patients.csv", dtype=str)
    events = pd.read_csv(out / "vitals" / "events.csv", dtype=str, keep_default_na=False)
    assert patients["patient_id"].tolist() == table["case_id"].tolist()
    # a case's vital signs are those of a child of its age and sex
    ages = patients["age_years"].astype(float).to_numpy()
    assert (ages >= table["age"].astype(int).to_numpy()).all()
    assert (ages < table["age"].astype(int).to_numpy() + 1).all()
    assert patients["sex"].tolist() == table["sex"].tolist()
    # the deterioration episode follows the sepsis column (deterioration_column)
    assert events["deterioration"].tolist() == [
        "1" if s == "yes" else "0" for s in table["sepsis"]]
    assert (events["onset_time"] != "").tolist() == (table["sepsis"] == "yes").tolist()
    # the written vitals pass the telemonitoring data spec
    from secured_bio.specs import validate

    assert validate("vitals", out / "vitals" / "vitals.csv").ok
    doc = json.loads((out / "cases" / table["case_id"][0] / "case.json").read_text())
    assert doc["vitals"]["deterioration"] is True and doc["vitals"]["measurements"] > 0
    assert (out / "cases" / table["case_id"][0] / "vitals.png").stat().st_size > 5000
    v = m["privacy"]["vitals"]
    assert v["exact_copies"] == 0 and 0.0 <= v["membership_inference_auc"] <= 1.0
    assert m["vitals"]["utility"]["auroc_tstr"] is not None
    assert "held-out patients" in m["privacy"]["text"]


def test_make_cases__dp_vitals_generator_reports_epsilon(source_with_vitals: Path,
                                                         tmp_path: Path) -> None:
    raw = table_spec()
    raw["sources"]["vitals"] = "."
    raw["vitals"] = {"hours": 24, "epsilon": 1.0}
    out = tmp_path / "cases"
    m = make_cases(parse_spec(raw, base=source_with_vitals), out)
    v = m["privacy"]["vitals"]
    assert v["differentially_private"] is True and v["epsilon"] == 1.0 and v["delta"] == 1e-6
    assert "(1, 1e-06)-differential privacy (add/remove one patient)" in m["privacy"]["text"]
    model = json.loads((out / "vitals" / "model.json").read_text())
    assert model["differential_privacy"]["epsilon"] == 1.0
    ev = json.loads((out / "privacy" / "vitals_evaluation.json").read_text())
    assert ev["privacy"]["differential_privacy"]["adjacency"] == "add/remove one patient"
    # the CLI flag overrides the spec key
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    assert load_spec(spec, sources=source_with_vitals,
                     vitals_epsilon=4.0).raw["vitals"]["epsilon"] == 4.0
