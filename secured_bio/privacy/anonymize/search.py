"""Searches for a release: optimal full-domain lattice search and Mondrian partitioning.

Both work on integer leaf codes (one column per quasi-identifier, see
:meth:`Hierarchy.encode`) and return, for every input record, the released label and its
information loss (NCP) per quasi-identifier, and whether the record is kept.

- :func:`lattice_search`: full-domain generalization (every value of a column is
  generalized to the same level) with record suppression, as ARX's optimal search (Kohlmayer
  et al. 2012, "Flash: efficient, stable and optimal k-anonymity"; El Emam et al. 2009, "A
  globally optimal k-anonymity method for the de-identification of health data").  Nodes of
  the lattice of level vectors are visited best-first on a lower bound of their information
  loss (branch and bound), and specializations of a failed node are skipped where the models
  are monotone (k-anonymity, distinct l-diversity).  The node returned has the least loss of
  all nodes that satisfy the models within the suppression limit - optimal.
- :func:`mondrian`: strict multidimensional partitioning (LeFevre, DeWitt & Ramakrishnan 2006,
  "Mondrian multidimensional k-anonymity").  ``plain=True`` is the published algorithm:
  split the widest (normalized) dimension at its median, trying the next dimension when the
  cut is not allowable.  ``plain=False`` (our default) also tries, when the median cut is not
  allowable, the allowable cut nearest to the median, so partitions keep splitting where plain
  Mondrian stops; this lowers information loss at the same privacy.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secured_bio._progress import track
from secured_bio.errors import ConfigError, InputError
from secured_bio.privacy.anonymize.hierarchies import Hierarchy
from secured_bio.privacy.anonymize.models import (
    PrivacyModels,
    class_counts,
    class_emd,
    class_ok,
)

__all__ = ["Problem", "Release", "lattice_search", "mondrian", "MAX_LATTICE_WORK"]

MAX_LATTICE_WORK = 200_000_000
"""Largest lattice nodes x records :func:`lattice_search` accepts by default (measured: about
90 s on one core when most nodes must be visited; use Mondrian beyond)."""


@dataclass(frozen=True)
class Problem:
    """What a search works on.

    Attributes
    ----------
    codes
        (records x quasi-identifiers) leaf indices into each hierarchy.
    hierarchies
        One hierarchy per quasi-identifier.
    sensitive
        Sensitive value code per record (None without l/t).
    n_values
        Number of distinct sensitive values.
    ordered
        Whether the sensitive attribute is numeric (ordered EMD).
    models
        The privacy models.
    max_suppressed
        Largest number of records that may be removed.
    """

    codes: NDArray[np.int64]
    hierarchies: tuple[Hierarchy, ...]
    sensitive: NDArray[np.int64] | None
    n_values: int
    ordered: bool
    models: PrivacyModels
    max_suppressed: int

    @property
    def n(self) -> int:
        """Number of records."""
        return int(self.codes.shape[0])


@dataclass
class Release:
    """A search's result.

    Attributes
    ----------
    labels
        Per quasi-identifier, the released label of every input record.
    loss
        (records x quasi-identifiers) NCP of each released cell; 1 for suppressed records.
    keep
        Whether each record is released (False: suppressed, removed).
    transformation
        What was applied (levels per column, or Mondrian's partition count).
    """

    labels: list[NDArray[np.object_]]
    loss: NDArray[np.float64]
    keep: NDArray[np.bool_]
    transformation: dict[str, Any] = field(default_factory=dict)


def _no_solution(p: Problem) -> InputError:
    return InputError(
        "no release satisfies the privacy models within the suppression limit",
        where="anonymize", expected=f"at most {p.max_suppressed} suppressed records",
        fix="lower k/l, raise t or --max-suppression, or give coarser hierarchies",
    )


def _dense_classes(columns: list[NDArray[np.int64]], sizes: list[int]
                   ) -> tuple[NDArray[np.int64], int]:
    """Class index of each record from several code columns (mixed radix, re-densified)."""
    key = np.zeros(len(columns[0]), dtype=np.int64)
    radix = 1
    for col, size in zip(columns, sizes, strict=True):
        if radix * size > 2**52:
            uniq, inv = np.unique(key, return_inverse=True)
            key, radix = inv.reshape(-1).astype(np.int64), len(uniq)
        key = key * size + col
        radix *= size
    uniq, inv = np.unique(key, return_inverse=True)
    return inv.reshape(-1).astype(np.int64), len(uniq)


def _suppress(p: Problem, classes: NDArray[np.int64], n_classes: int) -> NDArray[np.bool_] | None:
    """Return the records kept once violating classes are removed; None if over the limit."""
    sizes, counts = class_counts(classes, p.sensitive, n_classes, p.n_values)
    ok = class_ok(sizes, counts, p.models)
    if p.models.t is not None and counts is not None:
        # t depends on the distribution of the whole release, which changes as classes are
        # removed: iterate to a fixed point (a few rounds at most in practice).
        for _ in range(20):
            kept = counts[ok].sum(axis=0)
            if kept.sum() == 0:
                break
            emd = class_emd(counts, kept / kept.sum(), p.ordered)
            new = ok & (emd <= p.models.t + 1e-12)
            if (new == ok).all():
                break
            ok = new
        else:  # pragma: no cover - no fixed point reached
            return None
    n_sup = int(sizes[~ok].sum())
    if n_sup > p.max_suppressed or n_sup == p.n:
        return None
    return np.asarray(ok[classes], dtype=bool)


def lattice_search(p: Problem, *, max_nodes: int | None = None) -> Release:
    """Optimal full-domain generalization with record suppression.

    Minimizes the mean NCP over all input cells (suppressed records count 1 per cell), ties
    broken by the discernibility metric.  Each visited node costs a pass over the records, so
    the search suits a few quasi-identifiers (its lattice is the product of the hierarchies'
    heights); Mondrian scales to many.

    Parameters
    ----------
    p
        The problem.
    max_nodes
        Refuse lattices with more nodes (default: ``MAX_LATTICE_WORK`` / records, at least
        1000).

    Returns
    -------
    Release

    Raises
    ------
    ConfigError
        If the lattice has more than ``max_nodes`` nodes.
    InputError
        If no node satisfies the models within the suppression limit.

    Examples
    --------
    >>> from secured_bio.privacy.anonymize.hierarchies import interval_hierarchy
    >>> h = interval_hierarchy("age", ["31", "35", "42", "44"], widths=[10])
    >>> p = Problem(np.array([[0], [1], [2], [3]]), (h,), None, 0, False,
    ...             PrivacyModels(k=2), 0)
    >>> r = lattice_search(p)
    >>> r.transformation["levels"], list(r.labels[0])
    ({'age': 1}, ['[30-39]', '[30-39]', '[40-49]', '[40-49]'])
    """
    heights = [h.height for h in p.hierarchies]
    n_nodes = int(np.prod([h + 1 for h in heights], dtype=np.float64))
    if max_nodes is None:
        max_nodes = max(1000, MAX_LATTICE_WORK // max(p.n, 1))
    if n_nodes > max_nodes:
        raise ConfigError(
            "the generalization lattice is too large for the optimal search",
            where="--method lattice", expected=f"at most {max_nodes} nodes for {p.n} records",
            got=f"{n_nodes} nodes", fix="use --method mondrian, or fewer/coarser hierarchies",
        )
    q = len(heights)
    nodes = np.array(list(itertools.product(*[range(h + 1) for h in heights])),
                     dtype=np.int64).reshape(-1, q)
    # Lower bound of a node's loss: every record generalized to the node's levels and none
    # suppressed. It holds for the node and all its generalizations (cell losses grow up a
    # hierarchy, a suppressed cell costs 1), so best-first search on it can stop as soon as
    # the bound exceeds the best loss found: the result is optimal for any privacy model.
    level_sums = [np.array([float(h.loss[lv][h.codes[lv][p.codes[:, i]]].sum())
                            for lv in range(h.n_levels)]) for i, h in enumerate(p.hierarchies)]
    bound = np.column_stack([level_sums[i][nodes[:, i]] for i in range(q)]).sum(axis=1)
    # k-anonymity and distinct l-diversity with suppression are monotone: a node below a
    # failed node (a specialization of it) fails too. Entropy/recursive l-diversity and
    # t-closeness are not always (a merged class can get worse), so they get no such pruning.
    monotone = p.models.t is None and (p.models.l is None or p.models.l_kind == "distinct")
    failed = np.empty((0, q), dtype=np.int64)
    best: tuple[float, float, tuple[int, ...], NDArray[np.bool_]] | None = None
    evaluated = 0
    for j in track(np.argsort(bound, kind="stable"), "lattice nodes"):
        if best is not None and bound[j] > best[0] + 1e-9:
            break
        node = tuple(int(v) for v in nodes[j])
        if monotone and len(failed) and (failed >= nodes[j]).all(axis=1).any():
            continue
        evaluated += 1
        gen = [h.codes[lv][p.codes[:, i]] for i, (h, lv) in
               enumerate(zip(p.hierarchies, node, strict=True))]
        classes, n_classes = _dense_classes(gen, [len(h.labels[lv]) for h, lv in
                                                  zip(p.hierarchies, node, strict=True)])
        keep = _suppress(p, classes, n_classes)
        if keep is None:
            failed = np.vstack([failed, nodes[j][None, :]])
            continue
        n_sup = int((~keep).sum())
        loss = n_sup * q + sum(float(h.loss[lv][g][keep].sum()) for h, lv, g in
                               zip(p.hierarchies, node, gen, strict=True))
        sizes = np.bincount(classes[keep])
        dm = float((sizes.astype(np.float64) ** 2).sum()) + n_sup * p.n
        if best is None or (loss, dm) < (best[0] - 1e-9, best[1]) or (
                abs(loss - best[0]) <= 1e-9 and dm < best[1]):
            best = (loss, dm, node, keep)
    if best is None:
        raise _no_solution(p)
    _, _, node, keep = best
    labels, loss_cells = [], np.ones((p.n, q))
    for i, (h, lv) in enumerate(zip(p.hierarchies, node, strict=True)):
        g = h.codes[lv][p.codes[:, i]]
        labels.append(np.asarray(h.labels[lv], dtype=object)[g])
        loss_cells[:, i] = np.where(keep, h.loss[lv][g], 1.0)
    return Release(labels=labels, loss=loss_cells, keep=keep, transformation={
        "levels": {h.column: int(lv) for h, lv in zip(p.hierarchies, node, strict=True)},
        "level_names": {h.column: h.names[lv] for h, lv in zip(p.hierarchies, node, strict=True)},
        "lattice_nodes": n_nodes, "nodes_evaluated": evaluated,
    })


# --------------------------------------------------------------------------------- Mondrian
class _Allowable:
    """Checks whether a partition may stand on its own (k, l, t against the whole table)."""

    def __init__(self, p: Problem) -> None:
        self.p = p
        self.overall = (np.bincount(p.sensitive, minlength=p.n_values) / p.n
                        if p.sensitive is not None else None)

    def __call__(self, idx: NDArray[np.int64]) -> bool:
        p = self.p
        if len(idx) < p.models.k:
            return False
        if p.sensitive is None:
            return True
        counts = np.bincount(p.sensitive[idx], minlength=p.n_values)[None, :]
        if not class_ok(np.array([len(idx)]), counts, p.models)[0]:
            return False
        if p.models.t is not None:
            assert self.overall is not None
            return bool(class_emd(counts, self.overall, p.ordered)[0] <= p.models.t + 1e-12)
        return True


def _spans(p: Problem) -> list[tuple[NDArray[np.float64], float]]:
    out = []
    for h in p.hierarchies:
        pos = (h.ordinal if h.ordinal is not None
               else np.arange(len(h.leaves), dtype=np.float64))
        out.append((pos, float(pos.max() - pos.min()) or 1.0))
    return out


def mondrian(p: Problem, *, plain: bool = False) -> Release:
    """Strict Mondrian multidimensional partitioning (median cuts); see the module docstring.

    Raises
    ------
    InputError
        If the whole table does not satisfy the models (Mondrian does not suppress).

    Examples
    --------
    >>> from secured_bio.privacy.anonymize.hierarchies import interval_hierarchy
    >>> h = interval_hierarchy("age", ["31", "35", "42", "44"])
    >>> p = Problem(np.array([[0], [1], [2], [3]]), (h,), None, 0, False,
    ...             PrivacyModels(k=2), 0)
    >>> list(mondrian(p).labels[0])
    ['[31-35]', '[31-35]', '[42-44]', '[42-44]']
    """
    allowable = _Allowable(p)
    root = np.arange(p.n, dtype=np.int64)
    if not allowable(root):
        raise _no_solution(p)
    spans = _spans(p)
    stack, parts = [root], []
    while stack:
        idx = stack.pop()
        if len(idx) < 2 * p.models.k:  # no cut can leave k records on both sides
            parts.append(idx)
            continue
        sub = p.codes[idx]
        lo, hi = sub.min(axis=0), sub.max(axis=0)
        widths = [(spans[i][0][hi[i]] - spans[i][0][lo[i]]) / spans[i][1]
                  for i in range(len(spans))]
        split = None
        if plain:
            for i in np.argsort(widths, kind="stable")[::-1]:
                if hi[i] == lo[i]:
                    break
                cut = _cut(sub[:, i], idx, allowable, p.hierarchies[i], plain)
                if cut is not None:
                    split = cut[:2]
                    break
        else:
            # the dimension whose released label loses most (NCP, consistent with the metric;
            # leaves are in hierarchy order, so the lowest and highest leaf give the ancestor)
            ncp = [_loss_of(h, np.array([lo[i], hi[i]])) if hi[i] > lo[i] else 0.0
                   for i, h in enumerate(p.hierarchies)]
            for i in np.argsort(ncp, kind="stable")[::-1]:
                if hi[i] == lo[i]:
                    break
                cut = _cut(sub[:, i], idx, allowable, p.hierarchies[i], plain)
                if cut is not None:
                    split = cut[:2]
                    break
        if split is None:
            parts.append(idx)
        else:
            stack.extend(split)
    return _mondrian_release(p, parts, plain)


def _boundaries(h: Hierarchy, values: NDArray[np.int64]) -> NDArray[np.int64]:
    """Positions j where a cut between ``values[j]`` and ``values[j + 1]`` is allowed.

    Ordered columns (numbers, dates) may be cut anywhere.  Other columns are cut only between
    the children of the partition's lowest common ancestor in the hierarchy, so that each
    side is again one subtree and gets a hierarchy label (``751**``) - top-down
    specialization as in Fung, Wang & Yu 2005 (leaves are stored in hierarchy order).
    """
    if h.ordinal is not None:
        return np.arange(len(values) - 1)
    for lv in range(1, h.n_levels):
        nodes = h.codes[lv][values]
        if (nodes == nodes[0]).all():
            below = h.codes[lv - 1][values]
            return np.flatnonzero(below[1:] != below[:-1])
    return np.zeros(0, dtype=np.int64)  # pragma: no cover - the top is one node


def _cut(col: NDArray[np.int64], idx: NDArray[np.int64], allowable: _Allowable,
         h: Hierarchy, plain: bool
         ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], int] | None:
    lo = int(col.min())
    span = int(col.max()) - lo + 1
    if span <= 4 * len(col) + 1024:  # counting is O(n); np.unique sorts
        counts = np.bincount(col - lo, minlength=span)
        values = np.flatnonzero(counts) + lo
        counts = counts[counts > 0]
    else:
        values, counts = np.unique(col, return_counts=True)
    cuts = _boundaries(h, values)
    if len(cuts) == 0:
        return None
    cum = np.cumsum(counts)[cuts]
    if plain:
        # the median cut: the allowed boundary nearest the median record
        candidates = [int(cuts[np.argmin(np.abs(cum - len(col) / 2))])]
    else:
        k = allowable.p.models.k
        ok = (cum >= k) & (len(col) - cum >= k)
        order = np.argsort(np.abs(cum[ok] - len(col) / 2), kind="stable")
        candidates = [int(j) for j in cuts[ok][order][:4]]
    for j in candidates:
        left = col <= values[j]
        a, b = idx[left], idx[~left]
        if allowable(a) and allowable(b):
            return a, b, values, j
    return None


def _mondrian_release(p: Problem, parts: list[NDArray[np.int64]], plain: bool) -> Release:
    q = len(p.hierarchies)
    part = np.empty(p.n, dtype=np.int64)
    for j, idx in enumerate(parts):
        part[idx] = j
    labels, loss = [], np.zeros((p.n, q))
    for i, h in enumerate(p.hierarchies):
        col = p.codes[:, i]
        lo = np.full(len(parts), np.iinfo(np.int64).max)
        hi = np.full(len(parts), -1)
        np.minimum.at(lo, part, col)
        np.maximum.at(hi, part, col)
        if h.ordinal is not None:
            span = float(h.ordinal[-1] - h.ordinal[0]) or 1.0
            cell = (h.ordinal[hi] - h.ordinal[lo]) / span
            sep = "/" if h.kind == "date" else "-"
            text = [h.leaves[a] if a == b else f"[{h.leaves[a]}{sep}{h.leaves[b]}]"
                    for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]
        else:
            # leaves are in hierarchy order (every node's leaves contiguous), so the lowest
            # common ancestor of a partition is that of its lowest and highest leaf
            level = np.full(len(parts), h.height)
            for lv in range(h.height - 1, -1, -1):
                same = h.codes[lv][lo] == h.codes[lv][hi]
                level = np.where(same, lv, level)
            node = np.array([h.codes[lv][a] for lv, a in zip(level.tolist(), lo.tolist(),
                                                               strict=True)], dtype=np.int64)
            cell = np.array([h.loss[lv][nd] for lv, nd in zip(level.tolist(), node.tolist(),
                                                             strict=True)])
            text = [h.labels[lv][nd] for lv, nd in zip(level.tolist(), node.tolist(),
                                                        strict=True)]
        labels.append(np.asarray(text, dtype=object)[part])
        loss[:, i] = cell[part]
    return Release(labels=labels, loss=loss, keep=np.ones(p.n, dtype=bool), transformation={
        "partitions": len(parts),
        "variant": "plain (median cuts only)" if plain else "nearest allowable cut",
        "labels": {h.column: ("range" if h.ordinal is not None else "hierarchy")
                   for h in p.hierarchies},
    })


def _loss_of(h: Hierarchy, leaves: NDArray[np.int64]) -> float:
    """NCP of the label covering the sorted leaf codes ``leaves``."""
    if len(leaves) == 1:
        return 0.0
    if h.ordinal is not None:
        span = float(h.ordinal[-1] - h.ordinal[0])
        return float((h.ordinal[leaves[-1]] - h.ordinal[leaves[0]]) / span) if span else 0.0
    for lv in range(1, h.n_levels):
        nodes = h.codes[lv][leaves]
        if nodes[0] == nodes[-1] and (nodes == nodes[0]).all():
            return float(h.loss[lv][int(nodes[0])])
    return 1.0  # pragma: no cover - the top is one node
