"""Generalization hierarchies for quasi-identifiers (ARX-style, full-domain).

A :class:`Hierarchy` maps every distinct value of one column (a *leaf*) to a label at each
level: level 0 is the value itself, the last level is ``*`` (suppressed).  Builders:

- :func:`interval_hierarchy`: numbers -> intervals of doubling width (``[30-39]``, ``[20-39]``...).
- :func:`date_hierarchy`: ISO dates -> month (``2024-03``) -> year -> decade (``[2020-2029]``).
- :func:`mask_hierarchy`: codes such as postcodes -> one masked character per level (``751**``).
- :func:`read_hierarchy_csv`: ARX hierarchy files (one row per value, one column per level).
- :func:`auto_hierarchy`: picks one of the above from the values.

Every node carries an information loss in [0, 1] (the normalized certainty penalty of Xu et
al. 2006, "Utility-based anonymization using local recoding", KDD): for ordered values
(numbers, dates) the width of the interval over the width of the domain; for categories the
number of leaves under the node minus one over the number of leaves minus one.

Values are handled as the strings read from the CSV (so ``06000`` keeps its leading zero).
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from secured_bio.errors import FormatError, InputError, InputFileNotFoundError

__all__ = [
    "Hierarchy",
    "interval_hierarchy",
    "date_hierarchy",
    "mask_hierarchy",
    "flat_hierarchy",
    "read_hierarchy_csv",
    "auto_hierarchy",
    "SUPPRESSED",
]

SUPPRESSED = "*"
"""Label of a fully generalized (suppressed) value."""


@dataclass(frozen=True)
class Hierarchy:
    """A generalization hierarchy for one column.

    Attributes
    ----------
    column
        Column name.
    kind
        ``interval``, ``date``, ``mask``, ``csv`` or ``flat``.
    leaves
        Distinct values (strings) in domain order (numeric, chronological or lexicographic).
    codes
        One int array per level: the node of each leaf at that level (level 0: identity).
    labels
        One list per level: the released label of each node.
    loss
        One float array per level: the information loss (NCP) of each node, in [0, 1].
    names
        One short description per level (``"value"``, ``"width 10"``, ``"month"``...).
    ordinal
        For ordered kinds (interval, date) the position of each leaf on its axis (number or
        day), used by Mondrian range labels; None otherwise.

    Examples
    --------
    >>> h = interval_hierarchy("age", ["31", "35", "42"], widths=[10])
    >>> h.n_levels, h.label_of("35", 1), h.label_of("35", 2)
    (3, '[30-39]', '*')
    """

    column: str
    kind: str
    leaves: tuple[str, ...]
    codes: tuple[NDArray[np.int64], ...]
    labels: tuple[tuple[str, ...], ...]
    loss: tuple[NDArray[np.float64], ...]
    names: tuple[str, ...]
    ordinal: NDArray[np.float64] | None = None

    @property
    def n_levels(self) -> int:
        """Number of levels, including level 0 (the values) and the top (``*``)."""
        return len(self.codes)

    @property
    def height(self) -> int:
        """Highest level index."""
        return len(self.codes) - 1

    def label_of(self, value: str, level: int) -> str:
        """Return the label of ``value`` at ``level`` (a KeyError-free lookup for docs/tests)."""
        i = self.leaves.index(value)
        return self.labels[level][int(self.codes[level][i])]

    def encode(self, values: NDArray[np.object_] | list[str], *, where: str = "") -> NDArray[
            np.int64]:
        """Return the leaf index of each value.

        Raises
        ------
        InputError
            If some values are not leaves of the hierarchy (the count is given, not values).
        """
        index = {v: i for i, v in enumerate(self.leaves)}
        arr = np.asarray(values, dtype=object)
        uniq, inv = np.unique(arr.astype(str), return_inverse=True)
        mapped = np.array([index.get(u, -1) for u in uniq], dtype=np.int64)
        missing = int((mapped < 0).sum())
        if missing:
            raise InputError(
                "the generalization hierarchy does not cover every value of the column",
                where=where or f"hierarchy of column '{self.column}'",
                expected="one hierarchy row per distinct value",
                got=f"{missing} distinct value(s) without a row",
                fix="add the missing values to the hierarchy file (one row each)",
            )
        return mapped[inv.reshape(-1)]


def _finish(column: str, kind: str, leaves: list[str], levels: list[list[str]],
            names: list[str], loss_fn: object = None,
            ordinal: NDArray[np.float64] | None = None) -> Hierarchy:
    """Build a Hierarchy from per-level leaf labels (level 0 = leaves); adds ``*`` on top."""
    levels = [list(leaves)] + [list(lv) for lv in levels]
    names = ["value"] + list(names)
    if len(set(levels[-1])) > 1 or levels[-1][0] != SUPPRESSED:
        levels.append([SUPPRESSED] * len(leaves))
        names.append("suppressed")
    if ordinal is None:
        # hierarchy order: sort the leaves by their path from the top, so that the leaves of
        # every node are contiguous (Mondrian cuts and labels rely on it)
        perm = sorted(range(len(leaves)), key=lambda i: tuple(lv[i] for lv in levels[::-1]))
        levels = [[lv[i] for i in perm] for lv in levels]
        leaves = levels[0]
    codes: list[NDArray[np.int64]] = []
    labels: list[tuple[str, ...]] = []
    losses: list[NDArray[np.float64]] = []
    n = len(leaves)
    for lv in levels:
        uniq, first, inv = np.unique(np.asarray(lv, dtype=object).astype(str),
                                     return_index=True, return_inverse=True)
        # keep nodes in domain order (order of their first leaf)
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        code = rank[inv.reshape(-1)].astype(np.int64)
        if (np.diff(code) < 0).any():
            raise FormatError(
                "the generalization hierarchy is not a tree", where=f"column '{column}'",
                expected="every label of a level under one label of the next level",
                got="a label under two different parents",
                fix="give each generalized label a single parent in the hierarchy file")
        node_labels = tuple(str(uniq[o]) for o in order)
        if callable(loss_fn):
            node_loss = np.array([loss_fn(code == j, lab) for j, lab in enumerate(node_labels)],
                                 dtype=np.float64)
        else:
            sizes = np.bincount(code, minlength=len(node_labels)).astype(np.float64)
            node_loss = (sizes - 1) / (n - 1) if n > 1 else np.zeros(len(node_labels))
        node_loss[[lab == SUPPRESSED for lab in node_labels]] = 1.0
        codes.append(code)
        labels.append(node_labels)
        losses.append(np.clip(node_loss, 0.0, 1.0))
    for lower, upper in zip(codes, codes[1:], strict=False):
        n_pairs = len(np.unique(lower * (int(upper.max()) + 1) + upper))
        if n_pairs != int(lower.max()) + 1:
            raise FormatError(
                "the generalization hierarchy is not a tree", where=f"column '{column}'",
                expected="every label of a level under one label of the next level",
                got="a label under two different parents",
                fix="give each generalized label a single parent in the hierarchy file")
    return Hierarchy(column=column, kind=kind, leaves=tuple(leaves), codes=tuple(codes),
                     labels=tuple(labels), loss=tuple(losses), names=tuple(names),
                     ordinal=ordinal)


def _distinct(values: object) -> list[str]:
    return sorted({str(v) for v in np.asarray(values, dtype=object).ravel()})


def _parse_numbers(column: str, leaves: list[str]) -> NDArray[np.float64]:
    try:
        x = np.array([float(v) for v in leaves], dtype=np.float64)
    except ValueError:
        x = np.array([np.nan])
    if not np.isfinite(x).all():
        raise InputError("a numeric quasi-identifier holds non-numeric or missing values",
                         where=f"column '{column}'", expected="finite numbers",
                         fix="clean the column or give a hierarchy file for it")
    return x


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def interval_hierarchy(column: str, values: object, *,
                       widths: list[float] | None = None) -> Hierarchy:
    """Intervals of increasing width for a numeric column.

    Intervals are aligned on multiples of the width; integer data get closed labels
    ``[30-39]``, other data half-open ones ``[30-40)``.  Each width must be a multiple of the
    previous one so that intervals nest.

    Parameters
    ----------
    column
        Column name.
    values
        The column's values (strings or numbers).
    widths
        Interval widths, increasing; default: a "nice" base width (about 1/10 of the range,
        1, 2 or 5 times a power of ten) doubled while more than one interval remains.

    Returns
    -------
    Hierarchy

    Raises
    ------
    InputError
        If a value is not a finite number, or the widths do not nest.

    Examples
    --------
    >>> h = interval_hierarchy("age", [str(a) for a in range(20, 60)])
    >>> [h.label_of("37", lv) for lv in range(h.n_levels)]
    ['37', '[35-39]', '[30-39]', '[20-39]', '[0-39]', '*']
    """
    leaves = _distinct(values)
    x = _parse_numbers(column, leaves)
    order = np.argsort(x, kind="stable")
    leaves = [leaves[i] for i in order]
    x = x[order]
    integer = bool(np.all(x == np.round(x)))
    lo, hi = float(x.min()), float(x.max())
    span = hi - lo
    if widths is None:
        raw = max(span / 10.0, 1.5 if integer else 1e-12)  # width 1 = the values
        p = 10.0 ** math.floor(math.log10(raw))
        base = next(m * p for m in (1, 2, 5, 10) if m * p >= raw)
        widths = [base]
        while math.floor(lo / (widths[-1] * 2)) != math.floor(hi / (widths[-1] * 2)):
            widths.append(widths[-1] * 2)  # stop before one interval covers all (= '*')
    for a, b in zip(widths, widths[1:], strict=False):
        if b <= a or abs(b / a - round(b / a)) > 1e-9:
            raise InputError("interval widths do not nest", where=f"column '{column}'",
                             expected="increasing widths, each a multiple of the previous",
                             got=f"{len(widths)} widths", fix="e.g. widths 5, 10, 20")
    levels, names = [], []
    for w in widths:
        start = np.floor(x / w) * w
        if integer:
            lv = [f"[{_fmt(s)}-{_fmt(s + w - 1)}]" for s in start]
        else:
            lv = [f"[{_fmt(s)}-{_fmt(s + w)})" for s in start]
        levels.append(lv)
        names.append(f"width {_fmt(w)}")

    def loss(mask: NDArray[np.bool_], label: str) -> float:
        if label == SUPPRESSED:
            return 1.0
        if span == 0 or not label.startswith("["):
            return 0.0
        a, b = _interval_bounds(label)
        return min((b - a) / span, 1.0)

    return _finish(column, "interval", leaves, levels, names, loss_fn=loss, ordinal=x)


def _interval_bounds(label: str) -> tuple[float, float]:
    body = label[1:-1]
    # a leading '-' is a negative lower bound
    cut = body.index("-", 1)
    return float(body[:cut]), float(body[cut + 1:])


def date_hierarchy(column: str, values: object) -> Hierarchy:
    """Day -> month -> year -> decade for ISO dates (``YYYY-MM-DD``).

    Raises
    ------
    InputError
        If a value is not an ISO date.

    Examples
    --------
    >>> h = date_hierarchy("d", ["2024-03-05", "2025-12-31"])
    >>> [h.label_of("2024-03-05", lv) for lv in range(h.n_levels)]
    ['2024-03-05', '2024-03', '2024', '[2020-2029]', '*']
    """
    leaves = _distinct(values)
    try:
        days = np.array([date.fromisoformat(v).toordinal() for v in leaves], dtype=np.float64)
    except ValueError as e:
        raise InputError("a date quasi-identifier holds values that are not ISO dates",
                         where=f"column '{column}'", expected="YYYY-MM-DD",
                         fix="reformat the column or give a hierarchy file for it") from e
    span = float(days.max() - days.min())
    month = [v[:7] for v in leaves]
    year = [v[:4] for v in leaves]
    decade = [f"[{v[:3]}0-{v[:3]}9]" for v in leaves]

    def loss(mask: NDArray[np.bool_], label: str) -> float:
        if span == 0 or label == SUPPRESSED or len(label) == 10:
            return 0.0 if label != SUPPRESSED else 1.0
        if label.startswith("["):
            a, b = date(int(label[1:5]), 1, 1), date(int(label[6:10]), 12, 31)
        elif len(label) == 4:
            a, b = date(int(label), 1, 1), date(int(label), 12, 31)
        else:
            y, m = int(label[:4]), int(label[5:7])
            a = date(y, m, 1)
            b = date(y + (m == 12), m % 12 + 1, 1)
            b = date.fromordinal(b.toordinal() - 1)
        return min((b.toordinal() - a.toordinal()) / span, 1.0)

    return _finish(column, "date", leaves, [month, year, decade],
                   ["month", "year", "decade"], loss_fn=loss, ordinal=days)


def mask_hierarchy(column: str, values: object) -> Hierarchy:
    """Mask codes (postcodes, ICD codes) from the right, one character per level.

    Examples
    --------
    >>> h = mask_hierarchy("postcode", ["75011", "75012", "69001"])
    >>> [h.label_of("75011", lv) for lv in range(h.n_levels)]
    ['75011', '7501*', '750**', '75***', '7****', '*']
    """
    leaves = _distinct(values)
    longest = max(len(v) for v in leaves)
    levels, names = [], []
    for j in range(1, longest):
        levels.append([v[:max(len(v) - j, 0)] + "*" * min(j, len(v)) for v in leaves])
        names.append(f"mask {j}")
    return _finish(column, "mask", leaves, levels, names)


def flat_hierarchy(column: str, values: object) -> Hierarchy:
    """Two levels: the value, or ``*``.

    Examples
    --------
    >>> flat_hierarchy("sex", ["F", "M"]).labels
    (('F', 'M'), ('*',))
    """
    return _finish(column, "flat", _distinct(values), [], [])


def read_hierarchy_csv(path: str | os.PathLike[str], column: str, values: object) -> Hierarchy:
    """Read an ARX hierarchy file: one row per value, columns = levels (``;`` or ``,``).

    The first column holds the values; a ``*`` level is added on top if the last column is
    not already all ``*``.  Rows for values absent from the data are allowed.

    Raises
    ------
    InputFileNotFoundError
        If the file does not exist.
    FormatError
        If the file is not UTF-8, is empty, has rows of different lengths or repeats a value.
    InputError
        If a value of the column has no row.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "eth.csv"
    >>> _ = p.write_text("White;European\\nAsian;Asian\\nBlack;African\\n")
    >>> h = read_hierarchy_csv(p, "eth", ["White", "Asian"])
    >>> h.labels[1], h.names[1]
    (('Asian', 'European'), 'csv column 2')
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileNotFoundError("hierarchy file not found", where=str(p),
                                     fix=f"add {column}.csv to the hierarchy folder")
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FormatError("hierarchy file is not UTF-8", where=f"{p} byte {e.start}",
                          fix="save it as UTF-8") from e
    first = text.splitlines()[0] if text.strip() else ""
    delim = ";" if first.count(";") >= first.count(",") else ","
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=delim) if r]
    if not rows:
        raise FormatError("hierarchy file is empty", where=str(p),
                          expected="one row per value: value;level1;level2...")
    width = len(rows[0])
    for i, r in enumerate(rows, start=1):
        if len(r) != width:
            raise FormatError("hierarchy file has rows of different lengths",
                              where=f"{p} line {i}", expected=f"{width} fields",
                              got=f"{len(r)} fields", fix="give every value all levels")
    table = {r[0]: r[1:] for r in rows}
    if len(table) != len(rows):
        raise FormatError("hierarchy file lists a value twice", where=str(p),
                          got=f"{len(rows) - len(table)} repeated row(s)",
                          fix="keep one row per value")
    leaves = _distinct(values)
    missing = sum(v not in table for v in leaves)
    if missing:
        raise InputError(
            "the generalization hierarchy does not cover every value of the column",
            where=f"{p} (column '{column}')", expected="one row per distinct value",
            got=f"{missing} distinct value(s) without a row",
            fix="add the missing values to the hierarchy file (one row each)",
        )
    levels = [[table[v][j] for v in leaves] for j in range(width - 1)]
    names = [f"csv column {j + 2}" for j in range(width - 1)]
    return _finish(column, "csv", leaves, levels, names)


