"""Sequential CART synthesis in the style of R's synthpop (``method = "cart"``).

Nowok, Raab & Dibben 2016, "synthpop: Bespoke Creation of Synthetic Data in R" (J. Stat.
Softw. 74(11)); Reiter 2005, "Using CART to generate partially synthetic public use
microdata".  The model variables are visited in an order; the first is drawn from its
observed marginal, and each next one from the leaf of a classification or regression tree
fitted on the variables before it: a synthetic row is dropped down the tree and receives the
value of a random training row of the leaf it lands in (a draw from the leaf's empirical
distribution, as synthpop's ``syn.cart``).  Numeric draws are smoothed with a Gaussian kernel
(synthpop's ``smoothing = "density"``): noise with the column's bandwidth is added to every
draw except the values of a spike holding over 70 % of the rows, then clipped to the observed
range; this breaks the link between a synthetic value and the one training value it came from.
The bandwidth is Silverman's rule of thumb (R's ``bw.nrd0``) on the training values, where
synthpop uses Sheather-Jones on the synthetic ones.

Exact conditions: rows are drawn unconditionally and those meeting every condition are kept
(rejection sampling gives the model's conditional distribution); rows still missing after a
few rounds are drawn with each conditioned variable restricted, in its leaf, to the training
values that meet the condition (or to all such training values when the leaf has none).  The
report counts both kinds of rows.  Not differentially private.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from secured_bio.privacy.synthetic.conditions import Condition, rejection_sample
from secured_bio.privacy.synthetic.schema import Variable

__all__ = ["CartModel", "DEFAULT_MIN_LEAF", "SMOOTHING"]

#: Smallest number of training rows in a leaf (synthpop's ``minbucket``).
DEFAULT_MIN_LEAF = 5
#: Smoothing of numeric draws: ``density`` (Gaussian kernel) or ``none``.
SMOOTHING = ("density", "none")
_REJECTION_ROUNDS = 10


def _bandwidth(y: np.ndarray) -> float:
    """Silverman's rule of thumb (R's ``bw.nrd0``): 0.9 min(sd, IQR/1.34) n^(-1/5)."""
    if y.size < 2:
        return 0.0
    sd = float(np.std(y, ddof=1))
    q75, q25 = np.percentile(y, [75, 25])
    spread = min(sd, float(q75 - q25) / 1.34) or sd or (abs(float(y[0])) or 1.0)
    return 0.9 * spread * y.size ** -0.2


class _Node:
    """One visited variable: its tree (None for the first) and its leaves' training values."""

    def __init__(self, j: int, preds: list[int], x: np.ndarray, var: Variable, min_leaf: int,
                 seed: int) -> None:
        from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

        self.j, self.preds, self.discrete = j, preds, var.discrete
        y = x[:, j]
        self.tree: Any = None
        leaves = np.zeros(len(y), dtype=int)
        if preds and np.unique(y).size > 1:
            tree_cls = DecisionTreeClassifier if var.discrete else DecisionTreeRegressor
            self.tree = tree_cls(min_samples_leaf=min_leaf, random_state=seed)
            self.tree.fit(x[:, preds], y)
            leaves = self.tree.apply(x[:, preds])
        # training values grouped by leaf: leaf k owns y_sorted[start[k]:start[k] + count[k]]
        order = np.argsort(leaves, kind="stable")
        self.y_sorted = y[order]
        size = int(leaves.max()) + 1
        self.count = np.bincount(leaves, minlength=size)
        self.start = np.concatenate([[0], np.cumsum(self.count)[:-1]])
        self.low, self.high = float(y.min()), float(y.max())
        self.bandwidth = 0.0 if var.discrete else _bandwidth(y)
        values, counts = np.unique(y, return_counts=True)
        top = int(counts.argmax())
        # synthpop leaves a spike of > 70 % of the rows unsmoothed
        self.spike = float(values[top]) if counts[top] > 0.7 * len(y) else None

    def leaves(self, out: np.ndarray) -> np.ndarray:
        if self.tree is None:
            return np.zeros(out.shape[0], dtype=int)
        return np.asarray(self.tree.apply(out[:, self.preds]))

    def draw(self, out: np.ndarray, rng: np.random.Generator, smoothing: str,
             cond: Condition | None) -> np.ndarray:
        leaf = self.leaves(out)
        pick = self.start[leaf] + (rng.random(len(leaf)) * self.count[leaf]).astype(int)
        y = self.y_sorted[pick]
        if cond is not None:
            y = self._restrict(y, leaf, cond, rng)
        if smoothing == "density" and not self.discrete and self.bandwidth > 0:
            noisy = y if self.spike is None else y != self.spike
            y = np.where(noisy, y + self.bandwidth * rng.standard_normal(len(y)), y)
            y = np.clip(y, self.low, self.high)
            if cond is not None:
                y = np.clip(y, cond.low, cond.high)
        return y

    def _ok(self, y: np.ndarray, cond: Condition) -> np.ndarray:
        if cond.codes:
            return np.isin(np.rint(y), np.array(cond.codes, dtype=float))
        return (y >= cond.low) & (y <= cond.high)

    def _restrict(self, y: np.ndarray, leaf: np.ndarray, cond: Condition,
                  rng: np.random.Generator) -> np.ndarray:
        """Redraw values outside the condition from the leaf's (or all) values inside it."""
        bad = ~self._ok(y, cond)
        if not bad.any():
            return y
        y = y.copy()
        everywhere = self.y_sorted[self._ok(self.y_sorted, cond)]
        for k in np.unique(leaf[bad]):
            rows = np.flatnonzero(bad & (leaf == k))
            vals = self.y_sorted[self.start[k]:self.start[k] + self.count[k]]
            vals = vals[self._ok(vals, cond)]
            if vals.size == 0:
                vals = everywhere
            if vals.size:
                y[rows] = vals[rng.integers(0, vals.size, rows.size)]
            elif cond.codes:
                y[rows] = rng.choice(np.array(cond.codes, dtype=float), rows.size)
            else:  # no training value in the range: uniform inside it, within the data
                lo, hi = max(cond.low, self.low), min(cond.high, self.high)
                lo, hi = (lo, hi) if lo <= hi else (cond.low, cond.high)
                y[rows] = lo + rng.random(rows.size) * (hi - lo)
        return y


