"""Principal components of standardized genotypes, built from sums.

Genotypes are standardized per variant as in ``plink2 --pca`` (Patterson et al. 2006;
Price et al. 2006): ``x_ij = (g_ij - 2 p_j) / sqrt(2 p_j (1 - p_j))`` with ``p_j`` the ALT
frequency among called samples; a missing call contributes 0 (mean imputation) and a
monomorphic variant is left out. With ``X`` the ``(V, n)`` standardized matrix:

- the genomic relationship matrix ``GRM = X'X / M`` (``n x n``, ``M`` variants used) is a
  sum over **variants**: :func:`grm_sums` of each variant chunk add up;
- the variant covariance ``C = X X'`` (``V x V``) is a sum over **samples**:
  :func:`covariance_sums` of each site add up (the sample-additive form a multi-site
  version aggregates securely), after the allele frequencies, themselves sums over
  samples (:func:`allele_frequency_sums`).

Both give the same components: if ``C = U L U'`` then the GRM's unit eigenvectors are
``X' U L^(-1/2)`` and its eigenvalues ``L / M``. Each site projects its own samples with
:func:`project`; only ``C`` (and the frequencies) are revealed, never a sample's scores.

References
----------
- Patterson N, Price AL, Reich D (2006) Population structure and eigenanalysis. PLoS
  Genet 2:e190.
- Price AL et al. (2006) Principal components analysis corrects for stratification in
  genome-wide association studies. Nat Genet 38:904-909.
- Chang CC et al. (2015) Second-generation PLINK. GigaScience 4:7 (``--pca``: unit-norm
  eigenvectors of the variance-standardized relationship matrix).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secured_bio.errors import InputError

__all__ = [
    "AlleleSums",
    "PCAResult",
    "allele_frequency_sums",
    "alt_frequency",
    "standardize",
    "grm_sums",
    "called_pair_sums",
    "covariance_sums",
    "pca_from_grm",
    "pca_from_covariance",
    "project",
    "principal_components",
]

Array = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class AlleleSums:
    """Per-variant sums over samples: ALT dosage and called genotypes.

    Attributes
    ----------
    alt
        ``(V,)`` sum of ALT dosage over called samples.
    called
        ``(V,)`` number of called samples.
    """

    alt: Array
    called: Array

    def __add__(self, other: AlleleSums) -> AlleleSums:
        """Add the sums of two sites (same variants)."""
        return AlleleSums(alt=self.alt + other.alt, called=self.called + other.called)


@dataclass(frozen=True)
class PCAResult:
    """Principal components.

    Attributes
    ----------
    scores
        ``(n, K)`` unit-norm eigenvectors of the GRM (plink2's ``.eigenvec`` columns),
        sign fixed so that each column's largest-magnitude entry is positive.
    eigenvalues
        ``(K,)`` eigenvalues of the GRM (plink2's ``.eigenval``).
    n_variants
        Variants used (polymorphic).
    """

    scores: Array
    eigenvalues: Array
    n_variants: int


def _dosage(dosage: ArrayLike) -> Array:
    g = np.asarray(dosage, dtype=np.float64)
    if g.ndim != 2:
        raise InputError("dosage must be 2-D", where="dosage",
                         expected="(n_variants, n_samples)", got=f"{g.ndim} dimensions")
    return g


def allele_frequency_sums(dosage: ArrayLike) -> AlleleSums:
    """Sum ALT dosages and called genotypes over one site's samples.

    Parameters
    ----------
    dosage
        ``(V, n)`` ALT dosages, NaN = missing.

    Returns
    -------
    AlleleSums
        Per-variant sums; sites add with ``+``.

    Examples
    --------
    >>> s = allele_frequency_sums([[0, 1, np.nan], [2, 2, 1]])
    >>> s.alt.tolist(), s.called.tolist()
    ([1.0, 5.0], [2.0, 3.0])
    """
    g = _dosage(dosage)
    miss = np.isnan(g)
    return AlleleSums(alt=np.where(miss, 0.0, g).sum(axis=1), called=(~miss).sum(axis=1) * 1.0)


def alt_frequency(sums: AlleleSums) -> Array:
    """ALT allele frequency ``alt / (2 called)`` (NaN where nothing is called).

    Examples
    --------
    >>> alt_frequency(AlleleSums(np.array([1.0, 0.0]), np.array([2.0, 0.0]))).tolist()
    [0.25, nan]
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sums.called > 0, sums.alt / (2 * sums.called), np.nan)


def standardize(dosage: ArrayLike, *, alt_freq: ArrayLike) -> Array:
    """Variance-standardize dosages; missing calls and monomorphic variants give 0.

    Parameters
    ----------
    dosage
        ``(V, n)`` ALT dosages, NaN = missing.
    alt_freq
        ``(V,)`` ALT frequencies of the pooled samples.

    Returns
    -------
    numpy.ndarray
        ``(V, n)`` standardized values.

    Examples
    --------
    >>> standardize([[0, 2, np.nan]], alt_freq=[0.5]).round(4).tolist()
    [[-1.4142, 1.4142, 0.0]]
    """
    g = _dosage(dosage)
    p = np.asarray(alt_freq, dtype=np.float64).reshape(-1, 1)
    poly = np.isfinite(p) & (p > 0) & (p < 1)
    sd = np.sqrt(np.where(poly, 2 * p * (1 - p), 1.0))
    x = (g - 2 * np.where(poly, p, 0.0)) / sd
    return np.where(np.isnan(x) | ~poly, 0.0, x)


def _n_polymorphic(alt_freq: Array) -> int:
    return int(np.count_nonzero(np.isfinite(alt_freq) & (alt_freq > 0) & (alt_freq < 1)))


def grm_sums(dosage: ArrayLike, *, alt_freq: ArrayLike) -> Array:
    """``X'X`` over one chunk of variants (``n x n``); chunks add up to ``M x GRM``.

    Parameters
    ----------
    dosage
        ``(V, n)`` ALT dosages of a variant chunk, NaN = missing.
    alt_freq
        ``(V,)`` ALT frequencies.

    Returns
    -------
    numpy.ndarray
        ``(n, n)`` sum over the chunk's variants of ``x x'``.

    Examples
    --------
    >>> grm_sums([[0, 2]], alt_freq=[0.5]).round(6).tolist()
    [[2.0, -2.0], [-2.0, 2.0]]
    """
    x = standardize(dosage, alt_freq=alt_freq)
    return x.T @ x


def called_pair_sums(dosage: ArrayLike) -> Array:
    """Per sample pair, the number of the chunk's variants called in both (``n x n``).

    Parameters
    ----------
    dosage
        ``(V, n)`` ALT dosages, NaN = missing.

    Returns
    -------
    numpy.ndarray
        ``(n, n)`` counts; chunks add up.

    Examples
    --------
    >>> called_pair_sums([[0, np.nan], [1, 2]]).tolist()
    [[2.0, 1.0], [1.0, 1.0]]
    """
    c = (~np.isnan(_dosage(dosage))).astype(np.float64)
    return c.T @ c


def covariance_sums(dosage: ArrayLike, *, alt_freq: ArrayLike) -> Array:
    """``X X'`` over one site's samples (``V x V``); sites add up to the pooled ``C``.

    Parameters
    ----------
    dosage
        ``(V, n_site)`` ALT dosages of all the variants used, NaN = missing.
    alt_freq
        ``(V,)`` pooled ALT frequencies.

    Returns
    -------
    numpy.ndarray
        ``(V, V)`` sum over the site's samples of ``x x'``.

    Examples
    --------
    >>> covariance_sums([[0, 2], [1, 1]], alt_freq=[0.5, 0.5]).round(6).tolist()
    [[4.0, 0.0], [0.0, 0.0]]
    """
    x = standardize(dosage, alt_freq=alt_freq)
    return x @ x.T


def _fix_signs(vectors: Array) -> Array:
    idx = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[idx, np.arange(vectors.shape[1])])
    return vectors * np.where(signs == 0, 1.0, signs)


