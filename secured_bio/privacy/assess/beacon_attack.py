"""The likelihood-ratio membership attack on a Beacon, to measure its defences.

An attacker holds a target's genotypes and a reference panel of the same population, and asks
the Beacon about the target's alternate alleles, rarest first.  Boolean answers are scored by
the likelihood-ratio test of Shringarpure & Bustamante (AJHG 2015): with ``N`` individuals in
the Beacon, reference frequency ``f`` and error rate ``delta``, a "no" has probability
``D = (1 - f)^(2N)`` if the target is not in the Beacon and ``delta * D'`` with
``D' = (1 - f)^(2N - 2)`` if it is, so each answer adds

    ``x log((1 - delta D') / (1 - D)) + (1 - x) log(delta D' / D)``.

Count answers (von Thenen et al., Bioinformatics 2019; Raisaro et al., JAMIA 2017) are scored
by ``log(c / (N p))`` with ``p = 1 - (1 - f)^2`` the carrier frequency: the likelihood ratio
of ``1 + Binomial(N - 1, p)`` against ``Binomial(N, p)`` carriers.  Repeated queries of a
variant (an attacker averaging noise away) are averaged before scoring.

:func:`membership_power` runs the attack on members and non-members and reports the power at
a fixed false-positive rate, the threshold taken from the non-members' scores.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> g = (rng.random((200, 2000)) < 0.005).astype(np.int8)  # rare carriers: 200 x 2000 SNPs
>>> members, others = g[:100], g[100:]
>>> counts = members.sum(axis=0)
>>> def oracle():
...     return lambda v: bool(counts[v] > 0)
>>> r = membership_power(members, others, np.full(2000, 0.0025), oracle, n_beacon=100,
...                      n_queries=50, mode="boolean")
>>> r["power"] > 0.5
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["lrt_score", "membership_power"]

Answer = bool | int | float | None
Oracle = Callable[[int], Answer]


def _queries(carrier_row: np.ndarray, ref_af: np.ndarray, n_queries: int) -> list[int]:
    """Return the attacker's queries for one target: its alt alleles, rarest first, cycled."""
    alt = np.flatnonzero(carrier_row > 0)
    if alt.size == 0 or n_queries <= 0:
        return []
    order = alt[np.argsort(ref_af[alt], kind="stable")]
    return [int(order[i % order.size]) for i in range(n_queries)]


def lrt_score(answers: dict[int, list[float]], ref_af: np.ndarray, *, n_beacon: int,
              mode: str, error_rate: float = 1e-6) -> float:
    """Return the attack's log-likelihood ratio (member vs not) for one target's answers.

    Parameters
    ----------
    answers
        Variant index -> the answers received (booleans as 0/1, or counts).
    ref_af
        Alternate-allele frequency per variant in the attacker's reference panel.
    n_beacon
        Individuals in the Beacon (``N``).
    mode
        ``boolean`` (Shringarpure & Bustamante) or ``count`` (von Thenen et al.).
    error_rate
        ``delta``, the probability that a member's allele is missing from the Beacon.
    """
    score = 0.0
    n = int(n_beacon)
    for v, got in answers.items():
        if not got:
            continue
        f = float(ref_af[v])
        x = float(np.mean(got))
        if mode == "boolean":
            log_d = 2 * n * math.log1p(-f)
            log_d1 = (2 * n - 2) * math.log1p(-f)
            d, d1 = math.exp(log_d), math.exp(log_d1)
            yes = math.log(max(1 - error_rate * d1, 1e-300)) - math.log(max(1 - d, 1e-300))
            no = math.log(error_rate) + log_d1 - log_d
            score += x * yes + (1 - x) * no
        else:
            p = 1 - (1 - f) ** 2
            score += math.log(max(x, 0.5) / (n * p))
    return score


def membership_power(members: np.ndarray, non_members: np.ndarray, ref_af: np.ndarray,
                     make_oracle: Callable[[], Oracle], *, n_beacon: int, n_queries: int,
                     mode: str = "boolean", fpr: float = 0.05, error_rate: float = 1e-6,
                     max_targets: int | None = None) -> dict[str, Any]:
    """Run the attack on every target and return its power at a false-positive rate.

    Parameters
    ----------
    members, non_members
        Carrier indicators (or alt dosages), people x variants: targets in and out of the
        Beacon.
    ref_af
        The attacker's reference allele frequencies (from people in neither set).
    make_oracle
        Called once per target (one attack, one user's budget): returns the Beacon's answer
        function ``variant index -> bool | count | None`` (None: refused).
    n_beacon
        Individuals in the Beacon.
    n_queries
        Queries per target.
    mode
        ``boolean`` or ``count`` scoring.
    fpr
        The false-positive rate at which power is read.
    max_targets
        Use at most this many targets of each set (speed).

    Returns
    -------
    dict
        ``power``, ``fpr`` (achieved), ``threshold``, ``answered`` (mean answered queries per
        target), ``targets`` (members, non-members).
    """
    ref = np.clip(np.asarray(ref_af, dtype=np.float64), 1e-4, 1 - 1e-4)

    def run(rows: np.ndarray) -> tuple[np.ndarray, float]:
        scores, answered = [], 0
        for row in rows[:max_targets]:
            oracle = make_oracle()
            got: dict[int, list[float]] = {}
            for v in _queries(row, ref, n_queries):
                a = oracle(v)
                if a is None:  # refused: the budget is spent
                    break
                answered += 1
                got.setdefault(v, []).append(float(a))
            scores.append(lrt_score(got, ref, n_beacon=n_beacon, mode=mode,
                                    error_rate=error_rate))
        return np.asarray(scores), answered / max(len(scores), 1)

    s_in, a_in = run(np.asarray(members))
    s_out, a_out = run(np.asarray(non_members))
    threshold = float(np.quantile(s_out, 1 - fpr, method="higher"))
    return {"power": float(np.mean(s_in > threshold)),
            "fpr": float(np.mean(s_out > threshold)), "threshold": threshold,
            "answered": float((a_in + a_out) / 2), "targets": [len(s_in), len(s_out)],
            "mode": mode, "n_queries": n_queries, "n_beacon": n_beacon}
