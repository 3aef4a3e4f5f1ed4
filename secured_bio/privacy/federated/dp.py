"""Privacy accounting of central DP-FedAvg: noise multiplier from epsilon, and epsilon spent.

Mechanism (McMahan et al., "Learning Differentially Private Recurrent Language Models",
ICLR 2018; Flower's ``DifferentialPrivacyClientSideFixedClipping``): every round each site
clips its model update to L2 norm ``clip``; the server averages the clipped updates with
*equal* weights and adds Gaussian noise of standard deviation ``noise_multiplier * clip /
num_sites``.  Replacing one site's data changes the average by at most ``clip / num_sites``
(L2 sensitivity), so each round is a Gaussian mechanism with noise multiplier ``sigma`` and the
guarantee is **site-level** (it protects everything a site contributes, hence every record).
All sites take part in every round (sampling rate 1, no amplification by subsampling), so
``rounds`` rounds compose as ``rounds`` Gaussian mechanisms.

Accounting uses Rényi DP (Mironov 2017) through opacus's ``RDPAccountant``: the RDP of one
Gaussian mechanism is ``alpha / (2 sigma^2)``; the conversion to (epsilon, delta) is the one of
Balle et al. 2020 that opacus implements.
"""

from __future__ import annotations

import math
from typing import Any

from secured_bio.errors import ConfigError

__all__ = ["noise_multiplier_for", "epsilon_spent", "dp_report", "ACCOUNTANT"]

#: Name of the accountant, as written in results.
ACCOUNTANT = "opacus RDP"

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
    >>> r["epsilon"] <= 5.0, r["accountant"]
    (True, 'opacus RDP')
    """
    if not (isinstance(clip, int | float) and clip > 0 and math.isfinite(clip)):
        raise ConfigError("dp_clip must be a positive number", where=_WHERE,
                          expected="clip > 0", got=f"clip={clip!r}",
                          fix="pass the L2 norm bound of a site's update, e.g. 1.0")
    sigma = noise_multiplier_for(epsilon_target, delta, rounds)
    return {
        "mode": "central",
        "level": "site",
        "epsilon": epsilon_spent(sigma, delta, rounds),
        "epsilon_target": float(epsilon_target),
        "delta": float(delta),
        "noise_multiplier": sigma,
        "clip": float(clip),
        "noise_std": sigma * float(clip) / int(num_sites),
        "rounds": int(rounds),
        "sample_rate": 1.0,
        "accountant": ACCOUNTANT,
        "mechanism": ("central DP-FedAvg (McMahan et al. 2018): site-side L2 clipping of each "
                      "update to 'clip', equal-weight average, server-side Gaussian noise of std "
                      "noise_multiplier*clip/num_sites; all sites every round"),
    }
