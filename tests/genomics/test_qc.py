"""Genotype QC: equal to plink2 --freq --hardy --missing --het, filters, HWE exact test."""

from __future__ import annotations

import itertools
import math
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import requires_tools
from hypothesis import given, settings
from hypothesis import strategies as st

from secured_bio.cli import main
from secured_bio.errors import ConfigError, FormatError
from secured_bio.genomics import (
    hardy_weinberg_test,
    ingest_vcf,
    open_genotypes,
    qc_filter,
    qc_stats,
    write_qc_reports,
)
from secured_bio.genomics.qc import _fmt
from secured_bio.testing import simulate_genotypes

PLINK2 = "plink2"
needs_plink2 = requires_tools(PLINK2)
PLINK_OPTS = ["--threads", "1", "--memory", "2000"]
REPORTS = (".afreq", ".hardy", ".vmiss", ".smiss", ".het")


def plink2(*args: str) -> None:
    subprocess.run([PLINK2, *args, *PLINK_OPTS], check=True, capture_output=True)


def read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = path.read_text().splitlines()
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


def write_vcf(path: Path, samples: list[str], rows: list[list[str]], chrom: str = "1") -> Path:
    text = ("##fileformat=VCFv4.2\n" f"##contig=<ID={chrom}>\n"
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples) + "\n")
    for v, calls in enumerate(rows):
        text += "\t".join([chrom, str(1000 + v), f"v{v}", "A", "G", ".", ".", ".", "GT", *calls])
        text += "\n"
    path.write_text(text)
    return path


