"""Every command fails cleanly on damaged input, and one exit-code rule holds for all commands.

* Truncated and corrupt inputs: each command that reads a VCF, NIfTI, FHIR or CSV file is run on
  damaged copies of a good file (cut short, a damaged compressed block, random bytes, empty,
  a folder).  It must exit 1 with one message that names the file: no traceback, no
  "internal error", no "Exception ignored" from pysam.
* Exit codes (README, ``secured-bio --help``): 2 when the command line is wrong (unknown
  option, invalid value, a column named on the command line that the table lacks), 1 when the
  inputs or the run failed (missing file, folder for a file, corrupt data).
"""

from __future__ import annotations

import gc
import gzip
import os
import shutil
from pathlib import Path

import click
import pytest

from secured_bio._logging import configure_logging
from secured_bio.cli import EXIT_FAILED, EXIT_USAGE, cli, main
from secured_bio.testing import simulate_clinical, write_demo_cohort

CORRUPTIONS = ("cut-half", "cut-early", "damaged-block", "random-bytes", "empty", "folder")


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict[str, Path]:
    """One good file of each kind (seeded demo data, small)."""
    root = tmp_path_factory.mktemp("good")
    write_demo_cohort(root / "g", pilot="genomic_access", n_sites=1, seed=0,
                      samples_per_site=20, n_variants=2000, n_causal=2)
    write_demo_cohort(root / "t", pilot="tumor_classification", n_sites=1, seed=0,
                      subjects_per_site=2, n_timepoints=20)
    write_demo_cohort(root / "m", pilot="telemonitoring", n_sites=1, seed=0,
                      patients_per_site=3, hours=12)
    simulate_clinical(root / "clinical.csv", n_rows=60)
    bold = sorted((root / "t").glob("site1/*/func/*_bold.nii.gz"))[0]
    return {
        "vcf": root / "g" / "site1.vcf.gz", "pheno": root / "g" / "pheno.tsv",
        "bold": bold, "atlas": root / "t" / "atlas.nii.gz",
        "fhir": root / "m" / "site1" / "vitals.fhir.json",
        "vitals": root / "m" / "site1" / "vitals.csv",
        "patients": root / "m" / "site1" / "patients.csv",
        "clinical": root / "clinical.csv",
    }


