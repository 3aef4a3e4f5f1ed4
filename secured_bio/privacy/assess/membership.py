"""Membership inference: whether a model or a released table reveals who was in its data.

One evaluation, :func:`membership_inference`, turns any per-record attack score (a model's
loss, its confidence, a record's distance to the nearest released or synthetic record) of
known members and non-members into the figures the literature reports: the attack AUC
(with a Hanley & McNeil 1982 interval), the membership advantage ``max(TPR - FPR)``
(Yeom et al. 2018) and the TPR at low FPRs (Carlini et al. 2022, "Membership inference
attacks from first principles", argue this is what matters).  Two attacks feed it:

* :func:`dcr_membership`: distance to the closest record (DCR) of each candidate in the
  released/synthetic table; members of the source data tend to be closer (as in TAPAS and
  the synthetic-data literature, e.g. Stadler et al. 2022, "Synthetic data - anonymisation
  groundhog day").
* :func:`loss_threshold_attack`: the per-record loss of a trained model (torch or
  scikit-learn); training members tend to have lower loss (Yeom, Giacomelli, Fredrikson &
  Jha 2018, "Privacy risk in machine learning", CSF), with Yeom's threshold at the average
  training loss.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from secured_bio.errors import ConfigError, InputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["membership_inference", "distance_to_closest_record", "dcr_membership",
           "per_record_loss", "loss_threshold_attack"]


def _scores(x: ArrayLike, name: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=float).ravel()
    except (TypeError, ValueError) as e:
        raise InputError("attack scores are not numbers", where=name, expected="numbers",
                         got=f"a {type(x).__name__}", fix="pass one number per record") from e
    if a.size == 0:
        raise InputError("no attack scores", where=name, expected="at least 1 record",
                         got="0", fix="pass the scores of the records")
    if not np.isfinite(a).all():
        raise InputError("attack scores are not all finite", where=name,
                         expected="finite numbers", got=f"{int((~np.isfinite(a)).sum())} "
                         "NaN/inf values", fix="drop or fix those records")
    return a


def _roc(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FPR and TPR of the rule ``score >= t`` for every distinct threshold (from (0, 0))."""
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last = np.r_[np.diff(s) != 0, True]  # the last index of each group of tied scores
    tp, fp = np.cumsum(y)[last], np.cumsum(1 - y)[last]
    return np.r_[0.0, fp / len(neg)], np.r_[0.0, tp / len(pos)]


