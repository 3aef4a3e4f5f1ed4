from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from secured_bio.errors import ConfigError
from secured_bio.hub.agent.discover import LocalDataset, discover_datasets
from secured_bio.hub.agent.runners import (
    Release,
    SiteIdentity,
    TaskCancelled,
    TaskFailed,
    check_params,
    run_task,
)
from secured_bio.hub.demo_data import DEMO_SITES
from secured_bio.privacy.smpc import create_identity, run_relay, write_roster


@pytest.fixture(scope="module")
def sites(hub_demo: dict[str, Path]) -> dict[str, dict[str, LocalDataset]]:
    return {s: {d.name: d for d in discover_datasets(hub_demo[s])} for s in DEMO_SITES}


@pytest.fixture(scope="module")
def identities(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SiteIdentity]:
    d = tmp_path_factory.mktemp("state")
    return {s: SiteIdentity.load_or_create(s, d / s) for s in DEMO_SITES}


def _never_cancel(fraction: float, message: str) -> bool:
    assert 0 <= fraction < 1 and "running" in message
    return False


def _task(kind: str, params: dict[str, Any], *datasets: str, **extra: Any) -> dict[str, Any]:
    return {"id": 7, "job_id": 3, "kind": kind, "params": params,
            "datasets": [{"id": i, "name": n} for i, n in enumerate(datasets)], "rank": 0,
            "world_size": 1, "coordination": {}, **extra}


# -- the allow-list -----------------------------------------------------------------------------


def test_check_params__refuses_unlisted_params_and_names_the_allowed_ones() -> None:
    with pytest.raises(ConfigError, match=r"params\.out.*expected one of quasi_identifiers, k"):
        check_params("anonymize", {"quasi_identifiers": ["age"], "k": 5, "out": "/tmp/x"})
    with pytest.raises(ConfigError, match="did you mean 'pheno_name'"):
        check_params("gwas_secure", {"test": "linear", "phenoname": "quant"})
    with pytest.raises(ConfigError, match="allow_two_sites"):
        check_params("gwas_secure", {"test": "linear", "allow_two_sites": True})
    with pytest.raises(ConfigError, match="unknown job kind.*did you mean 'anonymize'"):
        check_params("anonymise", {})


