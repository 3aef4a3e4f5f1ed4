"""VCF/BCF ingest: round trips, chunking, multi-allelic records, errors, CLI."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import require_tools
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secured_bio.cli import main
from secured_bio.errors import ConfigError, FormatError, InputFileNotFoundError, SchemaError
from secured_bio.genomics import IngestReport, ingest_vcf, open_genotypes
from secured_bio.genomics import _writer as writer_module
from secured_bio.genomics import ingest as ingest_module
from secured_bio.genomics import store as store_module
from secured_bio.testing import simulate_genotypes

pysam = pytest.importorskip("pysam")

GT_HEADER = '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
DP_HEADER = '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
COLUMNS = "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT"


def write_vcf(path: Path, samples: list[str], records: list[str], *, contigs=("1", "X"),
              compress: bool = False, index: bool = False) -> Path:
    """Write a VCF (records are tab-joined data lines); bgzip/tabix it when asked."""
    text = "##fileformat=VCFv4.2\n" + "".join(f"##contig=<ID={c}>\n" for c in contigs)
    text += GT_HEADER + DP_HEADER + "\t".join([COLUMNS, *samples]) + "\n"
    text += "".join(r + "\n" for r in records)
    if not compress:
        path.write_text(text)
        return path
    plain = path.with_name(path.name + ".plain")
    plain.write_text(text)
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    if index:
        pysam.tabix_index(str(path), preset="vcf", force=True)
    return path


def read_all(store) -> tuple[np.ndarray, np.ndarray]:
    gt = np.concatenate([g for _, g in store.iter_genotypes()]) if store.n_variants else \
        np.zeros((0, store.n_samples, 2), np.int8)
    ph = np.concatenate([p for _, p in store.iter_phased()]) if store.n_variants else \
        np.zeros((0, store.n_samples), bool)
    return gt, ph


def no_leftovers(folder: Path) -> bool:
    """No temporary store folders (atomic_dir's .NAME.*.tmp) remain."""
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- round trip
def _allele_text(a):
    return "." if a is None else str(a)


call_st = st.one_of(
    st.tuples(st.sampled_from([0, 1, None]), st.sampled_from(["/", "|"]),
              st.sampled_from([0, 1, None])),
    st.tuples(st.sampled_from([0, 1, None])),
)


@st.composite
def genotype_tables(draw):
    n_samples = draw(st.integers(1, 6))
    n_variants = draw(st.integers(0, 8))
    calls = draw(st.lists(st.lists(call_st, min_size=n_samples, max_size=n_samples),
                          min_size=n_variants, max_size=n_variants))
    extra_format = draw(st.booleans())
    ids = draw(st.lists(st.sampled_from([".", "rs1", "v:2"]), min_size=n_variants,
                        max_size=n_variants))
    chunk_size = draw(st.integers(1, 5))
    compress = draw(st.booleans())
    return n_samples, calls, extra_format, ids, chunk_size, compress


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=genotype_tables())
def test_ingest__round_trip_property(tmp_path_factory, table):
    n_samples, calls, extra_format, ids, chunk_size, compress = table
    tmp = tmp_path_factory.mktemp("rt")
    samples = [f"S{i}" for i in range(n_samples)]
    records, exp_gt, exp_ph = [], [], []
    for v, row in enumerate(calls):
        texts, g, p = [], [], []
        for c in row:
            if len(c) == 3:
                a0, sep, a1 = c
                texts.append(f"{_allele_text(a0)}{sep}{_allele_text(a1)}")
                g.append([-1 if a0 is None else a0, -1 if a1 is None else a1])
                p.append(sep == "|")
            else:
                texts.append(_allele_text(c[0]))
                g.append([-1 if c[0] is None else c[0], -2])
                p.append(False)
        if extra_format:
            texts = [t + ":7" for t in texts]
        fmt = "GT:DP" if extra_format else "GT"
        records.append("\t".join(["1", str(100 + 10 * v), ids[v], "A", "C", ".", ".", ".", fmt,
                                  *texts]))
        exp_gt.append(g)
        exp_ph.append(p)
    name = "rt.vcf.gz" if compress else "rt.vcf"
    vcf = write_vcf(tmp / name, samples, records, compress=compress)
    report = ingest_vcf(vcf, tmp / "rt.zarr", chunk_size=chunk_size, progress=False)
    assert report.n_variants == report.n_records == len(calls)
    with open_genotypes(tmp / "rt.zarr") as store:
        assert store.attrs["format_version"] == 1
        assert store.sample_ids.tolist() == samples
        gt, ph = read_all(store)
        np.testing.assert_array_equal(gt, np.array(exp_gt, np.int8).reshape(gt.shape))
        np.testing.assert_array_equal(ph, np.array(exp_ph, bool).reshape(ph.shape))
        assert store.position.tolist() == [100 + 10 * v for v in range(len(calls))]
        assert store.variant_id.tolist() == ids
        assert store.ref.tolist() == ["A"] * len(calls)
        assert store.alt.tolist() == ["C"] * len(calls)


