"""The `secured-bio` command: help, exit codes, clear errors, no partial outputs."""

import json

import click
import pytest
from conftest import run_cli

from secured_bio.cli import cli, main
from secured_bio.pilots import get_pilot


def _all_commands(group: click.Group, prefix=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        yield (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from _all_commands(cmd, (*prefix, name))


@pytest.mark.parametrize("path", [(), *_all_commands(cli)], ids=lambda p: " ".join(p) or "root")
def test_help__every_command_explains_itself(path, capsys):
    assert main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage: secured-bio" in out
    cmd = cli
    for name in path:
        cmd = cmd.get_command(click.Context(cmd), name)
    assert cmd.help and len(cmd.help.split()) >= 5, "every command needs a real description"


def test_version(capsys):
    assert main(["--version"]) == 0
    assert "secured-bio, version" in capsys.readouterr().out


def test_usage_errors__exit_2(capsys):
    assert main(["no-such-command"]) == 2
    assert main(["pilots", "run", "genomic_access"]) == 2  # --out missing
    err = capsys.readouterr().err
    assert "Missing option '--out'" in err


def test_unknown_pilot__exit_2_with_suggestion(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["pilots", "run", "genomic_acces", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown pilot 'genomic_acces'" in err and "did you mean 'genomic_access'" in err
    assert not out.exists()


def test_missing_config_file__exit_1_names_path(tmp_path, capsys):
    cfg = tmp_path / "missing.yaml"
    code = main(["pilots", "run", "telemonitoring", "--out", str(tmp_path / "o"), "--config",
                 str(cfg)])
    assert code == 1
    assert f"config file not found [{cfg}]" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_bad_config_value__exit_2_names_key(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("demo:\n  patients_per_sit: 3\n")
    assert main(["pilots", "run", "telemonitoring", "--out", str(tmp_path / "o"), "--config",
                 str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'patients_per_sit'" in err
    assert "did you mean 'patients_per_site'" in err


def test_validate__missing_file_exit_1(tmp_path, capsys):
    assert main(["validate", "vcf", str(tmp_path / "nope.vcf.gz")]) == 1
    err = capsys.readouterr().err
    assert "nope.vcf.gz" in err and "error:" in err


def test_validate__unknown_kind_suggests(tmp_path, capsys):
    f = tmp_path / "x.csv"
    f.write_text("a\n1\n")
    assert main(["validate", "vital", str(f)]) == 2
    assert "did you mean 'vitals'" in capsys.readouterr().err


def test_pilots_list__shows_four_pilots(cli_env):
    res = run_cli("pilots", "list", env=cli_env)
    assert res.returncode == 0, res.stderr
    for name in ("genomic_access", "tumor_classification", "telemonitoring",
                 "synthetic_education"):
        assert name in res.stdout
    assert "demo-data-only" in res.stdout


def test_internal_error__does_not_echo_message(monkeypatch, capsys):
    import secured_bio.pilots as pilots_mod

    def boom():
        raise RuntimeError("SECRET-VALUE-42")

    monkeypatch.setattr(pilots_mod, "list_pilots", boom)
    assert main(["pilots", "list"]) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError" in err and "SECRET-VALUE-42" not in err


def test_summarize__no_results_is_clear(tmp_path, capsys):
    assert main(["summarize", str(tmp_path)]) == 1
    assert "no pilot results found" in capsys.readouterr().err


TINY = {
    "genomic_access": {"samples_per_site": 20, "n_variants": 60, "n_causal": 2},
    "tumor_classification": {"subjects_per_site": 6, "n_timepoints": 20},
    "telemonitoring": {"patients_per_site": 8, "hours": 48},
    "synthetic_education": {"n_rows": 60},
}
# Pilot options that keep the end-to-end runs small (the in-process Flower engine runs the
# same apps as the simulation and deployment engines, whose own tests are in tests/privacy).
EXTRA = {
    "tumor_classification": {"engine": "inprocess", "rounds": 1, "local_epochs": 2,
                             "encrypted_inference": 1},
    "telemonitoring": {"engine": "inprocess", "rounds": 1, "local_epochs": 1,
                       "dp_epsilon": 5.0, "stream_observations": 500},
    "synthetic_education": {"image_epochs": 2},
}


@pytest.mark.parametrize("pilot", sorted(TINY))
def test_pilots_run__builtin_pilot_end_to_end(pilot, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    # The secure GWAS refuses two sites (each would learn the other's sums): three there.
    n_sites = 3 if pilot == "genomic_access" else 2
    cfg.write_text(json.dumps({"sites": n_sites, "seed": 3, "demo": TINY[pilot],
                               **EXTRA.get(pilot, {})}))
    out = tmp_path / "run"
    assert main(["pilots", "run", pilot, "--out", str(out), "--config", str(cfg)]) == 0, (
        capsys.readouterr().err
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["pilot"] == pilot and metrics["status"] == get_pilot(pilot).status
    assert metrics["config"]["sites"] == n_sites and metrics["data"]["source"] == "simulated"
    assert metrics["validation"]["all_ok"] is True and metrics["validation"]["files"] >= 1
    reports = json.loads((out / "validation.json").read_text())
    assert len(reports) == metrics["validation"]["files"]
    assert not list(tmp_path.glob(".*tmp"))

    # a second run into the same folder replaces it (it holds an earlier metrics.json)
    assert main(["pilots", "run", pilot, "--out", str(out), "--config", str(cfg)]) == 0
    # and running on the cohort just made (--data) validates the same files
    out2 = tmp_path / "run2"
    extra = [a for k, v in EXTRA.get(pilot, {}).items() for a in ("--set", f"{k}={v}")]
    assert main(["pilots", "run", pilot, "--out", str(out2), "--data", str(out / "demo"),
                 *extra]) == 0
    m2 = json.loads((out2 / "metrics.json").read_text())
    assert m2["data"]["source"] == "given" and m2["inputs"] == metrics["inputs"]
    if pilot == "genomic_access":  # per-site QC and the secure GWAS ran on the cohort
        assert set(metrics["qc"]) == {"site1", "site2", "site3"}
        assert metrics["gwas"]["n_variants_tested"] > 0
        assert metrics["gwas"]["planted_causal"]["n"] == 2
        assert metrics["gwas"]["protocol"]["sites"] == ["site1", "site2", "site3"]
        assert (out / "gwas" / "cohort.linear.manhattan.png").stat().st_size > 1000
        assert m2["gwas"]["lambda_gc"] == metrics["gwas"]["lambda_gc"]
    if pilot == "tumor_classification":  # features per site, FL, audit, encrypted inference
        assert metrics["centralized"]["n"] == metrics["federated"]["n"] > 0
        assert [s["site"] for s in metrics["per_site"]] == ["site1", "site2"]
        assert set(metrics["fairness"]["attributes"]) == {"site", "sex", "age_band"}
        enc = metrics["encrypted_inference"]
        assert enc["n_scans"] == 1 and enc["max_abs_diff_probability"] < 1e-2
        assert (out / "sites" / "site2" / "connectivity_features.tsv").is_file()
    if pilot == "telemonitoring":  # FHIR ingest, PEWS vs model, federated + DP audit, stream
        assert metrics["ingest"]["site1"]["kept"] > 0
        for key in ("pews", "model", "federated", "nodp"):
            assert 0.0 <= metrics[key].get("auroc", metrics[key].get("mia_auc")) <= 1.0
        assert metrics["dp"]["mode"] == "local-dpsgd" and metrics["dp"]["epsilon"] <= 5.0
        assert 0.0 <= metrics["dp"]["mia_auc"] <= 1.0
        assert metrics["stream"]["observations"] == 500 and metrics["stream"]["obs_per_s"] > 0
        assert (out / "report" / "timelines.png").is_file()
        pu = metrics["privacy_utility"]  # members and non-members from the same period
        assert pu["nonmembers"] == "audit" and metrics["nodp"]["mia"]["nonmembers"] == "audit"
        assert (out / pu["plot"]).stat().st_size > 10_000
    if pilot == "synthetic_education":  # teaching cases with vitals chart and image
        assert metrics["cases"]["n"] == 7 and metrics["cases"]["conditions_met_share"] == 1.0
        assert metrics["table"]["exact_copies_share"] <= 0.01
        assert metrics["vitals"]["n_deteriorating"] >= 3  # the septic cases
        assert 0.0 <= metrics["vitals"]["tstr_auroc"] <= 1.0
        assert metrics["images"]["nearest_real_distance_min"] > 0
        case = out / "cases" / "cases" / "case-0001"
        assert {p.name for p in case.iterdir()} == {"case.json", "case.md", "case.html",
                                                    "vitals.png", "image.png"}
        doc = json.loads((case / "case.json").read_text())
        assert doc["image"]["label"] == 1 and doc["summary"]["diagnosis"] == "CNS tumour"
        leukaemia = out / "cases" / "cases" / "case-0004"  # group with image: false
        assert not (leukaemia / "image.png").exists()
        assert "image" not in json.loads((leukaemia / "case.json").read_text())


def test_demo__replaces_own_cohort_whole_and_refuses_foreign_folder(tmp_path, capsys):
    out = tmp_path / "cohort"
    args = ["demo", "telemonitoring", "--out", str(out), "--param", "patients_per_site=1",
            "--param", "hours=2"]
    assert main([*args, "--sites", "3"]) == 0
    assert (out / "site3").is_dir()
    manifest = json.loads((out / "cohort.json").read_text())
    assert manifest["pilot"] == "telemonitoring" and manifest["sites"] == ["site1", "site2",
                                                                         "site3"]
    assert main([*args, "--sites", "2"]) == 0
    assert not (out / "site3").exists(), "a smaller rerun must not leave stale sites"
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    assert main(["demo", "telemonitoring", "--out", str(foreign)]) == 2
    assert "not an earlier secured_bio output" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_demo__bad_param_is_usage_error(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["demo", "genomic_access", "--out", str(out), "--param", "samples=5"]) == 2
    assert "did you mean 'samples_per_site'" in capsys.readouterr().err
    assert not out.exists()
    assert main(["demo", "genomic_access", "--out", str(out), "--param", "oops"]) == 2


def test_outputs__have_normal_permissions(tmp_path):
    import os
    import stat

    out = tmp_path / "c"
    assert main(["demo", "synthetic_education", "--out", str(out), "--sites", "1",
                 "--param", "n_rows=20"]) == 0
    mask = os.umask(0)
    os.umask(mask)
    for p in [out, *out.rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        want = (0o777 if p.is_dir() else 0o666) & ~mask
        assert mode == want, (p.name, oct(mode))


def test_validate__wrong_format_and_schema_violation_exit_1(tmp_path, capsys):
    not_vcf = tmp_path / "x.vcf"
    not_vcf.write_text("this is not a VCF\n")
    assert main(["validate", "vcf", str(not_vcf)]) == 1
    err = capsys.readouterr().err
    assert "x.vcf" in err and "expected" in err
    vitals = tmp_path / "v.csv"
    vitals.write_text("patient_id,time,vital,value,unit\n"
                      "p1,2026-01-01T08:00:00+01:00,heart_rate,120,/min\n"
                      "p1,2026-01-01T09:00:00+01:00,heart_rate,999,/min\n")
    assert main(["validate", "vitals", str(vitals)]) == 1
    err = capsys.readouterr().err
    assert "v.csv" in err and "line 3" in err
    assert "999" not in err.replace(str(tmp_path), "<tmp>")  # tmp folders carry numbers


def test_validate__json_report(tmp_path, capsys):
    assert main(["demo", "synthetic_education", "--out", str(tmp_path / "d"), "--sites", "1",
                 "--param", "n_rows=30"]) == 0
    capsys.readouterr()
    csv = tmp_path / "d" / "site1" / "clinical.csv"
    assert main(["validate", "clinical", str(csv), "--qi", "age,sex,diagnosis_date",
                 "--sensitive", "diagnosis", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "clinical" and report["ok"] is True
    assert report["summary"]["rows"] == 30


def test_pilots_run__corrupt_cohort_fails_without_output(tmp_path, capsys):
    data = tmp_path / "cohort"
    assert main(["demo", "genomic_access", "--out", str(data), "--sites", "2",
                 "--param", "samples_per_site=10", "--param", "n_variants=30"]) == 0
    vcf = data / "site2.vcf.gz"
    vcf.write_bytes(vcf.read_bytes()[: vcf.stat().st_size // 2])  # truncated BGZF
    out = tmp_path / "run"
    assert main(["pilots", "run", "genomic_access", "--data", str(data), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "site2.vcf.gz" in err
    assert not out.exists() and not list(tmp_path.glob(".run.*"))


def test_summarize__per_site_counts_become_a_table(tmp_path, capsys):
    run = tmp_path / "p"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({
        "pilot": "x", "status": "preview",
        "qc": {"site1": {"samples": 3, "variants": 9}, "site2": {"samples": 4, "variants": 9}},
        "protocol": {"reveal_set": {"k": "v"}, "rounds": 2},
    }))
    full = tmp_path / "summary_full.md"
    assert main(["summarize", str(tmp_path), "--full", str(full)]) == 0
    assert "Full detail: each pilot's metrics.json and " in capsys.readouterr().out
    out = full.read_text()
    assert "| site2 | 4 | 9 |" in out and "- protocol.rounds: 2" in out
    assert "protocol.reveal_set: (see the JSON file)" in out


def test_summarize__skips_other_secured_bio_documents(tmp_path, capsys):
    run = tmp_path / "results" / "p" / "run"
    (run / "report").mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(
        {"format": "secured_bio.pilot_metrics", "pilot": "p", "status": "preview"}))
    (run / "report" / "metrics.json").write_text(json.dumps(
        {"format": "secured_bio.telemetry_metrics", "auroc": 0.9}))
    out = tmp_path / "summary.md"
    assert main(["summarize", str(tmp_path / "results"), "--out", str(out)]) == 0
    text = out.read_text()
    assert text.count("## ") == 1 and "## p (preview)" in text
    (run / "report" / "metrics.json").write_text("{}")  # not ours: still an error
    assert main(["summarize", str(tmp_path / "results"), "--out", str(out)]) == 1
    assert "not a pilot metrics file" in capsys.readouterr().err
