"""Secure multi-site GWAS: each site keeps its genotypes, only pooled sums are revealed.

Every site runs one SMPC party (its own OS process, on its own host if wanted) holding only
its own genotype file (zarr store or VCF/BCF) and its own rows of the phenotype and
covariate files.  It computes the per-variant statistics of
:mod:`secured_bio.genomics.association` locally in plaintext and adds them across sites with
the pairwise-masked secure sums of :mod:`secured_bio.privacy.smpc`
(:func:`~secured_bio.privacy.smpc.secure_sum_many`); the association tests are finalised
from the revealed **sums**, so the result equals the pooled plaintext analysis
(:func:`secured_bio.genomics.gwas_cli.run_gwas` on the merged cohort) up to the fixed-point
rounding described below.

:func:`secure_gwas` runs every site on this host (one process each, loopback TCP);
:func:`run_site` runs one site on its own host (same code path); the CLI commands are
``secured-bio gwas secure`` and ``secured-bio gwas party``.

Threat model
------------
* **Semi-honest sites.**  Every site follows the protocol but may try to learn more from
  what it sees; malicious deviations (false inputs, wrong sums) are not detected.  A site
  that stops answering makes the others fail with :class:`~secured_bio.errors.ProtocolError`
  (``timeout_s`` to connect, then a per-message timeout).
* **Collusion.**  A coalition of sites learns nothing beyond its own inputs and the reveal
  set below, as long as at least two sites stay outside it.  With two sites in total every
  pooled sum minus one's own is the other site's sum: run with three or more.
* **Dealer.**  The secure sums need no correlated randomness, so the default
  ``dealer="none"`` gives nobody material that could decrypt anything (no party-0 "trusted
  first party").  ``dealer="ttp"`` only matters for CrypTen multiplications, which this
  protocol does not use.
* **Network.**  With ``links="relay"`` / ``run_site(link=...)`` every site connects out to a
  relay over mutual TLS (roster certificates only), the masking keys come from an
  Ed25519-signed X25519 exchange and every message is sealed end to end, so neither the relay
  nor the network learns or alters anything (:mod:`secured_bio.privacy.smpc.links`).  The
  default gloo transport (one host) neither encrypts nor authenticates: a passive
  eavesdropper learns the revealed sums, an active one can impersonate a site.  Two sites are
  refused unless ``allow_two_sites``.  CrypTen's own
  ``FixedPointEncoder`` (whose decode is wrong for some negative values, see
  DEPENDENCIES.md) and its Mersenne-Twister zero sharings are not used: the secure sums
  encode and decode fixed point themselves (floor division plus remainder).

Reveal set
----------
Every secure-sum key is listed in :func:`reveal_set`; each site learns exactly these pooled
values (all parties learn them: ``reveal_to="all"``), never one site's own:

* **Metadata (per site, not data):** site names, variant counts, a SHA-256 digest of each
  site's ordered variant list ``(CHROM, POS, REF, ALT)`` and of the analysis options, a
  status flag per protocol step (so all sites stop together), and at the end each site's
  traffic, seconds, peak memory and number of variants dropped by ``intersect``.
* **Every test:** the pooled counts of genotyped samples, of phenotype rows matched, of
  phenotyped samples coded 0, 1, 2 or otherwise (to classify the trait as plink2 does), of
  analysed samples and of samples dropped for a missing phenotype / covariate.
* **Regressions (covariates, and the quantitative trait of ``linear``):** to standardise
  them, the pooled histogram of binary orders of magnitude (``floor(log2|x|)``) of each
  column, the pooled mean, and the histogram of magnitudes of the centred values.
* ``allelic``: per variant the called cases and controls and their ALT dosage sums
  (:class:`~secured_bio.genomics.association.CaseControlSums` without ``alt_sq``).
* ``trend``: the same plus the sum of squared dosages.
* ``linear``: per variant the cross-product matrix of ``[1, covariates, g, y]`` over called
  samples (standardised covariates and trait).
* ``logistic``: the case/control sums of ``trend``; for the covariate-only model and then for
  each variant at every Newton (and step-halving) iteration, the pooled score, information
  matrix and log-likelihood at the current coefficients (with Firth: also the penalised
  score).  The coefficients of every iteration follow from these sums and are known to all.
* ``pcs=K``: per variant the pooled ALT dosage sum and called count (allele frequencies),
  then the pooled covariance ``X X'`` of the standardised genotypes of the PCA variants.
  Each site projects its own samples; no score leaves a site.
* ``intersect=True``: per round, for ``B`` hash buckets (``B >= 8 x`` the largest variant
  count) the number of sites that hold a candidate variant hashing into each bucket, then
  digests of each site's candidate set.  So, for any variant a site can guess, it learns
  how many sites hold it (up to collisions), not which ones; each site's count of dropped
  variants is reported.

Nothing else leaves a site: no genotype, no per-site statistic, no per-sample value
(``tests/genomics/test_secure_gwas.py`` records every message and checks it).  Like any
exact pooled analysis, the pooled statistics may themselves say something about small
cohorts (e.g. the ALT count of a variant carried by one person); that is the price of
pooled-equal results and is not mitigated here (no differential privacy).

Numerics
--------
Counts (case/control sums, allele counts, sample counts, histograms) are summed exactly as
integers.  Float sums are sent as per-sample averages (each site divides by the pooled
number of samples, which is public) in fixed point with :data:`FLOAT_PRECISION_BITS` = 46
fractional bits.  Covariates and the quantitative trait are centred and scaled by a power
of two so that every value is in [-1, 1] (an affine change that leaves every genotype
P-value unchanged; ``BETA`` and ``SE`` are scaled back), dosages are in [0, 2],
``|y - mu| <= 1`` and logistic weights ``<= 1/4``, so every averaged statistic has magnitude
``<= 4`` (the log-likelihood is clipped at ``-2**15 / n_sites`` per sample, far below any
real fit), well inside the protocol's range ``2**(62 - 46) / n_sites`` (21,845 for three
sites).  The rounding error of a pooled average is at most ``n_sites * 2**-47`` (2e-14 for
three sites): relative errors of the statistics of order
1e-12, negligible next to the acceptance bounds (``max |d -log10 P| <= 0.01``) and below the
Newton tolerance of the logistic fits (1e-8 on the step).

Parties move in lockstep: every decision (which variants are still iterating, step
halving, PCA loadings) is a deterministic function of the revealed sums, which are
bit-identical at every site.  The shape check in every secure sum turns any divergence into
a :class:`~secured_bio.errors.ProtocolError` instead of a wrong answer.

References
----------
- Bonawitz K et al. (2017) Practical secure aggregation for privacy-preserving machine
  learning. CCS '17 (pairwise-masked sums).
- Cho H, Wu DJ, Berger B (2018) Secure genome-wide association analysis using multiparty
  computation. Nat Biotechnol 36:547-551; Nasirigerdeh R et al. (2022) sPLINK: a hybrid
  federated tool as a robust alternative to meta-analysis in genome-wide association
  studies. Genome Biol 23:32 (federated GWAS from aggregated statistics).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secured_bio.errors import (
    ConfigError,
    InputError,
    InputFileNotFoundError,
    ProtocolError,
    SchemaError,
    SecuredBioError,
)
from secured_bio.genomics._options import check_options, check_test
from secured_bio.privacy.smpc import (
    LinkConfig,
    ProtocolStats,
    current_party,
    free_port,
    measure,
    run_parties,
    run_party,
    secure_sum_many,
)

if TYPE_CHECKING:
    import pandas as pd

    from secured_bio.genomics.association import LogisticSums
    from secured_bio.genomics.store import GenotypeStore

__all__ = [
    "FLOAT_PRECISION_BITS",
    "PCA_MAX_VARIANTS",
    "SecureGwasRun",
    "reveal_set",
    "run_site",
    "secure_gwas",
]

logger = logging.getLogger(__name__)

Test = Literal["linear", "logistic", "allelic", "trend"]
FirthMode = bool | Literal["fallback"]
_TESTS = ("linear", "logistic", "allelic", "trend")
_BINARY_TESTS = ("logistic", "allelic", "trend")

FLOAT_PRECISION_BITS = 46
"""Fractional bits of the fixed-point float sums (see the module docstring, Numerics)."""
PCA_MAX_VARIANTS = 5000
"""At most this many variants enter the federated PCA (evenly thinned, MAF >= 0.01 when
there are more): the pooled covariance has ``V (V + 1) / 2`` entries to sum securely."""
_PCA_THIN_MIN_MAF = 0.01
_NAME_BYTES = 64
_MAG_LO, _MAG_HI = -60, 61  # binary exponents kept in the magnitude histograms
_CONSTANT_BITS = 30  # a column whose centred spread is 2**-30 of its magnitude is constant
_INTERSECT_ROUNDS = 24
_PROTOCOL_VERSION = 1

_COMMON_REVEAL: dict[str, str] = {
    "status": "per site: 0/1 flag 'this step failed here' (all sites stop together)",
    "site_name": "per site: the site's name",
    "n_variants": "per site: number of variants in its genotype file",
    "variant_digest": "per site: SHA-256 of its ordered (CHROM, POS, REF, ALT) list",
    "options_digest": "per site: SHA-256 of the analysis options",
    "protocol_stats": "per site: bytes/messages/rounds/seconds/peak memory/dropped variants",
    "pheno_classes": "pooled: phenotyped samples, and how many are coded 0, 1, 2, other",
    "pheno_rows_matched": "pooled: phenotype-file rows whose IID is a genotyped sample",
    "n_genotyped": "pooled: genotyped samples",
    "n_used": "pooled: analysed samples (phenotype and every covariate present)",
    "n_case": "pooled: analysed cases (binary traits)",
    "n_missing_phenotype": "pooled: genotyped samples without a phenotype",
    "n_missing_covariates": "pooled: phenotyped samples without every covariate",
}
_STANDARDISE_REVEAL: dict[str, str] = {
    "magnitude": "pooled: histogram of floor(log2|x|) of each standardised column",
    "mean": "pooled: mean of each standardised column",
    "centred_magnitude": "pooled: histogram of floor(log2|x - mean|) of each column",
}
_CC = ("cc_n_case", "cc_n_control", "cc_alt_case", "cc_alt_control", "cc_alt_sq")
_TEST_REVEAL: dict[str, dict[str, str]] = {
    "allelic": {
        "cc_n_case": "per variant: called cases", "cc_n_control": "per variant: called controls",
        "cc_alt_case": "per variant: ALT dosage sum of cases",
        "cc_alt_control": "per variant: ALT dosage sum of controls",
    },
    "linear": {
        "crossprod": "per variant: upper triangle of the cross-product matrix of "
        "[1, covariates, g, y] over called samples, divided by the pooled sample count",
    },
    "logistic": {
        "null_gradient": "per Newton iteration of the covariate-only model: pooled score",
        "null_hessian": "per Newton iteration of the covariate-only model: pooled information",
        "null_loglik": "per Newton iteration of the covariate-only model: log-likelihood",
        "gradient": "per variant and Newton/halving iteration: pooled (Firth: penalised) score",
        "hessian": "per variant and Newton/halving iteration: pooled information matrix",
        "loglik": "per variant and Newton/halving iteration: pooled log-likelihood",
    },
}
_TEST_REVEAL["trend"] = {**_TEST_REVEAL["allelic"],
                         "cc_alt_sq": "per variant: sum of squared ALT dosages"}
_TEST_REVEAL["logistic"] = {**_TEST_REVEAL["trend"], **_TEST_REVEAL["logistic"]}
_PCA_REVEAL: dict[str, str] = {
    "pca_alt": "per variant: pooled ALT dosage sum over all genotyped samples",
    "pca_called": "per variant: pooled called genotypes over all genotyped samples",
    "pca_covariance": "pooled covariance X X' of the standardised PCA variants (/ samples)",
}
_INTERSECT_REVEAL: dict[str, str] = {
    "bucket_sites": "per hash bucket and round: number of sites holding a candidate variant",
    "candidate_digest": "per site and round: SHA-256 of its candidate variant set",
    "ordered_digest": "per site: SHA-256 of its common variants in file order",
}


def reveal_set(
    test: str, *, covariates: bool = False, pcs: int = 0, intersect: bool = False
) -> dict[str, str]:
    """Name and describe every value the sites learn in one secure GWAS run.

    The names are the keys of the secure sums; nothing outside these leaves a site.

    Parameters
    ----------
    test
        ``linear``, ``logistic``, ``allelic`` or ``trend``.
    covariates
        Whether covariates (or principal components) are used.
    pcs
        Number of principal components.
    intersect
        Whether the variant lists are intersected.

    Returns
    -------
    dict
        Secure-sum key to a description of what it reveals.

    Raises
    ------
    ConfigError
        If ``test`` is unknown.

    Examples
    --------
    >>> sorted(k for k in reveal_set("allelic") if k.startswith("cc_"))
    ['cc_alt_case', 'cc_alt_control', 'cc_n_case', 'cc_n_control']
    >>> "crossprod" in reveal_set("linear"), "gradient" in reveal_set("logistic")
    (True, True)
    """
    check_test(test)
    out = dict(_COMMON_REVEAL)
    if test == "linear" or covariates or pcs:
        out.update(_STANDARDISE_REVEAL)
    out.update(_TEST_REVEAL[test])
    if pcs:
        out.update(_PCA_REVEAL)
    if intersect:
        out.update(_INTERSECT_REVEAL)
    return out


# ------------------------------------------------------------------------------- options
@dataclass(frozen=True)
class _Options:
    """Analysis options; identical at every site (checked with a digest)."""

    pheno: str
    test: str
    pheno_name: str | None = None
    covar: str | None = None
    covar_names: tuple[str, ...] | None = None
    pcs: int = 0
    firth: FirthMode = False
    intersect: bool = False
    chunk_size: int | None = None
    dealer: str = "none"

    def digest_words(self) -> list[int]:
        public = {"v": _PROTOCOL_VERSION, "test": self.test, "pheno_name": self.pheno_name,
                  "covar": self.covar is not None, "covar_names": self.covar_names,
                  "pcs": self.pcs, "firth": self.firth, "intersect": self.intersect,
                  "chunk_size": self.chunk_size}
        return _words(hashlib.sha256(json.dumps(public, sort_keys=True).encode()).digest())


@dataclass(frozen=True)
class _PartyArg:
    """What one party process gets (picklable)."""

    site: str
    path: str
    options: _Options
    out: str | None  # rank 0 writes the outputs
    progress: bool = False


@dataclass(frozen=True)
class SecureGwasRun:
    """What :func:`secure_gwas` or :func:`run_site` did.

    Attributes
    ----------
    results
        One row per analysed variant: variant columns, statistics, ``A1_FREQ``, ``ERRCODE``
        (the same table as :func:`~secured_bio.genomics.gwas_cli.run_gwas`).
    paths
        Files written by party rank 0 (empty at other sites).
    summary
        The JSON summary (with a ``protocol`` section).
    protocol
        Site name to that party's :class:`~secured_bio.privacy.smpc.ProtocolStats` over the
        whole site protocol (loading included).
    dropped_variants
        Site name to the number of its variants left out by ``intersect`` (0 otherwise).
    """

    results: pd.DataFrame
    paths: dict[str, Path]
    summary: dict[str, Any]
    protocol: dict[str, ProtocolStats]
    dropped_variants: dict[str, int]


@dataclass
class _Outcome:
    """A party's return value: its run, or the error all parties agreed to stop on."""

    run: SecureGwasRun | None = None
    error: BaseException | None = None