def edge_case_vcf(path: Path, n: int = 120, seed: int = 7) -> Path:
    """Calls plink2 reads the same way: strong HWE departures (tiny P), monomorphic,
    all-missing and nearly-all-missing variants, rare variants, random missingness."""
    rng = np.random.default_rng(seed)
    rows = []
    codes = np.array(["0/0", "0/1", "1/1", "./."])
    # no heterozygotes at p = 0.5 (P ~ 1e-36), all heterozygotes, HWE-ish
    rows.append(["0/0"] * (n // 2) + ["1/1"] * (n - n // 2))
    rows.append(["0/1"] * n)
    rows.append(["0/0"] * n)                      # monomorphic REF
    rows.append(["1/1"] * (n - 1) + ["./."])      # monomorphic ALT with one missing
    rows.append(["./."] * n)                      # all missing
    rows.append(["./."] * (n - 2) + ["0/1", "1/1"])
    rows.append(["0/0"] * (n - 1) + ["0/1"])      # singleton
    for _ in range(60):
        p = rng.uniform(0.02, 0.98)
        f = rng.uniform(-0.3, 0.6)  # inbreeding: departures of both signs
        probs = np.array([(1 - p) ** 2 + f * p * (1 - p), 2 * p * (1 - p) * (1 - f),
                          p ** 2 + f * p * (1 - p)])
        g = rng.choice(3, n, p=np.clip(probs, 0, None) / np.clip(probs, 0, None).sum())
        g = np.where(rng.random(n) < rng.uniform(0, 0.1), 3, g)
        rows.append(codes[g].tolist())
    return write_vcf(path, [f"id{i:03d}" for i in range(n)], rows)


@pytest.fixture(scope="module")
def demo_vcf(tmp_path_factory) -> Path:
    cohort = simulate_genotypes(tmp_path_factory.mktemp("qcdemo"), n_sites=1,
                                samples_per_site=150, n_variants=500, seed=11)
    return cohort.vcf_paths[0]


# ------------------------------------------------------------------ plink2 cross-checks
def _compare_with_plink2(ours: Path, ref: Path) -> None:
    for ext in REPORTS:
        head_o, rows_o = read_table(ours.with_name(ours.name + ext))
        head_r, rows_r = read_table(ref.with_name(ref.name + ext))
        assert head_o == head_r, ext
        assert len(rows_o) == len(rows_r), ext
        for col, name in enumerate(head_r):
            got = [r[col] for r in rows_o]
            want = [r[col] for r in rows_r]
            if name == "P":
                # HWE P: relative 1e-6 on the printed 6 digits (which also match exactly)
                g, w = np.array(got, float), np.array(want, float)
                np.testing.assert_allclose(g, w, rtol=1e-6, atol=0, err_msg=ext)
            assert got == want, f"{ext} column {name} differs"


@needs_plink2
@pytest.mark.reference
@pytest.mark.parametrize("which", ["demo", "edge"])
def test_qc__reports_equal_plink2(tmp_path, demo_vcf, which):
    vcf = demo_vcf if which == "demo" else edge_case_vcf(tmp_path / "edge.vcf")
    plink2("--vcf", str(vcf), "--freq", "--hardy", "--missing", "--het",
           "--out", str(tmp_path / "ref"))
    ingest_vcf(vcf, tmp_path / "s.zarr", chunk_size=64, progress=False)
    with open_genotypes(tmp_path / "s.zarr") as store:
        files = write_qc_reports(qc_stats(store), tmp_path / "ours")
    assert [f.suffix for f in files] == list(REPORTS)
    _compare_with_plink2(tmp_path / "ours", tmp_path / "ref")
    if which == "edge":
        _, rows = read_table(tmp_path / "ours.hardy")
        assert float(rows[0][-1]) < 1e-30  # a tiny P printed in plink2's exponent form


@needs_plink2
@pytest.mark.reference
def test_qc__hwe_midp_equals_plink2(tmp_path):
    vcf = edge_case_vcf(tmp_path / "edge.vcf", n=60, seed=3)
    plink2("--vcf", str(vcf), "--hardy", "midp", "--out", str(tmp_path / "ref"))
    with open_genotypes(vcf) as store:
        p = qc_stats(store, midp=True).variants.hwe_p
    _, rows = read_table(tmp_path / "ref.hardy")
    assert _fmt(p) == [r[-1] for r in rows]


@needs_plink2
@pytest.mark.reference
def test_qc__chrx_haploid_males_count_once_as_in_plink2_with_sex(tmp_path):
    rng = np.random.default_rng(4)
    males, females = [f"m{i}" for i in range(30)], [f"f{i}" for i in range(30)]
    rows = []
    for _ in range(40):
        p = rng.uniform(0.05, 0.95)
        hap = np.where(rng.random(30) < p, "1", "0")
        hap = np.where(rng.random(30) < 0.05, ".", hap)
        dip = np.array(["0/0", "0/1", "1/1", "./."])[
            rng.choice(4, 30, p=[(1 - p) ** 2 * .97, 2 * p * (1 - p) * .97, p * p * .97, .03])]
        rows.append([*hap, *dip])
    vcf = write_vcf(tmp_path / "x.vcf", males + females, rows, chrom="X")
    sex = tmp_path / "sex.txt"
    sex.write_text("#IID\tSEX\n" + "".join(f"{s}\t1\n" for s in males)
                   + "".join(f"{s}\t2\n" for s in females))
    plink2("--vcf", str(vcf), "--update-sex", str(sex), "--freq", "--missing",
           "--out", str(tmp_path / "ref"))
    with open_genotypes(vcf) as store:
        write_qc_reports(qc_stats(store), tmp_path / "ours")
    for ext in (".afreq", ".vmiss", ".smiss"):
        assert (tmp_path / f"ours{ext}").read_text() == (tmp_path / f"ref{ext}").read_text()


@needs_plink2
@pytest.mark.reference
def test_qc_filter__keeps_what_plink2_keeps(tmp_path):
    vcf = edge_case_vcf(tmp_path / "edge.vcf", n=150, seed=5)
    plink2("--vcf", str(vcf), "--mind", "0.06", "--geno", "0.04", "--maf", "0.05",
           "--hwe", "1e-4", "--write-snplist", "--write-samples", "--out", str(tmp_path / "ref"))
    with open_genotypes(vcf) as store:
        res = qc_filter(store, max_sample_missing=0.06, min_call_rate=0.96, min_maf=0.05,
                        hwe_p=1e-4)
        kept_ids = store.variant_id[res.variant_mask].tolist()
        kept_samples = store.sample_ids[res.sample_mask].tolist()
    assert kept_ids == (tmp_path / "ref.snplist").read_text().split()
    ref_samples = [line.split("\t")[-1] for line in
                   (tmp_path / "ref.id").read_text().splitlines()[1:]]
    assert kept_samples == ref_samples
    c = res.counts
    assert c["samples_removed_missing"] > 0, "the test data should exercise --mind"
    assert c["variants_removed_call_rate"] > 0 and c["variants_removed_hwe"] > 0
    assert c["variants_removed_maf"] > 0
    assert c["variants_kept"] == len(kept_ids)
    assert c["variants"] == sum(c[k] for k in ("variants_removed_call_rate",
                                               "variants_removed_hwe", "variants_removed_maf",
                                               "variants_kept"))


# ------------------------------------------------------------------ semantics
def test_qc_stats__counts_by_hand(tmp_path):
    vcf = tmp_path / "h.vcf"
    vcf.write_text(
        "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ta\tb\tc\td\n"
        "1\t1\t.\tA\tG\t.\t.\t.\tGT\t0/0\t0|1\t1/1\t./1\n"
        "X\t2\t.\tA\tG\t.\t.\t.\tGT\t0\t1\t.\t1/1\n")
    with open_genotypes(vcf) as store:
        st_ = qc_stats(store)
    v, s = st_.variants, st_.samples
    assert v.missing_ct.tolist() == [1, 1]  # the half-call ./1 is missing
    assert v.allele_ct.tolist() == [6, 4] and v.alt_ct.tolist() == [3, 3]
    np.testing.assert_allclose(v.alt_freq, [0.5, 0.75])
    assert (v.hom_ref_ct.tolist(), v.het_ct.tolist(), v.hom_alt_ct.tolist()) == (
        [1, 0], [1, 0], [1, 1])
    assert (v.hap_ref_ct.tolist(), v.hap_alt_ct.tolist()) == ([0, 1], [0, 1])
    np.testing.assert_allclose(v.call_rate, [0.75, 0.75])
    assert s.missing_ct.tolist() == [0, 0, 1, 1]
    assert s.diploid_ct.tolist() == [1, 1, 1, 1] and s.het_ct.tolist() == [0, 1, 0, 0]


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_qc_stats__chunk_size_independent(tmp_path, chunk_size):
    vcf = edge_case_vcf(tmp_path / "e.vcf", n=40, seed=2)
    with open_genotypes(vcf) as store:
        a = qc_stats(store)
        b = qc_stats(store, chunk_size=chunk_size)
    for name in ("missing_ct", "allele_ct", "alt_ct", "het_ct"):
        np.testing.assert_array_equal(getattr(a.variants, name), getattr(b.variants, name))
    # P of a count triple may differ in the last bits with the other triples of its batch
    np.testing.assert_allclose(a.variants.hwe_p, b.variants.hwe_p, rtol=1e-12)
    for name in ("missing_ct", "het_ct", "het_hom_ct", "het_obs_ct"):
        np.testing.assert_array_equal(getattr(a.samples, name), getattr(b.samples, name))
    np.testing.assert_allclose(a.samples.exp_hom, b.samples.exp_hom, rtol=1e-12)


def test_qc_stats__sample_subset_equals_a_store_of_those_samples(tmp_path):
    vcf = edge_case_vcf(tmp_path / "e.vcf", n=30, seed=9)
    keep = np.arange(30) % 3 != 0
    with open_genotypes(vcf) as store:
        sub = qc_stats(store, samples=keep)
        gt = np.concatenate([g for _, g in store.iter_genotypes(samples=keep)])
    assert sub.n_samples == 20 and sub.sample_ids.tolist() == [f"id{i:03d}" for i in
                                                               np.flatnonzero(keep)]
    dose = np.where(gt.min(axis=2) < 0, np.nan, gt.sum(axis=2))
    np.testing.assert_array_equal(sub.variants.missing_ct, np.isnan(dose).sum(axis=1))
    np.testing.assert_array_equal(sub.variants.alt_ct, np.nansum(dose, axis=1))


def test_qc_stats__invalid_sample_selection_raises(tmp_path):
    vcf = edge_case_vcf(tmp_path / "e.vcf", n=10, seed=1)
    with open_genotypes(vcf) as store, pytest.raises(ConfigError, match="wrong length"):
        qc_stats(store, samples=np.ones(3, bool))


def test_qc_stats__invalid_codes_in_a_store_raise(tmp_path):
    import zarr

    vcf = edge_case_vcf(tmp_path / "e.vcf", n=10, seed=1)
    ingest_vcf(vcf, tmp_path / "s.zarr", progress=False)
    arr = zarr.open_array(str(tmp_path / "s.zarr" / "call_genotype"), mode="r+")
    arr[3, 2, 0] = 2  # an allele index a biallelic store cannot hold
    with open_genotypes(tmp_path / "s.zarr") as store, \
            pytest.raises(FormatError, match="invalid allele codes.*variant 3"):
        qc_stats(store)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"min_maf": 1.5}, "min_maf must be a number in \\[0, 1\\]"),
    ({"hwe_p": -1e-6}, "hwe_p must be a number"),
    ({"min_call_rate": "0.9"}, "min_call_rate must be a number"),
])
def test_qc_filter__invalid_threshold_raises(tmp_path, kwargs, match):
    vcf = edge_case_vcf(tmp_path / "e.vcf", n=10, seed=1)
    with open_genotypes(vcf) as store, pytest.raises(ConfigError, match=match):
        qc_filter(store, **kwargs)


