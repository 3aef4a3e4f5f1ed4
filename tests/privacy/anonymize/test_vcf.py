"""VCF de-identification (pseudonyms, header lines, rare variants) and the Homer membership test.

Cross-checks: pseudonyms against a direct ``hmac`` computation; samples, records, genotypes
and allele-count filtering against bcftools 1.16 (``reference`` marker); AUC against
scikit-learn.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import os
import subprocess
from pathlib import Path

import click
import numpy as np
import pysam
import pytest
from click.testing import CliRunner
from conftest import real_vcf_dir, require_tools

from secured_bio.errors import ConfigError, FormatError, InputError, InputFileNotFoundError
from secured_bio.privacy.anonymize import vcf as vcf_mod
from secured_bio.privacy.anonymize.files_cli import vcf as vcf_cmd
from secured_bio.privacy.anonymize.vcf import (
    deidentify_vcf,
    homer_membership,
    membership_power,
    pseudonymize_id,
    read_key_file,
)
from secured_bio.testing import simulate_genotypes

KEY = bytes(range(32))
IDENTIFYING = (
    "##SAMPLE=<ID=site1_0001,Sex=F>\n",
    "##PEDIGREE=<Child=site1_0001,Mother=site1_0002>\n",
    "##fileDate=20240131\n",
    "##commandline=\"caller --in /home/jsmith/patient.bam\"\n",
    "##bcftools_viewCommand=view -Oz -o /data/ward7/x.vcf.gz; Date=Wed Jan 31 2024\n",
    "##GATKCommandLine=<ID=HaplotypeCaller,CommandLine=\"--input /mnt/x.bam\">\n",
    "##source=/opt/pipelines/hospital_x/run.sh\n",
    "##reference=file:///refs/hg38.fa\n",
)
KEPT = ("##source=msprime-simulation 1.3\n",
        "##INFO=<ID=DP,Number=1,Type=Integer,Description=\"Depth A/B\">\n")


def _bcftools(*args: str) -> str:
    return subprocess.run(["bcftools", *args], check=True, capture_output=True,
                          text=True).stdout


def _lines(path: Path) -> list[str]:
    with gzip.open(path, "rt") as fh:
        return fh.readlines()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    c = simulate_genotypes(out, n_sites=1, samples_per_site=40, n_variants=300, seed=7)
    return c.vcf_paths[0]


@pytest.fixture()
def noisy_vcf(cohort: Path, tmp_path: Path) -> Path:
    """The simulated VCF (plain text) with identifying header lines added."""
    lines = _lines(cohort)
    at = 1
    path = tmp_path / "noisy.vcf"
    path.write_text("".join(lines[:at] + list(IDENTIFYING) + list(KEPT) + lines[at:]),
                    encoding="utf-8")
    return path


@pytest.fixture()
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "site.key"
    path.write_bytes(os.urandom(32))
    return path


def test_pseudonymize_id__equals_direct_hmac_sha256() -> None:
    for sid in ("site1_0001", "HG00403", "Émile"):
        direct = hmac.new(KEY, sid.encode("utf-8"), hashlib.sha256).hexdigest()[:16]
        assert pseudonymize_id(sid, KEY) == "sb-" + direct
    assert pseudonymize_id("a", KEY) != pseudonymize_id("a", bytes(32))


@pytest.mark.reference
def test_deidentify_vcf__bcftools_sees_pseudonyms_and_same_genotypes(
        cohort: Path, tmp_path: Path) -> None:
    require_tools("bcftools", "tabix")
    out = tmp_path / "out.vcf.gz"
    report = deidentify_vcf(cohort, out, key=KEY)
    ids = _bcftools("query", "-l", str(cohort)).split()
    assert _bcftools("query", "-l", str(out)).split() == [pseudonymize_id(i, KEY) for i in ids]
    fmt = "%CHROM\t%POS\t%REF\t%ALT\t%ID[\t%GT]\n"
    assert _bcftools("query", "-f", fmt, str(out)) == _bcftools("query", "-f", fmt, str(cohort))
    n = int(_bcftools("view", "-H", str(cohort)).count("\n"))
    assert report.variants_in == report.variants_out == n and report.samples == len(ids)
    # The tabix index works: a region query through it returns the same records.
    assert Path(report.index_path).is_file()
    region = "1:1-2000000"
    assert (_bcftools("view", "-H", "-r", region, str(out)).count("\n")
            == _bcftools("view", "-H", "-r", region, str(cohort)).count("\n"))


def test_deidentify_vcf__same_key_same_pseudonyms_other_key_others(
        cohort: Path, tmp_path: Path) -> None:
    def samples(path: Path) -> list[str]:
        return list(pysam.VariantFile(str(path)).header.samples)

    deidentify_vcf(cohort, tmp_path / "a.vcf.gz", key=KEY)
    deidentify_vcf(cohort, tmp_path / "b.vcf.gz", key=KEY)
    deidentify_vcf(cohort, tmp_path / "c.vcf.gz", key=bytes(reversed(KEY)))
    a, b, c = (samples(tmp_path / f"{x}.vcf.gz") for x in "abc")
    assert a == b and not set(a) & set(c)
    assert not set(a) & set(samples(cohort))


def test_deidentify_vcf__identifying_header_lines_removed_and_counted(
        noisy_vcf: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.vcf.gz"
    report = deidentify_vcf(noisy_vcf, out, key=KEY)
    header = [x for x in _lines(out) if x.startswith("##")]
    for line in IDENTIFYING:
        assert line not in header
    for line in KEPT:
        assert line in header
    before = [x for x in noisy_vcf.read_text(encoding="utf-8").splitlines(keepends=True)
              if x.startswith("##")]
    assert [x for x in header if not x.startswith("##secured_bio_deidentify")] == [
        x for x in before if x not in IDENTIFYING]
    assert report.header_lines_removed == {
        "SAMPLE": 1, "PEDIGREE": 1, "fileDate": 1, "commandline": 1,
        "bcftools_viewCommand": 1, "GATKCommandLine": 1, "source": 1, "reference": 1}
    # Neither the report nor the output holds IDs or paths from the removed lines.
    text = json.dumps(report.to_dict()) + report.summary() + "".join(_lines(out))
    assert "site1_0001" not in text and "/home/jsmith" not in text and "ward7" not in text


@pytest.mark.reference
@pytest.mark.parametrize("min_ac", [1, 3, 10])
def test_deidentify_vcf__min_ac_matches_bcftools_min_ac(
        cohort: Path, tmp_path: Path, min_ac: int) -> None:
    require_tools("bcftools")
    out = tmp_path / "o.vcf.gz"
    report = deidentify_vcf(cohort, out, key=KEY, min_ac=min_ac)
    fmt = "%CHROM\t%POS\t%REF\t%ALT[\t%GT]\n"
    expected = _bcftools("view", "-c", f"{min_ac}:nref", str(cohort))
    exp_path = tmp_path / "exp.vcf"
    exp_path.write_text(expected, encoding="utf-8")
    assert _bcftools("query", "-f", fmt, str(out)) == _bcftools("query", "-f", fmt,
                                                                 str(exp_path))
    n_in = _bcftools("view", "-H", str(cohort)).count("\n")
    n_out = _bcftools("view", "-H", str(out)).count("\n")
    assert report.variants_out == n_out and report.variants_suppressed == n_in - n_out
    if min_ac > 1:
        assert report.variants_suppressed > 0


@pytest.mark.reference
def test_deidentify_vcf__real_1000_genomes_file(tmp_path: Path) -> None:
    require_tools("bcftools")
    src = real_vcf_dir() / "target.vcf.gz"
    out = tmp_path / "target.deid.vcf.gz"
    report = deidentify_vcf(src, out, key=KEY, min_ac=2)
    ids = _bcftools("query", "-l", str(src)).split()
    assert _bcftools("query", "-l", str(out)).split() == [pseudonymize_id(i, KEY) for i in ids]
    assert report.header_lines_removed == {"fileDate": 1}
    fmt = "%CHROM\t%POS\t%REF\t%ALT[\t%GT]\n"
    # This file's INFO/AC and AN count all 2,504 people of 1000 Genomes; bcftools -c would
    # use them, we count the genotypes in the file: drop them so bcftools counts genotypes.
    # (bcftools annotate -x refuses: AC and AN lack ##INFO lines in this file.)
    stripped = tmp_path / "noac.vcf"
    stripped.write_text("".join(
        line if line.startswith("#") else "\t".join(
            f if i != 7 else "." for i, f in enumerate(line.split("\t")))
        for line in _lines(src)), encoding="utf-8")
    expected = _bcftools("view", "-c", "2:nref", str(stripped))
    (tmp_path / "e.vcf").write_text(expected, encoding="utf-8")
    assert _bcftools("query", "-f", fmt, str(out)) == _bcftools("query", "-f", fmt,
                                                                 str(tmp_path / "e.vcf"))
    assert report.variants_in == _bcftools("view", "-H", str(src)).count("\n")


# ----------------------------------------------------------------------------- bad input


def test_read_key_file__missing_or_short_raises(tmp_path: Path) -> None:
    with pytest.raises(InputFileNotFoundError, match="key file not found"):
        read_key_file(tmp_path / "none.key")
    (tmp_path / "short.key").write_bytes(b"x" * 31)
    with pytest.raises(ConfigError, match="key too short"):
        read_key_file(tmp_path / "short.key")
    with pytest.raises(ConfigError, match="key too short"):
        pseudonymize_id("a", b"short")


def _assert_nothing_written(folder: Path, before: set[str]) -> None:
    assert {p.name for p in folder.iterdir()} == before


def test_deidentify_vcf__bad_options_raise(cohort: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="key too short"):
        deidentify_vcf(cohort, tmp_path / "o.vcf.gz", key=b"0" * 16)
    with pytest.raises(ConfigError, match="min_ac must be a positive integer"):
        deidentify_vcf(cohort, tmp_path / "o.vcf.gz", key=KEY, min_ac=0)
    with pytest.raises(InputFileNotFoundError, match="input VCF not found"):
        deidentify_vcf(tmp_path / "none.vcf", tmp_path / "o.vcf.gz", key=KEY)
    with pytest.raises(ConfigError, match="output must be a bgzipped VCF"):
        deidentify_vcf(cohort, tmp_path / "o.vcf", key=KEY)
    with pytest.raises(ConfigError, match="overwrite the input"):
        deidentify_vcf(cohort, cohort, key=KEY)
    _assert_nothing_written(tmp_path, set())


def test_deidentify_vcf__existing_output_not_ours_is_refused(cohort: Path,
                                                              tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.vcf.gz"
    foreign.write_bytes(cohort.read_bytes())
    with pytest.raises(ConfigError, match="not an earlier secured_bio output"):
        deidentify_vcf(cohort, foreign, key=KEY)
    assert foreign.read_bytes() == cohort.read_bytes()
    ours = tmp_path / "ours.vcf.gz"
    deidentify_vcf(cohort, ours, key=KEY)
    deidentify_vcf(cohort, ours, key=KEY, min_ac=3)  # our own output may be replaced
    assert _lines(ours)[-1]


@pytest.mark.parametrize(("content", "match"), [
    ("chrom\tpos\n1\t2\n", "not a VCF"),
    ("##fileformat=VCFv4.2\n1\t10\t.\tA\tG\t.\t.\t.\n", "no #CHROM header line before"),
    ("##fileformat=VCFv4.2\n", "no #CHROM header line"),
    ("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ta\tb\n"
     "1\t10\t.\tA\tG\t.\t.\t.\tGT\t0/1\n", "ragged VCF record"),
    ("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ta\ta\n",
     "duplicate sample IDs"),
    ("##fileformat=VCFv4.2\n##contig=<ID=1>\n"
     "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ta\n"
     "1\t20\t.\tA\tG\t.\t.\t.\tGT\t0/1\n1\t10\t.\tA\tG\t.\t.\t.\tGT\t0/1\n",
     "records not sorted"),
])
def test_deidentify_vcf__malformed_input_raises_and_writes_nothing(
        tmp_path: Path, content: str, match: str) -> None:
    src = tmp_path / "in" / "bad.vcf"
    src.parent.mkdir()
    src.write_text(content, encoding="utf-8")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(FormatError, match=match):
        deidentify_vcf(src, out_dir / "o.vcf.gz", key=KEY)
    _assert_nothing_written(out_dir, set())


def test_deidentify_vcf__min_ac_without_gt_raises(tmp_path: Path) -> None:
    src = tmp_path / "dp.vcf"
    src.write_text("##fileformat=VCFv4.2\n##contig=<ID=1>\n"
                   "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ta\n"
                   "1\t10\t.\tA\tG\t.\t.\t.\tDP\t7\n", encoding="utf-8")
    with pytest.raises(FormatError, match="no GT field"):
        deidentify_vcf(src, tmp_path / "o.vcf.gz", key=KEY, min_ac=2)
    assert deidentify_vcf(src, tmp_path / "o.vcf.gz", key=KEY).variants_out == 1


@pytest.mark.reference
def test_deidentify_vcf__bcf_or_binary_input_raises(cohort: Path, tmp_path: Path) -> None:
    require_tools("bcftools")
    bcf = tmp_path / "x.bcf"
    _bcftools("view", "-Ob", "-o", str(bcf), str(cohort))
    with pytest.raises(FormatError, match="not a text VCF"):
        deidentify_vcf(bcf, tmp_path / "o.vcf.gz", key=KEY)
    assert not (tmp_path / "o.vcf.gz").exists()


def test_deidentify_vcf__pseudonym_collision_raises(cohort: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vcf_mod, "pseudonymize_id", lambda sid, key: "sb-0")
    with pytest.raises(InputError, match="pseudonym collision"):
        deidentify_vcf(cohort, tmp_path / "o.vcf.gz", key=KEY)
    assert not (tmp_path / "o.vcf.gz").exists()


# ----------------------------------------------------------------------------- CLI


def _group() -> click.Group:
    group = click.Group("anonymize")
    group.add_command(vcf_cmd, "vcf")
    return group


def test_cli_vcf__writes_output_and_report(cohort: Path, tmp_path: Path,
                                           key_file: Path) -> None:
    out = tmp_path / "rel" / "site1.vcf.gz"
    res = CliRunner().invoke(_group(), ["vcf", str(cohort), str(out), "--key-file",
                                        str(key_file), "--min-ac", "3", "--report",
                                        str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert "40 samples pseudonymized" in res.output
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    key = key_file.read_bytes()
    samples = list(pysam.VariantFile(str(out)).header.samples)
    ids = list(pysam.VariantFile(str(cohort)).header.samples)
    assert samples == [pseudonymize_id(i, key) for i in ids]
    assert report["min_ac"] == 3 and report["variants_out"] + report[
        "variants_suppressed"] == report["variants_in"]


def test_cli_vcf__missing_key_file_is_an_error(cohort: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(_group(), ["vcf", str(cohort), str(tmp_path / "o.vcf.gz"),
                                        "--key-file", str(tmp_path / "none.key")])
    assert res.exit_code != 0 and isinstance(res.exception, InputFileNotFoundError)
    assert not (tmp_path / "o.vcf.gz").exists()
    res = CliRunner().invoke(_group(), ["vcf", str(cohort), str(tmp_path / "o.vcf.gz"),
                                        "--key-file", str(tmp_path / "x"), "--min-ac", "0"])
    assert res.exit_code == 2 and "--min-ac" in res.output


# ----------------------------------------------------------------------------- membership


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """500 msprime-simulated people x 2000 SNPs, split into reference / non-members / pool."""
    out = tmp_path_factory.mktemp("homer")
    c = simulate_genotypes(out, n_sites=1, samples_per_site=500, n_variants=2000, seed=11,
                           missing_rate=0.0)
    with pysam.VariantFile(str(c.vcf_paths[0])) as vf:
        dosage = np.array([[sum(s["GT"]) for s in rec.samples.values()] for rec in vf],
                          dtype=float).T
    order = np.random.default_rng(0).permutation(dosage.shape[0])
    return {"reference": dosage[order[:150]].mean(axis=0) / 2.0,
            "nonmembers": dosage[order[150:250]], "pool": dosage[order[250:]]}


def test_homer_membership__matches_formula_per_snp() -> None:
    rng = np.random.default_rng(1)
    g = rng.integers(0, 3, size=(5, 40)).astype(float)
    g[0, 3] = np.nan
    m, pop = rng.uniform(size=40), rng.uniform(size=40)
    expected = [sum(abs(y / 2 - p) - abs(y / 2 - q) for y, p, q in zip(row, pop, m, strict=True)
                    if not np.isnan(y)) for row in g]
    np.testing.assert_allclose(homer_membership(g, m, pop), expected)


def test_membership_power__high_for_many_snps_and_small_pool(population: dict) -> None:
    r = membership_power(population["pool"][:20], population["nonmembers"],
                         population["reference"], fpr=0.05)
    assert r.n_snps == 2000 and r.power >= 0.8 and r.auc >= 0.9
    assert r.fpr_observed <= 0.05


def test_membership_power__near_fpr_for_few_snps_and_large_pool(population: dict) -> None:
    cols = np.arange(0, 2000, 100)  # 20 SNPs
    r = membership_power(population["pool"][:, cols], population["nonmembers"][:, cols],
                         population["reference"][cols], fpr=0.05)
    assert r.n_members == 250 and r.power <= 0.05 + 0.1 and abs(r.auc - 0.5) < 0.1


def test_membership_power__fewer_snps_reduce_power(population: dict) -> None:
    pool, non, ref = population["pool"][:20], population["nonmembers"], population["reference"]
    full = membership_power(pool, non, ref)
    cols = np.arange(0, 2000, 20)  # release 100 SNPs instead of 2000
    fewer = membership_power(pool[:, cols], non[:, cols], ref[cols])
    assert fewer.power < full.power - 0.3 and fewer.auc < full.auc


def test_membership_power__rare_variant_suppression_reduces_power(population: dict) -> None:
    pool, non, ref = population["pool"][:50], population["nonmembers"], population["reference"]
    full = membership_power(pool, non, ref)
    suppressed = membership_power(pool, non, ref, min_ac=10)
    rare = np.nansum(pool, axis=0) < 10
    assert suppressed.n_snps == full.n_snps - int(rare.sum()) < full.n_snps
    assert suppressed.power < full.power and suppressed.auc < full.auc


def test_membership_power__auc_equals_sklearn(population: dict) -> None:
    from sklearn.metrics import roc_auc_score

    pool, non, ref = population["pool"][:50], population["nonmembers"], population["reference"]
    r = membership_power(pool, non, ref)
    freqs = pool.mean(axis=0) / 2.0
    scores = np.concatenate([homer_membership(pool, freqs, ref), homer_membership(non, freqs,
                                                                                  ref)])
    labels = np.r_[np.ones(len(pool)), np.zeros(len(non))]
    assert r.auc == pytest.approx(roc_auc_score(labels, scores))
    assert r.power == pytest.approx(np.mean(scores[:50] > np.quantile(scores[50:], 0.95,
                                                                       method="higher")))


def test_membership_power__bad_input_raises() -> None:
    g = np.zeros((3, 4))
    with pytest.raises(InputError, match="genotypes must be ALT dosages"):
        homer_membership(np.full((2, 4), 3.0), np.zeros(4), np.zeros(4))
    with pytest.raises(InputError, match="must be a \\(people, snps\\) matrix"):
        homer_membership(np.zeros((2, 2, 2)), np.zeros(2), np.zeros(2))
    with pytest.raises(InputError, match="one value in \\[0, 1\\] per SNP"):
        homer_membership(g, np.zeros(3), np.zeros(4))
    with pytest.raises(InputError, match="different SNPs"):
        membership_power(g, np.zeros((3, 5)), np.zeros(4))
    with pytest.raises(InputError, match="no SNP left"):
        membership_power(g, g, np.zeros(4), min_ac=1)
    with pytest.raises(ConfigError, match="fpr must be in"):
        membership_power(g, g, np.zeros(4), fpr=0.0)
    with pytest.raises(ConfigError, match="min_ac must be a positive integer"):
        membership_power(g, g, np.zeros(4), min_ac=0)