def test_ingest__demo_cohort_equals_independent_text_parse(tmp_path):
    cohort = simulate_genotypes(tmp_path / "demo", n_sites=1, samples_per_site=40,
                                n_variants=120, seed=3)
    vcf = cohort.vcf_paths[0]
    report = ingest_vcf(vcf, tmp_path / "s.zarr", chunk_size=50, progress=False)
    assert isinstance(report, IngestReport)
    assert (report.n_samples, report.n_variants, report.multiallelic_records) == (40, 120, 0)
    lut = {"0/0": 0.0, "0/1": 1.0, "1/1": 2.0, "./.": np.nan}
    rows, ids = [], []
    with gzip.open(vcf, "rt") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            f = line.rstrip("\n").split("\t")
            ids.append(f[2])
            rows.append([lut[x] for x in f[9:]])
    with open_genotypes(tmp_path / "s.zarr") as store:
        dose = np.concatenate([d for _, d in store.iter_dosage()])
        assert store.variant_id.tolist() == ids
    np.testing.assert_array_equal(dose, np.array(rows))


@pytest.mark.reference
def test_ingest__bcf_and_vcf_give_the_same_store(tmp_path):
    require_tools("bcftools")
    samples = ["a", "b", "c"]
    records = ["1\t5\trs1\tA\tG\t.\t.\t.\tGT:DP\t0/1:3\t1|1:4\t./.:0",
               "1\t9\t.\tT\tC,G\t.\t.\t.\tGT\t1/2\t0|2\t./1",
               "X\t20\t.\tG\tA\t.\t.\t.\tGT\t0\t1\t0/1"]
    vcf = write_vcf(tmp_path / "x.vcf.gz", samples, records, compress=True)
    bcf = tmp_path / "x.bcf"
    subprocess.run(["bcftools", "view", "-Ob", "-o", str(bcf), str(vcf)], check=True)
    a = ingest_vcf(vcf, tmp_path / "a.zarr", progress=False)
    b = ingest_vcf(bcf, tmp_path / "b.zarr", progress=False)
    assert (a.source_format, b.source_format) == ("VCF", "BCF")
    with open_genotypes(tmp_path / "a.zarr") as sa, open_genotypes(tmp_path / "b.zarr") as sb:
        for x, y in zip(read_all(sa), read_all(sb), strict=True):
            np.testing.assert_array_equal(x, y)
        for name in ("contig", "position", "variant_id", "ref", "alt", "sample_ids"):
            np.testing.assert_array_equal(getattr(sa, name), getattr(sb, name))