def _check_k(n_components: int, limit: int) -> None:
    if not isinstance(n_components, int) or not 1 <= n_components <= limit:
        raise InputError(
            "invalid number of principal components", where="n_components",
            expected=f"an integer in [1, {limit}]", got=repr(n_components),
            fix="ask for fewer components than samples and variants",
        )


def pca_from_grm(
    grm_sum: ArrayLike, *, n_components: int, n_variants: int,
    pair_counts: ArrayLike | None = None,
) -> PCAResult:
    """Top eigenvectors of ``GRM = grm_sum / n_variants`` (or ``/ pair_counts``).

    Parameters
    ----------
    grm_sum
        ``(n, n)`` summed :func:`grm_sums`.
    n_components
        Number of components ``K``.
    n_variants
        Polymorphic variants summed.
    pair_counts
        ``(n, n)`` summed :func:`called_pair_sums`: divide each entry by the number of
        variants called in both samples (plink2's default missing-aware GRM) instead of
        ``n_variants`` (mean imputation).

    Returns
    -------
    PCAResult
        Scores ``(n, K)`` and eigenvalues.

    Raises
    ------
    InputError
        If ``n_components`` is not in ``[1, n - 1]`` or no variant was used.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> g = rng.binomial(2, 0.3, size=(50, 20)).astype(float)
    >>> p = alt_frequency(allele_frequency_sums(g))
    >>> r = pca_from_grm(grm_sums(g, alt_freq=p), n_components=2, n_variants=50)
    >>> r.scores.shape, bool(np.allclose((r.scores ** 2).sum(0), 1))
    ((20, 2), True)
    """
    k = np.asarray(grm_sum, dtype=np.float64)
    _check_k(n_components, k.shape[0] - 1)
    if n_variants < 1:
        raise InputError("no polymorphic variant for PCA", where="genotypes",
                         expected="variants with 0 < ALT frequency < 1", got="none")
    if pair_counts is not None:
        pairs = np.asarray(pair_counts, dtype=np.float64)
        k = k / np.where(pairs > 0, pairs, 1.0)
    else:
        k = k / n_variants
    w, u = np.linalg.eigh(k)
    order = np.argsort(w)[::-1][:n_components]
    return PCAResult(scores=_fix_signs(u[:, order]), eigenvalues=w[order], n_variants=n_variants)