def membership_inference(
    member_scores: ArrayLike,
    nonmember_scores: ArrayLike,
    *,
    higher_is_member: bool = True,
    fpr_levels: Sequence[float] = (0.01, 0.1),
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Evaluate a membership-inference attack from per-record scores of known members.

    Parameters
    ----------
    member_scores, nonmember_scores
        The attack score of each member and each non-member record.
    higher_is_member
        True when a higher score means "member" (confidence); False for losses and distances.
    fpr_levels
        False-positive rates at which the true-positive rate is reported.
    confidence
        Confidence level of the AUC interval.

    Returns
    -------
    dict
        ``n_members``, ``n_nonmembers``, ``auc`` (0.5 = no leakage), ``auc_ci`` (Hanley &
        McNeil 1982), ``advantage`` (``max(TPR - FPR)``, Yeom et al. 2018) and
        ``tpr_at_fpr`` (FPR level as a string -> the highest TPR with FPR at most that level).

    Raises
    ------
    InputError
        If a score list is empty or holds a non-finite value.
    ConfigError
        If an FPR level is outside (0, 1).

    Examples
    --------
    >>> r = membership_inference([0.9, 0.8, 0.7, 0.4], [0.6, 0.3, 0.2, 0.1])
    >>> r["auc"], r["advantage"], r["tpr_at_fpr"]["0.1"]
    (0.9375, 0.75, 0.75)
    """
    pos = _scores(member_scores, "member_scores")
    neg = _scores(nonmember_scores, "nonmember_scores")
    for level in fpr_levels:
        if not 0.0 < float(level) < 1.0:
            raise ConfigError("FPR level out of range", where="fpr_levels",
                              expected="values in (0, 1)", got=str(level),
                              fix="use e.g. (0.01, 0.1)")
    if not higher_is_member:
        pos, neg = -pos, -neg
    m, n = len(pos), len(neg)
    # Mann-Whitney U with average ranks for ties: AUC = P(member > non-member) + P(tie)/2.
    allv = np.concatenate([pos, neg])
    uniq, inv, counts = np.unique(allv, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    avg_rank = upper - (counts - 1) / 2.0
    auc = float((avg_rank[inv[:m]].sum() - m * (m + 1) / 2) / (m * n))
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (m - 1) * (q1 - auc * auc) + (n - 1) * (q2 - auc * auc)) / (m * n)
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    half = z * math.sqrt(max(var, 0.0))
    fpr, tpr = _roc(pos, neg)
    return {
        "n_members": m,
        "n_nonmembers": n,
        "auc": auc,
        "auc_ci": [max(0.0, auc - half), min(1.0, auc + half)],
        "advantage": float((tpr - fpr).max()),
        "tpr_at_fpr": {str(float(level)): float(tpr[fpr <= float(level)].max())
                       for level in fpr_levels},
        "confidence": confidence,
    }


# ----------------------------------------------------------------------- DCR attack
def distance_to_closest_record(
    records: pd.DataFrame, reference: pd.DataFrame, *, columns: Sequence[str] | str | None = None
) -> np.ndarray:
    """Gower distance from each record to its closest record of ``reference``.

    Numeric columns (numbers, ISO dates, intervals at their midpoint) count
    ``|x - y| / range``, other columns 0 when equal (or when one value generalizes the
    other, as ``751**`` and ``75112``) and 1 otherwise; the sum is divided by the number of
    columns, so distances lie in [0, 1].

    Parameters
    ----------
    records
        Records whose distance is measured (e.g. members and non-members).
    reference
        The released or synthetic table.
    columns
        Columns to compare (default: those shared by both tables).

    Returns
    -------
    numpy.ndarray
        One distance per record.

    Raises
    ------
    InputError
        If a table is empty.
    SchemaError
        If a column is missing.

    Examples
    --------
    >>> import pandas as pd
    >>> ref = pd.DataFrame({"age": [30, 50], "sex": ["F", "M"]})
    >>> distance_to_closest_record(pd.DataFrame({"age": [30, 40], "sex": ["F", "M"]}), ref)
    array([0.  , 0.25])
    """
    from secured_bio.privacy.assess.attacks import _encode, _gower_sum, _shared_columns
    from secured_bio.privacy.assess.risk import check_table

    cols = _shared_columns(columns, records, reference)
    a = check_table(records, "records", cols)
    b = check_table(reference, "reference", cols)
    enc = _encode([a, b], cols)
    ma, mb = enc.mats
    out = np.empty(len(a))
    step = max(1, int(4e6 // max(1, len(b) * len(cols))))
    for s in range(0, len(a), step):
        d = _gower_sum(ma[s:s + step], mb, enc)
        out[s:s + step] = d.min(axis=1) / len(cols)
    return out


def dcr_membership(
    members: pd.DataFrame,
    nonmembers: pd.DataFrame,
    released: pd.DataFrame,
    *,
    columns: Sequence[str] | str | None = None,
    fpr_levels: Sequence[float] = (0.01, 0.1),
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Distance-based membership inference against a released or synthetic table.

    Each candidate's score is its distance to the closest released record
    (:func:`distance_to_closest_record`); the attack says "member" for small distances.
    A release that copies (or barely perturbs) its source records gives an AUC near 1; one
    that is independent of them gives 0.5.

    Parameters
    ----------
    members
        Records that were used to make the release.
    nonmembers
        Records from the same population that were not (e.g. a hold-out set).
    released
        The released or synthetic table.
    columns
        Columns to compare (default: those shared by the three tables).
    fpr_levels, confidence
        As in :func:`membership_inference`.

    Returns
    -------
    dict
        :func:`membership_inference`'s figures plus ``attack`` and the median distance of
        members and non-members.

    Raises
    ------
    InputError
        If a table is empty.
    SchemaError
        If a column is missing.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> t = pd.DataFrame(rng.normal(size=(200, 3)), columns=list("abc"))
    >>> r = dcr_membership(t[:100], t[100:], t[:100])  # the release copies the members
    >>> r["auc"]
    1.0
    """
    from secured_bio.privacy.assess.attacks import _shared_columns

    cols = _shared_columns(columns, members, nonmembers, released)
    d_in = distance_to_closest_record(members, released, columns=cols)
    d_out = distance_to_closest_record(nonmembers, released, columns=cols)
    out = membership_inference(d_in, d_out, higher_is_member=False, fpr_levels=fpr_levels,
                               confidence=confidence)
    return {"attack": "distance_to_closest_record", **out,
            "median_dcr_members": float(np.median(d_in)),
            "median_dcr_nonmembers": float(np.median(d_out))}


# ----------------------------------------------------------------------- loss attack
def per_record_loss(model: Any, x: ArrayLike, y: ArrayLike) -> np.ndarray:
    """Cross-entropy loss of each record under a classifier (torch module or scikit-learn).

    A ``torch.nn.Module`` returns logits: one column (binary, sigmoid) or one per class
    (softmax); it is run in eval mode without gradients.  A scikit-learn estimator must have
    ``predict_proba``; ``y`` holds its class labels.  Probabilities are clipped to
    [1e-12, 1] before the log.

    Parameters
    ----------
    model
        The trained classifier.
    x
        Inputs (array or tensor), one row per record.
    y
        True labels.

    Returns
    -------
    numpy.ndarray
        One loss per record.

    Raises
    ------
    InputError
        If the model is neither kind, or ``x`` and ``y`` differ in length, or a label is not
        one of the model's classes.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> x = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
    >>> loss = per_record_loss(LogisticRegression().fit(x, y), x, y)
    >>> loss.shape, bool((loss > 0).all())
    ((4,), True)
    """
    # A torch module exists only if torch was imported: do not pay torch's import otherwise.
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        xt = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x),
                                                                  dtype=torch.float32)
        yt = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
        if len(xt) != len(yt):
            raise InputError("inputs and labels differ in length", where="x, y",
                             expected=f"{len(xt)} labels", got=f"{len(yt)}",
                             fix="pass one label per record")
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                logits = model(xt)
        finally:
            model.train(was_training)
        if logits.ndim == 1 or logits.shape[-1] == 1:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits.reshape(-1), yt.reshape(-1).to(logits.dtype), reduction="none")
        else:
            loss = torch.nn.functional.cross_entropy(logits, yt.long(), reduction="none")
        return loss.detach().cpu().numpy().astype(float)
    if not hasattr(model, "predict_proba"):
        raise InputError("model cannot score records", where="model",
                         expected="a torch.nn.Module or an estimator with predict_proba",
                         got=f"a {type(model).__name__}", fix="pass a trained classifier")
    ya = np.asarray(y)
    proba = np.asarray(model.predict_proba(x), dtype=float)
    if len(proba) != len(ya):
        raise InputError("inputs and labels differ in length", where="x, y",
                         expected=f"{len(proba)} labels", got=f"{len(ya)}",
                         fix="pass one label per record")
    classes = list(model.classes_)
    index = {c: i for i, c in enumerate(classes)}
    try:
        col = np.array([index[v] for v in ya.tolist()])
    except KeyError as e:
        raise InputError("a label is not one of the model's classes", where="y",
                         expected=f"one of the {len(classes)} classes", got="another label",
                         fix="pass labels coded as in training") from e
    p = np.clip(proba[np.arange(len(ya)), col], 1e-12, 1.0)
    return -np.log(p)