# --------------------------------------------------------------------------- chunking
def _simple_records(n_variants: int, n_samples: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    codes = np.array(["0/0", "0/1", "1/1", "./.", "1|0", "1", "0"])
    recs = []
    for v in range(n_variants):
        calls = codes[rng.integers(0, len(codes), n_samples)]
        recs.append("\t".join(["1", str(10 + v), f"v{v}", "A", "T", ".", ".", ".", "GT",
                               *calls]))
    return recs


def test_ingest__chunk_size_bounds_memory_and_not_values(tmp_path, monkeypatch):
    samples = [f"s{i}" for i in range(5)]
    vcf = write_vcf(tmp_path / "c.vcf", samples, _simple_records(10, 5))
    appended, batches = [], []
    real_append = store_module._StoreWriter.append
    real_parse = ingest_module._parse_batch

    def spy_append(self, gt, *args):
        appended.append(gt.shape)
        return real_append(self, gt, *args)

    def spy_parse(lines, *args):
        batches.append(len(lines))
        return real_parse(lines, *args)

    monkeypatch.setattr(store_module._StoreWriter, "append", spy_append)
    monkeypatch.setattr(ingest_module, "_parse_batch", spy_parse)
    ingest_vcf(vcf, tmp_path / "c3.zarr", chunk_size=3, progress=False)
    # Never more than one chunk of variants (all samples) in memory or per write.
    assert appended == [(3, 5, 2), (3, 5, 2), (3, 5, 2), (1, 5, 2)]
    assert max(batches) <= 3
    results = []
    for cs in (1, 3, 4, 10_000):
        ingest_vcf(vcf, tmp_path / f"s{cs}.zarr", chunk_size=cs, progress=False)
        with open_genotypes(tmp_path / f"s{cs}.zarr") as store:
            assert store._gt.chunks == (min(cs, 10_000), 5, 2)
            results.append(read_all(store))
    for gt, ph in results[1:]:
        np.testing.assert_array_equal(gt, results[0][0])
        np.testing.assert_array_equal(ph, results[0][1])


def test_ingest__default_chunk_bounded_by_bytes_not_samples(tmp_path, monkeypatch):
    # With a 1 KiB budget, 5 samples x 8 bytes allow 25 variants per chunk, but never < 64.
    # The format constants live in _writer (store re-exports them); patch them there.
    monkeypatch.setattr(writer_module, "CHUNK_TARGET_BYTES", 64 * 8 * 5 * 2)
    assert store_module.auto_chunk_size(5) == 128
    assert store_module.auto_chunk_size(10**6) == 64
    vcf = write_vcf(tmp_path / "c.vcf", [f"s{i}" for i in range(5)], _simple_records(200, 5))
    report = ingest_vcf(vcf, tmp_path / "auto.zarr", progress=False)
    assert report.chunk_size == 128
    with open_genotypes(tmp_path / "auto.zarr") as store:
        assert store._gt.chunks == (128, 5, 2) and store.n_variants == 200


# --------------------------------------------------------------------------- multi-allelic
def _multiallelic_records(n_variants: int, n_samples: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    bases = ["C", "G", "T", "CA", "GTT"]
    recs = []
    for v in range(n_variants):
        n_alt = int(rng.integers(1, 4))
        alts = list(rng.choice(bases, n_alt, replace=False))
        calls = []
        for _ in range(n_samples):
            kind = rng.integers(0, 10)
            a = [str(x) for x in rng.integers(0, n_alt + 1, 2)]
            if kind == 0:
                calls.append("./.")
            elif kind == 1:
                calls.append(a[0])  # haploid
            elif kind == 2:
                calls.append(f"./{a[1]}")  # half-missing
            else:
                calls.append(a[0] + ("|" if kind % 2 else "/") + a[1])
        recs.append("\t".join(["1", str(100 + v), f"m{v}", "A", ",".join(alts), ".", ".", ".",
                               "GT", *calls]))
    return recs


@pytest.mark.reference
def test_ingest__multiallelic_split_equals_bcftools_norm(tmp_path):
    require_tools("bcftools")
    samples = [f"s{i}" for i in range(7)]
    vcf = write_vcf(tmp_path / "m.vcf.gz", samples, _multiallelic_records(30, 7, seed=5),
                    compress=True)
    normed = tmp_path / "norm.vcf.gz"
    subprocess.run(["bcftools", "norm", "-m-any", "-Oz", "-o", str(normed), str(vcf)],
                   check=True, capture_output=True)
    ours = ingest_vcf(vcf, tmp_path / "ours.zarr", chunk_size=4, multiallelic="split",
                      progress=False)
    ref = ingest_vcf(normed, tmp_path / "ref.zarr", progress=False)
    assert ours.multiallelic_records > 5
    assert ours.n_variants == ref.n_variants == ref.n_records
    assert ours.split_variants == ref.n_records - (ours.n_records - ours.multiallelic_records)
    assert ref.multiallelic_records == 0
    with open_genotypes(tmp_path / "ours.zarr") as a, open_genotypes(tmp_path / "ref.zarr") as b:
        assert a.attrs["multiallelic"] == {"split": ours.multiallelic_records}
        for name in ("position", "variant_id", "ref", "alt"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        for x, y in zip(read_all(a), read_all(b), strict=True):
            np.testing.assert_array_equal(x, y)


def test_ingest__multiallelic_skip_is_counted(tmp_path):
    samples = ["a", "b"]
    records = ["1\t1\t.\tA\tC\t.\t.\t.\tGT\t0/1\t1/1",
               "1\t2\t.\tA\tC,G\t.\t.\t.\tGT\t1/2\t0/0",
               "1\t3\t.\tA\tC,G,T\t.\t.\t.\tGT\t3/3\t0/x",  # skipped before its GT is read
               "1\t4\t.\tA\t.\t.\t.\t.\tGT\t0/0\t0/0"]
    vcf = write_vcf(tmp_path / "s.vcf", samples, records)
    report = ingest_vcf(vcf, tmp_path / "s.zarr", multiallelic="skip", progress=False)
    assert (report.n_records, report.n_variants) == (4, 2)
    assert (report.multiallelic_records, report.split_variants) == (2, 0)
    assert "2 skipped" in report.summary()
    with open_genotypes(tmp_path / "s.zarr") as store:
        assert store.attrs["multiallelic"] == {"skip": 2}
        assert store.position.tolist() == [1, 4]
        assert store.alt.tolist() == ["C", "."]  # a record without ALT stays, ALT '.'


def test_ingest__ten_or_more_alleles_use_the_general_parser(tmp_path):
    alts = ",".join(["C", "G", "T", "CA", "CC", "CG", "CT", "GA", "GC", "GG", "GT"])
    vcf = write_vcf(tmp_path / "big.vcf", ["a", "b"],
                    [f"1\t7\t.\tA\t{alts}\t.\t.\t.\tGT\t10/11\t0|11"])
    report = ingest_vcf(vcf, tmp_path / "b.zarr", progress=False)
    assert report.n_variants == 11
    with open_genotypes(tmp_path / "b.zarr") as store:
        gt, ph = read_all(store)
    np.testing.assert_array_equal(gt[9], [[1, 0], [0, 0]])   # ALT 10
    np.testing.assert_array_equal(gt[10], [[0, 1], [0, 1]])  # ALT 11
    assert ph[10].tolist() == [False, True]


# --------------------------------------------------------------------------- region
def test_ingest__region_reads_through_the_index(tmp_path):
    records = _simple_records(20, 3)
    vcf = write_vcf(tmp_path / "r.vcf.gz", ["a", "b", "c"], records, compress=True, index=True)
    report = ingest_vcf(vcf, tmp_path / "r.zarr", region="1:15-19", progress=False)
    assert report.region == "1:15-19" and report.n_variants == 5
    with open_genotypes(tmp_path / "r.zarr") as store:
        assert store.position.tolist() == [15, 16, 17, 18, 19]
        assert store.attrs["region"] == "1:15-19"


@pytest.mark.reference
def test_ingest__bcf_region_reads_through_the_index(tmp_path):
    require_tools("bcftools")
    vcf = write_vcf(tmp_path / "r.vcf.gz", ["a", "b"], _simple_records(20, 2), compress=True)
    bcf = tmp_path / "r.bcf"
    subprocess.run(["bcftools", "view", "-Ob", "-o", str(bcf), str(vcf)], check=True)
    subprocess.run(["bcftools", "index", str(bcf)], check=True)
    report = ingest_vcf(bcf, tmp_path / "r.zarr", region="1:12-13", progress=False)
    assert (report.source_format, report.n_variants) == ("BCF", 2)


def test_ingest__region_without_index_raises(tmp_path):
    vcf = write_vcf(tmp_path / "r.vcf", ["a"], _simple_records(2, 1))
    with pytest.raises(ConfigError, match="a region needs a BGZF-compressed, indexed VCF"):
        ingest_vcf(vcf, tmp_path / "r.zarr", region="1", progress=False)
    gz = write_vcf(tmp_path / "r.vcf.gz", ["a"], _simple_records(2, 1), compress=True)
    with pytest.raises(ConfigError, match="needs an index next to the VCF"):
        ingest_vcf(gz, tmp_path / "r.zarr", region="1", progress=False)


def test_ingest__unknown_region_raises(tmp_path):
    vcf = write_vcf(tmp_path / "r.vcf.gz", ["a"], _simple_records(2, 1), compress=True,
                    index=True)
    with pytest.raises(ConfigError, match="region not found"):
        ingest_vcf(vcf, tmp_path / "r.zarr", region="chr22", progress=False)
    assert not (tmp_path / "r.zarr").exists() and no_leftovers(tmp_path)


# --------------------------------------------------------------------------- errors
SECRET_IDS = ["PATIENT_7781", "PATIENT_9902", "PATIENT_7781", "PATIENT_4410"]


def _assert_private(message: str, *planted: str) -> None:
    for value in ["PATIENT_", *planted]:
        assert value not in message, f"message leaks a data value: {message}"


def test_ingest__duplicate_sample_ids_raise_without_naming_them(tmp_path):
    vcf = write_vcf(tmp_path / "d.vcf", SECRET_IDS, _simple_records(2, 4))
    with pytest.raises(SchemaError, match=r"duplicated sample IDs.*1 duplicated sample ID "
                                          r"\(first duplicate is sample column 3\)") as e:
        ingest_vcf(vcf, tmp_path / "d.zarr", progress=False)
    _assert_private(str(e.value))
    assert not (tmp_path / "d.zarr").exists() and no_leftovers(tmp_path)


@pytest.mark.parametrize(("bad_call", "error", "match"), [
    ("0/x", FormatError, r"malformed GT \[.*b\.vcf: record 2 \(line 8\), sample column 2\]"),
    ("0/2", FormatError, r"allele index out of range \[.*b\.vcf: record 2 \(line 8\)\]"),
    ("0/1/1", SchemaError, r"unsupported ploidy \[.*record 2 \(line 8\)"),
    ("", FormatError, r"malformed GT \[.*record 2"),
])
def test_ingest__malformed_gt_names_file_and_record(tmp_path, bad_call, error, match):
    records = ["1\t1\t.\tA\tG\t.\t.\t.\tGT\t0/1\t1/1",
               f"1\t2\t.\tA\tG\t.\t.\t.\tGT\t0/0\t{bad_call}"]
    vcf = write_vcf(tmp_path / "b.vcf", ["PATIENT_1", "PATIENT_2"], records)
    with pytest.raises(error, match=match) as e:
        ingest_vcf(vcf, tmp_path / "b.zarr", progress=False)
    _assert_private(str(e.value), bad_call or "\t\n")
    assert not (tmp_path / "b.zarr").exists() and no_leftovers(tmp_path)


@pytest.mark.parametrize(("line", "error", "match"), [
    ("1\tx12\t.\tA\tG\t.\t.\t.\tGT\t0/1\t1/1", FormatError, "POS is not an integer"),
    ("1\t12\t.\tA\tG\t.\t.\t.\tGT\t0/1", FormatError, "wrong number of sample columns"),
    ("1\t12\t.\tA\tG", FormatError, "record has too few columns"),
    ("1\t12\t.\tA\tG\t.\t.\t.\tDP:GT\t3:0/1\t4:1/1", SchemaError, "GT is not the first"),
])
def test_ingest__malformed_record_raises(tmp_path, line, error, match):
    vcf = write_vcf(tmp_path / "b.vcf", ["a", "b"], [line])
    with pytest.raises(error, match=f"{match}.*record 1"):
        ingest_vcf(vcf, tmp_path / "b.zarr", progress=False)


def _demo_bgzf(tmp_path: Path) -> Path:
    cohort = simulate_genotypes(tmp_path / "demo", n_sites=1, samples_per_site=100,
                                n_variants=600, seed=1)
    return cohort.vcf_paths[0]


def test_ingest__truncated_bgzf_names_record_and_leaves_no_store(tmp_path):
    vcf = _demo_bgzf(tmp_path)
    data = vcf.read_bytes()
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"VCF file is truncated or corrupt "
                                          r"\[.*cut\.vcf\.gz: record \d+ \(line \d+\)\]") as e:
        ingest_vcf(cut, tmp_path / "cut.zarr", progress=False)
    _assert_private(str(e.value), "0/1", "site1_")
    assert not (tmp_path / "cut.zarr").exists() and no_leftovers(tmp_path)


@pytest.mark.reference
def test_ingest__truncated_bcf_names_record(tmp_path):
    require_tools("bcftools")
    bcf = tmp_path / "x.bcf"
    subprocess.run(["bcftools", "view", "-Ob", "-o", str(bcf), str(_demo_bgzf(tmp_path))],
                   check=True)
    cut = tmp_path / "cut.bcf"
    cut.write_bytes(bcf.read_bytes()[: bcf.stat().st_size // 2])
    with pytest.raises(FormatError, match=r"BCF file is truncated or corrupt "
                                          r"\[.*cut\.bcf: record \d+\]"):
        ingest_vcf(cut, tmp_path / "cut.zarr", progress=False)
    assert not (tmp_path / "cut.zarr").exists() and no_leftovers(tmp_path)


def test_ingest__plain_gzip_vcf_is_read(tmp_path):
    plain = write_vcf(tmp_path / "p.vcf", ["a", "b"], _simple_records(4, 2))
    gz = tmp_path / "p.vcf.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))  # gzip, not BGZF
    report = ingest_vcf(gz, tmp_path / "p.zarr", progress=False)
    assert report.n_variants == 4


def test_ingest__bgzf_without_eof_block_is_truncated(tmp_path):
    vcf = _demo_bgzf(tmp_path)
    noeof = tmp_path / "noeof.vcf.gz"
    noeof.write_bytes(vcf.read_bytes()[:-28])  # drop the 28-byte BGZF end-of-file block
    with pytest.raises(FormatError, match="truncated or corrupt.*record 600"):
        ingest_vcf(noeof, tmp_path / "n.zarr", progress=False)


def test_ingest__an_earlier_store_is_kept_when_a_new_ingest_fails(tmp_path):
    good = write_vcf(tmp_path / "g.vcf", ["a"], _simple_records(3, 1))
    ingest_vcf(good, tmp_path / "s.zarr", progress=False)
    bad = write_vcf(tmp_path / "bad.vcf", ["a"], ["1\t1\t.\tA\tG\t.\t.\t.\tGT\t0/x"])
    with pytest.raises(FormatError):
        ingest_vcf(bad, tmp_path / "s.zarr", progress=False)
    with open_genotypes(tmp_path / "s.zarr") as store:
        assert store.n_variants == 3 and store.attrs["source"] == "g.vcf"
    assert no_leftovers(tmp_path)


def test_ingest__not_a_vcf_raises(tmp_path):
    (tmp_path / "x.vcf").write_text("hello\n")
    with pytest.raises(FormatError, match="not a VCF file"):
        ingest_vcf(tmp_path / "x.vcf", tmp_path / "x.zarr", progress=False)


def test_ingest__vcf_without_samples_raises(tmp_path):
    (tmp_path / "s.vcf").write_text(
        "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n1\t1\t.\tA\tG\t.\t.\t.\n")
    with pytest.raises(SchemaError, match="VCF has no genotype columns"):
        ingest_vcf(tmp_path / "s.vcf", tmp_path / "s.zarr", progress=False)


def test_ingest__missing_input_raises(tmp_path):
    with pytest.raises(InputFileNotFoundError, match="VCF input file not found"):
        ingest_vcf(tmp_path / "none.vcf", tmp_path / "x.zarr", progress=False)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"chunk_size": 0}, "chunk_size must be a positive integer"),
    ({"multiallelic": "spilt"}, "unknown multi-allelic mode.*did you mean 'split'"),
    ({"region": " "}, "region must be CONTIG"),
])
def test_ingest__invalid_options_raise(tmp_path, kwargs, match):
    vcf = write_vcf(tmp_path / "o.vcf", ["a"], _simple_records(1, 1))
    with pytest.raises(ConfigError, match=match):
        ingest_vcf(vcf, tmp_path / "o.zarr", progress=False, **kwargs)


