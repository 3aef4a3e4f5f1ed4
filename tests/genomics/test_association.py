"""Tests of secured_bio.genomics.association and .pca.

- the math against direct per-variant computations (numpy least squares, an independent
  Newton fit, scipy optimisation of the Firth-penalised likelihood);
- additivity: splitting the samples into 3 sites and adding the sites' sums gives the
  pooled result (the basis of the secure multi-site version);
- cross-checks against plink2 2.00a3.5 / plink1.9 1.90b6.26 (``reference`` marker) on an
  msprime cohort with missing genotypes, phenotypes and covariates;
- clear errors that never show data values.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import requires_tools
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, special, stats

from secured_bio.errors import ConfigError, InputError
from secured_bio.genomics import association as A
from secured_bio.genomics import pca as P
from secured_bio.genomics.phenotypes import (
    analysis_samples,
    load_covariates,
    load_phenotype,
)

# Acceptance bounds of issue 3 (ours vs plink on the same data).
MIN_R = 0.9999
MAX_DELTA_LOG10P = 0.01
MAX_MEDIAN_REL_EFFECT = 1e-3

needs_plink = requires_tools("plink2", "plink1.9")


# ------------------------------------------------------------------------------ fixtures
@dataclass(frozen=True)
class Cohort:
    dir: Path
    vcf: Path
    pheno: Path
    covar: Path
    samples: list[str]
    dosage: np.ndarray  # (V, n) ALT dosage, NaN missing
    variant_ids: np.ndarray


def _read_dosage(vcf: Path) -> tuple[np.ndarray, list[str], np.ndarray]:
    import allel

    data = allel.read_vcf(str(vcf), fields=["calldata/GT", "variants/ID", "samples"])
    gt = data["calldata/GT"]
    called = np.all(gt >= 0, axis=2)
    dose = np.where(called, gt.sum(axis=2), np.nan).astype(np.float64)
    return dose, [str(s) for s in data["samples"]], np.asarray(data["variants/ID"])


def _make_cohort(d: Path, missing_rate: float) -> Cohort:
    from secured_bio.testing import simulate_genotypes

    c = simulate_genotypes(d, n_sites=1, samples_per_site=600, n_variants=1000, n_causal=5,
                           seed=3, missing_rate=missing_rate)
    covar = pd.read_csv(c.covar_path, sep="\t", dtype=str, keep_default_na=False)
    covar.loc[covar.index[5:400:50], "age"] = "NA"
    covar_path = d / "covar_na.tsv"
    covar.to_csv(covar_path, sep="\t", index=False)
    dose, samples, ids = _read_dosage(c.vcf_paths[0])
    return Cohort(d, c.vcf_paths[0], c.pheno_path, covar_path, samples, dose, ids)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    """600 samples x 1000 variants (msprime, 2 populations, 0.5 % missing calls), ~2 %
    missing phenotypes, and a covariate file with 8 missing ages."""
    return _make_cohort(tmp_path_factory.mktemp("assoc"), 0.005)


@pytest.fixture(scope="module")
def complete_cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    """The same cohort without missing genotype calls (phenotypes/covariates still missing)."""
    return _make_cohort(tmp_path_factory.mktemp("assoc_complete"), 0.0)


def _quant(c: Cohort, covariates: bool = True):
    t = load_phenotype(c.pheno, c.samples, name="quant")
    cov = load_covariates(c.covar, c.samples) if covariates else None
    return analysis_samples(t, cov)


def _case(c: Cohort, covariates: bool = True):
    t = load_phenotype(c.pheno, c.samples, name="case", require="binary")
    cov = load_covariates(c.covar, c.samples) if covariates else None
    return analysis_samples(t, cov)


# ------------------------------------------------------------------- math, small inputs
def test_case_control_sums__counts_alleles_of_called_samples() -> None:
    s = A.case_control_sums([[0, 1, 2, np.nan, 1]], is_case=[1, 1, 0, 0, 0])
    assert (s.n_case[0], s.n_control[0], s.alt_case[0], s.alt_control[0], s.alt_sq[0]) == (
        2, 2, 1, 3, 6)


def test_allelic_finalize__matches_pearson_chi2_of_allele_table() -> None:
    rng = np.random.default_rng(0)
    g = rng.integers(0, 3, size=(20, 300)).astype(float)
    y = (rng.random(300) < 0.4).astype(float)
    r = A.allelic_test(g, is_case=y)
    for j in range(20):
        a = g[j, y == 1].sum()
        b = 2 * (y == 1).sum() - a
        cc = g[j, y == 0].sum()
        d = 2 * (y == 0).sum() - cc
        chi2 = stats.chi2_contingency([[a, b], [cc, d]], correction=False)[0]
        assert r.CHISQ[j] == pytest.approx(chi2, rel=1e-10)
        assert r.OR[j] == pytest.approx(a * d / (b * cc), rel=1e-12)


def test_trend_finalize__equals_n_r_squared() -> None:
    rng = np.random.default_rng(1)
    g = rng.integers(0, 3, size=(10, 200)).astype(float)
    g[rng.random(g.shape) < 0.05] = np.nan
    y = (rng.random(200) < 0.3).astype(float)
    r = A.trend_test(g, is_case=y)
    for j in range(10):
        ok = ~np.isnan(g[j])
        rho = np.corrcoef(g[j, ok], y[ok])[0, 1]
        assert r.CHISQ[j] == pytest.approx(ok.sum() * rho**2, rel=1e-10)


def test_linear_regression__matches_per_variant_least_squares() -> None:
    rng = np.random.default_rng(2)
    n = 250
    cov = np.column_stack([rng.normal(size=n), rng.integers(1, 3, size=n)])
    g = rng.integers(0, 3, size=(15, n)).astype(float)
    g[rng.random(g.shape) < 0.1] = np.nan
    y = 0.3 * np.nan_to_num(g[0]) + cov @ [0.5, -0.2] + rng.normal(size=n)
    r = A.linear_regression(g, phenotype=y, covariates=cov)
    for j in range(15):
        ok = ~np.isnan(g[j])
        x = np.column_stack([np.ones(ok.sum()), cov[ok], g[j, ok]])
        beta, rss, *_ = np.linalg.lstsq(x, y[ok], rcond=None)
        df = ok.sum() - x.shape[1]
        se = np.sqrt(rss[0] / df * np.linalg.inv(x.T @ x)[-1, -1])
        assert r.BETA[j] == pytest.approx(beta[-1], rel=1e-9)
        assert r.SE[j] == pytest.approx(se, rel=1e-9)
        assert r.P[j] == pytest.approx(2 * stats.t.sf(abs(beta[-1] / se), df), rel=1e-7)
        assert r.OBS_CT[j] == ok.sum()


@pytest.mark.parametrize("missing", [0.0, 0.1])
def test_linear_sums_codes__equal_the_per_variant_cross_products(
        monkeypatch: pytest.MonkeyPatch, missing: float) -> None:
    """The int8 fast path of the secure linear test, against X'X built variant by variant."""
    rng = np.random.default_rng(12)
    n, v = 230, 11
    cov = np.column_stack([rng.normal(size=n), rng.integers(1, 3, size=n)])
    y = rng.normal(size=n)
    codes = rng.integers(0, 3, size=(v, n)).astype(np.int8)
    codes[3] = rng.integers(0, 2, size=n)  # a haploid-like variant (0/1 only)
    codes[rng.random(codes.shape) < missing] = -1
    if missing:
        codes[5] = -1  # every call missing
    # Convert 3 variants at a time, so the products cross the step boundaries.
    monkeypatch.setattr(A, "_CODE_STEP_DOUBLES", 3 * n)
    w = np.column_stack([np.ones(n), cov, y])
    got = A._linear_sums_codes(codes, w).crossprod
    for j in range(v):
        ok = codes[j] >= 0
        x = np.column_stack([np.ones(ok.sum()), cov[ok], codes[j, ok], y[ok]])
        np.testing.assert_allclose(got[j], x.T @ x, rtol=1e-12, atol=1e-9)
    dosage = np.where(codes < 0, np.nan, codes.astype(float))
    np.testing.assert_allclose(
        got, A.linear_sums(dosage, phenotype=y, covariates=cov).crossprod,
        rtol=1e-12, atol=1e-9)


