"""Bias audit of an anonymized release: who pays for the privacy, group by group.

Suppression and coarse generalization do not fall evenly: a small group whose
quasi-identifiers are rare (an unusual age range, a rural postcode) is merged with its
neighbours into wide classes, or suppressed, and every model trained on the release then
sees it blurred or not at all.  :func:`group_audit` reports, for each grouping column (the
sensitive attribute and any ``--groups`` column) and each of its groups, the share of the
group's records that were suppressed and the mean information loss (NCP, Xu et al. 2006) of
its records, against the same figures over all records, and flags the groups that pay clearly
more.  :func:`target_auroc_by_group` measures what that costs a downstream model: the
per-group AUROC of a model trained on a release against one trained on the original records,
both tested on held-out original records.

Flag rule (:data:`FLAG_RATIO`, :data:`FLAG_EXCESS`): a group is flagged ``suppressed`` when
all its records were suppressed, or when its suppressed share is at least ``FLAG_RATIO`` (2)
times the overall share and at least ``FLAG_EXCESS`` (0.2) above it; it is flagged
``generalized`` when its mean NCP, over all quasi-identifiers or over any one of them, is at
least 2 times the same figure over all records and at least 0.2 above it (a rare age range
merged into one wide interval shows in the age column even when the other quasi-identifiers
dilute the mean).  Both conditions are needed: the ratio alone would flag noise when the
overall figure is tiny, the difference alone would flag ordinary variation when it is large.

Privacy: like the fairness audit (:mod:`secured_bio.privacy.assess.fairness`), the output
holds the labels of the declared grouping columns, counts and aggregate figures, never a
record or a record's identifier.  A group smaller than k is marked ``small``: its aggregates
concern fewer than k people, so review it before the report leaves the data holder.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from secured_bio.errors import ConfigError

__all__ = ["FLAG_EXCESS", "FLAG_RATIO", "MAX_GROUPS", "group_audit", "release_group_audit",
           "summary_lines", "target_auroc_by_group"]

#: A group's figure must be at least this many times the overall figure to be flagged ...
FLAG_RATIO = 2.0
#: ... and at least this much above it (absolute, on the 0-1 scale of shares and NCP).
FLAG_EXCESS = 0.2
#: Grouping columns with more distinct values than this are skipped (with the reason).
MAX_GROUPS = 50

RULE = (f"flagged 'suppressed' if every record of the group was suppressed, or its suppressed "
        f"share is >= {FLAG_RATIO:g} x the overall share and >= {FLAG_EXCESS:g} above it; "
        f"flagged 'generalized' if its mean NCP (over all quasi-identifiers, or over any one) "
        f"is >= {FLAG_RATIO:g} x the overall figure and >= {FLAG_EXCESS:g} above it")


def _exceeds(value: float, overall: float) -> bool:
    return value >= FLAG_RATIO * overall and value - overall >= FLAG_EXCESS - 1e-12


def group_audit(df: pd.DataFrame, *, keep: NDArray[np.bool_], loss: NDArray[np.float64],
                columns: Sequence[str], qi: Sequence[str] | None = None,
                k: int = 1) -> dict[str, Any]:
    """Suppression and information loss of each group of each grouping column.

    Parameters
    ----------
    df
        The input table (one row per input record, in the order of ``keep`` and ``loss``).
    keep
        Which input records are released.
    loss
        (records x quasi-identifiers) NCP of each cell (1 for suppressed records).
    columns
        Grouping columns (e.g. the sensitive column and declared groups such as ``sex``).
    qi
        Names of the columns of ``loss`` (default ``qi0``, ``qi1``...).
    k
        The k of the release: groups with fewer records are marked ``small``.

    Returns
    -------
    dict
        ``rule`` (the flag rule, in words), ``overall`` (``n``, ``suppressed``,
        ``suppressed_fraction``, ``ncp``, ``ncp_per_qi``), ``columns`` (per column,
        ``groups``: per group label ``n``, ``suppressed``, ``suppressed_fraction``, ``ncp``,
        ``ncp_per_qi``, ``small``, ``flags`` and ``generalized_qi``; or ``skipped`` with the
        reason) and ``flagged`` (``column``, ``group``, ``n``, ``flags`` and
        ``generalized_qi`` of every flagged group).

    Examples
    --------
    >>> df = pd.DataFrame({"sex": ["F", "F", "M", "M"]})
    >>> a = group_audit(df, keep=np.array([True, True, True, False]),
    ...                 loss=np.array([[0.0], [0.0], [0.1], [1.0]]), columns=["sex"])
    >>> a["columns"]["sex"]["groups"]["M"]["suppressed_fraction"], a["flagged"][0]["flags"]
    (0.5, ['suppressed', 'generalized'])
    """
    n = len(keep)
    loss = np.asarray(loss, dtype=np.float64).reshape(n, -1)
    names = list(qi) if qi is not None else [f"qi{i}" for i in range(loss.shape[1])]
    record_ncp = loss.mean(axis=1) if loss.size else np.zeros(n)
    overall_qi = loss.mean(axis=0) if n else np.zeros(loss.shape[1])
    sup = ~np.asarray(keep, dtype=bool)
    overall_sf = float(sup.mean()) if n else 0.0
    overall_ncp = float(record_ncp.mean()) if n else 0.0
    out: dict[str, Any] = {
        "rule": RULE,
        "overall": {"n": n, "suppressed": int(sup.sum()),
                    "suppressed_fraction": round(overall_sf, 6), "ncp": round(overall_ncp, 6),
                    "ncp_per_qi": {q: round(float(v), 6) for q, v in zip(names, overall_qi,
                                                                         strict=True)}},
        "columns": {},
        "flagged": [],
    }
    for col in dict.fromkeys(columns):
        values = df[col].astype(str).to_numpy()
        labels, inverse = np.unique(values, return_inverse=True)
        if len(labels) > MAX_GROUPS:
            out["columns"][col] = {"skipped": f"{len(labels)} distinct values (more than "
                                              f"{MAX_GROUPS}): not a grouping column"}
            continue
        groups: dict[str, Any] = {}
        for g, label in enumerate(labels):
            members = inverse.reshape(-1) == g
            size = int(members.sum())
            n_sup = int(sup[members].sum())
            sf = n_sup / size
            ncp = float(record_ncp[members].mean())
            per_qi = loss[members].mean(axis=0)
            wide = [q for q, v, o in zip(names, per_qi, overall_qi, strict=True)
                    if _exceeds(float(v), float(o))]
            flags = []
            if n_sup == size or _exceeds(sf, overall_sf):
                flags.append("suppressed")
            if _exceeds(ncp, overall_ncp) or wide:
                flags.append("generalized")
            groups[str(label)] = {
                "n": size, "suppressed": n_sup, "suppressed_fraction": round(sf, 6),
                "ncp": round(ncp, 6),
                "ncp_per_qi": {q: round(float(v), 6) for q, v in zip(names, per_qi,
                                                                     strict=True)},
                "small": size < k, "flags": flags, "generalized_qi": wide}
            if flags:
                out["flagged"].append({"column": col, "group": str(label), "n": size,
                                       "flags": flags, "generalized_qi": wide})
        out["columns"][col] = {"groups": groups}
    return out


# ------------------------------------------------------------------------ downstream model
def _binary_target(values: pd.Series, target: str) -> tuple[NDArray[np.bool_], str]:
    labels = sorted(values.astype(str).unique())
    if len(labels) != 2:
        raise ConfigError("the target column is not binary", where=f"--target {target}",
                          expected="exactly 2 distinct values",
                          got=f"{len(labels)} distinct values",
                          fix="choose a binary outcome column (e.g. 0/1)")
    # the later value in sorted order is the positive class ("1", "true", "yes")
    return (values.astype(str) == labels[1]).to_numpy(), labels[1]


def _value_to_label(original: pd.Series, released: pd.Series) -> dict[str, str]:
    """Most frequent released label of each original value (released records only)."""
    pairs = pd.DataFrame({"v": original.astype(str).to_numpy(),
                          "l": released.astype(str).to_numpy()})
    counts = pairs.groupby(["v", "l"], sort=True).size().reset_index(name="n")
    best = counts.sort_values(["v", "n"], ascending=[True, False], kind="stable")
    return dict(best.drop_duplicates("v")[["v", "l"]].itertuples(index=False, name=None))


def _generalize(values: pd.Series, mapping: Mapping[str, str]) -> pd.Series:
    """Map held-out original values into the release's labels (see target_auroc_by_group)."""
    s = values.astype(str)
    out = s.map(mapping)
    missing = out.isna()
    if missing.any() and mapping:
        seen = pd.to_numeric(pd.Series(list(mapping)), errors="coerce")
        asked = pd.to_numeric(s[missing], errors="coerce")
        if seen.notna().all() and asked.notna().all():
            keys = np.array(list(mapping))
            nums = seen.to_numpy(dtype=float)
            nearest = np.abs(asked.to_numpy(dtype=float)[:, None] - nums[None, :]).argmin(axis=1)
            out[missing] = [mapping[keys[i]] for i in nearest]
    return out.fillna("")


