"""Attack simulations on a released table: linkage, singling out, linkability, inference.

The last three follow anonymeter's method (Giomi, Boenisch, Wehmeyer & Tasnádi, "A Unified
Framework for Quantifying Privacy Risk in Synthetic Data", PETS 2023), implemented here
without the anonymeter package.  Each attack runs twice with the same attacker knowledge of
the release: against the *main* set (the original records used to make the release) and
against a *control* set (original records not used for it).  The control success rate is
what the attacker gets from population-level patterns alone, so the privacy risk is

    risk = (main_rate - control_rate) / (1 - control_rate)

(reported clipped to [0, 1], with the raw value beside it) with 95% Wilson score intervals
for both rates and a propagated interval for the risk.  A naive baseline (random guesses)
is reported beside them: an attack that does not beat it says nothing.  No risk is reported
(``risk: null`` with a ``reason``) when no attack query could be generated or the control
set is missing.

Distances for nearest neighbours are Gower distances (as anonymeter): numeric columns
(numbers, ISO dates, intervals ``[30-39]`` taken at their midpoint; ``*`` counts as the
largest distance) by absolute difference over the column range, categorical columns 0/1.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from secured_bio.errors import ConfigError, InputError
from secured_bio.privacy.assess.risk import (
    _DATE,
    CLASS_SIZE,
    _is_generalized,
    _number,
    check_columns,
    check_table,
    compat_blocks,
    parse_interval,
    value_matches,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["wilson_interval", "linkage_attack", "singling_out", "linkability", "inference",
           "assess_table"]


# ----------------------------------------------------------------------- statistics
def wilson_interval(successes: int, trials: int, *, confidence: float = 0.95
                    ) -> tuple[float, float]:
    """Wilson score interval of a success rate (Wilson 1927; as anonymeter).

    Examples
    --------
    >>> lo, hi = wilson_interval(8, 10)
    >>> round(lo, 4), round(hi, 4)
    (0.4902, 0.9433)
    """
    if trials <= 0:
        raise InputError("no trials for a success rate", where="wilson_interval",
                         expected="trials >= 1", got=str(trials), fix="run at least 1 attack")
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = successes / trials
    den = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / den
    half = z / den * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate(successes: int, trials: int, confidence: float) -> dict[str, Any]:
    if trials == 0:
        return {"value": None, "ci": None, "successes": 0, "trials": 0}
    lo, hi = wilson_interval(successes, trials, confidence=confidence)
    return {"value": successes / trials, "ci": [lo, hi], "successes": successes,
            "trials": trials}


def _result(attack: str, main: tuple[int, int], control: tuple[int, int] | None,
            baseline: tuple[int, int], confidence: float, **extra: Any) -> dict[str, Any]:
    """Rates, and the risk (main - control) / (1 - control) unless it must be refused."""
    out: dict[str, Any] = {"attack": attack, "confidence": confidence,
                           "main": _rate(*main, confidence),
                           "baseline": _rate(*baseline, confidence),
                           "control": None if control is None else _rate(*control, confidence)}
    out.update(extra)
    out["note"] = None
    if main[1] and baseline[1] and baseline[0] / baseline[1] >= main[0] / main[1]:
        # As anonymeter warns: an attack no better than random guessing measures nothing.
        out["note"] = "the attack does not beat the naive baseline: its result cannot be trusted"
    reason = None
    if main[1] == 0:
        reason = "no attack queries could be generated from the release"
    elif control is None:
        reason = "no control set: a risk cannot be told apart from what the population reveals"
    elif control[1] == 0:
        reason = "no attack could be run against the control set"
    if reason is not None:
        out.update(risk=None, risk_ci=None, reason=reason)
        return out
    assert control is not None
    a, c = main[0] / main[1], control[0] / control[1]
    a_lo, a_hi = out["main"]["ci"]
    c_lo, c_hi = out["control"]["ci"]
    if c >= 1.0:
        out.update(risk=None, risk_ci=None,
                   reason="the control attack always succeeds: the attack is uninformative")
        return out
    raw = (a - c) / (1 - c)
    risk = min(1.0, max(0.0, raw))  # a main rate below the control rate means no risk
    # Propagate the half-widths of the two intervals (anonymeter's residual_success; it takes
    # the Wilson centres as point estimates, we take the observed rates).
    ea, ec = (a_hi - a_lo) / 2, (c_hi - c_lo) / 2
    err = math.sqrt((ea / (1 - c)) ** 2 + (ec * (1 - a) / (1 - c) ** 2) ** 2)
    ci = [max(0.0, raw - err), min(1.0, max(0.0, raw + err))]
    out.update(risk=risk, risk_raw=raw, risk_ci=ci, reason=None)
    return out


def _check_n(n_attacks: int) -> int:
    if isinstance(n_attacks, bool) or int(n_attacks) < 1:
        raise ConfigError("number of attacks out of range", where="n_attacks",
                          expected="an integer >= 1", got=str(n_attacks),
                          fix="use e.g. 500")
    return int(n_attacks)


# ----------------------------------------------------------------------- distances
def _numeric(s: str) -> float | None:
    """Return a value as a number: number, ISO date, interval midpoint; ``*`` is NaN."""
    if s.strip() == "*":
        return math.nan
    x = _number(s)
    if x is not None:
        return x
    iv = parse_interval(s)
    return None if iv is None else (iv[0] + iv[1]) / 2


@dataclass
class _Encoded:
    """Columns encoded for Gower distances between the rows of several tables."""

    mats: list[np.ndarray]  # one (rows x columns) matrix per table
    numeric: np.ndarray  # per column: numbers (True) or category codes (False)
    ranges: np.ndarray  # per numeric column: its range over all tables
    mismatch: list[np.ndarray | None]  # per category column: codes x codes distance (0/1)


def _encode(frames: Sequence[pd.DataFrame], cols: Sequence[str]) -> _Encoded:
    """Encode columns for Gower distance.

    A column is numeric when every value of every table is a number, an ISO date or an
    interval (at its midpoint; ``*`` is missing).  In other columns two values are at
    distance 0 when equal or when one generalizes the other (``751**`` and ``75112``,
    :func:`~secured_bio.privacy.assess.risk.value_matches`), else 1.
    """
    mats = [np.empty((len(f), len(cols))) for f in frames]
    numeric = np.zeros(len(cols), dtype=bool)
    ranges = np.ones(len(cols))
    mismatch: list[np.ndarray | None] = []
    for j, col in enumerate(cols):
        values = np.concatenate([f[col].to_numpy(dtype=str) for f in frames])
        uniq, inv = np.unique(values, return_inverse=True)
        nums = [_numeric(u) for u in uniq]
        dated = [bool(re.search(_DATE, str(u))) for u in uniq]
        if all(x is not None for x in nums) and not all(
                math.isnan(x) for x in nums if x is not None) and (
                all(dated) or not any(dated)):
            # Numbers and dates are not on one scale (day ordinals vs years such as "2024"):
            # a column mixing them is compared as categories, through the generalization.
            arr = np.array(nums, dtype=float)[inv]
            numeric[j] = True
            span = np.nanmax(arr) - np.nanmin(arr)
            ranges[j] = span if span > 0 else 1.0
            mismatch.append(None)
        else:
            arr = inv.astype(float)
            mism = 1.0 - np.eye(len(uniq))
            # Only generalized values can match other values: few rows and columns to fill.
            for g in (i for i, u in enumerate(uniq) if _is_generalized(str(u))):
                row = np.array([value_matches(str(u), str(uniq[g])) for u in uniq])
                mism[:, g] = np.minimum(mism[:, g], 1.0 - row)
                mism[g, :] = np.minimum(mism[g, :], 1.0 - row)
            mismatch.append(mism)
        start = 0
        for m, f in zip(mats, frames, strict=True):
            m[:, j] = arr[start:start + len(f)]
            start += len(f)
    return _Encoded(mats, numeric, ranges, mismatch)


def _gower_sum(blk: np.ndarray, b: np.ndarray, enc: _Encoded) -> np.ndarray:
    """Sum over columns of the Gower distances between rows of ``blk`` and of ``b``."""
    d = np.zeros((len(blk), len(b)))
    for j in range(blk.shape[1]):
        mism = enc.mismatch[j]
        if mism is None:
            dj = np.abs(blk[:, j, None] - b[None, :, j]) / enc.ranges[j]
            d += np.where(np.isnan(dj), 1.0, np.minimum(dj, 1.0))
        else:
            d += mism[np.ix_(blk[:, j].astype(np.int64), b[:, j].astype(np.int64))]
    return d


def _nearest(a: np.ndarray, b: np.ndarray, enc: _Encoded, k: int = 1) -> np.ndarray:
    """Return the indices (len(a) x k) of the k rows of ``b`` nearest to each ``a`` row."""
    k = min(k, len(b))
    out = np.empty((len(a), k), dtype=np.int64)
    step = max(1, int(4e6 // max(1, len(b) * a.shape[1])))
    for s in range(0, len(a), step):
        d = _gower_sum(a[s:s + step], b, enc)
        if k == 1:
            out[s:s + step, 0] = d.argmin(axis=1)
        else:
            out[s:s + step] = np.argpartition(d, k - 1, axis=1)[:, :k]
    return out


def _targets(table: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    idx = rng.choice(len(table), size=min(n, len(table)), replace=False)
    return table.iloc[np.sort(idx)]


# ----------------------------------------------------------------------- linkage
def linkage_attack(
    released: pd.DataFrame,
    external: pd.DataFrame,
    *,
    qi: Sequence[str] | str,
    id_column: str | None = None,
    released_ids: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Link an identified external table to the release through shared quasi-identifiers.

    Each external record (raw or generalized values) is matched to the released records
    whose quasi-identifiers are compatible (:func:`~secured_bio.privacy.assess.risk.value_matches`):
    the classic linkage attack (Sweeney 2002).  An attacker who picks one candidate at
    random re-identifies ``1/candidates`` records in expectation.

    Parameters
    ----------
    released
        The released table.
    external
        The attacker's table with the same quasi-identifier columns (and identities).
    qi
        Quasi-identifier columns.
    id_column
        Identity column of ``external``; the true identity of each released record comes from
        the same column of ``released`` or from ``released_ids``.  Without it, only the
        numbers of links are reported and ``correct`` fields are None.
    released_ids
        Identity of each released record, in row order (e.g. the original table's IDs when
        the release keeps its rows in order).

    Returns
    -------
    dict
        ``n_external``, ``n_released``, ``linked`` (external records with >= 1 candidate),
        ``linked_uniquely`` (exactly 1 candidate) and its ``share``, ``expected_matches``
        (sum of 1/candidates), and with identities ``correct_unique`` (unique links to the
        right person), ``correct_unique_share`` (of the external records) and
        ``expected_correct`` (sum of 1/candidates over candidate sets holding the right
        person).

    Raises
    ------
    InputError
        If a table is empty, or ``released_ids`` does not have one entry per released record.
    SchemaError
        If a quasi-identifier or ``id_column`` is missing.

    Examples
    --------
    >>> import pandas as pd
    >>> rel = pd.DataFrame({"age": ["[30-39]", "[30-39]", "[40-49]"], "sex": ["F", "F", "M"]})
    >>> ext = pd.DataFrame({"name": ["a", "b", "c"], "age": ["31", "45", "60"],
    ...                     "sex": ["F", "M", "M"]})
    >>> r = linkage_attack(rel, ext, qi="age,sex", id_column="name",
    ...                    released_ids=["a", "x", "b"])
    >>> r["linked_uniquely"], r["correct_unique"], r["expected_correct"]
    (1, 1, 1.5)
    """
    cols = check_columns(qi)
    rel = check_table(released, "released", cols)
    ext = check_table(external, "external", cols + ([id_column] if id_column else []))
    rel = rel.reset_index(drop=True)
    groups = rel.groupby(cols, sort=False)
    classes = groups.size().rename(CLASS_SIZE).reset_index()
    f = classes[CLASS_SIZE].to_numpy(dtype=np.int64)
    truth: np.ndarray | None = None
    if id_column is not None and released_ids is not None:
        if len(released_ids) != len(rel):
            raise InputError("released identities do not match the released rows",
                             where="released_ids", expected=f"{len(rel)} entries",
                             got=f"{len(released_ids)}", fix="pass one identity per released row")
        truth = np.asarray([str(x) for x in released_ids])
    elif id_column is not None and id_column in rel.columns:
        truth = rel[id_column].to_numpy(dtype=str)
    # The class of each external person's own released record (-1: not in the release).
    true_class = np.full(len(ext), -1, dtype=np.int64)
    if truth is not None and id_column is not None:
        key = {tuple(r): i for i, r in
               enumerate(classes[cols].itertuples(index=False, name=None))}
        where_id: dict[str, int] = {}
        for ident, r in zip(truth, rel[cols].itertuples(index=False, name=None), strict=True):
            where_id.setdefault(str(ident), key[tuple(r)])
        true_class = np.array([where_id.get(i, -1) for i in ext[id_column].to_numpy(dtype=str)],
                              dtype=np.int64)
    candidates = np.zeros(len(ext), dtype=np.int64)
    own = np.zeros(len(ext), dtype=bool)  # the person's own record is among the candidates
    for rows, ok in compat_blocks(ext, classes, cols):
        candidates[rows] = ok @ f
        tc = true_class[rows]
        has = tc >= 0
        own[rows] = has & ok[np.arange(len(tc)), np.where(has, tc, 0)]
    linked = candidates > 0
    unique = candidates == 1
    out: dict[str, Any] = {
        "n_external": len(ext), "n_released": len(rel), "linked": int(linked.sum()),
        "linked_uniquely": int(unique.sum()), "share": float(unique.mean()),
        "expected_matches": float((1.0 / candidates[linked]).sum()) if linked.any() else 0.0,
        "correct_unique": None, "correct_unique_share": None, "expected_correct": None,
        "reason": None,
    }
    if truth is None:
        out["reason"] = ("no identities: pass id_column with released_ids (or the column in the "
                         "release) to count correct links")
        return out
    correct_unique = int((own & unique).sum())
    out.update(correct_unique=correct_unique, correct_unique_share=correct_unique / len(ext),
               expected_correct=float((1.0 / candidates[own]).sum()) if own.any() else 0.0)
    return out


