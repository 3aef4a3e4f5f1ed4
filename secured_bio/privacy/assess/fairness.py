"""Fairness / bias audit of a binary classifier across sites and subgroups.

"Unbiased" is measured, not claimed: :func:`fairness_audit` reports, for every grouping
attribute (``site``, ``sex``, ``age_band``...) and every group, the discrimination (AUROC),
calibration (Brier score) and threshold metrics (accuracy, TPR, FPR, PPV, selection rate) of
the model, the worst group, and the gaps between groups:

- demographic-parity difference: max - min selection rate P[h(X)=1 | A=a]
  (Calders & Verwer 2010; fairlearn ``demographic_parity_difference``);
- equalized-odds difference: the larger of the TPR gap and the FPR gap
  (Hardt, Price & Srebro 2016; fairlearn ``equalized_odds_difference``, ``agg="worst_case"``);
- AUROC gap: max - min per-group AUROC.

The numbers equal fairlearn's and scikit-learn's where both are defined (see the reference
tests).  Two deliberate differences, both recorded in the output rather than hidden:

- a rate whose denominator is empty (TPR of a group without positives, FPR of a group without
  negatives, PPV without positive predictions, AUROC of a single-class group) is ``None`` with
  a reason, and is left out of the gaps; fairlearn counts such a TPR/FPR as 0, which would
  report a spurious gap;
- groups smaller than ``min_group_size`` are reported and flagged ``small`` but left out of
  the gaps and the worst-group choice (their rates are mostly noise); a gap over fewer than two
  groups is ``None`` with a reason, never a reassuring 0.

Privacy: the output holds group names (category values such as ``"F"`` or ``"site1"``),
counts and aggregate metrics, never individual rows.  A group of one or two people still
reveals their outcomes through its aggregates: the ``small`` flag marks such groups for
suppression before an audit is released outside the sites.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from secured_bio.errors import ConfigError, InputError

__all__ = ["FORMAT", "FORMAT_VERSION", "fairness_audit", "age_bands", "group_metrics"]

#: Format name and version written into every audit (readers check them).
FORMAT = "secured_bio.fairness_audit"
FORMAT_VERSION = "1"

#: Metrics reported per group, in output order.
_METRICS = ("auroc", "accuracy", "tpr", "fpr", "ppv", "selection_rate", "brier")


# ---------------------------------------------------------------- metrics of one group


def _auroc(y: np.ndarray, score: np.ndarray) -> float:
    """AUROC as the Mann-Whitney U statistic with mid-ranks for ties (Hanley & McNeil 1982)."""
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    # Mid-rank of each distinct score: the ranks it occupies are start+1 .. start+count.
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    ranks = (starts + (counts + 1) / 2.0)[inverse]
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    u = float(ranks[y].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def group_metrics(y: np.ndarray, score: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """Metrics of one group: counts, AUROC, accuracy, TPR, FPR, PPV, selection rate, Brier.

    Parameters
    ----------
    y
        Boolean truth (True = positive), 1-D, at least one element.
    score
        Predicted probability of the positive class, same length, finite, in [0, 1].
    pred
        Boolean prediction (``score >= threshold``), same length.

    Returns
    -------
    dict
        ``n``, ``n_positive``, the metrics in ``auroc, accuracy, tpr, fpr, ppv, selection_rate,
        brier`` (float, or None when undefined) and ``undefined``: metric name -> reason.

    Examples
    --------
    >>> y = np.array([True, False, True, False])
    >>> s = np.array([0.9, 0.2, 0.4, 0.6])
    >>> m = group_metrics(y, s, s >= 0.5)
    >>> m["auroc"], m["tpr"], m["fpr"], m["selection_rate"]
    (0.75, 0.5, 0.5, 0.5)
    >>> group_metrics(y[:1], s[:1], s[:1] >= 0.5)["undefined"]["auroc"]
    'single class in group: no negatives'
    """
    n = int(y.size)
    n_pos = int(y.sum())
    n_neg = n - n_pos
    tp = int((pred & y).sum())
    fp = int((pred & ~y).sum())
    undefined: dict[str, str] = {}
    out: dict[str, Any] = {"n": n, "n_positive": n_pos}
    if n_pos and n_neg:
        out["auroc"] = _auroc(y, score)
    else:
        out["auroc"] = None
        undefined["auroc"] = (
            f"single class in group: no {'negatives' if n_pos else 'positives'}"
        )
    out["accuracy"] = float((pred == y).mean())
    out["tpr"] = _ratio(tp, n_pos)
    if out["tpr"] is None:
        undefined["tpr"] = "no positives in group"
    out["fpr"] = _ratio(fp, n_neg)
    if out["fpr"] is None:
        undefined["fpr"] = "no negatives in group"
    out["ppv"] = _ratio(tp, tp + fp)
    if out["ppv"] is None:
        undefined["ppv"] = "no positive predictions in group"
    out["selection_rate"] = float(pred.mean())
    out["brier"] = float(np.mean((score - y) ** 2))
    out["undefined"] = undefined
    return out


# ---------------------------------------------------------------- input validation


def _labels(y_true: ArrayLike, positive_label: Any) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1 or y.size == 0:
        raise InputError(
            "y_true must be a non-empty 1-D array of labels", where="y_true",
            expected="shape (n,) with n >= 1", got=f"shape {y.shape}",
            fix="pass one label per scored row",
        )
    if _missing(y).any():
        raise InputError(
            "y_true has missing labels", where="y_true", expected="no missing values",
            got=f"{int(_missing(y).sum())} missing", fix="drop unlabelled rows before the audit",
        )
    distinct = np.unique(y)
    if distinct.size > 2:
        raise InputError(
            "y_true is not binary", where="y_true", expected="at most 2 distinct labels",
            got=f"{distinct.size} distinct labels",
            fix="binarise the outcome (e.g. tumour vs no tumour) before the audit",
        )
    is_pos = y == positive_label
    if distinct.size == 2 and not is_pos.any():
        raise InputError(
            "positive_label is not one of the two labels of y_true", where="positive_label",
            expected="one of the 2 labels in y_true",
            got=f"a {type(positive_label).__name__} label not found",
            fix="pass the label that marks the positive class, e.g. positive_label=1",
        )
    return np.asarray(is_pos, dtype=bool)


def _scores(y_score: ArrayLike, n: int) -> np.ndarray:
    try:
        s = np.asarray(y_score, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InputError(
            "y_score is not numeric", where="y_score", expected="probabilities in [0, 1]",
            got=f"values of dtype {np.asarray(y_score).dtype}",
            fix="pass the predicted probability of the positive class",
        ) from e
    if s.shape != (n,):
        raise InputError(
            "y_score does not match y_true in length", where="y_score",
            expected=f"shape ({n},)", got=f"shape {s.shape}",
            fix="pass one score per label, in the same order",
        )
    bad = ~np.isfinite(s) | (s < 0) | (s > 1)
    if bad.any():
        raise InputError(
            "y_score has values that are not finite probabilities", where="y_score",
            expected="finite values in [0, 1]", got=f"{int(bad.sum())} of {n} outside",
            fix="pass probabilities (apply a sigmoid/softmax to logits first)",
        )
    return s


def _missing(a: np.ndarray) -> np.ndarray:
    import pandas as pd

    return np.asarray(pd.isna(a), dtype=bool).reshape(a.shape)


def _group_column(name: Any, values: ArrayLike, n: int) -> np.ndarray:
    if not isinstance(name, str) or not name:
        raise InputError(
            "grouping attribute names must be non-empty strings", where="groups",
            expected="names such as 'site', 'sex', 'age_band'",
            got=f"a key of type {type(name).__name__}", fix="rename the attribute",
        )
    g = np.asarray(values, dtype=object)
    where = f"groups[{name!r}]"
    if g.shape != (n,):
        raise InputError(
            "grouping attribute does not match y_true in length", where=where,
            expected=f"shape ({n},)", got=f"shape {g.shape}",
            fix="pass one group value per scored row, in the same order",
        )
    miss = _missing(g)
    if miss.any():
        raise InputError(
            "grouping attribute has missing values", where=where, expected="no missing values",
            got=f"{int(miss.sum())} missing",
            fix="fill them with an explicit category such as 'unknown'",
        )
    labels = np.array([str(v) for v in g], dtype=object)
    if len(set(labels.tolist())) != len(set(g.tolist())):
        raise InputError(
            "grouping attribute has distinct values with the same text", where=where,
            expected="values that stay distinct as strings",
            got="two values with one string form (e.g. 1 and '1')",
            fix="convert the column to strings before the audit",
        )
    return labels


# ---------------------------------------------------------------- the audit


def _extreme(
    groups: Mapping[str, Mapping[str, Any]], eligible: Sequence[str], metric: str
) -> tuple[list[tuple[str, float]], str | None]:
    """Values of ``metric`` over eligible groups where it is defined, and why none if empty."""
    vals = [(g, float(groups[g][metric])) for g in eligible if groups[g][metric] is not None]
    if not eligible:
        return vals, "no group reaches min_group_size"
    if not vals:
        return vals, f"{metric} undefined in every group of at least min_group_size rows"
    return vals, None


def _attribute(
    labels: np.ndarray, y: np.ndarray, s: np.ndarray, pred: np.ndarray, min_group_size: int
) -> dict[str, Any]:
    groups: dict[str, dict[str, Any]] = {}
    for value in sorted(set(labels.tolist()), key=_natural_key):
        sel = labels == value
        m = group_metrics(y[sel], s[sel], pred[sel])
        m["small"] = m["n"] < min_group_size
        groups[value] = m
    eligible = [g for g, m in groups.items() if not m["small"]]
    undefined: dict[str, str] = {}

    worst: dict[str, Any] = {}
    for metric in ("auroc", "tpr"):
        vals, why = _extreme(groups, eligible, metric)
        if why:
            worst[metric] = None
            undefined[f"worst_group.{metric}"] = why
        else:
            g, v = min(vals, key=lambda t: t[1])  # first in sorted order on ties
            worst[metric] = {"group": g, "value": v}

    def spread(metric: str) -> float | None:
        vals, why = _extreme(groups, eligible, metric)
        if why is None and len(vals) < 2:
            why = f"{metric} defined in fewer than 2 groups of at least min_group_size rows"
        if why:
            undefined[f"{metric}_difference"] = why
            return None
        v = [t[1] for t in vals]
        return max(v) - min(v)

    gaps: dict[str, float | None] = {
        "demographic_parity_difference": spread("selection_rate"),
        "tpr_difference": spread("tpr"),
        "fpr_difference": spread("fpr"),
        "auroc_gap": spread("auroc"),
    }
    dp_why = undefined.pop("selection_rate_difference", None)
    if dp_why:
        undefined["demographic_parity_difference"] = dp_why
    auroc_why = undefined.pop("auroc_difference", None)
    if auroc_why:
        undefined["auroc_gap"] = auroc_why
    tpr_gap, fpr_gap = gaps["tpr_difference"], gaps["fpr_difference"]
    if tpr_gap is None or fpr_gap is None:
        gaps["equalized_odds_difference"] = None
        undefined["equalized_odds_difference"] = "needs both the TPR and the FPR difference"
    else:
        gaps["equalized_odds_difference"] = max(tpr_gap, fpr_gap)
    order = ("demographic_parity_difference", "equalized_odds_difference", "tpr_difference",
             "fpr_difference", "auroc_gap")
    gaps = {k: gaps[k] for k in order}
    return {
        "groups": groups,
        "small_groups": [g for g, m in groups.items() if m["small"]],
        "groups_in_gaps": eligible,
        "worst_group": worst,
        "gaps": gaps,
        "undefined": undefined,
    }


def fairness_audit(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    groups: Mapping[str, ArrayLike],
    threshold: float = 0.5,
    min_group_size: int = 5,
    positive_label: Any = 1,
) -> dict[str, Any]:
    """Audit a binary classifier's performance across sites and subgroups.

    Parameters
    ----------
    y_true
        True labels, 1-D, at most two distinct values (``positive_label`` marks the positive).
    y_score
        Predicted probability of the positive class, same length, finite, in [0, 1].
    groups
        Grouping attribute name (``"site"``, ``"sex"``, ``"age_band"``...) -> one group value
        per row (category names; see :func:`age_bands`).  May be empty (overall metrics only).
    threshold
        A row is predicted positive when ``y_score >= threshold``.
    min_group_size
        Groups with fewer rows are reported and flagged ``small``, but left out of the gaps and
        of the worst-group choice.  0 or 1 puts every group in the gaps.
    positive_label
        The label of the positive class.

    Returns
    -------
    dict
        JSON-serialisable: ``format``, ``format_version``, ``threshold``, ``min_group_size``,
        ``n``, ``overall`` (metrics, as below) and ``attributes``: name -> ``groups`` (in
        natural order, numbers by value: ``"5-11"`` before ``"12-17"``; group value ->
        ``n``, ``n_positive``, ``auroc``, ``accuracy``, ``tpr``, ``fpr``, ``ppv``,
        ``selection_rate``, ``brier``, ``small``, ``undefined``), ``small_groups``,
        ``groups_in_gaps``, ``worst_group`` (``auroc``/``tpr`` -> ``{"group", "value"}``),
        ``gaps`` (``demographic_parity_difference``, ``equalized_odds_difference``,
        ``tpr_difference``, ``fpr_difference``, ``auroc_gap``) and ``undefined``.  Every None
        has its reason under the sibling ``undefined`` mapping.

    Raises
    ------
    InputError
        If ``y_true`` is empty, not 1-D, has missing values or more than two labels; if
        ``positive_label`` is not one of two labels; if ``y_score`` is not numeric, differs in
        length, or is not finite in [0, 1]; if a grouping attribute has a bad name, length,
        missing values, or distinct values with the same string form.
    ConfigError
        If ``threshold`` is not a finite number in [0, 1] or ``min_group_size`` is not a
        non-negative integer.

    Examples
    --------
    >>> y = [1, 0, 1, 0, 1, 0, 1, 0]
    >>> s = [0.9, 0.1, 0.8, 0.3, 0.4, 0.6, 0.7, 0.2]
    >>> a = fairness_audit(y, s, groups={"sex": ["F", "F", "F", "F", "M", "M", "M", "M"]},
    ...                    min_group_size=2)
    >>> a["attributes"]["sex"]["groups"]["M"]["tpr"], a["overall"]["auroc"]
    (0.5, 0.9375)
    >>> a["attributes"]["sex"]["worst_group"]["auroc"]
    {'group': 'M', 'value': 0.75}
    >>> round(a["attributes"]["sex"]["gaps"]["equalized_odds_difference"], 3)
    0.5
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not (
        math.isfinite(threshold) and 0.0 <= threshold <= 1.0
    ):
        raise ConfigError(
            "threshold must be a probability", where="threshold",
            expected="a finite number in [0, 1]", got=f"a {type(threshold).__name__} outside it",
            fix="pass e.g. threshold=0.5",
        )
    if isinstance(min_group_size, bool) or not isinstance(min_group_size, int | np.integer) \
            or min_group_size < 0:
        raise ConfigError(
            "min_group_size must be a non-negative integer", where="min_group_size",
            expected="an int >= 0", got=f"{type(min_group_size).__name__}",
            fix="pass e.g. min_group_size=5",
        )
    y = _labels(y_true, positive_label)
    s = _scores(y_score, y.size)
    columns = {name: _group_column(name, values, y.size) for name, values in groups.items()}
    pred = s >= threshold
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "threshold": float(threshold),
        "min_group_size": int(min_group_size),
        "n": int(y.size),
        "overall": group_metrics(y, s, pred),
        "attributes": {
            name: _attribute(labels, y, s, pred, int(min_group_size))
            for name, labels in columns.items()
        },
    }