def _fit_predict(train: pd.DataFrame, y: NDArray[np.bool_], test: pd.DataFrame
                 ) -> NDArray[np.float64]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    enc = OneHotEncoder(handle_unknown="ignore")
    x = enc.fit_transform(train.astype(str))
    model = LogisticRegression(max_iter=1000).fit(x, y)
    return np.asarray(model.predict_proba(enc.transform(test.astype(str)))[:, 1], dtype=float)


def _auroc(y: NDArray[np.bool_], score: NDArray[np.float64]) -> tuple[float | None, str | None]:
    from sklearn.metrics import roc_auc_score

    if y.all() or not y.any():
        return None, "the group's held-out records have a single outcome"
    return round(float(roc_auc_score(y, score)), 6), None


def target_auroc_by_group(df: pd.DataFrame, *, target: str, qi: Sequence[str],
                          columns: Sequence[str], anonymizer: Any,
                          test_fraction: float = 0.3, seed: int = 0) -> dict[str, Any]:
    """Per-group AUROC of a model trained on a release vs one trained on the original records.

    The records are split once (seeded, stratified by the target) into training and held-out
    records.  The training records are anonymized with ``anonymizer`` (the same options as
    the release); a logistic regression on the one-hot quasi-identifiers is trained on the
    release (its generalized labels as categories) and another on the original training
    records.  Both are tested on the held-out *original* records: for the release model each
    held-out value is first mapped into the release's generalization, to the label that the
    anonymizer gave most often to that value among the released training records (a numeric
    value not seen there takes the label of the nearest value seen; any other unseen value
    has no label, an all-zero one-hot row).

    Parameters
    ----------
    df
        Input table.
    target
        Binary outcome column (the later value in sorted order is the positive class).
    qi
        Quasi-identifiers: the model's features.
    columns
        Grouping columns (as :func:`group_audit`).
    anonymizer
        ``callable(DataFrame) -> Anonymized`` with the release's options.
    test_fraction, seed
        Share of records held out, and the seed of the split.

    Returns
    -------
    dict
        ``target``, ``positive_label``, ``model``, ``n_train``, ``n_test``, ``overall`` and,
        per column and group, ``n_test``, ``auroc_original``, ``auroc_release`` and ``gap``
        (original minus release; None with a ``reason`` when the group's held-out records
        have a single outcome).

    Raises
    ------
    ConfigError
        If the target is not binary or is a quasi-identifier.
    """
    from sklearn.model_selection import train_test_split

    if target in qi:
        raise ConfigError("the target column is a quasi-identifier", where="--target",
                          fix="choose an outcome column that is not in --qi")
    y_all, positive = _binary_target(df[target], target)
    idx = np.arange(len(df))
    train_idx, test_idx = train_test_split(idx, test_size=test_fraction, random_state=seed,
                                           stratify=y_all)
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    train = df.iloc[train_idx].reset_index(drop=True)
    test = df.iloc[test_idx].reset_index(drop=True)
    y_train, y_test = y_all[train_idx], y_all[test_idx]
    released = anonymizer(train)
    keep = np.asarray(released.keep, dtype=bool)
    rel = released.table
    cols = list(qi)
    maps = {q: _value_to_label(train.loc[keep, q], rel[q]) for q in cols}
    test_gen = pd.DataFrame({q: _generalize(test[q], maps[q]) for q in cols})
    score_orig = _fit_predict(train[cols], y_train, test[cols])
    score_rel = _fit_predict(rel[cols], y_train[keep], test_gen)

    def figures(mask: NDArray[np.bool_]) -> dict[str, Any]:
        a_o, why = _auroc(y_test[mask], score_orig[mask])
        a_r, _ = _auroc(y_test[mask], score_rel[mask])
        entry: dict[str, Any] = {"n_test": int(mask.sum()), "auroc_original": a_o,
                                 "auroc_release": a_r,
                                 "gap": None if a_o is None or a_r is None
                                 else round(a_o - a_r, 6)}
        if why:
            entry["reason"] = why
        return entry

    out: dict[str, Any] = {
        "target": target, "positive_label": positive,
        "model": "logistic regression on one-hot quasi-identifiers",
        "n_train": len(train), "n_train_released": int(keep.sum()), "n_test": len(test),
        "test_fraction": test_fraction, "seed": seed,
        "overall": figures(np.ones(len(test), dtype=bool)), "columns": {},
    }
    for col in dict.fromkeys(columns):
        values = test[col].astype(str)
        if df[col].astype(str).nunique() > MAX_GROUPS:
            out["columns"][col] = {"skipped": f"more than {MAX_GROUPS} distinct values"}
            continue
        out["columns"][col] = {"groups": {str(g): figures((values == g).to_numpy())
                                          for g in sorted(df[col].astype(str).unique())}}
    return out


