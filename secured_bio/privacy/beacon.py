"""Re-identification defences of a genomic Beacon: minimum count, noise, query budgets.

A Beacon that says whether anybody in a cohort carries an allele lets an attacker who holds
a person's genome test whether that person is in the cohort: a likelihood-ratio test over
the person's rare alleles (Shringarpure & Bustamante, AJHG 2015; count answers: von Thenen et
al., Bioinformatics 2019).  The defences here are those proposed against it (Raisaro et al.,
JAMIA 2017: hide rare alleles, answer with noise, bound the number of queries per user):

- **minimum reportable count** (:attr:`BeaconPolicy.min_count`, default 5): a total count of
  carriers below it is released as 0 (and ``exists`` false), so a singleton is never
  reported as an exact 1 and rare alleles - the ones that identify - say nothing;
- **noise** (:attr:`BeaconPolicy.noise_epsilon`, default off): the count gets two-sided
  geometric (discrete Laplace) noise of scale ``1/epsilon`` before the minimum count is
  applied, an ``epsilon``-DP release of a count (sensitivity 1; Ghosh, Roughgarden &
  Sundararajan 2009), with a per-user daily epsilon budget
  (:attr:`BeaconPolicy.epsilon_per_day`);
- **query budget** (:attr:`BeaconPolicy.queries_per_day`, default 1,000): a user over it is
  refused (:class:`BudgetExceeded`) until the day's window moves on.

A user holding an approved access request for the data gets exact counts (``granted``).
The functions are generic (no hub or genomics imports); the hub's Beacon counts budgets in its
audit log, :func:`secured_bio.privacy.assess.beacon_attack.membership_power` measures their
effect.

Examples
--------
>>> p = BeaconPolicy()
>>> release_count(1, policy=p, granted=False)
(False, 0)
>>> release_count(12, policy=p, granted=False)
(True, 12)
>>> release_count(1, policy=p, granted=True)
(True, 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from secured_bio.errors import ConfigError, SecuredBioError

__all__ = ["BeaconPolicy", "BudgetExceeded", "QueryBudget", "check_budget",
           "discrete_laplace", "release_count"]


@dataclass(frozen=True)
class BeaconPolicy:
    """What a Beacon releases to a user without a grant, and how often.

    Attributes
    ----------
    min_count
        Counts below this are released as 0 (1 disables the defence).
    noise_epsilon
        Epsilon of the discrete-Laplace noise per query; None: exact counts.
    queries_per_day
        Queries one user may ask in 24 hours; None: unlimited.
    epsilon_per_day
        Total noise epsilon one user may spend in 24 hours; None: unlimited.
    """

    min_count: int = 5
    noise_epsilon: float | None = None
    queries_per_day: int | None = 1000
    epsilon_per_day: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.min_count, bool) or not isinstance(self.min_count, int) or (
                self.min_count < 1):
            raise ConfigError("min_count must be an integer >= 1", got=repr(self.min_count))
        for name in ("noise_epsilon", "epsilon_per_day"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int | float) and math.isfinite(v)
                                      and v > 0):
                raise ConfigError(f"{name} must be None or a number > 0", got=repr(v))
        if self.queries_per_day is not None and self.queries_per_day < 1:
            raise ConfigError("queries_per_day must be None or >= 1",
                              got=repr(self.queries_per_day))

    def describe(self) -> dict[str, object]:
        """Return the policy as JSON (what a Beacon's info says of its defences)."""
        return {"minCount": self.min_count, "noiseEpsilon": self.noise_epsilon,
                "queriesPerDay": self.queries_per_day, "epsilonPerDay": self.epsilon_per_day}


class BudgetExceeded(SecuredBioError, PermissionError):
    """A user asked more queries (or spent more epsilon) than the policy allows."""


def discrete_laplace(epsilon: float, *, uniform: object = None) -> int:
    """Draw two-sided geometric noise ``P(k) ~ exp(-epsilon |k|)`` (secure randomness).

    The difference of two geometric variables of parameter ``1 - exp(-epsilon)``, each by
    inverse transform of a uniform from the OS CSPRNG
    (:class:`secured_bio.privacy.dp_random.DPRandom`).  ``uniform`` (a callable ``n ->
    array``) replaces the source in tests.
    """
    from secured_bio.privacy.dp_random import DPRandom

    if not (math.isfinite(epsilon) and epsilon > 0):
        raise ConfigError("epsilon must be a number > 0", got=repr(epsilon))
    draw = uniform if callable(uniform) else DPRandom().uniform
    u = draw(2)
    log_q = -float(epsilon)  # log(1 - p) with p = 1 - exp(-epsilon)
    g = [math.floor(math.log1p(-float(x)) / log_q) for x in u]
    return int(g[0] - g[1])


def release_count(true_count: int, *, policy: BeaconPolicy, granted: bool,
                  uniform: object = None) -> tuple[bool, int]:
    """Return ``(exists, count)`` as the Beacon may release them to this user.

    Parameters
    ----------
    true_count
        The number of individuals matching the query (all sites together).
    policy
        The defences.
    granted
        The user holds an approved, unexpired access request for the data: exact counts.
    uniform
        Replacement randomness source (tests only).
    """
    c = int(true_count)
    if c < 0:
        raise ConfigError("a count cannot be negative", got=str(c))
    if granted:
        return c > 0, c
    if policy.noise_epsilon is not None:
        c = max(0, c + discrete_laplace(policy.noise_epsilon, uniform=uniform))
    if c < policy.min_count:
        c = 0
    return c > 0, c


def check_budget(*, queries_used: int, epsilon_used: float, policy: BeaconPolicy,
                 who: str = "this user") -> None:
    """Raise :class:`BudgetExceeded` if one more query would pass the daily budgets."""
    if policy.queries_per_day is not None and queries_used >= policy.queries_per_day:
        raise BudgetExceeded(f"{who} has used the Beacon query budget of the last 24 hours",
                             got=f"{queries_used} queries",
                             expected=f"at most {policy.queries_per_day} per 24 hours",
                             fix="wait, or ask the data access committee for access")
    if (policy.noise_epsilon is not None and policy.epsilon_per_day is not None
            and epsilon_used + policy.noise_epsilon > policy.epsilon_per_day + 1e-12):
        raise BudgetExceeded(f"{who} has spent the Beacon privacy budget of the last 24 hours",
                             got=f"epsilon {epsilon_used:g} spent",
                             expected=f"at most {policy.epsilon_per_day:g} per 24 hours",
                             fix="wait, or ask the data access committee for access")


class QueryBudget:
    """An in-memory query and epsilon counter of one user (benchmarks, the attack).

    Examples
    --------
    >>> b = QueryBudget(BeaconPolicy(queries_per_day=2))
    >>> b.spend(); b.spend(); b.allowed()
    False
    """

    def __init__(self, policy: BeaconPolicy) -> None:
        self.policy = policy
        self.queries = 0
        self.epsilon = 0.0

    def allowed(self) -> bool:
        """Return whether one more query fits the budgets."""
        try:
            check_budget(queries_used=self.queries, epsilon_used=self.epsilon,
                         policy=self.policy)
        except BudgetExceeded:
            return False
        return True

    def spend(self) -> None:
        """Count one query (and its epsilon); raise :class:`BudgetExceeded` when over."""
        check_budget(queries_used=self.queries, epsilon_used=self.epsilon, policy=self.policy)
        self.queries += 1
        self.epsilon += self.policy.noise_epsilon or 0.0