def _damage(src: Path, dst: Path, how: str) -> Path:
    """Write a damaged copy of ``src`` at ``dst`` (same name, so messages can be checked)."""
    data = src.read_bytes()
    if how == "folder":
        dst.mkdir()
        return dst
    if how in ("cut-half", "cut-early"):
        at = len(data) // 2 if how == "cut-half" else max(60, len(data) // 20)
        if data[:2] != b"\x1f\x8b":  # text: cut a few bytes into a line (a row cut short)
            at = data.index(b"\n", at) + 4 if b"\n" in data[at:] else at
        out = data[:at]
    elif how == "damaged-block":
        b = bytearray(data)
        if data[:2] == b"\x1f\x8b":  # scramble deflate data right after the gzip header
            b[40:80] = bytes((x ^ 0x5A) for x in b[40:80])
        else:  # a text file: bytes that are not UTF-8 in its middle
            b[len(b) // 2:len(b) // 2 + 8] = b"\xff\xfe\x00\x81\xc3\x28\xa0\xa1"
        out = bytes(b)
    elif how == "random-bytes":
        out = os.urandom(3000)
    elif how == "empty":
        out = b""
    else:  # pragma: no cover
        raise AssertionError(how)
    dst.write_bytes(out)
    return dst


# (id, kind of the damaged file, command with {bad}, {good:<kind>} and {out} placeholders)
COMMANDS = [
    ("genomics ingest", "vcf", "genomics ingest --vcf {bad} --out {out}/o.zarr"),
    ("genomics qc", "vcf", "genomics qc --vcf {bad} --out {out}/qc"),
    ("gwas run --vcf", "vcf", "gwas run --vcf {bad} --pheno {good:pheno} --test linear "
     "--out {out}/gw"),
    ("anonymize vcf", "vcf", "anonymize vcf {bad} {out}/a.vcf.gz --key-file {out}/site.key"),
    ("validate vcf", "vcf", "validate vcf {bad}"),
    ("imaging connectivity --bold", "bold", "imaging connectivity --bold {bad} "
     "--atlas {good:atlas} --out {out}/c.tsv"),
    ("imaging connectivity --atlas", "atlas", "imaging connectivity --bold {good:bold} "
     "--atlas {bad} --out {out}/c.tsv"),
    ("anonymize nifti", "bold", "anonymize nifti {bad} {out}/a.nii.gz"),
    ("validate nifti", "bold", "validate nifti {bad}"),
    ("validate nifti --atlas", "atlas", "validate nifti {good:bold} --atlas {bad}"),
    ("telemetry ingest fhir", "fhir", "telemetry ingest --in {bad} --out {out}/v.csv"),
    ("validate fhir", "fhir", "validate fhir {bad}"),
    ("telemetry ingest csv", "vitals", "telemetry ingest --in {bad} --out {out}/v.csv"),
    ("telemetry pews --in", "vitals", "telemetry pews --in {bad} --ages {good:patients} "
     "--out {out}/p.csv"),
    ("telemetry pews --ages", "patients", "telemetry pews --in {good:vitals} --ages {bad} "
     "--out {out}/p.csv"),
    ("validate vitals", "vitals", "validate vitals {bad}"),
    ("anonymize table", "clinical", "anonymize table --in {bad} --qi age,sex --k 2 "
     "--drop patient_id --out {out}/r.csv --report {out}/r.json"),
    ("synth table", "clinical", "synth table --in {bad} --n 5 --out {out}/s.csv "
     "--drop patient_id --no-evaluate"),
    ("assess table --original", "clinical", "assess table --original {bad} "
     "--released {good:clinical} --qi age,sex --report {out}/r.json"),
    ("assess table --released", "clinical", "assess table --original {good:clinical} "
     "--released {bad} --qi age,sex --report {out}/r.json"),
    ("validate clinical", "clinical", "validate clinical {bad}"),
    ("gwas run --pheno", "pheno", "gwas run --vcf {good:vcf} --pheno {bad} --test linear "
     "--out {out}/gw"),
]


def _args(template: str, good: dict[str, Path], bad: Path, out: Path) -> list[str]:
    args = template.replace("{bad}", str(bad)).replace("{out}", str(out))
    for kind, path in good.items():
        args = args.replace("{good:" + kind + "}", str(path))
    return args.split()


@pytest.mark.parametrize("how", CORRUPTIONS)
@pytest.mark.parametrize(("kind", "template"), [c[1:] for c in COMMANDS],
                         ids=[c[0] for c in COMMANDS])
def test_damaged_input__clean_error_naming_the_file(kind, template, how, good, tmp_path,
                                                   capsys):
    src = good[kind]
    (tmp_path / "bad").mkdir()
    bad = _damage(src, tmp_path / "bad" / src.name, how)
    out = tmp_path / "out"
    out.mkdir()
    (out / "site.key").write_bytes(os.urandom(32))
    code = main(_args(template, good, bad, out))
    gc.collect()  # pysam reports a damaged handle when it is collected
    err = capsys.readouterr().err
    flat = " ".join(err.split())
    assert code == EXIT_FAILED, f"exit {code}: {flat}"
    assert "Traceback" not in err and "internal error" not in err, flat
    assert "Exception ignored" not in err, flat
    assert str(bad) in flat, f"the message does not name {bad}: {flat}"


def test_damaged_input__bgzf_cut_inside_the_header_is_not_a_bug(good, tmp_path, capfd):
    """The issue's case: a BGZF VCF cut in its first block (header), read by ingest."""
    bad = tmp_path / "cut.vcf.gz"
    bad.write_bytes(good["vcf"].read_bytes()[:400])
    assert main(["genomics", "ingest", "--vcf", str(bad), "--out", str(tmp_path / "o")]) == 1
    gc.collect()
    err = capfd.readouterr().err
    assert "VCF header could not be read" in err and str(bad) in err
    assert "internal error" not in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_damaged_input__gzip_csv_is_named(good, tmp_path, capsys):
    """A gzipped table cut short, read through pandas (telemetry pews --ages)."""
    bad = tmp_path / "ages.csv.gz"
    bad.write_bytes(gzip.compress(good["patients"].read_bytes())[:30])
    assert main(["telemetry", "pews", "--in", str(good["vitals"]), "--ages", str(bad),
                 "--out", str(tmp_path / "p.csv")]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"ages file is truncated or corrupt [{bad}]" in err


# ------------------------------------------------------------------------------ exit codes
def _leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            yield from _leaf_commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name)


@pytest.mark.parametrize("path", list(_leaf_commands(cli)), ids=" ".join)
def test_exit_code__unknown_option_is_usage_on_every_command(path, capsys):
    assert main([*path, "--no-such-option"]) == EXIT_USAGE
    assert "No such option" in capsys.readouterr().err


#: (id, command, expected exit code).  2: the command line is wrong; 1: the inputs are.
EXIT_CODE_TABLE = [
    # a column named on the command line that the table lacks: usage (2), in every command
    ("anonymize --qi unknown", "anonymize table --in {clinical} --qi age,nosuch --k 2 "
     "--out {out}/r.csv --report {out}/r.json", 2),
    ("anonymize --drop unknown", "anonymize table --in {clinical} --qi age --k 2 "
     "--drop nosuch --out {out}/r.csv --report {out}/r.json", 2),
    ("anonymize --sensitive unknown", "anonymize table --in {clinical} --qi age --k 2 "
     "--sensitive nosuch --out {out}/r.csv --report {out}/r.json", 2),
    ("assess --qi unknown", "assess table --original {clinical} --released {clinical} "
     "--qi age,nosuch --report {out}/r.json", 2),
    ("assess --id unknown", "assess table --original {clinical} --released {clinical} "
     "--qi age --external {clinical} --id nosuch --report {out}/r.json", 2),
    ("synth --drop unknown", "synth table --in {clinical} --n 5 --out {out}/s.csv "
     "--drop nosuch --no-evaluate", 2),
    ("synth --condition unknown", "synth table --in {clinical} --n 5 --out {out}/s.csv "
     "--drop patient_id --drop postcode --condition nosuch=1 --no-evaluate", 2),
    ("validate --qi unknown", "validate clinical {clinical} --qi age,nosuch", 2),
    ("validate --sensitive unknown", "validate clinical {clinical} --sensitive nosuch", 2),
    ("gwas --pheno-name unknown", "gwas run --vcf {vcf} --pheno {pheno} --pheno-name nosuch "
     "--test linear --out {out}/gw", 2),
    # invalid values and combinations: usage (2)
    ("anonymize --k 0", "anonymize table --in {clinical} --qi age --k 0 --out {out}/r.csv "
     "--report {out}/r.json", 2),
    ("validate unknown kind", "validate vfc {vcf}", 2),
    ("pilots run unknown pilot", "pilots run telemonitorin --out {out}/p", 2),
    ("genomics qc no input", "genomics qc --out {out}/qc", 2),
    ("telemetry ingest --on-invalid bad", "telemetry ingest --in {vitals} --out {out}/v.csv "
     "--on-invalid maybe", 2),
    # inputs that are missing or a folder: failure (1), whether click or the reader sees it
    ("anonymize --in missing", "anonymize table --in {out}/none.csv --qi age --k 2 "
     "--out {out}/r.csv --report {out}/r.json", 1),
    ("anonymize --in folder", "anonymize table --in {out} --qi age --k 2 "
     "--out {out}/r.csv --report {out}/r.json", 1),
    ("telemetry ingest --in folder", "telemetry ingest --in {out} --out {out}/v.csv", 1),
    ("telemetry pews --ages folder", "telemetry pews --in {vitals} --ages {out} "
     "--out {out}/p.csv", 1),
    ("gwas --pheno folder", "gwas run --vcf {vcf} --pheno {out} --test linear "
     "--out {out}/gw", 1),
    ("gwas --zarr file", "gwas run --zarr {vcf} --pheno {pheno} --test linear "
     "--out {out}/gw", 1),
    ("genomics ingest --vcf folder", "genomics ingest --vcf {out} --out {out}/o.zarr", 1),
    ("validate missing file", "validate vcf {out}/none.vcf.gz", 1),
    ("anonymize nifti folder", "anonymize nifti {out} {out}/a.nii.gz", 1),
    ("pilots run --config folder", "pilots run telemonitoring --out {out}/p --config {out}",
     1),
    # data that violates its spec: failure (1)
    ("validate vcf given a CSV", "validate vcf {clinical}", 1),
]


@pytest.mark.parametrize(("command", "expected"), [c[1:] for c in EXIT_CODE_TABLE],
                         ids=[c[0] for c in EXIT_CODE_TABLE])
def test_exit_code__one_rule(command, expected, good, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    args = command.replace("{out}", str(out))
    for kind, path in good.items():
        args = args.replace("{" + kind + "}", str(path))
    code = main(args.split())
    err = " ".join(capsys.readouterr().err.split())
    assert code == expected, f"exit {code}, expected {expected}: {err}"
    assert "Traceback" not in err and "internal error" not in err, err
    if "folder" in command.split(" ")[-1] or command.endswith("folder"):
        assert "folder" in err or "directory" in err, err


def test_exit_codes__documented_in_help_and_readme(repo, capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Exit codes (every command)" in out and "the command line is wrong" in out
    readme = (repo / "README.md").read_text()
    assert "one rule for every command" in readme and "the command line is wrong" in readme


def test_input_folder_is_named_a_folder(good, tmp_path, capsys):
    """`anonymize table --in DIR` says it is a folder (as validate does), not "not found"."""
    assert main(["anonymize", "table", "--in", str(tmp_path), "--qi", "age", "--k", "2",
                 "--out", str(tmp_path / "r.csv"), "--report", str(tmp_path / "r.json")]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"input table is a folder, not a file [{tmp_path}]" in err
    assert "not found" not in err


# -------------------------------------------------------------------------------- logging
def test_log_to_a_file__lines_are_not_wrapped(good, tmp_path, capsys):
    deep = tmp_path / ("a_rather_long_folder_name_" * 3) / "and_another_long_sub_folder"
    deep.mkdir(parents=True)
    vitals = shutil.copy(good["vitals"], deep / "vitals_with_a_long_file_name.csv")
    log = tmp_path / "run.log"
    assert main(["-v", "--log-file", str(log), "validate", "vitals", str(vitals)]) == 0
    configure_logging()  # closes the log file
    err = capsys.readouterr().err  # stderr is not a terminal here, as in a workflow's 2> log
    for text in (err, log.read_text()):
        lines = [ln for ln in text.splitlines() if "validating" in ln]
        assert len(lines) == 1 and str(vitals) in lines[0], text


def test_pilots_list__status_in_user_terms(capsys):
    assert main(["pilots", "list"]) == 0
    out = capsys.readouterr().out
    assert "acceptance" not in out and "issue" not in out
    assert "ready: runs end to end" in " ".join(out.split())
