"""Genomics on REAL genotypes (1000 Genomes EUR) against bcftools and plink2.

Every other genomics test runs on msprime-simulated VCFs; here ingest, QC and the linear and
logistic GWAS run on the real files of Debian's ``bio-eagle-examples`` package (the examples of
Eagle 2.4.1; ``make sysdeps`` installs it).  What ``bcftools view -h``/``stats``/``query``
(bcftools 1.16) show about them:

- ``EUR_test.vcf.gz`` (BGZF, no index): 379 samples x 2,000 biallelic SNPs (chr21 1,813,
  chr22 187), written by PLINK 1.9 (sample IDs ``FID_IID``, REF "provisional": ALT is the
  minor allele, frequencies 0.011-0.5), FORMAT ``GT`` only, all calls unphased and present.
- ``ref.bcf.gz``: a BCF (169 samples x 645 SNPs, chr22, every call phased, 7 SNPs
  monomorphic) that Debian gzipped a second time for ``/usr/share/doc``: htslib cannot read it
  as shipped, and ``ref.bcf.csi`` indexes the inner ``ref.bcf``, so tests un-gzip it into
  ``tmp_path``.
- ``target.vcf.gz`` (+ ``.tbi``): 8 samples x 430 SNPs (chr22), unphased, 4 missing calls
  (``./.``); its INFO keys (AC, AN, DP...) are not declared in the header (bcftools warns).
- ``phased.vcf.gz``: Eagle's phasing of EUR_test's chr21 (379 x 1,813, all ``|``).

No file has a multi-allelic record, a haploid call, a ``.`` ID or a duplicated position; the
reference genotypes still go through ``bcftools norm -m-any``, and the counts of the
``IngestReport`` are checked against bcftools', so a future file with such records is
compared the same way.  The phenotypes of the GWAS checks are simulated (seeded) on top of the
real genotypes.

Two tool oddities found on these files (worked around below; noted for issue 3):
bcftools 1.16 ``norm`` writes an invalid stream and still exits 0 on ``target.vcf.gz``
(undeclared INFO keys), and plink2 2.00a3.5 ``--glm`` with an unstandardised covariate (age,
sd 10) rejects ~5 % of the SNPs as ``CORR_TOO_HIGH``/``VIF_TOO_HIGH`` although their
correlation with age is below 0.17; ``--covar-variance-standardize`` (which leaves the
genotype's BETA, SE and P unchanged) removes them.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import real_vcf_dir, require_tools
from genomics.test_qc import PLINK_OPTS, REPORTS, read_table

from secured_bio.cli import main
from secured_bio.errors import FormatError
from secured_bio.genomics import (
    FILL_ALLELE,
    MISSING_ALLELE,
    ingest_vcf,
    open_genotypes,
    qc_stats,
    write_qc_reports,
)
from secured_bio.genomics import sumstats as S

pytestmark = pytest.mark.reference

QUERY = "%CHROM\t%POS\t%ID\t%REF\t%ALT[\t%GT]\n"
#: A region of chr22 that holds 251 of ref.bcf's records and 167 of target.vcf.gz's.
REGION = "22:17000000-18000000"


# ------------------------------------------------------------------------ reference side
def _tool(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> bytes:
    proc = subprocess.run(list(args), input=stdin, capture_output=True, cwd=cwd, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return proc.stdout


def _call(text: str) -> tuple[int, int, bool]:
    """One GT as bcftools prints it -> (allele, allele or FILL for haploid, phased)."""
    def allele(s: str) -> int:
        return MISSING_ALLELE if s == "." else int(s)

    for sep in "|/":
        if sep in text:
            a, b = text.split(sep)
            return allele(a), allele(b), sep == "|"
    return allele(text), FILL_ALLELE, False


@dataclass(frozen=True)
class Calls:
    """What bcftools reads from a VCF/BCF (after ``norm -m-any``)."""

    samples: list[str]
    contig: list[str]
    position: np.ndarray
    variant_id: list[str]
    ref: list[str]
    alt: list[str]
    gt: np.ndarray      # (variants, samples, 2) int8
    phased: np.ndarray  # (variants, samples) bool
    n_records: int      # records before the split
    n_multiallelic: int

    def dosage(self) -> np.ndarray:
        """ALT dosage (variants, samples); the files used here have no missing calls."""
        assert (self.gt >= 0).all()
        return self.gt.sum(axis=2).astype(float)


def bcftools_calls(path: Path, region: str | None = None) -> Calls:
    where = ["-r", region] if region else []
    # INFO is blanked first: bcftools 1.16 norm writes an invalid stream (and exits 0) for
    # target.vcf.gz, whose INFO keys are not declared in the header.
    lines = _tool("bcftools", "view", "-Ov", *where, str(path)).split(b"\n")
    for i, line in enumerate(lines):
        if line and not line.startswith(b"#"):
            fields = line.split(b"\t")
            fields[7] = b"."
            lines[i] = b"\t".join(fields)
    text = _tool("bcftools", "norm", "-m-any", "-Ov", "-", stdin=b"\n".join(lines))
    rows = [line.split("\t") for line in _tool("bcftools", "query", "-f", QUERY, "-",
                                                stdin=text).decode().splitlines()]
    samples = _tool("bcftools", "query", "-l", str(path)).decode().split()
    records = _tool("bcftools", "view", "-H", *where, str(path)).count(b"\n")
    multi = _tool("bcftools", "view", "-H", "-m3", *where, str(path)).count(b"\n")
    assert len(rows) >= records - multi, "bcftools norm lost records"
    codes = np.array([r[5:] for r in rows], dtype=object).reshape(len(rows), len(samples))
    unique, inverse = np.unique(codes.astype(str), return_inverse=True)
    decoded = [_call(c) for c in unique]
    table = np.array([d[:2] for d in decoded], dtype=np.int8).reshape(-1, 2)
    phase = np.array([d[2] for d in decoded], dtype=bool)
    inverse = inverse.reshape(codes.shape)
    return Calls(samples=samples, contig=[r[0] for r in rows],
                 position=np.array([int(r[1]) for r in rows], dtype=np.int64),
                 variant_id=[r[2] for r in rows], ref=[r[3] for r in rows],
                 alt=[r[4] for r in rows], gt=table[inverse], phased=phase[inverse],
                 n_records=records, n_multiallelic=multi)


def _source(name: str, tmp: Path) -> Path:
    """A real file by name; ``ref.bcf`` is un-gzipped (with its index) into ``tmp``."""
    d = real_vcf_dir()
    if name != "ref.bcf":
        return d / name
    out = tmp / "ref.bcf"
    if not out.exists():
        with gzip.open(d / "ref.bcf.gz", "rb") as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
        shutil.copyfile(d / "ref.bcf.csi", tmp / "ref.bcf.csi")
    return out


@pytest.fixture(scope="module")
def eur() -> Calls:
    require_tools("bcftools")
    return bcftools_calls(real_vcf_dir() / "EUR_test.vcf.gz")


# ---------------------------------------------------------------------------- ingest
def _counts_from_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    ((mode, n_multi),) = attrs["multiallelic"].items()
    return {"n_records": attrs["n_records"], "multiallelic": mode,
            "multiallelic_records": n_multi, "split_variants": attrs["split_variants"],
            "haploid_calls": attrs["haploid_calls"], "phased_calls": attrs["phased_calls"]}


@pytest.mark.parametrize(("name", "region", "via"), [
    ("EUR_test.vcf.gz", None, "cli"),
    ("ref.bcf", None, "library"),
    ("ref.bcf", REGION, "library"),        # BCF region through the CSI index
    ("target.vcf.gz", REGION, "cli"),      # VCF region through the tabix index
    ("target.vcf.gz", None, "library"),    # missing calls
    ("phased.vcf.gz", None, "library"),
])
def test_ingest__real_file_equals_bcftools_query(tmp_path: Path, capsys, name: str,
                                                 region: str | None, via: str) -> None:
    require_tools("bcftools")
    src = _source(name, tmp_path)
    ref = bcftools_calls(src, region)
    out = tmp_path / "g.zarr"
    if via == "cli":
        assert main(["genomics", "ingest", "--vcf", str(src), "--out", str(out),
                     "--chunk-size", "70", *(["--region", region] if region else [])]) == 0
        assert f"{len(ref.samples)} samples, {len(ref.contig)} variants" in (
            capsys.readouterr().out)
        report = None
    else:
        report = ingest_vcf(src, out, region=region, chunk_size=100, progress=False)
        assert report.source_format == ("BCF" if name.endswith(".bcf") else "VCF")
    with open_genotypes(out) as store:
        assert store.n_variants > store.chunk_size  # several chunks, written in the background
        counts = _counts_from_attrs(store.attrs)
        assert store.sample_ids.tolist() == ref.samples
        assert store.n_variants == len(ref.contig) > 100
        assert store.contig.tolist() == ref.contig
        np.testing.assert_array_equal(store.position, ref.position)
        assert store.variant_id.tolist() == ref.variant_id
        assert store.ref.tolist() == ref.ref
        assert store.alt.tolist() == ref.alt
        np.testing.assert_array_equal(store.read_genotypes(slice(None)), ref.gt)
        phased = np.concatenate([p for _, p in store.iter_phased()])
        np.testing.assert_array_equal(phased, ref.phased)
    if report is not None:
        assert report.n_samples == len(ref.samples)
        assert report.n_variants == len(ref.contig)
        assert counts == {k: v for k, v in report.to_dict().items() if k in counts}
    assert counts["n_records"] == ref.n_records
    assert counts["multiallelic"] == "split"
    assert counts["multiallelic_records"] == ref.n_multiallelic
    assert counts["split_variants"] == len(ref.contig) - (ref.n_records - ref.n_multiallelic)
    assert counts["phased_calls"] == int(ref.phased.sum())
    assert counts["haploid_calls"] == int((ref.gt[..., 1] == FILL_ALLELE).sum())


def test_ingest__shipped_double_gzipped_bcf_is_refused_cleanly(tmp_path: Path) -> None:
    # Debian gzips ref.bcf (already BGZF) once more: neither htslib nor we can read it.
    src = real_vcf_dir() / "ref.bcf.gz"
    with pytest.raises(FormatError, match=r"not a VCF file .*ref\.bcf\.gz"):
        ingest_vcf(src, tmp_path / "g.zarr", progress=False)
    assert not (tmp_path / "g.zarr").exists()
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------------------------- QC
@pytest.mark.parametrize("name", ["EUR_test.vcf.gz", "ref.bcf", "target.vcf.gz"])
def test_qc__real_file_reports_equal_plink2(tmp_path: Path, capsys, name: str) -> None:
    require_tools("plink2")
    src = _source(name, tmp_path)
    fmt = "--bcf" if name.endswith(".bcf") else "--vcf"
    plink = ["plink2", fmt, str(src), *PLINK_OPTS]
    _tool(*plink, "--freq", "--hardy", "--missing", "--out", "ref", cwd=tmp_path)
    # plink2 --het needs 50 samples to estimate allele frequencies; with fewer (target:
    # 8) it reads them from --read-freq, here the same samples' .afreq (= what we use).
    small = name == "target.vcf.gz"
    _tool(*plink, "--het", *(["--read-freq", "ref.afreq"] if small else []), "--out", "ref",
          cwd=tmp_path)
    if name == "EUR_test.vcf.gz":  # the CLI on the VCF itself (a temporary store)
        assert main(["genomics", "qc", "--vcf", str(src), "--out", str(tmp_path / "ours")]
                    ) == 0
        assert "379 samples, 2000 variants" in capsys.readouterr().out
    else:
        ingest_vcf(src, tmp_path / "g.zarr", chunk_size=128, progress=False)
        with open_genotypes(tmp_path / "g.zarr") as store:
            write_qc_reports(qc_stats(store), tmp_path / "ours")
    for ext in REPORTS:
        head_o, rows_o = read_table(tmp_path / f"ours{ext}")
        head_r, rows_r = read_table(tmp_path / f"ref{ext}")
        assert head_o == head_r, ext
        assert len(rows_o) == len(rows_r) > 0, ext
        for col, column in enumerate(head_r):
            assert [r[col] for r in rows_o] == [r[col] for r in rows_r], f"{ext} {column}"


# ------------------------------------------------------------------------------ GWAS
def _write_traits(calls: Calls, d: Path, seed: int) -> tuple[Path, Path]:
    """Seeded phenotypes on the real genotypes: 3 causal SNPs, one covariate (age).

    ``y`` is quantitative; ``case`` (1 = control, 2 = case, plink's coding) thresholds a
    liability at its 60th centile.  A few phenotypes are missing (NA).
    """
    rng = np.random.default_rng(seed)
    g = calls.dosage()
    n = g.shape[1]
    causal = rng.choice(np.flatnonzero(g.std(axis=1) > 0.4), 3, replace=False)
    age = np.round(rng.normal(50, 10, n), 1)
    signal = (g[causal] - g[causal].mean(axis=1, keepdims=True)).T @ np.array([0.5, -0.4, 0.3])
    y = 0.02 * age + signal + rng.normal(0, 1, n)
    liability = 0.01 * age + 3 * signal + rng.logistic(0, 1, n)
    case = np.where(liability > np.quantile(liability, 0.6), 2, 1)
    pheno = pd.DataFrame({"#IID": calls.samples, "y": [f"{v:.6f}" for v in y],
                          "case": case.astype(str)})
    pheno.loc[rng.choice(n, 5, replace=False), ["y", "case"]] = "NA"
    pheno.to_csv(d / "pheno.tsv", sep="\t", index=False)
    pd.DataFrame({"#IID": calls.samples, "age": age}).to_csv(d / "covar.tsv", sep="\t",
                                                              index=False)
    return d / "pheno.tsv", d / "covar.tsv"


# Relative tolerances: plink2 prints 6 significant digits (measured max 5e-6 for linear);
# its logistic fits stop at a looser convergence (measured max 5e-4, on a Z near 0).
@pytest.mark.parametrize(("test", "column", "columns", "rtol"), [
    ("linear", "y", ("BETA", "SE", "T_STAT", "P"), 1e-5),
    ("logistic", "case", ("OR", "LOG(OR)_SE", "Z_STAT", "P"), 1e-3),
])
def test_gwas__real_genotypes_equal_plink2_glm(tmp_path: Path, eur: Calls, test: str,
                                               column: str, columns: tuple[str, ...],
                                               rtol: float) -> None:
    require_tools("plink2")
    vcf = real_vcf_dir() / "EUR_test.vcf.gz"
    pheno, covar = _write_traits(eur, tmp_path, seed=2024)
    assert main(["gwas", "run", "--vcf", str(vcf), "--pheno", str(pheno), "--pheno-name",
                 column, "--covar", str(covar), "--test", test, "--out",
                 str(tmp_path / "ours")]) == 0
    ours = S.read_plink_table(tmp_path / f"ours.{test}.tsv")
    _tool("plink2", "--vcf", str(vcf), *PLINK_OPTS, "--pheno", str(pheno), "--pheno-name",
          column, "--covar", str(covar), "--covar-variance-standardize", "--glm", "omit-ref",
          "hide-covar", *(["no-firth"] if test == "logistic" else []), "--out", "ref",
          cwd=tmp_path)
    ref = pd.read_csv(tmp_path / f"ref.{column}.glm.{test}", sep="\t", na_values=["NA"],
                      keep_default_na=False, dtype={"ID": str, "REF": str, "ALT": str})
    assert len(ours) == len(ref) == len(eur.contig)
    for key in ("POS", "ID", "REF", "ALT", "A1", "OBS_CT"):
        assert ours[key].tolist() == ref[key].tolist(), key
    assert ours["#CHROM"].astype(str).tolist() == ref["#CHROM"].astype(str).tolist()
    na = ref.P.isna().to_numpy()
    for key in columns:
        np.testing.assert_array_equal(ours[key].isna(), na, err_msg=key)
        np.testing.assert_allclose(ours[key][~na], ref[key][~na], rtol=rtol, atol=0,
                                   err_msg=key)
    assert ours.P.min() < 1e-6  # a planted signal is found, so the comparison covers it


def test_real_vcf_dir__missing_files_fail_instead_of_skipping(monkeypatch, tmp_path: Path
                                                              ) -> None:
    # patch the module that defines real_vcf_dir (the tests' conftest may be imported twice,
    # once by pytest and once as a plain module, depending on which tests ran first)
    monkeypatch.setitem(real_vcf_dir.__globals__, "REAL_VCF_DIR", tmp_path)
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install bio-eagle-examples"):
        real_vcf_dir()