def test_ingest__refuses_to_replace_an_unrelated_folder(tmp_path):
    vcf = write_vcf(tmp_path / "o.vcf", ["a"], _simple_records(1, 1))
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a genotype store"):
        ingest_vcf(vcf, precious, progress=False)
    assert (precious / "notes.txt").read_text() == "keep me"


# --------------------------------------------------------------------------- CLI
def test_cli_ingest__prints_one_line_summary(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SECURED_BIO_PROGRESS", "0")
    vcf = write_vcf(tmp_path / "c.vcf", ["a", "b"], ["1\t1\t.\tA\tG,T\t.\t.\t.\tGT\t1/2\t0/0",
                                                     "1\t2\t.\tA\tG\t.\t.\t.\tGT\t0/1\t."])
    code = main(["genomics", "ingest", "--vcf", str(vcf), "--out", str(tmp_path / "c.zarr"),
                 "--chunk-size", "1", "--multiallelic", "split"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and len(out) == 1
    assert out[0].startswith("ingested c.vcf: 2 samples, 3 variants from 2 records")
    assert "1 split into 2 variants" in out[0]
    attrs = json.loads((tmp_path / "c.zarr" / "zarr.json").read_text())["attributes"]
    assert attrs["chunk_size"] == 1


def test_cli_ingest__bad_input_exits_1_with_a_clean_message(tmp_path, capsys):
    vcf = write_vcf(tmp_path / "c.vcf", SECRET_IDS[:2],
                    ["1\t1\t.\tA\tG\t.\t.\t.\tGT\t0/1\t0/z"])
    code = main(["genomics", "ingest", "--vcf", str(vcf), "--out", str(tmp_path / "c.zarr")])
    err = capsys.readouterr().err
    assert code == 1
    assert "error: malformed GT" in err and "record 1" in err and "Traceback" not in err
    _assert_private(err, "0/z")
    assert not (tmp_path / "c.zarr").exists() and no_leftovers(tmp_path)


def test_cli_ingest__invalid_choice_is_a_usage_error(tmp_path, capsys):
    code = main(["genomics", "ingest", "--vcf", "x.vcf", "--out", str(tmp_path / "o"),
                 "--multiallelic", "drop"])
    assert code == 2 and "Invalid value for '--multiallelic'" in capsys.readouterr().err