def loss_threshold_attack(
    model: Any,
    x_members: ArrayLike,
    y_members: ArrayLike,
    x_nonmembers: ArrayLike,
    y_nonmembers: ArrayLike,
    *,
    fpr_levels: Sequence[float] = (0.01, 0.1),
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Loss-threshold membership inference against a trained model (Yeom et al. 2018).

    Scores are per-record losses (:func:`per_record_loss`); low loss means "member".
    Beside the threshold-free figures of :func:`membership_inference`, Yeom's attack uses
    the average training loss as threshold: ``yeom_advantage`` is its TPR - FPR.

    Parameters
    ----------
    model
        The trained classifier (torch module or scikit-learn estimator).
    x_members, y_members
        Training records and labels.
    x_nonmembers, y_nonmembers
        Records and labels from the same population not used in training.
    fpr_levels, confidence
        As in :func:`membership_inference`.

    Returns
    -------
    dict
        :func:`membership_inference`'s figures plus ``attack``, ``threshold``,
        ``yeom_tpr``, ``yeom_fpr`` and ``yeom_advantage``.

    Raises
    ------
    InputError
        As :func:`per_record_loss`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 3)); y = rng.integers(0, 2, 200)  # labels are noise
    >>> tree = DecisionTreeClassifier(random_state=0).fit(x[:100], y[:100])  # memorizes
    >>> r = loss_threshold_attack(tree, x[:100], y[:100], x[100:], y[100:])
    >>> r["auc"] > 0.7, r["yeom_tpr"]
    (True, 1.0)
    """
    loss_in = per_record_loss(model, x_members, y_members)
    loss_out = per_record_loss(model, x_nonmembers, y_nonmembers)
    out = membership_inference(loss_in, loss_out, higher_is_member=False,
                               fpr_levels=fpr_levels, confidence=confidence)
    tau = float(loss_in.mean())
    tpr, fpr = float((loss_in <= tau).mean()), float((loss_out <= tau).mean())
    return {"attack": "loss_threshold", **out, "threshold": tau, "yeom_tpr": tpr,
            "yeom_fpr": fpr, "yeom_advantage": tpr - fpr}