def pca_from_covariance(
    covariance: ArrayLike, *, n_components: int, n_variants: int
) -> tuple[Array, Array]:
    """Top eigenvectors of the summed variant covariance ``C`` (the multi-site form).

    Parameters
    ----------
    covariance
        ``(V, V)`` summed :func:`covariance_sums` of all sites.
    n_components
        Number of components ``K``.
    n_variants
        Polymorphic variants (the GRM's divisor).

    Returns
    -------
    tuple of numpy.ndarray
        ``loadings`` ``(V, K)`` (unit eigenvectors of ``C``) and ``eigenvalues`` ``(K,)``
        of ``C``; give both to :func:`project` at every site.

    Raises
    ------
    InputError
        If ``n_components`` is not in ``[1, V - 1]``.

    Examples
    --------
    >>> c = np.diag([3.0, 1.0, 2.0])
    >>> loadings, values = pca_from_covariance(c, n_components=1, n_variants=3)
    >>> values.tolist(), np.abs(loadings[:, 0]).tolist()
    ([3.0], [1.0, 0.0, 0.0])
    """
    c = np.asarray(covariance, dtype=np.float64)
    _check_k(n_components, c.shape[0] - 1)
    w, u = np.linalg.eigh(c)
    order = np.argsort(w)[::-1][:n_components]
    return u[:, order], w[order]


