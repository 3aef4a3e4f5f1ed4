"""BGEN ingest (issue 14): equal to ingesting the VCF, and to plink2's own BGEN import."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import require_tools

from secured_bio.errors import ConfigError, FormatError, InputFileNotFoundError
from secured_bio.genomics import ingest_vcf, open_genotypes
from secured_bio.genomics.bgen import ingest_bgen, read_bgen_header
from secured_bio.testing import simulate_genotypes


def _plink2(*args: str) -> None:
    require_tools("plink2")
    subprocess.run(["plink2", "--threads", "1", *args], check=True, capture_output=True)


def _contents(path: Path) -> dict[str, np.ndarray]:
    with open_genotypes(path) as s:
        return {"gt": s.read_genotypes(slice(0, s.n_variants)), "samples": s.sample_ids,
                "contig": s.contig, "pos": s.position, "id": s.variant_id, "ref": s.ref,
                "alt": s.alt}


def _assert_same(a: Path, b: Path) -> None:
    x, y = _contents(a), _contents(b)
    for key in x:
        np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def write_bgen(path: Path, samples: list[str] | None, n_samples: int,
               variants: list[tuple[str, int, str, str, str]], values: np.ndarray,
               missing: np.ndarray, *, layout: int = 2, compression: int = 1) -> None:
    """Write a BGEN v1.2 file: 8-bit unphased diploid P(AA), P(AB) ``values (m, n, 2)``."""
    flags = compression | (layout << 2) | ((1 << 31) if samples is not None else 0)
    block = b""
    if samples is not None:
        body = b"".join(struct.pack("<H", len(s)) + s.encode() for s in samples)
        block = struct.pack("<II", 8 + len(body), n_samples) + body
    out = struct.pack("<IIII4sI", 20 + len(block), 20, len(variants), n_samples, b"bgen",
                      flags) + block
    for (chrom, pos, rsid, a1, a2), v, miss in zip(variants, values, missing, strict=True):
        rec = struct.pack("<HH", 0, len(rsid)) + rsid.encode() + struct.pack("<H", len(chrom))
        rec += chrom.encode() + struct.pack("<IH", pos, 2)
        rec += b"".join(struct.pack("<I", len(a)) + a.encode() for a in (a1, a2))
        ploidy = np.where(miss, 0x82, 2).astype(np.uint8)
        data = struct.pack("<IHBB", n_samples, 2, 2, 2) + ploidy.tobytes() + bytes([0, 8])
        data += np.asarray(v, dtype=np.uint8).tobytes()
        comp = zlib.compress(data)
        out += rec + struct.pack("<II", len(comp) + 4, len(data)) + comp
    path.write_bytes(out)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    d = tmp_path_factory.mktemp("bgen_cohort")
    c = simulate_genotypes(d, n_sites=1, samples_per_site=60, n_variants=300, n_causal=3,
                           missing_rate=0.02, seed=7)
    vcf = Path(c.vcf_paths[0])
    ingest_vcf(vcf, d / "vcf.zarr", chunk_size=64, progress=False)
    _plink2("--vcf", str(vcf), "--export", "bgen-1.2", "bits=8", "--out", str(d / "y"))
    return d, vcf


@pytest.mark.reference
def test_ingest_bgen__equals_vcf_and_plink2_import(cohort):
    d, _ = cohort
    r = ingest_bgen(d / "y.bgen", d / "bgen.zarr", ref_allele="last", sample=d / "y.sample",
                    chunk_size=64, progress=False)
    assert (r.source_format, r.n_samples, r.n_variants) == ("BGEN", 60, 300)
    _assert_same(d / "vcf.zarr", d / "bgen.zarr")
    # plink2's own conversion back to VCF (plink2 --export bgen-1.2 writes REF last)
    _plink2("--bgen", str(d / "y.bgen"), "ref-last", "--sample", str(d / "y.sample"),
            "--export", "vcf", "--out", str(d / "back"))
    ingest_vcf(d / "back.vcf", d / "back.zarr", progress=False)
    _assert_same(d / "back.zarr", d / "bgen.zarr")
    # sample IDs stored in the BGEN (no .sample), and a REF-first zstd BGEN v1.3
    ingest_bgen(d / "y.bgen", d / "ids.zarr", ref_allele="last", progress=False)
    _assert_same(d / "vcf.zarr", d / "ids.zarr")
    vcf = d / "site1.vcf.gz"
    _plink2("--vcf", str(vcf), "--export", "bgen-1.3", "ref-first", "--out", str(d / "z"))
    assert read_bgen_header(d / "z.bgen").compression == "zstd"
    ingest_bgen(d / "z.bgen", d / "z.zarr", ref_allele="first", progress=False)
    _assert_same(d / "vcf.zarr", d / "z.zarr")
    # bit depths other than 8: 16 (whole bytes) and 3 (bits packed across bytes)
    for bits in (16, 3):
        _plink2("--vcf", str(vcf), "--export", "bgen-1.2", f"bits={bits}", "ref-first",
                "--out", str(d / f"b{bits}"))
        ingest_bgen(d / f"b{bits}.bgen", d / f"b{bits}.zarr", ref_allele="first",
                    progress=False)
        _assert_same(d / "vcf.zarr", d / f"b{bits}.zarr")


@pytest.mark.reference
@pytest.mark.parametrize(("mode", "extra", "kwargs"), [
    ("first", [], {}),
    ("last", ["--hard-call-threshold", "0.2"], {"hard_call_threshold": 0.2}),
    ("first", ["--import-dosage-certainty", "0.7"], {"import_dosage_certainty": 0.7}),
])
def test_ingest_bgen__uncertain_probabilities_equal_plink2_hard_calls(tmp_path, mode, extra,
                                                                      kwargs):
    rng = np.random.default_rng(3)
    n, m = 40, 150
    aa = rng.integers(0, 256, size=(m, n))
    ab = (rng.random((m, n)) * (256 - aa)).astype(int)
    near = rng.random((m, n)) < 0.5  # about half near-certain, with some noise
    k, e = rng.integers(0, 3, size=(m, n)), rng.integers(0, 40, size=(m, n))
    aa = np.where(near, np.where(k == 0, 255 - e, np.where(k == 1, e // 2, 0)), aa)
    ab = np.where(near, np.minimum(np.where(k == 1, 255 - e, e // 2), 255 - aa), ab)
    variants = [("1", 100 + i, f"rs{i}", "A", "G") for i in range(m)]
    write_bgen(tmp_path / "c.bgen", [f"s{i}" for i in range(n)], n, variants,
               np.stack([aa, ab], -1), rng.random((m, n)) < 0.03)
    _plink2("--bgen", str(tmp_path / "c.bgen"), f"ref-{mode}", "--export", "vcf",
            "--out", str(tmp_path / "r"), *extra)
    ingest_vcf(tmp_path / "r.vcf", tmp_path / "r.zarr", progress=False)
    ingest_bgen(tmp_path / "c.bgen", tmp_path / "b.zarr", ref_allele=mode, progress=False,
                **kwargs)
    _assert_same(tmp_path / "r.zarr", tmp_path / "b.zarr")
    called = (_contents(tmp_path / "b.zarr")["gt"] >= 0).all(-1).mean()
    assert 0.2 < called < 0.9  # the rule decided both ways


def test_ingest_bgen__clear_errors(cohort, tmp_path):
    d, _ = cohort
    data = (d / "y.bgen").read_bytes()
    cases = {
        "truncated": (data[: len(data) // 2], FormatError, "ends inside variant"),
        "cut_at_end": (data[:-10], FormatError, "ends inside variant 300"),
        "garbled": (data[:5000] + b"\0" * 400 + data[5400:], FormatError, "variant"),
        "layout1": (data[:20] + struct.pack("<I", 0x80000005) + data[24:], FormatError,
                    "layout is not supported"),
        "compression": (data[:20] + struct.pack("<I", 0x8000000B) + data[24:], FormatError,
                        "unknown compression"),
        "no_ids": (data[:20] + struct.pack("<I", 0x00000009) + data[24:],
                   InputFileNotFoundError, "no sample IDs"),
        "not_bgen": (b"#CHROM\tPOS\n" * 4, FormatError, "not BGEN"),
    }
    for name, (content, err, match) in cases.items():
        p = tmp_path / f"{name}.bgen"
        p.write_bytes(content)
        with pytest.raises(err, match=match) as e:
            ingest_bgen(p, tmp_path / "o.zarr", ref_allele="last", progress=False)
        assert f"{name}.bgen" in str(e.value), name
        assert "site1_" not in str(e.value)  # never a data value (sample IDs included)
        assert not (tmp_path / "o.zarr").exists(), name
    with pytest.raises(InputFileNotFoundError, match=r"\.sample file not found.*nope\.sample"):
        ingest_bgen(d / "y.bgen", tmp_path / "o.zarr", ref_allele="last",
                    sample=tmp_path / "nope.sample")
    short = tmp_path / "short.sample"
    short.write_text("".join((d / "y.sample").read_text().splitlines(True)[:-1]))
    with pytest.raises(FormatError, match="does not match the BGEN"):
        ingest_bgen(d / "y.bgen", tmp_path / "o.zarr", ref_allele="last", sample=short)
    with pytest.raises(ConfigError, match="REF allele mode"):
        ingest_bgen(d / "y.bgen", tmp_path / "o.zarr", ref_allele="frist")
    with pytest.raises(InputFileNotFoundError, match="BGEN file not found"):
        ingest_bgen(tmp_path / "none.bgen", tmp_path / "o.zarr", ref_allele="last")


def test_cli_ingest_bgen__no_traceback(cohort, tmp_path, capsys):
    from secured_bio.cli import main

    d, _ = cohort
    assert main(["genomics", "ingest", "--bgen", str(d / "y.bgen"), "--sample",
                 str(d / "y.sample"), "--ref-allele", "last",
                 "--out", str(tmp_path / "c.zarr")]) == 0
    _assert_same(d / "vcf.zarr", tmp_path / "c.zarr")
    capsys.readouterr()
    assert main(["genomics", "ingest", "--bgen", str(d / "y.bgen"),
                 "--out", str(tmp_path / "n.zarr")]) == 2
    err = capsys.readouterr().err
    assert "--ref-allele" in err and "Traceback" not in err
    assert main(["genomics", "ingest", "--vcf", str(d / "y.bgen"), "--ref-allele", "last",
                 "--region", "1", "--out", str(tmp_path / "r.zarr")]) != 0
    assert "--region" in capsys.readouterr().err