def test_qc_filter__no_thresholds_keep_everything(tmp_path):
    vcf = edge_case_vcf(tmp_path / "e.vcf", n=10, seed=1)
    with open_genotypes(vcf) as store:
        res = qc_filter(store)
    assert res.variant_mask.all() and res.sample_mask.all()
    assert res.counts["variants_kept"] == res.counts["variants"]


# ------------------------------------------------------------------ HWE exact test
def _hwe_reference(het: int, hom1: int, hom2: int, midp: bool = False) -> float:
    """Exact rational Wigginton et al. (2005) test: P(h) ∝ 2^h / (h! homr! homc!)."""
    n = het + hom1 + hom2
    rare = 2 * min(hom1, hom2) + het
    if n == 0:
        return 0.5 if midp else 1.0
    probs = {}
    for h in range(rare % 2, rare + 1, 2):
        homr = (rare - h) // 2
        homc = n - h - homr
        probs[h] = Fraction(2 ** h, math.factorial(h) * math.factorial(homr)
                            * math.factorial(homc))
    total = sum(probs.values())
    obs = probs[het]
    p = sum(q for q in probs.values() if q <= obs) / total
    if midp:
        p -= Fraction(sum(q for q in probs.values() if q == obs), 2) / total
    return float(p)


@settings(max_examples=150, deadline=None)
@given(het=st.integers(0, 60), hom1=st.integers(0, 60), hom2=st.integers(0, 60),
       midp=st.booleans())
