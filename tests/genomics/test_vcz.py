"""VCF Zarr (issue 14): bio2zarr's stores read in place, and export-vcz read by vcztools."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import require_tools

from secured_bio.errors import ConfigError, FormatError
from secured_bio.genomics import (
    export_vcz,
    ingest_vcf,
    open_genotypes,
    open_vcf_zarr,
    qc_stats,
    write_qc_reports,
)
from secured_bio.genomics.gwas_cli import run_gwas
from secured_bio.testing import simulate_genotypes

VENV_BIN = Path(__import__("sys").executable).parent
QUERY = r"%CHROM\t%POS\t%ID\t%REF\t%ALT[\t%GT]\n"


def _tool(name: str) -> str:
    """A Python reference tool of the dev extra (fails, never skips, when absent)."""
    path = shutil.which(name) or (str(VENV_BIN / name) if (VENV_BIN / name).is_file() else None)
    if path is None:
        pytest.fail(f"reference tool missing: {name}; install the dev extra "
                    "(pip install -c constraints.txt -e '.[dev]': bio2zarr[vcf], vcztools)",
                    pytrace=False)
    return path


def _contents(path: Path) -> dict[str, np.ndarray]:
    with open_genotypes(path) as s:
        return {"gt": s.read_genotypes(slice(0, s.n_variants)),
                "phased": np.concatenate([p for _, p in s.iter_phased()]),
                "samples": s.sample_ids, "contig": s.contig, "pos": s.position,
                "id": s.variant_id, "ref": s.ref, "alt": s.alt}


def _assert_same(a: Path, b: Path) -> None:
    x, y = _contents(a), _contents(b)
    for key in x:
        np.testing.assert_array_equal(x[key], y[key], err_msg=key)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    d = tmp_path_factory.mktemp("vcz_cohort")
    c = simulate_genotypes(d, n_sites=2, samples_per_site=50, n_variants=200, n_causal=3,
                           missing_rate=0.02, seed=11)
    vczs = []
    for vcf in c.vcf_paths:
        out = d / (Path(vcf).name.split(".")[0] + ".vcz")
        subprocess.run([_tool("vcf2zarr"), "convert", "-Q", str(vcf), str(out)], check=True,
                       capture_output=True)
        vczs.append(out)
    return d, c, vczs


# A small VCF with what the format allows: phase, haploid, half-missing, no ALT, no ID.
SMALL = ("##fileformat=VCFv4.2\n##contig=<ID=1>\n##contig=<ID=X>\n"
         '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
         "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ta\tb\tc\n"
         "1\t5\trs1\tA\tG\t.\t.\t.\tGT\t0|1\t1/1\t./.\n"
         "1\t9\t.\tC\tT\t.\t.\t.\tGT\t0/0\t./1\t1|0\n"
         "1\t12\trs3\tG\t.\t.\t.\t.\tGT\t0/0\t0/0\t0/0\n"
         "X\t20\trs4\tT\tC\t.\t.\t.\tGT\t0\t1\t.\n")


@pytest.mark.reference
def test_vcf2zarr_store__qc_and_gwas_equal_the_vcf(cohort, tmp_path):
    d, c, vczs = cohort
    vcf = Path(c.vcf_paths[0])
    _assert_same(vcf, vczs[0])
    for name, src in (("vcf", vcf), ("vcz", vczs[0])):
        with open_genotypes(src) as s:
            write_qc_reports(qc_stats(s), tmp_path / f"qc_{name}")
    for suffix in ("afreq", "hardy", "vmiss", "smiss", "het"):
        assert (tmp_path / f"qc_vcf.{suffix}").read_bytes() == \
            (tmp_path / f"qc_vcz.{suffix}").read_bytes(), suffix
    runs = [run_gwas(**{key: src}, pheno=c.pheno_path, pheno_name="quant", test="linear",
                     out=tmp_path / f"g_{key}").results
            for key, src in (("vcf", vcf), ("zarr", vczs[0]))]
    pd.testing.assert_frame_equal(runs[0], runs[1])


@pytest.mark.reference
def test_vcf2zarr_store__cli_qc_and_gwas_secure(cohort, tmp_path, capsys):
    from secured_bio.cli import main
    from secured_bio.genomics.secure_gwas import secure_gwas

    d, c, vczs = cohort
    assert main(["genomics", "qc", "--zarr", str(vczs[0]), "--out", str(tmp_path / "q")]) == 0
    assert "50 samples, 200 variants" in capsys.readouterr().out
    res = [secure_gwas(dict(zip(("site1", "site2"), paths, strict=True)), pheno=c.pheno_path,
                       pheno_name="quant", test="linear", out=tmp_path / name,
                       allow_two_sites=True)
           for name, paths in (("vcf", c.vcf_paths), ("vcz", vczs))]
    pd.testing.assert_frame_equal(res[0].results, res[1].results)


@pytest.mark.reference
def test_export_vcz__vcztools_reads_back_the_vcf(cohort, tmp_path):
    d, c, _ = cohort
    require_tools("bcftools")  # fails (never skips) when bcftools is missing
    bcftools, vcztools = "bcftools", _tool("vcztools")
    small = tmp_path / "small.vcf"
    small.write_text(SMALL)
    for vcf in (Path(c.vcf_paths[0]), small):
        ingest_vcf(vcf, tmp_path / f"{vcf.stem}.zarr", chunk_size=64, progress=False)
        out = export_vcz(tmp_path / f"{vcf.stem}.zarr", tmp_path / f"{vcf.stem}.vcz")
        want = subprocess.run([bcftools, "query", "-f", QUERY, str(vcf)], check=True,
                              capture_output=True, text=True).stdout
        got = subprocess.run([vcztools, "query", "-f", QUERY, str(out)], check=True,
                             capture_output=True, text=True).stdout
        assert got == want, vcf.name
        view = subprocess.run([vcztools, "view", str(out)], check=True, capture_output=True)
        (tmp_path / "view.vcf").write_bytes(view.stdout)
        again = subprocess.run([bcftools, "query", "-f", QUERY, str(tmp_path / "view.vcf")],
                               check=True, capture_output=True, text=True).stdout
        assert again == want, vcf.name
        _assert_same(tmp_path / f"{vcf.stem}.zarr", out)  # and our reader takes it back


def test_export_vcz__spec_fields(tmp_path):
    import zarr

    (tmp_path / "s.vcf").write_text(SMALL)
    out = export_vcz(tmp_path / "s.vcf", tmp_path / "s.vcz")
    attrs = json.loads((out / ".zattrs").read_text())
    assert attrs["vcf_zarr_version"] == "0.4"
    g = zarr.open_group(str(out), mode="r")
    want = {"call_genotype": ("i", ["variants", "samples", "ploidy"], (4, 3, 2)),
            "call_genotype_mask": ("b", ["variants", "samples", "ploidy"], (4, 3, 2)),
            "call_genotype_phased": ("b", ["variants", "samples"], (4, 3)),
            "variant_position": ("i", ["variants"], (4,)),
            "variant_contig": ("i", ["variants"], (4,)),
            "variant_id_mask": ("b", ["variants"], (4,)),
            "variant_allele": (None, ["variants", "alleles"], (4, 2)),
            "contig_id": (None, ["contigs"], (2,)), "sample_id": (None, ["samples"], (3,))}
    for name, (kind, dims, shape) in want.items():
        arr = g[name]
        assert arr.attrs["_ARRAY_DIMENSIONS"] == dims and arr.shape == shape, name
        if kind:
            assert np.dtype(arr.dtype).kind == kind, name
    assert g["contig_id"][:].tolist() == ["1", "X"]
    assert g["variant_allele"][2].tolist() == ["G", ""]
    assert g["variant_id_mask"][:].tolist() == [False, True, False, False]
    assert g["call_genotype"][3].tolist() == [[0, -2], [1, -2], [-1, -2]]
    with pytest.raises(ConfigError, match="output path exists"):
        export_vcz(tmp_path / "s.vcf", out)


def test_open_vcf_zarr__refuses_unknown_version_and_multiallelic(tmp_path):
    (tmp_path / "s.vcf").write_text(SMALL)
    out = export_vcz(tmp_path / "s.vcf", tmp_path / "s.vcz")
    _assert_same(tmp_path / "s.vcf", out)
    attrs = json.loads((out / ".zattrs").read_text())
    (out / ".zattrs").write_text(json.dumps({**attrs, "vcf_zarr_version": "9.0"}))
    with pytest.raises(FormatError, match="VCF Zarr version not supported"):
        open_genotypes(out)
    with pytest.raises(FormatError, match="not a VCF Zarr store"):
        open_vcf_zarr(tmp_path)
    import zarr

    (out / ".zattrs").write_text(json.dumps(attrs))
    g = zarr.open_group(str(out), mode="r+")
    alleles = g["variant_allele"][:]
    del g["variant_allele"]
    wide = np.concatenate([alleles, np.full((4, 1), "", dtype=object)], axis=1)
    wide[0, 2] = "T"
    arr = g.create_array("variant_allele", shape=wide.shape, dtype=str,
                         attributes={"_ARRAY_DIMENSIONS": ["variants", "alleles"]})
    arr[...] = wide
    with pytest.raises(FormatError, match="multi-allelic"):
        open_genotypes(out)