# ----------------------------------------------------------------------- singling out
_Strings = dict[str, tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]]


def _predicate_mask(strs: _Strings,
                    nums: dict[str, np.ndarray],
                    query: Sequence[tuple[str, str, Any]]) -> np.ndarray:
    """Return the records matching every condition of a predicate.

    ``col == v`` with a generalized ``v`` (``751**``, ``[30-39]``) matches the values it
    covers (:func:`~secured_bio.privacy.assess.risk.value_matches`).
    """
    mask: np.ndarray | None = None
    for col, op, value in query:
        if op == "==":
            uniq, inv, cache = strs[col]
            if value not in cache:  # the same values come back in many predicates
                cache[value] = (np.array([value_matches(str(u), value) for u in uniq], dtype=bool)
                                if _is_generalized(value) else uniq == value)[inv]
            cond = cache[value]
        else:
            x = nums[col]
            with np.errstate(invalid="ignore"):
                cond = (x <= value) if op == "<=" else (x >= value)
        mask = cond if mask is None else mask & cond
    assert mask is not None
    return mask


def _strings(table: pd.DataFrame, cols: Sequence[str]) -> _Strings:
    """Per column: the distinct values, each record's index into them, a predicate cache."""
    out: _Strings = {}
    for c in cols:
        uniq, inv = np.unique(table[c].to_numpy(dtype=str), return_inverse=True)
        out[c] = (uniq, inv, {})
    return out