# ------------------------------------------------------------------------ small helpers
def _words(digest: bytes) -> list[int]:
    """Bytes as 16-bit words (public values must fit the secure sum's integer range)."""
    return np.frombuffer(digest, dtype="<u2").astype(np.int64).tolist()


def _name_bytes(name: str) -> list[int]:
    raw = name.encode()[:_NAME_BYTES]
    return list(raw) + [0] * (_NAME_BYTES - len(raw))


def _decode_name(values: NDArray[np.int64]) -> str:
    return bytes(int(v) for v in values if v).decode(errors="replace")


def _variant_hashes(store: GenotypeStore) -> NDArray[np.uint64]:
    """64-bit BLAKE2b of ``CHROM \\t POS \\t REF \\t ALT`` per variant."""
    out = np.empty(store.n_variants, dtype=np.uint64)
    for i, (c, p, r, a) in enumerate(zip(store.contig, store.position, store.ref, store.alt,
                                         strict=True)):
        key = f"{c}\t{int(p)}\t{r}\t{a}".encode()
        out[i] = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")
    return out


def _list_digest(hashes: NDArray[np.uint64]) -> list[int]:
    h = hashlib.sha256(len(hashes).to_bytes(8, "little"))
    h.update(np.ascontiguousarray(hashes, dtype="<u8").tobytes())
    return _words(h.digest())


def _mix(h: NDArray[np.uint64], salt: int) -> NDArray[np.uint64]:
    """splitmix64 finaliser of ``h`` xor a salt: a fresh bucket hash per intersect round."""
    with np.errstate(over="ignore"):
        x = h ^ np.uint64((0x9E3779B97F4A7C15 * (salt + 1)) & 0xFFFFFFFFFFFFFFFF)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _upper(m: NDArray[np.float64]) -> NDArray[np.float64]:
    """Upper triangles of ``(V, p, p)`` symmetric matrices, ``(V, p (p + 1) / 2)``."""
    iu = np.triu_indices(m.shape[-1])
    return m[..., iu[0], iu[1]]


def _symmetric(u: NDArray[np.float64], p: int) -> NDArray[np.float64]:
    iu = np.triu_indices(p)
    out = np.empty((*u.shape[:-1], p, p))
    out[..., iu[0], iu[1]] = u
    out[..., iu[1], iu[0]] = u
    return out


