"""Tests of simulate_genotypes: files, determinism, planted signal, atomic writes."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import requires_tools
from scipy import stats

from secured_bio.errors import ConfigError
from secured_bio.testing import GenotypeCohort, simulate_genotypes

pysam = pytest.importorskip("pysam")

SMALL = dict(n_sites=2, samples_per_site=15, n_variants=60, n_causal=2)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> GenotypeCohort:
    return simulate_genotypes(tmp_path_factory.mktemp("geno"))  # default sizes, seed 0


def _read_vcf_text(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Independent reader: parse the decompressed text (gzip reads BGZF) into ALT dosages."""
    samples: list[str] = []
    ids: list[str] = []
    rows = []
    lut = {"0/0": 0.0, "0/1": 1.0, "1/1": 2.0, "./.": np.nan}
    with gzip.open(path, "rt") as fh:
        for line in fh:
            if line.startswith("##"):
                continue
            f = line.rstrip("\n").split("\t")
            if line.startswith("#"):
                samples = f[9:]
                continue
            ids.append(f[2])
            rows.append([lut[g] for g in f[9:]])
    return samples, ids, np.array(rows)


def _pooled(cohort: GenotypeCohort) -> tuple[list[str], list[str], np.ndarray]:
    samples: list[str] = []
    mats = []
    ids: list[str] = []
    for p in cohort.vcf_paths:
        s, ids, g = _read_vcf_text(p)
        samples += s
        mats.append(g)
    return samples, ids, np.concatenate(mats, axis=1)


