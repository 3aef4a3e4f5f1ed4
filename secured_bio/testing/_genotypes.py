"""Seeded multi-site genotype cohort: msprime coalescent, bgzipped VCFs, plink2 phenotypes."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from secured_bio._atomic import atomic_paths, atomic_write
from secured_bio._progress import track
from secured_bio.errors import ConfigError
from secured_bio.testing._common import (
    as_dir,
    check_fraction,
    check_int,
    check_seed,
    child_rng,
    child_seed,
    site_names,
    write_json,
)

__all__ = ["GenotypeCohort", "simulate_genotypes"]

logger = logging.getLogger(__name__)

FORMAT_NAME = "secured_bio.demo_genotypes"
FORMAT_VERSION = 1

# Human-like population genetics (e.g. Gutenkunst et al. 2009; msprime documentation):
# effective size 10,000, per-generation per-bp mutation 1.25e-8 and recombination 1e-8.
_NE = 10_000
_MUTATION_RATE = 1.25e-8
_RECOMBINATION_RATE = 1e-8
# Two populations split 2,000 generations ago (~50 kyr) and exchange migrants at a low rate:
# F_ST ~ 0.05-0.1, continental-scale structure that shows on the first principal component.
_SPLIT_TIME = 2_000
_MIGRATION_RATE = 2.5e-5
_MIN_MAF = 0.01
# One written SNP per ~5 kb, as on a genotyping array, so linkage disequilibrium with the
# causal variants fades within the contig and most variants are truly null.
_SPACING = 5_000
# Covariate effects on the (unit-variance) phenotype scale: female (sex=2) and per year of age.
_BETA_SEX = 0.3
_BETA_AGE = 0.015
_CHROM_RE = re.compile(r"^[A-Za-z0-9_.]+$")
# One VCF genotype field per dosage code: 0, 1, 2 ALT alleles and 3 = missing.
_GT_LUT = np.frombuffer(b"0/0\t0/1\t1/1\t./.\t", dtype=np.uint8).reshape(4, 4)
_WHERE = "simulate_genotypes"


@dataclass(frozen=True)
class GenotypeCohort:
    """What :func:`simulate_genotypes` wrote.

    Attributes
    ----------
    out_dir
        Output folder.
    sites
        Site names, ``('site1', ...)``.
    vcf_paths, tbi_paths
        Per-site bgzipped VCF and its tabix index, in site order.
    pheno_path, covar_path, ancestry_path, truth_path
        ``pheno.tsv``, ``covar.tsv``, ``ancestry.tsv``, ``truth.json``.
    n_samples
        Number of diploid samples per site, in site order.
    n_variants
        Number of variants in every VCF (all sites share the same variants).
    chrom
        Contig name.
    causal_ids, causal_betas
        IDs of the causal variants and their effects on ``quant`` per ALT allele.
    heritability
        Target share of ``quant`` variance explained by the causal variants.
    seed
        The seed used.
    """

    out_dir: Path
    sites: tuple[str, ...]
    vcf_paths: tuple[Path, ...]
    tbi_paths: tuple[Path, ...]
    pheno_path: Path
    covar_path: Path
    ancestry_path: Path
    truth_path: Path
    n_samples: tuple[int, ...]
    n_variants: int
    chrom: str
    causal_ids: tuple[str, ...]
    causal_betas: tuple[float, ...]
    heritability: float
    seed: int


def simulate_genotypes(
    out_dir: str | os.PathLike[str],
    *,
    n_sites: int = 3,
    samples_per_site: int = 200,
    n_variants: int = 2000,
    n_causal: int = 5,
    chrom: str = "1",
    heritability: float = 0.3,
    prevalence: float = 0.2,
    missing_rate: float = 0.005,
    seed: int = 0,
) -> GenotypeCohort:
    """Simulate a multi-site diploid genotype cohort with a planted genetic signal.

    Ancestry is simulated with msprime (two populations of effective size 10,000 that split
    2,000 generations ago and exchange migrants; recombination 1e-8, mutation 1.25e-8 per bp
    per generation, binary mutation model so every site is biallelic).  Sites draw different
    shares of their samples from the two populations (from 80 % population A at ``site1`` to
    20 % at the last site), so allele frequencies differ between sites and principal
    components matter.  Variants with pooled minor allele frequency >= 0.01 are kept and
    ``n_variants`` of them, evenly spread along the contig, are written.

    Files written in ``out_dir`` (``truth.json`` last, so its presence means the run finished):

    - ``site{i}.vcf.gz`` + ``site{i}.vcf.gz.tbi``: VCF 4.2, BGZF-compressed and tabix-indexed,
      unphased ``GT`` only, about ``missing_rate`` of calls ``./.``; IDs ``CHROM:POS:REF:ALT``.
    - ``pheno.tsv``: plink2 phenotype file headed ``#IID``, columns ``quant`` (sum of causal
      effects on ALT dosage + sex and age effects + noise; causal variants explain
      ``heritability`` of its variance) and ``case`` (liability threshold at ``prevalence``;
      1 = control, 2 = case); about 2 % of each column is ``NA``.
    - ``covar.tsv``: ``#IID``, ``sex`` (1 = male, 2 = female), ``age`` (years).
    - ``ancestry.tsv``: ``#IID``, ``site``, ``population`` (``A``/``B``): the planted structure.
    - ``truth.json``: format name/version, parameters, seed, causal variants and effects.

    Sample IDs are ``site{i}_{nnnn}``, unique across sites (plink2 reads them as IIDs with
    FID 0).  Memory grows with the number of samples, not with samples x variants: variants
    are streamed from the tree sequence to the VCFs.

    Parameters
    ----------
    out_dir
        Output folder (created if missing; existing files of the same names are replaced).
    n_sites
        Number of sites (>= 1).
    samples_per_site
        Diploid samples per site (>= 1).
    n_variants
        Variants per VCF (>= 1).
    n_causal
        Number of causal variants for the phenotypes (0 <= n_causal <= n_variants).
    chrom
        Contig name (letters, digits, ``_`` and ``.``).
    heritability
        Share of ``quant`` variance explained by the causal variants, in [0, 0.9].
    prevalence
        Share of cases in ``case``, in (0, 1).
    missing_rate
        Share of genotype calls written as ``./.``, in [0, 0.5].
    seed
        Seed (>= 0); the same seed gives byte-identical files.

    Returns
    -------
    GenotypeCohort
        Paths, counts and the truth of the planted signal.

    Raises
    ------
    ConfigError
        If a parameter is out of range.

    Examples
    --------
    >>> import tempfile
    >>> c = simulate_genotypes(tempfile.mkdtemp(), n_sites=2, samples_per_site=10,
    ...                        n_variants=50, n_causal=2, seed=1)
    >>> c.sites, c.n_samples, c.n_variants, len(c.causal_ids)
    (('site1', 'site2'), (10, 10), 50, 2)
    """
    import msprime  # heavy imports, only when simulating
    import tskit

    n_sites = check_int("n_sites", n_sites, minimum=1, where=_WHERE)
    samples_per_site = check_int("samples_per_site", samples_per_site, minimum=1, where=_WHERE)
    n_variants = check_int("n_variants", n_variants, minimum=1, where=_WHERE)
    n_causal = check_int("n_causal", n_causal, minimum=0, where=_WHERE)
    if n_causal > n_variants:
        raise ConfigError(
            "n_causal is larger than n_variants",
            where=_WHERE,
            expected="n_causal <= n_variants",
            got=f"n_causal={n_causal}, n_variants={n_variants}",
            fix="lower n_causal or raise n_variants",
        )
    if not isinstance(chrom, str) or not _CHROM_RE.match(chrom):
        raise ConfigError(
            "chrom is not a valid contig name",
            where=_WHERE,
            expected="letters, digits, '_' or '.' (e.g. '1', 'chr1')",
            got=f"{type(chrom).__name__} of length {len(chrom) if isinstance(chrom, str) else 0}",
        )
    heritability = check_fraction("heritability", heritability, where=_WHERE, high=0.9)
    prevalence = check_fraction(
        "prevalence", prevalence, where=_WHERE, include_low=False, include_high=False
    )
    missing_rate = check_fraction("missing_rate", missing_rate, where=_WHERE, high=0.5)
    seed = check_seed(seed, where=_WHERE)
    out = as_dir(out_dir, where=_WHERE)

    sites = site_names(n_sites)
    n_total = n_sites * samples_per_site
    width = max(4, len(str(samples_per_site)))
    sample_ids = [f"{s}_{j:0{width}d}" for s in sites for j in range(1, samples_per_site + 1)]
    frac_a = (
        np.linspace(0.8, 0.2, n_sites) if n_sites > 1 else np.array([0.5])
    )
    n_a_site = np.rint(frac_a * samples_per_site).astype(int)
    n_a = int(n_a_site.sum())

    # --- ancestry and mutations, growing the contig until enough common SNPs exist ---------
    ts, seq_len, alt_count = _simulate_tree_sequence(msprime, n_a, n_total - n_a, n_variants,
                                                     seed)
    node_ind = ts.tables.nodes.individual[ts.samples()]
    if not np.array_equal(node_ind, np.repeat(np.arange(n_total), 2)):  # msprime's layout
        raise RuntimeError("unexpected sample node layout in the msprime tree sequence")

    # Output order: each site takes its share of A and B individuals, shuffled within site.
    rng_assign = child_rng(seed, 3)
    perm_parts, pops = [], []
    next_a, next_b = 0, n_a
    for i in range(n_sites):
        ka, kb = int(n_a_site[i]), samples_per_site - int(n_a_site[i])
        idx = np.concatenate([np.arange(next_a, next_a + ka), np.arange(next_b, next_b + kb)])
        lab = np.array(["A"] * ka + ["B"] * kb)
        order = rng_assign.permutation(samples_per_site)
        perm_parts.append(idx[order])
        pops.append(lab[order])
        next_a, next_b = next_a + ka, next_b + kb
    perm = np.concatenate(perm_parts)
    population = np.concatenate(pops)

    # --- pass 1: pooled allele counts, keep common sites, spread evenly ---------------------
    freq = alt_count / (2 * n_total)
    maf = np.minimum(freq, 1 - freq)
    common = np.flatnonzero(maf >= _MIN_MAF)
    chosen = common[np.rint(np.linspace(0, common.size - 1, n_variants)).astype(int)]
    positions = ts.tables.sites.position[chosen].astype(np.int64) + 1

    rng_alleles = child_rng(seed, 4)
    ref_idx = rng_alleles.integers(0, 4, size=n_variants)
    alt_idx = (ref_idx + rng_alleles.integers(1, 4, size=n_variants)) % 4
    # ALT is the derived allele for most variants, the ancestral one for some (as in real data).
    flip = rng_alleles.random(n_variants) < 0.2
    bases = np.array(list("ACGT"))
    refs, alts = bases[ref_idx], bases[alt_idx]
    ids = [f"{chrom}:{p}:{r}:{a}" for p, r, a in zip(positions, refs, alts, strict=True)]
    alt_freq = np.where(flip, 1 - freq[chosen], freq[chosen])

    rng_effect = child_rng(seed, 6)
    causal_rows = _choose_causal(alt_freq, n_causal, rng_effect)
    causal_pos = {int(r): k for k, r in enumerate(causal_rows)}
    causal_dosage = np.zeros((n_causal, n_total), dtype=np.float64)

    # --- pass 2: stream genotypes into the per-site VCFs -----------------------------------
    vcf_paths = tuple(out / f"{s}.vcf.gz" for s in sites)
    tbi_paths = tuple(out / f"{s}.vcf.gz.tbi" for s in sites)
    rng_missing = child_rng(seed, 5)
    with contextlib.ExitStack() as stack:
        tmps = [stack.enter_context(atomic_paths(v, t)) for v, t in zip(vcf_paths, tbi_paths,
                                                                         strict=True)]
        writers = [_VcfWriter(tmp[0]) for tmp in tmps]
        for w in writers:
            stack.callback(w.close)
        for w, i in zip(writers, range(n_sites), strict=True):
            w.write(_vcf_header(chrom, seq_len, sample_ids[i * samples_per_site:
                                                          (i + 1) * samples_per_site]))
        var = tskit.Variant(ts)
        rows = track(enumerate(chosen), f"writing {n_sites} site VCFs", total=n_variants)
        for row, site_id in rows:
            var.decode(int(site_id))  # increasing site ids: tskit walks the trees once
            dosage = var.genotypes.reshape(-1, 2).sum(axis=1)[perm]
            if flip[row]:
                dosage = 2 - dosage
            if row in causal_pos:
                causal_dosage[causal_pos[row]] = dosage
            codes = dosage.astype(np.uint8)
            if missing_rate > 0:
                codes[rng_missing.random(n_total) < missing_rate] = 3
            prefix = (
                f"{chrom}\t{positions[row]}\t{ids[row]}\t{refs[row]}\t{alts[row]}"
                "\t.\tPASS\t.\tGT\t"
            ).encode()
            for i, w in enumerate(writers):
                field = _GT_LUT[codes[i * samples_per_site:(i + 1) * samples_per_site]]
                field[-1, 3] = 10  # the last tab becomes the newline
                w.write(prefix + field.tobytes())
        for w, tmp in zip(writers, tmps, strict=True):
            w.close()
            _tabix_index(tmp[0], tmp[1])
    logger.info("wrote %d VCFs with %d variants and %d samples in total", n_sites, n_variants,
                n_total)

    # --- phenotypes and covariates ----------------------------------------------------------
    rng_cov = child_rng(seed, 7)
    sex = rng_cov.integers(1, 3, size=n_total)
    age = np.clip(np.rint(rng_cov.normal(52, 13, size=n_total)), 18, 90).astype(int)
    betas = _effect_sizes(alt_freq[causal_rows], n_causal, rng_effect)
    genetic = betas @ causal_dosage if n_causal else np.zeros(n_total)
    genetic = genetic - genetic.mean()
    if n_causal and genetic.var() > 0:
        scale = math.sqrt(heritability / genetic.var())
        genetic, betas = genetic * scale, betas * scale
    covar_effect = _BETA_SEX * (sex - 1.5) + _BETA_AGE * (age - age.mean())
    noise_sd = math.sqrt(max(1.0 - heritability - float(covar_effect.var()), 0.05))
    rng_noise = child_rng(seed, 8)
    quant = genetic + covar_effect + rng_noise.normal(0.0, noise_sd, n_total)
    liability = genetic + covar_effect + rng_noise.normal(0.0, noise_sd, n_total)
    threshold = np.quantile(liability, 1 - prevalence)
    case = np.where(liability > threshold, 2, 1)
    rng_na = child_rng(seed, 9)
    quant_na = rng_na.random(n_total) < 0.02
    case_na = rng_na.random(n_total) < 0.02

    pheno_path, covar_path = out / "pheno.tsv", out / "covar.tsv"
    ancestry_path, truth_path = out / "ancestry.tsv", out / "truth.json"
    with atomic_write(pheno_path) as fh:
        fh.write("#IID\tquant\tcase\n")
        for k, iid in enumerate(sample_ids):
            q = "NA" if quant_na[k] else f"{quant[k]:.5f}"
            c = "NA" if case_na[k] else str(case[k])
            fh.write(f"{iid}\t{q}\t{c}\n")
    with atomic_write(covar_path) as fh:
        fh.write("#IID\tsex\tage\n")
        for k, iid in enumerate(sample_ids):
            fh.write(f"{iid}\t{sex[k]}\t{age[k]}\n")
    with atomic_write(ancestry_path) as fh:
        fh.write("#IID\tsite\tpopulation\n")
        for k, iid in enumerate(sample_ids):
            fh.write(f"{iid}\t{sites[k // samples_per_site]}\t{population[k]}\n")

    causal = [
        {
            "id": ids[r],
            "chrom": chrom,
            "pos": int(positions[r]),
            "ref": str(refs[r]),
            "alt": str(alts[r]),
            "alt_freq": round(float(alt_freq[r]), 6),
            "beta": round(float(b), 6),
        }
        for r, b in zip(causal_rows, betas, strict=True)
    ]
    truth = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "generator": "secured_bio.testing.simulate_genotypes",
        "seed": seed,
        "parameters": {
            "n_sites": n_sites,
            "samples_per_site": samples_per_site,
            "n_variants": n_variants,
            "n_causal": n_causal,
            "chrom": chrom,
            "heritability": heritability,
            "prevalence": prevalence,
            "missing_rate": missing_rate,
        },
        "demography": {
            "model": "two populations split from an ancestor, symmetric migration",
            "effective_size": _NE,
            "split_time_generations": _SPLIT_TIME,
            "migration_rate": _MIGRATION_RATE,
            "mutation_rate": _MUTATION_RATE,
            "recombination_rate": _RECOMBINATION_RATE,
            "sequence_length": seq_len,
            "min_maf": _MIN_MAF,
        },
        "sites": [
            {"name": s, "n_samples": samples_per_site, "fraction_population_A":
             round(float(n_a_site[i]) / samples_per_site, 6)}
            for i, s in enumerate(sites)
        ],
        "phenotypes": {
            "quant": {"model": "sum(beta * ALT dosage) + covariates + normal noise",
                      "heritability": heritability},
            "case": {"model": "liability threshold", "prevalence": prevalence,
                     "coding": {"1": "control", "2": "case"}},
            "missing": "NA",
        },
        "covariates": {"sex": {"coding": {"1": "male", "2": "female"}, "beta_female": _BETA_SEX},
                       "age": {"unit": "years", "beta_per_year": _BETA_AGE}},
        "causal": causal,
        "files": {
            "vcf": [p.name for p in vcf_paths],
            "pheno": pheno_path.name,
            "covar": covar_path.name,
            "ancestry": ancestry_path.name,
        },
    }
    write_json(truth_path, truth)
    return GenotypeCohort(
        out_dir=out,
        sites=sites,
        vcf_paths=vcf_paths,
        tbi_paths=tbi_paths,
        pheno_path=pheno_path,
        covar_path=covar_path,
        ancestry_path=ancestry_path,
        truth_path=truth_path,
        n_samples=(samples_per_site,) * n_sites,
        n_variants=n_variants,
        chrom=chrom,
        causal_ids=tuple(c["id"] for c in causal),
        causal_betas=tuple(c["beta"] for c in causal),
        heritability=heritability,
        seed=seed,
    )


def _simulate_tree_sequence(msprime, n_a: int, n_b: int, n_variants: int, seed: int):
    """Run msprime until the contig holds at least ``n_variants`` common biallelic SNPs."""
    n_hap = 2 * (n_a + n_b)
    c = max(1, math.ceil(_MIN_MAF * n_hap))
    # Expected SNPs with minor allele count in [c, n-c] under the standard neutral model:
    # theta * sum_{i=c}^{n-c} 1/i (Watterson 1975), theta = 4 Ne mu per bp.
    harmonic = float(np.sum(1.0 / np.arange(c, max(c, n_hap - c) + 1)))
    density = 4 * _NE * _MUTATION_RATE * harmonic
    seq_len = max(int(math.ceil(1.3 * n_variants / density)), n_variants * _SPACING) + 1_000
    demography = msprime.Demography()
    demography.add_population(name="A", initial_size=_NE)
    demography.add_population(name="B", initial_size=_NE)
    demography.add_population(name="ANC", initial_size=_NE)
    demography.set_symmetric_migration_rate(["A", "B"], _MIGRATION_RATE)
    demography.add_population_split(time=_SPLIT_TIME, derived=["A", "B"], ancestral="ANC")
    samples = {k: v for k, v in (("A", n_a), ("B", n_b)) if v > 0}
    for attempt in range(20):
        ts = msprime.sim_ancestry(
            samples=samples,
            demography=demography,
            sequence_length=seq_len,
            recombination_rate=_RECOMBINATION_RATE,
            ploidy=2,
            random_seed=child_seed(seed, 1, attempt),
        )
        ts = msprime.sim_mutations(
            ts,
            rate=_MUTATION_RATE,
            model=msprime.BinaryMutationModel(),
            random_seed=child_seed(seed, 2, attempt),
        )
        alt_count = _alt_counts(ts)
        maf = np.minimum(alt_count, n_hap - alt_count) / n_hap
        n_common = int(np.count_nonzero(maf >= _MIN_MAF))
        logger.debug("attempt %d: %d bp, %d common SNPs", attempt, seq_len, n_common)
        if n_common >= n_variants:
            return ts, seq_len, alt_count
        seq_len = int(seq_len * max(1.5, 1.3 * n_variants / max(n_common, 1)))
    raise RuntimeError("msprime did not produce enough common SNPs")  # pragma: no cover


def _alt_counts(ts) -> np.ndarray:
    """Return the pooled count of allele 1 at every site (streamed, one site at a time)."""
    counts = np.empty(ts.num_sites, dtype=np.int64)
    for k, var in enumerate(ts.variants(copy=False)):
        counts[k] = np.count_nonzero(var.genotypes)
    return counts


def _choose_causal(alt_freq: np.ndarray, n_causal: int, rng: np.random.Generator) -> np.ndarray:
    """Pick causal rows among variants with MAF >= 0.05 when there are enough of them."""
    maf = np.minimum(alt_freq, 1 - alt_freq)
    pool = np.flatnonzero(maf >= 0.05)
    if pool.size < n_causal:
        pool = np.arange(alt_freq.size)
    return np.sort(rng.choice(pool, size=n_causal, replace=False))


def _effect_sizes(p: np.ndarray, n_causal: int, rng: np.random.Generator) -> np.ndarray:
    """Per-ALT-allele effects that give each causal variant the same variance (random sign)."""
    if n_causal == 0:
        return np.zeros(0)
    sign = rng.choice([-1.0, 1.0], size=n_causal)
    return sign / np.sqrt(2 * p * (1 - p))


def _vcf_header(chrom: str, seq_len: int, samples: list[str]) -> bytes:
    lines = [
        "##fileformat=VCFv4.2",
        "##source=secured_bio.testing",
        f"##secured_bio_format={FORMAT_NAME};version={FORMAT_VERSION}",
        f"##contig=<ID={chrom},length={seq_len}>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT",
                   *samples]),
    ]
    return ("\n".join(lines) + "\n").encode()


class _VcfWriter:
    """Buffered BGZF writer (htslib's BGZF blocks carry no timestamp: output is reproducible)."""

    _FLUSH = 1 << 20

    def __init__(self, path: Path) -> None:
        from pysam.libcbgzf import BGZFile

        self._fh = BGZFile(str(path), "wb", index=None)
        self._buf: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        self._buf.append(data)
        self._size += len(data)
        if self._size >= self._FLUSH:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._fh.write(b"".join(self._buf))
            self._buf, self._size = [], 0

    def close(self) -> None:
        if not self._fh.closed:
            self._flush()
            self._fh.close()


def _tabix_index(gz: Path, tbi: Path) -> None:
    import pysam

    pysam.tabix_index(str(gz), preset="vcf", index=str(tbi), force=True)