@pytest.mark.parametrize(("params", "match"), [
    ({"quasi_identifiers": ["age"], "k": "5"}, "expected an integer"),
    ({"quasi_identifiers": ["age"], "k": True}, "expected an integer"),
    ({"quasi_identifiers": ["age"], "k": 1}, "expected 2..10000"),
    ({"quasi_identifiers": ["../../etc/passwd"], "k": 5}, "without '/'"),
    ({"quasi_identifiers": ["--out=/x"], "k": 5}, "not starting with '-'"),
    ({"quasi_identifiers": ["age"], "k": 5, "method": "mondrain"}, "did you mean 'mondrian'"),
    ({"quasi_identifiers": ["age"], "k": 5, "t": 1.5}, "expected 0..1"),
    ({"k": 5}, r"missing parameter.*quasi_identifiers"),
])
def test_check_params__checks_values_by_type(params: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        check_params("anonymize", params)


def test_check_params__normalises_lists() -> None:
    assert check_params("synthesize", {"rows": 10, "condition": "age=1..3"}) == {
        "rows": 10, "condition": ["age=1..3"]}


def test_release__name_without_path_separators(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid release name"):
        Release(tmp_path / "x", "a/b.csv", "k")


def test_run_task__fl_train_without_imaging_and_foreign_datasets_refused(
        sites: dict, identities: dict, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a imaging dataset"):
        run_task(_task("fl_train", {}), sites["site1"], tmp_path,
                 identity=identities["site1"], progress=_never_cancel)
    with pytest.raises(ConfigError, match="does not have"):
        run_task(_task("anonymize", {"quasi_identifiers": ["age"], "k": 5}, "other"),
                 sites["site1"], tmp_path, identity=identities["site1"],
                 progress=_never_cancel)
    with pytest.raises(ConfigError, match="needs a clinical dataset"):
        run_task(_task("anonymize", {"quasi_identifiers": ["age"], "k": 5},
                       "telemonitoring_vitals"), sites["site1"], tmp_path,
                 identity=identities["site1"], progress=_never_cancel)


# -- real runs ----------------------------------------------------------------------------------


def test_run_task__anonymize_releases_table_and_report(
        sites: dict, identities: dict, hub_demo: dict, tmp_path: Path) -> None:
    task = _task("anonymize", {"quasi_identifiers": ["age", "sex"], "k": 5,
                               "sensitive": "diagnosis", "l": 2}, "oncology_cases")
    releases = run_task(task, sites["site1"], tmp_path, identity=identities["site1"],
                        progress=_never_cancel)
    assert [(r.name, r.kind) for r in releases] == [
        ("anonymized.csv", "anonymized_table"),
        ("anonymization_report.json", "anonymization_report")]
    assert all(r.path.is_relative_to(tmp_path) and r.path.is_file() for r in releases)
    with releases[0].path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows and "patient_id" not in rows[0]  # identifier columns always dropped
    ids = set(hub_demo["ids"].read_text().split())
    assert not ids & {v for row in rows for v in row.values()}
    report = json.loads(releases[1].path.read_text())
    assert isinstance(report, dict)
    assert all(r.passport is None or isinstance(r.passport, dict) for r in releases)
    # a passport (when the CLI writes one) names files, never the site's paths
    text = json.dumps([r.passport for r in releases])
    assert str(tmp_path) not in text and str(hub_demo["site1"]) not in text


def test_run_task__failed_command_gives_its_error(
        sites: dict, identities: dict, tmp_path: Path) -> None:
    task = _task("anonymize", {"quasi_identifiers": ["age", "postcode"], "k": 5},
                 "oncology_cases")
    with pytest.raises(TaskFailed, match=r"exit status 2.*postcode") as e:
        run_task(task, sites["site1"], tmp_path, identity=identities["site1"],
                 progress=_never_cancel)
    assert len(str(e.value)) < 1300


def _start_relay(roster: Path, relay: Any) -> tuple[int, threading.Thread]:
    ready: list[int] = []
    event = threading.Event()

    def main() -> None:
        run_relay(roster, key=relay.key, cert=relay.cert, host="127.0.0.1", port=0, once=True,
                  ready=lambda p: (ready.append(p), event.set()))

    t = threading.Thread(target=main, daemon=True)
    t.start()
    assert event.wait(20) and ready
    return ready[0], t


def _neglog10(p: str) -> float:
    return math.inf if float(p) == 0 else -math.log10(float(p))


def test_run_task__gwas_secure_three_sites_match_gwas_secure(
        sites: dict, identities: dict, hub_demo: dict, tmp_path: Path) -> None:
    relay = create_identity("relay", tmp_path / "relay")
    roster = write_roster(tmp_path / "roster.json",
                          [identities[s].cert for s in DEMO_SITES], relay.cert, session="hub-t")
    port, relay_thread = _start_relay(roster, relay)
    params = {"test": "linear", "pheno_name": "quant", "covar_name": ["sex", "age"]}
    results: dict[str, list[Release]] = {}
    errors: dict[str, BaseException] = {}

    def site_main(rank: int, site: str) -> None:
        task = _task("gwas_secure", params, "genomic_access_gwas", rank=rank, world_size=3,
                     coordination={"relay": f"127.0.0.1:{port}",
                                   "roster": roster.read_text()})
        try:
            results[site] = run_task(task, sites[site], tmp_path / f"work-{site}",
                                     identity=identities[site], progress=lambda f, m: False)
        except BaseException as e:  # reported below
            errors[site] = e

    threads = [threading.Thread(target=site_main, args=(r, s)) for r, s in enumerate(DEMO_SITES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    relay_thread.join(10)
    assert not errors, errors
    assert results["site2"] == [] and results["site3"] == []
    kinds = {r.kind for r in results["site1"]}
    assert {"gwas_summary_statistics", "gwas_ssf", "gwas_summary", "plot"} <= kinds
    names = [r.name for r in results["site1"]]
    assert len(set(names)) == len(names) and all("/" not in n for n in names)
    text = json.dumps([r.passport for r in results["site1"]])
    assert str(tmp_path) not in text and str(hub_demo["site1"]) not in text

    # the reference: every site's process on this host, pooled pheno/covar tables
    ref = tmp_path / "ref"
    ref.mkdir()
    for table in ("pheno.tsv", "covar.tsv"):
        parts = [(hub_demo[s] / "genomics" / table).read_text().splitlines() for s in DEMO_SITES]
        (ref / table).write_text("\n".join([parts[0][0]] + [ln for p in parts for ln in p[1:]])
                                 + "\n")
    args = [arg for s in DEMO_SITES
            for arg in ("--site", f"{s}={hub_demo[s] / 'genomics' / f'{s}.vcf.gz'}")]
    subprocess.run([sys.executable, "-m", "secured_bio", "gwas", "secure", *args,
                    "--pheno", str(ref / "pheno.tsv"), "--covar", str(ref / "covar.tsv"),
                    "--pheno-name", "quant", "--covar-name", "sex,age", "--test", "linear",
                    "--out", str(ref / "gwas")], check=True, capture_output=True, timeout=120)
    (ours,) = [r.path for r in results["site1"] if r.kind == "gwas_summary_statistics"]
    with ours.open() as a, (ref / "gwas.linear.tsv").open() as b:
        got = list(csv.DictReader(a, delimiter="\t"))
        want = list(csv.DictReader(b, delimiter="\t"))
    assert len(got) == len(want) == 600
    assert [r["ID"] for r in got] == [r["ID"] for r in want]
    diffs = [abs(_neglog10(x["P"]) - _neglog10(y["P"])) for x, y in zip(got, want, strict=True)
             if x["P"] != "NA" and y["P"] != "NA"]
    assert len(diffs) > 500 and max(diffs) <= 1e-9


def test_run_task__cancel_stops_the_command(sites: dict, identities: dict,
                                            tmp_path: Path) -> None:
    relay = create_identity("relay", tmp_path / "relay")
    roster = write_roster(tmp_path / "roster.json",
                          [identities[s].cert for s in DEMO_SITES], relay.cert, session="c")
    # no relay listens: the party waits for it until the hub cancels
    task = _task("gwas_secure", {"test": "linear"}, "genomic_access_gwas", rank=1,
                 coordination={"relay": "127.0.0.1:9", "roster": roster.read_text()})
    start = time.monotonic()
    with pytest.raises(TaskCancelled, match="cancelled by the hub"):
        run_task(task, sites["site2"], tmp_path / "w", identity=identities["site2"],
                 progress=lambda f, m: True)
    assert time.monotonic() - start < 30


def test_run_task__education_cases_releases_an_archive(
        sites: dict, identities: dict, hub_demo: dict, tmp_path: Path) -> None:
    import zipfile

    task = _task("education_cases",
                 {"cases": [{"title": "Septic child", "count": 2,
                             "where": {"sepsis": "yes", "age": "5..10"}}],
                  "target": "sepsis", "seed": 1}, "oncology_cases")
    releases = run_task(task, sites["site1"], tmp_path, identity=identities["site1"],
                        progress=_never_cancel)
    assert [r.kind for r in releases] == ["teaching_cases", "teaching_cases_summary"]
    with zipfile.ZipFile(releases[0].path) as zf:
        names = zf.namelist()
        text = b"".join(zf.read(n) for n in names if n.endswith((".csv", ".json")))
    assert "index.html" in names and "cases.csv" in names
    assert not [i for i in hub_demo["ids"].read_text().split() if i.encode() in text]
