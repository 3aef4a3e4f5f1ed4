"""PLINK 2 ``.pgen`` ingest (issue 14): equal to ingesting the VCF that plink2 converted."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import require_tools

from secured_bio.errors import ConfigError, FormatError, InputFileNotFoundError
from secured_bio.genomics import ingest_vcf, open_genotypes, qc_stats, write_qc_reports
from secured_bio.genomics.gwas_cli import run_gwas
from secured_bio.genomics.pgen import ingest_pgen, pgen_paths
from secured_bio.testing import simulate_genotypes

HEADER = "##fileformat=VCFv4.2\n##contig=<ID=1>\n" \
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n' \
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT"


def _make_pgen(vcf: Path, prefix: Path, *extra: str) -> Path:
    require_tools("plink2")
    subprocess.run(["plink2", "--vcf", str(vcf), "--make-pgen", "--out", str(prefix),
                    "--threads", "1", *extra], check=True, capture_output=True)
    return prefix


def _store_contents(path: Path) -> dict[str, np.ndarray]:
    with open_genotypes(path) as s:
        return {
            "gt": s.read_genotypes(slice(0, s.n_variants)),
            "phased": np.concatenate([p for _, p in s.iter_phased()]) if s.n_variants
            else np.zeros((0, s.n_samples), bool),
            "samples": s.sample_ids, "contig": s.contig, "pos": s.position,
            "id": s.variant_id, "ref": s.ref, "alt": s.alt,
        }


def _assert_same_store(a: Path, b: Path) -> None:
    x, y = _store_contents(a), _store_contents(b)
    for key in x:
        np.testing.assert_array_equal(x[key], y[key], err_msg=key)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    d = tmp_path_factory.mktemp("pgen_cohort")
    c = simulate_genotypes(d, n_sites=1, samples_per_site=60, n_variants=300, n_causal=3,
                           missing_rate=0.02, seed=7)
    vcf = Path(c.vcf_paths[0])
    prefix = _make_pgen(vcf, d / "site1")
    ingest_vcf(vcf, d / "vcf.zarr", chunk_size=64, progress=False)
    report = ingest_pgen(prefix, d / "pgen.zarr", chunk_size=64, progress=False)
    return d, c, report


def test_ingest_pgen__equals_vcf_ingest_of_plink2_input(cohort):
    d, c, report = cohort
    assert report.source_format == "PGEN" and report.n_variants == 300
    assert report.n_samples == 60
    _assert_same_store(d / "vcf.zarr", d / "pgen.zarr")
    with open_genotypes(d / "pgen.zarr") as s:
        assert (s.read_genotypes(slice(0, s.n_variants)) == -1).any()  # missing calls kept


def test_ingest_pgen__qc_and_gwas_equal_vcf_ingest(cohort, tmp_path):
    d, c, _ = cohort
    for name in ("vcf", "pgen"):
        with open_genotypes(d / f"{name}.zarr") as s:
            write_qc_reports(qc_stats(s), tmp_path / f"qc_{name}")
    for suffix in ("afreq", "hardy", "vmiss", "smiss", "het"):
        assert (tmp_path / f"qc_vcf.{suffix}").read_bytes() == \
            (tmp_path / f"qc_pgen.{suffix}").read_bytes(), suffix
    tables = {}
    for name in ("vcf", "pgen"):
        run = run_gwas(zarr=d / f"{name}.zarr", pheno=c.pheno_path, pheno_name="quant",
                       test="linear", out=tmp_path / f"gwas_{name}")
        tables[name] = run.results
    pd.testing.assert_frame_equal(tables["vcf"], tables["pgen"])


def test_ingest_pgen__phase_multiallelic_missing_fid(tmp_path):
    vcf = tmp_path / "x.vcf"
    vcf.write_text(
        f"{HEADER}\ta\tb\tc\n"
        "1\t5\trs1\tA\tG\t.\t.\t.\tGT\t0/1\t1|0\t./.\n"
        "1\t7\t.\tC\tT,G\t.\t.\t.\tGT\t1/2\t0/0\t2|0\n"
        "1\t9\trs3\tG\t.\t.\t.\t.\tGT\t0/0\t0/0\t0/0\n")
    prefix = _make_pgen(vcf, tmp_path / "x")
    ingest_vcf(vcf, tmp_path / "v.zarr", progress=False)
    r = ingest_pgen(tmp_path / "x.pgen", tmp_path / "p.zarr", progress=False)
    assert (r.multiallelic_records, r.split_variants, r.phased_calls) == (1, 2, 3)
    _assert_same_store(tmp_path / "v.zarr", tmp_path / "p.zarr")
    r = ingest_pgen(prefix, tmp_path / "skip.zarr", multiallelic="skip", progress=False)
    assert r.n_variants == 2
    # A .psam with FIDs other than 0: IDs are FID_IID, as plink2 --export vcf writes them.
    psam = prefix.with_name("x.psam")
    psam.write_text("#FID\tIID\tSEX\nf1\ta\tNA\nf1\tb\tNA\nf2\tc\tNA\n")
    ingest_pgen(prefix, tmp_path / "fid.zarr", progress=False)
    with open_genotypes(tmp_path / "fid.zarr") as s:
        assert s.sample_ids.tolist() == ["f1_a", "f1_b", "f2_c"]


def test_ingest_pgen__clear_errors(tmp_path, cohort):
    d, _, _ = cohort
    src = pgen_paths(d / "site1")
    for missing in (".pvar", ".psam", ".pgen"):
        prefix = tmp_path / missing[1:] / "p"
        prefix.parent.mkdir()
        for f in src:
            if f.suffix != missing:
                (prefix.parent / ("p" + f.suffix)).write_bytes(f.read_bytes())
        with pytest.raises(InputFileNotFoundError, match=f"{missing} file not found"):
            ingest_pgen(prefix, tmp_path / "o.zarr", progress=False)
    # Truncated .pgen: a FormatError naming the file, and no store left behind.
    t = tmp_path / "trunc" / "p"
    t.parent.mkdir()
    for f in src:
        data = f.read_bytes()
        (t.parent / ("p" + f.suffix)).write_bytes(data[: len(data) // 2] if f.suffix == ".pgen"
                                                  else data)
    with pytest.raises(FormatError, match="pgen") as e:
        ingest_pgen(t, tmp_path / "t.zarr", chunk_size=64, progress=False)
    assert "p.pgen" in str(e.value)
    assert not (tmp_path / "t.zarr").exists()
    # .pvar with fewer variants than the .pgen
    (t.parent / "p.pgen").write_bytes(src[0].read_bytes())
    lines = src[1].read_text().splitlines(keepends=True)
    (t.parent / "p.pvar").write_text("".join(lines[:-5]))
    with pytest.raises(FormatError, match="pgen"):
        ingest_pgen(t, tmp_path / "t.zarr", progress=False)
    with pytest.raises(ConfigError, match="multi-allelic"):
        ingest_pgen(d / "site1", tmp_path / "o.zarr", multiallelic="splt")


def test_cli_ingest_pgen__no_traceback(cohort, tmp_path, capsys):
    from secured_bio.cli import main

    d, _, _ = cohort
    assert main(["genomics", "ingest", "--pgen", str(d / "site1"),
                 "--out", str(tmp_path / "c.zarr")]) == 0
    _assert_same_store(d / "vcf.zarr", tmp_path / "c.zarr")
    # detected by extension
    assert main(["genomics", "ingest", "--vcf", str(d / "site1.pgen"),
                 "--out", str(tmp_path / "e.zarr")]) == 0
    capsys.readouterr()
    assert main(["genomics", "ingest", "--pgen", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "n.zarr")]) != 0
    err = capsys.readouterr().err
    assert ".pgen file not found" in err and "Traceback" not in err
    assert main(["genomics", "ingest", "--pgen", str(d / "site1"), "--region", "1",
                 "--out", str(tmp_path / "r.zarr")]) != 0
    assert "--region" in capsys.readouterr().err
