"""Genotype QC equal to plink2's: per-variant and per-sample statistics, filters, reports.

Per-variant call rate, allele frequency and Hardy-Weinberg exact test; per-sample
missingness and heterozygosity; threshold filters; plink2-format reports.

Everything is computed from a :class:`~secured_bio.genomics.GenotypeStore` one chunk of
variants at a time with vectorised numpy (a lookup table maps each call to a category), so
memory is bounded by the chunk size.  The statistics and reports equal plink2's (2.00a3.5,
checked in ``tests/genomics/test_qc.py``):

=================== ========================================================================
report              columns (plink2 names)
=================== ========================================================================
``PREFIX.afreq``    ``#CHROM ID REF ALT ALT_FREQS OBS_CT`` (``--freq``; OBS_CT = allele
                    observations)
``PREFIX.hardy``    ``#CHROM ID A1 AX HOM_A1_CT HET_A1_CT TWO_AX_CT O(HET_A1) E(HET_A1) P``
                    (``--hardy``; A1 = REF, AX = ALT, P = exact test, not mid-p)
``PREFIX.vmiss``    ``#CHROM ID MISSING_CT OBS_CT F_MISS`` (``--missing``; OBS_CT = samples)
``PREFIX.smiss``    ``#IID MISSING_CT OBS_CT F_MISS`` (``--missing``; plink2 writes ``#IID``
                    without FID for VCF input; OBS_CT = variants)
``PREFIX.het``      ``#IID O(HOM) E(HOM) OBS_CT F`` (``--het``: observed and expected
                    homozygous diploid calls, E from ALT frequencies as ``1 - 2pq`` per
                    variant, F = (O - E) / (OBS_CT - E))
=================== ========================================================================

Numbers are written as plink2 prints them (6 significant digits, ``nan`` when undefined).

Conventions where a VCF allows more than plink2's model:

- A half-missing call (``./1``) is missing (plink2 ``--vcf-half-call missing``).
- A haploid call counts one allele observation in ``.afreq`` (plink2 does that for males on
  chrX/chrY; on autosomes, and for samples of unknown sex, plink2 imports a haploid VCF call
  as a homozygous diploid one, so its counts differ there).
- The Hardy-Weinberg test and the heterozygosity statistics use diploid calls only; plink2
  instead writes chrX to a separate ``.x.hardy`` (females, Graffelman-Weir test) and skips
  haploid chromosomes, and ``--het`` uses autosomes only.  Their counts agree on autosomal
  diploid data.

References
----------
Wigginton JE, Cutler DJ, Abecasis GR (2005). A note on exact tests of Hardy-Weinberg
equilibrium. Am J Hum Genet 76:887-893.
Graffelman J, Moreno V (2013). The mid p-value in exact tests for Hardy-Weinberg
equilibrium. Stat Appl Genet Mol Biol 12:433-448.
Chang CC et al. (2015). Second-generation PLINK. GigaScience 4:7.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from secured_bio._atomic import atomic_write
from secured_bio._progress import track
from secured_bio.errors import ConfigError, FormatError
from secured_bio.genomics.store import (
    _CAT_HAP_ALT,
    _CAT_HAP_REF,
    _CAT_HET,
    _CAT_HOM_ALT,
    _CAT_INVALID,
    _CAT_MISSING,
    GenotypeStore,
    _genotype_categories,
)

__all__ = [
    "QC_FORMAT_NAME",
    "QC_FORMAT_VERSION",
    "VariantQC",
    "SampleQC",
    "QCStats",
    "QCFilter",
    "hardy_weinberg_test",
    "qc_stats",
    "qc_filter",
    "write_qc_reports",
    "write_qc_filter",
]

QC_FORMAT_NAME = "secured_bio.qc_summary"
"""``format`` field of the ``PREFIX.qc.json`` summary."""
QC_FORMAT_VERSION = 1

# Relative tolerance of the comparisons against thresholds (fractions computed from counts).
_EPS = 1e-9
# Terms of the exact-test distribution below exp(-_WINDOW_NATS) x P(observed) are left out:
# even all of them together change P by less than 1e-16 relative.
_WINDOW_NATS = 50.0
# Elements of the exact-test distributions evaluated per numpy batch.
_HWE_BATCH = 1 << 22


# ------------------------------------------------------------------------------------------
# Hardy-Weinberg exact test
# ------------------------------------------------------------------------------------------


def _log_het_prob(k: np.ndarray, parity: np.ndarray, kmax: np.ndarray, n: np.ndarray
                  ) -> np.ndarray:
    """Log P(het = parity + 2k | n genotypes, rare allele count), up to a constant.

    With r = rare-allele copies, h heterozygotes, (r - h) / 2 rare homozygotes and
    n - h - (r - h) / 2 common homozygotes:  P(h) ∝ 2^h / (h! hom_r! hom_c!)
    (Wigginton et al. 2005, eq. 2).
    """
    from scipy.special import gammaln  # imported here: scipy.special takes ~0.3 s to load

    h = parity + 2 * k
    homr = kmax - k
    homc = n - h - homr
    return h * math.log(2.0) - gammaln(homr + 1.0) - gammaln(h + 1.0) - gammaln(homc + 1.0)


def _first_true(lo: np.ndarray, hi: np.ndarray, pred: Any) -> np.ndarray:
    """Smallest k in [lo, hi] with pred(k) True, for predicates False...False True...True."""
    lo, hi = lo.copy(), hi.copy()
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        ok = pred(mid)
        hi = np.where(active & ok, mid, hi)
        lo = np.where(active & ~ok, mid + 1, lo)


def _hwe_unique(het: np.ndarray, hom1: np.ndarray, hom2: np.ndarray, midp: bool
                ) -> np.ndarray:
    homr = np.minimum(hom1, hom2).astype(np.float64)
    homc = np.maximum(hom1, hom2).astype(np.float64)
    het_f = het.astype(np.float64)
    n = het_f + homr + homc
    rare = 2 * homr + het_f
    parity = np.mod(rare, 2)
    kmax = (rare - parity) / 2
    k_obs = (het_f - parity) / 2
    f_obs = _log_het_prob(k_obs, parity, kmax, n)
    # Tie tolerance (relative probability): configurations as probable as the observed one
    # belong to the tail (Wigginton et al.); plink2 does the same with a tolerance of 2^-44.
    # Ours covers the rounding of the summed log ratios between the two configurations.
    tol = np.full(n.shape, 1e-11)
    thresh = f_obs - _WINDOW_NATS

    # log P is concave in k, so {k : log P(k) >= thresh} is an interval around k_obs and the
    # mode: find its ends by bisection, then sum only inside it.
    def above(k: np.ndarray) -> np.ndarray:
        return _log_het_prob(k, parity, kmax, n) >= thresh

    zero = np.zeros_like(k_obs)
    lo = _first_true(zero, k_obs, above)
    # largest k in [k_obs, kmax] above the threshold: first k whose successor is below
    hi = _first_true(k_obs, kmax, lambda k: ~above(np.minimum(k + 1, kmax)) | (k >= kmax))

    out = np.empty(n.size)
    lengths = (hi - lo + 1).astype(np.int64)
    order_start = 0
    while order_start < n.size:
        # group consecutive triples into batches of about _HWE_BATCH elements
        csum = np.cumsum(lengths[order_start:])
        stop = order_start + max(1, int(np.searchsorted(csum, _HWE_BATCH, side="right")))
        sel = slice(order_start, stop)
        ln = lengths[sel]
        starts = np.concatenate([[0], np.cumsum(ln)[:-1]]).astype(np.int64)
        seg = np.repeat(np.arange(ln.size), ln)
        k = lo[sel][seg] + (np.arange(seg.size) - starts[seg])
        # log P(k) - log P(k - 1): each step from k-1 to k turns one homozygote of each kind
        # into two heterozygotes, ratio 4 homr homc / ((h + 1)(h + 2)) at h = het(k - 1)
        # (Wigginton et al. 2005, eq. 3).  A cumulative sum of these steps is more exact
        # than differences of log-gammas; each segment's first step instead cancels the
        # previous segment's total, so the running sum restarts near 0 in every segment.
        par, km, nn = parity[sel][seg], kmax[sel][seg], n[sel][seg]
        h = par + 2 * (k - 1)
        homr = km - (k - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.log(4 * homr * (nn - h - homr) / ((h + 1) * (h + 2)))
        d[starts] = 0.0
        seg_tot = np.add.reduceat(d, starts)
        d[starts[1:]] = -seg_tot[:-1]
        cs = np.cumsum(d)
        obs_at = starts + (k_obs[sel] - lo[sel]).astype(np.int64)
        rel = cs - cs[obs_at][seg]
        t = tol[sel][seg]
        tail = rel <= t
        log_den = _segment_logsumexp(rel, starts, np.ones_like(tail))
        log_num = _segment_logsumexp(rel, starts, tail)
        p = np.exp(log_num - log_den)
        if midp:
            tie = np.abs(rel) <= t
            p -= 0.5 * np.exp(_segment_logsumexp(rel, starts, tie) - log_den)
        out[sel] = p
        order_start = stop
    out = np.clip(out, 0.0, 1.0)
    out[n == 0] = 0.5 if midp else 1.0
    return out


def _segment_logsumexp(x: np.ndarray, starts: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """log(sum(exp(x[mask]))) per segment (segments start at ``starts``); -inf if empty."""
    xm = np.where(mask, x, -np.inf)
    m = np.maximum.reduceat(xm, starts)
    m_safe = np.where(np.isfinite(m), m, 0.0)
    seg = np.repeat(np.arange(starts.size), np.diff(np.append(starts, x.size)))
    s = np.add.reduceat(np.where(mask, np.exp(xm - m_safe[seg]), 0.0), starts)
    with np.errstate(divide="ignore"):
        return np.where(s > 0, m_safe + np.log(np.where(s > 0, s, 1.0)), -np.inf)


def hardy_weinberg_test(n_het: Any, n_hom1: Any, n_hom2: Any, *, midp: bool = False
                        ) -> np.ndarray:
    """Hardy-Weinberg exact test p-values for biallelic genotype counts (vectorised).

    The test of Wigginton, Cutler and Abecasis (2005): the p-value is the total probability,
    given the allele counts, of all heterozygote counts no more probable than the observed
    one; ``midp=True`` subtracts half the probability of the observed-probability ties
    (Graffelman and Moreno 2013).  This is what ``plink2 --hardy`` reports (``midp`` as its
    ``midp`` modifier).  Each distinct count triple is computed once.

    Parameters
    ----------
    n_het, n_hom1, n_hom2
        Counts of heterozygous and of the two homozygous genotypes (broadcastable integer
        arrays or scalars, >= 0).
    midp
        Return the mid-p value.

    Returns
    -------
    numpy.ndarray
        float64 p-values of the broadcast shape; 1 (0.5 with ``midp``) where there are no
        genotypes.

    Raises
    ------
    ConfigError
        If a count is negative or not an integer.

    Examples
    --------
    >>> hardy_weinberg_test([26, 2], [5, 0], [19, 48]).round(6).tolist()
    [0.539629, 1.0]
    >>> bool(hardy_weinberg_test(0, 50, 50) < 1e-20)   # no heterozygotes at p = 0.5
    True
    """
    arrays = np.broadcast_arrays(np.asarray(n_het), np.asarray(n_hom1), np.asarray(n_hom2))
    for name, a in zip(("n_het", "n_hom1", "n_hom2"), arrays, strict=True):
        if a.size and (a.dtype.kind not in "iu" and not (
                a.dtype.kind == "f" and np.all(np.mod(a, 1) == 0))):
            raise ConfigError("genotype counts must be integers", where=name,
                              got=f"dtype {a.dtype}")
        if a.size and np.min(a) < 0:
            raise ConfigError("genotype counts must be >= 0", where=name,
                              got="a negative count")
    shape = arrays[0].shape
    if not arrays[0].size:
        return np.zeros(shape)
    triples = np.stack([a.astype(np.int64).ravel() for a in arrays], axis=1)
    uniq, inverse = np.unique(triples, axis=0, return_inverse=True)
    p = _hwe_unique(uniq[:, 0], uniq[:, 1], uniq[:, 2], midp)
    return p[inverse.ravel()].reshape(shape)


class _HweCache:
    """Exact-test p-values by count triple, kept across chunks (most triples repeat)."""

    def __init__(self, midp: bool, max_size: int = 1_000_000) -> None:
        self.midp = midp
        self.max_size = max_size
        self._cache: dict[tuple[int, int, int], float] = {}

    def __call__(self, het: np.ndarray, hom1: np.ndarray, hom2: np.ndarray) -> np.ndarray:
        if het.size == 0:
            return np.zeros(0)
        triples = np.stack([het, hom1, hom2], axis=1).astype(np.int64)
        uniq, inverse = np.unique(triples, axis=0, return_inverse=True)
        keys = [(int(a), int(b), int(c)) for a, b, c in uniq.tolist()]
        p = np.empty(len(keys))
        todo = []
        for i, key in enumerate(keys):
            hit = self._cache.get(key)
            if hit is None:
                todo.append(i)
            else:
                p[i] = hit
        if todo:
            idx = np.asarray(todo)
            new = _hwe_unique(uniq[idx, 0], uniq[idx, 1], uniq[idx, 2], self.midp)
            p[idx] = new
            if len(self._cache) + len(todo) > self.max_size:
                self._cache.clear()
            self._cache.update({keys[i]: float(v) for i, v in zip(todo, new, strict=True)})
        return p[inverse.ravel()]


# ------------------------------------------------------------------------------------------
# Statistics
# ------------------------------------------------------------------------------------------


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


@dataclass(frozen=True)
class VariantQC:
    """Per-variant QC statistics (arrays of length n_variants).

    Attributes
    ----------
    obs_ct
        Samples considered (plink2 ``.vmiss`` OBS_CT).
    missing_ct
        Missing calls (half-calls included).
    allele_ct
        Allele observations: 2 per diploid call, 1 per haploid call (``.afreq`` OBS_CT).
    alt_ct
        ALT allele observations.
    hom_ref_ct, het_ct, hom_alt_ct
        Diploid genotype counts (``.hardy`` HOM_A1_CT, HET_A1_CT, TWO_AX_CT with A1 = REF).
    hap_ref_ct, hap_alt_ct
        Haploid calls.
    hwe_p
        Hardy-Weinberg exact test p-value on the diploid counts.
    """

    obs_ct: np.ndarray
    missing_ct: np.ndarray
    allele_ct: np.ndarray
    alt_ct: np.ndarray
    hom_ref_ct: np.ndarray
    het_ct: np.ndarray
    hom_alt_ct: np.ndarray
    hap_ref_ct: np.ndarray
    hap_alt_ct: np.ndarray
    hwe_p: np.ndarray

    @property
    def f_miss(self) -> np.ndarray:
        """Missing fraction (``.vmiss`` F_MISS)."""
        return _ratio(self.missing_ct, self.obs_ct)

    @property
    def call_rate(self) -> np.ndarray:
        """1 - missing fraction."""
        return 1.0 - self.f_miss

    @property
    def alt_freq(self) -> np.ndarray:
        """ALT allele frequency (``.afreq`` ALT_FREQS; NaN without observations)."""
        return _ratio(self.alt_ct, self.allele_ct)

    @property
    def maf(self) -> np.ndarray:
        """Minor allele frequency ``min(f, 1 - f)``."""
        f = self.alt_freq
        return np.minimum(f, 1.0 - f)

    @property
    def diploid_ct(self) -> np.ndarray:
        """Non-missing diploid calls."""
        return self.hom_ref_ct + self.het_ct + self.hom_alt_ct

    @property
    def het_obs(self) -> np.ndarray:
        """Observed heterozygosity among diploid calls (``.hardy`` O(HET_A1))."""
        return _ratio(self.het_ct, self.diploid_ct)

    @property
    def het_exp(self) -> np.ndarray:
        """Expected heterozygosity 2pq from the diploid calls (``.hardy`` E(HET_A1)).

        0 when there are no diploid calls, as plink2 writes.
        """
        # 2 * n_ref * n_alt / n^2 in one division (one rounding), as plink2 computes it.
        n2 = 2.0 * self.diploid_ct
        ref = 2.0 * self.hom_ref_ct + self.het_ct
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(n2 > 0, 2.0 * ref * (n2 - ref) / np.where(n2 > 0, n2 * n2, 1), 0.0)


@dataclass(frozen=True)
class SampleQC:
    """Per-sample QC statistics (arrays of length n_samples).

    Attributes
    ----------
    obs_ct
        Variants considered (``.smiss`` OBS_CT).
    missing_ct
        Missing calls.
    het_ct
        Heterozygous diploid calls.
    hom_ct
        Homozygous diploid calls.
    diploid_ct
        Non-missing diploid calls.
    het_obs_ct
        Non-missing diploid calls at polymorphic variants (``.het`` OBS_CT: plink2 skips
        monomorphic variants there).
    het_hom_ct
        Homozygous ones among them (``.het`` O(HOM)).
    exp_hom
        Expected homozygous calls, the sum of ``1 - 2pq`` over those calls (``.het`` E(HOM)).
    """

    obs_ct: np.ndarray
    missing_ct: np.ndarray
    het_ct: np.ndarray
    hom_ct: np.ndarray
    diploid_ct: np.ndarray
    het_obs_ct: np.ndarray
    het_hom_ct: np.ndarray
    exp_hom: np.ndarray

    @property
    def f_miss(self) -> np.ndarray:
        """Missing fraction (``.smiss`` F_MISS)."""
        return _ratio(self.missing_ct, self.obs_ct)

    @property
    def het_rate(self) -> np.ndarray:
        """Heterozygous share of the non-missing diploid calls."""
        return _ratio(self.het_ct, self.diploid_ct)

    @property
    def f(self) -> np.ndarray:
        """Inbreeding coefficient estimate (O - E) / (N - E) (``.het`` F)."""
        return _ratio(self.het_hom_ct - self.exp_hom, self.het_obs_ct - self.exp_hom)


@dataclass(frozen=True)
class QCStats:
    """QC statistics of a store (or of a subset of its samples).

    Attributes
    ----------
    variants, samples
        The statistics.
    contig, position, variant_id, ref, alt
        Variant annotations (all variants of the store; position is int64).
    sample_ids
        IDs of the samples the statistics cover.
    sample_index
        Their indices in the store.
    """

    variants: VariantQC
    samples: SampleQC
    contig: np.ndarray
    position: np.ndarray
    variant_id: np.ndarray
    ref: np.ndarray
    alt: np.ndarray
    sample_ids: np.ndarray
    sample_index: np.ndarray

    @property
    def n_variants(self) -> int:
        """Number of variants."""
        return int(self.contig.size)

    @property
    def n_samples(self) -> int:
        """Number of samples covered."""
        return int(self.sample_ids.size)


def _block_stats(gt: np.ndarray, rows: slice, v: dict[str, np.ndarray],
                 s_acc: dict[str, np.ndarray], store: GenotypeStore) -> None:
    """Accumulate the counts of one block of variants (all selected samples).

    Dense passes only for heterozygous and ALT-homozygous calls; missing and haploid calls
    (usually rare) are counted from their sparse positions.
    """
    n_s = gt.shape[1]
    cat = _genotype_categories(gt)
    het = cat == _CAT_HET
    v["het"][rows] = np.count_nonzero(het, axis=1)
    s_acc["het"] += np.count_nonzero(het, axis=0)
    del het
    v["hom_alt"][rows] = np.count_nonzero(cat == _CAT_HOM_ALT, axis=1)
    r_idx, c_idx = np.nonzero(cat > _CAT_HOM_ALT)  # missing, haploid or invalid
    other = cat[r_idx, c_idx]
    if np.any(other == _CAT_INVALID):
        first = rows.start + int(r_idx[np.argmax(other == _CAT_INVALID)])
        raise FormatError(
            "genotype store holds invalid allele codes",
            where=f"{store.path}: call_genotype, variant {first}",
            expected="-2, -1, 0 or 1 (biallelic calls)", got="other codes",
            fix="re-create the store with secured-bio genomics ingest",
        )
    r = gt.shape[0]
    miss = other == _CAT_MISSING
    v["missing"][rows] = np.bincount(r_idx[miss], minlength=r)
    v["hap_ref"][rows] = np.bincount(r_idx[other == _CAT_HAP_REF], minlength=r)
    v["hap_alt"][rows] = np.bincount(r_idx[other == _CAT_HAP_ALT], minlength=r)
    n_other = np.bincount(r_idx, minlength=r)
    v["hom_ref"][rows] = n_s - v["het"][rows] - v["hom_alt"][rows] - n_other
    s_acc["missing"] += np.bincount(c_idx[miss], minlength=n_s)
    s_acc["dipcall"] += r - np.bincount(c_idx, minlength=n_s)
    # Heterozygosity (plink2 --het): over polymorphic variants only, E(HOM) sums 1 - 2pq
    # over the sample's non-missing diploid calls, p the ALT frequency over all allele
    # observations of the variant (2pq computed as 2 * n_alt * n_ref / n^2, one rounding).
    alt = (2 * v["hom_alt"][rows] + v["het"][rows] + v["hap_alt"][rows]).astype(np.float64)
    tot = (2 * (v["hom_ref"][rows] + v["het"][rows] + v["hom_alt"][rows])
           + v["hap_ref"][rows] + v["hap_alt"][rows]).astype(np.float64)
    poly = (alt > 0) & (alt < tot)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(poly, 1.0 - 2.0 * alt * (tot - alt) / np.where(poly, tot * tot, 1), 0.0)
    at_poly = poly[r_idx]
    s_acc["dip_poly"] += int(np.count_nonzero(poly)) - np.bincount(c_idx[at_poly],
                                                                     minlength=n_s)
    s_acc["exp"] += float(w.sum()) - np.bincount(c_idx, weights=w[r_idx], minlength=n_s)


def qc_stats(store: GenotypeStore, *, samples: np.ndarray | None = None,
             chunk_size: int | None = None, midp: bool = False, progress: bool = False
             ) -> QCStats:
    """Compute per-variant and per-sample QC statistics in one streaming pass.

    Parameters
    ----------
    store
        An open genotype store.
    samples
        Integer index or boolean mask of the samples to use (default: all).
    chunk_size
        Variants per step (default: the store's chunk size).
    midp
        Mid-p Hardy-Weinberg p-values (plink2 ``--hardy midp``) instead of plain p.
    progress
        Show a progress bar over chunks.

    Returns
    -------
    QCStats

    Raises
    ------
    ConfigError
        If ``samples`` or ``chunk_size`` is invalid.
    FormatError
        If the store holds allele codes other than -2, -1, 0 and 1.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from secured_bio.genomics import ingest_vcf, open_genotypes
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "x.vcf").write_text(
    ...     "##fileformat=VCFv4.2\\n#CHROM\\tPOS\\tID\\tREF\\tALT\\tQUAL\\tFILTER\\tINFO\\t"
    ...     "FORMAT\\ta\\tb\\tc\\n1\\t5\\t.\\tA\\tG\\t.\\t.\\t.\\tGT\\t0/1\\t1/1\\t./.\\n")
    >>> _ = ingest_vcf(d / "x.vcf", d / "x.zarr")
    >>> with open_genotypes(d / "x.zarr") as store:
    ...     st = qc_stats(store)
    >>> st.variants.alt_freq.tolist(), st.variants.missing_ct.tolist()
    ([0.75], [1])
    >>> st.samples.missing_ct.tolist()
    [0, 0, 1]
    """
    idx = store._sample_index(samples)
    sample_index = np.arange(store.n_samples) if idx is None else idx
    n_s = sample_index.size
    n_v = store.n_variants
    v = {name: np.zeros(n_v, dtype=np.int64) for name in (
        "missing", "hom_ref", "het", "hom_alt", "hap_ref", "hap_alt")}
    hwe_p = np.ones(n_v)
    s_acc = {name: np.zeros(n_s, dtype=np.int64) for name in (
        "missing", "het", "dipcall", "dip_poly")}
    s_acc["exp"] = np.zeros(n_s, dtype=np.float64)
    hwe = _HweCache(midp)
    step = store.chunk_size if chunk_size is None else chunk_size
    chunks: Iterable[tuple[slice, np.ndarray]] = store.iter_genotypes(
        chunk_size=chunk_size, samples=idx)
    if progress:
        chunks = track(chunks, "QC", total=-(-n_v // int(step)) if step else None)
    block = max(1, (1 << 21) // max(n_s, 1))
    for sl, gt in chunks:
        for b0 in range(0, gt.shape[0], block):
            g = gt[b0:b0 + block]
            rows = slice(sl.start + b0, sl.start + b0 + g.shape[0])
            _block_stats(g, rows, v, s_acc, store)
        hwe_p[sl] = hwe(v["het"][sl], v["hom_ref"][sl], v["hom_alt"][sl])
    s_missing, s_het, s_dipcall, s_dip_poly, s_exp = (
        s_acc["missing"], s_acc["het"], s_acc["dipcall"], s_acc["dip_poly"], s_acc["exp"])
    s_hom = s_dipcall - s_het
    # Hets occur only at polymorphic variants, so the homozygous calls among the sample's
    # diploid calls at polymorphic variants are the rest.
    s_hom_poly = s_dip_poly - s_het
    variants = VariantQC(
        obs_ct=np.full(n_v, n_s, dtype=np.int64),
        missing_ct=v["missing"],
        allele_ct=2 * (v["hom_ref"] + v["het"] + v["hom_alt"]) + v["hap_ref"] + v["hap_alt"],
        alt_ct=2 * v["hom_alt"] + v["het"] + v["hap_alt"],
        hom_ref_ct=v["hom_ref"], het_ct=v["het"], hom_alt_ct=v["hom_alt"],
        hap_ref_ct=v["hap_ref"], hap_alt_ct=v["hap_alt"], hwe_p=hwe_p,
    )
    samples_qc = SampleQC(
        obs_ct=np.full(n_s, n_v, dtype=np.int64), missing_ct=s_missing, het_ct=s_het,
        hom_ct=s_hom, diploid_ct=s_dipcall, het_obs_ct=s_dip_poly, het_hom_ct=s_hom_poly,
        exp_hom=s_exp,
    )
    return QCStats(variants, samples_qc, store.contig, store.position, store.variant_id,
                   store.ref, store.alt, store.sample_ids[sample_index], sample_index)


# ------------------------------------------------------------------------------------------
# Filters
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QCFilter:
    """Result of :func:`qc_filter`.

    Attributes
    ----------
    variant_mask
        True for variants that pass every variant filter (length n_variants).
    sample_mask
        True for samples that pass the sample filter (length n_samples of the store).
    counts
        ``samples``, ``samples_removed_missing``, ``samples_kept``, ``variants``,
        ``variants_removed_call_rate``, ``variants_removed_hwe``, ``variants_removed_maf``
        (each counting variants not already removed by a filter listed before it, in
        plink2's log order) and ``variants_kept``.
    thresholds
        The thresholds used (None: filter off).
    stats
        Statistics on all samples (before the sample filter).
    kept_stats
        Statistics on the kept samples: the ones the variant filters used.
    """

    variant_mask: np.ndarray
    sample_mask: np.ndarray
    counts: dict[str, int]
    thresholds: dict[str, float | None]
    stats: QCStats
    kept_stats: QCStats = field(repr=False)


def _check_fraction(name: str, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 <= value <= 1):
        raise ConfigError(f"{name} must be a number in [0, 1]", where=name, got=repr(value))


def qc_filter(store: GenotypeStore, *, min_call_rate: float | None = None,
              min_maf: float | None = None, hwe_p: float | None = None,
              max_sample_missing: float | None = None, midp: bool = False,
              chunk_size: int | None = None, progress: bool = False) -> QCFilter:
    """Apply QC thresholds as plink2 does: samples first, then variants on kept samples.

    Order and semantics follow plink2: ``--mind`` (``max_sample_missing``) removes samples
    whose missing fraction over all variants exceeds the threshold; then, with statistics
    recomputed on the kept samples, ``--geno`` (``1 - min_call_rate``), ``--hwe`` and
    ``--maf`` each remove variants independently.

    Parameters
    ----------
    store
        An open genotype store.
    min_call_rate
        Keep variants with call rate >= this (plink2 ``--geno 1-x``).
    min_maf
        Keep variants with minor allele frequency >= this (``--maf``); variants without any
        observed allele are removed.
    hwe_p
        Keep variants with Hardy-Weinberg exact p >= this (``--hwe``).
    max_sample_missing
        Keep samples with missing fraction <= this (``--mind``).
    midp
        Use mid-p values for the HWE filter (``--hwe ... midp``).
    chunk_size, progress
        As in :func:`qc_stats`.

    Returns
    -------
    QCFilter
        Masks, counts and the statistics used.

    Raises
    ------
    ConfigError
        If a threshold is not a number in [0, 1].

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from secured_bio.genomics import ingest_vcf, open_genotypes
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "x.vcf").write_text(
    ...     "##fileformat=VCFv4.2\\n#CHROM\\tPOS\\tID\\tREF\\tALT\\tQUAL\\tFILTER\\tINFO\\t"
    ...     "FORMAT\\ta\\tb\\n1\\t5\\t.\\tA\\tG\\t.\\t.\\t.\\tGT\\t0/1\\t0/0\\n"
    ...     "1\\t9\\t.\\tC\\tT\\t.\\t.\\t.\\tGT\\t0/0\\t./.\\n")
    >>> with open_genotypes(d / "x.vcf") as store:
    ...     res = qc_filter(store, min_call_rate=0.9, min_maf=0.1)
    >>> res.variant_mask.tolist(), res.counts["variants_removed_call_rate"]
    ([True, False], 1)
    """
    for name, value in (("min_call_rate", min_call_rate), ("min_maf", min_maf),
                        ("hwe_p", hwe_p), ("max_sample_missing", max_sample_missing)):
        _check_fraction(name, value)
    stats = qc_stats(store, chunk_size=chunk_size, midp=midp, progress=progress)
    sample_mask = np.ones(store.n_samples, dtype=bool)
    if max_sample_missing is not None and store.n_variants:
        sample_mask = stats.samples.missing_ct <= max_sample_missing * store.n_variants * (
            1 + _EPS)
    kept = stats
    if not sample_mask.all():
        kept = qc_stats(store, samples=sample_mask, chunk_size=chunk_size, midp=midp,
                        progress=progress)
    vq = kept.variants
    n_kept_samples = int(sample_mask.sum())
    mask = np.ones(store.n_variants, dtype=bool)
    counts: dict[str, int] = {
        "samples": store.n_samples,
        "samples_removed_missing": int(store.n_samples - n_kept_samples),
        "samples_kept": n_kept_samples,
        "variants": store.n_variants,
    }
    if min_call_rate is not None:
        ok = vq.missing_ct <= (1.0 - min_call_rate) * n_kept_samples * (1 + _EPS) + _EPS
        counts["variants_removed_call_rate"] = int(np.count_nonzero(mask & ~ok))
        mask &= ok
    else:
        counts["variants_removed_call_rate"] = 0
    if hwe_p is not None:
        ok = vq.hwe_p >= hwe_p * (1 - _EPS)
        counts["variants_removed_hwe"] = int(np.count_nonzero(mask & ~ok))
        mask &= ok
    else:
        counts["variants_removed_hwe"] = 0
    if min_maf is not None:
        maf = vq.maf
        ok = np.nan_to_num(maf, nan=-1.0) >= min_maf * (1 - _EPS)
        counts["variants_removed_maf"] = int(np.count_nonzero(mask & ~ok))
        mask &= ok
    else:
        counts["variants_removed_maf"] = 0
    counts["variants_kept"] = int(mask.sum())
    thresholds: dict[str, float | None] = {
        "min_call_rate": min_call_rate, "min_maf": min_maf, "hwe_p": hwe_p,
        "max_sample_missing": max_sample_missing,
    }
    return QCFilter(mask, sample_mask, counts, thresholds, stats, kept)


# ------------------------------------------------------------------------------------------
# Reports
# ------------------------------------------------------------------------------------------


def _fmt(values: Any) -> list[str]:
    """Format floats as plink2 prints them (its ``dtoa_g``).

    Six significant digits in ``%g`` layout, ``nan`` when undefined, banker's rounding of ties.

    plink2 treats a 7th-digit remainder within 5e-9 of one half as an exact tie (so values
    such as 2 * 363 * 37 / 400^2 = 0.1678875, stored as 0.16788749999..., print as
    ``0.167888``); everything else is ordinary correct rounding, as Python's ``.6g``.

    Examples
    --------
    >>> _fmt([0.1678875, 0.4053875, 0.0392, 1.0, float("nan"), 1.23456789e-10, 0.0])
    ['0.167888', '0.405388', '0.0392', '1', 'nan', '1.23457e-10', '0']
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    out = [f"{x:.6g}" for x in arr.tolist()]
    finite = np.isfinite(arr) & (arr != 0)
    if finite.any():
        a = np.abs(np.where(finite, arr, 1.0))
        exp10 = np.floor(np.log10(a))
        scaled = a / 10.0 ** (exp10 - 5)
        # log10 can be off by one at powers of ten: bring scaled into [1e5, 1e6)
        exp10 = np.where(scaled >= 1e6, exp10 + 1, np.where(scaled < 1e5, exp10 - 1, exp10))
        scaled = a / 10.0 ** (exp10 - 5)
        whole = np.floor(scaled)
        tie = finite & (np.abs(scaled - whole - 0.5) <= 5e-9)
        for i in np.flatnonzero(tie):
            w = whole[i] + (whole[i] % 2)  # round half to even
            out[i] = f"{np.copysign(w * 10.0 ** (exp10[i] - 5), arr[i]):.6g}"
    return out