# ------------------------------------------------------------------------ summary
def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def summary_lines(bias: dict[str, Any]) -> list[str]:
    """Warning lines for the flagged groups of a bias audit, and the AUROC summary.

    Parameters
    ----------
    bias
        The report's ``bias`` section
        (:func:`group_audit` or :func:`release_group_audit`).

    Returns
    -------
    list of str
        One line per flagged group (counts and figures, labels of declared groups only),
        and one line of overall AUROC when a target was evaluated.
    """
    o = bias["overall"]
    lines = []
    for f in bias["flagged"]:
        g = bias["columns"][f["column"]]["groups"][f["group"]]
        what = []
        if "suppressed" in f["flags"]:
            what.append(f"{100 * g['suppressed_fraction']:.0f}% suppressed vs "
                        f"{100 * o['suppressed_fraction']:.0f}% overall")
        if "generalized" in f["flags"]:
            wide = f.get("generalized_qi") or []
            what.append(f"NCP {g['ncp']:.3f} vs {o['ncp']:.3f} overall"
                        + (f" (over-generalized: {', '.join(wide)})" if wide else ""))
        lines.append(f"warning: bias: group {f['column']}={f['group']} ({f['n']} records) "
                     f"pays more for the anonymization: " + "; ".join(what))
    if "target" in bias:
        t = bias["target"]["overall"]
        lines.append(f"bias: AUROC on held-out original records: model trained on the "
                     f"original {_fmt(t['auroc_original'])}, on a release "
                     f"{_fmt(t['auroc_release'])} (per group in the report)")
    return lines