def _looks_numeric(leaves: list[str]) -> bool:
    try:
        return all(math.isfinite(float(v)) for v in leaves)
    except ValueError:
        return False


def _looks_date(leaves: list[str]) -> bool:
    try:
        return all(len(v) == 10 and date.fromisoformat(v) is not None for v in leaves)
    except ValueError:
        return False


def auto_hierarchy(column: str, values: object) -> Hierarchy:
    """Pick a hierarchy from the values.

    ISO dates -> :func:`date_hierarchy`; codes of digits with leading zeros or of equal length
    >= 3 (postcodes) -> :func:`mask_hierarchy`; other numbers -> :func:`interval_hierarchy`;
    anything else -> :func:`flat_hierarchy` (give a hierarchy file for finer categories).

    Examples
    --------
    >>> [auto_hierarchy(c, v).kind for c, v in [("age", ["3", "40"]), ("zip", ["06000", "75011"]),
    ...  ("d", ["2024-01-02"]), ("sex", ["F", "M"])]]
    ['interval', 'mask', 'date', 'flat']
    """
    leaves = _distinct(values)
    if _looks_date(leaves):
        return date_hierarchy(column, leaves)
    digits = all(v.isdigit() for v in leaves)
    if digits and (any(len(v) > 1 and v.startswith("0") for v in leaves)
                   or (len({len(v) for v in leaves}) == 1 and len(leaves[0]) >= 5)):
        return mask_hierarchy(column, leaves)
    if _looks_numeric(leaves):
        return interval_hierarchy(column, leaves)
    return flat_hierarchy(column, leaves)