def _ints(values: np.ndarray) -> list[str]:
    return [str(x) for x in np.asarray(values).tolist()]


def _write_table(path: Path, header: list[str], columns: list[list[str]]) -> None:
    with atomic_write(path, newline="") as fh:
        fh.write("\t".join(header) + "\n")
        for start in range(0, len(columns[0]) if columns else 0, 65_536):
            rows = zip(*(c[start:start + 65_536] for c in columns), strict=True)
            fh.write("".join("\t".join(r) + "\n" for r in rows))


def write_qc_reports(stats: QCStats, prefix: str | os.PathLike[str]) -> list[Path]:
    """Write ``PREFIX.afreq``, ``.hardy``, ``.vmiss``, ``.smiss`` and ``.het`` as plink2 does.

    Each file is written under a temporary name and renamed when complete.

    Parameters
    ----------
    stats
        Output of :func:`qc_stats` (or ``QCFilter.stats``).
    prefix
        Output path prefix; its folder is created.

    Returns
    -------
    list of Path
        The files written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from secured_bio.genomics import open_genotypes
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "x.vcf").write_text(
    ...     "##fileformat=VCFv4.2\\n#CHROM\\tPOS\\tID\\tREF\\tALT\\tQUAL\\tFILTER\\tINFO\\t"
    ...     "FORMAT\\ta\\tb\\n1\\t5\\trs1\\tA\\tG\\t.\\t.\\t.\\tGT\\t0/1\\t1/1\\n")
    >>> with open_genotypes(d / "x.vcf") as store:
    ...     files = write_qc_reports(qc_stats(store), d / "out" / "qc")
    >>> [f.name for f in files]
    ['qc.afreq', 'qc.hardy', 'qc.vmiss', 'qc.smiss', 'qc.het']
    >>> [line.split("\\t") for line in files[0].read_text().splitlines()]
    [['#CHROM', 'ID', 'REF', 'ALT', 'ALT_FREQS', 'OBS_CT'], ['1', 'rs1', 'A', 'G', '0.75', '4']]
    """
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    vq, sq = stats.variants, stats.samples
    chrom, vid = stats.contig.tolist(), stats.variant_id.tolist()
    ref, alt = stats.ref.tolist(), stats.alt.tolist()
    iid = stats.sample_ids.tolist()
    out = []

    def target(ext: str) -> Path:
        path = prefix.with_name(prefix.name + ext)
        out.append(path)
        return path

    _write_table(target(".afreq"), ["#CHROM", "ID", "REF", "ALT", "ALT_FREQS", "OBS_CT"],
                 [chrom, vid, ref, alt, _fmt(vq.alt_freq), _ints(vq.allele_ct)])
    _write_table(target(".hardy"),
                 ["#CHROM", "ID", "A1", "AX", "HOM_A1_CT", "HET_A1_CT", "TWO_AX_CT",
                  "O(HET_A1)", "E(HET_A1)", "P"],
                 [chrom, vid, ref, alt, _ints(vq.hom_ref_ct), _ints(vq.het_ct),
                  _ints(vq.hom_alt_ct), _fmt(vq.het_obs), _fmt(vq.het_exp), _fmt(vq.hwe_p)])
    _write_table(target(".vmiss"), ["#CHROM", "ID", "MISSING_CT", "OBS_CT", "F_MISS"],
                 [chrom, vid, _ints(vq.missing_ct), _ints(vq.obs_ct), _fmt(vq.f_miss)])
    _write_table(target(".smiss"), ["#IID", "MISSING_CT", "OBS_CT", "F_MISS"],
                 [iid, _ints(sq.missing_ct), _ints(sq.obs_ct), _fmt(sq.f_miss)])
    _write_table(target(".het"), ["#IID", "O(HOM)", "E(HOM)", "OBS_CT", "F"],
                 [iid, _ints(sq.het_hom_ct), _fmt(sq.exp_hom), _ints(sq.het_obs_ct),
                  _fmt(sq.f)])
    return out


