"""Column typing for synthetic tables: detect kinds, encode to model space, decode back.

Every input column is read as text (:func:`secured_bio._csv.read_csv_strings`) and given one
kind, checked on *every* value so that decoding gives back the input's exact text format:

``integer``
    ``-?digits`` without leading zeros (``"06000"`` is not an integer: it stays a category).
``numeric``
    decimals (``-?digits.digits``) or scientific notation; the number of decimals written
    back stays within the observed minimum and maximum.
``date``
    one of :data:`DATE_FORMATS`, checked by a strict round trip; modelled as day numbers.
``boolean``
    two tokens such as ``True``/``False`` or ``yes``/``no`` (case kept as observed).
``categorical``
    any other text with few distinct values.

A text column whose values are nearly all distinct (identifiers such as ``patient_id``, free
text) is **refused** (:class:`~secured_bio.errors.SchemaError`): a generator would either copy
the values (a leak) or invent meaningless ones. Drop it explicitly with ``drop=``; the output
then has the input's other columns, in order.

Numeric, integer and date columns with at most :data:`DISCRETE_MAX_LEVELS` distinct values
(binary outcomes, scaled sex codes) are modelled as categories of their observed tokens.
Empty fields are missing values: a category of their own for discrete columns, and a separate
``<name>#missing`` indicator variable for continuous ones.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from secured_bio.errors import InputError, SchemaError, UnknownColumnError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ColumnSpec",
    "TableSchema",
    "Variable",
    "infer_schema",
    "DATE_FORMATS",
    "DISCRETE_MAX_LEVELS",
    "IDENTIFIER_UNIQUE_FRACTION",
]

Kind = Literal["integer", "numeric", "date", "boolean", "categorical"]

#: Date formats recognised (a column must round-trip every value through one of them).
DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y%m%d")
#: Number-like columns with at most this many distinct values are modelled as categories.
DISCRETE_MAX_LEVELS = 10
#: A text column with more than this fraction of distinct values (and > 20 of them) is refused.
IDENTIFIER_UNIQUE_FRACTION = 0.5

_INT_RE = re.compile(r"^-?(0|[1-9][0-9]*)$")
# no leading zeros: "06000" is a code (postcode), not a number
_DEC_RE = re.compile(r"^-?(0|[1-9][0-9]*)(\.([0-9]+))?$")
_SCI_RE = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]*)?[eE][+-]?[0-9]+$")
_BOOL_PAIRS = ({"true", "false"}, {"yes", "no"}, {"t", "f"}, {"y", "n"})
_EPOCH = _dt.date(1970, 1, 1)


@dataclass(frozen=True)
class Variable:
    """One variable of the model matrix: a column's values or its missing-value indicator."""

    name: str
    column: str
    discrete: bool
    n_levels: int = 0  # discrete only


@dataclass(frozen=True)
class ColumnSpec:
    """How one column is typed, modelled and written back.

    Attributes
    ----------
    name
        Column name.
    kind
        ``integer``, ``numeric``, ``date``, ``boolean`` or ``categorical``.
    discrete
        Modelled as categories (``categories`` holds the observed tokens, sorted).
    categories
        Observed tokens of a discrete column (numeric order for number-like columns).
    low, high
        Observed range of a continuous column in model units (days for dates).
    has_missing
        Whether some fields are empty.
    min_decimals, max_decimals, scientific
        Number format of a ``numeric`` column.
    date_format
        ``strftime`` format of a ``date`` column.
    """

    name: str
    kind: Kind
    discrete: bool
    categories: tuple[str, ...] = ()
    low: float = 0.0
    high: float = 0.0
    has_missing: bool = False
    min_decimals: int = 0
    max_decimals: int = 0
    scientific: bool = False
    date_format: str = ""

    def to_number(self, token: str) -> float:
        """Parse one non-empty token of a continuous column to model units.

        Raises
        ------
        InputError
            If the token does not have the column's format (the value is not shown).

        Examples
        --------
        >>> ColumnSpec("d", "date", False, date_format="%Y-%m-%d").to_number("1970-01-03")
        2.0
        """
        try:
            if self.kind == "date":
                return float((_dt.datetime.strptime(token, self.date_format).date()
                              - _EPOCH).days)
            return float(token)
        except ValueError as e:
            raise InputError("value does not have the column's format", where=self.name,
                             expected=self._describe(), got="another format",
                             fix="write the value like the column's other values") from e

    def format_numbers(self, values: np.ndarray) -> list[str]:
        """Write model-unit numbers back in the column's text format (no range checks).

        Examples
        --------
        >>> spec = ColumnSpec("x", "numeric", False, min_decimals=1, max_decimals=3)
        >>> spec.format_numbers(np.array([1.0, 2.34567]))
        ['1.0', '2.346']
        """
        if self.kind == "date":
            return [(_EPOCH + _dt.timedelta(days=int(round(v)))).strftime(self.date_format)
                    for v in values]
        if self.kind == "integer":
            return [str(int(round(v))) for v in values]
        if self.scientific:  # Python's repr, as pandas and csv writers print floats
            return [repr(float(v)) for v in values]
        out = []
        for v in values:
            # shortest text that reads back as the number, at most max_decimals decimals
            s = np.format_float_positional(float(v), precision=self.max_decimals, unique=True,
                                           trim="-")
            head, _, tail = s.partition(".")
            tail = tail.ljust(self.min_decimals, "0")
            s = f"{head}.{tail}" if tail else head
            if s.startswith("-") and float(s) == 0.0:  # no "-0.0" for tiny negatives
                s = s[1:]
            out.append(s)
        return out

    def _describe(self) -> str:
        if self.kind == "date":
            return f"a date like {self.date_format}"
        return f"a {self.kind} value"