# ------------------------------------------------------------------- from released labels
def _pattern_covers(label: str, value: str) -> bool:
    """Whether a masked or truncated label (``751**``, ``2024-03``) covers an original value."""
    if "*" in label:
        stem = label.rstrip("*")
        return len(value) == len(label) and value.startswith(stem) if stem else True
    return value.startswith(label)


def _label_ncp(labels: pd.Series, original: pd.Series) -> NDArray[np.float64]:
    """NCP of each released label, estimated from the label and the original column.

    Numeric columns: an interval ``[lo-hi]`` costs (hi - lo) / (max - min) of the original
    column, a number 0.  Other columns: the share of the other distinct original values the
    label also covers, (covered - 1) / (distinct - 1) (Xu et al. 2006's categorical NCP with a
    flat taxonomy; masked labels ``751**`` and truncated dates ``2024-03`` cover by prefix).
    ``*`` costs 1.  A label that cannot be read is NaN (left out of the means).
    """
    import re

    out = np.full(len(labels), np.nan)
    orig_num = pd.to_numeric(original, errors="coerce")
    numeric = bool(orig_num.notna().all()) and len(original) > 0
    distinct = sorted(original.astype(str).unique())
    span = float(orig_num.max() - orig_num.min()) if numeric else 0.0
    cache: dict[str, float] = {}
    for i, label in enumerate(labels.astype(str)):
        if label not in cache:
            cost = math.nan
            if label.strip("*") == "":
                cost = 1.0
            elif numeric:
                m = re.fullmatch(r"\[(-?[\d.]+)-(-?[\d.]+)\]", label)
                if m:
                    lo, hi = float(m.group(1)), float(m.group(2))
                    cost = (hi - lo) / span if span > 0 else 0.0
                elif not math.isnan(pd.to_numeric(label, errors="coerce")):
                    cost = 0.0
            if math.isnan(cost) and not numeric:
                if label in set(distinct):
                    cost = 0.0
                else:
                    covered = sum(_pattern_covers(label, v) for v in distinct)
                    if covered and len(distinct) > 1:
                        cost = (covered - 1) / (len(distinct) - 1)
            cache[label] = min(max(cost, 0.0), 1.0) if not math.isnan(cost) else math.nan
        out[i] = cache[label]
    return out