def project(
    dosage: ArrayLike, *, alt_freq: ArrayLike, loadings: ArrayLike, eigenvalues: ArrayLike
) -> Array:
    """Scores of one site's samples: ``X' U L^(-1/2)`` (rows of the GRM's eigenvectors).

    Parameters
    ----------
    dosage
        ``(V, n_site)`` ALT dosages of the variants of ``loadings``.
    alt_freq
        ``(V,)`` pooled ALT frequencies.
    loadings, eigenvalues
        From :func:`pca_from_covariance`.

    Returns
    -------
    numpy.ndarray
        ``(n_site, K)`` scores; stacking the sites gives unit-norm columns.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> g = rng.binomial(2, 0.3, size=(30, 12)).astype(float)
    >>> p = alt_frequency(allele_frequency_sums(g))
    >>> u, w = pca_from_covariance(covariance_sums(g, alt_freq=p), n_components=2,
    ...                            n_variants=30)
    >>> s = project(g, alt_freq=p, loadings=u, eigenvalues=w)
    >>> bool(np.allclose(s.T @ s, np.eye(2)))
    True
    """
    x = standardize(dosage, alt_freq=alt_freq)
    u = np.asarray(loadings, dtype=np.float64)
    w = np.asarray(eigenvalues, dtype=np.float64)
    return (x.T @ u) / np.sqrt(w)


def principal_components(
    chunks: Iterable[ArrayLike],
    *,
    alt_freq: ArrayLike,
    n_components: int,
    missing: Literal["meanimpute", "pairwise"] = "meanimpute",
) -> PCAResult:
    """PCA of all samples from dosage chunks (variants in the order of ``alt_freq``).

    Accumulates :func:`grm_sums` over the chunks (memory ``n x n``), then
    :func:`pca_from_grm`. With ``missing="meanimpute"`` (the default, and the form a
    multi-site version computes from :func:`covariance_sums`) it equals
    ``plink2 --pca K meanimpute``; with ``missing="pairwise"`` it equals plink2's default
    ``--pca K`` (each GRM entry divided by the variants called in both samples). Scores
    are equal up to sign.

    Parameters
    ----------
    chunks
        Iterable of ``(V_chunk, n)`` ALT dosage blocks covering the variants in order.
    alt_freq
        ``(V,)`` ALT frequencies (e.g. from :func:`allele_frequency_sums` over the same
        chunks).
    n_components
        Number of components.
    missing
        ``"meanimpute"`` or ``"pairwise"`` (see above).

    Returns
    -------
    PCAResult
        Scores, eigenvalues and number of variants used.

    Raises
    ------
    InputError
        If the chunks do not cover ``alt_freq`` or ``n_components`` is invalid.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> g = rng.binomial(2, 0.4, size=(40, 15)).astype(float)
    >>> p = alt_frequency(allele_frequency_sums(g))
    >>> r = principal_components([g[:25], g[25:]], alt_freq=p, n_components=3)
    >>> r.scores.shape, r.n_variants
    ((15, 3), 40)
    """
    p = np.asarray(alt_freq, dtype=np.float64)
    if missing not in ("meanimpute", "pairwise"):
        raise InputError("unknown missing-genotype mode for PCA", where="missing",
                         expected="'meanimpute' or 'pairwise'", got=repr(missing))
    total: Array | None = None
    pairs: Array | None = None
    start = 0
    for chunk in chunks:
        g = _dosage(chunk)
        stop = start + g.shape[0]
        part = grm_sums(g, alt_freq=p[start:stop])
        total = part if total is None else total + part
        if missing == "pairwise":
            poly = np.isfinite(p[start:stop]) & (p[start:stop] > 0) & (p[start:stop] < 1)
            pc = called_pair_sums(g[poly])
            pairs = pc if pairs is None else pairs + pc
        start = stop
    if total is None or start != p.size:
        raise InputError(
            "dosage chunks do not cover the allele frequencies", where="chunks",
            expected=f"{p.size} variants", got=f"{start}",
        )
    return pca_from_grm(total, n_components=n_components, n_variants=_n_polymorphic(p),
                        pair_counts=pairs)