def _magnitudes(x: NDArray[np.float64]) -> NDArray[np.int64]:
    """Per column, the histogram of binary exponents ``e`` with ``|x| < 2**e`` (zeros left out).

    ``x`` is ``(n, c)``; the result ``(c, _MAG_HI - _MAG_LO + 1)``.
    """
    bins = _MAG_HI - _MAG_LO + 1
    out = np.zeros((x.shape[1], bins), dtype=np.int64)
    for j in range(x.shape[1]):
        v = x[:, j]
        v = v[v != 0]
        if v.size:
            e = np.clip(np.frexp(np.abs(v))[1], _MAG_LO, _MAG_HI) - _MAG_LO
            out[j] = np.bincount(e, minlength=bins)
    return out


def _top_exponent(hist: NDArray[np.int64]) -> int | None:
    nz = np.flatnonzero(hist)
    return None if nz.size == 0 else int(nz[-1]) + _MAG_LO


def _loglik_floor(n_sites: int) -> float:
    """Return the floor of the per-sample average log-likelihood sent in a secure sum.

    Far below any real fit (-10,922 for three sites) and half the fixed-point range, so a
    wild Newton trial step cannot overflow the encoding.
    """
    return -(2.0 ** (62 - FLOAT_PRECISION_BITS)) / (2 * n_sites)