def test_hwe__equals_exact_rational_computation(het, hom1, hom2, midp):
    got = float(hardy_weinberg_test(het, hom1, hom2, midp=midp))
    want = _hwe_reference(het, hom1, hom2, midp)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-300), (het, hom1, hom2)
    # symmetric in the two homozygote classes
    assert float(hardy_weinberg_test(het, hom2, hom1, midp=midp)) == pytest.approx(got,
                                                                                    rel=1e-12)


def test_hwe__exact_ties_belong_to_the_tail():
    # n = 3 genotypes, 2 rare alleles: P(het=0) = 2/5... compare all small tables exactly
    for het, hom1, hom2 in itertools.product(range(6), repeat=3):
        assert float(hardy_weinberg_test(het, hom1, hom2)) == pytest.approx(
            _hwe_reference(het, hom1, hom2), rel=1e-12)


def test_hwe__large_counts_are_fast_and_accurate():
    rng = np.random.default_rng(0)
    n = 200_000
    het = rng.integers(0, n // 2, 50)
    hom1 = rng.integers(0, n // 4, 50)
    hom2 = n - het - hom1
    p = hardy_weinberg_test(het, hom1, hom2)
    assert p.shape == (50,) and np.all((p >= 0) & (p <= 1))
    # in equilibrium at n = 200k: expected counts give P near 1
    q = 0.3
    eq = hardy_weinberg_test(int(2 * q * (1 - q) * n), int((1 - q) ** 2 * n),
                             n - int(2 * q * (1 - q) * n) - int((1 - q) ** 2 * n))
    assert float(eq) > 0.9


def test_hwe__broadcasts_and_handles_empty_and_no_genotypes():
    p = hardy_weinberg_test(np.array([[0, 2], [26, 0]]), 5, 19)
    assert p.shape == (2, 2)
    assert float(hardy_weinberg_test(0, 0, 0)) == 1.0
    assert float(hardy_weinberg_test(0, 0, 0, midp=True)) == 0.5
    assert hardy_weinberg_test([], [], []).shape == (0,)


@pytest.mark.parametrize(("args", "match"), [
    ((-1, 2, 3), "genotype counts must be >= 0"),
    ((1.5, 2, 3), "genotype counts must be integers"),
])
def test_hwe__invalid_counts_raise(args, match):
    with pytest.raises(ConfigError, match=match):
        hardy_weinberg_test(*args)


# ------------------------------------------------------------------ number format
@pytest.mark.parametrize(("value", "text"), [
    (0.1678875, "0.167888"),     # a tie stored just below: plink2 rounds half to even
    (0.4053875, "0.405388"),
    (0.3108875, "0.310888"),
    (0.1234565, "0.123456"),     # tie, even digit kept
    (2.0 / 3.0, "0.666667"),
    (1.0, "1"),
    (1620.03, "1620.03"),
    (-6.78341e-05, "-6.78341e-05"),
    (3.2e-250, "3.2e-250"),
    (float("nan"), "nan"),
    (0.0, "0"),
])
def test_fmt__prints_like_plink2(value, text):
    assert _fmt([value]) == [text]


# ------------------------------------------------------------------ CLI
def test_cli_qc__writes_reports_and_summary(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SECURED_BIO_PROGRESS", "0")
    vcf = edge_case_vcf(tmp_path / "e.vcf", n=20, seed=4)
    code = main(["genomics", "qc", "--vcf", str(vcf), "--out", str(tmp_path / "qc" / "e"),
                 "--min-call-rate", "0.95", "--min-maf", "0.01", "--hwe-p", "1e-6",
                 "--max-sample-missing", "0.2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("QC of e.vcf: 20 samples, 67 variants; kept ")
    names = sorted(p.name for p in (tmp_path / "qc").iterdir())
    assert names == sorted(["e.afreq", "e.hardy", "e.vmiss", "e.smiss", "e.het", "e.qc.json",
                            "e.qc_pass.variants.tsv", "e.qc_pass.samples.tsv"])
    import json

    summary = json.loads((tmp_path / "qc" / "e.qc.json").read_text())
    assert summary["format"] == "secured_bio.qc_summary" and summary["format_version"] == 1
    assert summary["thresholds"]["hwe_p"] == 1e-6
    kept = (tmp_path / "qc" / "e.qc_pass.variants.tsv").read_text().splitlines()
    assert kept[0] == "#CHROM\tPOS\tID\tREF\tALT\tINDEX"
    assert len(kept) - 1 == summary["counts"]["variants_kept"]


def test_cli_qc__from_a_store_without_filters(tmp_path, capsys):
    vcf = edge_case_vcf(tmp_path / "e.vcf", n=12, seed=4)
    ingest_vcf(vcf, tmp_path / "e.zarr", progress=False)
    assert main(["genomics", "qc", "--zarr", str(tmp_path / "e.zarr"), "--out",
                 str(tmp_path / "q")]) == 0
    assert "QC of e.zarr: 12 samples, 67 variants ->" in capsys.readouterr().out
    assert not (tmp_path / "q.qc_pass.variants.tsv").exists()
    assert (tmp_path / "q.hardy").exists() and (tmp_path / "q.qc.json").exists()


@pytest.mark.parametrize("args", [[], ["--zarr", "a", "--vcf", "b"]])
def test_cli_qc__needs_exactly_one_input(tmp_path, capsys, args):
    assert main(["genomics", "qc", *args, "--out", str(tmp_path / "q")]) == 2
    assert "exactly one of --zarr and --vcf" in capsys.readouterr().err


def test_cli_qc__missing_store_exits_1(tmp_path, capsys):
    assert main(["genomics", "qc", "--zarr", str(tmp_path / "none.zarr"), "--out",
                 str(tmp_path / "q")]) == 1
    assert "genotype input not found" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