class CartModel:
    """Sequential CART synthesizer over a model matrix (see the module docstring).

    Parameters
    ----------
    x
        Encoded training matrix (rows x variables), as :meth:`TableSchema.encode` gives it.
    variables
        The model variables, in matrix order.
    order
        Visiting order as variable indices (a permutation of ``range(len(variables))``).
    min_leaf
        Minimum training rows per leaf.
    smoothing
        ``density`` or ``none``.
    seed
        Seed of the trees (ties between equally good splits).

    Examples
    --------
    >>> import numpy as np
    >>> from secured_bio.privacy.synthetic.schema import Variable
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=200)
    >>> x = np.column_stack([a, (a > 0).astype(float)])
    >>> m = CartModel(x, [Variable("a", "a", False), Variable("b", "b", True, 2)], [0, 1],
    ...               min_leaf=5, smoothing="density", seed=0)
    >>> out, _ = m.sample(500, {}, np.random.default_rng(1))
    >>> float(np.mean((out[:, 0] > 0) == (out[:, 1] == 1))) > 0.9
    True
    """

    def __init__(self, x: np.ndarray, variables: Sequence[Variable], order: Sequence[int], *,
                 min_leaf: int, smoothing: str, seed: int) -> None:
        self.d = len(variables)
        self.order = list(order)
        self.smoothing = smoothing
        self.nodes = [_Node(j, self.order[:i], x, variables[j], min_leaf, seed)
                      for i, j in enumerate(self.order)]

    def _draw(self, n: int, rng: np.random.Generator, conds: dict[int, Condition]
              ) -> np.ndarray:
        out = np.zeros((n, self.d))
        for node in self.nodes:
            out[:, node.j] = node.draw(out, rng, self.smoothing, conds.get(node.j))
        return out

    def sample(self, n: int, conds: dict[int, Condition], rng: np.random.Generator
               ) -> tuple[np.ndarray, dict[str, int]]:
        """Draw ``n`` rows meeting every condition; info counts rejection vs forced rows."""
        if not conds:
            return self._draw(n, rng, {}), {}
        return rejection_sample(lambda m: self._draw(m, rng, {}),
                                lambda m: self._draw(m, rng, conds), n, conds,
                                rounds=_REJECTION_ROUNDS)
