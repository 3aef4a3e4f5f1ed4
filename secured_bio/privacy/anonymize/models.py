"""Privacy models on equivalence classes: k-anonymity, l-diversity, t-closeness.

An *equivalence class* is a set of released records with the same quasi-identifier values.

- k-anonymity (Sweeney 2002): every class holds at least k records.
- l-diversity (Machanavajjhala et al. 2007, "l-Diversity: Privacy beyond k-anonymity"):
  *distinct* - at least l distinct sensitive values per class; *entropy* - the entropy of the
  sensitive values in every class is at least log(l); *recursive (c,l)* - with the class's
  sensitive counts sorted decreasingly r1 >= r2 >= ... >= rm, r1 < c (rl + ... + rm).
- t-closeness (Li et al. 2007): the Earth Mover's Distance between the sensitive distribution
  of each class and that of the whole table is at most t; ordered distance for numeric
  sensitive attributes, equal distance for categorical ones - the same definitions as
  pycanon (``aux_t_closeness_num`` / ``aux_t_closeness_str``), which the reports cross-check.

The functions on DataFrames compute the figure achieved by a table; the ``class_*`` helpers
work on per-class counts and are what the searches use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from secured_bio.errors import ConfigError

__all__ = [
    "PrivacyModels",
    "k_anonymity",
    "distinct_l_diversity",
    "entropy_l_diversity",
    "recursive_c_l_diversity",
    "t_closeness",
    "L_KINDS",
]

L_KINDS = ("distinct", "entropy", "recursive")
"""Kinds of l-diversity."""


@dataclass(frozen=True)
class PrivacyModels:
    """The privacy models a release must satisfy.

    Attributes
    ----------
    k
        Minimum class size (>= 1).
    l
        l-diversity's l (>= 2), or None.
    l_kind
        ``distinct``, ``entropy`` or ``recursive``.
    c
        Recursive (c,l)-diversity's c (> 0); required with ``l_kind="recursive"``.
    t
        t-closeness threshold in [0, 1], or None.

    Examples
    --------
    >>> PrivacyModels(k=5, l=2).needs_sensitive
    True
    """

    k: int
    l: int | None = None  # noqa: E741 - the models' own name
    l_kind: str = "distinct"
    c: float | None = None
    t: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.k, int | np.integer) or self.k < 1:
            raise ConfigError("invalid k", where="--k", expected="an integer >= 1",
                              got=repr(self.k))
        if self.l is not None and (not isinstance(self.l, int | np.integer) or self.l < 2):
            raise ConfigError("invalid l", where="--l", expected="an integer >= 2",
                              got=repr(self.l), fix="leave out --l for no l-diversity")
        if self.l_kind not in L_KINDS:
            raise ConfigError("unknown l-diversity kind", where="--l-kind",
                              expected=" or ".join(L_KINDS), got=repr(self.l_kind))
        if self.l_kind == "recursive" and self.l is not None and (
                self.c is None or not self.c > 0):
            raise ConfigError("recursive (c,l)-diversity needs c > 0", where="--c",
                              got=repr(self.c), fix="e.g. --l-kind recursive --l 2 --c 3")
        if self.t is not None and not 0.0 <= self.t <= 1.0:
            raise ConfigError("invalid t", where="--t", expected="a number in [0, 1]",
                              got=repr(self.t))

    @property
    def needs_sensitive(self) -> bool:
        """Whether a sensitive attribute is needed (l-diversity or t-closeness)."""
        return self.l is not None or self.t is not None


# ----------------------------------------------------------------------- per-class helpers
def class_counts(classes: NDArray[np.int64], sensitive: NDArray[np.int64] | None,
                 n_classes: int, n_values: int) -> tuple[NDArray[np.int64],
                                                         NDArray[np.int64] | None]:
    """Sizes of the classes and their sensitive-value counts (classes x values)."""
    sizes = np.bincount(classes, minlength=n_classes)
    if sensitive is None:
        return sizes, None
    counts = np.bincount(classes * n_values + sensitive,
                         minlength=n_classes * n_values).reshape(n_classes, n_values)
    return sizes, counts


def class_entropy_l(counts: NDArray[np.int64]) -> NDArray[np.float64]:
    """exp(entropy) of each class's sensitive values (entropy l-diversity's l)."""
    sizes = counts.sum(axis=1, keepdims=True).astype(np.float64)
    p = counts / np.maximum(sizes, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return np.asarray(np.exp(h), dtype=np.float64)


def class_recursive_c(counts: NDArray[np.int64], l: int) -> NDArray[np.float64]:  # noqa: E741
    """r1 / (rl + ... + rm) per class; the class is (c,l)-diverse when this is < c."""
    r = -np.sort(-counts, axis=1)
    tail = r[:, l - 1:].sum(axis=1).astype(np.float64)
    with np.errstate(divide="ignore"):
        return np.where(tail > 0, r[:, 0] / np.where(tail > 0, tail, 1), np.inf)


def class_emd(counts: NDArray[np.int64], overall: NDArray[np.float64],
              ordered: bool) -> NDArray[np.float64]:
    """EMD of each class's sensitive distribution to ``overall`` (pycanon's definitions).

    Only the values present in ``overall`` count (columns with overall 0 are dropped), as
    pycanon uses the values of the table it checks.
    """
    keep = overall > 0
    q = counts[:, keep] / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    r = q - overall[keep][None, :]
    m = int(keep.sum())
    if ordered:
        if m < 2:
            return np.zeros(len(counts))
        return np.asarray(np.abs(np.cumsum(r, axis=1)).sum(axis=1) / (m - 1), dtype=np.float64)
    return np.asarray(0.5 * np.abs(r).sum(axis=1), dtype=np.float64)


def class_ok(sizes: NDArray[np.int64], counts: NDArray[np.int64] | None,
             models: PrivacyModels) -> NDArray[np.bool_]:
    """Which classes satisfy k and l (t depends on the whole release; checked apart)."""
    ok = sizes >= models.k
    if models.l is not None and counts is not None:
        if models.l_kind == "distinct":
            ok &= (counts > 0).sum(axis=1) >= models.l
        elif models.l_kind == "entropy":
            # 1e-9 above l: pycanon floors its own exp(entropy), which rounding can put just
            # below an integer (2 equally frequent values -> 1.9999999999999996 -> 1)
            ok &= class_entropy_l(counts) >= models.l + 1e-9
        else:
            assert models.c is not None
            ok &= class_recursive_c(counts, models.l) < models.c
    return np.asarray(ok, dtype=bool)


# ------------------------------------------------------------------------ on DataFrames
def _classes(df: pd.DataFrame, qi: Sequence[str]) -> NDArray[np.int64]:
    keys = df[list(qi)].astype(str)
    return np.asarray(keys.groupby(list(qi), sort=False).ngroup().to_numpy(), dtype=np.int64)


def _counts(df: pd.DataFrame, qi: Sequence[str], sensitive: str
            ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], bool]:
    cls = _classes(df, qi)
    s = df[sensitive]
    ordered = bool(pd.api.types.is_numeric_dtype(s))
    values, codes = np.unique(s.to_numpy() if ordered else s.astype(str).to_numpy(),
                              return_inverse=True)
    codes = codes.reshape(-1).astype(np.int64)
    sizes, counts = class_counts(cls, codes, int(cls.max()) + 1 if len(cls) else 0,
                                 len(values))
    assert counts is not None
    overall = np.bincount(codes, minlength=len(values)) / max(len(codes), 1)
    return sizes, counts, overall, ordered


def k_anonymity(df: pd.DataFrame, qi: Sequence[str]) -> int:
    """Size of the smallest equivalence class (0 for an empty table).

    Examples
    --------
    >>> df = pd.DataFrame({"age": ["[30-39]"] * 3 + ["[40-49]"] * 2})
    >>> k_anonymity(df, ["age"])
    2
    """
    if len(df) == 0:
        return 0
    return int(np.bincount(_classes(df, qi)).min())


def distinct_l_diversity(df: pd.DataFrame, qi: Sequence[str], sensitive: str) -> int:
    """Fewest distinct sensitive values in an equivalence class.

    Examples
    --------
    >>> df = pd.DataFrame({"age": ["a", "a", "b", "b"], "dx": ["x", "y", "x", "x"]})
    >>> distinct_l_diversity(df, ["age"], "dx")
    1
    """
    if len(df) == 0:
        return 0
    _, counts, _, _ = _counts(df, qi, sensitive)
    return int((counts > 0).sum(axis=1).min())


def entropy_l_diversity(df: pd.DataFrame, qi: Sequence[str], sensitive: str) -> float:
    """Smallest exp(entropy) of the sensitive values over the classes (pycanon floors it).

    Examples
    --------
    >>> df = pd.DataFrame({"age": ["a", "a"], "dx": ["x", "y"]})
    >>> round(entropy_l_diversity(df, ["age"], "dx"), 6)
    2.0
    """
    if len(df) == 0:
        return 0.0
    _, counts, _, _ = _counts(df, qi, sensitive)
    return float(class_entropy_l(counts).min())


def recursive_c_l_diversity(df: pd.DataFrame, qi: Sequence[str], sensitive: str,
                            l: int) -> float:  # noqa: E741
    """Largest r1 / (rl + ... + rm) over the classes: the table is (c,l)-diverse for c above it.

    ``inf`` when a class has fewer than ``l`` distinct sensitive values.

    Examples
    --------
    >>> df = pd.DataFrame({"age": ["a"] * 4, "dx": ["x", "x", "y", "z"]})
    >>> recursive_c_l_diversity(df, ["age"], "dx", 2)
    1.0
    """
    if len(df) == 0:
        return float("inf")
    _, counts, _, _ = _counts(df, qi, sensitive)
    return float(class_recursive_c(counts, l).max())


def t_closeness(df: pd.DataFrame, qi: Sequence[str], sensitive: str) -> float:
    """Largest EMD between a class's sensitive distribution and the table's.

    Numeric sensitive columns use the ordered distance, others the equal distance.

    Examples
    --------
    >>> df = pd.DataFrame({"age": ["a", "a", "b", "b"], "dx": ["x", "y", "x", "x"]})
    >>> t_closeness(df, ["age"], "dx")
    0.25
    """
    if len(df) == 0:
        return 0.0
    _, counts, overall, ordered = _counts(df, qi, sensitive)
    return float(class_emd(counts, overall, ordered).max())