def _read_tsv(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = path.read_text().splitlines()
    return lines[0].split("\t"), [ln.split("\t") for ln in lines[1:]]


def _all_bytes(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_simulate_genotypes__returns_paths_and_counts(cohort: GenotypeCohort) -> None:
    assert cohort.sites == ("site1", "site2", "site3")
    assert cohort.n_samples == (200, 200, 200)
    assert cohort.n_variants == 2000
    assert len(cohort.causal_ids) == len(cohort.causal_betas) == 5
    for vcf, tbi in zip(cohort.vcf_paths, cohort.tbi_paths, strict=True):
        assert vcf.name.endswith(".vcf.gz") and vcf.is_file()
        assert tbi == vcf.with_name(vcf.name + ".tbi") and tbi.is_file()
    for p in (cohort.pheno_path, cohort.covar_path, cohort.ancestry_path, cohort.truth_path):
        assert p.is_file()


def test_simulate_genotypes__vcf_header_and_records_valid(cohort: GenotypeCohort) -> None:
    with pysam.VariantFile(str(cohort.vcf_paths[0])) as vf:
        header = str(vf.header)
        assert header.startswith("##fileformat=VCFv4.2")
        assert "##source=secured_bio.testing" in header
        assert "##FORMAT=<ID=GT" in header
        assert list(vf.header.contigs) == ["1"]
        length = vf.header.contigs["1"].length
        assert len(vf.header.samples) == 200
        last = 0
        n = 0
        for rec in vf:
            n += 1
            assert rec.chrom == "1"
            assert last < rec.pos <= length
            last = rec.pos
            assert rec.ref in "ACGT" and len(rec.alts) == 1 and rec.alts[0] in "ACGT"
            assert rec.ref != rec.alts[0]
            assert rec.id == f"1:{rec.pos}:{rec.ref}:{rec.alts[0]}"
            assert list(rec.format) == ["GT"]
        assert n == 2000


def test_simulate_genotypes__tabix_index_fetches_region(cohort: GenotypeCohort) -> None:
    _, ids, _ = _read_vcf_text(cohort.vcf_paths[1])
    pos = np.array([int(i.split(":")[1]) for i in ids])
    start, end = int(pos[500]), int(pos[520])
    with pysam.VariantFile(str(cohort.vcf_paths[1])) as vf:
        assert vf.index is not None
        got = [rec.pos for rec in vf.fetch("1", start - 1, end)]  # 0-based half-open
    assert got == pos[500:521].tolist()


def test_simulate_genotypes__unphased_genotypes_with_few_missing(cohort: GenotypeCohort) -> None:
    text = gzip.open(cohort.vcf_paths[2], "rt").read()
    body = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    calls = re.findall(r"\t([0-9.][/|][0-9.])(?=\t|\n|$)", body)
    assert set(calls) <= {"0/0", "0/1", "1/1", "./."}
    missing = calls.count("./.") / len(calls)
    assert 0.002 < missing < 0.01


def test_simulate_genotypes__sample_ids_unique_and_consistent(cohort: GenotypeCohort) -> None:
    samples, _, _ = _pooled(cohort)
    assert len(samples) == len(set(samples)) == 600
    for i, site in enumerate(cohort.sites):
        assert all(s.startswith(f"{site}_") for s in samples[i * 200:(i + 1) * 200])
    for path, cols in ((cohort.pheno_path, ["#IID", "quant", "case"]),
                       (cohort.covar_path, ["#IID", "sex", "age"]),
                       (cohort.ancestry_path, ["#IID", "site", "population"])):
        header, rows = _read_tsv(path)
        assert header == cols
        assert [r[0] for r in rows] == samples


def test_simulate_genotypes__phenotypes_and_covariates_in_plink2_coding(
    cohort: GenotypeCohort,
) -> None:
    _, rows = _read_tsv(cohort.pheno_path)
    quant = [r[1] for r in rows]
    case = [r[2] for r in rows]
    assert set(case) == {"1", "2", "NA"}
    for col in (quant, case):
        assert 0.005 < col.count("NA") / len(col) < 0.05
    float_q = np.array([float(q) for q in quant if q != "NA"])
    assert np.isfinite(float_q).all() and float_q.std() > 0.5
    n_case = case.count("2") / (case.count("1") + case.count("2"))
    assert 0.15 < n_case < 0.25  # prevalence 0.2
    _, cov = _read_tsv(cohort.covar_path)
    assert {r[1] for r in cov} == {"1", "2"}
    ages = np.array([int(r[2]) for r in cov])
    assert ages.min() >= 18 and ages.max() <= 90


def test_simulate_genotypes__truth_json_matches_files(cohort: GenotypeCohort) -> None:
    truth = json.loads(cohort.truth_path.read_text())
    assert truth["format"] == "secured_bio.demo_genotypes"
    assert truth["format_version"] == 1
    assert truth["seed"] == 0
    assert [c["id"] for c in truth["causal"]] == list(cohort.causal_ids)
    _, ids, _ = _read_vcf_text(cohort.vcf_paths[0])
    assert set(cohort.causal_ids) <= set(ids)
    for i in range(1, 3):
        assert _read_vcf_text(cohort.vcf_paths[i])[1] == ids  # same variants at every site


def test_simulate_genotypes__sites_differ_in_ancestry(cohort: GenotypeCohort) -> None:
    samples, _, g = _pooled(cohort)
    _, rows = _read_tsv(cohort.ancestry_path)
    pop_a = np.array([r[2] == "A" for r in rows])
    share = [pop_a[i * 200:(i + 1) * 200].mean() for i in range(3)]
    assert share[0] > share[1] > share[2]
    # Population structure is what the first principal component captures.
    x = np.where(np.isnan(g), np.nanmean(g, axis=1, keepdims=True), g).T
    x = (x - x.mean(0)) / (x.std(0) + 1e-12)
    u = np.linalg.svd(x, full_matrices=False)[0]
    assert abs(np.corrcoef(u[:, 0], pop_a)[0, 1]) > 0.9


def test_simulate_genotypes__planted_causal_variants_detectable(cohort: GenotypeCohort) -> None:
    samples, ids, g = _pooled(cohort)
    _, rows = _read_tsv(cohort.pheno_path)
    y = np.array([np.nan if r[1] == "NA" else float(r[1]) for r in rows])
    ok = ~np.isnan(y)
    x = np.where(np.isnan(g), np.nanmean(g, axis=1, keepdims=True), g).T[ok]
    # Adjust for the top 2 principal components (population structure), then test each
    # variant by the Pearson correlation of the residuals.
    xs = (x - x.mean(0)) / (x.std(0) + 1e-12)
    pcs = np.linalg.svd(xs, full_matrices=False)[0][:, :2]
    c = np.column_stack([np.ones(ok.sum()), pcs])

    def resid(v: np.ndarray) -> np.ndarray:
        return v - c @ np.linalg.lstsq(c, v, rcond=None)[0]

    rx, ry = resid(x), resid(y[ok])
    r = (rx * ry[:, None]).sum(0) / np.sqrt((rx**2).sum(0) * (ry**2).sum())
    df = ok.sum() - 2 - c.shape[1]
    p = 2 * stats.t.sf(np.abs(r * np.sqrt(df / (1 - r**2))), df)

    causal = [ids.index(i) for i in cohort.causal_ids]
    assert (p[causal] < 1e-4).sum() >= 4
    # Variants far (> 250 kb) from every causal one are null: p-values roughly uniform.
    pos = np.array([int(i.split(":")[1]) for i in ids])
    far = np.min(np.abs(pos[:, None] - pos[causal][None, :]), axis=1) > 250_000
    assert far.sum() > 1000
    assert (p[far] < 0.05).mean() < 0.1
    lam = np.median(stats.chi2.isf(p[far], 1)) / stats.chi2.ppf(0.5, 1)
    assert 0.8 < lam < 1.3
    assert (p[far] < 1e-4).sum() <= 2


def test_simulate_genotypes__same_seed_same_bytes(tmp_path: Path) -> None:
    a = simulate_genotypes(tmp_path / "a", seed=7, **SMALL)
    b = simulate_genotypes(tmp_path / "b", seed=7, **SMALL)
    assert a.causal_ids == b.causal_ids
    assert _all_bytes(tmp_path / "a") == _all_bytes(tmp_path / "b")


def test_simulate_genotypes__different_seed_different_content(tmp_path: Path) -> None:
    simulate_genotypes(tmp_path / "a", seed=1, **SMALL)
    simulate_genotypes(tmp_path / "b", seed=2, **SMALL)
    a, b = tmp_path / "a", tmp_path / "b"
    vcf = "site1.vcf.gz"
    assert gzip.decompress((a / vcf).read_bytes()) != gzip.decompress((b / vcf).read_bytes())
    for name in ("pheno.tsv", "covar.tsv"):
        assert (a / name).read_text() != (b / name).read_text()


def test_simulate_genotypes__one_site_and_custom_chrom(tmp_path: Path) -> None:
    c = simulate_genotypes(tmp_path, n_sites=1, samples_per_site=5, n_variants=20, n_causal=0,
                           chrom="chr22")
    assert c.causal_ids == ()
    with pysam.VariantFile(str(c.vcf_paths[0])) as vf:
        assert list(vf.header.contigs) == ["chr22"]
        assert len(list(vf.fetch("chr22"))) == 20


def test_simulate_genotypes__no_temporary_files_left(cohort: GenotypeCohort) -> None:
    names = [p.name for p in cohort.out_dir.iterdir()]
    assert not [n for n in names if n.endswith(".tmp") or n.startswith(".")]
    assert sorted(names) == sorted(
        [f"site{i}.vcf.gz" for i in (1, 2, 3)] + [f"site{i}.vcf.gz.tbi" for i in (1, 2, 3)]
        + ["pheno.tsv", "covar.tsv", "ancestry.tsv", "truth.json"]
    )


def test_simulate_genotypes__failure_mid_write_leaves_no_final_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import secured_bio.testing._genotypes as mod

    def boom(gz: Path, tbi: Path) -> None:
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(mod, "_tabix_index", boom)
    with pytest.raises(OSError, match="simulated"):
        simulate_genotypes(tmp_path, **SMALL)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_sites": 0}, "n_sites"),
        ({"samples_per_site": 0}, "samples_per_site"),
        ({"n_variants": 0}, "n_variants"),
        ({"n_causal": -1}, "n_causal"),
        ({"n_variants": 3, "n_causal": 4}, "n_causal is larger than n_variants"),
        ({"chrom": "1 2"}, "chrom is not a valid contig name"),
        ({"heritability": 1.5}, "heritability is out of range"),
        ({"prevalence": 0.0}, "prevalence is out of range"),
        ({"missing_rate": 0.9}, "missing_rate is out of range"),
        ({"seed": -1}, "seed is too small"),
        ({"n_sites": 2.5}, "n_sites must be an integer"),
    ],
)
def test_simulate_genotypes__bad_parameters_raise_config_error(
    tmp_path: Path, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        simulate_genotypes(tmp_path, **kwargs)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.reference
@requires_tools("plink2", "bcftools")
def test_simulate_genotypes__plink2_glm_finds_causal_variants(
    cohort: GenotypeCohort, tmp_path: Path
) -> None:
    merged = tmp_path / "merged.vcf.gz"
    subprocess.run(["bcftools", "merge", "-Oz", "-o", str(merged),
                    *map(str, cohort.vcf_paths)], check=True, capture_output=True)
    subprocess.run(
        ["plink2", "--vcf", str(merged), "--pheno", str(cohort.pheno_path),
         "--covar", str(cohort.covar_path), "--glm", "hide-covar", "--threads", "1",
         "--memory", "1000", "--out", str(tmp_path / "g")],
        check=True, capture_output=True,
    )

    def pvalues(name: str) -> dict[str, float]:
        header, rows = _read_tsv(tmp_path / name)
        ip, iid = header.index("P"), header.index("ID")
        return {r[iid]: float(r[ip]) for r in rows if r[ip] != "NA"}

    quant = pvalues("g.quant.glm.linear")
    assert len(quant) == 2000
    assert all(quant[i] < 1e-4 for i in cohort.causal_ids)
    assert min(quant, key=quant.__getitem__) in cohort.causal_ids
    case = pvalues("g.case.glm.logistic.hybrid")
    assert sum(case[i] < 1e-3 for i in cohort.causal_ids) >= 2
