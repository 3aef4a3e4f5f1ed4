"""The DP randomness helper: unpredictable (not seedable), and statistically right."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from secured_bio.errors import ConfigError
from secured_bio.privacy.dp_random import DPRandom, secure_normal, secure_uniform


def _seed_all(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def test_secure_draws__differ_after_identical_global_seeds():
    _seed_all(0)
    a = (secure_uniform(8), DPRandom().normal(8, 1.0), DPRandom().poisson_mask(64, 0.5))
    _seed_all(0)
    b = (secure_uniform(8), DPRandom().normal(8, 1.0), DPRandom().poisson_mask(64, 0.5))
    for x, y in zip(a, b, strict=True):
        assert not np.array_equal(x, y)


def test_secure_dp_mechanisms__differ_after_identical_global_seeds():
    counts = np.arange(200)
    _seed_all(0)
    a = DPRandom().discrete_gaussian(counts, 5.0)
    picks_a = [DPRandom().exponential_mechanism(np.zeros(50), 1.0) for _ in range(5)]
    _seed_all(0)
    b = DPRandom().discrete_gaussian(counts, 5.0)
    picks_b = [DPRandom().exponential_mechanism(np.zeros(50), 1.0) for _ in range(5)]
    assert not np.array_equal(a, b)
    assert picks_a != picks_b


def test_secure_uniform__is_uniform_on_unit_interval():
    u = secure_uniform(20_000)
    assert ((u >= 0) & (u < 1)).all()
    assert stats.kstest(u, "uniform").pvalue > 1e-4


@pytest.mark.parametrize("std", [0.3, 1.0, 7.5])
def test_secure_normal__mean_std_and_ks_match_the_gaussian(std):
    z = secure_normal(40_000, std=std)
    assert abs(z.mean()) < 5 * std / np.sqrt(len(z))
    assert z.std() == pytest.approx(std, rel=0.03)
    assert stats.kstest(z / std, "norm").pvalue > 1e-4


def test_normal_like__matches_tensor_shape_dtype_and_distribution():
    import torch

    ref = torch.zeros((100, 200), dtype=torch.float32)
    z = DPRandom().normal_like(ref, 2.0)
    assert z.shape == ref.shape and z.dtype == torch.float32
    assert float(z.std()) == pytest.approx(2.0, rel=0.03)


def test_discrete_gaussian__integer_noise_with_the_right_scale():
    counts = np.zeros(20_000, dtype=np.int64)
    noisy = DPRandom().discrete_gaussian(counts, 4.0)
    assert np.array_equal(noisy, np.rint(noisy))
    assert abs(noisy.mean()) < 5 * 4.0 / np.sqrt(len(noisy))
    assert noisy.std() == pytest.approx(4.0, rel=0.04)


def test_exponential_mechanism__frequencies_follow_softmax():
    scores = np.array([0.0, 1.0, 2.0])
    eps = 2.0  # P(i) ~ exp(eps * s_i / 2) = exp(s_i)
    r = DPRandom()
    picks = np.bincount([r.exponential_mechanism(scores, eps) for _ in range(6000)],
                        minlength=3) / 6000
    expected = np.exp(scores) / np.exp(scores).sum()
    assert stats.chisquare(picks * 6000, expected * 6000).pvalue > 1e-4


def test_poisson_mask__rate_is_respected():
    m = DPRandom().poisson_mask(50_000, 0.2)
    assert m.mean() == pytest.approx(0.2, abs=0.01)


def test_insecure_seed__reproducible_and_says_epsilon_does_not_hold():
    a, b = DPRandom(insecure_seed=3), DPRandom(insecure_seed=3)
    assert np.array_equal(a.normal(10, 1.0), b.normal(10, 1.0))
    assert np.array_equal(a.discrete_gaussian(np.arange(5), 2.0),
                          b.discrete_gaussian(np.arange(5), 2.0))
    assert not a.secure and a.describe()["secure"] is False
    assert "does NOT hold" in a.describe()["warning"]
    assert DPRandom().describe()["secure"] is True


@pytest.mark.parametrize(("call", "match"), [
    (lambda: DPRandom(insecure_seed=-1), "insecure_seed must be None"),
    (lambda: DPRandom().normal(3, -1.0), "std must be a finite number"),
    (lambda: DPRandom().discrete_gaussian(np.ones(3), 1.0), "needs integer counts"),
    (lambda: DPRandom().exponential_mechanism(np.array([]), 1.0), "scores must be"),
])
def test_bad_arguments_raise(call, match):
    with pytest.raises(ConfigError, match=match):
        call()