def _default_chunk(n_used: int, *, bytes_per_call: int = 8) -> int:
    """Variants per block: ~128 MiB of dosages per block and site at most, 256..10,000.

    ``bytes_per_call`` is 8 for float64 dosages, 1 for the int8 codes of the linear and
    logistic tests (so their blocks are 8x longer: fewer secure-sum rounds for the same
    memory; the logistic test holds a second, signed int8 copy of its block).
    """
    per_variant = max(n_used, 1) * bytes_per_call
    return int(min(10_000, max(256, (1 << 27) // per_variant)))


def _peak_rss_kib() -> int:
    """Peak resident memory of this process image (KiB).

    ``VmHWM`` of ``/proc/self/status``: ``ru_maxrss`` survives ``execve``, so in a spawned
    party it would include the launcher's memory at fork time.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:  # pragma: no cover - not Linux
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _code_blocks(
    store: GenotypeStore, keep: NDArray[np.int64], size: int,
    samples: NDArray[np.bool_] | None,
) -> Iterator[NDArray[np.int8]]:
    """Yield int8 ALT dosage codes ``(<= size, n_selected)`` of the store rows ``keep``.

    Codes are 0, 1, 2 (haploid 0, 1) and -1 for a missing call: the values of
    :func:`~secured_bio.genomics.store.genotype_dosage` in one byte.  ``keep`` is sorted;
    every site yields blocks of the same sizes (``keep`` has the same length everywhere),
    so the secure sums of a block have the same shape at every site.  Each stored chunk
    is decoded once and coded for all samples before the analysed ones are picked (a
    1-byte column selection instead of a 2-byte gather of call pairs); memory is bounded
    by one stored chunk plus one block.
    """
    from secured_bio.genomics.store import _genotype_codes

    step = store.chunk_size
    cols = None if samples is None or bool(np.all(samples)) else np.asarray(samples, bool)
    pending: list[NDArray[np.int8]] = []
    n_pending = 0
    pos = 0
    while pos < keep.size:
        c0 = int(keep[pos]) // step * step
        c1 = min(c0 + step, store.n_variants)
        stop = int(np.searchsorted(keep, c1, side="left"))
        gt = store.read_genotypes(slice(c0, c1))
        rows = keep[pos:stop] - c0
        codes = _genotype_codes(gt if rows.size == c1 - c0 else gt[rows])
        del gt
        if cols is not None:
            codes = np.compress(cols, codes, axis=1)
        i = 0
        while i < rows.size:
            take = min(size - n_pending, rows.size - i)
            pending.append(codes[i:i + take])
            n_pending += take
            i += take
            if n_pending == size:
                yield pending[0] if len(pending) == 1 else np.concatenate(pending)
                pending, n_pending = [], 0
        pos = stop
    if pending:
        yield pending[0] if len(pending) == 1 else np.concatenate(pending)


def _dosage_blocks(
    store: GenotypeStore, keep: NDArray[np.int64], size: int,
    samples: NDArray[np.bool_] | None,
) -> Iterator[NDArray[np.float64]]:
    """Yield float64 ALT dosages (NaN = missing) of the blocks of :func:`_code_blocks`."""
    for codes in _code_blocks(store, keep, size, samples):
        d = codes.astype(np.float64)
        d[codes < 0] = np.nan
        yield d


def _agreed(error: BaseException, role: Literal["primary", "echo"]) -> BaseException:
    """Mark an error that every party raises at the same protocol step."""
    error._secured_bio_agreed = role  # type: ignore[attr-defined]
    return error


# ------------------------------------------------------------------------- the session
class _Session:
    """Hold one site's side of the protocol: rank, site names, gathers, checkpoints."""

    def __init__(self, site: str) -> None:
        info = current_party()
        self.rank, self.n = info.rank, info.world_size
        self.site = site
        self.names = [f"rank {r}" for r in range(self.n)]

    def label(self, rank: int) -> str:
        return f"site '{self.names[rank]}' (party rank {rank})"

    def gather(self, values: Mapping[str, ArrayLike]) -> dict[str, NDArray[np.int64]]:
        """Return every party's public integer vector, ``(n_parties, k)`` per key.

        Built on the secure sum with each party filling only its own row: the masked
        messages look the same as for statistics, and the reveal is exactly the rows.
        """
        slots = {}
        for key, value in values.items():
            row = np.asarray(value, dtype=np.int64).ravel()
            slot = np.zeros((self.n, row.size), dtype=np.int64)
            slot[self.rank] = row
            slots[key] = slot
        out = secure_sum_many(slots, precision_bits=0)
        assert out is not None
        return out

    def counts(self, values: Mapping[str, ArrayLike]) -> dict[str, NDArray[np.int64]]:
        """Return the exact pooled sums of integer-valued arrays."""
        ints = {k: np.rint(np.asarray(v, dtype=np.float64)).astype(np.int64)
                if np.asarray(v).dtype.kind == "f" else np.asarray(v, dtype=np.int64)
                for k, v in values.items()}
        out = secure_sum_many(ints, precision_bits=0)
        assert out is not None
        return out

    def averages(self, values: Mapping[str, ArrayLike], n: float
                 ) -> dict[str, NDArray[np.float64]]:
        """Return pooled sums of float arrays, sent as per-sample averages (fixed point)."""
        scaled = {k: np.asarray(v, dtype=np.float64) / n for k, v in values.items()}
        out = secure_sum_many(scaled, precision_bits=FLOAT_PRECISION_BITS)
        assert out is not None
        return {k: v * n for k, v in out.items()}

    def checkpoint(self, failure: BaseException | None, stage: str,
                   extra: Mapping[str, ArrayLike] | None = None
                   ) -> dict[str, NDArray[np.int64]]:
        """Gather a failed/ok flag (and ``extra``); if any site failed, every site stops here."""
        out = self.gather({"status": [0 if failure is None else 1], **(extra or {})})
        if "site_name" in out:
            self.names = [_decode_name(row) or f"rank {r}"
                          for r, row in enumerate(out["site_name"])]
        failed = np.flatnonzero(out["status"][:, 0])
        if failed.size == 0:
            return out
        if failure is not None:
            failure.add_note(f"{self.label(self.rank)} failed while {stage}; every site stopped")
            failure._secured_bio_site = self.label(self.rank)  # type: ignore[attr-defined]
            raise _agreed(failure, "primary")
        raise _agreed(ProtocolError(
            f"{', '.join(self.label(int(r)) for r in failed)} failed while {stage}",
            where=self.label(self.rank),
            fix="see the failing site's message or log; every site stopped at the same step",
        ), "echo")

    def agreed(self, error: SecuredBioError) -> SecuredBioError:
        """Mark an error that every site raises at the same step (from public values only)."""
        return _agreed(error, "primary")  # type: ignore[return-value]


# ------------------------------------------------------------------- local site inputs
@dataclass
class _SiteData:
    """One site's own inputs (never leave the site)."""

    store: GenotypeStore
    hashes: NDArray[np.uint64]
    y: NDArray[np.float64]  # (n,) NaN = missing; binary still in file coding here
    covariates: NDArray[np.float64]  # (n, c) NaN = missing
    covariate_names: tuple[str, ...]
    pheno_column: str
    pheno_rows: int  # rows of this site's phenotype file
    pheno_matched: int  # of them, this site's genotyped samples
    load_s: float


def _pick_column(table: pd.DataFrame, names: Sequence[str] | None, *, source: str,
                 option: str, what: str) -> list[str]:
    from secured_bio.genomics import phenotypes as ph

    return ph._pick_columns(table, names, source=source, option=option, what=what)


def _load_site(site: str, path: str, opts: _Options) -> _SiteData:
    """Open the site's genotypes and read its own rows of the phenotype/covariate files."""
    from secured_bio.genomics import phenotypes as ph
    from secured_bio.genomics.store import open_genotypes

    t0 = time.perf_counter()
    try:
        store = open_genotypes(path)
    except SecuredBioError as e:
        e.add_note(f"genotype input of site '{site}': {path}")
        raise
    try:
        ids = [str(s) for s in store.sample_ids]
        table = ph.read_pheno_table(opts.pheno, kind="phenotype")
        column = _pick_column(table, [opts.pheno_name] if opts.pheno_name else None,
                              source=opts.pheno, option="--pheno-name", what="phenotype")[0]
        matched = int(table.index.isin(ids).sum())
        if matched == 0:
            raise InputError(
                f"no sample of site '{site}' is in the phenotype file", where=opts.pheno,
                expected=f"IIDs that match the sample IDs of {path}",
                got=f"0 of {len(table)} rows match the site's {len(ids)} genotyped samples",
                fix="check that the phenotype file covers this site and that its IID column "
                "holds the VCF sample names (FIDs are not used for matching)",
            )
        y = table[column].reindex(ids).to_numpy(dtype=np.float64)
        if not np.isfinite(y).any():
            raise InputError(
                f"site '{site}' has no phenotyped sample", where=f"{opts.pheno}: column "
                f"'{column}'", expected="a value for at least one of the site's samples",
                got=f"{matched} of its {len(ids)} samples in the file, every value missing",
                fix="drop the site from the analysis or choose another --pheno-name",
            )
        cov = np.empty((len(ids), 0))
        names: tuple[str, ...] = ()
        if opts.covar is not None:
            ctab = ph.read_pheno_table(opts.covar, kind="covariate")
            picked = _pick_column(ctab, opts.covar_names, source=opts.covar,
                                  option="--covar-name", what="covariate")
            if not ctab.index.isin(ids).any():
                raise InputError(
                    f"no sample of site '{site}' is in the covariate file", where=opts.covar,
                    expected=f"IIDs that match the sample IDs of {path}",
                    got=f"0 of {len(ctab)} rows match the site's {len(ids)} genotyped samples",
                    fix="check that the covariate file covers this site",
                )
            cov = ctab[picked].reindex(ids).to_numpy(dtype=np.float64)
            names = tuple(picked)
        hashes = _variant_hashes(store)
    except BaseException:
        store.close()
        raise
    return _SiteData(store=store, hashes=hashes, y=y, covariates=cov, covariate_names=names,
                     pheno_column=column, pheno_rows=len(table), pheno_matched=matched,
                     load_s=time.perf_counter() - t0)


# ---------------------------------------------------------------------- protocol steps
def _check_variants(sess: _Session, info: Mapping[str, NDArray[np.int64]], data: _SiteData,
                    opts: _Options) -> NDArray[np.int64]:
    """Return the variants to analyse (all, or the intersection); same count everywhere."""
    digests = [tuple(row) for row in info["variant_digest"].tolist()]
    counts = info["n_variants"][:, 0]
    if len(set(digests)) == 1:
        return np.arange(data.store.n_variants, dtype=np.int64)
    if not opts.intersect:
        groups: dict[tuple[int, ...], list[int]] = {}
        for r, d in enumerate(digests):
            groups.setdefault(d, []).append(r)
        ref = max(groups.values(), key=lambda g: (len(g), -g[0]))
        differ = [r for r in range(sess.n) if r not in ref]
        raise sess.agreed(ProtocolError(
            "the sites hold different variant lists: "
            + ", ".join(sess.label(r) for r in differ) + " differ from "
            + ", ".join(sess.label(r) for r in ref),
            where="variant lists (CHROM, POS, REF, ALT, in file order)",
            expected="the same variants in the same order at every site",
            got="; ".join(f"{int(counts[r])} variants at site '{sess.names[r]}'"
                          for r in range(sess.n)),
            fix="harmonise the files (same reference, multi-allelic split, order) or pass "
            "--intersect to analyse the variants common to every site",
        ))
    return _intersect(sess, data.hashes, int(counts.max()))


def _intersect(sess: _Session, hashes: NDArray[np.uint64], largest: int) -> NDArray[np.int64]:
    """Return the variants every site holds, by secure counting in hash buckets.

    Each round a site marks the buckets of its candidate variants; the pooled count says in
    how many sites each bucket is marked, and a site keeps the candidates whose bucket is
    marked everywhere.  A common variant is never dropped; a collision can keep a variant
    that is not common, so rounds repeat with a fresh hash until every site's candidate set
    has the same digest.
    """
    n_buckets = 1 << max(12, int(np.ceil(np.log2(8 * max(largest, 1)))))
    cand = np.ones(hashes.size, dtype=bool)
    for attempt in range(_INTERSECT_ROUNDS):
        idx = np.flatnonzero(cand)
        buckets = (_mix(hashes[idx], attempt) & np.uint64(n_buckets - 1)).astype(np.int64)
        marks = np.zeros(n_buckets, dtype=np.int64)
        marks[buckets] = 1
        total = sess.counts({"bucket_sites": marks})["bucket_sites"]
        cand[idx[total[buckets] < sess.n]] = False
        digests = sess.gather({"candidate_digest": _list_digest(np.sort(hashes[cand]))})
        if len({tuple(r) for r in digests["candidate_digest"].tolist()}) == 1:
            break
    else:  # pragma: no cover - needs ~24 consecutive collisions
        raise sess.agreed(ProtocolError(
            "the variant intersection did not converge", where="intersect",
            fix="rerun; if it persists, report it"))
    keep = np.flatnonzero(cand).astype(np.int64)
    ordered = sess.gather({"ordered_digest": _list_digest(hashes[keep])})["ordered_digest"]
    if len({tuple(r) for r in ordered.tolist()}) != 1:
        raise sess.agreed(ProtocolError(
            "the sites list their common variants in different orders",
            where="variant lists (CHROM, POS, REF, ALT)",
            expected="the same order at every site (e.g. sorted by contig and position)",
            fix="sort every VCF the same way (bcftools sort) before the analysis",
        ))
    if keep.size == 0:
        raise sess.agreed(InputError(
            "no variant is common to all sites", where="intersect",
            expected="at least one variant (CHROM, POS, REF, ALT) present at every site",
            got="0", fix="check that the sites use the same reference build and contig names",
        ))
    return keep


@dataclass
class _Trait:
    kind: Literal["quantitative", "binary"]
    coding: str | None
    n_genotyped: int
    n_matched: int


def _classify_trait(sess: _Session, data: _SiteData, opts: _Options) -> _Trait:
    """Classify the phenotype as plink2 does, from pooled counts of 0/1/2/other values."""
    y = data.y
    present = np.isfinite(y)
    n0, n1, n2 = (int(np.sum(y == v)) for v in (0.0, 1.0, 2.0))
    classes = [int(present.sum()), n0, n1, n2, int(present.sum()) - n0 - n1 - n2]
    out = sess.counts({"pheno_classes": classes, "pheno_rows_matched": [data.pheno_matched],
                       "n_genotyped": [data.store.n_samples]})
    n_present, t0, t1, t2, other = (int(v) for v in out["pheno_classes"])
    where = f"{opts.pheno}: column '{data.pheno_column}'"
    kind: Literal["quantitative", "binary"]
    if other == 0 and t0 == 0:
        kind, coding, distinct = "binary", "1/2", int(t1 > 0) + int(t2 > 0)
    elif other == 0 and t2 == 0:
        kind, coding, distinct = "binary", "0/1", int(t0 > 0) + int(t1 > 0)
    else:
        kind, coding, distinct = "quantitative", None, 2  # constant checked later
    if distinct < 2:
        raise sess.agreed(SchemaError(
            "constant phenotype", where=where,
            expected="at least 2 distinct values among the genotype samples",
            got=f"1 distinct value in {n_present} samples",
            fix="choose another column with --pheno-name",
        ))
    if opts.test in _BINARY_TESTS and kind != "binary":
        raise sess.agreed(InputError(
            "case/control test on a quantitative trait", where=where,
            expected="a binary trait coded 1/2 (1 = control, 2 = case) or 0/1 "
            "(missing as NA or -9)",
            got=f"{other} values other than 0, 1 and 2",
            fix="use --test linear for a quantitative trait, or recode the column",
        ))
    if kind == "binary" and coding == "1/2":
        data.y = y - 1.0
    return _Trait(kind, coding, int(out["n_genotyped"][0]), int(out["pheno_rows_matched"][0]))


def _federated_pca(sess: _Session, store: GenotypeStore, keep: NDArray[np.int64], k: int,
                   n_genotyped: int, block: int) -> tuple[NDArray[np.float64], dict[str, Any]]:
    """Principal components of all genotyped samples, from securely summed products.

    Pooled allele frequencies (exact counts), then the pooled covariance ``X X'`` of the
    variance-standardised genotypes (:func:`~secured_bio.genomics.pca.covariance_sums`,
    mean imputation) of at most :data:`PCA_MAX_VARIANTS` variants; every site decomposes it
    (:func:`~secured_bio.genomics.pca.pca_from_covariance`) and projects its own samples
    (:func:`~secured_bio.genomics.pca.project`).  Equals ``plink2 --pca K meanimpute`` on the
    pooled cohort when no thinning is needed (up to the sign of each component).
    """
    from secured_bio.genomics import pca

    if k >= n_genotyped:
        raise sess.agreed(ConfigError(
            "too many principal components", where="--pcs",
            expected=f"fewer than the {n_genotyped} genotype samples", got=str(k),
        ))
    alt, called = [], []
    for d in _dosage_blocks(store, keep, block, None):
        s = pca.allele_frequency_sums(d)
        alt.append(s.alt)
        called.append(s.called)
    tot = sess.counts({"pca_alt": np.concatenate(alt), "pca_called": np.concatenate(called)})
    freq = pca.alt_frequency(pca.AlleleSums(tot["pca_alt"].astype(np.float64),
                                            tot["pca_called"].astype(np.float64)))
    poly = np.flatnonzero(np.isfinite(freq) & (freq > 0) & (freq < 1))
    thinned = poly.size > PCA_MAX_VARIANTS
    if thinned:
        maf = np.minimum(freq[poly], 1 - freq[poly])
        common = poly[maf >= _PCA_THIN_MIN_MAF]
        pick = np.unique(np.rint(np.linspace(0, common.size - 1, PCA_MAX_VARIANTS)).astype(int))
        poly = common[pick] if common.size else common
    if poly.size <= k:
        raise sess.agreed(InputError(
            "too few polymorphic variants for the principal components", where="--pcs",
            expected=f"more than {k} variants with 0 < ALT frequency < 1", got=str(poly.size),
        ))
    p = freq[poly]
    # This site's dosages of the PCA variants, kept as int8 (-1 = missing): V x n bytes.
    codes = np.concatenate(list(_code_blocks(store, keep[poly], block, None)))
    n_site = codes.shape[1]
    step = max(1, (1 << 22) // max(poly.size, 1))

    def dosage(lo: int) -> NDArray[np.float64]:
        c = codes[:, lo:lo + step].astype(np.float64)
        c[c < 0] = np.nan
        return c

    cov = np.zeros((poly.size, poly.size))
    for lo in range(0, n_site, step):
        cov += pca.covariance_sums(dosage(lo), alt_freq=p)
    pooled = sess.averages({"pca_covariance": _upper(cov)}, n_genotyped)["pca_covariance"]
    loadings, values = pca.pca_from_covariance(_symmetric(pooled, poly.size), n_components=k,
                                               n_variants=int(poly.size))
    scores = np.concatenate([pca.project(dosage(lo), alt_freq=p, loadings=loadings,
                                         eigenvalues=values)
                             for lo in range(0, n_site, step)]) if n_site else np.empty((0, k))
    return scores, {"n_variants": int(poly.size), "thinned": bool(thinned),
                    "max_variants": PCA_MAX_VARIANTS}


@dataclass
class _Samples:
    """The analysed samples of this site and the public standardisation."""

    mask: NDArray[np.bool_]
    y: NDArray[np.float64]  # analysed samples; standardised for linear
    z: NDArray[np.float64]  # (n_used_site, c) standardised covariates
    names: tuple[str, ...]
    n_used: int  # pooled
    n_case: int | None
    n_missing_phenotype: int
    n_missing_covariates: int
    y_scale: float  # BETA/SE multiplier (linear)


def _standardise(sess: _Session, cols: NDArray[np.float64], n_used: int,
                 labels: Sequence[tuple[str, str, str]]) -> NDArray[np.float64]:
    """Centre and scale each column by public pooled values into [-1, 1] (returns scales).

    ``labels[j]`` = (kind, source, name) for the constant-column error.  Returns a
    ``(2, c)`` array of centres and scales; ``cols`` is standardised in place.
    """
    c = cols.shape[1]
    params = np.zeros((2, c))
    if c == 0:
        return params
    mags = sess.counts({"magnitude": _magnitudes(cols)})["magnitude"]
    top = [_top_exponent(h) for h in mags]
    scale1 = np.array([2.0 ** (t if t is not None else 0) for t in top])
    sums = sess.averages({"mean": (cols / scale1).sum(axis=0)}, n_used)["mean"]
    means = sums / n_used * scale1
    centred = cols - means
    mags2 = sess.counts({"centred_magnitude": _magnitudes(centred)})["centred_magnitude"]
    for j, h in enumerate(mags2):
        t1, t2 = top[j], _top_exponent(h)
        if t1 is None or t2 is None or t2 <= t1 - _CONSTANT_BITS:
            kind, source, name = labels[j]
            what = "constant phenotype among the analysed samples" if kind == "phenotype" \
                else "constant covariate among the analysed samples"
            raise sess.agreed(SchemaError(
                what, where=f"{source}: column '{name}'", expected="at least 2 distinct values",
                got="1 distinct value", fix="check the covariates' missing values"
                if kind == "phenotype" else "drop it from --covar-name",
            ))
        params[1, j] = 2.0 ** t2
    params[0] = means
    cols -= means
    cols /= params[1]
    return params


def _analysis_samples(sess: _Session, data: _SiteData, trait: _Trait, opts: _Options,
                      pcs: NDArray[np.float64] | None) -> _Samples:
    """Drop samples without a phenotype or covariate; standardise covariates (and y)."""
    cov = data.covariates
    names = list(data.covariate_names)
    sources = [str(opts.covar)] * len(names)
    if pcs is not None:
        cov = np.concatenate([cov, pcs], axis=1)
        names += [f"PC{i + 1}" for i in range(pcs.shape[1])]
        sources += ["genotypes"] * pcs.shape[1]
    has_y = np.isfinite(data.y)
    has_cov = np.isfinite(cov).all(axis=1)
    mask = has_y & has_cov
    failure = None
    if not mask.any():
        failure = InputError(
            f"no sample of site '{sess.site}' has the phenotype and all covariates",
            where=f"{opts.pheno}: column '{data.pheno_column}'",
            expected="at least 1 sample with every value present",
            got=f"{int(has_y.sum())} with the phenotype, {int(has_cov.sum())} with all "
            "covariates, none with both", fix="check the covariate file and --covar-name",
        )
    sess.checkpoint(failure, "selecting its analysed samples")
    y = data.y[mask]
    binary = opts.test != "linear" or trait.kind == "binary"
    counts = sess.counts({
        "n_used": [int(mask.sum())], "n_case": [int(y.sum()) if trait.kind == "binary" else 0],
        "n_missing_phenotype": [int((~has_y).sum())],
        "n_missing_covariates": [int((has_y & ~has_cov).sum())],
    })
    n_used = int(counts["n_used"][0])
    n_case = int(counts["n_case"][0]) if trait.kind == "binary" else None
    where = f"{opts.pheno}: column '{data.pheno_column}'"
    if binary and n_case is not None and (n_case == 0 or n_case == n_used):
        raise sess.agreed(InputError(
            "case/control trait has only one class among the analysed samples", where=where,
            expected="cases and controls", got=f"{n_case} cases, {n_used - n_case} controls",
            fix="check the coding (1/2 or 0/1) and the covariates' missing values",
        ))
    std_y = opts.test == "linear"
    cols = np.concatenate([y[:, None], cov[mask]], axis=1) if std_y else cov[mask].copy()
    labels = ([("phenotype", opts.pheno, data.pheno_column)] if std_y else []) + [
        ("covariate", s, nm) for s, nm in zip(sources, names, strict=True)]
    params = _standardise(sess, cols, n_used, labels)
    z = cols[:, 1:] if std_y else cols
    return _Samples(
        mask=mask, y=cols[:, 0].copy() if std_y else y, z=np.ascontiguousarray(z),
        names=tuple(names), n_used=n_used, n_case=n_case,
        n_missing_phenotype=int(counts["n_missing_phenotype"][0]),
        n_missing_covariates=int(counts["n_missing_covariates"][0]),
        y_scale=float(params[1, 0]) if std_y else 1.0,
    )


# ------------------------------------------------------------------------------ tests
def _case_control(sess: _Session, local: Any, fields: Sequence[str]) -> Any:
    from secured_bio.genomics.association import CaseControlSums

    tot = sess.counts({f"cc_{f}": getattr(local, f) for f in fields})
    v = len(local.n_case)
    return CaseControlSums(**{f: tot[f"cc_{f}"].astype(np.float64) if f in fields
                              else np.zeros(v) for f in
                              ("n_case", "n_control", "alt_case", "alt_control", "alt_sq")})


def _linear_block(sess: _Session, codes: NDArray[np.int8], s: _Samples) -> pd.DataFrame:
    from secured_bio.genomics import association as assoc

    w = np.column_stack([np.ones(s.y.size), s.z, s.y])  # [1, covariates, y]
    local = assoc._linear_sums_codes(codes, w)
    p = local.crossprod.shape[1]
    pooled = sess.averages({"crossprod": _upper(local.crossprod)}, s.n_used)["crossprod"]
    m = _symmetric(pooled, p)
    m[:, 0, 0] = np.rint(m[:, 0, 0])  # called samples: an integer
    part = assoc.linear_finalize(assoc.LinearSums(crossprod=m))
    part["BETA"] *= s.y_scale
    part["SE"] *= s.y_scale
    return part


def _null_logistic(sess: _Session, s: _Samples) -> NDArray[np.float64]:
    """Covariate-only logistic fit by Newton with securely summed score and information."""
    from scipy import special

    from secured_bio.genomics import association as assoc

    z = np.column_stack([np.ones(s.y.size), s.z])
    k = z.shape[1]

    def sums_at(beta: NDArray[np.float64], rows: NDArray[np.intp],
                inv: NDArray[np.float64] | None) -> LogisticSums:
        eta = z @ beta[0]
        mu = special.expit(eta)
        w = mu * (1 - mu)
        local = {
            "null_gradient": (z.T @ (s.y - mu))[None],
            "null_hessian": _upper((z * w[:, None]).T @ z)[None],
            "null_loglik": np.maximum(np.array([np.sum(s.y * eta - np.logaddexp(0, eta))]),
                                      _loglik_floor(sess.n) * s.n_used),
        }
        tot = sess.averages(local, s.n_used)
        return assoc.LogisticSums(gradient=tot["null_gradient"],
                                  hessian=_symmetric(tot["null_hessian"], k),
                                  loglik=tot["null_loglik"], n=np.array([float(s.n_used)]))

    fit = assoc.fit_logistic(sums_at, np.zeros((1, k)), firth=False, max_iter=50)
    if fit.errcode[0] != ".":
        raise sess.agreed(InputError(
            "the covariate-only logistic model does not converge", where="covariates",
            expected="covariates that do not separate cases from controls",
            got="no convergence in 50 Newton steps",
            fix="drop covariates that predict case status perfectly",
        ))
    return np.asarray(fit.beta[0])


def _logistic_block(sess: _Session, codes: NDArray[np.int8], s: _Samples,
                    null_beta: NDArray[np.float64], firth: FirthMode) -> pd.DataFrame:
    """Fit one block of variants: every Newton step of all its variants in one secure sum.

    The block stays in one-byte codes (converted to float a cache-sized slab at a time
    inside the sums), so a block is 8x longer than with float dosages for the same memory
    and the protocol makes 8x fewer rounds.
    """
    from secured_bio.genomics import association as assoc

    z = np.column_stack([np.ones(s.y.size), s.z])
    k = z.shape[1]
    prep = assoc._LogisticData.build_codes(codes, s.y, z)
    cc = _case_control(sess, prep.case_control(), ("n_case", "n_control", "alt_case",
                                                    "alt_control", "alt_sq"))
    obs = cc.n_case + cc.n_control

    def sums_at(beta: NDArray[np.float64], rows: NDArray[np.intp],
                inv: NDArray[np.float64] | None) -> LogisticSums:
        local = prep.sums(rows, beta, inv)
        tot = sess.averages({
            "gradient": local.gradient, "hessian": _upper(local.hessian),
            "loglik": np.maximum(local.loglik, _loglik_floor(sess.n) * s.n_used),
        }, s.n_used)
        return assoc.LogisticSums(gradient=tot["gradient"],
                                  hessian=_symmetric(tot["hessian"], k + 1),
                                  loglik=tot["loglik"], n=obs[rows])

    v = codes.shape[0]
    start = np.concatenate([np.broadcast_to(null_beta, (v, k)), np.zeros((v, 1))], axis=1)
    with assoc._one_blas_thread():
        return assoc._logistic_fits(sums_at, start, cc, firth)


def _case_control_block(sess: _Session, d: NDArray[np.float64], s: _Samples,
                        test: str) -> pd.DataFrame:
    from secured_bio.genomics import association as assoc

    local = assoc.case_control_sums(d, is_case=s.y)
    fields = ["n_case", "n_control", "alt_case", "alt_control"]
    if test == "trend":
        fields.append("alt_sq")
    cc = _case_control(sess, local, fields)
    return assoc.allelic_finalize(cc) if test == "allelic" else assoc.trend_finalize(cc)


# ------------------------------------------------------------------------ site protocol
def _site_protocol(arg: _PartyArg) -> SecureGwasRun:
    """Everything one site does, from loading its files to the revealed results."""
    import pandas as pd

    from secured_bio._progress import track

    opts = arg.options
    sess = _Session(arg.site)
    data: _SiteData | None = None
    t_start = time.perf_counter()
    try:
        with measure() as stats:
            failure: BaseException | None = None
            try:
                data = _load_site(arg.site, arg.path, opts)
            except Exception as e:  # every site learns that this one failed, then all stop
                failure = e
            info = sess.checkpoint(failure, "loading its genotypes and phenotypes", extra={
                "site_name": _name_bytes(arg.site),
                "n_variants": [data.store.n_variants if data else 0],
                "variant_digest": _list_digest(data.hashes) if data else [0] * 16,
                "options_digest": opts.digest_words(),
            })
            assert data is not None
            differ = [r for r in range(sess.n)
                      if info["options_digest"][r].tolist() != opts.digest_words()]
            if differ:
                raise sess.agreed(ProtocolError(
                    "the sites were started with different analysis options",
                    where=", ".join(sess.label(r) for r in differ),
                    expected=f"the same test, columns, --pcs, --firth, --intersect and "
                    f"--chunk-size as {sess.label(sess.rank)}",
                    fix="start every site with the same options",
                ))
            keep = _check_variants(sess, info, data, opts)
            trait = _classify_trait(sess, data, opts)
            block_pca = opts.chunk_size or _default_chunk(trait.n_genotyped)
            pcs, pca_info = (None, None)
            if opts.pcs:
                pcs, pca_info = _federated_pca(sess, data.store, keep, opts.pcs,
                                               trait.n_genotyped, block_pca)
            samples = _analysis_samples(sess, data, trait, opts, pcs)
            coded = opts.test in ("linear", "logistic")  # int8 codes; else float dosages
            block = opts.chunk_size or _default_chunk(samples.n_used,
                                                      bytes_per_call=1 if coded else 8)
            null_beta = _null_logistic(sess, samples) if opts.test == "logistic" else None
            parts: list[pd.DataFrame] = []
            blocks: Iterator[NDArray[Any]] = (_code_blocks if coded else _dosage_blocks)(
                data.store, keep, block, samples.mask)
            if arg.progress:
                blocks = track(blocks, f"secure {opts.test} test ({arg.site})",
                               total=-(-keep.size // block))
            for d in blocks:
                if opts.test == "linear":
                    parts.append(_linear_block(sess, d, samples))
                elif opts.test == "logistic":
                    assert null_beta is not None
                    parts.append(_logistic_block(sess, d, samples, null_beta, opts.firth))
                else:
                    parts.append(_case_control_block(sess, d, samples, opts.test))
            stats_table = pd.concat(parts, ignore_index=True)
            store = data.store
            alt = np.asarray(store.alt)[keep].astype(str)
            variants = pd.DataFrame({
                "#CHROM": np.asarray(store.contig)[keep].astype(str),
                "POS": np.asarray(store.position)[keep].astype(np.int64),
                "ID": np.asarray(store.variant_id)[keep].astype(str),
                "REF": np.asarray(store.ref)[keep].astype(str), "ALT": alt, "A1": alt,
            })
            results = pd.concat([variants, stats_table], axis=1)
            dropped = int(store.n_variants - keep.size)
        seconds = time.perf_counter() - t_start
        mine = [stats.bytes_sent, stats.bytes_received, stats.messages_sent,
                stats.messages_received, stats.rounds, int(seconds * 1e6),
                int(data.load_s * 1e6), _peak_rss_kib(), dropped]
        everyone = sess.gather({"protocol_stats": mine})["protocol_stats"]
    finally:
        if data is not None:
            data.store.close()
    protocol = {sess.names[r]: ProtocolStats(
        bytes_sent=int(row[0]), bytes_received=int(row[1]), messages_sent=int(row[2]),
        messages_received=int(row[3]), rounds=int(row[4]), seconds=row[5] / 1e6)
        for r, row in enumerate(everyone.tolist())}
    from secured_bio.genomics import sumstats

    summary = _summary(sess, opts, data, trait, samples, results, everyone, pca_info, keep)
    paths: dict[str, Path] = {}
    if sess.rank == 0 and arg.out is not None:
        paths = _write(results, arg.out, opts, data, trait, samples, summary)
        summary = sumstats.read_summary(paths["summary"])
    else:
        summary = sumstats.summary_record(results, test=opts.test, extra={
            "phenotype": data.pheno_column, "covariates": list(samples.names),
            "n_samples": samples.n_used, **summary})
    dropped_all = {sess.names[r]: int(row[8]) for r, row in enumerate(everyone.tolist())}
    return SecureGwasRun(results=results, paths=paths, summary=summary, protocol=protocol,
                         dropped_variants=dropped_all)


def _summary(sess: _Session, opts: _Options, data: _SiteData, trait: _Trait,
             samples: _Samples, results: pd.DataFrame, everyone: NDArray[np.int64],
             pca_info: dict[str, Any] | None, keep: NDArray[np.int64]) -> dict[str, Any]:
    rows = everyone.tolist()
    per_site = {
        sess.names[r]: {
            "rank": r, "bytes_sent": int(row[0]), "bytes_received": int(row[1]),
            "messages_sent": int(row[2]), "messages_received": int(row[3]),
            "rounds": int(row[4]), "seconds": round(row[5] / 1e6, 3),
            "load_seconds": round(row[6] / 1e6, 3), "peak_rss_mib": round(row[7] / 1024, 1),
            "variants_dropped": int(row[8]),
        } for r, row in enumerate(rows)
    }
    firth_name = {True: "always", False: "never", "fallback": "fallback"}[opts.firth]
    return {
        "trait_kind": trait.kind,
        "trait_coding": trait.coding,
        "n_samples_genotyped": trait.n_genotyped,
        "n_pheno_ids_absent_from_genotypes": max(0, data.pheno_rows - trait.n_matched),
        "n_samples_missing_phenotype": samples.n_missing_phenotype,
        "n_samples_missing_covariates": samples.n_missing_covariates,
        "principal_components": opts.pcs,
        "firth": firth_name if opts.test == "logistic" else None,
        "a1_allele": "ALT",
        "plink_equivalent": {
            "linear": "plink2 --glm omit-ref hide-covar",
            "logistic": "plink2 --glm omit-ref hide-covar " + {
                True: "firth", False: "no-firth", "fallback": "firth-fallback"}[opts.firth],
            "allelic": "plink1.9 --assoc --keep-allele-order",
            "trend": "plink1.9 --model --keep-allele-order (TREND)",
        }[opts.test],
        "inputs": {"sites": list(sess.names), "pheno": opts.pheno, "covar": opts.covar},
        "protocol": {
            "name": "secured_bio secure multi-site GWAS",
            "version": _PROTOCOL_VERSION,
            "sites": list(sess.names),
            "threat_model": "semi-honest sites; private while >= 2 sites stay outside any "
            "coalition; pairwise-masked secure sums (Bonawitz et al. 2017)",
            "dealer": opts.dealer,
            "transport": _transport(),
            "two_site_disclosure": (
                "two sites: each site subtracts its own sums from the pooled ones and so "
                "learns the other site's sums (run allowed by --allow-two-sites)"
                if len(sess.names) == 2 else None),
            "float_precision_bits": FLOAT_PRECISION_BITS,
            "variants_analysed": int(keep.size),
            "intersect": bool(opts.intersect),
            "pca": pca_info,
            "reveal_set": reveal_set(opts.test, covariates=bool(samples.names), pcs=opts.pcs,
                                     intersect=opts.intersect),
            "per_site": per_site,
            "bytes_sent": {n: s["bytes_sent"] for n, s in per_site.items()},
            "seconds": {n: s["seconds"] for n, s in per_site.items()},
        },
    }


def _transport() -> dict[str, Any]:
    """How this party's messages travelled (for the summary)."""
    from secured_bio.privacy.smpc import parties as _parties

    session = _parties._SESSION
    if session is not None and session.link is not None:
        return {"kind": "relay", "encrypted": True, "authenticated": True,
                "detail": "mutual TLS 1.3 to the relay; Ed25519-signed X25519 key agreement "
                "against the roster; ChaCha20-Poly1305 end to end between sites"}
    return {"kind": "gloo", "encrypted": False, "authenticated": False,
            "detail": "torch.distributed/gloo TCP without transport encryption; masking keys "
            "from unauthenticated Diffie-Hellman (loopback or a trusted tunnel only)"}


def _two_sites(n: int, allow: bool, where: str) -> None:
    if n == 2 and not allow:
        raise ConfigError(
            "a secure GWAS of two sites hides nothing: each site subtracts its own sums from "
            "the pooled ones and so learns the other site's sums", where=where,
            expected="three or more sites", got="2",
            fix="add a site, or pass --allow-two-sites (allow_two_sites=True) if both sites "
            "accept that each learns the other's statistics",
        )
    if n == 2:
        logger.warning("two sites: each site learns the other site's sums (allowed)")


def _write(results: pd.DataFrame, out: str, opts: _Options, data: _SiteData, trait: _Trait,
           samples: _Samples, summary: dict[str, Any]) -> dict[str, Path]:
    from secured_bio.genomics import sumstats

    n_cases = samples.n_case if trait.kind == "binary" and opts.test != "linear" else None
    return sumstats.write_gwas_outputs(
        results, out, test=opts.test, trait=data.pheno_column, n_samples=samples.n_used,
        n_cases=n_cases,
        n_controls=(samples.n_used - n_cases) if n_cases is not None else None,
        covariates=samples.names, summary=summary,
    )


def _site_entry(arg: _PartyArg) -> _Outcome:
    """Party function of :func:`secure_gwas`: errors all sites agreed on come back as values.

    Returning them (instead of raising) lets every party leave the session together; the
    launcher then raises the failing site's own error.  Other errors propagate.
    """
    try:
        return _Outcome(run=_site_protocol(arg))
    except Exception as e:
        if getattr(e, "_secured_bio_agreed", None) is None:
            raise
        if not isinstance(e, SecuredBioError):  # its message might hold data values
            wrapped = ProtocolError(
                f"site '{arg.site}' failed", where=arg.path, got=type(e).__name__,
                fix="see that site's log (stderr) for the traceback")
            e = _agreed(wrapped, "primary")  # type: ignore[assignment]
        return _Outcome(error=e)


# ------------------------------------------------------------------------- public API
def _validate(
    test: str, *, pheno: str | os.PathLike[str], covar: str | os.PathLike[str] | None,
    covar_names: Sequence[str] | None, pcs: int, firth: FirthMode,
    chunk_size: int | None,
) -> None:
    check_options(test, pheno=pheno, covar=covar, covar_names=covar_names, pcs=pcs,
                   firth=firth, chunk_size=chunk_size)


def _check_site(name: str, path: str | os.PathLike[str]) -> None:
    if not isinstance(name, str) or not name or len(name.encode()) > _NAME_BYTES \
            or any(ch in name for ch in "=\n\t"):
        raise ConfigError("invalid site name", where="--site",
                          expected=f"1..{_NAME_BYTES} bytes without '=', tabs or newlines",
                          got=f"{len(str(name))} characters")
    if not Path(path).exists():
        raise InputFileNotFoundError(
            f"genotype input of site '{name}' not found", where=str(path),
            expected="a VCF/BCF file or a zarr store folder", fix="check --site NAME=PATH")


def _options(test: str, pheno: str | os.PathLike[str], pheno_name: str | None,
             covar: str | os.PathLike[str] | None, covar_names: Sequence[str] | None,
             pcs: int, firth: FirthMode, intersect: bool, chunk_size: int | None,
             dealer: str) -> _Options:
    return _Options(
        pheno=str(Path(pheno).resolve()), test=test, pheno_name=pheno_name,
        covar=str(Path(covar).resolve()) if covar is not None else None,
        covar_names=tuple(covar_names) if covar_names is not None else None, pcs=pcs,
        firth=firth, intersect=bool(intersect), chunk_size=chunk_size, dealer=dealer,
    )


def secure_gwas(
    sites: Mapping[str, str | os.PathLike[str]],
    *,
    pheno: str | os.PathLike[str],
    test: Test,
    out: str | os.PathLike[str] | None,
    pheno_name: str | None = None,
    covar: str | os.PathLike[str] | None = None,
    covar_names: Sequence[str] | None = None,
    pcs: int = 0,
    firth: FirthMode = False,
    intersect: bool = False,
    master_addr: str = "127.0.0.1",
    master_port: int | None = None,
    timeout_s: float = 120.0,
    chunk_size: int | None = None,
    dealer: Literal["none", "ttp", "trusted_first_party"] = "none",
    op_timeout_s: float = 1800.0,
    links: Literal["gloo", "relay"] | Sequence[LinkConfig] = "gloo",
    allow_two_sites: bool = False,
) -> SecureGwasRun:
    """Run a secure multi-site GWAS with one party process per site on this host.

    Each site's process opens only its own genotype file, keeps its own rows of the
    phenotype/covariate files, computes its per-variant sums in plaintext and adds them
    with the other sites' by secure aggregation (module docstring: threat model, reveal
    set, numerics).  Party rank 0 (the first site) writes the outputs, the same files as
    :func:`~secured_bio.genomics.gwas_cli.run_gwas` with a ``protocol`` section in the JSON
    summary.

    Parameters
    ----------
    sites
        Site name to its genotype file (VCF/BCF, ingested in the site's process, or zarr
        store), in rank order.  At least two; three or more for privacy.
    pheno
        plink2 phenotype file holding (at least) every site's samples.
    test
        ``linear``, ``logistic``, ``allelic`` or ``trend``.
    out
        Output prefix (``PREFIX.<test>.tsv`` and siblings); None writes nothing.
    pheno_name
        Phenotype column (default: the first).
    covar, covar_names
        Covariate file and the columns to use (default all); regressions only.
    pcs
        Principal components of the genotypes (federated PCA) to add as covariates.
    firth
        Logistic only: True (Firth for every variant), ``"fallback"`` or False.
    intersect
        Analyse the variants common to all sites instead of failing when the lists differ.
    master_addr, master_port
        Rendezvous address (party rank 0); None picks a free port.
    timeout_s
        How long parties wait for each other to connect.
    chunk_size
        Variants per secure block (default from the pooled sample count).
    dealer
        SMPC dealer (secure sums need none; see :mod:`secured_bio.privacy.smpc.parties`).
    op_timeout_s
        How long one protocol step may wait for the slowest site (its local work included,
        e.g. ingesting a large VCF before the first step).
    links
        ``"gloo"`` (default: loopback TCP, as on one trusted host), ``"relay"`` (every site
        with its own key pair, mutual TLS to a relay process, messages sealed end to end, as
        across hosts: :mod:`secured_bio.privacy.smpc.links`) or one
        :class:`~secured_bio.privacy.smpc.LinkConfig` per site.
    allow_two_sites
        Run with two sites although each then learns the other's sums (refused otherwise).

    Returns
    -------
    SecureGwasRun
        Party rank 0's results, paths and summary, with every site's protocol statistics.

    Raises
    ------
    ConfigError
        If the options are invalid or do not fit together.
    InputFileNotFoundError
        If a site's genotype file or the phenotype/covariate file is missing.
    InputError, SchemaError, FormatError
        If a site's input is bad (truncated BGZF, malformed GT, no phenotyped sample, no
        sample in the phenotype file...); the message names the site and the file.
    ProtocolError
        If the sites hold different variant lists (without ``intersect``), a party fails or
        never connects.

    Examples
    --------
    >>> secure_gwas({"a": "a.vcf.gz"}, pheno="p.tsv", test="linear", out=None)
    Traceback (most recent call last):
    ...
    secured_bio.errors.ConfigError: a secure GWAS needs at least two sites [--site]...
    """
    args = _party_args(sites, pheno=pheno, test=test, out=out, pheno_name=pheno_name,
                       covar=covar, covar_names=covar_names, pcs=pcs, firth=firth,
                       intersect=intersect, chunk_size=chunk_size, dealer=dealer,
                       allow_two_sites=allow_two_sites)
    port = master_port if master_port is not None else free_port(master_addr)
    try:
        outcomes = run_parties(_site_entry, args, master_addr=master_addr, master_port=port,
                               timeout_s=timeout_s, op_timeout_s=op_timeout_s, dealer=dealer,
                               links=links)
    except ProtocolError as e:
        e.add_note("party ranks: " + ", ".join(f"{r} = site '{a.site}'"
                                                for r, a in enumerate(args)))
        raise
    return _first_run(outcomes)


def _party_args(
    sites: Mapping[str, str | os.PathLike[str]], *, pheno: str | os.PathLike[str], test: str,
    out: str | os.PathLike[str] | None, pheno_name: str | None,
    covar: str | os.PathLike[str] | None, covar_names: Sequence[str] | None, pcs: int,
    firth: FirthMode, intersect: bool, chunk_size: int | None, dealer: str,
    allow_two_sites: bool = False,
) -> list[_PartyArg]:
    """Check the options of :func:`secure_gwas`; one party argument per site, in rank order."""
    if len(sites) < 2:
        raise ConfigError("a secure GWAS needs at least two sites", where="--site",
                          expected="two or more NAME=PATH (three or more for privacy)",
                          got=str(len(sites)))
    _validate(test, pheno=pheno, covar=covar, covar_names=covar_names, pcs=pcs, firth=firth,
              chunk_size=chunk_size)
    for name, path in sites.items():
        _check_site(name, path)
    _two_sites(len(sites), allow_two_sites, "--site")
    opts = _options(test, pheno, pheno_name, covar, covar_names, pcs, firth, intersect,
                    chunk_size, dealer)
    out_s = str(Path(out).absolute()) if out is not None else None
    return [_PartyArg(site=name, path=str(Path(path).absolute()), options=opts,
                      out=out_s if r == 0 else None, progress=r == 0)
            for r, (name, path) in enumerate(sites.items())]


def _first_run(outcomes: Sequence[_Outcome]) -> SecureGwasRun:
    """Party rank 0's run, or the error of the site that failed (all parties agreed)."""
    errors = [o.error for o in outcomes if o.error is not None]
    if errors:
        primary = [e for e in errors if getattr(e, "_secured_bio_agreed", "") == "primary"]
        first = (primary or errors)[0]
        seen = {str(first)}
        for other in primary[1:]:  # other sites' own failures at the same step
            if str(other) not in seen:
                seen.add(str(other))
                first.add_note(f"also {getattr(other, '_secured_bio_site', 'a site')}: {other}")
        raise first
    run = outcomes[0].run
    assert run is not None
    return run


def run_site(
    rank: int,
    world_size: int,
    site_name: str,
    path: str | os.PathLike[str],
    *,
    pheno: str | os.PathLike[str],
    test: Test,
    out: str | os.PathLike[str] | None = None,
    pheno_name: str | None = None,
    covar: str | os.PathLike[str] | None = None,
    covar_names: Sequence[str] | None = None,
    pcs: int = 0,
    firth: FirthMode = False,
    intersect: bool = False,
    master_addr: str = "127.0.0.1",
    master_port: int | None = None,
    timeout_s: float = 120.0,
    chunk_size: int | None = None,
    dealer: Literal["none", "ttp", "trusted_first_party"] = "none",
    interface: str | None = None,
    progress: bool = False,
    op_timeout_s: float = 1800.0,
    link: LinkConfig | None = None,
    allow_two_sites: bool = False,
) -> SecureGwasRun:
    """Run ONE site of a secure GWAS in this process (for a site on its own host).

    Every site starts this with its own ``rank``, file and the same ``world_size``,
    rendezvous address and analysis options (checked); rank 0 hosts the rendezvous and
    writes the outputs to ``out``.  Same code path as :func:`secure_gwas`.

    Parameters
    ----------
    rank, world_size
        This site's party rank and the number of sites.
    site_name, path
        This site's name and genotype file (VCF/BCF or zarr store).
    pheno, test, out, pheno_name, covar, covar_names, pcs, firth, intersect, chunk_size
        As for :func:`secure_gwas` (``out`` is used at rank 0 only).
    master_addr, master_port
        Address and port of party rank 0's rendezvous, reachable from every site.
    timeout_s
        How long to wait for every site to connect.
    dealer
        SMPC dealer (none needed).
    interface
        Network interface for gloo (``GLOO_SOCKET_IFNAME``), e.g. ``"eth0"``.
    progress
        Show a progress bar.
    op_timeout_s
        How long one protocol step may wait for the slowest site.
    link
        Talk through an encrypted relay (mutual TLS, roster-authenticated keys, sealed
        messages; :mod:`secured_bio.privacy.smpc.links`) instead of gloo; then the rank
        must match this site's place on the roster and ``master_*``/``interface`` are unused.
    allow_two_sites
        Run with two sites although each then learns the other's sums (refused otherwise).

    Returns
    -------
    SecureGwasRun
        The results (every site gets them), paths (rank 0) and protocol statistics.

    Raises
    ------
    ConfigError, InputFileNotFoundError, InputError, SchemaError, ProtocolError
        As for :func:`secure_gwas`; a site that never connects gives a ProtocolError naming
        its rank.

    Examples
    --------
    >>> run_site(0, 1, "a", "a.vcf.gz", pheno="p.tsv", test="trend", master_port=29500)
    Traceback (most recent call last):
    ...
    secured_bio.errors.ConfigError: a secure GWAS needs at least two sites [--world-size]...
    """
    if not isinstance(world_size, int) or world_size < 2:
        raise ConfigError("a secure GWAS needs at least two sites", where="--world-size",
                          expected="an integer >= 2", got=repr(world_size))
    _two_sites(world_size, allow_two_sites, "--world-size")
    _validate(test, pheno=pheno, covar=covar, covar_names=covar_names, pcs=pcs, firth=firth,
              chunk_size=chunk_size)
    _check_site(site_name, path)
    opts = _options(test, pheno, pheno_name, covar, covar_names, pcs, firth, intersect,
                    chunk_size, dealer)
    arg = _PartyArg(site=site_name, path=str(Path(path).absolute()), options=opts,
                    out=str(Path(out).absolute()) if out is not None and rank == 0 else None,
                    progress=progress)
    result: SecureGwasRun = run_party(
        rank, world_size, _site_protocol, arg, master_addr=master_addr,
        master_port=master_port, timeout_s=timeout_s, op_timeout_s=op_timeout_s, dealer=dealer,
        interface=interface, link=link,
    )
    return result

