"""Central DP-FedAvg: accounting, the privacy scope, and the server's secure noise.

Mechanism (McMahan et al., "Learning Differentially Private Recurrent Language Models",
ICLR 2018; Flower's ``DifferentialPrivacyClientSideFixedClipping``): every round each site
clips its model update to L2 norm ``clip``; the server averages the clipped updates with
*equal* weights over the fixed, public number of sites ``num_sites`` (a round in which any
site fails is skipped, so the denominator is always ``num_sites``) and adds Gaussian noise of
standard deviation ``noise_multiplier * clip / num_sites``.

Adjacency: **add/remove one site** (all of its data) with the fixed denominator
``num_sites`` -- McMahan et al.'s fixed-denominator estimator: a removed site contributes a
zero update, so the noisy average moves by at most ``clip / num_sites`` (L2 sensitivity) and
each round is a Gaussian mechanism of noise multiplier ``sigma``.  The guarantee is
**site-level** (it protects everything a site contributes, hence every record).  Under
*replace-one-site* adjacency the sensitivity is ``2 * clip / num_sites`` (noise multiplier
``sigma / 2``): the report gives that epsilon too (``epsilon_replace_one_site``; a target of 8
over 5 rounds is about 19 under replacement).  All sites take part in every round (sampling
rate 1, no amplification by subsampling), so ``rounds`` rounds compose as ``rounds`` Gaussian
mechanisms.

Accounting uses Rényi DP (Mironov 2017) through opacus's ``RDPAccountant``: the RDP of one
Gaussian mechanism is ``alpha / (2 sigma^2)``; the conversion to (epsilon, delta) is the one of
Balle et al. 2020 that opacus implements.

Noise: the server's Gaussian noise comes from
:class:`secured_bio.privacy.dp_random.DPRandom` (OS CSPRNG, floating-point-attack
mitigation), not from Flower's ``add_gaussian_noise_inplace`` (numpy's global, seedable
generator): :func:`central_dp_strategy` subclasses Flower's wrapper and overrides its
``aggregate_fit``.

What epsilon covers (:func:`privacy_scope`): the global models released after each round.
Not covered: the sites' evaluation metrics on their test rows, the fact that a site takes
part, and anything a party learns outside the released models (the server sees each clipped
update unless SecAgg+ hides it: central DP trusts the server to add the noise).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from secured_bio.errors import ConfigError

__all__ = ["noise_multiplier_for", "epsilon_spent", "dp_report", "privacy_scope",
           "central_dp_strategy", "ACCOUNTANT", "ADJACENCY"]

#: Name of the accountant, as written in results.
ACCOUNTANT = "opacus RDP"
#: Neighbouring relation of central DP, as written in results.
ADJACENCY = ("add/remove one site (all its data), fixed public denominator num_sites "
             "(McMahan et al. 2018): L2 sensitivity clip/num_sites")

_WHERE = "differential privacy"


def _check(epsilon: float | None, delta: float, rounds: int) -> None:
    if epsilon is not None and not (isinstance(epsilon, int | float) and epsilon > 0
                                    and math.isfinite(epsilon)):
        raise ConfigError("dp_epsilon must be a positive number", where=_WHERE,
                          expected="epsilon > 0", got=f"epsilon={epsilon!r}",
                          fix="pass e.g. --dp-epsilon 8")
    if not (isinstance(delta, int | float) and 0 < delta < 1):
        raise ConfigError("dp_delta must lie in (0, 1)", where=_WHERE,
                          expected="0 < delta < 1", got=f"delta={delta!r}",
                          fix="pass a delta below 1/number of records, e.g. 1e-5")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ConfigError("rounds must be a positive integer", where=_WHERE,
                          expected="rounds >= 1", got=f"rounds={rounds!r}")


def noise_multiplier_for(epsilon: float, delta: float, rounds: int) -> float:
    """Smallest noise multiplier whose ``rounds`` Gaussian rounds spend at most ``epsilon``.

    Parameters
    ----------
    epsilon, delta
        Target (epsilon, delta) of the whole run.
    rounds
        Number of federated rounds (every site every round).

    Returns
    -------
    float
        The noise multiplier (opacus ``get_noise_multiplier``, RDP accountant).

    Raises
    ------
    ConfigError
        If epsilon is not positive, delta not in (0, 1) or rounds < 1.

    Examples
    --------
    >>> sigma = noise_multiplier_for(8.0, 1e-5, rounds=5)
    >>> epsilon_spent(sigma, 1e-5, rounds=5) <= 8.0
    True
    """
    _check(epsilon, delta, rounds)
    from opacus.accountants.utils import get_noise_multiplier

    return float(get_noise_multiplier(target_epsilon=float(epsilon), target_delta=float(delta),
                                      sample_rate=1.0, steps=int(rounds), accountant="rdp",
                                      epsilon_tolerance=0.005))


def epsilon_spent(noise_multiplier: float, delta: float, rounds: int) -> float:
    """Epsilon spent by ``rounds`` Gaussian rounds of noise multiplier ``noise_multiplier``.

    Raises
    ------
    ConfigError
        If the noise multiplier is not positive, delta not in (0, 1) or rounds < 1.

    Examples
    --------
    >>> round(epsilon_spent(1.0, 1e-5, rounds=2), 2) > 0
    True
    """
    _check(None, delta, rounds)
    if not (isinstance(noise_multiplier, int | float) and noise_multiplier > 0):
        raise ConfigError("noise multiplier must be positive", where=_WHERE,
                          expected="> 0", got=f"{noise_multiplier!r}")
    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    acc.history = [(float(noise_multiplier), 1.0, int(rounds))]
    return float(acc.get_epsilon(delta=float(delta)))


def privacy_scope(mode: str) -> dict[str, Any]:
    """Say what the epsilon of a federated DP run covers and what it does not (one place).

    Parameters
    ----------
    mode
        ``"central"`` (site-level DP-FedAvg) or ``"local-dpsgd"`` (record-level DP-SGD).

    Returns
    -------
    dict
        ``epsilon_covers`` (str) and ``not_covered`` (list of str).

    Raises
    ------
    ConfigError
        If the mode is unknown.

    Examples
    --------
    >>> privacy_scope("central")["epsilon_covers"][:25]
    'the global model paramete'
    """
    common = ["each site's evaluation metrics on its own test rows (test loss, AUROC, "
              "accuracy, number of test rows): the test rows are not protected",
              "which sites take part, and the number of rounds (public settings)"]
    if mode == "central":
        return {"epsilon_covers": "the global model parameters released after every round "
                                  "(site level: add/remove one site's entire data)",
                "not_covered": ["the individual clipped updates the server sees when SecAgg+ "
                                "is off (central DP trusts the server to add the noise)",
                                *common]}
    if mode == "local-dpsgd":
        return {"epsilon_covers": "the model parameters each site sends every round (record "
                                  "level: add/remove one training record of that site)",
                "not_covered": ["each site's number of batches per epoch ceil(n_train / "
                                "batch_size): it sets the sample rate, noise multiplier, "
                                "step count and epsilon the site reports", *common]}
    raise ConfigError("unknown DP mode", where=_WHERE, expected="central | local-dpsgd",
                      got=repr(mode))


def dp_report(*, epsilon_target: float, delta: float, rounds: int, clip: float,
              num_sites: int) -> dict[str, Any]:
    """Noise multiplier for the target and the (epsilon, delta) it achieves, as results show.

    Raises
    ------
    ConfigError
        If the parameters are out of range (see :func:`noise_multiplier_for`) or clip <= 0.

    Examples
    --------
    >>> r = dp_report(epsilon_target=5.0, delta=1e-5, rounds=3, clip=1.0, num_sites=3)
    >>> r["epsilon"] <= 5.0 < r["epsilon_replace_one_site"], r["accountant"]
    (True, 'opacus RDP')
    """
    if not (isinstance(clip, int | float) and clip > 0 and math.isfinite(clip)):
        raise ConfigError("dp_clip must be a positive number", where=_WHERE,
                          expected="clip > 0", got=f"clip={clip!r}",
                          fix="pass the L2 norm bound of a site's update, e.g. 1.0")
    sigma = noise_multiplier_for(epsilon_target, delta, rounds)
    sensitivity = float(clip) / int(num_sites)
    from secured_bio.privacy.dp_random import DPRandom

    return {
        "mode": "central",
        "level": "site",
        "epsilon": epsilon_spent(sigma, delta, rounds),
        "epsilon_target": float(epsilon_target),
        "delta": float(delta),
        "noise_multiplier": sigma,
        "clip": float(clip),
        "denominator": int(num_sites),
        "adjacency": ADJACENCY,
        "sensitivity": sensitivity,
        "noise_std": sigma * sensitivity,
        "epsilon_replace_one_site": epsilon_spent(sigma / 2.0, delta, rounds),
        "rounds": int(rounds),
        "sample_rate": 1.0,
        "accountant": ACCOUNTANT,
        "randomness": DPRandom().describe(),
        **privacy_scope("central"),
        "mechanism": ("central DP-FedAvg (McMahan et al. 2018): site-side L2 clipping of each "
                      "update to 'clip', equal-weight average over the fixed denominator "
                      "num_sites (a round with a failed site is skipped), server-side Gaussian "
                      "noise of std noise_multiplier*clip/num_sites from the OS CSPRNG; all "
                      "sites every round"),
    }


def central_dp_strategy(strategy: Any, *, noise_multiplier: float, clip: float,
                        num_sites: int, insecure_dp_seed: int | None = None) -> Any:
    """Wrap a Flower strategy in central DP with client-side clipping and secure server noise.

    Flower's ``DifferentialPrivacyClientSideFixedClipping`` (sites clip with
    ``fixedclipping_mod``), except that ``aggregate_fit`` (a) skips a round unless all
    ``num_sites`` sites replied (fixed denominator) and (b) adds the noise from
    :class:`~secured_bio.privacy.dp_random.DPRandom` instead of numpy's global generator.

    Parameters
    ----------
    strategy
        The inner Flower strategy (FedAvg/FedProx; the sites send weight 1).
    noise_multiplier, clip, num_sites
        Noise std is ``noise_multiplier * clip / num_sites``.
    insecure_dp_seed
        Tests only: seeded (reproducible) noise, so the epsilon does not hold.

    Returns
    -------
    flwr.server.strategy.Strategy
        The wrapped strategy.

    Raises
    ------
    ConfigError
        If ``insecure_dp_seed`` is not None or an integer >= 0.
    """
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server.strategy import DifferentialPrivacyClientSideFixedClipping

    from secured_bio.privacy.dp_random import DPRandom

    noise = DPRandom(insecure_seed=insecure_dp_seed)
    std = float(noise_multiplier) * float(clip) / int(num_sites)

    class SecureClientSideFixedClipping(DifferentialPrivacyClientSideFixedClipping):  # type: ignore[misc]
        """Central DP with client-side clipping; server noise from the OS CSPRNG."""

        def aggregate_fit(self, server_round: int, results: list[Any],
                          failures: list[Any]) -> tuple[Any, dict[str, Any]]:
            if failures or len(results) != self.num_sampled_clients:
                return None, {}  # the noise and the denominator assume every site
            params, metrics = self.strategy.aggregate_fit(server_round, results, failures)
            if params is None:
                return None, metrics
            arrays = [np.asarray(a) for a in parameters_to_ndarrays(params)]
            noisy = [(a + noise.normal(a.shape, std)).astype(a.dtype) for a in arrays]
            return ndarrays_to_parameters(noisy), metrics

    return SecureClientSideFixedClipping(strategy, noise_multiplier=float(noise_multiplier),
                                         clipping_norm=float(clip),
                                         num_sampled_clients=int(num_sites))
