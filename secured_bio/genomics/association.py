"""Per-variant association tests built from additive sufficient statistics.

Every test is split in two steps so that a multi-site version can reuse the math:

(a) ``*_sums`` functions compute, from one site's dosages, per-variant statistics that are
    **sums over samples**. The sums of several sites add up (``sum(site_sums)``) to the
    sums of the pooled samples, so sites can add them with secure aggregation;
(b) ``*_finalize`` functions turn summed statistics into the per-variant result. They see
    only the sums: these are the *reveal set* of a secure version.

The tests and their sufficient statistics (``V`` variants; per variant the sums run over
the samples whose genotype is called, that is not missing):

==================  ====================================================================
test                sums per variant (the reveal set)
==================  ====================================================================
allelic chi-square  ``n_case``, ``n_control`` (called cases/controls), ``alt_case``,
                    ``alt_control`` (ALT dosage sums): :class:`CaseControlSums`
Cochran-Armitage    the same plus ``alt_sq`` (sum of squared dosages over cases and
trend               controls)
linear regression   the cross-product matrix of ``[1, covariates, g, y]`` over called
                    samples, ``(k+2) x (k+2)`` symmetric: :class:`LinearSums`
logistic regression per Newton iteration at the current coefficients: the score
                    ``X'(y - mu)``, the information ``X'WX``, the log-likelihood and
                    the number of called samples, ``X = [1, covariates, g]``:
                    :class:`LogisticSums`. Firth adds a second round with the
                    penalised score ``X'(y - mu + h(1/2 - mu))``, whose leverages ``h``
                    need the inverse summed information broadcast back to the sites.
                    Before fitting, :class:`CaseControlSums` (separation check,
                    ``A1_FREQ``). The covariate-only start (:func:`logistic_null_beta`)
                    needs the same sums without the genotype column
==================  ====================================================================

The coefficients of every iteration are public inside the protocol (each site needs them
to compute its next sums); only sums over all sites are revealed, never one site's.

Conventions follow PLINK: the tested allele A1 is ALT (additive dosage 0..2 of ALT), as in
``plink2 --glm omit-ref`` and ``plink1.9 --keep-allele-order``. Samples with a missing
genotype are dropped per variant; missing phenotypes/covariates are the caller's job (drop
the samples once, see :func:`secured_bio.genomics.phenotypes.analysis_samples`).

Result tables use PLINK's column names (``OBS_CT``, ``BETA``, ``SE``, ``T_STAT``, ``P``,
``OR``, ``LOG(OR)_SE``, ``Z_STAT``, ``F_A``, ``F_U``, ``CHISQ``) plus ``A1_FREQ`` (ALT
frequency among the used called samples) and ``ERRCODE`` (``"."`` when the test ran, else
PLINK's error name; statistics are NaN then).

References
----------
- Purcell S et al. (2007) PLINK: a tool set for whole-genome association and
  population-based linkage analyses. Am J Hum Genet 81:559-575 (allelic, trend tests).
- Chang CC et al. (2015) Second-generation PLINK. GigaScience 4:7 (``--glm``).
- Armitage P (1955) Tests for linear trends in proportions and frequencies. Biometrics
  11:375-386; Sasieni PD (1997) From genotypes to genes: doubling the sample size.
  Biometrics 53:1253-1261 (trend statistic = N r^2).
- Seber GAF, Lee AJ (2003) Linear Regression Analysis, 2nd ed., ch. 3 (partitioned least
  squares via the Schur complement of the covariate block).
- McCullagh P, Nelder JA (1989) Generalized Linear Models, 2nd ed., sec. 2.5 (Newton /
  Fisher scoring for logistic regression).
- Firth D (1993) Bias reduction of maximum likelihood estimates. Biometrika 80:27-38;
  Heinze G, Schemper M (2002) A solution to the problem of separation in logistic
  regression. Stat Med 21:2409-2419 (penalised score, step halving as in R's logistf).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, Self

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import sparse, special

from secured_bio.errors import ConfigError, InputError

__all__ = [
    "CaseControlSums",
    "LinearSums",
    "LogisticSums",
    "LogisticFit",
    "SumsFunction",
    "case_control_sums",
    "allelic_finalize",
    "trend_finalize",
    "allelic_test",
    "trend_test",
    "linear_sums",
    "linear_finalize",
    "linear_regression",
    "logistic_sums",
    "logistic_null_beta",
    "fit_logistic",
    "logistic_finalize",
    "separation_errcodes",
    "logistic_regression",
]

Array = NDArray[np.float64]
FirthMode = bool | Literal["fallback"]

_OK = "."


# ------------------------------------------------------------------------------- helpers
class _Additive:
    """Mixin: element-wise ``+`` of every array field; ``sum([...])`` works (starts at 0)."""

    def __add__(self, other: object) -> Self:
        if type(other) is not type(self):
            return NotImplemented
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            a, b = getattr(self, f.name), getattr(other, f.name)
            if np.shape(a) != np.shape(b):
                raise InputError(
                    f"cannot add {type(self).__name__} of different shapes",
                    where=f"field '{f.name}'", expected=str(np.shape(a)), got=str(np.shape(b)),
                    fix="every site must use the same variants and covariates, in one order",
                )
            out[f.name] = a + b
        return type(self)(**out)

    def __radd__(self, other: object) -> Self:
        if isinstance(other, int) and other == 0:
            return self
        return self.__add__(other)


def _dosage(dosage: ArrayLike, n_samples: int | None = None) -> Array:
    g = np.asarray(dosage, dtype=np.float64)
    if g.ndim == 1:
        g = g[None, :]
    if g.ndim != 2:
        raise InputError(
            "dosage must be a 2-D array", where="dosage",
            expected="shape (n_variants, n_samples)", got=f"{g.ndim} dimensions",
        )
    if n_samples is not None and g.shape[1] != n_samples:
        raise InputError(
            "dosage and phenotype have different numbers of samples", where="dosage",
            expected=f"{n_samples} columns", got=f"{g.shape[1]} columns",
            fix="select the dosage columns of the analysed samples",
        )
    if np.any(g < 0) or np.any(g > 2):  # NaN compares False: missing calls pass
        raise InputError(
            "dosage out of range", where="dosage", expected="ALT dosages in [0, 2] or NaN",
            got="values outside [0, 2]", fix="pass diploid ALT allele counts",
        )
    return g


def _vector(values: ArrayLike, name: str, *, binary: bool = False) -> Array:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise InputError(f"{name} must be 1-D", where=name, got=f"{v.ndim} dimensions")
    if not np.all(np.isfinite(v)):
        raise InputError(
            f"{name} has missing or infinite values", where=name,
            expected="finite values for every sample",
            fix="drop samples with a missing phenotype or covariate first "
            "(secured_bio.genomics.phenotypes.analysis_samples)",
        )
    if binary and not np.all((v == 0) | (v == 1)):
        raise InputError(
            f"{name} is not coded 0/1", where=name, expected="0 = control, 1 = case",
            fix="convert 1/2 coding with values - 1",
        )
    return v


def _design(covariates: ArrayLike | None, n: int) -> Array:
    """Return ``[1, covariates]`` as an ``(n, k)`` matrix."""
    if covariates is None:
        return np.ones((n, 1))
    c = np.asarray(covariates, dtype=np.float64)
    if c.ndim == 1:
        c = c[:, None]
    if c.ndim != 2 or c.shape[0] != n:
        raise InputError(
            "covariates have the wrong shape", where="covariates",
            expected=f"({n}, n_covariates)", got=str(c.shape),
        )
    if not np.all(np.isfinite(c)):
        raise InputError(
            "covariates have missing or infinite values", where="covariates",
            fix="drop samples with a missing covariate first",
        )
    return np.concatenate([np.ones((n, 1)), c], axis=1)


def _split_dosage(g: Array) -> tuple[NDArray[np.bool_], Array]:
    """Return (missing mask, dosage with missing set to 0)."""
    miss = np.isnan(g)
    return miss, np.where(miss, 0.0, g)


def _masked_outer_sums(w: Array, miss: NDArray[np.bool_]) -> Array:
    """Per variant ``sum_{i called} w_i w_i'``: ``(V, m, m)``, computed as total minus missing.

    The missing part is a sparse product, so the cost grows with the number of missing
    calls, not with ``V x n``.
    """
    n, m = w.shape
    total = w.T @ w
    out = np.broadcast_to(total, (miss.shape[0], m, m)).copy()
    if miss.any():
        ww = (w[:, :, None] * w[:, None, :]).reshape(n, m * m)
        missing = sparse.csr_matrix(miss.astype(np.float64)) @ ww
        out -= np.asarray(missing).reshape(-1, m, m)
    return out


def _inverse_pd(a: Array, *, rcond: float = 1e-12) -> tuple[Array, NDArray[np.bool_]]:
    """Batched inverse of symmetric positive (semi)definite matrices, with an ok flag.

    The matrices are scaled to unit diagonal first (a Jacobi preconditioner), so the
    rank test ``min eigenvalue > rcond * max eigenvalue`` does not depend on units.
    """
    d = np.sqrt(np.clip(np.diagonal(a, axis1=1, axis2=2), 0, None))
    ok = np.all(d > 0, axis=1) & np.all(np.isfinite(a), axis=(1, 2))
    d_safe = np.where(d > 0, d, 1.0)
    scaled = a / (d_safe[:, :, None] * d_safe[:, None, :])
    scaled[~ok] = np.eye(a.shape[1])
    w, q = np.linalg.eigh(scaled)
    ok &= w[:, 0] > rcond * w[:, -1]
    w_inv = np.where(w > rcond * w[:, -1:], 1.0 / np.where(w > 0, w, 1.0), 0.0)
    inv = np.einsum("vij,vj,vkj->vik", q, w_inv, q)
    inv /= d_safe[:, :, None] * d_safe[:, None, :]
    inv[~ok] = np.nan
    return inv, ok


def _one_blas_thread() -> contextlib.AbstractContextManager[object]:
    """Limit BLAS to one thread for the logistic loop.

    The loop makes many small matrix products; OpenBLAS worker threads spinning between
    them slowed it down about 2x on 2 cores.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run torch element-wise kernels on the calling thread only (restored on exit).

    The logistic sums already run one block per core; torch's own intra-op threads on
    top of them would oversubscribe the cores.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _threads() -> int:
    """Worker threads for the logistic sums: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _logdet_pd(a: Array) -> Array:
    sign, logdet = np.linalg.slogdet(a)
    return np.where(sign > 0, logdet, -np.inf)


def _chi2_p(chisq: Array) -> Array:
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(chisq), special.chdtrc(1, chisq), np.nan)


# ------------------------------------------------------------- case/control count tests
@dataclass(frozen=True, eq=False)
class CaseControlSums(_Additive):
    """Per-variant sums over called samples of a case/control study (allelic, trend).

    Attributes
    ----------
    n_case, n_control
        float64 ``(V,)``: cases / controls with a called genotype.
    alt_case, alt_control
        float64 ``(V,)``: sums of ALT dosage over those cases / controls.
    alt_sq
        float64 ``(V,)``: sum of squared ALT dosage over called cases and controls
        (trend test only).
    """

    n_case: Array
    n_control: Array
    alt_case: Array
    alt_control: Array
    alt_sq: Array


def case_control_sums(dosage: ArrayLike, *, is_case: ArrayLike) -> CaseControlSums:
    """Compute the per-variant case/control sums of one site.

    Parameters
    ----------
    dosage
        ``(V, n)`` ALT dosages in [0, 2], NaN = missing.
    is_case
        ``(n,)`` 1.0 for cases, 0.0 for controls (no missing values).

    Returns
    -------
    CaseControlSums
        Five ``(V,)`` sums over samples; sites' results add with ``+``.

    Raises
    ------
    InputError
        If shapes disagree, dosages are out of range or ``is_case`` is not 0/1.

    Examples
    --------
    >>> s = case_control_sums([[0, 1, 2, np.nan]], is_case=[1, 1, 0, 0])
    >>> s.n_case, s.alt_case, s.n_control, s.alt_control, s.alt_sq
    (array([2.]), array([1.]), array([1.]), array([2.]), array([5.]))
    """
    y = _vector(is_case, "is_case", binary=True)
    g = _dosage(dosage, y.size)
    miss, g0 = _split_dosage(g)
    called = (~miss).astype(np.float64)
    ctrl = 1.0 - y
    return CaseControlSums(
        n_case=called @ y, n_control=called @ ctrl, alt_case=g0 @ y, alt_control=g0 @ ctrl,
        alt_sq=np.einsum("vn,vn->v", g0, g0),
    )


def allelic_finalize(sums: CaseControlSums) -> pd.DataFrame:
    """Allelic chi-square test (1 df) from summed case/control statistics.

    The 2x2 table of allele counts (A1 = ALT) is ``a = alt_case``, ``b = 2 n_case - a``,
    ``c = alt_control``, ``d = 2 n_control - c``; Pearson's statistic without continuity
    correction ``N (ad - bc)^2 / ((a+b)(c+d)(a+c)(b+d))``, as ``plink1.9 --assoc``.

    Parameters
    ----------
    sums
        Summed :class:`CaseControlSums` (uses ``n_case``, ``n_control``, ``alt_case``,
        ``alt_control``).

    Returns
    -------
    pandas.DataFrame
        One row per variant: ``OBS_CT``, ``F_A``, ``F_U`` (A1 frequency in cases /
        controls), ``CHISQ``, ``P``, ``OR`` (allelic odds ratio), ``LOG(OR)_SE``
        (Woolf's standard error), ``A1_FREQ``, ``ERRCODE``.

    Examples
    --------
    >>> s = CaseControlSums(np.array([50.]), np.array([50.]), np.array([30.]),
    ...                     np.array([20.]), np.array([0.]))
    >>> r = allelic_finalize(s)
    >>> float(r.F_A[0]), float(r.F_U[0]), round(float(r.CHISQ[0]), 4), round(float(r.OR[0]), 4)
    (0.3, 0.2, 2.6667, 1.7143)
    """
    a, c = sums.alt_case, sums.alt_control
    b, d = 2 * sums.n_case - a, 2 * sums.n_control - c
    n = a + b + c + d
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = (a + b) * (c + d) * (a + c) * (b + d)
        pos = denom > 0
        chisq = np.where(pos, n * (a * d - b * c) ** 2 / np.where(pos, denom, 1), np.nan)
        f_a = np.where(a + b > 0, a / (a + b), np.nan)
        f_u = np.where(c + d > 0, c / (c + d), np.nan)
        odds = np.where(b * c > 0, (a * d) / np.where(b * c > 0, b * c, 1), np.nan)
        cells = np.stack([a, b, c, d])
        se = np.where(np.all(cells > 0, axis=0), np.sqrt(np.sum(1 / cells, axis=0)), np.nan)
        freq = np.where(n > 0, (a + c) / n, np.nan)
    return pd.DataFrame({
        "OBS_CT": (sums.n_case + sums.n_control).astype(np.int64),
        "F_A": f_a, "F_U": f_u, "CHISQ": chisq, "P": _chi2_p(chisq), "OR": odds,
        "LOG(OR)_SE": se, "A1_FREQ": freq,
        "ERRCODE": np.where(np.isfinite(chisq), _OK, "CONST_ALLELE"),
    })


def trend_finalize(sums: CaseControlSums) -> pd.DataFrame:
    """Cochran-Armitage trend test (1 df) from summed case/control statistics.

    With genotype scores 0, 1, 2 (ALT dosage) the statistic is ``N r^2``, ``r`` the
    Pearson correlation of dosage and case status over the ``N`` called samples
    (Armitage 1955; Sasieni 1997), as ``plink1.9 --model`` (TREND row).

    Parameters
    ----------
    sums
        Summed :class:`CaseControlSums` (all five fields).

    Returns
    -------
    pandas.DataFrame
        ``OBS_CT``, ``CHISQ``, ``P``, ``A1_FREQ``, ``ERRCODE``, and the allelic ``OR`` and
        ``LOG(OR)_SE`` of the same sums (the trend test has no effect estimate of its own;
        GWAS-SSF needs one).

    Examples
    --------
    >>> s = case_control_sums([[0, 1, 2, 2, 0, 0]], is_case=[1, 1, 1, 0, 0, 0])
    >>> round(float(trend_finalize(s).CHISQ[0]), 4)
    0.2069
    """
    n_case, n_ctrl = sums.n_case, sums.n_control
    n = n_case + n_ctrl
    s_g = sums.alt_case + sums.alt_control
    with np.errstate(divide="ignore", invalid="ignore"):
        num = n * sums.alt_case - n_case * s_g
        var_g = n * sums.alt_sq - s_g**2
        denom = n_case * n_ctrl * var_g
        ok = denom > 1e-12 * np.maximum(n, 1) ** 4
        chisq = np.where(ok, n * num**2 / np.where(ok, denom, 1), np.nan)
        freq = np.where(n > 0, s_g / (2 * n), np.nan)
    allelic = allelic_finalize(sums)
    return pd.DataFrame({
        "OBS_CT": n.astype(np.int64), "CHISQ": chisq, "P": _chi2_p(chisq), "A1_FREQ": freq,
        "OR": allelic["OR"], "LOG(OR)_SE": allelic["LOG(OR)_SE"],
        "ERRCODE": np.where(ok, _OK, "CONST_ALLELE"),
    })


def allelic_test(dosage: ArrayLike, *, is_case: ArrayLike) -> pd.DataFrame:
    """Allelic chi-square test of every variant (= ``plink1.9 --assoc``, A1 = ALT).

    Parameters
    ----------
    dosage
        ``(V, n)`` ALT dosages, NaN = missing.
    is_case
        ``(n,)`` 1 = case, 0 = control.

    Returns
    -------
    pandas.DataFrame
        See :func:`allelic_finalize`.

    Raises
    ------
    InputError
        If shapes disagree or values are invalid.

    Examples
    --------
    >>> r = allelic_test([[0, 1, 2, 0, 0, 1]], is_case=[1, 1, 1, 0, 0, 0])
    >>> float(r.F_A[0]), float(r.CHISQ[0]), float(r.OR[0])
    (0.5, 1.5, 5.0)
    """
    return allelic_finalize(case_control_sums(dosage, is_case=is_case))


def trend_test(dosage: ArrayLike, *, is_case: ArrayLike) -> pd.DataFrame:
    """Cochran-Armitage trend test of every variant (= ``plink1.9 --model`` TREND).

    Parameters
    ----------
    dosage
        ``(V, n)`` ALT dosages, NaN = missing.
    is_case
        ``(n,)`` 1 = case, 0 = control.

    Returns
    -------
    pandas.DataFrame
        See :func:`trend_finalize`.

    Raises
    ------
    InputError
        If shapes disagree or values are invalid.

    Examples
    --------
    >>> r = trend_test([[0, 1, 2, 0, 0, 1]], is_case=[1, 1, 1, 0, 0, 0])
    >>> round(float(r.CHISQ[0]), 4)
    1.2
    """
    return trend_finalize(case_control_sums(dosage, is_case=is_case))


# ----------------------------------------------------------------------------- linear
@dataclass(frozen=True, eq=False)
class LinearSums(_Additive):
    """Per-variant cross-product matrix of ``[1, covariates, g, y]`` over called samples.

    Attributes
    ----------
    crossprod
        float64 ``(V, k+2, k+2)``, symmetric, ``k`` = 1 + number of covariates. Entry
        ``[0, 0]`` is the number of called samples, ``[0, j]`` the column sums. Rows and
        columns: intercept, covariates, genotype (``k``), phenotype (``k+1``).

    Notes
    -----
    The covariate/phenotype block is the same for every variant without missing calls; a
    secure version may reveal it once plus per-variant corrections, or (as here) in full.
    """

    crossprod: Array

    @property
    def n_variants(self) -> int:
        """Number of variants."""
        return int(self.crossprod.shape[0])


def linear_sums(
    dosage: ArrayLike, *, phenotype: ArrayLike, covariates: ArrayLike | None = None
) -> LinearSums:
    """Compute the per-variant cross-products of one site for linear regression.

    Parameters
    ----------
    dosage
        ``(V, n)`` ALT dosages, NaN = missing (dropped per variant).
    phenotype
        ``(n,)`` quantitative trait, no missing values.
    covariates
        ``(n, c)`` covariates without intercept (added here), or None.

    Returns
    -------
    LinearSums
        ``(V, c+3, c+3)`` sums over called samples.

    Raises
    ------
    InputError
        If shapes disagree or values are missing/out of range.

    Examples
    --------
    >>> s = linear_sums([[0, 1, 2, np.nan]], phenotype=[1.0, 2.0, 3.0, 9.0])
    >>> s.crossprod[0].tolist()
    [[3.0, 3.0, 6.0], [3.0, 5.0, 8.0], [6.0, 8.0, 14.0]]
    """
    y = _vector(phenotype, "phenotype")
    g = _dosage(dosage, y.size)
    z = _design(covariates, y.size)
    w = np.concatenate([z, y[:, None]], axis=1)  # (n, k+1)
    miss, g0 = _split_dosage(g)
    block = _masked_outer_sums(w, miss)  # (V, k+1, k+1)
    gw = g0 @ w  # (V, k+1): Z'g and g'y
    gg = np.einsum("vn,vn->v", g0, g0)
    return LinearSums(crossprod=_linear_assemble(block, gw, gg))


def _linear_assemble(block: Array, gw: Array, gg: Array) -> Array:
    """Place the ``[Z, y]`` block, ``[Z, y]'g`` and ``g'g`` in ``(V, k+2, k+2)`` matrices."""
    v, k = gw.shape[0], gw.shape[1] - 1
    m = np.empty((v, k + 2, k + 2))
    idx = np.r_[0:k, k + 1]  # positions of [Z, y] in the output
    m[:, idx[:, None], idx[None, :]] = block
    m[:, k, idx] = gw
    m[:, idx, k] = gw
    m[:, k, k] = gg
    return m


_CODE_STEP_DOUBLES = 1 << 18  # float64 values converted at a time (2 MiB: stays in cache)


def _linear_sums_codes(codes: NDArray[np.int8], w: Array) -> LinearSums:
    """:func:`linear_sums` from int8 dosage codes (0, 1, 2; -1 = missing), several x faster.

    ``w`` is ``[1, covariates, y]`` ``(n, k+1)``: finite, first column ones (the caller's
    job; not checked here).  The sums are those of :func:`linear_sums` up to float
    rounding (~1e-16 relative).  Why it is faster: the codes are 1 byte per call and are
    turned into float64 a few variants at a time (in cache) for the BLAS product
    ``g @ w``, with missing calls entered as -1 and corrected by the sparse sum of ``w``
    over the missing calls (the same sparse product gives the masked ``[Z, y]`` block);
    ``g'g = sum g + 2 #(g = 2)`` for g in {0, 1, 2}, counted on the codes.

    Examples
    --------
    >>> codes = np.array([[0, 1, 2, -1]], dtype=np.int8)
    >>> w = np.column_stack([np.ones(4), [1.0, 2.0, 3.0, 9.0]])
    >>> _linear_sums_codes(codes, w).crossprod[0].tolist()
    [[3.0, 3.0, 6.0], [3.0, 5.0, 8.0], [6.0, 8.0, 14.0]]
    """
    codes = np.ascontiguousarray(codes, dtype=np.int8)
    v, n = codes.shape
    m = w.shape[1]
    flat = np.flatnonzero(codes.ravel() < 0)
    rows, cols = np.divmod(flat, n)
    step = max(1, _CODE_STEP_DOUBLES // max(n, 1))
    gw = np.empty((v, m))
    buf = np.empty((min(step, v), n))
    with _one_blas_thread():  # many small products: idle BLAS threads would spin
        for a in range(0, v, step):
            b = min(a + step, v)
            part = buf[: b - a]
            np.copyto(part, codes[a:b], casting="unsafe")
            np.matmul(part, w, out=gw[a:b])
    block = np.broadcast_to(w.T @ w, (v, m, m)).copy()
    if flat.size:
        miss = sparse.csr_matrix((np.ones(flat.size), (rows, cols)), shape=(v, n))
        gw += miss @ w  # the missing calls entered the product as -1
        ww = (w[:, :, None] * w[:, None, :]).reshape(n, m * m)
        block -= np.asarray(miss @ ww).reshape(v, m, m)
    gg = gw[:, 0] + 2.0 * np.count_nonzero(codes == 2, axis=1)
    return LinearSums(crossprod=_linear_assemble(block, gw, gg))


def _collinearity_errcodes(
    xtx: Array, *, max_corr: float, max_vif: float
) -> NDArray[np.object_]:
    """plink2's per-variant predictor checks from a cross-product matrix of ``[1, X]``.

    ``xtx`` is ``(V, q, q)`` with the intercept first; the predictors are columns 1..q-1.
    A predictor with zero variance gives ``CONST_ALLELE`` (genotype) or
    ``VIF_INFINITE``; a pairwise correlation above ``max_corr`` gives ``CORR_TOO_HIGH``;
    a variance inflation factor above ``max_vif`` gives ``VIF_TOO_HIGH``.
    """
    v, q = xtx.shape[0], xtx.shape[1]
    err = np.full(v, _OK, dtype=object)
    if q < 2:
        return err
    n = xtx[:, 0, 0]
    s = xtx[:, 0, 1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = xtx[:, 1:, 1:] - s[:, :, None] * s[:, None, :] / n[:, None, None]
        var = np.diagonal(cov, axis1=1, axis2=2).copy()
        scale = np.maximum(np.diagonal(xtx[:, 1:, 1:], axis1=1, axis2=2), 1e-300)
        const = var <= 1e-12 * scale
        sd = np.sqrt(np.where(const, 1.0, var))
        corr = cov / (sd[:, :, None] * sd[:, None, :])
    p = q - 1
    off = ~np.eye(p, dtype=bool)
    too_high = np.any((np.abs(corr) > max_corr) & off, axis=(1, 2)) & ~np.any(const, axis=1)
    corr_ok = np.where(np.isfinite(corr), corr, 0.0)
    corr_ok[:, np.arange(p), np.arange(p)] = 1.0
    inv, ok = _inverse_pd(corr_ok, rcond=1e-10)
    vif = np.diagonal(inv, axis1=1, axis2=2)
    err[~ok] = "VIF_INFINITE"
    err[ok & np.any(vif > max_vif, axis=1)] = "VIF_TOO_HIGH"
    err[too_high] = "CORR_TOO_HIGH"
    err[const[:, -1]] = "CONST_ALLELE"
    return err


def linear_finalize(
    sums: LinearSums, *, max_corr: float = 0.999, max_vif: float = 50.0
) -> pd.DataFrame:
    """Least-squares genotype effect of every variant from summed cross-products.

    Partitioned least squares: with ``Z = [1, covariates]`` and the Schur complements
    ``S_gg = g'g - g'Z (Z'Z)^-1 Z'g`` (likewise ``S_gy``, ``S_yy``), the genotype effect
    is ``beta = S_gy / S_gg``, the residual sum of squares ``S_yy - beta S_gy`` with
    ``df = n - k - 1``, ``SE = sqrt(RSS / df / S_gg)`` and a two-sided t test, as
    ``plink2 --glm`` for quantitative traits (Seber & Lee 2003, ch. 3).

    Parameters
    ----------
    sums
        Summed :class:`LinearSums`.
    max_corr, max_vif
        plink2's ``--max-corr`` and ``--vif`` checks: variants whose predictors exceed
        them get NaN statistics and ``CORR_TOO_HIGH``/``VIF_TOO_HIGH``.

    Returns
    -------
    pandas.DataFrame
        ``OBS_CT``, ``BETA``, ``SE``, ``T_STAT``, ``P``, ``A1_FREQ``, ``ERRCODE``.

    Examples
    --------
    >>> g = np.array([[0, 1, 2, 0, 1, 2]], dtype=float)
    >>> y = np.array([0.1, 1.1, 1.9, 0.0, 0.9, 2.1])
    >>> r = linear_finalize(linear_sums(g, phenotype=y))
    >>> round(float(r.BETA[0]), 6), int(r.OBS_CT[0])
    (0.975, 6)
    """
    m = sums.crossprod
    p = m.shape[1]
    k = p - 2
    n = m[:, 0, 0]
    a = m[:, :k, :k]
    b = m[:, :k, k:]  # (V, k, 2)
    inv, ok = _inverse_pd(a)
    x = np.einsum("vij,vjl->vil", np.where(ok[:, None, None], inv, 0.0), b)
    schur = m[:, k:, k:] - np.einsum("vji,vjl->vil", b, x)
    s_gg, s_gy, s_yy = schur[:, 0, 0], schur[:, 0, 1], schur[:, 1, 1]
    df = n - k - 1
    err = _collinearity_errcodes(m[:, : k + 1, : k + 1], max_corr=max_corr, max_vif=max_vif)
    err[~ok & (err == _OK)] = "VIF_INFINITE"
    err[(df <= 0)] = "SAMPLE_CT<=PREDICTOR_CT"
    good = err == _OK
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.where(good, s_gy / s_gg, np.nan)
        rss = s_yy - beta * s_gy
        se = np.sqrt(np.clip(rss, 0, None) / df / s_gg)
        t = beta / se
        pval = np.where(good, 2 * special.stdtr(np.where(df > 0, df, 1), -np.abs(t)), np.nan)
        freq = np.where(n > 0, m[:, 0, k] / (2 * n), np.nan)
    return pd.DataFrame({
        "OBS_CT": n.astype(np.int64), "BETA": beta, "SE": np.where(good, se, np.nan),
        "T_STAT": np.where(good, t, np.nan), "P": pval, "A1_FREQ": freq, "ERRCODE": err,
    })


def linear_regression(
    dosage: ArrayLike,
    *,
    phenotype: ArrayLike,
    covariates: ArrayLike | None = None,
    max_corr: float = 0.999,
    max_vif: float = 50.0,
) -> pd.DataFrame:
    """Per-variant linear regression with covariates (= ``plink2 --glm omit-ref hide-covar``).

    Parameters
    ----------
    dosage
        ``(V, n)`` ALT dosages, NaN = missing (dropped per variant, as plink2).
    phenotype
        ``(n,)`` quantitative trait without missing values.
    covariates
        ``(n, c)`` covariates without intercept, or None.
    max_corr, max_vif
        Collinearity limits (plink2 defaults).

    Returns
    -------
    pandas.DataFrame
        See :func:`linear_finalize`.

    Raises
    ------
    InputError
        If shapes disagree or values are missing/out of range.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> g = rng.integers(0, 3, size=(2, 200)).astype(float)
    >>> y = 0.5 * g[0] + rng.normal(size=200)
    >>> r = linear_regression(g, phenotype=y)
    >>> bool(r.P[0] < 1e-4), bool(r.P[1] > 0.01)
    (True, True)
    """
    return linear_finalize(
        linear_sums(dosage, phenotype=phenotype, covariates=covariates),
        max_corr=max_corr, max_vif=max_vif,
    )


# --------------------------------------------------------------------------- logistic
@dataclass(frozen=True, eq=False)
class LogisticSums(_Additive):
    """Per-variant logistic-regression sums over called samples at given coefficients.

    Attributes
    ----------
    gradient
        ``(V, p)`` score ``X'(y - mu)``; with Firth, the penalised score
        ``X'(y - mu + h (1/2 - mu))``.
    hessian
        ``(V, p, p)`` Fisher information ``X' diag(mu (1 - mu)) X``.
    loglik
        ``(V,)`` log-likelihood ``sum y eta - log(1 + exp(eta))``.
    n
        ``(V,)`` number of called samples.

    ``X = [1, covariates, g]`` (``p = k + 1``), ``eta = X beta``, ``mu = 1/(1+exp(-eta))``.
    """

    gradient: Array
    hessian: Array
    loglik: Array
    n: Array


SumsFunction = Callable[[Array, NDArray[np.intp], Array | None], LogisticSums]
"""``f(beta, rows, hessian_inverse) -> LogisticSums``: the summed statistics of the
variants ``rows`` at coefficients ``beta`` (``(len(rows), p)``). With a
``hessian_inverse`` (``(len(rows), p, p)``, the inverse of the *summed* information) the
gradient is Firth's penalised score. A secure version implements it by secure aggregation of
each site's :func:`logistic_sums`."""


def logistic_sums(
    dosage: ArrayLike,
    *,
    is_case: ArrayLike,
    beta: ArrayLike,
    covariates: ArrayLike | None = None,
    hessian_inverse: ArrayLike | None = None,
) -> LogisticSums:
    """Compute one site's per-variant logistic score, information and log-likelihood.

    Parameters
    ----------
    dosage
        ``(V, n)`` ALT dosages, NaN = missing (dropped per variant).
    is_case
        ``(n,)`` 1 = case, 0 = control.
    beta
        ``(V, p)`` current coefficients ``[intercept, covariates..., genotype]``.
    covariates
        ``(n, c)`` covariates without intercept, or None.
    hessian_inverse
        ``(V, p, p)`` inverse of the pooled (summed) information at ``beta``: when given,
        ``gradient`` is Firth's penalised score with leverages
        ``h_i = w_i x_i' (X'WX)^-1 x_i``.

    Returns
    -------
    LogisticSums
        Sums over this site's called samples.

    Raises
    ------
    InputError
        If shapes disagree or values are invalid.

    Examples
    --------
    >>> s = logistic_sums([[0, 1, 2, 1]], is_case=[0, 1, 1, 0], beta=[[0.0, 0.0]])
    >>> s.gradient.tolist(), s.hessian[0].tolist()
    ([[0.0, 1.0]], [[1.0, 1.0], [1.0, 1.5]])
    """
    y = _vector(is_case, "is_case", binary=True)
    g = _dosage(dosage, y.size)
    prep = _LogisticData.build(g, y, _design(covariates, y.size))
    k = prep.zs.shape[1]
    b = np.asarray(beta, dtype=np.float64).reshape(g.shape[0], k + 1)
    hinv = (None if hessian_inverse is None
            else np.asarray(hessian_inverse, dtype=np.float64).reshape(-1, k + 1, k + 1))
    return prep.sums(np.arange(g.shape[0]), b, hinv)


# Variants per block inside the logistic sums: keeps each (block x samples) float64
# temporary near 2 MB (cache-sized, and reused from the heap instead of freshly mapped
# pages); measured fastest between 1 and 2 MB with 6,000 samples.
_BLOCK_BYTES = 1 << 20

def _add_product(out: Array, a: Array, col: Array, *, torch_kernels: bool) -> None:
    """``out += a * col`` in place (``col`` a column); torch fuses it into one pass."""
    if torch_kernels:
        import torch

        t = torch.from_numpy(out)
        torch.addcmul(t, torch.from_numpy(a), torch.from_numpy(np.ascontiguousarray(col)),
                      out=t)
    else:
        out += a * col


def _sigmoid_log(x: Array, *, torch_kernels: bool) -> tuple[Array, Array]:
    """Return ``expit(x)`` and ``log(expit(x))``.

    With ``torch_kernels`` through torch's vectorised (SLEEF, <= 1 ulp) kernels, 3-4x
    faster than scipy's float64 ``expit``/``log_expit`` on AVX2 CPUs; the secure GWAS
    sites have torch loaded already (CrypTen).  There ``log`` of an underflowed
    ``expit`` (``x < -745``, only on a wild trial step) is ``-inf``, which the secure sums
    clip to :func:`~secured_bio.genomics.secure_gwas._loglik_floor` like any very low
    log-likelihood.  The caller limits torch to one intra-op thread.
    """
    if torch_kernels:
        import torch

        t = torch.sigmoid(torch.from_numpy(x))
        return t.numpy(), torch.log(t).numpy()
    p = special.expit(x)
    return p, special.log_expit(x)


@dataclass(frozen=True)
class _LogisticData:
    """One site's data prepared once for repeated logistic sums (no re-validation).

    Everything is stored *signed* by ``s_i = 2 y_i - 1``: dosages ``s g`` and covariates
    ``s z``.  Then ``p = expit(s eta)`` is the probability of the observed class, the
    per-sample log-likelihood is ``log p``, ``s (y - mu) = 1 - p``, ``w = p (1 - p)``, and
    every sum the Newton step needs (``sum x (y - mu)``, ``sum w x x'``) is a product of
    signed terms (``s^2 = 1``): no per-iteration pass applies the sign.
    The genotypes are held either as float dosages ``gs`` or, for the secure GWAS, as
    one-byte signed codes (``-2..2``, from the codes of
    :func:`~secured_bio.genomics.store.genotype_dosage`), cast to float a cache-sized
    block of variants at a time: 8x less memory per variant, so longer blocks and fewer
    secure-sum rounds.  Missing calls are 0 there and kept as a sparse matrix:
    per-sample terms are computed for every sample and the few missing ones zeroed, which
    is cheaper than multiplying by a dense mask when calls are rarely missing.
    """

    gs: Array | None  # (V, n) signed dosage s g, missing as 0; None with ``scodes``
    scodes: NDArray[np.int8] | None  # (V, n) signed one-byte codes s g, missing as 0
    miss: sparse.csr_matrix  # (V, n) 1.0 where missing
    nobs: Array  # (V,) called samples
    y: Array
    sign: Array  # (n,) s = 2y - 1
    zs: Array  # (n, k) signed covariates s z, with intercept
    zz: Array  # (n, k*k) outer products of z rows (= of s z rows)
    zzs: Array  # (n, k*k + k) = [zz, zs]
    torch_kernels: bool = False  # sigmoid and log by torch's vectorised kernels

    @classmethod
    def build(cls, g: Array, y: Array, z: Array) -> _LogisticData:
        miss, g0 = _split_dosage(g)
        sign = 2.0 * y - 1.0
        return cls._make(g0 * sign, None, miss, y, z)

    @classmethod
    def build_codes(cls, codes: NDArray[np.int8], y: Array, z: Array) -> _LogisticData:
        """Prepare from one-byte genotype codes (0, 1, 2, -1 = missing)."""
        miss = codes < 0
        sign = np.where(y > 0, 1, -1).astype(np.int8)
        scodes = np.maximum(codes, 0)
        scodes *= sign
        return dataclasses.replace(cls._make(None, scodes, miss, y, z), torch_kernels=True)

    @classmethod
    def _make(cls, gs: Array | None, scodes: NDArray[np.int8] | None,
              miss: NDArray[np.bool_], y: Array, z: Array) -> _LogisticData:
        zz = (z[:, :, None] * z[:, None, :]).reshape(z.shape[0], -1)
        r, c = np.nonzero(miss)  # few: no dense float copy of the mask
        m = sparse.csr_matrix((np.ones(r.size), (r, c)), shape=miss.shape)
        sign = 2.0 * y - 1.0
        zs = z * sign[:, None]
        return cls(gs=gs, scodes=scodes, miss=m,
                   nobs=miss.shape[1] - np.bincount(r, minlength=miss.shape[0]).astype(float),
                   y=y, sign=sign, zs=zs, zz=zz, zzs=np.concatenate([zz, zs], axis=1))

    @property
    def n_variants(self) -> int:
        return int(self.miss.shape[0])

    def _signed(self, rows: NDArray[np.intp] | slice) -> Array:
        """Signed float dosages ``s g`` (missing as 0) of ``rows``: a new array."""
        if self.scodes is None:
            assert self.gs is not None
            return np.array(self.gs[rows], dtype=np.float64, copy=True)
        return self.scodes[rows].astype(np.float64)

    def _missing_flat(self, rows: NDArray[np.intp]) -> NDArray[np.intp]:
        """Flat positions in a ``(len(rows), n)`` array of the missing calls of ``rows``.

        Straight from the CSR arrays: a sparse row selection costs more than the block's
        arithmetic.
        """
        ip = self.miss.indptr
        start = ip[rows]
        cnt = ip[rows + 1] - start
        total = int(cnt.sum())
        if total == 0:
            return np.empty(0, dtype=np.intp)
        at = np.repeat(start - (np.cumsum(cnt) - cnt), cnt) + np.arange(total)
        return np.repeat(np.arange(rows.size) * self.y.size, cnt) + self.miss.indices[at]

    def _step(self) -> int:
        return max(1, _BLOCK_BYTES // (8 * max(self.y.size, 1)))

    def case_control(self) -> CaseControlSums:
        """Compute the :class:`CaseControlSums` of the prepared data (no re-validation)."""
        y, ctrl = self.y, 1.0 - self.y
        missing = self.miss @ np.column_stack([y, ctrl])
        v = self.n_variants
        alt = np.empty((v, 2))
        alt_sq = np.empty(v)
        step = self._step()
        for lo in range(0, v, step):
            sl = slice(lo, min(lo + step, v))
            gs = self._signed(sl)
            alt[sl] = gs @ np.column_stack([y, -ctrl])  # s = 1 for cases, -1 for controls
            alt_sq[sl] = np.einsum("vn,vn->v", gs, gs)
        return CaseControlSums(
            n_case=y.sum() - missing[:, 0], n_control=ctrl.sum() - missing[:, 1],
            alt_case=alt[:, 0], alt_control=alt[:, 1], alt_sq=alt_sq,
        )

    def sums(self, rows: NDArray[np.intp], beta: Array, hinv: Array | None) -> LogisticSums:
        v = rows.size
        k = self.zs.shape[1]
        if hinv is None and v and np.all(beta[:, k] == 0) and np.all(beta[:, :k] == beta[0, :k]):
            return self._sums_at_null(rows, beta[0, :k])
        n = self.y.size
        grad = np.empty((v, k + 1))
        hess = np.empty((v, k + 1, k + 1))
        ll = np.empty(v)
        step = self._step()

        def block(lo: int) -> None:
            sl = slice(lo, min(lo + step, v))
            r = rows[sl]
            b = beta[sl]
            missing = self._missing_flat(r)  # flat positions of missing calls in the block
            gs = self._signed(r)
            eta = b[:, :k] @ self.zs.T  # s eta
            _add_product(eta, gs, b[:, k:], torch_kernels=self.torch_kernels)
            # p = expit(s eta) is the probability of the observed class: the
            # log-likelihood y eta - log(1 + e^eta) = log p, s (y - mu) = 1 - p and
            # w = mu (1 - mu) = p (1 - p), from one sigmoid and one log (both stable).
            p, lli = _sigmoid_log(eta, torch_kernels=self.torch_kernels)
            lli.flat[missing] = 0.0
            ll[sl] = lli.sum(axis=1)
            # [w, s (y - mu), w s g] in one buffer: one matrix product against [zz, s z]
            buf = np.empty((3, r.size, n))
            w, resid, wg = buf
            np.subtract(1.0, p, out=resid)
            np.multiply(p, resid, out=w)
            w.flat[missing] = 0.0
            resid.flat[missing] = 0.0
            if hinv is not None:
                h = hinv[sl]
                # leverage h_i = w_i x_i' I^-1 x_i with x_i = [z_i, g_i] (signs cancel);
                # the penalised score adds h_i (1/2 - mu_i), and s (1/2 - mu) = 1/2 - p.
                quad = h[:, :k, :k].reshape(-1, k * k) @ self.zz.T
                quad += 2.0 * gs * (h[:, :k, k] @ self.zs.T)
                quad += h[:, k, k][:, None] * gs**2
                quad *= w
                quad *= 0.5 - p
                resid += quad
            np.multiply(w, gs, out=wg)
            prod = buf.reshape(3 * r.size, n) @ self.zzs
            nb = r.size
            hess[sl, :k, :k] = prod[:nb, : k * k].reshape(-1, k, k)
            grad[sl, :k] = prod[nb: 2 * nb, k * k:]
            hz = prod[2 * nb:, k * k:]
            hess[sl, :k, k] = hz
            hess[sl, k, :k] = hz
            grad[sl, k] = np.einsum("vn,vn->v", resid, gs)
            hess[sl, k, k] = np.einsum("vn,vn->v", wg, gs)

        # Blocks write disjoint rows of the outputs; numpy releases the GIL in its loops,
        # so threads use every core (BLAS itself is limited to one thread here).
        starts = range(0, v, step)
        workers = min(_threads(), len(starts))
        with _one_torch_thread() if self.torch_kernels else contextlib.nullcontext():
            if workers > 1:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    list(pool.map(block, starts))
            else:
                for lo in starts:
                    block(lo)
        return LogisticSums(gradient=grad, hessian=hess, loglik=ll, n=self.nobs[rows].copy())

    def _sums_at_null(self, rows: NDArray[np.intp], beta_z: Array) -> LogisticSums:
        """Compute the sums at ``[beta_z, 0]`` for every row (the start point).

        There eta does not depend on the genotype, so the per-sample terms are computed
        once and the sums are matrix products (a cache-sized block of variants at a time).
        """
        k = self.zs.shape[1]
        v = rows.size
        z = self.zs * self.sign[:, None]
        eta = z @ beta_z
        mu = special.expit(eta)
        w = mu * (1.0 - mu)
        resid = self.y - mu
        lli = self.y * eta - np.logaddexp(0.0, eta)
        miss = self.miss[rows]
        per_sample = np.column_stack([w[:, None] * self.zz, resid[:, None] * z, lli])
        totals = per_sample.sum(axis=0) - np.asarray(miss @ per_sample)  # (v, k*k + k + 1)
        hess = np.empty((v, k + 1, k + 1))
        hess[:, :k, :k] = totals[:, : k * k].reshape(v, k, k)
        grad = np.empty((v, k + 1))
        grad[:, :k] = totals[:, k * k: k * k + k]
        # genotype terms from the signed dosages: g w z = (s g) w (s z), g r = (s g) s r
        rhs = np.column_stack([w[:, None] * self.zs, self.sign * resid])
        step = self._step()
        for lo in range(0, v, step):
            sl = slice(lo, min(lo + step, v))
            gs = self._signed(rows[sl])
            gz = gs @ rhs
            hess[sl, :k, k] = gz[:, :k]
            hess[sl, k, :k] = gz[:, :k]
            grad[sl, k] = gz[:, k]
            gs *= gs
            hess[sl, k, k] = gs @ w
        return LogisticSums(gradient=grad, hessian=hess, loglik=totals[:, -1],
                            n=self.nobs[rows].copy())


def logistic_null_beta(
    is_case: ArrayLike, *, covariates: ArrayLike | None = None, max_iter: int = 50
) -> Array:
    """Fit the covariate-only logistic model (Newton-Raphson); the variants' start point.

    Parameters
    ----------
    is_case
        ``(n,)`` 1 = case, 0 = control.
    covariates
        ``(n, c)`` covariates without intercept, or None.
    max_iter
        Iteration limit.

    Returns
    -------
    numpy.ndarray
        ``(c + 1,)`` coefficients, intercept first.

    Raises
    ------
    InputError
        If the covariates separate cases from controls (no finite fit).

    Examples
    --------
    >>> b = logistic_null_beta([0, 0, 0, 1])
    >>> round(float(b[0]), 4)
    -1.0986
    """
    y = _vector(is_case, "is_case", binary=True)
    z = _design(covariates, y.size)
    beta = np.zeros(z.shape[1])
    for _ in range(max_iter):
        mu = special.expit(z @ beta)
        info = (z * (mu * (1 - mu))[:, None]).T @ z
        step = np.linalg.lstsq(info, z.T @ (y - mu), rcond=None)[0]
        beta += step
        if np.max(np.abs(step)) < 1e-10:
            return beta
    raise InputError(
        "the covariate-only logistic model does not converge", where="covariates",
        expected="covariates that do not separate cases from controls",
        got=f"no convergence in {max_iter} Newton steps",
        fix="drop covariates that predict case status perfectly",
    )


@dataclass(frozen=True)
class LogisticFit:
    """Per-variant result of :func:`fit_logistic`.

    Attributes
    ----------
    beta
        ``(V, p)`` coefficients (genotype last); NaN rows where the fit failed.
    covariance
        ``(V, p, p)`` inverse information at ``beta`` (Wald covariance).
    n
        ``(V,)`` called samples.
    iterations
        ``(V,)`` Newton iterations used.
    firth
        ``(V,)`` True where the Firth-penalised likelihood was maximised.
    errcode
        ``(V,)`` ``"."`` or plink2's error name (``LOGISTIC_CONVERGE_FAIL``,
        ``FIRTH_CONVERGE_FAIL``, ``SEPARATION,ALT1``...).
    """

    beta: Array
    covariance: Array
    n: Array
    iterations: NDArray[np.int64]
    firth: NDArray[np.bool_]
    errcode: NDArray[np.object_]


def fit_logistic(
    sums_at: SumsFunction,
    beta0: ArrayLike,
    *,
    firth: bool = False,
    max_iter: int | None = None,
    tol: float = 1e-8,
    max_step: float = 5.0,
    max_halvings: int = 15,
) -> LogisticFit:
    """Newton-Raphson for many logistic regressions at once, from summed statistics only.

    Each iteration asks ``sums_at`` for the summed score, information and log-likelihood
    of the unconverged variants, solves ``I delta = U`` per variant (batched), caps the
    step at ``max_step`` and halves it while the (penalised) log-likelihood decreases (as
    R's logistf). With ``firth=True`` the objective is ``l + 1/2 log det I`` (Firth 1993)
    and each iteration makes a second call with the inverse information to get the
    penalised score (Heinze & Schemper 2002). A variant converges when
    ``max |delta| < tol``; one that does not within ``max_iter`` iterations, or whose
    information becomes singular, fails (NaN, ``*_CONVERGE_FAIL``).

    Parameters
    ----------
    sums_at
        Returns summed :class:`LogisticSums` (see :data:`SumsFunction`).
    beta0
        ``(V, p)`` start (e.g. the covariate-only fit and 0 for the genotype).
    firth
        Maximise the Firth-penalised likelihood.
    max_iter
        Iteration limit (default 30, Firth 100).
    tol, max_step, max_halvings
        Convergence tolerance on the step, step cap, step-halving limit.

    Returns
    -------
    LogisticFit
        Coefficients, Wald covariance and status per variant.

    Examples
    --------
    >>> g = np.array([[0., 1, 2, 1, 0, 2, 1, 0]])
    >>> y = np.array([0., 1, 1, 0, 0, 0, 1, 1])
    >>> fn = lambda b, rows, inv: logistic_sums(g[rows], is_case=y, beta=b,
    ...                                         hessian_inverse=inv)
    >>> fit = fit_logistic(fn, np.zeros((1, 2)))
    >>> round(float(fit.beta[0, 1]), 4), fit.errcode.tolist()
    (0.4163, ['.'])
    """
    beta = np.array(beta0, dtype=np.float64, copy=True)
    if beta.ndim != 2:
        raise InputError("beta0 must be 2-D", where="beta0", expected="(n_variants, p)",
                         got=f"{beta.ndim} dimensions")
    v, p = beta.shape
    limit = max_iter if max_iter is not None else (100 if firth else 30)
    fail_code = "FIRTH_CONVERGE_FAIL" if firth else "LOGISTIC_CONVERGE_FAIL"
    cov = np.full((v, p, p), np.nan)
    iters = np.zeros(v, dtype=np.int64)
    done = np.zeros(v, dtype=bool)
    err = np.full(v, fail_code, dtype=object)

    def objective(s: LogisticSums) -> tuple[Array, Array, NDArray[np.bool_]]:
        inv, ok = _inverse_pd(s.hessian)
        obj = s.loglik + (0.5 * _logdet_pd(s.hessian) if firth else 0.0)
        return obj, inv, ok & np.isfinite(obj)

    act = np.arange(v)
    s = sums_at(beta, act, None)
    n = s.n.copy()
    obj, inv, ok = objective(s)
    grad = s.gradient
    act, obj, inv, grad = act[ok], obj[ok], inv[ok], grad[ok]
    for it in range(1, limit + 1):
        if act.size == 0:
            break
        if firth:
            grad = sums_at(beta[act], act, inv).gradient
        delta = np.einsum("vij,vj->vi", inv, grad)
        dmax = np.max(np.abs(delta), axis=1)
        conv = dmax < tol
        if conv.any():
            rows = act[conv]
            cov[rows], done[rows], err[rows], iters[rows] = inv[conv], True, _OK, it - 1
            keep = ~conv
            act, obj, inv, delta, dmax = act[keep], obj[keep], inv[keep], delta[keep], dmax[keep]
            if act.size == 0:
                break
        delta *= np.minimum(1.0, max_step / dmax)[:, None]
        base = beta[act]
        trial = base + delta
        s = sums_at(trial, act, None)
        t_obj, t_inv, t_ok = objective(s)
        t_grad = s.gradient
        worse = ~t_ok | (t_obj < obj - 1e-10 * (1.0 + np.abs(obj)))
        for _ in range(max_halvings):
            if not worse.any():
                break
            idx = np.flatnonzero(worse)
            delta[idx] *= 0.5
            trial[idx] = base[idx] + delta[idx]
            sb = sums_at(trial[idx], act[idx], None)
            b_obj, b_inv, b_ok = objective(sb)
            t_obj[idx], t_inv[idx], t_ok[idx], t_grad[idx] = b_obj, b_inv, b_ok, sb.gradient
            worse[idx] = ~b_ok | (b_obj < obj[idx] - 1e-10 * (1.0 + np.abs(obj[idx])))
        keep = ~worse
        beta[act[keep]] = trial[keep]
        iters[act] = it
        act, obj, inv, grad = act[keep], t_obj[keep], t_inv[keep], t_grad[keep]
    beta[~done] = np.nan
    return LogisticFit(
        beta=beta, covariance=cov, n=n, iterations=iters,
        firth=np.full(v, bool(firth)), errcode=err,
    )


def logistic_finalize(fit: LogisticFit) -> pd.DataFrame:
    """Wald test of the genotype coefficient of every variant.

    Parameters
    ----------
    fit
        Result of :func:`fit_logistic`.

    Returns
    -------
    pandas.DataFrame
        ``OBS_CT``, ``OR`` (``exp(beta)``), ``LOG(OR)_SE``, ``Z_STAT``, ``P`` (two-sided
        normal), ``FIRTH`` (bool), ``ERRCODE``.

    Examples
    --------
    >>> fit = LogisticFit(np.array([[0.0, np.log(2.0)]]), np.array([[[1.0, 0], [0, 0.25]]]),
    ...                   np.array([100.0]), np.array([4]), np.array([False]),
    ...                   np.array(["."], dtype=object))
    >>> r = logistic_finalize(fit)
    >>> float(r.OR[0]), float(r["LOG(OR)_SE"][0]), round(float(r.Z_STAT[0]), 4)
    (2.0, 0.5, 1.3863)
    """
    b = fit.beta[:, -1]
    with np.errstate(invalid="ignore"):
        se = np.sqrt(fit.covariance[:, -1, -1])
        z = b / se
        pval = np.where(np.isfinite(z), 2 * special.ndtr(-np.abs(z)), np.nan)
    return pd.DataFrame({
        "OBS_CT": fit.n.astype(np.int64), "OR": np.exp(b), "LOG(OR)_SE": se, "Z_STAT": z,
        "P": pval, "FIRTH": fit.firth, "ERRCODE": fit.errcode,
    })


def separation_errcodes(sums: CaseControlSums) -> NDArray[np.object_]:
    """plink2's pre-fit separation check from summed case/control statistics.

    ``SEPARATION,ALT1`` when no case or no control carries ALT (ALT dosage sum 0);
    ``SEPARATION,REF`` when every called case, or every called control, is homozygous
    ALT (REF count 0). The logistic MLE does not exist then (quasi-complete separation).
    ``CONST_ALLELE`` when the called dosages do not vary (no regression possible, with
    or without Firth's penalty).

    Parameters
    ----------
    sums
        Summed :class:`CaseControlSums`.

    Returns
    -------
    numpy.ndarray
        ``(V,)`` object array of ``"."`` or the error name.

    Examples
    --------
    >>> s = case_control_sums([[0, 0, 1, 2], [2, 2, 1, 2], [0, 1, 1, 2], [1, 1, 1, 1]],
    ...                       is_case=[1, 1, 0, 0])
    >>> separation_errcodes(s).tolist()
    ['SEPARATION,ALT1', 'SEPARATION,REF', '.', 'CONST_ALLELE']
    """
    err = np.full(sums.n_case.shape, _OK, dtype=object)
    ref_case = 2 * sums.n_case - sums.alt_case
    ref_ctrl = 2 * sums.n_control - sums.alt_control
    err[(ref_case <= 0) | (ref_ctrl <= 0)] = "SEPARATION,REF"
    err[(sums.alt_case <= 0) | (sums.alt_control <= 0)] = "SEPARATION,ALT1"
    n = sums.n_case + sums.n_control
    s_g = sums.alt_case + sums.alt_control
    err[n * sums.alt_sq - s_g**2 <= 1e-9 * np.maximum(n, 1) ** 2] = "CONST_ALLELE"
    return err


def logistic_regression(
    dosage: ArrayLike,
    *,
    is_case: ArrayLike,
    covariates: ArrayLike | None = None,
    firth: FirthMode = False,
    null_beta: ArrayLike | None = None,
) -> pd.DataFrame:
    """Per-variant logistic regression with covariates (= ``plink2 --glm``, A1 = ALT).

    Parameters
    ----------
    dosage
        ``(V, n)`` ALT dosages, NaN = missing (dropped per variant).
    is_case
        ``(n,)`` 1 = case, 0 = control.
    covariates
        ``(n, c)`` covariates without intercept, or None.
    firth
        False: plain maximum likelihood; variants with separation (see
        :func:`separation_errcodes`) or no convergence get NaN (= ``--glm no-firth``).
        True: Firth-penalised likelihood for every variant (= ``--glm firth``).
        ``"fallback"``: Firth only where the plain fit is impossible or fails
        (= plink2's default ``firth-fallback``).
    null_beta
        Covariate-only coefficients to start from (computed when None).

    Returns
    -------
    pandas.DataFrame
        See :func:`logistic_finalize`, plus ``A1_FREQ``.

    Raises
    ------
    InputError
        If shapes disagree or values are invalid.
    ConfigError
        If ``firth`` is not True, False or ``"fallback"``.

    Notes
    -----
    Checked against plink2 2.00a3.5 (``--glm omit-ref hide-covar no-firth|firth``): the
    Firth estimate is the maximiser of ``l + 1/2 log det I`` and its ``LOG(OR)_SE`` comes
    from the unpenalised information at that estimate, as plink2 reports. For variants
    with missing calls plink2 2.00a3.5 sometimes reports another ``LOG(OR)_SE`` (and Firth
    estimate) than it does for the same samples when those without a call are removed
    with ``--remove``; this function gives the latter (tested), as does
    ``plink1.9 --logistic``.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> g = rng.integers(0, 3, size=(3, 400)).astype(float)
    >>> y = (rng.random(400) < 1 / (1 + np.exp(-(g[0] - 1)))).astype(float)
    >>> r = logistic_regression(g, is_case=y)
    >>> bool(r.P[0] < 1e-6), r.ERRCODE.tolist()
    (True, ['.', '.', '.'])
    """
    if firth not in (True, False, "fallback"):
        raise ConfigError(
            "unknown Firth mode", where="firth", expected="True, False or 'fallback'",
            got=repr(firth),
        )
    y = _vector(is_case, "is_case", binary=True)
    g = _dosage(dosage, y.size)
    c = None if covariates is None else np.asarray(covariates, dtype=np.float64)
    b0 = (
        logistic_null_beta(y, covariates=c) if null_beta is None
        else np.asarray(null_beta, dtype=np.float64)
    )
    v = g.shape[0]

    prep = _LogisticData.build(g, y, _design(c, y.size))

    def sums_at(beta: Array, rows: NDArray[np.intp], inv: Array | None) -> LogisticSums:
        return prep.sums(rows, beta, inv)

    start = np.concatenate([np.broadcast_to(b0, (v, b0.size)), np.zeros((v, 1))], axis=1)
    with _one_blas_thread():
        return _logistic_fits(sums_at, start, prep.case_control(), firth)


def _logistic_fits(
    sums_at: SumsFunction, start: Array, cc: CaseControlSums, firth: FirthMode
) -> pd.DataFrame:
    """Fit the variants of :func:`logistic_regression` (separation check, fallback)."""
    v = start.shape[0]
    sep = separation_errcodes(cc)
    if firth is True:
        const = sep == "CONST_ALLELE"
        fit = _fit_subset(sums_at, start, np.flatnonzero(~const), firth=True)
        beta, cov, use_firth = fit.beta, fit.covariance, ~const
        errcode = np.where(const, sep, fit.errcode)
    else:
        fit = _fit_subset(sums_at, start, np.flatnonzero(sep == _OK), firth=False)
        errcode = np.where(sep != _OK, sep, fit.errcode)
        beta, cov, use_firth = fit.beta, fit.covariance, np.zeros(v, dtype=bool)
        if firth == "fallback":
            redo = np.flatnonzero((errcode != _OK) & (errcode != "CONST_ALLELE"))
            if redo.size:
                f2 = _fit_subset(sums_at, start, redo, firth=True)
                beta[redo], cov[redo] = f2.beta[redo], f2.covariance[redo]
                errcode[redo] = f2.errcode[redo]
                use_firth[redo] = True
    obs = cc.n_case + cc.n_control
    out = logistic_finalize(LogisticFit(
        beta=beta, covariance=cov, n=obs, iterations=fit.iterations, firth=use_firth,
        errcode=errcode,
    ))
    with np.errstate(invalid="ignore", divide="ignore"):
        out["A1_FREQ"] = np.where(obs > 0, (cc.alt_case + cc.alt_control) / (2 * obs), np.nan)
    return out


def _fit_subset(
    sums_at: SumsFunction, start: Array, rows: NDArray[np.intp], *, firth: bool
) -> LogisticFit:
    """Fit only ``rows``; the other variants come back as NaN with errcode ``"."``."""
    v, p = start.shape
    out = LogisticFit(
        beta=np.full((v, p), np.nan), covariance=np.full((v, p, p), np.nan),
        n=np.zeros(v), iterations=np.zeros(v, dtype=np.int64), firth=np.full(v, firth),
        errcode=np.full(v, _OK, dtype=object),
    )
    if rows.size == 0:
        return out

    def sub(beta: Array, local: NDArray[np.intp], inv: Array | None) -> LogisticSums:
        return sums_at(beta, rows[local], inv)

    fit = fit_logistic(sub, start[rows], firth=firth)
    out.beta[rows], out.covariance[rows], out.n[rows] = fit.beta, fit.covariance, fit.n
    out.iterations[rows], out.errcode[rows] = fit.iterations, fit.errcode
    return out