def write_qc_filter(result: QCFilter, prefix: str | os.PathLike[str], *,
                    source: str | None = None, pass_lists: bool = True) -> list[Path]:
    """Write a JSON summary of a :func:`qc_filter` run, and what passed.

    Files: ``PREFIX.qc.json`` (format name/version, source file name, thresholds and counts;
    no IDs or values) and, with ``pass_lists``, ``PREFIX.qc_pass.variants.tsv``
    (``#CHROM POS ID REF ALT INDEX``, INDEX = 0-based variant index in the store) and
    ``PREFIX.qc_pass.samples.tsv`` (``#IID INDEX``).  Each is written atomically.

    Parameters
    ----------
    result
        Output of :func:`qc_filter`.
    prefix
        Output path prefix.
    source
        Name of the input, recorded in the summary.
    pass_lists
        Also write the lists of passing variants and samples.

    Returns
    -------
    list of Path
        The files written.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> from secured_bio.genomics import open_genotypes
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "x.vcf").write_text(
    ...     "##fileformat=VCFv4.2\\n#CHROM\\tPOS\\tID\\tREF\\tALT\\tQUAL\\tFILTER\\tINFO\\t"
    ...     "FORMAT\\ta\\tb\\n1\\t5\\trs1\\tA\\tG\\t.\\t.\\t.\\tGT\\t0/1\\t./.\\n")
    >>> with open_genotypes(d / "x.vcf") as store:
    ...     files = write_qc_filter(qc_filter(store, min_call_rate=0.9), d / "qc")
    >>> [f.name for f in files]
    ['qc.qc_pass.variants.tsv', 'qc.qc_pass.samples.tsv', 'qc.qc.json']
    >>> json.loads(files[-1].read_text())["counts"]["variants_removed_call_rate"]
    1
    """
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    st = result.stats
    paths = []
    if pass_lists:
        vi = np.flatnonzero(result.variant_mask)
        si = np.flatnonzero(result.sample_mask)
        paths = [prefix.with_name(prefix.name + ext)
                 for ext in (".qc_pass.variants.tsv", ".qc_pass.samples.tsv")]
        _write_table(paths[0], ["#CHROM", "POS", "ID", "REF", "ALT", "INDEX"],
                     [st.contig[vi].tolist(), _ints(st.position[vi]),
                      st.variant_id[vi].tolist(), st.ref[vi].tolist(), st.alt[vi].tolist(),
                      _ints(vi)])
        _write_table(paths[1], ["#IID", "INDEX"], [st.sample_ids[si].tolist(), _ints(si)])
    summary = {"format": QC_FORMAT_NAME, "format_version": QC_FORMAT_VERSION,
               "source": source, "thresholds": result.thresholds, "counts": result.counts}
    path = prefix.with_name(prefix.name + ".qc.json")
    with atomic_write(path) as fh:
        json.dump(summary, fh, indent=2)
        fh.write("\n")
    return [*paths, path]
