"""Tabular anonymization: read a CSV, generalize and suppress, verify with pycanon, report.

:func:`anonymize` is the library function (DataFrame in, :class:`Anonymized` out);
:func:`anonymize_csv` reads and writes files (both outputs atomically, together) and is what
``secured-bio anonymize table`` calls.  Every release is re-checked by pycanon (an independent
implementation of k-anonymity, l-diversity and t-closeness) and both figures go in the report.
The check fails closed: when the achieved k, l or t is below the request (by our figures or
pycanon's) or the two disagree, :func:`anonymize` raises and nothing is written.

Privacy rule: errors, logs and the report hold column names, counts and released labels
(which are in the release anyway), never input values.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from secured_bio._inputs import require_dir
from secured_bio.errors import (
    ConfigError,
    InputError,
    UnknownColumnError,
    did_you_mean,
)
from secured_bio.privacy.anonymize import models as pm
from secured_bio.privacy.anonymize.hierarchies import Hierarchy, auto_hierarchy, read_hierarchy_csv
from secured_bio.privacy.anonymize.search import Problem, Release, lattice_search, mondrian

__all__ = [
    "Anonymized",
    "anonymize",
    "anonymize_csv",
    "read_table_csv",
    "load_hierarchies",
    "utility_metrics",
    "verify_with_pycanon",
    "METHODS",
    "REPORT_FORMAT",
    "REPORT_VERSION",
]

logger = logging.getLogger(__name__)

METHODS = ("mondrian", "lattice", "plain-mondrian")
"""Search methods: improved Mondrian (default), optimal lattice, plain Mondrian (baseline)."""
REPORT_FORMAT = "secured_bio.anonymize_table_report"
REPORT_VERSION = 1


@dataclass(frozen=True)
class Anonymized:
    """A release and its report.

    Attributes
    ----------
    table
        Released records: quasi-identifiers generalized, suppressed records removed, dropped
        columns removed, other columns unchanged.
    report
        JSON-able report (format, method, transformation, privacy figures by us and by
        pycanon, suppression, utility metrics, row counts, bias audit per group).
    keep
        Which input records are released (in the input's order); None if unknown.
    """

    table: pd.DataFrame
    report: dict[str, Any]
    keep: NDArray[np.bool_] | None = None


# ------------------------------------------------------------------------------- reading
def read_table_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a UTF-8 CSV as strings (leading zeros and exact values kept).

    Parameters
    ----------
    path
        CSV file with a header row.

    Returns
    -------
    pandas.DataFrame
        All columns as ``str``; empty fields are empty strings.

    Raises
    ------
    InputFileNotFoundError
        If the file does not exist.
    FormatError
        If it is not UTF-8, has no header, a duplicated column name or a row whose number of
        fields differs from the header's (the line number is given).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("zip,age\\n06000,41\\n")
    >>> read_table_csv(p).to_dict("list")
    {'zip': ['06000'], 'age': ['41']}
    """
    from secured_bio._csv import read_csv_strings

    return read_csv_strings(path, label="input", option="--in")


def load_hierarchies(df: pd.DataFrame, qi: Sequence[str],
                     folder: str | os.PathLike[str] | None = None) -> dict[str, Hierarchy]:
    """One hierarchy per quasi-identifier: ``<folder>/<column>.csv`` if present, else automatic.

    Raises
    ------
    InputFileNotFoundError
        If ``folder`` does not exist.
    FormatError, InputError
        If a hierarchy file is malformed or does not cover a value.

    Examples
    --------
    >>> df = pd.DataFrame({"age": ["31", "47"], "sex": ["F", "M"]})
    >>> {c: h.kind for c, h in load_hierarchies(df, ["age", "sex"]).items()}
    {'age': 'interval', 'sex': 'flat'}
    """
    out = {}
    d = Path(folder) if folder is not None else None
    if d is not None:
        require_dir(d, "hierarchy folder", option="--hierarchies",
                    expected="a folder of <column>.csv files")
    for col in qi:
        values = df[col].astype(str).to_numpy()
        if d is not None and (d / f"{col}.csv").is_file():
            out[col] = read_hierarchy_csv(d / f"{col}.csv", col, values)
        else:
            out[col] = auto_hierarchy(col, values)
    return out


# ------------------------------------------------------------------------------- checking
def _check_columns(df: pd.DataFrame, names: Sequence[str], option: str) -> None:
    for name in names:
        if name not in df.columns:
            hint = did_you_mean(name, [str(c) for c in df.columns])
            raise UnknownColumnError(
                f"column '{name}' is not in the table", where=option,
                expected="one of the CSV header's columns", got=f"{len(df.columns)} columns",
                fix=hint or "check the column names in the CSV header",
            )


def _sensitive_codes(values: pd.Series) -> tuple[NDArray[np.int64], int, bool, pd.Series]:
    """Codes of the sensitive values (numeric order when all are numbers)."""
    as_num = pd.to_numeric(values, errors="coerce")
    ordered = bool(as_num.notna().all() and np.isfinite(as_num.to_numpy(dtype=float)).all())
    col = as_num if ordered else values.astype(str)
    uniq, codes = np.unique(col.to_numpy(), return_inverse=True)
    return codes.reshape(-1).astype(np.int64), len(uniq), ordered, col


# ------------------------------------------------------------------------------- metrics
def utility_metrics(loss: NDArray[np.float64], classes: NDArray[np.int64],
                    keep: NDArray[np.bool_], *, k: int,
                    qi: Sequence[str]) -> dict[str, Any]:
    """Information-loss and utility figures of a release.

    Parameters
    ----------
    loss
        (input records x quasi-identifiers) NCP per cell (1 for suppressed records).
    classes
        Equivalence class of each *released* record.
    keep
        Which input records are released.
    k
        The k of k-anonymity (for C_avg).
    qi
        Quasi-identifier names (for the per-column NCP).

    Returns
    -------
    dict
        ``ncp`` (mean normalized certainty penalty over all input cells, Xu et al. 2006),
        ``ncp_per_qi``, ``discernibility`` (sum of squared class sizes plus n per suppressed
        record, Bayardo & Agrawal 2005), ``n_classes``, ``avg_class_size`` and ``c_avg``
        (average class size / k, LeFevre et al. 2006), ``suppressed``.

    Examples
    --------
    >>> m = utility_metrics(np.array([[0.5], [0.5], [1.0]]), np.array([0, 0]),
    ...                     np.array([True, True, False]), k=2, qi=["age"])
    >>> m["ncp"], m["discernibility"], m["c_avg"], m["suppressed"]
    (0.666667, 7.0, 1.0, 1)
    """
    n = len(keep)
    n_sup = int((~keep).sum())
    sizes = np.bincount(classes) if len(classes) else np.zeros(0, dtype=np.int64)
    sizes = sizes[sizes > 0]
    n_cls = len(sizes)
    avg = float(sizes.sum() / n_cls) if n_cls else 0.0
    return {
        "ncp": round(float(loss.mean()), 6) if loss.size else 0.0,
        "ncp_per_qi": {c: round(float(loss[:, i].mean()), 6) for i, c in enumerate(qi)},
        "discernibility": float((sizes.astype(np.float64) ** 2).sum() + n_sup * n),
        "n_classes": n_cls,
        "avg_class_size": round(avg, 6),
        "c_avg": round(avg / k, 6),
        "suppressed": n_sup,
    }


def _achieved(df: pd.DataFrame, qi: Sequence[str], sensitive: str | None,
              models: pm.PrivacyModels) -> dict[str, Any]:
    out: dict[str, Any] = {"k": pm.k_anonymity(df, qi)}
    if sensitive is not None:
        out["l_distinct"] = pm.distinct_l_diversity(df, qi, sensitive)
        out["l_entropy"] = round(pm.entropy_l_diversity(df, qi, sensitive), 9)
        if models.l is not None:
            c = pm.recursive_c_l_diversity(df, qi, sensitive, models.l)
            out["recursive_c_ratio"] = None if math.isinf(c) else round(c, 9)
        out["t"] = round(pm.t_closeness(df, qi, sensitive), 9)
    return out


def verify_with_pycanon(df: pd.DataFrame, qi: Sequence[str], sensitive: str | None, *,
                        l_kind: str | None = "distinct", t: bool = True) -> dict[str, Any]:
    """k, l and t of ``df`` as computed by pycanon (an independent implementation).

    pycanon loops over the classes in Python (about 1-2 ms per class and model), so only the
    models asked for are computed.

    Parameters
    ----------
    df
        Released table (numeric sensitive values as numbers, for the ordered EMD).
    qi, sensitive
        Column names.
    l_kind
        Which l-diversity to compute (``distinct``, ``entropy``, ``recursive``) or None.
    t
        Also compute t-closeness.

    Returns
    -------
    dict
        ``k``, and with a sensitive column ``l_distinct``; ``l_entropy`` (pycanon floors
        exp(entropy) to an integer); ``l_distinct`` and ``recursive_c`` for recursive (pycanon's
        own formula: it sorts the counts increasingly, so it is not the c of Machanavajjhala
        et al.); ``t``.

    Examples
    --------
    >>> df = pd.DataFrame({"age": ["a", "a", "b", "b"], "dx": ["x", "y", "x", "y"]})
    >>> verify_with_pycanon(df, ["age"], "dx")
    {'k': 2, 'l_distinct': 2, 't': 0.0}
    """
    import warnings

    from pycanon import anonymity

    cols = list(qi)
    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        # pycanon groups by a one-element list and reads `.groups`; pandas warns that the keys
        # will become tuples. pycanon uses only the groups' row indices, which do not change.
        warnings.filterwarnings("ignore", message=".*keys of `groups` will be a tuple.*")
        out["k"] = int(anonymity.k_anonymity(df, cols))
        if sensitive is not None:
            sa = [sensitive]
            if l_kind == "distinct":
                out["l_distinct"] = int(anonymity.l_diversity(df, cols, sa))
            elif l_kind == "entropy":
                out["l_entropy"] = int(anonymity.entropy_l_diversity(df, cols, sa))
            elif l_kind == "recursive":
                c, l_div = anonymity.recursive_c_l_diversity(df, cols, sa)
                out["l_distinct"] = int(l_div)
                out["recursive_c"] = (None if c is None or np.isnan(c) else float(c))
            if t:
                out["t"] = round(float(anonymity.t_closeness(df, cols, sa)), 9)
    return out


def _agree(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    ok = ours["k"] == theirs["k"]
    if "l_distinct" in theirs:
        ok &= ours["l_distinct"] == theirs["l_distinct"]
    if "l_entropy" in theirs:
        # pycanon floors exp(entropy); at an exact integer its rounding may give one less
        mine = ours["l_entropy"]
        ok &= theirs["l_entropy"] == math.floor(mine + 1e-6) or (
            abs(mine - round(mine)) < 1e-6 and theirs["l_entropy"] == round(mine) - 1)
    if "t" in theirs:
        ok &= abs(ours["t"] - theirs["t"]) < 1e-6
    return bool(ok)


def _model_checks(models: pm.PrivacyModels, figures: Mapping[str, Any], source: str
                  ) -> list[tuple[str, str, str, bool]]:
    """(model, requested, achieved, met) for each requested model, from one set of figures."""
    rows = [("k-anonymity", f"k >= {models.k}", f"k = {figures.get('k')}",
             figures.get("k") is not None and figures["k"] >= models.k)]
    if models.l is not None:
        if models.l_kind == "entropy":
            got = figures.get("l_entropy")
            rows.append(("entropy l-diversity", f"exp(entropy) >= {models.l}",
                         f"{got}", got is not None and got >= models.l))
        else:
            got = figures.get("l_distinct")
            rows.append((f"{models.l_kind} l-diversity", f"l >= {models.l}", f"l = {got}",
                         got is not None and got >= models.l))
        if models.l_kind == "recursive" and source == "ours":
            # pycanon's recursive c uses another formula (see verify_with_pycanon): ours only
            ratio = figures.get("recursive_c_ratio")
            assert models.c is not None
            rows.append(("recursive (c,l)-diversity", f"r1 / (rl + ... + rm) < {models.c}",
                         "inf" if ratio is None else f"{ratio}",
                         ratio is not None and ratio < models.c))
    if models.t is not None:
        got = figures.get("t")
        rows.append(("t-closeness", f"t <= {models.t}", f"t = {got}",
                     got is not None and got <= models.t + 1e-9))
    return rows


def _require_models(models: pm.PrivacyModels, achieved: Mapping[str, Any], method: str
                    ) -> None:
    """Raise unless our figures and pycanon's (when computed) meet every requested model.

    Raises
    ------
    InputError
        With one note per model: requested, ours, pycanon's (figures only, never values).
    """
    sources = [("ours", achieved["ours"])]
    if "pycanon" in achieved:
        sources.append(("pycanon", achieved["pycanon"]))
    failed: list[str] = []
    notes: list[str] = []
    for source, figures in sources:
        for model, requested, got, met in _model_checks(models, figures, source):
            notes.append(f"{model}: requested {requested}; {source}: {got}"
                         + ("" if met else "  <- NOT MET"))
            if not met:
                failed.append(f"{model} ({source})")
    disagree = "pycanon" in achieved and not achieved.get("agree", False)
    if not failed and not disagree:
        return
    what = ("the release does not meet the requested privacy models; nothing was released"
            if failed else "pycanon's privacy figures differ from ours; nothing was released")
    got = ", ".join(failed) + " not met" if failed else "ours and pycanon's figures differ"
    if failed and disagree:
        got += "; pycanon's figures also differ from ours"
    fix = ("allow more suppression (--max-suppression, with --method lattice), give coarser "
           "hierarchies (--hierarchies), use fewer quasi-identifiers (--qi), or relax the "
           "request (lower --k/--l, raise --t)")
    if not failed:
        fix = ("report this as a bug in secured_bio (or pycanon), with the command and "
               "pycanon's version; meanwhile try another --method")
    err = InputError(what, where=f"anonymize (method {method})",
                     expected="every requested model met, by us and by pycanon", got=got,
                     fix=fix)
    for note in notes:
        err.add_note(note)
    raise err


# ------------------------------------------------------------------------------- anonymize
def anonymize(
    df: pd.DataFrame,
    *,
    qi: Sequence[str],
    k: int,
    sensitive: str | None = None,
    l: int | None = None,  # noqa: E741 - the model's name
    l_kind: str = "distinct",
    c: float | None = None,
    t: float | None = None,
    hierarchies: Mapping[str, Hierarchy] | None = None,
    max_suppression: float = 0.05,
    method: str = "mondrian",
    drop: Sequence[str] = (),
    verify: bool = True,
    keep_unique: bool = False,
    groups: Sequence[str] = (),
    target: str | None = None,
    seed: int = 0,
) -> Anonymized:
    """Generalize and suppress quasi-identifiers until the privacy models hold.

    Parameters
    ----------
    df
        Input table (values are handled as strings, see :func:`read_table_csv`).
    qi
        Quasi-identifier columns.
    k
        k-anonymity: every released class holds at least k records.
    sensitive
        Sensitive column (needed by l-diversity and t-closeness; kept unchanged).
    l, l_kind, c
        l-diversity: ``distinct``, ``entropy`` or ``recursive`` (with ``c``).
    t
        t-closeness threshold (EMD, pycanon's definitions).
    hierarchies
        Hierarchy per quasi-identifier (missing ones: :func:`auto_hierarchy`).
    max_suppression
        Largest fraction of records that may be removed (lattice search; Mondrian never
        suppresses).
    method
        ``mondrian`` (default: strict Mondrian with nearest-allowable cuts, local
        recoding), ``lattice`` (optimal full-domain generalization with suppression) or
        ``plain-mondrian`` (LeFevre et al.'s median cuts, the baseline).
    drop
        Direct identifiers to remove from the release (e.g. ``patient_id``).
    verify
        Re-check the release with pycanon (k, and the l and t models requested); the
        release must then meet the request by pycanon's figures too.
    keep_unique
        Release a non-numeric column that holds a distinct value in every row (an apparent
        direct identifier such as a patient ID) unchanged.  By default such a column that
        is neither a quasi-identifier, sensitive nor dropped is refused.
    groups
        Grouping columns of the bias audit, besides the sensitive column (e.g. ``sex``,
        ``ethnicity``, ``site``).  The report's ``bias`` section gives, per group, the
        suppressed share and mean NCP of its records and flags the groups that pay clearly
        more than the whole (see :func:`secured_bio.privacy.anonymize.bias.group_audit`).
    target
        Binary outcome column: the bias audit then also gives the per-group AUROC of a
        model trained on a release vs on the original records, tested on held-out original
        records (see :func:`secured_bio.privacy.anonymize.bias.target_auroc_by_group`).
    seed
        Seed of the held-out split of the ``target`` evaluation.

    Returns
    -------
    Anonymized
        The released table and the report.

    Raises
    ------
    SchemaError
        If a named column is missing (with a did-you-mean hint).
    ConfigError
        If options are invalid or contradictory (k < 1, l without a sensitive column, a
        column both quasi-identifier and sensitive, unknown method...).
    InputError
        If k exceeds the number of records, a hierarchy does not cover a value, or no release
        satisfies the models within the suppression limit.  Also (fail closed) if the
        release found does not meet every requested model by our own figures or, with
        ``verify``, by pycanon's, or if pycanon's figures disagree with ours: the error's
        notes give, per model, the request, our figure and pycanon's; no release is
        returned.
    ConfigError
        If a released column looks like a direct identifier (see ``keep_unique``).

    Examples
    --------
    >>> df = pd.DataFrame({"age": ["31", "35", "42", "44"], "dx": ["a", "b", "a", "b"]})
    >>> r = anonymize(df, qi=["age"], k=2, sensitive="dx", l=2)
    >>> list(r.table["age"]), r.report["achieved"]["pycanon"]["k"]
    (['[31-35]', '[31-35]', '[42-44]', '[42-44]'], 2)
    """
    started = time.perf_counter()
    qi = list(qi)
    drop = list(drop)
    if method not in METHODS:
        raise ConfigError("unknown anonymization method", where="--method",
                          expected=" or ".join(METHODS), got=repr(method),
                          fix=did_you_mean(str(method), METHODS) or "choose one of them")
    if not qi:
        raise ConfigError("no quasi-identifier given", where="--qi",
                          fix="e.g. --qi age,sex,postcode")
    if len(set(qi)) != len(qi):
        raise ConfigError("a quasi-identifier is named twice", where="--qi")
    models = pm.PrivacyModels(k=k, l=l, l_kind=l_kind, c=c, t=t)
    if not 0.0 <= max_suppression < 1.0:
        raise ConfigError("invalid suppression limit", where="--max-suppression",
                          expected="a fraction in [0, 1)", got=repr(max_suppression))
    _check_columns(df, qi, "--qi")
    if sensitive is not None:
        _check_columns(df, [sensitive], "--sensitive")
        if sensitive in qi:
            raise ConfigError("the sensitive column is also a quasi-identifier",
                              where="--sensitive/--qi", fix="remove it from --qi")
    elif models.needs_sensitive:
        raise ConfigError("l-diversity and t-closeness need a sensitive column",
                          where="--sensitive", fix="give --sensitive COL")
    _check_columns(df, drop, "--drop")
    groups = list(groups)
    _check_columns(df, groups, "--groups")
    if target is not None:
        _check_columns(df, [target], "--target")
        if target in qi or target in drop:
            raise ConfigError("the target column is a quasi-identifier or dropped",
                              where="--target", fix="choose an outcome column that is released "
                              "unchanged (not in --qi or --drop)")
    if set(drop) & (set(qi) | {sensitive}):
        raise ConfigError("a dropped column is also a quasi-identifier or sensitive",
                          where="--drop", fix="drop only direct identifiers")
    n = len(df)
    if not keep_unique and n > 1:
        rest = [col for col in df.columns if col not in set(qi) | set(drop) | {sensitive}]
        unique_ids = [col for col in rest if df[col].nunique(dropna=False) == n
                      and pd.to_numeric(df[col], errors="coerce").isna().any()]
        if unique_ids:
            raise ConfigError(
                "a released column looks like a direct identifier", where="--drop",
                expected="direct identifiers removed from the release",
                got=f"{len(unique_ids)} column(s) with a distinct value in every row: "
                    + ", ".join(unique_ids),
                fix="add them to --drop (or pass --keep-unique-columns if they identify "
                    "nobody)")
    if k > n:
        raise InputError("k is larger than the table", where="--k",
                         expected=f"k <= {n} records", got=f"k = {k}",
                         fix="lower k or anonymize a larger table")

    hier = dict(hierarchies or {})
    auto = load_hierarchies(df, [q for q in qi if q not in hier])
    hier.update(auto)
    codes = np.column_stack([hier[q].encode(df[q].astype(str).to_numpy(),
                                            where=f"hierarchy of column '{q}'") for q in qi])
    s_codes, n_values, ordered, s_col = (None, 0, False, None)
    if sensitive is not None:
        s_codes, n_values, ordered, s_col = _sensitive_codes(df[sensitive])
    problem = Problem(codes=codes.astype(np.int64), hierarchies=tuple(hier[q] for q in qi),
                      sensitive=s_codes, n_values=n_values, ordered=ordered, models=models,
                      max_suppressed=int(math.floor(max_suppression * n + 1e-9))
                      if method == "lattice" else 0)
    release: Release
    if method == "lattice":
        release = lattice_search(problem)
    else:
        release = mondrian(problem, plain=method == "plain-mondrian")
    searched = time.perf_counter()

    out = df.loc[release.keep].drop(columns=drop).copy()
    for i, q in enumerate(qi):
        out[q] = release.labels[i][release.keep]
    out = out.reset_index(drop=True)
    classes = np.asarray(out[qi].groupby(qi, sort=False).ngroup().to_numpy(), dtype=np.int64)

    check = out[qi].copy()
    if sensitive is not None:
        assert s_col is not None
        check[sensitive] = s_col[release.keep].to_numpy()
    ours = _achieved(check, qi, sensitive, models)
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "format_version": REPORT_VERSION,
        "method": method,
        "quasi_identifiers": qi,
        "sensitive": sensitive,
        "dropped_columns": drop,
        "privacy_models": {"k": k, "l": l, "l_kind": l_kind if l is not None else None,
                           "c": c, "t": t},
        "max_suppression": max_suppression,
        "transformation": _transformation(release, hier, qi, out),
        "rows": {"input": n, "released": len(out), "suppressed": int((~release.keep).sum()),
                 "suppressed_fraction": round(float((~release.keep).mean()), 6)},
        "achieved": {"ours": ours},
        "utility": utility_metrics(release.loss, classes, release.keep, k=k, qi=qi),
    }
    if verify:
        theirs = verify_with_pycanon(check, qi, sensitive,
                                     l_kind=l_kind if l is not None else None,
                                     t=t is not None)
        report["achieved"]["pycanon"] = theirs
        report["achieved"]["agree"] = _agree(ours, theirs)
    # Fail closed: a release below the request, or one pycanon does not confirm, is never
    # returned (so never written).
    _require_models(models, report["achieved"], method)
    report["achieved"]["meets_request"] = True
    report["bias"] = _bias(df, release, qi=qi, sensitive=sensitive, groups=groups,
                           target=target, seed=seed, k=k, options=dict(
                               sensitive=sensitive, l=l, l_kind=l_kind, c=c, t=t,
                               hierarchies=hier, max_suppression=max_suppression,
                               method=method, verify=False, keep_unique=True))
    report["elapsed_s"] = {"search": round(searched - started, 3),
                           "total": round(time.perf_counter() - started, 3)}
    logger.info("released %d of %d records in %d classes (method %s)", len(out), n,
                report["utility"]["n_classes"], method)
    return Anonymized(table=out, report=report, keep=np.asarray(release.keep, dtype=bool))


def _bias(df: pd.DataFrame, release: Release, *, qi: Sequence[str], sensitive: str | None,
          groups: Sequence[str], target: str | None, seed: int, k: int,
          options: dict[str, Any]) -> dict[str, Any]:
    """Build the report's ``bias`` section (see :mod:`secured_bio.privacy.anonymize.bias`)."""
    from secured_bio.privacy.anonymize.bias import group_audit, target_auroc_by_group

    columns = ([sensitive] if sensitive is not None else []) + list(groups)
    audit = group_audit(df, keep=release.keep, loss=release.loss, columns=columns,
                        qi=qi, k=k)
    if target is not None:
        def anonymizer(train: pd.DataFrame) -> Anonymized:
            return anonymize(train, qi=qi, k=k, **options)

        try:
            audit["target"] = target_auroc_by_group(df, target=target, qi=qi,
                                                    columns=columns, anonymizer=anonymizer,
                                                    seed=seed)
        except InputError as e:
            # The training split (70% of the records) may admit no release at this k/l/t.
            e.add_note("while anonymizing the training split of the --target evaluation")
            raise
    return audit


def _transformation(release: Release, hier: Mapping[str, Hierarchy], qi: Sequence[str],
                    out: pd.DataFrame) -> dict[str, Any]:
    """Per column: hierarchy kind, level (lattice) and a released label as an example."""
    t: dict[str, Any] = {"columns": {}}
    t.update({k: v for k, v in release.transformation.items()
              if k not in ("levels", "level_names", "labels")})
    for q in qi:
        h = hier[q]
        entry: dict[str, Any] = {"hierarchy": h.kind, "hierarchy_levels": h.n_levels}
        if "levels" in release.transformation:
            lv = release.transformation["levels"][q]
            entry.update(level=lv, level_name=h.names[lv])
        else:
            entry["labels"] = release.transformation["labels"][q]
        # a label from the release itself (it holds >= k records), never an input value
        entry["example_label"] = str(out[q].iloc[0]) if len(out) else None
        t["columns"][q] = entry
    return t


def anonymize_csv(
    in_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    report_path: str | os.PathLike[str],
    *,
    hierarchies_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Anonymized:
    """Anonymize a CSV file; write the release and the JSON report together, atomically.

    Parameters
    ----------
    in_path, out, report_path
        Input CSV, released CSV, JSON report.
    hierarchies_dir
        Folder with ``<column>.csv`` ARX hierarchy files (others are automatic).
    **options
        Passed to :func:`anonymize` (``qi``, ``k``, ``sensitive``, ``l``...).

    Returns
    -------
    Anonymized

    Raises
    ------
    InputFileNotFoundError, FormatError, SchemaError, ConfigError, InputError
        As :func:`read_table_csv`, :func:`load_hierarchies` and :func:`anonymize`; nothing
        is written then.

    Examples
    --------
    >>> import tempfile, pathlib, json
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "in.csv").write_text("id,age\\n1,31\\n2,35\\n3,42\\n4,44\\n")
    >>> r = anonymize_csv(d / "in.csv", d / "out.csv", d / "r.json", qi=["age"], k=2,
    ...                   drop=["id"])
    >>> (d / "out.csv").read_text().splitlines()[:2], json.loads((d / "r.json").read_text())["rows"]
    (['age', '[31-35]'], {'input': 4, 'released': 4, 'suppressed': 0, 'suppressed_fraction': 0.0})
    """
    from secured_bio._atomic import atomic_paths

    for p, opt in ((out, "--out"), (report_path, "--report")):
        if Path(p).is_dir():
            raise ConfigError("output path is a folder", where=f"{opt} {p}",
                              expected="a file path")
    if Path(out).resolve() == Path(in_path).resolve():
        raise ConfigError("--out would overwrite the input", where=str(out),
                          fix="write the release to another file")
    df = read_table_csv(in_path)
    qi = options.get("qi", [])
    _check_columns(df, list(qi), "--qi")
    hier = load_hierarchies(df, list(qi), hierarchies_dir) if hierarchies_dir else None
    result = anonymize(df, hierarchies=hier, **options)
    result.report["inputs"] = {"table": str(in_path),
                               "hierarchies": str(hierarchies_dir) if hierarchies_dir else None}
    with atomic_paths(out, report_path) as (tmp_csv, tmp_json):
        result.table.to_csv(tmp_csv, index=False, lineterminator="\n")
        tmp_json.write_text(json.dumps(result.report, indent=2, default=_json_default) + "\n",
                            encoding="utf-8")
    return result


def _json_default(obj: object) -> object:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    raise TypeError(type(obj).__name__)
