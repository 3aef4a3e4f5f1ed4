from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from secured_bio.errors import ConfigError, FormatError, InputFileNotFoundError
from secured_bio.hub.agent.discover import MIN_CATEGORY_COUNT, discover_datasets
from secured_bio.hub.demo_data import DEMO_SITES


def test_discover__demo_sites_give_counts_and_no_ids(hub_demo: dict[str, Path]) -> None:
    ids = hub_demo["ids"].read_text().split()
    assert len(ids) > 300
    for site in DEMO_SITES:
        datasets = {d.name: d for d in discover_datasets(hub_demo[site])}
        assert {d.kind for d in datasets.values()} == {"genotypes", "vitals", "clinical",
                                                        "imaging"}
        gen = datasets["genomic_access_gwas"].metadata
        assert gen["n_samples"] == 120 and gen["n_variants"] == 600
        assert gen["contigs"] == ["1"] and gen["has_phenotypes"]
        assert [p["name"] for p in gen["phenotypes"]] == ["quant", "case"]
        assert gen["covariates"] == ["sex", "age"]
        vit = datasets["telemonitoring_vitals"].metadata
        assert vit["n_patients"] == 8 and vit["n_observations"] > 0
        assert "heart_rate" in vit["variables"] and len(vit["first_date"]) == 10
        cli = datasets["oncology_cases"].metadata
        assert cli["n_rows"] == 150
        cols = {c["name"]: c for c in cli["columns"]}
        assert cols["patient_id"]["type"] == "identifier"
        assert cols["age"]["type"] == "numeric" and cols["sex"]["categories"] == ["F", "M"]
        img = datasets["tumor_fmri"].metadata
        assert img["n_subjects"] == 4 and img["shape"] == [16, 16, 8]
        assert img["modality"] == "fmri"
        text = json.dumps([d.to_registration() for d in datasets.values()])
        assert str(hub_demo[site]) not in text and ".csv" not in text  # no paths
        leaked = [i for i in ids if i in text]
        assert leaked == [], f"{len(leaked)} IDs in the registration"
        for d in datasets.values():
            assert d.fingerprint.startswith("sha256:") and len(d.fingerprint) == 71
            assert all(p.is_absolute() for ps in d.files.values() for p in ps)


def test_discover__fingerprint_follows_file_content(hub_demo: dict[str, Path],
                                                   tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(hub_demo["site1"], site)
    before = {d.name: d.fingerprint for d in discover_datasets(site)}
    table = site / "clinical" / "clinical.csv"
    table.write_text(table.read_text().replace(",M,", ",F,", 1))
    after = {d.name: d.fingerprint for d in discover_datasets(site)}
    assert before["oncology_cases"] != after["oncology_cases"]
    assert before["genomic_access_gwas"] == after["genomic_access_gwas"]


def test_discover__rare_categories_are_not_listed(tmp_path: Path) -> None:
    rows = ["patient_id,age,ward,sex"]
    rows += [f"p{i},{i % 17},{'W' + str(i % 7)},{'FM'[i % 2]}" for i in range(40)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    _manifest(tmp_path, {"table": "t.csv"}, kind="clinical")
    (ds,) = discover_datasets(tmp_path)
    cols = {c["name"]: c for c in ds.metadata["columns"]}
    assert cols["ward"]["n_categories"] == 7 and "categories" not in cols["ward"]
    assert cols["sex"]["categories"] == ["F", "M"] and 20 >= MIN_CATEGORY_COUNT


def _manifest(folder: Path, files: dict, *, kind: str = "clinical", **extra: object) -> None:
    import yaml

    entry = {"name": "t", "kind": kind, "files": files, "description": "d",
             "duo": ["DUO:0000042"], "contact": "dpo@example.org", **extra}
    (folder / "datasets.yaml").write_text(yaml.safe_dump({"datasets": [entry]}))


@pytest.mark.parametrize(("change", "error", "match"), [
    ({"kind": "clinicl"}, ConfigError, "did you mean 'clinical'"),
    ({"duo": ["DUO:0000099"]}, ConfigError, "unknown DUO code"),
    ({"duo": ["GRU"]}, ConfigError, "invalid DUO code"),
    ({"duo": ["DUO:0000018"]}, ConfigError, "no DUO data use permission"),
    ({"files": {"table": "missing.csv"}}, InputFileNotFoundError, "dataset file not found"),
    ({"files": {"table": "../t.csv"}}, ConfigError, "outside the data folder"),
    ({"files": {"tabel": "t.csv"}}, ConfigError, "did you mean 'table'"),
    ({"files": {"table": "*.tsv"}}, InputFileNotFoundError, "no file matches"),
    ({"contact": ""}, ConfigError, "'contact' is missing or empty"),
    ({"name": "a b"}, ConfigError, "invalid dataset name"),
    ({"owner": "x"}, ConfigError, "unknown dataset field"),
])
def test_discover__manifest_errors(tmp_path: Path, change: dict, error: type,
                                   match: str) -> None:
    (tmp_path / "t.csv").write_text("patient_id,age\np1,3\np2,4\n")
    files = change.pop("files", {"table": "t.csv"})
    _manifest(tmp_path, files, **change)
    with pytest.raises(error, match=match):
        discover_datasets(tmp_path)


def test_discover__manifest_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputFileNotFoundError, match="dataset manifest not found"):
        discover_datasets(tmp_path)
    (tmp_path / "datasets.yaml").write_text("datasets: [\n")
    with pytest.raises(FormatError, match="not valid YAML"):
        discover_datasets(tmp_path)
    (tmp_path / "datasets.yaml").write_text("format_version: 2\ndatasets: []\n")
    with pytest.raises(FormatError, match="unsupported dataset manifest version"):
        discover_datasets(tmp_path)
    (tmp_path / "datasets.yaml").write_text("datasets: []\n")
    with pytest.raises(ConfigError, match="lists no datasets"):
        discover_datasets(tmp_path)
    (tmp_path / "t.csv").write_text("patient_id,age\np1,3\n")
    entry = ("{name: t, kind: clinical, files: {table: t.csv}, description: d, "
             "duo: [DUO:0000042], contact: c}")
    (tmp_path / "datasets.yaml").write_text(f"datasets: [{entry}, {entry}]\n")
    with pytest.raises(ConfigError, match="duplicated dataset name"):
        discover_datasets(tmp_path)
    with pytest.raises(InputFileNotFoundError, match="site data folder not found"):
        discover_datasets(tmp_path / "nope")