def release_group_audit(original: pd.DataFrame, released: pd.DataFrame, *,
                        qi: Sequence[str], columns: Sequence[str]) -> dict[str, Any]:
    """:func:`group_audit` from an original table and its release alone (no record mapping).

    For ``assess table``, which sees the two tables but not which released record came from
    which original one: a group's suppressed records are counted as original minus released
    records of the group (so the grouping columns must be released unchanged: not
    quasi-identifiers), and the NCP of its released records is estimated from their labels
    (see ``_label_ncp``: intervals, masks, truncated dates, ``*``), suppressed records
    costing 1.  The flag rule is :func:`group_audit`'s.

    Parameters
    ----------
    original, released
        The original records and the release.
    qi
        Quasi-identifiers (generalized in the release).
    columns
        Grouping columns, present in both tables and not quasi-identifiers.

    Returns
    -------
    dict
        As :func:`group_audit` (``overall``, ``columns``, ``flagged``, ``rule``), plus
        ``ncp_estimated_from_labels``.

    Raises
    ------
    ConfigError
        If a grouping column is a quasi-identifier or missing from a table.
    """
    qi = list(qi)
    for col in columns:
        if col in qi:
            raise ConfigError("a grouping column is a quasi-identifier", where=f"--groups {col}",
                              expected="a column released unchanged",
                              fix="group by columns that are not in --qi")
        for name, table in (("original", original), ("released", released)):
            if col not in table.columns:
                raise ConfigError("a grouping column is missing", where=f"--groups {col}",
                                  expected=f"a column of the {name} table",
                                  got=f"{len(table.columns)} other columns",
                                  fix="name a column present in both tables")
    cost = np.column_stack([_label_ncp(released[q], original[q]) for q in qi]) if qi \
        else np.zeros((len(released), 0))
    n = len(original)
    n_sup = max(n - len(released), 0)

    def summary(rows: NDArray[np.bool_], n_orig: int) -> tuple[int, float, float,
                                                                 NDArray[np.float64]]:
        sup = max(n_orig - int(rows.sum()), 0)
        # per QI: mean over the group's original records, suppressed ones costing 1
        sums = np.nansum(cost[rows], axis=0) + sup
        per_qi = sums / n_orig if n_orig else np.zeros(len(qi))
        return sup, sup / n_orig if n_orig else 0.0, float(per_qi.mean()) if qi else 0.0, per_qi

    _, overall_sf, overall_ncp, overall_qi = summary(np.ones(len(released), dtype=bool), n)
    out: dict[str, Any] = {
        "rule": RULE, "ncp_estimated_from_labels": True,
        "overall": {"n": n, "suppressed": n_sup, "suppressed_fraction": round(overall_sf, 6),
                    "ncp": round(overall_ncp, 6),
                    "ncp_per_qi": {q: round(float(v), 6) for q, v in zip(qi, overall_qi,
                                                                         strict=True)}},
        "columns": {}, "flagged": [],
    }
    for col in dict.fromkeys(columns):
        o_vals = original[col].astype(str)
        r_vals = released[col].astype(str).to_numpy()
        labels = sorted(o_vals.unique())
        if len(labels) > MAX_GROUPS:
            out["columns"][col] = {"skipped": f"{len(labels)} distinct values (more than "
                                              f"{MAX_GROUPS}): not a grouping column"}
            continue
        groups: dict[str, Any] = {}
        for label in labels:
            size = int((o_vals == label).sum())
            sup, sf, ncp, per_qi = summary(r_vals == label, size)
            wide = [q for q, v, o in zip(qi, per_qi, overall_qi, strict=True)
                    if _exceeds(float(v), float(o))]
            flags = []
            if sup == size or _exceeds(sf, overall_sf):
                flags.append("suppressed")
            if _exceeds(ncp, overall_ncp) or wide:
                flags.append("generalized")
            groups[label] = {"n": size, "suppressed": sup, "suppressed_fraction": round(sf, 6),
                             "ncp": round(ncp, 6),
                             "ncp_per_qi": {q: round(float(v), 6)
                                            for q, v in zip(qi, per_qi, strict=True)},
                             "flags": flags, "generalized_qi": wide}
            if flags:
                out["flagged"].append({"column": col, "group": label, "n": size,
                                       "flags": flags, "generalized_qi": wide})
        out["columns"][col] = {"groups": groups}
    return out