def test_linear_regression__constant_and_collinear_variants_are_na() -> None:
    rng = np.random.default_rng(3)
    n = 100
    age = rng.normal(50, 10, size=n)
    g = np.vstack([np.ones(n), rng.integers(0, 3, n), np.zeros(n)]).astype(float)
    g[2] = np.clip(np.round((age - 50) / 10 + 1), 0, 2)  # nearly a copy of age
    cov = np.column_stack([age, g[2] + 1e-9 * rng.normal(size=n)])
    r = A.linear_regression(g, phenotype=rng.normal(size=n), covariates=cov)
    assert r.ERRCODE[0] == "CONST_ALLELE" and np.isnan(r.P[0])
    assert r.ERRCODE[1] == "."
    assert r.ERRCODE[2] in ("CORR_TOO_HIGH", "VIF_TOO_HIGH") and np.isnan(r.BETA[2])


def _newton_reference(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plain IRLS for one design: an independent check of the batched code."""
    b = np.zeros(x.shape[1])
    for _ in range(100):
        mu = special.expit(x @ b)
        info = x.T @ (x * (mu * (1 - mu))[:, None])
        step = np.linalg.solve(info, x.T @ (y - mu))
        b += step
        if np.abs(step).max() < 1e-12:
            break
    mu = special.expit(x @ b)
    return b, np.linalg.inv(x.T @ (x * (mu * (1 - mu))[:, None]))


def test_logistic_regression__matches_per_variant_newton() -> None:
    rng = np.random.default_rng(4)
    n = 400
    cov = rng.normal(size=(n, 2))
    g = rng.integers(0, 3, size=(12, n)).astype(float)
    g[rng.random(g.shape) < 0.05] = np.nan
    eta = -1 + 0.4 * np.nan_to_num(g[0]) + cov @ [0.3, -0.5]
    y = (rng.random(n) < special.expit(eta)).astype(float)
    r = A.logistic_regression(g, is_case=y, covariates=cov)
    for j in range(12):
        ok = ~np.isnan(g[j])
        x = np.column_stack([np.ones(ok.sum()), cov[ok], g[j, ok]])
        b, v = _newton_reference(x, y[ok])
        assert np.log(r.OR[j]) == pytest.approx(b[-1], rel=1e-7, abs=1e-10)
        assert r["LOG(OR)_SE"][j] == pytest.approx(np.sqrt(v[-1, -1]), rel=1e-7)
        assert r.OBS_CT[j] == ok.sum()


@pytest.mark.parametrize("firth", [False, True])
def test_logistic_sums_codes__equal_the_per_variant_sums(
        monkeypatch: pytest.MonkeyPatch, firth: bool) -> None:
    """The int8 + torch-kernel path of the secure logistic test, variant by variant.

    Signed storage, cache-sized slabs (3 variants here, so they cross slab boundaries),
    missing calls from the CSR arrays, and the start-point shortcut, against the score,
    information, log-likelihood (and Firth's penalised score) built from the definitions.
    """
    rng = np.random.default_rng(14)
    n, v = 150, 10
    cov = rng.normal(size=(n, 2))
    y = (rng.random(n) < 0.4).astype(float)
    codes = rng.integers(0, 3, size=(v, n)).astype(np.int8)
    codes[rng.random(codes.shape) < 0.08] = -1
    codes[4] = -1
    codes[4, :40] = rng.integers(0, 3, size=40)  # mostly missing
    z = np.column_stack([np.ones(n), cov])
    monkeypatch.setattr(A, "_BLOCK_BYTES", 8 * n * 3)
    prep = A._LogisticData.build_codes(codes, y, z)
    assert prep.torch_kernels
    beta = rng.normal(scale=0.4, size=(v, 4))
    rows = np.array([7, 0, 4, 9, 2, 3, 5])
    hinv = None
    if firth:
        hinv = np.linalg.inv(prep.sums(rows, beta[rows], None).hessian)
    got = prep.sums(rows, beta[rows], hinv)
    at_null = prep.sums(rows, np.tile([0.2, -0.1, 0.3, 0.0], (rows.size, 1)), None)
    for i, j in enumerate(rows):
        ok = codes[j] >= 0
        x = np.column_stack([z[ok], codes[j, ok].astype(float)])
        for b, s, h in ((beta[j], got, None if hinv is None else hinv[i]),
                        (np.array([0.2, -0.1, 0.3, 0.0]), at_null, None)):
            mu = special.expit(x @ b)
            info = x.T @ (x * (mu * (1 - mu))[:, None])
            resid = y[ok] - mu
            if h is not None:
                lev = np.einsum("ij,jk,ik->i", x, h, x) * mu * (1 - mu)
                resid = resid + lev * (0.5 - mu)
            ll = np.sum(y[ok] * np.log(mu) + (1 - y[ok]) * np.log1p(-mu))
            np.testing.assert_allclose(s.gradient[i], x.T @ resid, rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(s.hessian[i], info, rtol=1e-10, atol=1e-10)
            assert s.loglik[i] == pytest.approx(ll, rel=1e-10)
            assert s.n[i] == ok.sum()
    cc = prep.case_control()
    d = np.where(codes < 0, np.nan, codes.astype(float))
    ref = A.case_control_sums(d, is_case=y)
    for f in ("n_case", "n_control", "alt_case", "alt_control", "alt_sq"):
        np.testing.assert_allclose(getattr(cc, f), getattr(ref, f), rtol=0, atol=1e-9)
    # the float path (numpy kernels) gives the same sums
    flt = A.logistic_sums(d[rows], is_case=y, beta=beta[rows], covariates=cov,
                          hessian_inverse=hinv)
    np.testing.assert_allclose(flt.gradient, got.gradient, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(flt.loglik, got.loglik, rtol=1e-10)


def test_logistic_regression__firth_maximises_penalised_likelihood() -> None:
    rng = np.random.default_rng(5)
    n = 120
    cov = rng.normal(size=(n, 1))
    g = rng.binomial(2, 0.05, size=(6, n)).astype(float)
    y = (rng.random(n) < 0.25).astype(float)
    r = A.logistic_regression(g, is_case=y, covariates=cov, firth=True)
    for j in range(6):
        x = np.column_stack([np.ones(n), cov, g[j]])

        def neg_penalised(b: np.ndarray, x: np.ndarray = x) -> float:
            eta = x @ b
            mu = special.expit(eta)
            info = x.T @ (x * (mu * (1 - mu))[:, None])
            ll = np.sum(y * eta - np.logaddexp(0, eta))
            return -(ll + 0.5 * np.linalg.slogdet(info)[1])

        best = optimize.minimize(neg_penalised, np.zeros(3), method="BFGS",
                                 options={"gtol": 1e-10})
        assert np.log(r.OR[j]) == pytest.approx(best.x[-1], abs=1e-5)
        assert bool(r.FIRTH[j]) and r.ERRCODE[j] == "."


def test_logistic_regression__separation_is_na_or_firth() -> None:
    rng = np.random.default_rng(6)
    n = 200
    y = (rng.random(n) < 0.3).astype(float)
    g = rng.integers(0, 3, size=(4, n)).astype(float)
    g[0, y == 1] = 0  # no case carries ALT
    g[1] = np.where(y == 0, 2.0, rng.integers(1, 3, n))  # every control homozygous ALT
    g[3] = 1.0  # constant
    plain = A.logistic_regression(g, is_case=y)
    assert plain.ERRCODE.tolist() == ["SEPARATION,ALT1", "SEPARATION,REF", ".",
                                      "CONST_ALLELE"]
    assert plain.P[[0, 1, 3]].isna().all() and np.isfinite(plain.P[2])
    fallback = A.logistic_regression(g, is_case=y, firth="fallback")
    assert fallback.FIRTH.tolist() == [True, True, False, False]
    assert np.isfinite(fallback.P[:3]).all() and fallback.ERRCODE[3] == "CONST_ALLELE"
    assert fallback.P[2] == plain.P[2]
    always = A.logistic_regression(g, is_case=y, firth=True)
    np.testing.assert_allclose(always.P[:2], fallback.P[:2], rtol=1e-8)


def test_fit_logistic__non_convergence_is_reported() -> None:
    g = np.array([[0.0, 1, 1, 2]])
    y = np.array([0.0, 0, 1, 1])  # quasi-separation that no zero cell reveals

    def sums_at(b, rows, inv):
        return A.logistic_sums(g[rows], is_case=y, beta=b, hessian_inverse=inv)

    fit = A.fit_logistic(sums_at, np.zeros((1, 2)), max_iter=20)
    assert fit.errcode.tolist() == ["LOGISTIC_CONVERGE_FAIL"]
    assert np.isnan(A.logistic_finalize(fit).P[0])


# ------------------------------------------------------------------------- additivity
def _sites(n: int, k: int = 3, seed: int = 0) -> list[np.ndarray]:
    """Split 0..n-1 into k sites of unequal sizes, in shuffled order."""
    perm = np.random.default_rng(seed).permutation(n)
    cuts = np.sort(np.random.default_rng(seed + 1).choice(np.arange(10, n - 10), k - 1,
                                                          replace=False))
    return np.split(perm, cuts)


def test_additivity__site_sums_give_the_pooled_result(cohort: Cohort) -> None:
    q = _quant(cohort)
    d = cohort.dosage[:, q.mask]
    sites = _sites(d.shape[1])
    pooled = A.linear_sums(d, phenotype=q.phenotype, covariates=q.covariates)
    summed = sum(A.linear_sums(d[:, s], phenotype=q.phenotype[s], covariates=q.covariates[s])
                 for s in sites)
    np.testing.assert_allclose(summed.crossprod, pooled.crossprod, rtol=1e-12, atol=1e-8)
    pd.testing.assert_frame_equal(A.linear_finalize(summed), A.linear_finalize(pooled),
                                  rtol=1e-9)

    cc = _case(cohort, covariates=False)
    d = cohort.dosage[:, cc.mask]
    sites = _sites(d.shape[1], seed=2)
    pooled_cc = A.case_control_sums(d, is_case=cc.phenotype)
    summed_cc = sum(A.case_control_sums(d[:, s], is_case=cc.phenotype[s]) for s in sites)
    for name in ("n_case", "n_control", "alt_case", "alt_control", "alt_sq"):
        np.testing.assert_array_equal(getattr(summed_cc, name), getattr(pooled_cc, name))
    pd.testing.assert_frame_equal(A.allelic_finalize(summed_cc), A.allelic_test(
        d, is_case=cc.phenotype))
    pd.testing.assert_frame_equal(A.trend_finalize(summed_cc), A.trend_test(
        d, is_case=cc.phenotype))


@pytest.mark.parametrize("firth", [False, True])
def test_additivity__logistic_newton_on_summed_sums_equals_pooled(cohort: Cohort,
                                                                 firth: bool) -> None:
    cc = _case(cohort)
    d = cohort.dosage[:200, cc.mask]
    y, cov = cc.phenotype, cc.covariates
    sites = _sites(d.shape[1], seed=4)
    calls: list[int] = []

    def secure_like_sums(beta, rows, inv):
        # What a multi-site protocol reveals: only the sum of the sites' statistics.
        calls.append(len(rows))
        return sum(A.logistic_sums(d[rows][:, s], is_case=y[s], covariates=cov[s], beta=beta,
                                   hessian_inverse=inv) for s in sites)

    b0 = A.logistic_null_beta(y, covariates=cov)
    start = np.column_stack([np.tile(b0, (d.shape[0], 1)), np.zeros(d.shape[0])])
    fit = A.fit_logistic(secure_like_sums, start, firth=firth)
    multi = A.logistic_finalize(fit)
    pooled = A.logistic_regression(d, is_case=y, covariates=cov, firth=firth, null_beta=b0)
    ok = fit.errcode == "."
    if not firth:  # the convenience function also flags separation before fitting
        ok &= pooled.ERRCODE.to_numpy() == "."
    assert ok.sum() > 150
    np.testing.assert_allclose(multi.OR[ok], pooled.OR[ok], rtol=1e-8)
    np.testing.assert_allclose(multi["LOG(OR)_SE"][ok], pooled["LOG(OR)_SE"][ok], rtol=1e-8)
    np.testing.assert_allclose(multi.P[ok], pooled.P[ok], rtol=1e-6)
    assert max(calls) == d.shape[0]  # vectorised over variants, not one call per variant


def test_additivity__pca_from_site_covariances_equals_pooled_grm(cohort: Cohort) -> None:
    d = cohort.dosage[:300]
    sites = _sites(d.shape[1], seed=6)
    freq = P.alt_frequency(sum((P.allele_frequency_sums(d[:, s]) for s in sites[1:]),
                               P.allele_frequency_sums(d[:, sites[0]])))
    np.testing.assert_allclose(freq, P.alt_frequency(P.allele_frequency_sums(d)), rtol=1e-12)
    cov = sum(P.covariance_sums(d[:, s], alt_freq=freq) for s in sites)
    n_poly = int(np.sum((freq > 0) & (freq < 1)))
    loadings, values = P.pca_from_covariance(cov, n_components=4, n_variants=n_poly)
    scores = np.empty((d.shape[1], 4))
    for s in sites:
        scores[s] = P.project(d[:, s], alt_freq=freq, loadings=loadings, eigenvalues=values)
    pooled = P.principal_components([d[:150], d[150:]], alt_freq=freq, n_components=4)
    np.testing.assert_allclose(np.abs(scores), np.abs(pooled.scores), atol=1e-8)
    np.testing.assert_allclose(values / n_poly, pooled.eigenvalues, rtol=1e-9)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=2, max_value=5))
def test_property__sums_of_any_split_equal_pooled_sums(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    n = 60
    g = rng.integers(0, 3, size=(4, n)).astype(float)
    g[rng.random(g.shape) < 0.1] = np.nan
    y = rng.normal(size=n)
    case = (rng.random(n) < 0.5).astype(float)
    cov = rng.normal(size=(n, 2))
    parts = np.array_split(rng.permutation(n), k)
    lin = sum(A.linear_sums(g[:, p], phenotype=y[p], covariates=cov[p]) for p in parts)
    np.testing.assert_allclose(
        lin.crossprod, A.linear_sums(g, phenotype=y, covariates=cov).crossprod,
        rtol=1e-12, atol=1e-9)
    beta = rng.normal(scale=0.1, size=(4, 4))
    lo = sum(A.logistic_sums(g[:, p], is_case=case[p], covariates=cov[p], beta=beta)
             for p in parts)
    full = A.logistic_sums(g, is_case=case, covariates=cov, beta=beta)
    np.testing.assert_allclose(lo.gradient, full.gradient, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(lo.hessian, full.hessian, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(lo.loglik, full.loglik, rtol=1e-12)


def test_additivity__mismatched_sites_raise() -> None:
    a = A.linear_sums([[0.0, 1, 2]], phenotype=[1.0, 2, 3])
    b = A.linear_sums([[0.0, 1, 2], [1, 1, 0]], phenotype=[1.0, 2, 3])
    with pytest.raises(InputError, match=r"cannot add LinearSums of different shapes.*same "
                       r"variants"):
        _ = a + b


# ----------------------------------------------------------------------------- errors
def test_errors__bad_inputs_raise_without_values() -> None:
    with pytest.raises(InputError, match=r"dosage out of range.*\[0, 2\]") as e:
        A.allelic_test([[0.0, 3.75]], is_case=[0, 1])
    assert "3.75" not in str(e.value)
    with pytest.raises(InputError, match="dosage and phenotype have different numbers"):
        A.linear_regression([[0.0, 1.0, 2.0]], phenotype=[1.0, 2.0])
    with pytest.raises(InputError, match="phenotype has missing or infinite values"):
        A.linear_regression([[0.0, 1.0]], phenotype=[1.0, np.nan])
    with pytest.raises(InputError, match="is_case is not coded 0/1"):
        A.trend_test([[0.0, 1.0]], is_case=[1, 2])
    with pytest.raises(InputError, match="covariates have the wrong shape"):
        A.linear_regression([[0.0, 1.0]], phenotype=[1.0, 2.0], covariates=np.ones((3, 1)))
    with pytest.raises(ConfigError, match="unknown Firth mode"):
        A.logistic_regression([[0.0, 1.0]], is_case=[0, 1], firth="sometimes")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="covariate-only logistic model does not converge"):
        A.logistic_null_beta([0, 0, 1, 1], covariates=[[0.0], [0.1], [0.9], [1.0]])
    with pytest.raises(InputError, match="invalid number of principal components"):
        P.pca_from_grm(np.eye(3), n_components=3, n_variants=5)
    with pytest.raises(InputError, match="no polymorphic variant for PCA"):
        P.pca_from_grm(np.eye(3), n_components=1, n_variants=0)
    with pytest.raises(InputError, match="invalid number of principal components"):
        P.pca_from_covariance(np.eye(2), n_components=2, n_variants=2)
    with pytest.raises(InputError, match="dosage chunks do not cover the allele frequencies"):
        P.principal_components([np.zeros((2, 4))], alt_freq=np.full(3, 0.5), n_components=1)
    with pytest.raises(InputError, match="unknown missing-genotype mode"):
        P.principal_components([np.zeros((3, 4))], alt_freq=np.full(3, 0.5), n_components=1,
                               missing="drop")  # type: ignore[arg-type]


# ----------------------------------------------------------------- plink cross-checks
def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def _plink2(c: Cohort, out: str, *args: str) -> pd.DataFrame:
    _run(["plink2", "--vcf", str(c.vcf), "--threads", "1", "--out", out, *args], c.dir)
    files = sorted(c.dir.glob(f"{out}.*.glm.*"))
    assert files, f"no plink2 output for {out}"
    return pd.read_csv(files[0], sep="\t", na_values=["NA"])


def _plink19(c: Cohort, out: str, *args: str) -> Path:
    pheno = c.dir / "p19.pheno"
    if not pheno.exists():
        t = pd.read_csv(c.pheno, sep="\t", dtype=str, keep_default_na=False)
        t = t.rename(columns={"#IID": "IID"})
        t.insert(0, "FID", "0")
        t.replace("NA", "-9").to_csv(pheno, sep="\t", index=False)
    _run(["plink1.9", "--vcf", str(c.vcf), "--const-fid", "0", "--pheno", str(pheno),
          "--keep-allele-order", "--allow-no-sex", "--threads", "1", "--out", out, *args],
         c.dir)
    return c.dir / out


def _agreement(ours_p, ref_p, ours_effect=None, ref_effect=None) -> dict[str, float]:
    ours_p, ref_p = np.asarray(ours_p, float), np.asarray(ref_p, float)
    assert np.array_equal(np.isfinite(ours_p), np.isfinite(ref_p)), "NA sets differ"
    ok = np.isfinite(ours_p)
    a, b = -np.log10(ours_p[ok]), -np.log10(ref_p[ok])
    out = {
        "n": int(ok.sum()),
        "r": float(np.corrcoef(a, b)[0, 1]),
        "max_delta": float(np.max(np.abs(a - b))),
    }
    if ours_effect is not None:
        e, f = np.asarray(ours_effect, float)[ok], np.asarray(ref_effect, float)[ok]
        keep = np.abs(f) > 0
        out["median_rel"] = float(np.median(np.abs(e[keep] - f[keep]) / np.abs(f[keep])))
    assert out["r"] >= MIN_R, out
    assert out["max_delta"] <= MAX_DELTA_LOG10P, out
    assert out.get("median_rel", 0.0) <= MAX_MEDIAN_REL_EFFECT, out
    assert set(np.flatnonzero(ours_p < 5e-8)) == set(np.flatnonzero(ref_p < 5e-8))
    return out


@pytest.mark.reference
@needs_plink
def test_reference__allelic_equals_plink19_assoc(cohort: Cohort) -> None:
    cc = _case(cohort, covariates=False)
    ours = A.allelic_test(cohort.dosage[:, cc.mask], is_case=cc.phenotype)
    ref = pd.read_csv(str(_plink19(cohort, "p19a", "--pheno-name", "case", "--assoc"))
                      + ".assoc", sep=r"\s+", na_values=["NA"])
    _agreement(ours.P, ref.P, ours.OR, ref.OR)
    np.testing.assert_allclose(ours.F_A, ref.F_A, atol=5e-5)
    np.testing.assert_allclose(ours.F_U, ref.F_U, atol=5e-5)


@pytest.mark.reference
@needs_plink
def test_reference__trend_equals_plink19_model_trend(cohort: Cohort) -> None:
    cc = _case(cohort, covariates=False)
    ours = A.trend_test(cohort.dosage[:, cc.mask], is_case=cc.phenotype)
    ref = pd.read_csv(str(_plink19(cohort, "p19m", "--pheno-name", "case", "--model"))
                      + ".model", sep=r"\s+", na_values=["NA"])
    ref = ref[ref.TEST == "TREND"].reset_index(drop=True)
    _agreement(ours.P, ref.P, ours.CHISQ, ref.CHISQ)


@pytest.mark.reference
@needs_plink
def test_reference__linear_equals_plink2_glm(cohort: Cohort) -> None:
    q = _quant(cohort)
    ours = A.linear_regression(cohort.dosage[:, q.mask], phenotype=q.phenotype,
                               covariates=q.covariates)
    ref = _plink2(cohort, "p2lin", "--pheno", str(cohort.pheno), "--pheno-name", "quant",
                  "--covar", str(cohort.covar), "--glm", "omit-ref", "hide-covar")
    assert (ref.A1 == ref.ALT).all()
    np.testing.assert_array_equal(ours.OBS_CT, ref.OBS_CT)
    agree = _agreement(ours.P, ref.P, ours.BETA, ref.BETA)
    assert (ours.P < 5e-8).sum() >= 1  # the planted signal is found, so the set check bites
    assert agree["max_delta"] < 1e-4


def _logistic_vs_plink2(c: Cohort, firth: bool, out: str, *extra: str):
    cc = _case(c)
    ours = A.logistic_regression(c.dosage[:, cc.mask], is_case=cc.phenotype,
                                 covariates=cc.covariates, firth=firth)
    ref = _plink2(c, out, "--pheno", str(c.pheno), "--pheno-name", "case", "--covar",
                  str(c.covar), "--glm", "omit-ref", "hide-covar",
                  "firth" if firth else "no-firth", *extra)
    return cc, ours, ref


@pytest.mark.reference
@needs_plink
@pytest.mark.parametrize("firth", [False, True])
def test_reference__logistic_equals_plink2_glm(complete_cohort: Cohort, firth: bool) -> None:
    _, ours, ref = _logistic_vs_plink2(complete_cohort, firth, f"p2log{int(firth)}")
    np.testing.assert_array_equal(ours.OBS_CT, ref.OBS_CT)
    # plink2 flags a few slow float32 fits UNFINISHED but still reports them.
    ref_err = ref.ERRCODE.fillna(".").replace("UNFINISHED", ".")
    np.testing.assert_array_equal(ours.ERRCODE, ref_err)
    _agreement(ours.P, ref.P, ours.OR, ref.OR)


@pytest.mark.reference
@needs_plink
@pytest.mark.parametrize("firth", [False, True])
def test_reference__logistic_missing_calls_equal_plink2_on_the_same_samples(
        cohort: Cohort, firth: bool) -> None:
    # plink2 2.00a3.5's logistic path mishandles variants with missing calls: their
    # LOG(OR)_SE (and Firth's estimate) differ from what plink2 itself reports when the
    # samples without a call are removed with --remove. Ours equals the latter.
    cc, ours, ref = _logistic_vs_plink2(cohort, firth, f"p2logm{int(firth)}")
    np.testing.assert_array_equal(ours.OBS_CT, ref.OBS_CT)
    assert np.array_equal(np.isfinite(ours.P), np.isfinite(ref.P))
    if not firth:
        ok = np.isfinite(ours.P)
        rel = np.abs(ours.OR[ok] - ref.OR[ok]) / ref.OR[ok]
        assert np.median(rel) <= MAX_MEDIAN_REL_EFFECT
    delta = np.abs(np.log10(ours.P) - np.log10(ref.P)).fillna(0).to_numpy()
    d = cohort.dosage[:, cc.mask]
    for j in np.argsort(-delta)[:3]:
        missing = np.flatnonzero(cc.mask)[np.isnan(d[j])]
        assert missing.size > 0 or delta[j] <= MAX_DELTA_LOG10P
        remove = cohort.dir / f"remove_{j}.txt"
        remove.write_text("".join(f"{cohort.samples[i]}\n" for i in missing))
        same = _plink2(cohort, f"p2rm{int(firth)}_{j}", "--pheno", str(cohort.pheno),
                       "--pheno-name", "case", "--covar", str(cohort.covar), "--glm",
                       "omit-ref", "hide-covar", "firth" if firth else "no-firth",
                       "--remove", str(remove))
        assert same.OBS_CT[j] == ours.OBS_CT[j]
        assert abs(np.log10(same.P[j]) - np.log10(ours.P[j])) <= MAX_DELTA_LOG10P
        assert same["LOG(OR)_SE"][j] == pytest.approx(ours["LOG(OR)_SE"][j], rel=1e-3)
        assert same.OR[j] == pytest.approx(ours.OR[j], rel=1e-3)


@pytest.mark.reference
@needs_plink
def test_reference__logistic_equals_plink19_logistic(cohort: Cohort) -> None:
    # plink1.9 --logistic is an independent implementation of the same Wald test.
    cc = _case(cohort)
    ours = A.logistic_regression(cohort.dosage[:, cc.mask], is_case=cc.phenotype,
                                 covariates=cc.covariates)
    covar = cohort.dir / "p19.covar"
    t = pd.read_csv(cohort.covar, sep="\t", dtype=str, keep_default_na=False)
    t = t.rename(columns={"#IID": "IID"})
    t.insert(0, "FID", "0")
    t.replace("NA", "-9").to_csv(covar, sep="\t", index=False)
    ref = pd.read_csv(str(_plink19(cohort, "p19log", "--pheno-name", "case", "--covar",
                                   str(covar), "--logistic", "hide-covar"))
                      + ".assoc.logistic", sep=r"\s+", na_values=["NA"])
    ok = ours.ERRCODE.to_numpy() == "."  # plink1.9 has no separation check
    _agreement(ours.P[ok], ref.P[ok], ours.OR[ok], ref.OR[ok])


@pytest.mark.reference
@needs_plink
@pytest.mark.parametrize("missing", ["meanimpute", "pairwise"])
def test_reference__pca_equals_plink2_pca(cohort: Cohort, missing: str) -> None:
    args = ["--pca", "4"] + (["meanimpute"] if missing == "meanimpute" else [])
    _run(["plink2", "--vcf", str(cohort.vcf), "--threads", "1", "--out", f"pca_{missing}",
          *args], cohort.dir)
    ref = pd.read_csv(cohort.dir / f"pca_{missing}.eigenvec", sep="\t")
    ref_values = np.loadtxt(cohort.dir / f"pca_{missing}.eigenval")
    d = cohort.dosage
    freq = P.alt_frequency(P.allele_frequency_sums(d))
    ours = P.principal_components([d[:400], d[400:]], alt_freq=freq, n_components=4,
                                  missing=missing)  # type: ignore[arg-type]
    np.testing.assert_allclose(ours.eigenvalues, ref_values, rtol=1e-5)
    for j in range(4):
        col = ref[f"PC{j + 1}"].to_numpy()
        assert abs(np.corrcoef(ours.scores[:, j], col)[0, 1]) > 0.99999
        np.testing.assert_allclose(np.abs(ours.scores[:, j]), np.abs(col), atol=2e-6)
