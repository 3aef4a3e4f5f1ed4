"""Re-identification risk of a released table with quasi-identifiers.

Three attacker models (El Emam & Dankar 2008; El Emam, *Guide to the De-Identification of
Personal Health Information*, 2013; ARX documentation, "Risk analysis"):

prosecutor
    The attacker knows the target is in the release.  A record in an equivalence class of
    size ``f_j`` (records sharing all quasi-identifier values) is re-identified with
    probability ``1/f_j``.
journalist
    The attacker does not know whether the target is in the release and links with an
    identification database (the population).  The risk of a class is ``1/F_j``, with ``F_j``
    the number of population records that match it.
marketer
    The attacker wants to re-identify as many records as possible: the expected share of
    records re-identified, ``J/n`` without a population table (``J`` classes, ``n``
    records), ``(1/n) sum_j f_j/F_j`` with one.

Generalized values (``[30-39]``, ``*``, ``751**``) are categories for the equivalence
classes; when a population table holds raw values, a raw value matches a generalized one
when it lies in the interval, fits the mask, or the value is ``*`` (:func:`value_matches`).

Population uniqueness is estimated with Zayatz's model (Zayatz 1991, "Estimation of the
percent of unique population elements on a microdata file using the sample", US Census
Bureau SRD report RR-91/08; implemented in ARX as ``ModelZayatz``; Dankar et al. 2012,
"Estimating the re-identification risk of clinical data sets", BMC Med Inform Decis Mak
12:66, compare it with Pitman's and the SNB model).
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from secured_bio.errors import ConfigError, InputError, UnknownColumnError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FORMAT", "FORMAT_VERSION", "reidentification_risk", "value_matches",
           "population_uniqueness"]

FORMAT = "secured_bio.risk_report"
FORMAT_VERSION = "1"

#: Column name of the class sizes in class tables (not a plausible data column name).
CLASS_SIZE = "__secured_bio_class_size__"

#: Record-level risk above which a record counts as "at risk" (0.2 = class smaller than 5,
#: the usual k=5 threshold; El Emam 2013).
DEFAULT_THRESHOLD = 0.2

_NUM = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_DATE = r"\d{4}-\d{2}-\d{2}"
_DATE_PREFIX = re.compile(r"^\d{4}(?:-\d{2})?$")
_INTERVAL = re.compile(
    rf"^\s*([\[(])\s*({_DATE}|{_NUM})\s*(?:,|;|/|\s-\s|-|\.\.)\s*({_DATE}|{_NUM})\s*([\])])\s*$"
)


# ----------------------------------------------------------------------- shared helpers
def check_table(table: Any, name: str, columns: Sequence[str] = ()) -> pd.DataFrame:
    """Return ``table`` as a DataFrame of strings; check it is non-empty and has ``columns``.

    Raises
    ------
    InputError
        If ``table`` is not a DataFrame, or has no rows.
    UnknownColumnError
        If a column is missing (with a "did you mean" hint); also a SchemaError.
    """
    import pandas as pd

    if not isinstance(table, pd.DataFrame):
        raise InputError(f"{name} is not a table", where=name, expected="a pandas DataFrame",
                         got=f"a {type(table).__name__}", fix="read the CSV with pandas")
    if len(table) == 0:
        raise InputError(f"{name} table is empty", where=name, expected="at least 1 row",
                         got="0 rows", fix="check the file holds data rows")
    have = [str(c) for c in table.columns]
    for col in columns:
        if col not in have:
            hint = did_you_mean(col, have)
            raise UnknownColumnError(
                f"column missing from the {name} table", where=f"{name}:{col}",
                expected=f"a column named '{col}'", got=f"{len(have)} other columns",
                fix=hint or f"choose among: {', '.join(have)}",
            )
    out = table.copy()
    out.columns = have
    return out.astype(str)


def check_columns(qi: Sequence[str] | str, name: str = "qi") -> list[str]:
    """Return the quasi-identifier names as a list; refuse an empty or duplicated list."""
    cols = [c.strip() for c in qi.split(",")] if isinstance(qi, str) else [str(c) for c in qi]
    cols = [c for c in cols if c]
    if not cols:
        raise ConfigError("no quasi-identifiers given" if name == "qi" else "no columns given",
                          where=name,
                          expected="at least 1 column name", got="0",
                          fix="pass the quasi-identifier columns, e.g. age,sex,postcode")
    if len(set(cols)) != len(cols):
        raise ConfigError("quasi-identifier listed twice", where=name,
                          expected="distinct column names", got=f"{len(cols)} names, "
                          f"{len(set(cols))} distinct", fix="remove the duplicate")
    return cols


def _number(s: str) -> float | None:
    """Parse a number or an ISO date (as a day ordinal); None if neither."""
    s = s.strip()
    if re.fullmatch(_NUM, s):
        return float(s)
    if re.fullmatch(_DATE, s):
        try:
            return float(_dt.date.fromisoformat(s).toordinal())
        except ValueError:
            return None
    return None


def parse_interval(s: str) -> tuple[float, float, bool] | None:
    """Parse ``[a-b]``, ``[a, b)``, ``[2024-01-01/2024-03-31]``: (low, high, high_closed).

    Examples
    --------
    >>> parse_interval("[30-39]")
    (30.0, 39.0, True)
    >>> parse_interval("[30, 40)")
    (30.0, 40.0, False)
    >>> parse_interval("751**") is None
    True
    """
    m = _INTERVAL.match(s)
    if not m:
        return None
    lo, hi = _number(m.group(2)), _number(m.group(3))
    if lo is None or hi is None:
        return None
    return lo, hi, m.group(4) == "]"


def value_matches(raw: str, released: str) -> bool:
    """Whether a raw value is compatible with a (possibly generalized) released value.

    Equal strings match; ``*`` matches anything; a mask such as ``751**`` matches values of
    the same length that agree on the unmasked characters; an interval ``[30-39]`` (numbers
    or ISO dates; ``)`` marks an open upper end) matches the values inside it; a date cut to
    its year (``2024``) or month (``2024-03``) matches the dates in it.

    Examples
    --------
    >>> value_matches("34", "[30-39]"), value_matches("75123", "751**"), value_matches("F", "*")
    (True, True, True)
    >>> value_matches("40", "[30, 40)"), value_matches("75223", "751**")
    (False, False)
    >>> value_matches("2024-03-12", "2024"), value_matches("2024-03-12", "2024-04")
    (True, False)
    >>> value_matches("2024-03-12", "[2020-2029]")
    True
    >>> value_matches("2024-03-12", "[2024-01-01/2024-02-29]")
    False
    """
    if raw == released or released.strip() == "*":
        return True
    if "*" in released and len(raw) == len(released):
        return all(g == "*" or g == r for r, g in zip(raw, released, strict=True))
    if _DATE_PREFIX.match(released) and raw.startswith(released + "-"):
        return True  # a date cut to its year or month
    iv = parse_interval(released)
    if iv is not None:
        r = raw.strip()
        if re.fullmatch(_DATE, r) and not re.search(_DATE, released):
            x: float | None = float(r[:4])  # a year interval ([2020-2029]) covers dates by year
        else:
            x = _number(r)
        if x is None:
            return False
        lo, hi, closed = iv
        return lo <= x <= hi if closed else lo <= x < hi
    return False


def match_counts(released: pd.DataFrame, population: pd.DataFrame,
                 qi: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Return the released equivalence classes (sizes in :data:`CLASS_SIZE`) and their ``F``.

    ``F`` counts the population records whose raw quasi-identifiers all match the class.
    """
    classes = released.groupby(list(qi), sort=False).size().rename(CLASS_SIZE).reset_index()
    counts = np.zeros(len(classes), dtype=np.int64)
    for _, ok in compat_blocks(population, classes, qi):
        counts += ok.sum(axis=0)
    return classes, counts