@dataclass(frozen=True)
class TableSchema:
    """The typed columns of a table, in input order, and its model variables.

    Build it with :func:`infer_schema`.
    """

    columns: tuple[ColumnSpec, ...]
    dropped: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        """Column names in input order (dropped columns excluded)."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        """Return the spec of column ``name``.

        Raises
        ------
        SchemaError
            If there is no such column (with a "did you mean" hint).
        """
        for c in self.columns:
            if c.name == name:
                return c
        from secured_bio.errors import did_you_mean

        hint = did_you_mean(name, self.names)
        where = "dropped column" if name in self.dropped else "unknown column"
        raise UnknownColumnError(f"{where} '{name}'", where="table",
                                 expected="one of the table's "
                          f"{len(self.columns)} columns", got=f"'{name}'",
                          fix=hint or "check the column name (case matters)")

    @property
    def variables(self) -> list[Variable]:
        """Model variables: one per column, and ``<name>#missing`` for gaps.

        The indicator exists only for continuous columns with empty fields.
        """
        out: list[Variable] = []
        for c in self.columns:
            if c.discrete:
                out.append(Variable(c.name, c.name, True, len(c.categories)))
            else:
                out.append(Variable(c.name, c.name, False))
                if c.has_missing:
                    out.append(Variable(f"{c.name}#missing", c.name, True, 2))
        return out

    def encode(self, table: pd.DataFrame, *, seed: int = 0, impute: str = "random"
               ) -> np.ndarray:
        """Encode a text table into the float model matrix (n rows x len(variables)).

        Discrete variables hold category codes; continuous ones hold numbers in model units
        (missing ones are flagged in ``#missing`` and filled with a random observed value, or
        with ``impute="midpoint"`` the middle of the column's range: then each row's encoding
        depends on that row alone, which differential privacy's sensitivity bounds need).

        Raises
        ------
        SchemaError
            If a column is missing or a category was not seen when the schema was built.
        """
        rng = np.random.default_rng(seed)
        n = len(table)
        cols: list[np.ndarray] = []
        for c in self.columns:
            if c.name not in table.columns:
                raise SchemaError("column missing from the table", where=c.name,
                                  expected="the schema's columns", got="no such column",
                                  fix="use the table the schema was built from")
            tokens = table[c.name].astype(str).str.strip().to_numpy()
            if c.discrete:
                index = {t: i for i, t in enumerate(c.categories)}
                codes = np.array([index.get(t, -1) for t in tokens], dtype=float)
                if (codes < 0).any():
                    raise SchemaError("value outside the column's categories", where=c.name,
                                      expected=f"one of {len(c.categories)} categories",
                                      got=f"{int((codes < 0).sum())} other value(s)")
                cols.append(codes)
                continue
            missing = tokens == ""
            values = np.full(n, np.nan)
            values[~missing] = [c.to_number(t) for t in tokens[~missing]]
            if missing.any() and impute == "midpoint":
                values[missing] = (c.low + c.high) / 2
            elif missing.any():
                observed = values[~missing]
                values[missing] = (rng.choice(observed, size=int(missing.sum()))
                                   if observed.size else 0.0)
            cols.append(values)
            if c.has_missing:
                cols.append(missing.astype(float))
        return np.column_stack(cols) if cols else np.zeros((n, 0))

    def decode(self, matrix: np.ndarray) -> pd.DataFrame:
        """Decode a model matrix to a text table with the schema's columns, in order.

        Continuous values are clipped to the observed range and written in the column's
        format (integers and dates rounded); codes map back to their tokens.
        """
        import pandas as pd

        data: dict[str, list[str]] = {}
        j = 0
        for c in self.columns:
            col = matrix[:, j]
            j += 1
            if c.discrete:
                codes = np.clip(np.rint(col), 0, len(c.categories) - 1).astype(int)
                data[c.name] = [c.categories[k] for k in codes]
                continue
            text = c.format_numbers(np.clip(col, c.low, c.high))
            if c.has_missing:
                miss = matrix[:, j] >= 0.5
                j += 1
                text = ["" if m else t for t, m in zip(text, miss, strict=True)]
            data[c.name] = text
        return pd.DataFrame(data, columns=self.names, dtype=str)

    def to_dict(self) -> dict[str, object]:
        """Describe the schema for JSON (names, kinds, counts; never values)."""
        return {
            "columns": [{"name": c.name, "kind": c.kind, "discrete": c.discrete,
                         "levels": len(c.categories) if c.discrete else None,
                         "has_missing": c.has_missing} for c in self.columns],
            "dropped": list(self.dropped),
        }


def _number_key(token: str) -> tuple[int, float, str]:
    try:
        return (0, float(token), token)
    except ValueError:
        return (1, 0.0, token)


def _detect(name: str, tokens: np.ndarray) -> ColumnSpec:
    present = tokens[tokens != ""]
    has_missing = present.size < tokens.size
    uniq = sorted(set(present.tolist()))
    n_uniq = len(uniq)

    def discrete(kind: Kind) -> ColumnSpec:
        cats = set(uniq) | ({""} if has_missing else set())
        return ColumnSpec(name, kind, True, tuple(sorted(cats, key=_number_key)),
                          has_missing=has_missing)

    if n_uniq == 0:
        return discrete("categorical")
    if all(_INT_RE.match(t) for t in uniq):
        if n_uniq <= DISCRETE_MAX_LEVELS:
            return discrete("integer")
        vals = np.array([float(t) for t in uniq])
        return ColumnSpec(name, "integer", False, low=float(vals.min()), high=float(vals.max()),
                          has_missing=has_missing)
    dec = [_DEC_RE.match(t) for t in uniq]
    sci = [bool(_SCI_RE.match(t)) for t in uniq]
    if all(m is not None or s for m, s in zip(dec, sci, strict=True)):
        if n_uniq <= DISCRETE_MAX_LEVELS:
            return discrete("numeric")
        vals = np.array([float(t) for t in uniq])
        places = [len(m.group(3) or "") for m in dec if m is not None]
        return ColumnSpec(name, "numeric", False, low=float(vals.min()), high=float(vals.max()),
                          has_missing=has_missing, min_decimals=min(places, default=0),
                          max_decimals=max(places, default=6), scientific=any(sci))
    for fmt in DATE_FORMATS:
        try:
            days = [(_dt.datetime.strptime(t, fmt).date() - _EPOCH).days for t in uniq]
        except ValueError:
            continue
        if all((_EPOCH + _dt.timedelta(days=d)).strftime(fmt) == t
               for d, t in zip(days, uniq, strict=True)):
            return ColumnSpec(name, "date", False, low=float(min(days)), high=float(max(days)),
                              has_missing=has_missing, date_format=fmt)
    lowered = {t.lower() for t in uniq}
    if n_uniq == 2 and any(lowered == pair for pair in _BOOL_PAIRS):
        return discrete("boolean")
    if n_uniq > 20 and n_uniq > IDENTIFIER_UNIQUE_FRACTION * present.size:
        raise SchemaError(
            "unsupported column: free text or an identifier", where=name,
            expected=f"numbers, dates or categories (at most {IDENTIFIER_UNIQUE_FRACTION:.0%} "
                     "distinct text values)",
            got=f"{n_uniq} distinct text values in {present.size} rows",
            fix=f"drop it (drop=['{name}'] or --drop {name}): identifiers must not be "
                "synthesised from real ones")
    return discrete("categorical")


def infer_schema(table: pd.DataFrame, *, drop: Iterable[str] = ()) -> TableSchema:
    """Type every column of a text table (see the module docstring for the rules).

    Parameters
    ----------
    table
        The input table, every column as ``str`` (empty fields are ``""``).
    drop
        Columns to leave out (e.g. identifiers); they are absent from the output.

    Returns
    -------
    TableSchema
        The typed columns, in input order.

    Raises
    ------
    InputError
        If the table has no rows or no columns (after ``drop``).
    SchemaError
        If a column to drop does not exist, or a column is free text / an identifier.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"zip": ["06000", "75001"], "age": ["4", "41"],
    ...                   "day": ["2024-01-31", "2025-02-01"]})
    >>> [(c.name, c.kind) for c in infer_schema(t).columns]
    [('zip', 'categorical'), ('age', 'integer'), ('day', 'date')]
    """
    drop = list(drop)
    for name in drop:
        if name not in table.columns:
            from secured_bio.errors import did_you_mean

            raise UnknownColumnError(f"column to drop '{name}' does not exist", where="drop",
                              expected="a column of the table", got=f"'{name}'",
                              fix=did_you_mean(name, [str(c) for c in table.columns])
                              or "check the column name")
    keep: Sequence[str] = [str(c) for c in table.columns if c not in drop]
    if len(table) == 0:
        raise InputError("table has no data rows", where="table", expected="at least 1 row",
                         got="0 rows", fix="check the input file")
    if not keep:
        raise InputError("table has no columns to synthesise", where="table",
                         expected="at least 1 column", got="0 columns",
                         fix="drop fewer columns")
    specs = tuple(_detect(c, table[c].astype(str).str.strip().to_numpy()) for c in keep)
    return TableSchema(specs, tuple(drop))