def _numbers(table: pd.DataFrame, cols: Sequence[str], numeric: dict[str, bool]
             ) -> dict[str, np.ndarray]:
    out = {}
    for c in cols:
        if numeric[c]:
            out[c] = np.array([_numeric(v) for v in table[c].to_numpy(dtype=str)], dtype=float)
    return out


def singling_out(
    original: pd.DataFrame,
    released: pd.DataFrame,
    control: pd.DataFrame | None = None,
    *,
    columns: Sequence[str] | str | None = None,
    mode: str = "multivariate",
    n_attacks: int = 500,
    n_cols: int = 3,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Singling-out risk: predicates built from the release that isolate one original record.

    The attacker writes predicates from the release alone (anonymeter, Giomi et al. 2023):
    *univariate* ones are ``col == v`` for a value seen once in the release, and
    ``col <= min`` / ``col >= max`` for numeric columns; *multivariate* ones combine
    ``n_cols`` random columns of a random released record (``==`` for categories, a random
    ``<=``/``>=`` for numbers) and are kept when they isolate one released record.  A
    predicate succeeds when it matches exactly one record of the main set (or of the control
    set, for the control rate).  The larger of the two sets is subsampled to the size of the
    other, since a predicate isolates a record more easily in a smaller table.
    The baseline draws each predicate value at random from the column's released values.

    Parameters
    ----------
    original
        Main set: the original records used to make the release.
    released
        The released (anonymized or synthetic) table.
    control
        Original records not used for the release (None: the risk is refused).
    columns
        Columns the predicates use (default: the columns shared by all tables).
    mode
        ``"univariate"`` or ``"multivariate"``.
    n_attacks
        Number of predicates to generate (fewer when the release does not allow it).
    n_cols
        Columns per multivariate predicate.
    confidence
        Confidence level of the intervals.
    seed
        Random seed.

    Returns
    -------
    dict
        ``attack``, ``mode``, ``n_queries`` (generated), ``main``, ``control`` and
        ``baseline`` rates (``value``, ``ci``, ``successes``, ``trials``), ``risk``,
        ``risk_ci`` and ``reason`` (why the risk is null, else None).

    Raises
    ------
    InputError
        If a table is empty.
    SchemaError
        If a column is missing from a table.
    ConfigError
        If ``mode`` is unknown or ``n_attacks``/``n_cols`` < 1.

    Examples
    --------
    >>> from secured_bio.testing import simulate_clinical
    >>> import pandas as pd, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.csv"
    >>> t = pd.read_csv(simulate_clinical(p, n_rows=400).path, dtype=str)
    >>> cols = ["age", "sex", "postcode"]
    >>> r = singling_out(t[:200], t[:200], t[200:], columns=cols, n_attacks=30)
    >>> r["risk"] > 0.3
    True
    """
    from secured_bio.errors import did_you_mean

    if mode not in ("univariate", "multivariate"):
        hint = did_you_mean(mode, ["univariate", "multivariate"])
        raise ConfigError("unknown singling-out mode", where="mode",
                          expected="'univariate' or 'multivariate'", got=repr(mode),
                          fix=hint or "choose one of them")
    n_attacks = _check_n(n_attacks)
    if int(n_cols) < 1:
        raise ConfigError("columns per predicate out of range", where="n_cols",
                          expected="an integer >= 1", got=str(n_cols), fix="use e.g. 3")
    cols = _shared_columns(columns, original, released, control)
    ori = check_table(original, "original", cols)
    syn = check_table(released, "released", cols)
    ctl = None if control is None else check_table(control, "control", cols)
    rng = np.random.default_rng(seed)
    frames = [ori, syn] + ([ctl] if ctl is not None else [])
    num_mask = _encode(frames, cols).numeric
    numeric = dict(zip(cols, num_mask.tolist(), strict=True))
    syn_nums = _numbers(syn, cols, numeric)
    queries = (_univariate_queries(syn, cols, syn_nums, n_attacks, rng) if mode == "univariate"
               else _multivariate_queries(syn, cols, syn_nums, n_attacks, int(n_cols), rng))
    # A predicate isolates a record more easily in a smaller table: compare equal sizes.
    if ctl is not None and len(ori) > len(ctl):
        ori = _targets(ori, len(ctl), rng)
    elif ctl is not None and len(ctl) > len(ori):
        ctl = _targets(ctl, len(ori), rng)
    ori_nums = _numbers(ori, cols, numeric)

    def successes(table: pd.DataFrame, nums: dict[str, np.ndarray],
                  qs: Sequence[Sequence[tuple[str, str, Any]]]) -> int:
        strs = _strings(table, cols)
        return sum(int(_predicate_mask(strs, nums, q).sum() == 1) for q in qs)

    baseline_q = _baseline_queries(syn, cols, syn_nums, len(queries), mode, int(n_cols), rng)
    main = (successes(ori, ori_nums, queries), len(queries))
    ctl_counts = None
    if ctl is not None:
        ctl_counts = (successes(ctl, _numbers(ctl, cols, numeric), queries), len(queries))
    base = (successes(ori, ori_nums, baseline_q), len(baseline_q))
    return _result("singling_out", main, ctl_counts, base, confidence, mode=mode,
                   n_queries=len(queries), n_requested=n_attacks, main_rows=len(ori),
                   control_rows=None if ctl is None else len(ctl))


def _shared_columns(columns: Sequence[str] | str | None, *tables: pd.DataFrame | None
                    ) -> list[str]:
    if columns is not None:
        return check_columns(columns, "columns")
    import pandas as pd

    present = [t for t in tables if isinstance(t, pd.DataFrame)]
    if not present:
        raise InputError("no tables given", where="tables", expected="DataFrames",
                         got="none", fix="pass the original and released tables")
    shared = [str(c) for c in present[0].columns
              if all(str(c) in map(str, t.columns) for t in present[1:])]
    return check_columns(shared, "columns")


def _univariate_queries(syn: pd.DataFrame, cols: Sequence[str], nums: dict[str, np.ndarray],
                        n: int, rng: np.random.Generator) -> list[list[tuple[str, str, Any]]]:
    pool: list[list[tuple[str, str, Any]]] = []
    for c in cols:
        values, counts = np.unique(syn[c].to_numpy(dtype=str), return_counts=True)
        pool += [[(c, "==", str(v))] for v in values[counts == 1]]
        if c in nums and np.isfinite(nums[c]).any():
            pool += [[(c, "<=", float(np.nanmin(nums[c])))], [(c, ">=", float(np.nanmax(nums[c])))]]
    order = rng.permutation(len(pool))[:n]
    return [pool[i] for i in order]


def _record_query(strs: _Strings, nums: dict[str, np.ndarray],
                  row: int, chosen: Sequence[str], rng: np.random.Generator
                  ) -> list[tuple[str, str, Any]]:
    q: list[tuple[str, str, Any]] = []
    for c in chosen:
        if c in nums and np.isfinite(nums[c][row]):
            q.append((c, "<=" if rng.random() < 0.5 else ">=", float(nums[c][row])))
        else:
            uniq, inv, _ = strs[c]
            q.append((c, "==", str(uniq[inv[row]])))
    return q


def _multivariate_queries(syn: pd.DataFrame, cols: Sequence[str], nums: dict[str, np.ndarray],
                          n: int, n_cols: int, rng: np.random.Generator
                          ) -> list[list[tuple[str, str, Any]]]:
    out: list[list[tuple[str, str, Any]]] = []
    seen: set[tuple[tuple[str, str, Any], ...]] = set()
    strs = _strings(syn, cols)
    k = min(n_cols, len(cols))
    for _ in range(20 * n):
        if len(out) >= n:
            break
        row = int(rng.integers(len(syn)))
        chosen = sorted(rng.choice(len(cols), size=k, replace=False).tolist())
        q = _record_query(strs, nums, row, [cols[i] for i in chosen], rng)
        key = tuple(q)
        if key in seen or _predicate_mask(strs, nums, q).sum() != 1:
            continue
        seen.add(key)
        out.append(q)
    return out


def _baseline_queries(syn: pd.DataFrame, cols: Sequence[str], nums: dict[str, np.ndarray],
                      n: int, mode: str, n_cols: int, rng: np.random.Generator
                      ) -> list[list[tuple[str, str, Any]]]:
    k = 1 if mode == "univariate" else min(n_cols, len(cols))
    out = []
    for _ in range(n):
        chosen = rng.choice(len(cols), size=k, replace=False)
        q: list[tuple[str, str, Any]] = []
        for i in sorted(chosen.tolist()):
            c = cols[i]
            if c in nums and np.isfinite(nums[c]).any():
                lo, hi = float(np.nanmin(nums[c])), float(np.nanmax(nums[c]))
                q.append((c, "<=" if rng.random() < 0.5 else ">=", float(rng.uniform(lo, hi))))
            else:
                uniq = np.unique(syn[c].to_numpy(dtype=str))
                q.append((c, "==", str(uniq[rng.integers(len(uniq))])))
        out.append(q)
    return out


# ----------------------------------------------------------------------- linkability
def linkability(
    original: pd.DataFrame,
    released: pd.DataFrame,
    control: pd.DataFrame | None = None,
    *,
    aux_cols: tuple[Sequence[str], Sequence[str]],
    n_attacks: int = 500,
    n_neighbors: int = 1,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Linkability risk: link two halves of a person's attributes through the release.

    The attacker holds two tables about the same people, one with columns ``aux_cols[0]``
    and one with ``aux_cols[1]``.  For each target record, the ``n_neighbors`` nearest
    released records are found with each half (Gower distance); the two halves are linked
    when the neighbour sets share a record (anonymeter, Giomi et al. 2023).  The baseline
    draws the neighbour sets at random.

    Parameters
    ----------
    original, released, control
        Main set, release, and original records not used for the release (None: the risk
        is refused).
    aux_cols
        The two disjoint column sets the attacker holds.
    n_attacks
        Target records drawn from the main set (and from the control set).
    n_neighbors
        Neighbours per half.
    confidence
        Confidence level of the intervals.
    seed
        Random seed.

    Returns
    -------
    dict
        As :func:`singling_out`, with ``aux_cols`` and ``n_neighbors``.

    Raises
    ------
    ConfigError
        If a column set is empty, the sets overlap, or ``n_attacks``/``n_neighbors`` < 1.
    InputError, SchemaError
        If a table is empty or lacks a column.

    Examples
    --------
    >>> import pandas as pd, numpy as np
    >>> rng = np.random.default_rng(0)
    >>> t = pd.DataFrame(rng.integers(0, 100, size=(300, 4)), columns=list("abcd"))
    >>> r = linkability(t[:150], t[:150], t[150:], aux_cols=(["a", "b"], ["c", "d"]),
    ...                 n_attacks=100)
    >>> r["risk"] > 0.9
    True
    """
    n_attacks = _check_n(n_attacks)
    if int(n_neighbors) < 1:
        raise ConfigError("neighbours out of range", where="n_neighbors",
                          expected="an integer >= 1", got=str(n_neighbors), fix="use 1")
    a_cols = check_columns(aux_cols[0], "aux_cols[0]")
    b_cols = check_columns(aux_cols[1], "aux_cols[1]")
    if set(a_cols) & set(b_cols):
        raise ConfigError("linkability column sets overlap", where="aux_cols",
                          expected="two disjoint column sets",
                          got=f"{len(set(a_cols) & set(b_cols))} shared columns",
                          fix="split the columns in two")
    cols = a_cols + b_cols
    ori = check_table(original, "original", cols)
    syn = check_table(released, "released", cols)
    ctl = None if control is None else check_table(control, "control", cols)
    rng = np.random.default_rng(seed)
    k = int(n_neighbors)

    def run(targets: pd.DataFrame) -> tuple[int, int]:
        frames = [targets, syn]
        ea = _encode([f[a_cols] for f in frames], a_cols)
        eb = _encode([f[b_cols] for f in frames], b_cols)
        na = _nearest(ea.mats[0], ea.mats[1], ea, k)
        nb = _nearest(eb.mats[0], eb.mats[1], eb, k)
        hits = sum(bool(set(x.tolist()) & set(y.tolist())) for x, y in zip(na, nb, strict=True))
        return hits, len(targets)

    main = run(_targets(ori, n_attacks, rng))
    ctl_counts = None if ctl is None else run(_targets(ctl, n_attacks, rng))
    kk = min(k, len(syn))
    base_hits = sum(
        bool(set(rng.choice(len(syn), kk, replace=False).tolist())
             & set(rng.choice(len(syn), kk, replace=False).tolist()))
        for _ in range(main[1])
    )
    return _result("linkability", main, ctl_counts, (base_hits, main[1]), confidence,
                   aux_cols=[a_cols, b_cols], n_neighbors=k)


# ----------------------------------------------------------------------- inference
def inference(
    original: pd.DataFrame,
    released: pd.DataFrame,
    control: pd.DataFrame | None = None,
    *,
    aux_cols: Sequence[str] | str,
    secret: str,
    n_attacks: int = 500,
    tolerance: float = 0.05,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Inference risk: guess a secret attribute from the nearest released record.

    For each target the attacker knows ``aux_cols``, finds the nearest released record
    (Gower distance) and guesses its ``secret`` (anonymeter, Giomi et al. 2023).  A guess
    is right when equal; for a numeric secret, within ``tolerance`` relative error.  The
    baseline guesses a random released value.

    Parameters
    ----------
    original, released, control
        Main set, release, and original records not used for the release (None: the risk
        is refused).
    aux_cols
        Columns the attacker knows.
    secret
        Column to guess (not among ``aux_cols``).
    n_attacks
        Target records drawn from the main set (and from the control set).
    tolerance
        Relative error accepted for a numeric secret.
    confidence
        Confidence level of the intervals.
    seed
        Random seed.

    Returns
    -------
    dict
        As :func:`singling_out`, with ``aux_cols`` and ``secret``.

    Raises
    ------
    ConfigError
        If ``secret`` is among ``aux_cols`` or ``n_attacks`` < 1.
    InputError, SchemaError
        If a table is empty or lacks a column.

    Examples
    --------
    >>> import pandas as pd, numpy as np
    >>> rng = np.random.default_rng(0)
    >>> t = pd.DataFrame({"a": rng.integers(0, 1000, 300), "b": rng.integers(0, 1000, 300),
    ...                   "s": rng.choice(["x", "y", "z"], 300)})
    >>> r = inference(t[:150], t[:150], t[150:], aux_cols=["a", "b"], secret="s",
    ...               n_attacks=100)
    >>> r["main"]["value"], r["risk"] > 0.8
    (1.0, True)
    """
    n_attacks = _check_n(n_attacks)
    aux = check_columns(aux_cols, "aux_cols")
    if secret in aux:
        raise ConfigError("the secret column is also an auxiliary column", where=secret,
                          expected="a secret outside aux_cols", got="it is among them",
                          fix="remove it from the auxiliary columns")
    cols = aux + [secret]
    ori = check_table(original, "original", cols)
    syn = check_table(released, "released", cols)
    ctl = None if control is None else check_table(control, "control", cols)
    rng = np.random.default_rng(seed)
    frames = [ori, syn] + ([ctl] if ctl is not None else [])
    sec_num = _encode([f[[secret]] for f in frames], [secret]).numeric
    syn_secret = syn[secret].to_numpy(dtype=str)

    def right(guess: np.ndarray, truth: np.ndarray) -> int:
        if sec_num[0]:
            g = np.array([_numeric(v) for v in guess], dtype=float)
            t = np.array([_numeric(v) for v in truth], dtype=float)
            with np.errstate(invalid="ignore"):
                ok = np.abs(g - t) <= tolerance * np.abs(t)
            return int(ok.sum())
        return int((guess == truth).sum())

    def run(targets: pd.DataFrame) -> tuple[int, int]:
        enc = _encode([targets[aux], syn[aux]], aux)
        nn = _nearest(enc.mats[0], enc.mats[1], enc, 1)[:, 0]
        return right(syn_secret[nn], targets[secret].to_numpy(dtype=str)), len(targets)

    main_targets = _targets(ori, n_attacks, rng)
    main = run(main_targets)
    ctl_counts = None if ctl is None else run(_targets(ctl, n_attacks, rng))
    guesses = syn_secret[rng.integers(len(syn), size=len(main_targets))]
    base = (right(guesses, main_targets[secret].to_numpy(dtype=str)), len(main_targets))
    return _result("inference", main, ctl_counts, base, confidence, aux_cols=aux,
                   secret=secret)


# ----------------------------------------------------------------------- whole assessment
def assess_table(
    original: pd.DataFrame,
    released: pd.DataFrame,
    *,
    qi: Sequence[str] | str,
    control: pd.DataFrame | None = None,
    external: pd.DataFrame | None = None,
    sensitive: str | None = None,
    secret: str | None = None,
    id_column: str | None = None,
    population_size: int | None = None,
    threshold: float = 0.2,
    n_attacks: int = 500,
    seed: int = 0,
) -> dict[str, Any]:
    """Assess a release: risk models, linkage, singling out, linkability and inference.

    Runs :func:`~secured_bio.privacy.assess.risk.reidentification_risk` (journalist and
    marketer against ``external`` when given, else against ``original``),
    :func:`linkage_attack` (``external`` when given, else the original table as the
    attacker's identified table: the worst case), :func:`singling_out` (univariate and
    multivariate, on the quasi-identifiers and the sensitive column), :func:`linkability`
    (quasi-identifiers split in two halves) and :func:`inference` (the ``secret`` column,
    default ``sensitive``, guessed from the quasi-identifiers).  An attack that cannot run
    is reported as ``null`` with a ``reason``.

    Parameters
    ----------
    original
        The original records the release was made from (the main set).
    released
        The released table.
    qi
        Quasi-identifier columns.
    control
        Original records not used for the release (needed for the anonymeter risks).
    external
        An identified table the attacker holds (population for the journalist model).
    sensitive
        Sensitive column (used by singling out, and the default secret).
    secret
        Column the inference attack guesses (default: ``sensitive``).
    id_column
        Identity column of the attacker's table; the true identity of each released record
        comes from the same column of the release, or from ``original`` when the release has
        the same number of rows (rows taken in the same order).
    population_size
        Size of the source population for the uniqueness estimate.
    threshold
        Record-level risk above which a record is at risk.
    n_attacks
        Attacks per anonymeter evaluation.
    seed
        Random seed.

    Returns
    -------
    dict
        ``format``, ``format_version``, ``n_records``, ``qi`` and the keys ``prosecutor``,
        ``journalist``, ``marketer``, ``sample_uniques``, ``population_uniqueness``,
        ``linkage``, ``singling_out`` (``univariate``, ``multivariate``), ``linkability``,
        ``inference``.

    Raises
    ------
    InputError, SchemaError, ConfigError
        As the functions it runs.

    Examples
    --------
    >>> import pandas as pd, numpy as np
    >>> rng = np.random.default_rng(0)
    >>> t = pd.DataFrame({"age": rng.integers(20, 80, 300).astype(str),
    ...                   "sex": rng.choice(["F", "M"], 300), "dx": rng.choice(list("abc"), 300)})
    >>> r = assess_table(t[:200], t[:200], qi=["age", "sex"], control=t[200:],
    ...                  sensitive="dx", n_attacks=40)
    >>> r["prosecutor"]["highest"], r["linkability"]["risk"] is not None
    (1.0, True)
    """
    from secured_bio.privacy.assess.risk import reidentification_risk

    cols = check_columns(qi)
    if sensitive is not None and sensitive in cols:
        raise ConfigError("the sensitive column is also a quasi-identifier", where=sensitive,
                          expected="a column outside --qi", got="it is among them",
                          fix="remove it from the quasi-identifiers")
    ori = check_table(original, "original", cols)
    rel = check_table(released, "released", cols)
    population = external if external is not None else ori
    report = reidentification_risk(rel, qi=cols, population=population,
                                   population_size=population_size, threshold=threshold)
    report["journalist"]["population_table"] = "external" if external is not None else "original"
    # Linkage: the attacker's identified table.
    attacker = external if external is not None else ori
    ids: Sequence[Any] | None = None
    if id_column is not None and id_column not in rel.columns and id_column in ori.columns \
            and len(ori) == len(rel):
        ids = ori[id_column].tolist()
    report["linkage"] = linkage_attack(rel, attacker, qi=cols, id_column=id_column,
                                       released_ids=ids)
    report["linkage"]["attacker_table"] = "external" if external is not None else "original"
    so_cols = cols + ([sensitive] if sensitive else [])
    report["singling_out"] = {
        mode: singling_out(ori, rel, control, columns=so_cols, mode=mode, n_attacks=n_attacks,
                           seed=seed)
        for mode in ("univariate", "multivariate")
    }
    if len(cols) >= 2:
        half = (len(cols) + 1) // 2
        report["linkability"] = linkability(ori, rel, control, aux_cols=(cols[:half], cols[half:]),
                                            n_attacks=n_attacks, seed=seed)
    else:
        report["linkability"] = {"attack": "linkability", "risk": None, "risk_ci": None,
                                 "reason": "needs at least 2 quasi-identifiers to split"}
    target = secret if secret is not None else sensitive
    if target is None:
        report["inference"] = {"attack": "inference", "risk": None, "risk_ci": None,
                               "reason": "no secret or sensitive column given"}
    else:
        report["inference"] = inference(ori, rel, control, aux_cols=[c for c in cols
                                                                     if c != target],
                                        secret=target, n_attacks=n_attacks, seed=seed)
    report["n_attacks"] = n_attacks
    report["seed"] = seed
    return report