def compat_blocks(raw: pd.DataFrame, classes: pd.DataFrame, qi: Sequence[str], *,
                  max_cells: int = 20_000_000) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield (rows, boolean block rows x classes): the record's quasi-identifiers all match.

    :func:`value_matches` runs once per pair of distinct values, and only for generalized
    class values; blocks hold at most ``max_cells`` cells, so memory stays bounded.
    """
    tables = []
    for col in qi:
        pu, pinv = np.unique(raw[col].to_numpy(dtype=str), return_inverse=True)
        cu, cinv = np.unique(classes[col].to_numpy(dtype=str), return_inverse=True)
        compat = pu[:, None] == cu[None, :]
        for j, c in enumerate(cu):
            if _is_generalized(str(c)):
                compat[:, j] = [value_matches(str(p), str(c)) for p in pu]
        tables.append((compat, pinv, cinv))
    step = max(1, max_cells // max(1, len(classes)))
    for start in range(0, len(raw), step):
        rows = slice(start, min(start + step, len(raw)))
        ok = np.ones((rows.stop - rows.start, len(classes)), dtype=bool)
        for compat, pinv, cinv in tables:
            ok &= compat[np.ix_(pinv[rows], cinv)]
        yield rows, ok


def _is_generalized(s: str) -> bool:
    """Whether a value may stand for other values (mask, interval, date cut)."""
    return "*" in s or parse_interval(s) is not None or bool(_DATE_PREFIX.match(s))


# ----------------------------------------------------------------------- population model
def population_uniqueness(class_sizes: Sequence[int] | np.ndarray, *,
                          population_size: int | None = None) -> dict[str, Any]:
    """Estimate how many sample uniques are also unique in the population (Zayatz 1991).

    Zayatz's model takes the sample's distribution of class sizes as the population's:
    with ``p_i`` the share of sample classes of size ``i`` and ``h(i)`` the hypergeometric
    probability that a population class of size ``i`` leaves exactly 1 record in a sample of
    ``n`` out of ``N``, ``P(population unique | sample unique) = p_1 h(1) / sum_i p_i h(i)``.
    The estimated number of population uniques in the release is ``f_1`` times that.
    ARX uses this model for sampling fractions above 10% (Dankar et al. 2012's rule).

    Parameters
    ----------
    class_sizes
        Size of every equivalence class in the release (each >= 1).
    population_size
        Size ``N`` of the population the release was sampled from (>= the sample size).
        None means the release is the whole population: population uniques = sample uniques.

    Returns
    -------
    dict
        ``model``, ``sampling_fraction``, ``population_size``, ``sample_uniques``,
        ``probability_unique_given_sample_unique``, ``population_uniques`` (expected count)
        and ``share`` (population uniques / records in the release), plus ``note``.

    Raises
    ------
    ConfigError
        If ``population_size`` is smaller than the sample.

    Examples
    --------
    >>> r = population_uniqueness([1, 1, 2, 3])
    >>> r["population_uniques"], r["share"]
    (2.0, 0.2857142857142857)
    >>> population_uniqueness([1, 1, 2, 3], population_size=70)["population_uniques"] < 2
    True
    """
    sizes = np.asarray(class_sizes, dtype=np.int64)
    n = int(sizes.sum())
    u1 = int((sizes == 1).sum())
    if population_size is None:
        big_n, note = n, "no population size given: the release is taken as the population"
    else:
        big_n, note = int(population_size), None
        if big_n < n:
            raise ConfigError("population smaller than the release", where="population_size",
                              expected=f"at least {n} (the records released)",
                              got=str(big_n), fix="give the size of the source population")
    if u1 == 0:
        prob = 0.0
    else:
        values, counts = np.unique(sizes, return_counts=True)
        p = counts / counts.sum()
        # h(i): P(exactly 1 of a population class of size i is in a sample of n from N).
        h = np.array([_hypergeom_one(big_n, int(i), n) for i in values])
        den = float((p * h).sum())
        prob = float(p[values == 1][0] * h[values == 1][0] / den) if den > 0 else 0.0
    uniques = u1 * prob
    return {"model": "zayatz", "population_size": big_n, "sampling_fraction": n / big_n,
            "sample_uniques": u1, "probability_unique_given_sample_unique": prob,
            "population_uniques": uniques, "share": uniques / n, "note": note}


def _hypergeom_one(big_n: int, size: int, n: int) -> float:
    """P(exactly 1 of ``size`` marked items in a sample of ``n`` drawn from ``big_n``)."""
    if size > big_n or n - 1 > big_n - size:
        return 0.0

    def lchoose(a: int, b: int) -> float:
        return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)

    return size * math.exp(lchoose(big_n - size, n - 1) - lchoose(big_n, n))


# ----------------------------------------------------------------------- risk models
def _summary(risk: np.ndarray, threshold: float) -> dict[str, Any]:
    return {"highest": float(risk.max()), "average": float(risk.mean()),
            "records_at_risk": float((risk > threshold).mean()),
            "records_at_risk_count": int((risk > threshold).sum()), "threshold": threshold}


def reidentification_risk(
    released: pd.DataFrame,
    *,
    qi: Sequence[str] | str,
    population: pd.DataFrame | None = None,
    population_size: int | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """Prosecutor, journalist and marketer risk, sample uniques and population uniqueness.

    Risk models as in El Emam & Dankar (2008, "Protecting privacy using k-anonymity",
    JAMIA 15:627) and ARX's risk analysis: record-level prosecutor risk ``1/f_j``, journalist
    risk ``1/F_j`` against a population table, marketer risk the expected share of records
    re-identified.  "Highest" is the largest record-level risk, "average" its mean over the
    released records, "records_at_risk" the share of records with risk above ``threshold``.

    Parameters
    ----------
    released
        The released table (values compared as strings; generalized values are categories).
    qi
        Quasi-identifier columns (a list or a comma-separated string).
    population
        Identification table the journalist links with (raw or generalized values; see
        :func:`value_matches`).  None: journalist risk equals prosecutor risk (with a note).
    population_size
        Size of the source population for the uniqueness estimate
        (:func:`population_uniqueness`); default: ``len(population)`` when a population table
        is given, else the release is the population.
    threshold
        Record-level risk above which a record is "at risk" (default 0.2, i.e. classes < 5).

    Returns
    -------
    dict
        ``format``, ``format_version``, ``n_records``, ``qi``, ``n_classes``, and the models
        ``prosecutor``, ``journalist``, ``marketer``, ``sample_uniques``,
        ``population_uniqueness``.

    Raises
    ------
    InputError
        If a table is empty or not a DataFrame.
    SchemaError
        If a quasi-identifier column is missing.
    ConfigError
        If ``qi`` is empty or ``threshold`` is outside [0, 1].

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"age": ["[30-39]"] * 3 + ["[40-49]"], "sex": ["F", "F", "F", "M"]})
    >>> r = reidentification_risk(t, qi=["age", "sex"])
    >>> r["prosecutor"]["highest"], r["prosecutor"]["average"], r["marketer"]["risk"]
    (1.0, 0.5, 0.5)
    >>> r["sample_uniques"]["count"]
    1
    """
    cols = check_columns(qi)
    if not 0.0 <= float(threshold) <= 1.0:
        raise ConfigError("risk threshold out of range", where="threshold",
                          expected="a value in [0, 1]", got=str(threshold),
                          fix="use e.g. 0.2 (classes smaller than 5 are at risk)")
    rel = check_table(released, "released", cols)
    n = len(rel)
    f_rec = rel.groupby(cols, sort=False)[cols[0]].transform("size").to_numpy(dtype=np.int64)
    classes = rel.groupby(cols, sort=False).size().to_numpy(dtype=np.int64)
    prosecutor = _summary(1.0 / f_rec, float(threshold))
    prosecutor["smallest_class"] = int(classes.min())
    uniques = int((classes == 1).sum())
    if population is None:
        journalist = dict(prosecutor)
        journalist["note"] = ("no population table: journalist risk is taken equal to the "
                              "prosecutor risk (an upper bound)")
        marketer = {"risk": len(classes) / n, "population": False}
        pop_size = population_size
    else:
        pop = check_table(population, "population", cols)
        table, big_f = match_counts(rel, pop, cols)
        f = table[CLASS_SIZE].to_numpy(dtype=np.int64)
        raised = int((big_f < f).sum())
        # The released people are in the population: a class cannot match fewer population
        # records than it holds (a smaller count means the table misses some of them).
        big_f = np.maximum(big_f, f)
        rec = np.repeat(1.0 / big_f, f)
        journalist = _summary(rec, float(threshold))
        journalist["smallest_population_class"] = int(big_f.min())
        journalist["population_records"] = len(pop)
        journalist["note"] = (f"{raised} classes matched fewer population records than they "
                              "hold; their count was raised to the class size"
                              if raised else None)
        marketer = {"risk": float((f / big_f).sum() / n), "population": True}
        pop_size = population_size if population_size is not None else max(len(pop), n)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "n_records": n,
        "qi": cols,
        "n_classes": len(classes),
        "prosecutor": prosecutor,
        "journalist": journalist,
        "marketer": marketer,
        "sample_uniques": {"count": uniques, "share": uniques / n},
        "population_uniqueness": population_uniqueness(classes, population_size=pop_size),
    }
