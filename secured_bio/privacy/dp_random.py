"""Randomness of every differential-privacy mechanism: the OS CSPRNG, never a seed.

A DP guarantee holds only if the noise is unknown to the adversary.  Noise drawn from a
generator seeded with a public value (a run config's ``seed``) is a deterministic function of
the data and public settings: whoever knows the seed subtracts the noise and the reported
epsilon is void.  Every DP mechanism of secured_bio (MST's marginals and tree selection,
DP-SGD's noise and Poisson sampling, central DP-FedAvg's noise) therefore draws its
randomness through :class:`DPRandom`, whose default source is the operating system's
cryptographically secure generator (``os.urandom``: ``getrandom(2)`` on Linux).

Samplers
--------
* Uniforms: 53 random bits from ``os.urandom`` per float64, ``k / 2**53`` in ``[0, 1)``.
* Continuous Gaussian (DP-SGD, central DP): Box-Muller on those uniforms (Box & Muller 1958),
  hardened against floating-point attacks on the noise's least significant bits (Mironov,
  CCS 2012; Jin et al. 2021, arXiv:2107.10138; Haney et al. 2022, arXiv:2112.05307) the way
  opacus's ``secure_mode`` does it: the sum of ``2n = 4`` independent Gaussians of standard
  deviation ``std``, divided by ``sqrt(2n) = 2`` (Holohan et al., section 5.1 of
  arXiv:2107.10138).
* Discrete Gaussian on integer counts (MST marginals): OpenDP's ``make_gaussian`` on an
  integer vector (Canonne, Kamath & Steinke 2020), exact and secure by construction;
  ``rho = Delta^2 / (2 sigma^2)``, as for the continuous Gaussian.
* Exponential mechanism (MST tree selection): OpenDP's ``make_noisy_max`` with
  zero-concentrated output (Gumbel noise; ``P(i) ~ exp(epsilon * score_i / (2 Delta))``).
* Bernoulli/Poisson sampling (DP-SGD batches): ``uniform < rate`` on secure uniforms.

Reproducible mode (tests only): ``DPRandom(insecure_seed=s)`` draws everything from
``numpy.random.default_rng(s)`` (discrete Gaussian: rounded continuous Gaussian, not exact).
Its output is then predictable and **the epsilon does not hold**; :meth:`DPRandom.describe`
says so and every report that uses it must carry that statement.

``privacy/`` layer module: imports no domain module.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from secured_bio.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["DPRandom", "secure_uniform", "secure_normal", "SECURE_SOURCE",
           "FLOAT_ATTACK_SUMMANDS"]

#: Name of the secure source, as written in reports.
SECURE_SOURCE = "os.urandom (operating-system CSPRNG)"
#: Number of Gaussians summed per noise value (opacus secure_mode: 2n with n = 2).
FLOAT_ATTACK_SUMMANDS = 4
_WHERE = "DP randomness"


def secure_uniform(size: int | tuple[int, ...]) -> np.ndarray:
    """Uniform float64 in ``[0, 1)`` from the OS CSPRNG (53 random bits each).

    Examples
    --------
    >>> u = secure_uniform((2, 3))
    >>> u.shape, bool(((u >= 0) & (u < 1)).all())
    ((2, 3), True)
    """
    shape = (size,) if isinstance(size, int | np.integer) else tuple(size)
    n = int(np.prod(shape, dtype=np.int64))
    raw = np.frombuffer(os.urandom(8 * n), dtype=np.uint64) >> np.uint64(11)
    return (raw.astype(np.float64) * 2.0 ** -53).reshape(shape)


def _box_muller(n: int, uniform: Any) -> np.ndarray:
    """``n`` standard normals from ``2 * ceil(n / 2)`` uniforms (Box & Muller 1958)."""
    k = (n + 1) // 2
    u = uniform(2 * k)
    r = np.sqrt(-2.0 * np.log1p(-u[:k]))  # 1 - u in (0, 1]: log is finite
    t = 2.0 * math.pi * u[k:]
    return np.concatenate([r * np.cos(t), r * np.sin(t)])[:n]


def secure_normal(size: int | tuple[int, ...], std: float = 1.0) -> np.ndarray:
    """Gaussian noise N(0, std^2) from the OS CSPRNG, hardened against floating-point attacks.

    Examples
    --------
    >>> secure_normal(4, std=2.0).shape
    (4,)
    """
    return DPRandom().normal(size, std)


def _check_positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating) \
            or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number >= 0", where=_WHERE,
                          expected=f"{name} >= 0", got=f"{name}={value!r}")
    return float(value)


class DPRandom:
    """The randomness source of a DP mechanism (secure unless a test asks otherwise).

    Parameters
    ----------
    insecure_seed
        None (default): every draw comes from the OS CSPRNG.  An integer: draws come from
        ``numpy.random.default_rng(insecure_seed)``, reproducible and therefore **not
        differentially private** (for tests; reports must say the epsilon does not hold).

    Raises
    ------
    ConfigError
        If ``insecure_seed`` is not None or an integer >= 0.

    Examples
    --------
    >>> r = DPRandom()
    >>> r.secure, r.normal(3, 1.0).shape, int(r.poisson_mask(5, 1.0).sum())
    (True, (3,), 5)
    >>> a = DPRandom(insecure_seed=1).normal(2, 1.0)
    >>> bool((a == DPRandom(insecure_seed=1).normal(2, 1.0)).all())
    True
    """

    def __init__(self, *, insecure_seed: int | None = None) -> None:
        if insecure_seed is not None and (isinstance(insecure_seed, bool) or not isinstance(
                insecure_seed, int | np.integer) or insecure_seed < 0):
            raise ConfigError("insecure_seed must be None or an integer >= 0", where=_WHERE,
                              expected="None (secure) or an integer >= 0",
                              got=type(insecure_seed).__name__)
        self.insecure_seed = None if insecure_seed is None else int(insecure_seed)
        self._rng = (None if insecure_seed is None
                     else np.random.default_rng([int(insecure_seed), 0xD1FF]))

    @property
    def secure(self) -> bool:
        """True when draws come from the OS CSPRNG (the DP guarantee can hold)."""
        return self._rng is None

    def describe(self) -> dict[str, Any]:
        """Return the ``randomness`` entry of a privacy report."""
        if self.secure:
            return {"source": SECURE_SOURCE, "secure": True,
                    "float_attack_mitigation": f"sum of {FLOAT_ATTACK_SUMMANDS} Gaussians "
                                               "(opacus secure_mode, arXiv:2107.10138)"}
        return {"source": "numpy default_rng(insecure_seed): reproducible", "secure": False,
                "warning": "INSECURE reproducible DP mode: the noise is predictable from the "
                           "seed, so the stated epsilon does NOT hold; for tests only"}

    # ----------------------------------------------------------------- primitives
    def uniform(self, size: int | tuple[int, ...]) -> np.ndarray:
        """Uniform float64 in ``[0, 1)``."""
        if self._rng is None:
            return secure_uniform(size)
        return self._rng.random(size)

    def normal(self, size: int | tuple[int, ...], std: float) -> np.ndarray:
        """Gaussian noise N(0, std^2) (float64), with the floating-point-attack mitigation."""
        std = _check_positive("std", std)
        shape = (size,) if isinstance(size, int | np.integer) else tuple(size)
        n = int(np.prod(shape, dtype=np.int64))
        if std == 0 or n == 0:
            return np.zeros(shape)
        k = FLOAT_ATTACK_SUMMANDS
        z = _box_muller(k * n, self.uniform).reshape(k, n).sum(axis=0)
        return (z * (std / math.sqrt(k))).reshape(shape)

    def normal_like(self, reference: torch.Tensor, std: float) -> torch.Tensor:
        """Gaussian noise with the shape, dtype and device of a torch tensor (DP-SGD)."""
        import torch

        noise = self.normal(tuple(reference.shape), std)
        return torch.as_tensor(noise, dtype=reference.dtype, device=reference.device)

    def poisson_mask(self, n: int, rate: float) -> np.ndarray:
        """Boolean mask: each of ``n`` records independently with probability ``rate``."""
        rate = _check_positive("rate", rate)
        return self.uniform(int(n)) < rate

    # ------------------------------------------------------------ DP mechanisms
    def discrete_gaussian(self, counts: np.ndarray, sigma: float) -> np.ndarray:
        """Integer counts plus discrete Gaussian noise of scale ``sigma`` (OpenDP).

        ``rho = Delta^2 / (2 sigma^2)``-zCDP for L2 sensitivity ``Delta`` (Canonne, Kamath &
        Steinke 2020), the same as the continuous Gaussian.  Returns float64 (same shape).
        """
        sigma = _check_positive("sigma", sigma)
        c = np.asarray(counts)
        if not np.issubdtype(c.dtype, np.integer):
            raise ConfigError("the discrete Gaussian needs integer counts", where=_WHERE,
                              expected="an integer array", got=str(c.dtype))
        if c.size == 0 or sigma == 0:
            return c.astype(np.float64)
        if self._rng is not None:
            return c + np.rint(self._rng.normal(0.0, sigma, c.shape))
        meas = _opendp_gaussian(sigma)
        return np.asarray(meas([int(v) for v in c.reshape(-1)]),
                          dtype=np.float64).reshape(c.shape)

    def exponential_mechanism(self, scores: np.ndarray, epsilon: float,
                              sensitivity: float = 1.0) -> int:
        """Index chosen with probability ``~ exp(epsilon * score / (2 * sensitivity))``.

        Gumbel-max on the scores with scale ``2 * sensitivity / epsilon`` (OpenDP
        ``make_noisy_max``, zero-concentrated output: ``epsilon^2 / 8``-zCDP, Cesar & Rogers
        2021).
        """
        epsilon = _check_positive("epsilon", epsilon)
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        if s.size == 0 or not np.isfinite(s).all():
            raise ConfigError("scores must be a non-empty vector of finite numbers",
                              where=_WHERE, expected="finite scores", got=f"{s.size} scores")
        if s.size == 1:
            return 0
        if epsilon == 0:
            return int(self.uniform(1)[0] * s.size)
        scale = 2.0 * float(sensitivity) / epsilon
        if self._rng is not None:
            u = np.clip(self._rng.random(s.size), 1e-300, None)
            return int(np.argmax(s / scale - np.log(-np.log(u))))
        return int(_opendp_noisy_max(scale)((s - s.max()).tolist()))


def _opendp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


def _opendp_gaussian(sigma: float) -> Any:
    dp = _opendp()
    return dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T=int)), dp.l2_distance(T=int),
                              scale=float(sigma))


def _opendp_noisy_max(scale: float) -> Any:
    dp = _opendp()
    return dp.m.make_noisy_max(dp.vector_domain(dp.atom_domain(T=float, nan=False)),
                               dp.linf_distance(T=float), dp.zero_concentrated_divergence(),
                               scale=float(scale))
