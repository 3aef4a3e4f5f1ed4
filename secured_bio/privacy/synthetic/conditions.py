"""Conditions for synthetic tables (``age=5..10``, ``sex=F``), honoured exactly for every row.

Grammar (one condition per expression; several expressions are combined with AND)::

    COLUMN=VALUE        equality: a category, or a number/date of a continuous column
    COLUMN=LOW..HIGH    inclusive range of a number or date column; LOW or HIGH may be empty

Conditions are checked against the schema before anything is generated: an unknown column, a
category never observed (or outside the public domain), a range that is empty or lies outside
the column's range, and contradictory conditions are :class:`~secured_bio.errors.ConfigError`.
Generators then sample the conditioned variables from their (model) distribution restricted to
the condition and the other variables conditionally on them, so every row satisfies every
condition; :func:`check_conditions` verifies this on the decoded text before anything is written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from secured_bio.errors import ConfigError, ProtocolError, SchemaError

if TYPE_CHECKING:
    import pandas as pd

    from secured_bio.privacy.synthetic.schema import ColumnSpec, TableSchema

__all__ = [
    "Condition",
    "parse_condition",
    "resolve_conditions",
    "condition_mask",
    "check_conditions",
    "sample_truncated_normal",
    "satisfies",
    "rejection_sample",
]


@dataclass(frozen=True)
class Condition:
    """A resolved condition on one column.

    Attributes
    ----------
    column
        Column name.
    expression
        The expression(s) it came from, for reports.
    low, high
        Inclusive bounds in model units (days for dates) of a continuous column.
    codes
        Allowed category codes of a discrete column (empty for continuous columns).
    """

    column: str
    expression: str
    low: float = -math.inf
    high: float = math.inf
    codes: tuple[int, ...] = ()


def parse_condition(expression: str) -> tuple[str, str, str | None]:
    """Split ``COLUMN=VALUE`` or ``COLUMN=LOW..HIGH`` into its parts (no schema checks).

    Returns
    -------
    tuple
        ``(column, value_or_low, high)``; ``high`` is None for an equality.

    Raises
    ------
    ConfigError
        If the expression has no ``=``, no column name, or no value.

    Examples
    --------
    >>> parse_condition("age=5..10")
    ('age', '5', '10')
    >>> parse_condition("sex = F")
    ('sex', 'F', None)
    """
    column, eq, value = expression.partition("=")
    column, value = column.strip(), value.strip()
    if not eq or not column or not value:
        raise ConfigError("condition is not COLUMN=VALUE or COLUMN=LOW..HIGH",
                          where="--condition", expected="e.g. 'age=5..10' or 'sex=F'",
                          got=f"an expression of {len(expression)} characters",
                          fix="write COLUMN=VALUE (quote it in the shell)")
    if ".." in value:
        low, _, high = value.partition("..")
        return column, low.strip(), high.strip()
    return column, value, None


def _bound(spec: ColumnSpec, text: str, side: str, expression: str) -> float:
    try:
        return spec.to_number(text)
    except ValueError as e:
        raise ConfigError(f"condition {side} does not have the column's format",
                          where=f"--condition on '{spec.name}'",
                          expected=spec._describe(), got="another format",
                          fix="write it like the column's values (dates in the column's "
                              "format)") from e


def _resolve_one(spec: ColumnSpec, expression: str, value: str, high: str | None
                 ) -> Condition:
    where = f"--condition on '{spec.name}'"
    if spec.discrete:
        cats = spec.categories
        if high is None:
            if value in cats:
                return Condition(spec.name, expression, codes=(cats.index(value),))
            if spec.kind in ("integer", "numeric"):
                try:
                    number = float(value)
                except ValueError:
                    number = math.nan
                hits = [i for i, c in enumerate(cats) if c != "" and float(c) == number]
                if hits:
                    return Condition(spec.name, expression, codes=tuple(hits))
            from secured_bio.errors import did_you_mean

            raise ConfigError("condition value is not in the column's domain", where=where,
                              expected=f"one of its {len(cats)} categories",
                              got="a value outside them",
                              fix=did_you_mean(value, cats) or "choose an observed category "
                              "(values are case-sensitive)")
        if spec.kind not in ("integer", "numeric"):
            raise ConfigError("range condition on a category column", where=where,
                              expected="COLUMN=VALUE for a category column",
                              got="LOW..HIGH", fix="give one category")
        lo = float(value) if value else -math.inf
        hi = float(high) if high else math.inf
        codes = tuple(i for i, c in enumerate(cats) if c != "" and lo <= float(c) <= hi)
        if lo > hi or not codes:
            raise ConfigError("condition range is empty or holds no value of the column",
                              where=where, expected="a range that holds an observed value",
                              got=f"{'an empty range' if lo > hi else '0 matching values'}",
                              fix="widen the range")
        return Condition(spec.name, expression, codes=codes)
    lo = _bound(spec, value, "low", expression) if value else -math.inf
    hi = lo if high is None else (_bound(spec, high, "high", expression) if high else math.inf)
    if lo > hi:
        raise ConfigError("condition range is empty", where=where,
                          expected="LOW <= HIGH", got="LOW > HIGH", fix="swap the bounds")
    lo, hi = max(lo, spec.low), min(hi, spec.high)
    if spec.kind in ("integer", "date"):
        lo, hi = math.ceil(lo), math.floor(hi)
    elif not spec.scientific and lo <= hi:  # round inwards to the written precision
        scale = 10.0 ** spec.max_decimals
        lo, hi = math.ceil(lo * scale - 1e-9) / scale, math.floor(hi * scale + 1e-9) / scale
    if lo > hi:
        raise ConfigError("condition lies outside the column's domain", where=where,
                          expected="a value or range within the column's range",
                          got="none of it inside", fix="choose a value within the range of "
                          "the input column (see the schema in the report)")
    return Condition(spec.name, expression, low=float(lo), high=float(hi))


def resolve_conditions(expressions: Iterable[str], schema: TableSchema) -> list[Condition]:
    """Parse and check condition expressions against a schema; merge those on one column.

    Parameters
    ----------
    expressions
        Condition expressions (see the module docstring).
    schema
        The table's schema (its observed or public domain).

    Returns
    -------
    list of Condition
        One per conditioned column, in the order first mentioned.

    Raises
    ------
    ConfigError
        If an expression is malformed, names an unknown column, or its value/range lies
        outside the column's domain, or conditions on one column contradict each other.

    Examples
    --------
    >>> import pandas as pd
    >>> from secured_bio.privacy.synthetic.schema import infer_schema
    >>> s = infer_schema(pd.DataFrame({"age": [str(a) for a in range(20)], "sex": ["F", "M"] * 10}))
    >>> [(c.column, c.low, c.high, c.codes) for c in resolve_conditions(["age=5..10"], s)]
    [('age', 5.0, 10.0, ())]
    """
    merged: dict[str, Condition] = {}
    for expression in expressions:
        column, value, high = parse_condition(expression)
        try:
            spec = schema.column(column)
        except SchemaError as e:
            raise ConfigError(e.what, where="--condition", expected=e.expected, got=e.got,
                              fix=e.fix) from e
        cond = _resolve_one(spec, expression, value, high)
        old = merged.get(column)
        if old is not None:
            codes = tuple(sorted(set(old.codes) & set(cond.codes)))
            cond = Condition(column, f"{old.expression} AND {expression}",
                             max(old.low, cond.low), min(old.high, cond.high), codes)
            if (spec.discrete and not codes) or cond.low > cond.high:
                raise ConfigError("conditions on one column contradict each other",
                                  where=f"--condition on '{column}'",
                                  expected="conditions that some value satisfies",
                                  got="an empty intersection", fix="drop one of them")
        merged[column] = cond
    return list(merged.values())


def condition_mask(table: pd.DataFrame, conditions: Sequence[Condition], schema: TableSchema
                   ) -> np.ndarray:
    """Rows of a decoded text table that satisfy every condition (checked on the text).

    Examples
    --------
    >>> import pandas as pd
    >>> from secured_bio.privacy.synthetic.schema import infer_schema
    >>> t = pd.DataFrame({"age": [str(a) for a in range(20)]})
    >>> s = infer_schema(t)
    >>> int(condition_mask(t, resolve_conditions(["age=5..10"], s), s).sum())
    6
    """
    ok = np.ones(len(table), dtype=bool)
    for cond in conditions:
        spec = schema.column(cond.column)
        tokens = table[cond.column].astype(str).to_numpy()
        if spec.discrete:
            allowed = {spec.categories[i] for i in cond.codes}
            ok &= np.array([t in allowed for t in tokens], dtype=bool)
        else:
            values = np.array([spec.to_number(t) if t != "" else math.nan for t in tokens])
            ok &= (values >= cond.low) & (values <= cond.high)
    return ok


def check_conditions(table: pd.DataFrame, conditions: Sequence[Condition],
                     schema: TableSchema) -> None:
    """Verify that every row satisfies every condition.

    Raises
    ------
    ProtocolError
        If a row does not (a bug in a generator; nothing is written).
    """
    bad = int((~condition_mask(table, conditions, schema)).sum())
    if bad:
        raise ProtocolError("generated rows violate the conditions", where="synthesis",
                            expected="every row satisfying every condition",
                            got=f"{bad} of {len(table)} rows violating",
                            fix="report this bug; nothing was written")


def sample_truncated_normal(cov: np.ndarray, lower: np.ndarray, upper: np.ndarray, n: int,
                            rng: np.random.Generator, *, max_rejection_draws: int = 200_000,
                            gibbs_sweeps: int = 60) -> np.ndarray:
    """Draw ``n`` vectors from N(0, cov) restricted to the box ``lower <= x <= upper``.

    Dimensions with ``lower == upper`` are fixed and the rest is drawn from the exact Gaussian
    conditional given them; bounded dimensions are then drawn by rejection from their
    (conditional) marginal, falling back to a Gibbs sampler with univariate truncated normals
    (Geweke 1991) when acceptance is too low; unbounded dimensions are finally drawn from the
    exact conditional given the others. Every returned row lies in the box.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    >>> x = sample_truncated_normal(cov, np.array([1.0, -np.inf]), np.array([2.0, np.inf]),
    ...                             500, rng)
    >>> bool(((x[:, 0] >= 1) & (x[:, 0] <= 2)).all()), bool(x[:, 1].mean() > 0.5)
    (True, True)
    """
    d = cov.shape[0]
    out = np.zeros((n, d))
    fixed = np.flatnonzero(lower == upper)
    boxed = np.flatnonzero((lower < upper) & (np.isfinite(lower) | np.isfinite(upper)))
    free = np.flatnonzero(~np.isfinite(lower) & ~np.isfinite(upper))
    out[:, fixed] = lower[fixed]

    def conditional(target: np.ndarray, given: np.ndarray, values: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        if given.size == 0:
            return np.zeros((values.shape[0], target.size)), cov[np.ix_(target, target)]
        s_gg = cov[np.ix_(given, given)] + 1e-9 * np.eye(given.size)
        gain = np.linalg.solve(s_gg, cov[np.ix_(given, target)]).T
        mean = values @ gain.T
        c = cov[np.ix_(target, target)] - gain @ cov[np.ix_(given, target)]
        return mean, (c + c.T) / 2

    def draw(mean: np.ndarray, c: np.ndarray) -> np.ndarray:
        w, v = np.linalg.eigh(c)
        root = v * np.sqrt(np.clip(w, 0, None))
        return mean + rng.standard_normal(mean.shape) @ root.T

    if boxed.size:
        mean, c = conditional(boxed, fixed, out[:, fixed])
        lo, hi = lower[boxed], upper[boxed]
        got = np.zeros(n, dtype=bool)
        drawn = 0
        while not got.all() and drawn < max_rejection_draws:
            todo = np.flatnonzero(~got)
            x = draw(mean[todo], c)
            drawn += todo.size
            inside = ((x >= lo) & (x <= hi)).all(axis=1)
            out[np.ix_(todo[inside], boxed)] = x[inside]
            got[todo[inside]] = True
            if inside.mean() < 0.01:
                break
        if not got.all():
            out[np.ix_(np.flatnonzero(~got), boxed)] = _gibbs(
                mean[~got], c, lo, hi, rng, gibbs_sweeps)
    if free.size:
        given = np.concatenate([fixed, boxed])
        mean, c = conditional(free, given, out[:, given])
        out[:, free] = draw(mean, c)
    return out


def _gibbs(mean: np.ndarray, cov: np.ndarray, lo: np.ndarray, hi: np.ndarray,
           rng: np.random.Generator, sweeps: int) -> np.ndarray:
    from scipy.stats import truncnorm

    prec = np.linalg.inv(cov + 1e-9 * np.eye(cov.shape[0]))
    sd = np.sqrt(np.diag(cov))
    # start inside the box: clip the mean
    x = np.clip(mean, lo, hi)
    for _ in range(sweeps):
        for j in range(x.shape[1]):
            others = np.arange(x.shape[1]) != j
            mu = mean[:, j] - (x[:, others] - mean[:, others]) @ prec[j, others] / prec[j, j]
            s = 1.0 / math.sqrt(prec[j, j]) if prec[j, j] > 0 else sd[j]
            a, b = (lo[j] - mu) / s, (hi[j] - mu) / s
            x[:, j] = np.clip(truncnorm.rvs(a, b, loc=mu, scale=s, random_state=rng),
                              lo[j], hi[j])
    return x


def satisfies(x: np.ndarray, conds: dict[int, Condition]) -> np.ndarray:
    """Return a boolean mask of the rows of encoded table ``x`` that meet every condition."""
    ok = np.ones(x.shape[0], dtype=bool)
    for j, cond in conds.items():
        if cond.codes:
            ok &= np.isin(np.rint(x[:, j]), np.array(cond.codes, dtype=float))
        else:
            ok &= (x[:, j] >= cond.low) & (x[:, j] <= cond.high)
    return ok


def rejection_sample(draw: Callable[[int], np.ndarray], fallback: Callable[[int], np.ndarray],
                     n: int, conds: dict[int, Condition], *, rounds: int
                     ) -> tuple[np.ndarray, dict[str, int]]:
    """Draw ``n`` rows meeting ``conds``: rejection sampling, then ``fallback`` for the rest.

    ``draw(m)`` returns ``m`` unconditional rows; ``fallback(m)`` returns ``m`` rows that meet
    the conditions by construction (a generator's own conditional path).  The info dict counts
    rows of each kind (the reports' ``conditional_sampling``).
    """
    kept: list[np.ndarray] = []
    have = 0
    for _ in range(rounds):
        x = draw(max(4 * (n - have), 1000))
        ok = satisfies(x, conds)
        kept.append(x[ok])
        have += int(ok.sum())
        if have >= n:
            break
    rows = np.concatenate(kept)[:n]
    missing = n - rows.shape[0]
    if missing:
        rows = np.concatenate([rows, fallback(missing)])
    return rows, {"rejection_rows": n - missing, "fallback_rows": missing}

