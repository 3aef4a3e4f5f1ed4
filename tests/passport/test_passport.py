"""Privacy passports: built from real command outputs, valid, classified by the stated rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from secured_bio.cli import main
from secured_bio.errors import ConfigError, SchemaError
from secured_bio.passport import (
    THRESHOLDS,
    build_passport,
    classify,
    passport_html,
    validate_passport,
    write_passport,
)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from secured_bio.testing import simulate_genotypes

    d = tmp_path_factory.mktemp("pp_gwas")
    return simulate_genotypes(d, n_sites=3, samples_per_site=70, n_variants=150, n_causal=2,
                              seed=3)


@pytest.fixture(scope="module")
def clinical(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from secured_bio.testing import simulate_oncology

    d = tmp_path_factory.mktemp("pp_tab")
    simulate_oncology(d / "main.csv", n_rows=200, site="site1", seed=1)
    simulate_oncology(d / "hold.csv", n_rows=200, site="site2", seed=2)
    return d / "main.csv", d / "hold.csv"


def _read(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    validate_passport(doc)
    assert path.with_suffix(".html").is_file()
    return doc


def test_gwas_run__passport_is_aggregate_and_valid(cohort: Any, tmp_path: Path) -> None:
    pp = tmp_path / "gwas.passport.json"
    assert main(["gwas", "run", "--vcf", str(cohort.vcf_paths[0]), "--pheno",
                 str(cohort.pheno_path), "--pheno-name", "quant", "--test", "linear",
                 "--out", str(tmp_path / "g"), "--passport", str(pp)]) == 0
    doc = _read(pp)
    assert doc["artifact"]["name"] == "g.linear.tsv"
    assert doc["classification"]["category"] == "aggregate"
    assert doc["technique"][0]["name"] == "none"
    assert any("Homer" in r for r in doc["classification"]["residual_risks"])


def test_gwas_secure__passport_lists_the_reveal_set(cohort: Any, tmp_path: Path) -> None:
    pp = tmp_path / "sec.passport.json"
    sites = [f"--site=s{i}={p}" for i, p in enumerate(cohort.vcf_paths)]
    assert main(["gwas", "secure", *sites, "--pheno", str(cohort.pheno_path), "--pheno-name",
                 "quant", "--test", "linear", "--out", str(tmp_path / "s"),
                 "--passport", str(pp)]) == 0
    doc = _read(pp)
    c = doc["classification"]
    assert c["category"] == "aggregate" and not c["treat_as_personal_data"]
    assert any("crossprod" in r for r in c["reasons"])
    reveal = next(e for e in doc["evidence"] if e["name"] == "reveal_set")
    assert "crossprod" in reveal["value"]
    assert doc["technique"][0]["name"] == "SMPC"
    assert {i["site"] for i in doc["inputs"] if i["sha256"]} == {"s0", "s1", "s2"}


def test_anonymize_table__k1_is_personal_k5_without_risks_is_not_anonymous(
        clinical: tuple[Path, Path], tmp_path: Path) -> None:
    main_csv, _ = clinical
    for k in (1, 5):
        pp = tmp_path / f"k{k}.passport.json"
        assert main(["anonymize", "table", "--in", str(main_csv), "--qi", "age,sex",
                     "--k", str(k), "--drop", "patient_id", "--out", str(tmp_path / f"{k}.csv"),
                     "--report", str(tmp_path / f"{k}.json"), "--passport", str(pp)]) == 0
        c = _read(pp)["classification"]
        assert c["category"] != "anonymous"
        if k == 1:
            assert c["category"] == "personal"
        else:
            assert c["category"] == "pseudonymous"
            assert any("not measured" in m for m in c["missing_evidence"])
    kitem = next(e for e in _read(pp)["evidence"] if e["name"] == "k_anonymity")
    assert kitem["source"] == "pycanon" and kitem["passed"] is True


def test_synth_table__passport_reads_the_evaluation(clinical: tuple[Path, Path],
                                                    tmp_path: Path) -> None:
    main_csv, hold = clinical
    pp = tmp_path / "syn.passport.json"
    assert main(["synth", "table", "--in", str(main_csv), "--n", "100", "--method", "copula",
                 "--drop", "patient_id", "--out", str(tmp_path / "syn.csv"), "--report",
                 str(tmp_path / "syn.json"), "--holdout", str(hold),
                 "--passport", str(pp)]) == 0
    doc = _read(pp)
    names = {e["name"] for e in doc["evidence"]}
    assert {"membership_inference_auc", "exact_copies_share"} <= names
    mia = next(e for e in doc["evidence"] if e["name"] == "membership_inference_auc")
    assert mia["ci"] is not None and mia["threshold"] == {"upper_ci_max": 0.6}
    assert doc["classification"]["thresholds"] == THRESHOLDS


# ---------------------------------------------------------------------------- rules only
def _ev(name: str, value: Any, passed: bool | None, *, ci: list[float] | None = None,
        criterion: str | None = None, source: str = "secured_bio") -> dict[str, Any]:
    e = {"name": name, "value": value, "ci": ci, "threshold": None, "passed": passed,
         "source": source, "covers": ""}
    if criterion:
        e["criterion"] = criterion
    return e


_ART29 = [_ev("singling_out_risk", 0.0, True, ci=[0, 0.02], criterion="singling_out"),
          _ev("linkability_risk", 0.0, True, ci=[0, 0.02], criterion="linkability"),
          _ev("inference_risk", 0.0, True, ci=[0, 0.02], criterion="inference")]


def test_classify__table_anonymous_only_with_all_three_criteria_measured() -> None:
    k5 = _ev("k_anonymity", 5, True, source="pycanon")
    assert classify("anonymized_table", [k5, *_ART29])["category"] == "anonymous"
    c = classify("anonymized_table", [k5, *_ART29[:2]])
    assert c["category"] == "pseudonymous"
    assert c["criteria"]["inference"]["status"] == "not_measured"
    k1 = _ev("k_anonymity", 1, False, source="pycanon")
    assert classify("anonymized_table", [k1, *_ART29])["category"] == "personal"
    ours = _ev("k_anonymity", 5, True)  # not checked by pycanon
    assert classify("anonymized_table", [ours, *_ART29])["category"] != "anonymous"


def test_classify__synthetic_missing_or_failed_evidence_is_never_anonymous() -> None:
    mia = _ev("membership_inference_auc", 0.5, True, ci=[0.45, 0.55])
    copies = _ev("exact_copies_share", 0.0, True)
    assert classify("synthetic_table", [mia, copies])["category"] == "anonymous"
    c = classify("synthetic_table", [copies])
    assert c["category"] == "personal" and c["missing_evidence"]
    bad = _ev("membership_inference_auc", 0.7, False, ci=[0.65, 0.75])
    assert classify("synthetic_table", [bad, copies])["category"] == "personal"
    failed = _ev("singling_out_risk", 0.2, False, ci=[0.1, 0.3], criterion="singling_out")
    assert classify("synthetic_table", [mia, copies, failed])["category"] == "personal"
    assert classify("report", [])["category"] != "anonymous"


def test_build_passport__no_report_is_never_anonymous(tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_text("a\n1\n")
    for kind in ("anonymized_table", "synthetic_table", "synthetic_vitals"):
        p = build_passport(tmp_path / "s.csv", kind=kind, report=None, command="x",
                           parameters={})
        validate_passport(p)
        assert p["classification"]["category"] != "anonymous"
        assert p["classification"]["missing_evidence"]


def test_passport_html__escapes_hostile_text(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("a\n1\n")
    p = build_passport(tmp_path / "a.csv", kind="report", report=None, command="x",
                       parameters={"title": "<script>alert(1)</script>", "q": '"><img>'})
    page = passport_html(p)
    assert "<script>" not in page and "<img>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Classification" in page and "decision support" in page.lower()


def test_validate_and_write__errors(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("a\n1\n")
    p = build_passport(tmp_path / "a.csv", kind="report", report=None, command="x",
                       parameters={}, data_use=["DUO:0000042"])
    assert p["data_use"]["duo"] == ["DUO:0000042"]
    with pytest.raises(ConfigError, match="must not end in .html"):
        write_passport(p, tmp_path / "p.html")
    bad = dict(p, classification=dict(p["classification"], category="secret"))
    with pytest.raises(SchemaError, match="passport violates its schema"):
        validate_passport(bad)
    with pytest.raises(SchemaError, match="unsupported passport format_version"):
        validate_passport(dict(p, format_version=99))
    with pytest.raises(ConfigError, match="unknown passport kind"):
        build_passport(tmp_path / "a.csv", kind="tabel", report=None, command="x",
                       parameters={})
    assert not list(tmp_path.glob("p.*"))
