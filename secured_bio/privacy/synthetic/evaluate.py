"""Evaluate a synthetic table: fidelity, utility and privacy, in one JSON-ready report.

:func:`evaluate_synthetic` compares a synthetic table with the real rows its generator was
fitted on (``train``) and, when given, real rows of the same population that it never saw
(``holdout``).  Three groups of figures, as in SynthEval (Lautrup et al. 2024) and
synthcity's metrics, with membership inference as the default privacy evidence:

* **fidelity**: per column, the two-sample Kolmogorov-Smirnov statistic and the
  Wasserstein-1 distance divided by the real column's IQR (numbers, dates as day numbers)
  or the total variation distance (categories); pairwise, the difference of the Pearson and
  Spearman matrices (numeric columns) and of Cramér's V (categorical columns).
* **utility**: train on synthetic, test on real (TSTR) against train on real, test on real
  (TRTR) (Esteban, Hyland & Rätsch 2017): a fixed scikit-learn
  ``HistGradientBoostingClassifier`` on one-hot features predicts ``target``; both models
  are tested on the real hold-out (AUROC; macro one-vs-rest AUROC for several classes).
* **privacy**: *the attack* is a distance-based membership inference: for each real record
  the attacker computes its Gower distance to the closest synthetic record and calls the
  records with small distances "members" (training rows); members are ``train`` rows and
  non-members ``holdout`` rows, so an AUC of 0.5 means the synthetic table does not tell them
  apart (Stadler, Oprisanu & Troncoso 2022, "Synthetic data - anonymisation groundhog day";
  figures from :func:`~secured_bio.privacy.assess.membership.membership_inference`).
  Secondary figures: distance to closest record (DCR) and nearest-neighbour distance ratio
  (NNDR) of synthetic rows to the training rows, against the same figures of hold-out rows
  (a synthetic row much closer to training rows than new real rows are is suspicious; DCR
  alone misses leaks that membership attacks find, Ganev & De Cristofaro 2023, "On the
  inadequacy of similarity-based privacy metrics"), the number of synthetic rows that copy a
  training row, and anonymeter's singling-out, linkability and inference risks with the
  hold-out as control set (:mod:`secured_bio.privacy.assess.attacks`).

Distances between records are Gower distances (Gower 1971, "A general coefficient of
similarity and some of its properties", Biometrics 27:857-871): numeric columns count
``|x - y| / range`` (range over all tables, missing values the largest distance 1),
categorical columns 0 when equal and 1 otherwise; the mean over columns lies in [0, 1].

Figures are aggregates (histogram shares, quantiles, rates); no record is copied into the
report.  Category labels appear in the distribution plots: the 20 most frequent real ones
among those held by at least 5 real records (rarer labels are pooled as "(other)").
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from secured_bio.errors import ConfigError, InputError, SchemaError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FORMAT", "FORMAT_VERSION", "evaluate_synthetic", "validation_scores", "cramers_v",
           "total_variation_distance"]

#: Format name and version written in every evaluation (``format``, ``format_version``).
FORMAT = "secured_bio.synthetic_evaluation"
FORMAT_VERSION = 1

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_QUANTILES = (0.01, 0.05, 0.25, 0.5)
_MAX_CLASSES = 20
_TOP_CATEGORIES = 20
#: A category is named in the report only when at least this many real records have it
#: (small-cell suppression, as in statistical disclosure control); rarer ones are "(other)".
_MIN_CELL = 5
_ONEHOT_LEVELS = 64  # categorical columns with more levels are compared code by code
_CHUNK = 2_000_000  # distances per block (16 MB of float64; measured fastest)
_BINS = 20
_ROC_POINTS = 200


# ----------------------------------------------------------------------- input checks
def _check_frame(table: Any, name: str) -> pd.DataFrame:
    import pandas as pd

    if not isinstance(table, pd.DataFrame):
        raise InputError(f"{name} is not a table", where=name, expected="a pandas DataFrame",
                         got=f"a {type(table).__name__}", fix="read the CSV with pandas")
    if len(table) == 0 or table.shape[1] == 0:
        raise InputError(f"{name} table is empty", where=name,
                         expected="at least 1 row and 1 column",
                         got=f"{table.shape[0]} rows x {table.shape[1]} columns",
                         fix="check the file holds data rows")
    out = table.copy()
    out.columns = [str(c) for c in table.columns]
    if out.columns.duplicated().any():
        raise SchemaError(f"{name} table has duplicated column names", where=name,
                          expected="unique column names",
                          got=f"{int(out.columns.duplicated().sum())} duplicates",
                          fix="rename the duplicated columns")
    return out.reset_index(drop=True)


def _check_columns(columns: Sequence[str] | str | None, tables: Mapping[str, pd.DataFrame]
                   ) -> list[str]:
    train, synthetic = tables["train"], tables["synthetic"]
    if columns is None:
        cols = list(train.columns)
        extra = [c for c in synthetic.columns if c not in cols]
        missing = [c for c in cols if c not in synthetic.columns]
        if extra or missing:
            raise SchemaError(
                "the synthetic table does not have the training table's columns",
                where="synthetic", expected=f"the {len(cols)} columns of train",
                got=f"{len(missing)} missing and {len(extra)} extra columns"
                    + (f" (missing: {', '.join(missing[:5])})" if missing else ""),
                fix="generate the synthetic table from the same columns, or pass columns=")
    else:
        cols = [c.strip() for c in columns.split(",")] if isinstance(columns, str) \
            else [str(c) for c in columns]
        cols = [c for c in cols if c]
        if not cols:
            raise ConfigError("no columns given", where="columns", expected="at least 1 column",
                              got="0", fix="pass column names or None for all")
        if len(set(cols)) != len(cols):
            raise ConfigError("columns repeat a name", where="columns",
                              expected="distinct names", got=f"{len(cols)} names, "
                              f"{len(set(cols))} distinct", fix="list each column once")
    for name, t in tables.items():
        have = list(t.columns)
        for c in cols:
            if c not in have:
                raise SchemaError(f"column missing from the {name} table", where=f"{name}:{c}",
                                  expected=f"a column named '{c}'",
                                  got=f"{len(have)} other columns",
                                  fix=did_you_mean(c, have) or "use the same columns in all "
                                  "tables")
    return cols


def _is_date_str(s: Any) -> bool:
    return bool(_DATE.match(s)) if isinstance(s, str) else False


def _column_kind(values: Sequence[pd.Series]) -> str:
    """``numeric``, ``date`` or ``categorical``, decided on all tables together."""
    import pandas as pd
    from pandas.api import types as pt

    if all(pt.is_datetime64_any_dtype(v) for v in values):
        return "date"
    if all(pt.is_numeric_dtype(v) and not pt.is_bool_dtype(v) for v in values):
        return "numeric"
    present = pd.concat([v.dropna().astype(str).str.strip() for v in values], ignore_index=True)
    present = present[present != ""]
    if present.empty:
        return "categorical"
    if pd.to_numeric(present, errors="coerce").notna().all():
        return "numeric"
    if present.map(_is_date_str).all() and pd.to_datetime(
            present, format="%Y-%m-%d", errors="coerce").notna().all():
        return "date"
    return "categorical"


def _as_numbers(s: pd.Series, kind: str) -> np.ndarray:
    """Numbers of a numeric or date column (dates as days since 1970-01-01); NaN if missing."""
    import pandas as pd

    if kind == "date":
        from pandas.api import types as pt

        if pt.is_datetime64_any_dtype(s):
            d = pd.to_datetime(s)
        else:
            d = pd.to_datetime(s.astype(str).str.strip(), format="%Y-%m-%d", errors="coerce")
        days = (d - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
        return np.asarray(days, dtype=float)
    out = pd.to_numeric(s.astype(object).where(s.notna(), None), errors="coerce")
    return np.asarray(out, dtype=float)


def _as_labels(s: pd.Series) -> np.ndarray:
    """Category labels as strings; missing values become the label ``<missing>``."""
    return np.asarray(s.astype(object).where(s.notna(), "<missing>").astype(str), dtype=object)


def _check_n(value: int, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(f"{name} out of range", where=name,
                          expected=f"an integer >= {minimum}", got=repr(value),
                          fix=f"use an integer >= {minimum}")
    return int(value)


# ----------------------------------------------------------------------- fidelity
def total_variation_distance(real: ArrayLike, synthetic: ArrayLike) -> float:
    """Total variation distance between the category frequencies of two samples.

    ``TVD = 1/2 * sum_c |p_real(c) - p_synthetic(c)|`` over the union of categories: 0 for
    identical frequencies, 1 for disjoint supports.

    Parameters
    ----------
    real, synthetic
        Category labels (any hashable values).

    Returns
    -------
    float
        The distance, in [0, 1].

    Raises
    ------
    InputError
        If a sample is empty.

    Examples
    --------
    >>> total_variation_distance(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    0.25
    """
    r, s = np.asarray(real, dtype=object), np.asarray(synthetic, dtype=object)
    if r.size == 0 or s.size == 0:
        raise InputError("no values to compare", where="total_variation_distance",
                         expected="at least 1 value per sample",
                         got=f"{r.size} real and {s.size} synthetic", fix="pass both samples")
    cats, inv = np.unique(np.concatenate([r, s]).astype(str), return_inverse=True)
    p = np.bincount(inv[:r.size], minlength=len(cats)) / r.size
    q = np.bincount(inv[r.size:], minlength=len(cats)) / s.size
    return float(0.5 * np.abs(p - q).sum())


def cramers_v(x: ArrayLike, y: ArrayLike) -> float:
    """Cramér's V between two categorical variables (Cramér 1946), without bias correction.

    ``V = sqrt(chi2 / (n * (min(r, c) - 1)))`` from Pearson's chi-squared statistic of the
    ``r x c`` contingency table (no continuity correction); 0 when a variable is constant.

    Parameters
    ----------
    x, y
        Category labels of the same records.

    Returns
    -------
    float
        The association, in [0, 1].

    Raises
    ------
    InputError
        If the samples are empty or differ in length.

    Examples
    --------
    >>> cramers_v(["a", "a", "b", "b"], ["u", "u", "v", "v"])
    1.0
    """
    a, b = np.asarray(x, dtype=object).astype(str), np.asarray(y, dtype=object).astype(str)
    if a.size == 0 or a.size != b.size:
        raise InputError("cannot cross-tabulate the two variables", where="cramers_v",
                         expected="two non-empty samples of the same length",
                         got=f"{a.size} and {b.size} values", fix="pass the same records")
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    r, c = int(ia.max()) + 1, int(ib.max()) + 1
    if min(r, c) < 2:
        return 0.0
    table = np.zeros((r, c))
    np.add.at(table, (ia, ib), 1.0)
    n = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return float(min(1.0, math.sqrt(chi2 / (n * (min(r, c) - 1)))))


def _numeric_fidelity(real: np.ndarray, syn: np.ndarray) -> dict[str, Any]:
    from scipy.stats import ks_2samp, wasserstein_distance

    r, s = real[np.isfinite(real)], syn[np.isfinite(syn)]
    out: dict[str, Any] = {
        "missing_share_real": float(1 - r.size / max(1, real.size)),
        "missing_share_synthetic": float(1 - s.size / max(1, syn.size)),
    }
    if r.size == 0 or s.size == 0:
        out.update(ks=None, ks_pvalue=None, wasserstein=None, wasserstein_normalized=None,
                   scale=None, histogram=None,
                   reason="no values in the real or the synthetic column")
        return out
    ks = ks_2samp(r, s)
    wd = float(wasserstein_distance(r, s))
    q75, q25 = np.percentile(r, [75, 25])
    scale, scale_kind = float(q75 - q25), "iqr"
    if not scale > 0:
        scale, scale_kind = float(np.std(r)), "std"
    if not scale > 0:
        scale, scale_kind = 1.0, "none"
    lo = float(min(np.percentile(r, 0.5), np.percentile(s, 0.5)))
    hi = float(max(np.percentile(r, 99.5), np.percentile(s, 99.5)))
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, _BINS + 1)
    hr = np.histogram(np.clip(r, lo, hi), bins=edges)[0] / r.size
    hs = np.histogram(np.clip(s, lo, hi), bins=edges)[0] / s.size
    out.update(
        ks=float(ks.statistic), ks_pvalue=float(ks.pvalue), wasserstein=wd,
        wasserstein_normalized=wd / scale, scale=scale, scale_kind=scale_kind,
        mean_real=float(r.mean()), mean_synthetic=float(s.mean()),
        std_real=float(r.std()), std_synthetic=float(s.std()),
        histogram={"edges": edges.tolist(), "real": hr.tolist(), "synthetic": hs.tolist()},
        reason=None,
    )
    return out


def _categorical_fidelity(real: np.ndarray, syn: np.ndarray) -> dict[str, Any]:
    cats_r, counts_r = np.unique(real.astype(str), return_counts=True)
    cats_s, counts_s = np.unique(syn.astype(str), return_counts=True)
    pr = dict(zip(cats_r.tolist(), (counts_r / real.size).tolist(), strict=True))
    ps = dict(zip(cats_s.tolist(), (counts_s / syn.size).tolist(), strict=True))
    counts = dict(zip(cats_r.tolist(), counts_r.tolist(), strict=True))
    shown = [c for c in pr if counts[c] >= _MIN_CELL]
    top = sorted(shown, key=lambda c: (-pr[c], c))[:_TOP_CATEGORIES]
    other_r = 1.0 - sum(pr[c] for c in top)
    other_s = 1.0 - sum(ps.get(c, 0.0) for c in top)
    bars = {"categories": top, "real": [pr[c] for c in top],
            "synthetic": [ps.get(c, 0.0) for c in top]}
    if len(pr) > len(top) or other_s > 1e-12:
        bars["categories"].append("(other)")
        bars["real"].append(max(0.0, other_r))
        bars["synthetic"].append(max(0.0, other_s))
    return {
        "tvd": total_variation_distance(real, syn),
        "n_categories_real": len(pr), "n_categories_synthetic": len(ps),
        # Categories the generator never produces, and ones it invented.
        "real_categories_missing_share": float(sum(1 for c in pr if c not in ps) / len(pr)),
        "synthetic_new_category_share": float(sum(v for c, v in ps.items() if c not in pr)),
        "bars": bars,
    }


def _matrix_diff(names: list[str], real: np.ndarray, syn: np.ndarray, method: str
                 ) -> dict[str, Any]:
    """Correlation matrices (Pearson or Spearman) of real and synthetic, and their difference."""
    import pandas as pd

    r = pd.DataFrame(real, columns=names).corr(method=method).to_numpy()
    s = pd.DataFrame(syn, columns=names).corr(method=method).to_numpy()
    return _pack_matrices(names, r, s)


def _pack_matrices(names: list[str], r: np.ndarray, s: np.ndarray) -> dict[str, Any]:
    d = s - r
    off = ~np.eye(len(names), dtype=bool)
    vals = np.abs(d[off])
    vals = vals[np.isfinite(vals)]
    return {"columns": names, "real": _nan_to_none(r), "synthetic": _nan_to_none(s),
            "difference": _nan_to_none(d),
            "mean_abs_difference": float(vals.mean()) if vals.size else None,
            "max_abs_difference": float(vals.max()) if vals.size else None}


def _nan_to_none(m: np.ndarray) -> list[list[float | None]]:
    return [[float(v) if np.isfinite(v) else None for v in row] for row in m]


def _fidelity(data: dict[str, dict[str, np.ndarray]], kinds: dict[str, str]) -> dict[str, Any]:
    per: dict[str, Any] = {}
    for col, kind in kinds.items():
        r, s = data["train"][col], data["synthetic"][col]
        per[col] = {"kind": kind, **(_categorical_fidelity(r, s) if kind == "categorical"
                                     else _numeric_fidelity(r, s))}
    num = [c for c, k in kinds.items() if k != "categorical"]
    cat = [c for c, k in kinds.items() if k == "categorical"]
    pairs: dict[str, Any] = {}
    if len(num) >= 2:
        r = np.column_stack([data["train"][c] for c in num])
        s = np.column_stack([data["synthetic"][c] for c in num])
        pairs["pearson"] = _matrix_diff(num, r, s, "pearson")
        pairs["spearman"] = _matrix_diff(num, r, s, "spearman")
    if len(cat) >= 2:
        mats = []
        for part in ("train", "synthetic"):
            m = np.eye(len(cat))
            for i in range(len(cat)):
                for j in range(i + 1, len(cat)):
                    m[i, j] = m[j, i] = cramers_v(data[part][cat[i]], data[part][cat[j]])
            mats.append(m)
        pairs["cramers_v"] = _pack_matrices(cat, mats[0], mats[1])
    ks = [per[c]["ks"] for c in num if per[c]["ks"] is not None]
    wn = [per[c]["wasserstein_normalized"] for c in num
          if per[c]["wasserstein_normalized"] is not None]
    tvd = [per[c]["tvd"] for c in cat]
    column_dist = ks + tvd
    summary = {
        "mean_ks": float(np.mean(ks)) if ks else None,
        "mean_wasserstein_normalized": float(np.mean(wn)) if wn else None,
        "mean_tvd": float(np.mean(tvd)) if tvd else None,
        # 1 - mean per-column distance (KS for numbers and dates, TVD for categories).
        "column_similarity": float(1 - np.mean(column_dist)) if column_dist else None,
        "mean_abs_pearson_difference": (pairs.get("pearson") or {}).get("mean_abs_difference"),
        "mean_abs_spearman_difference": (pairs.get("spearman") or {}).get(
            "mean_abs_difference"),
        "mean_abs_cramers_v_difference": (pairs.get("cramers_v") or {}).get(
            "mean_abs_difference"),
    }
    return {"columns": per, "pairs": pairs, "summary": summary}


# ----------------------------------------------------------------------- utility
def _features(data: dict[str, dict[str, np.ndarray]], kinds: dict[str, str], cols: list[str]
              ) -> dict[str, np.ndarray]:
    """One matrix per table: numbers as they are (NaN kept), categories one-hot."""
    blocks: dict[str, list[np.ndarray]] = {k: [] for k in data}
    for c in cols:
        if kinds[c] != "categorical":
            for k in data:
                blocks[k].append(data[k][c].astype(float)[:, None])
            continue
        levels = np.unique(np.concatenate([data[k][c].astype(str) for k in data]))
        for k in data:
            blocks[k].append((data[k][c].astype(str)[:, None] == levels[None, :]).astype(float))
    return {k: np.hstack(v) if v else np.zeros((len(next(iter(data[k].values()))), 0))
            for k, v in blocks.items()}


def _auroc(model: Any, x: np.ndarray, y: np.ndarray, labels: list[str]) -> float:
    """AUROC on the real hold-out: binary (second label positive), else macro one-vs-rest."""
    from sklearn.metrics import roc_auc_score

    proba = model.predict_proba(x)
    col = {str(c): i for i, c in enumerate(model.classes_)}
    # A class the model never saw gets probability 0 for every record.
    p = np.column_stack([proba[:, col[c]] if c in col else np.zeros(len(x)) for c in labels])
    if len(labels) == 2:
        return float(roc_auc_score(y == labels[1], p[:, 1]))
    return float(np.mean([roc_auc_score(y == c, p[:, i]) for i, c in enumerate(labels)]))


def _utility(data: dict[str, dict[str, np.ndarray]], kinds: dict[str, str], target: str | None,
             seed: int) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    base: dict[str, Any] = {"target": target, "model": "HistGradientBoostingClassifier",
                            "features": "numbers as is, categories one-hot",
                            "trtr_auroc": None, "tstr_auroc": None, "ratio": None}
    if target is None:
        return {**base, "reason": "no target column given"}
    if "holdout" not in data:
        return {**base, "reason": "no hold-out table: models cannot be tested on unseen real rows"}
    ys = {k: data[k][target].astype(str) for k in data}
    labels = sorted(set(ys["holdout"].tolist()))
    base.update(classes=len(labels), task="binary" if len(labels) == 2 else "multiclass")
    if len(labels) < 2:
        return {**base, "reason": "the hold-out target has a single class: AUROC is undefined"}
    cols = [c for c in kinds if c != target]
    if not cols:
        return {**base, "reason": "no feature columns beside the target"}
    x = _features(data, kinds, cols)
    out = dict(base, reason=None, n_features=int(x["train"].shape[1]))
    for key, part in (("trtr_auroc", "train"), ("tstr_auroc", "synthetic")):
        if len(set(ys[part].tolist())) < 2:
            out[key] = None
            out[key.replace("auroc", "reason")] = f"the {part} target has a single class"
            continue
        model = HistGradientBoostingClassifier(random_state=seed, early_stopping=False,
                                               max_iter=100)
        # One OpenMP thread: on a shared or busy machine HGB's threads oversubscribe the
        # cores (measured 20x slower on 2 busy cores); one thread fits 10k rows in ~2 s.
        with threadpool_limits(1, user_api="openmp"):
            model.fit(x[part], ys[part])
            out[key] = _auroc(model, x["holdout"], ys["holdout"], labels)
    if out["trtr_auroc"] and out["tstr_auroc"] is not None:
        out["ratio"] = out["tstr_auroc"] / out["trtr_auroc"]
    return out


# ----------------------------------------------------------------------- distances
class _Gower:
    """Rows of several tables encoded for Gower distances (Gower 1971)."""

    def __init__(self, data: dict[str, dict[str, np.ndarray]], kinds: dict[str, str]) -> None:
        self.num_cols = [c for c, k in kinds.items() if k != "categorical"]
        self.cat_cols = [c for c, k in kinds.items() if k == "categorical"]
        self.n_cols = len(kinds)
        self.num: dict[str, np.ndarray] = {}
        ranges = []
        for c in self.num_cols:
            allv = np.concatenate([data[k][c] for k in data])
            fin = allv[np.isfinite(allv)]
            span = float(fin.max() - fin.min()) if fin.size else 1.0
            ranges.append(span if span > 0 else 1.0)
        self.ranges = np.array(ranges)
        for k in data:
            self.num[k] = (np.column_stack([data[k][c] for c in self.num_cols]) / self.ranges
                           if self.num_cols else np.zeros((len(data[k][next(iter(kinds))]), 0)))
        # Categories: one-hot blocks (mismatches = columns - matches, one matrix product)
        # for columns with few levels, integer codes compared directly for the others.
        self.onehot: dict[str, np.ndarray] = {k: np.zeros((len(self.num[k]), 0)) for k in data}
        self.codes: dict[str, np.ndarray] = {k: np.zeros((len(self.num[k]), 0), dtype=np.int64)
                                             for k in data}
        self.n_onehot_cols = 0
        for c in self.cat_cols:
            levels, inv = np.unique(np.concatenate([data[k][c].astype(str) for k in data]),
                                    return_inverse=True)
            start = 0
            for k in data:
                n = len(data[k][c])
                part = inv[start:start + n]
                start += n
                if len(levels) <= _ONEHOT_LEVELS:
                    block = (part[:, None] == np.arange(len(levels))[None, :]).astype(float)
                    self.onehot[k] = np.hstack([self.onehot[k], block])
                else:
                    self.codes[k] = np.column_stack([self.codes[k], part])
            self.n_onehot_cols += len(levels) <= _ONEHOT_LEVELS
        self.nan_cols = np.array([any(np.isnan(self.num[k][:, j]).any() for k in data)
                                  for j in range(len(self.num_cols))], dtype=bool)

    def distances(self, a: str, ia: np.ndarray, b: str) -> np.ndarray:
        """Mean Gower distance from rows ``ia`` of table ``a`` to every row of table ``b``."""
        na, nb = self.num[a][ia], self.num[b]
        d = np.full((len(ia), len(nb)), float(self.n_onehot_cols))
        if self.n_onehot_cols:
            d -= self.onehot[a][ia] @ self.onehot[b].T  # matching categories
        tmp = np.empty_like(d)
        for j in range(na.shape[1]):
            # Values are divided by the range over all tables: |x - y| <= 1 already.
            np.subtract(na[:, j, None], nb[None, :, j], out=tmp)
            np.abs(tmp, out=tmp)
            if self.nan_cols[j]:
                tmp[np.isnan(tmp)] = 1.0  # a missing value is at the largest distance
            d += tmp
        ca, cb = self.codes[a][ia], self.codes[b]
        for j in range(ca.shape[1]):
            d += ca[:, j, None] != cb[None, :, j]
        d /= self.n_cols
        return d


def _nearest(gower: _Gower, a: str, rows: np.ndarray, b: str, k: int = 1) -> np.ndarray:
    """Distances (``len(rows) x k``, ascending) from rows of ``a`` to their k nearest in ``b``.

    Examples
    --------
    >>> import numpy as np
    >>> data = {"x": {"v": np.array([0.0, 1.0])}, "y": {"v": np.array([0.5, 2.0])}}
    >>> g = _Gower(data, {"v": "numeric"})
    >>> _nearest(g, "x", np.arange(2), "y", k=2).round(2).tolist()
    [[0.25, 1.0], [0.25, 0.5]]
    """
    nb = len(gower.num[b])
    k = min(k, nb)
    out = np.empty((len(rows), k))
    step = max(1, _CHUNK // max(1, nb))
    for s in range(0, len(rows), step):
        d = gower.distances(a, rows[s:s + step], b)
        part = np.partition(d, k - 1, axis=1)[:, :k] if k < nb else d
        out[s:s + step] = np.sort(part, axis=1)[:, :k]
    return out


def _sample(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= size else np.sort(rng.choice(n, size=size, replace=False))


def _quantiles(x: np.ndarray) -> dict[str, float]:
    return {str(q): float(np.quantile(x, q)) for q in _QUANTILES}


def _hist(values: Mapping[str, np.ndarray]) -> dict[str, Any]:
    hi = max(float(v.max()) for v in values.values() if v.size)
    edges = np.linspace(0.0, hi if hi > 0 else 1.0, _BINS + 1)
    return {"edges": edges.tolist(),
            **{k: (np.histogram(v, bins=edges)[0] / max(1, v.size)).tolist()
               for k, v in values.items()}}


def _roc_points(member: np.ndarray, nonmember: np.ndarray) -> dict[str, list[float]]:
    """ROC of 'member when distance <= t', thinned to at most ``_ROC_POINTS`` points."""
    from secured_bio.privacy.assess.membership import _roc

    fpr, tpr = _roc(-member, -nonmember)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), _ROC_POINTS)).astype(int))
    return {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()}


def _canonical_rows(data: dict[str, np.ndarray], kinds: dict[str, str]) -> list[tuple[Any, ...]]:
    cols = []
    for c, kind in kinds.items():
        if kind == "categorical":
            cols.append(data[c].astype(str).tolist())
        else:
            cols.append([None if not math.isfinite(v) else round(float(v), 9)
                         for v in data[c].tolist()])
    return list(zip(*cols, strict=True))


def _attack_frame(data: dict[str, np.ndarray], kinds: dict[str, str]) -> pd.DataFrame:
    """Return the table as strings the anonymeter-style attacks parse (ISO dates)."""
    import pandas as pd

    cols: dict[str, Any] = {}
    for c, kind in kinds.items():
        if kind == "categorical":
            cols[c] = data[c].astype(str)
        elif kind == "date":
            d = pd.Timestamp("1970-01-01") + pd.to_timedelta(data[c], unit="D")
            cols[c] = np.where(np.isfinite(data[c]), d.strftime("%Y-%m-%d"), "*")
        else:
            cols[c] = np.array([repr(float(v)) if math.isfinite(v) else "*" for v in data[c]])
    return pd.DataFrame(cols)


def _privacy(data: dict[str, dict[str, np.ndarray]], kinds: dict[str, str], target: str | None,
             n_attacks: int, max_rows: int, seed: int) -> dict[str, Any]:
    from secured_bio.privacy.assess.attacks import inference, linkability, singling_out
    from secured_bio.privacy.assess.membership import membership_inference

    rng = np.random.default_rng(seed)
    n = {k: len(next(iter(v.values()))) for k, v in data.items()}
    has_holdout = "holdout" in data
    out: dict[str, Any] = {}
    # Exact copies: synthetic rows equal to a training row on every evaluated column.
    train_rows = set(_canonical_rows(data["train"], kinds))
    syn_rows = _canonical_rows(data["synthetic"], kinds)
    copies = [r in train_rows for r in syn_rows]
    out["exact_copies"] = {
        "count": int(sum(copies)), "share": float(np.mean(copies)),
        "distinct_training_rows_copied": len({r for r, c in zip(syn_rows, copies, strict=True)
                                              if c}),
    }
    if has_holdout:
        hold_rows = _canonical_rows(data["holdout"], kinds)
        out["exact_copies"]["holdout_rows_in_train_share"] = float(
            np.mean([r in train_rows for r in hold_rows]))
    gower = _Gower(data, kinds)
    # The attack: distance of each real record to its closest synthetic record.
    if has_holdout:
        m = min(n["train"], n["holdout"], max_rows)
        d_in = _nearest(gower, "train", _sample(n["train"], m, rng), "synthetic")[:, 0]
        d_out = _nearest(gower, "holdout", _sample(n["holdout"], m, rng), "synthetic")[:, 0]
        mia = membership_inference(d_in, d_out, higher_is_member=False)
        out["membership_inference"] = {
            "attack": "distance_to_closest_synthetic_record",
            "description": (
                "For each real record the attacker computes its Gower distance to the closest "
                "synthetic record and says 'member' (was in the training data) when it is "
                "small. Members are training rows, non-members hold-out rows (equal numbers). "
                "AUC 0.5: the synthetic data does not reveal who was in the training data; "
                "1.0: it reveals every member. TPR at low FPR is the share of members found "
                "while almost never accusing a non-member."),
            **mia,
            "median_distance_members": float(np.median(d_in)),
            "median_distance_nonmembers": float(np.median(d_out)),
            "roc": _roc_points(d_in, d_out),
            "reason": None,
        }
    else:
        out["membership_inference"] = {
            "attack": "distance_to_closest_synthetic_record", "auc": None, "auc_ci": None,
            "reason": "no hold-out table: non-members are needed to run the attack"}
    # Secondary: DCR and NNDR of synthetic rows to training rows, hold-out rows as reference.
    sets = {"synthetic": _sample(n["synthetic"], max_rows, rng)}
    if has_holdout:
        sets["holdout"] = _sample(n["holdout"], max_rows, rng)
    dcr: dict[str, np.ndarray] = {}
    nndr: dict[str, np.ndarray] = {}
    for k, rows in sets.items():
        nn = _nearest(gower, k, rows, "train", k=2)
        dcr[k] = nn[:, 0]
        if nn.shape[1] == 2:
            with np.errstate(invalid="ignore", divide="ignore"):
                nndr[k] = np.where(nn[:, 1] > 0, nn[:, 0] / nn[:, 1], 1.0)
    out["dcr"] = {
        "distance": "Gower", "to": "train",
        "quantiles": {k: _quantiles(v) for k, v in dcr.items()},
        "share_closer_than_holdout_5th_percentile": (
            float(np.mean(dcr["synthetic"] < np.quantile(dcr["holdout"], 0.05)))
            if has_holdout else None),
        "histogram": _hist(dcr),
        "reason": None if has_holdout else "no hold-out table: no reference distribution",
    }
    out["nndr"] = {
        "to": "train", "quantiles": {k: _quantiles(v) for k, v in nndr.items()},
        "reason": None if nndr else "fewer than 2 training rows",
    }
    # Anonymeter's attacks (Giomi et al. 2023), the hold-out as control set.
    # The real tables are subsampled to max_rows (the attacks draw their targets from them);
    # the release is kept whole, since the attacker uses all of it.
    frames = {}
    for k, v in data.items():
        rows = np.arange(n[k]) if k == "synthetic" else _sample(n[k], max_rows, rng)
        frames[k] = _attack_frame({c: x[rows] for c, x in v.items()}, kinds)
    cols = list(kinds)
    control = frames.get("holdout")
    risks: dict[str, Any] = {
        "singling_out": singling_out(frames["train"], frames["synthetic"], control,
                                     columns=cols, n_attacks=n_attacks, seed=seed)}
    if len(cols) >= 2:
        half = (len(cols) + 1) // 2
        risks["linkability"] = linkability(frames["train"], frames["synthetic"], control,
                                           aux_cols=(cols[:half], cols[half:]),
                                           n_attacks=n_attacks, seed=seed)
        secret = target if target is not None else cols[-1]
        risks["inference"] = inference(frames["train"], frames["synthetic"], control,
                                       aux_cols=[c for c in cols if c != secret], secret=secret,
                                       n_attacks=n_attacks, seed=seed)
    else:
        for name in ("linkability", "inference"):
            risks[name] = {"attack": name, "risk": None, "risk_ci": None,
                           "reason": "needs at least 2 columns"}
    out["attacks"] = risks
    out["control_set"] = "holdout" if has_holdout else None
    return out


def _prepare(tables: Mapping[str, pd.DataFrame], cols: list[str], target: str | None
             ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str]]:
    """Decide column kinds on all tables together and convert every column."""
    kinds = {c: _column_kind([t[c] for t in tables.values()]) for c in cols}
    data = {k: {c: (_as_labels(t[c]) if kinds[c] == "categorical" else _as_numbers(t[c], kinds[c]))
                for c in cols} for k, t in tables.items()}
    if target is not None:
        for k in data:
            data[k][target] = _as_labels(tables[k][target])
        n_classes = len(set(np.concatenate([data[k][target] for k in data]).tolist()))
        if n_classes > _MAX_CLASSES:
            raise ConfigError("target has too many classes for AUROC", where=f"target:{target}",
                              expected=f"2 to {_MAX_CLASSES} classes", got=f"{n_classes}",
                              fix="choose a class column, or bin a continuous target")
        kinds[target] = "categorical"  # a class label, whatever its spelling
    return data, kinds


def validation_scores(train: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame, *,
                      target: str | None = None, seed: int = 0, max_rows: int = 2000
                      ) -> dict[str, Any]:
    """Return the figures a generator is chosen on (``--method auto``), without attacks.

    Same definitions as :func:`evaluate_synthetic` (its fidelity summary, its TSTR/TRTR
    utility and its distance-to-closest-record membership attack, exact copies), but not
    anonymeter's attacks, the DCR/NNDR or the plots: a few seconds per candidate.

    Parameters
    ----------
    train, synthetic, holdout
        Rows the generator saw, its output, and real rows it did not see (same columns).
    target
        Class column for the utility figures (None: no utility).
    seed
        Seed of the models and subsamples.
    max_rows
        Largest number of rows per table in the membership attack.

    Returns
    -------
    dict
        ``column_similarity``, ``mean_abs_pearson_difference``, ``tstr_auroc``,
        ``trtr_auroc``, ``utility_ratio``, ``membership_auc``, ``exact_copy_share``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> def draw(n):
    ...     x = rng.normal(size=n)
    ...     return pd.DataFrame({"x": x, "y": (x + rng.normal(size=n) > 0).astype(int)})
    >>> s = validation_scores(draw(100), draw(100), draw(100), target="y")
    >>> s["exact_copy_share"], s["membership_auc"] < 0.7
    (0.0, True)
    """
    from secured_bio.privacy.assess.membership import membership_inference

    tables = {"train": _check_frame(train, "train"),
              "synthetic": _check_frame(synthetic, "synthetic"),
              "holdout": _check_frame(holdout, "holdout")}
    cols = _check_columns(None, tables)
    data, kinds = _prepare(tables, cols, target)
    summary = _fidelity(data, kinds)["summary"]
    util = _utility(data, kinds, target, seed)
    rng = np.random.default_rng(seed)
    n = {k: len(next(iter(v.values()))) for k, v in data.items()}
    train_rows = set(_canonical_rows(data["train"], kinds))
    copies = [r in train_rows for r in _canonical_rows(data["synthetic"], kinds)]
    gower = _Gower(data, kinds)
    m = min(n["train"], n["holdout"], max_rows)
    d_in = _nearest(gower, "train", _sample(n["train"], m, rng), "synthetic")[:, 0]
    d_out = _nearest(gower, "holdout", _sample(n["holdout"], m, rng), "synthetic")[:, 0]
    mia = membership_inference(d_in, d_out, higher_is_member=False)
    return {"column_similarity": summary["column_similarity"],
            "mean_abs_pearson_difference": summary["mean_abs_pearson_difference"],
            "tstr_auroc": util["tstr_auroc"], "trtr_auroc": util["trtr_auroc"],
            "utility_ratio": util["ratio"], "membership_auc": float(mia["auc"]),
            "exact_copy_share": float(np.mean(copies))}


# ----------------------------------------------------------------------- entry point
def evaluate_synthetic(
    train: pd.DataFrame,
    synthetic: pd.DataFrame,
    *,
    holdout: pd.DataFrame | None = None,
    target: str | None = None,
    columns: Sequence[str] | str | None = None,
    seed: int = 0,
    n_attacks: int = 200,
    max_rows: int = 2000,
) -> dict[str, Any]:
    """Evaluate a synthetic table's fidelity, utility and privacy against the real data.

    Column kinds are decided on all tables together: ``numeric`` (every value a number),
    ``date`` (every value an ISO ``YYYY-MM-DD`` date or a datetime column; compared as day
    numbers) or ``categorical`` (anything else, compared as strings).  See the module
    docstring for the figures and their references.

    Parameters
    ----------
    train
        The real rows the generator was fitted on.
    synthetic
        The synthetic rows, with the same columns.
    holdout
        Real rows of the same population that the generator did NOT see.  Needed for utility
        (models are tested on it), for the membership attack (its non-members), as the DCR
        reference and as the anonymeter control set; without it those figures are null with a
        ``reason``.
    target
        Class column for the utility figures (binary or up to 20 classes).
    columns
        Columns to evaluate (default: all columns of ``train``, which ``synthetic`` must share).
    seed
        Seed of the subsamples, models and attacks.
    n_attacks
        Attacks per anonymeter evaluation.
    max_rows
        Largest number of rows per table used for the distance computations (a random
        subsample beyond; exact copies use all rows).

    Returns
    -------
    dict
        JSON-serialisable: ``format``, ``format_version``, ``n_rows`` (per table),
        ``columns`` (name -> kind), ``target``, ``seed``, ``fidelity`` (``columns``,
        ``pairs``, ``summary``), ``utility`` and ``privacy`` (``membership_inference``: the
        attack; ``exact_copies``, ``dcr``, ``nndr``, ``attacks``).

    Raises
    ------
    InputError
        If a table is not a DataFrame or is empty.
    SchemaError
        If ``synthetic`` (or ``holdout``) lacks a column of ``train``, or has extra ones when
        ``columns`` is not given, or ``target`` is not an evaluated column.
    ConfigError
        If ``target`` has more than 20 classes, or ``n_attacks``/``max_rows``/``seed`` are
        out of range.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> def draw(n):
    ...     x = rng.normal(size=n)
    ...     return pd.DataFrame({"x": x, "g": rng.choice(["a", "b"], n),
    ...                          "y": (x + rng.normal(size=n) > 0).astype(int)})
    >>> train, holdout, synth = draw(100), draw(100), draw(100)
    >>> r = evaluate_synthetic(train, train, holdout=holdout, target="y", n_attacks=20)
    >>> r["privacy"]["exact_copies"]["share"], r["privacy"]["membership_inference"]["auc"]
    (1.0, 1.0)
    >>> r = evaluate_synthetic(train, synth, holdout=holdout, target="y", n_attacks=20)
    >>> r["privacy"]["exact_copies"]["share"], r["utility"]["tstr_auroc"] > 0.6
    (0.0, True)
    """
    seed = _check_n(seed, "seed", 0)
    n_attacks = _check_n(n_attacks, "n_attacks")
    max_rows = _check_n(max_rows, "max_rows", 2)
    tables = {"train": _check_frame(train, "train"),
              "synthetic": _check_frame(synthetic, "synthetic")}
    if holdout is not None:
        tables["holdout"] = _check_frame(holdout, "holdout")
    cols = _check_columns(columns, tables)
    if target is not None and target not in cols:
        raise SchemaError("target is not an evaluated column", where=f"target:{target}",
                          expected=f"one of the {len(cols)} columns",
                          got="a name not among them",
                          fix=did_you_mean(target, cols) or "choose a class column")
    data, kinds = _prepare(tables, cols, target)
    report: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "n_rows": {k: len(t) for k, t in tables.items()},
        "columns": kinds, "target": target, "seed": seed,
        "settings": {"n_attacks": n_attacks, "max_rows": max_rows,
                     "distance": "Gower (Gower 1971)"},
    }
    report["fidelity"] = _fidelity(data, kinds)
    report["utility"] = _utility(data, kinds, target, seed)
    report["privacy"] = _privacy(data, kinds, target, n_attacks, max_rows, seed)
    return report