def _band_name(lo: int, hi: int, *, last: bool) -> str:
    if last and hi >= 120:
        return f"{lo}+"
    if hi - lo == 1:
        return f"{lo}-<{hi}"
    return f"{lo}-{hi - 1}"


def _natural_key(label: str) -> list[Any]:
    """Sort key that orders numbers inside labels by value ("5-11" before "12-17")."""
    parts: list[Any] = re.split(r"(\d+)", label)
    parts[1::2] = [int(p) for p in parts[1::2]]
    return parts


def age_bands(
    ages: ArrayLike, edges: Sequence[int] = (0, 18, 40, 60, 200)
) -> np.ndarray:
    """Bin ages into labelled bands named as people name them, for a subgroup audit.

    Band ``i`` holds ``edges[i] <= age < edges[i + 1]``.  It is labelled
    ``f"{lo}-{hi - 1}"`` in whole years (``"1-4"``: from the 1st to the end of the 4th
    year), ``f"{lo}-<{hi}"`` when it spans one year (``"0-<1"``: under one), and ``f"{lo}+"``
    when it is the last band and its upper edge is 120 or more (an open end).
    :func:`fairness_audit` lists such bands in age order.

    Parameters
    ----------
    ages
        Ages in years, 1-D, finite, within ``[edges[0], edges[-1])``.
    edges
        Strictly increasing integer band edges, at least two.

    Returns
    -------
    numpy.ndarray
        One band label (str) per age.

    Raises
    ------
    ConfigError
        If ``edges`` are not at least two strictly increasing integers.
    InputError
        If ``ages`` is not 1-D numeric, or has missing values or values outside the edges.

    Examples
    --------
    >>> age_bands([5, 18, 39.5, 40, 87]).tolist()
    ['0-17', '18-39', '18-39', '40-59', '60+']
    >>> age_bands([0.5, 3, 11.9, 17.5], edges=(0, 1, 5, 12, 18)).tolist()
    ['0-<1', '1-4', '5-11', '12-17']
    """
    e = list(edges)
    if (
        len(e) < 2
        or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in e)
        or any(b <= a for a, b in zip(e, e[1:], strict=False))
    ):
        raise ConfigError(
            "age band edges are invalid", where="edges",
            expected="at least 2 strictly increasing integers", got=f"{len(e)} edges",
            fix="pass e.g. edges=(0, 18, 40, 60, 200)",
        )
    try:
        a = np.asarray(ages, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(
            "ages are not numeric", where="ages", expected="ages in years",
            got=f"values of dtype {np.asarray(ages).dtype}", fix="convert ages to numbers",
        ) from err
    if a.ndim != 1:
        raise InputError(
            "ages must be a 1-D array", where="ages", expected="shape (n,)",
            got=f"shape {a.shape}", fix="pass one age per row",
        )
    if np.isnan(a).any():
        raise InputError(
            "ages have missing values", where="ages", expected="no missing values",
            got=f"{int(np.isnan(a).sum())} missing",
            fix="fill or drop them (or use an explicit 'unknown' band yourself)",
        )
    out_of_range = (a < e[0]) | (a >= e[-1])
    if out_of_range.any():
        raise InputError(
            "ages fall outside the band edges", where="ages",
            expected=f"values in [{e[0]}, {e[-1]})", got=f"{int(out_of_range.sum())} outside",
            fix="widen edges or check the age unit (years)",
        )
    names = np.array([_band_name(lo, hi, last=hi == e[-1])
                      for lo, hi in zip(e, e[1:], strict=False)])
    idx = np.searchsorted(np.asarray(e[1:-1], dtype=np.float64), a, side="right")
    return names[idx]
