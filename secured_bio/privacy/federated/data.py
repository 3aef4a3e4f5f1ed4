"""Plain records shared by the federation layer: which site a process is, its data, its result.

They live apart from :mod:`secured_bio.privacy.federated.task` so that the training back ends
(:mod:`secured_bio.privacy.federated.dpsgd`) can build a :class:`TrainResult` without importing
the task module, which imports them lazily (no import circle).  :mod:`~.task` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SiteData", "SiteRef", "TrainResult"]


@dataclass(frozen=True)
class SiteRef:
    """Which site a process is: what the Flower node config says about it.

    Attributes
    ----------
    partition_id
        0-based index of the site among ``num_partitions``.
    num_partitions
        Number of sites in the federation.
    data_dir
        The site's own data folder when the node config names one (deployment: each
        SuperNode is started with ``data-dir=...``); None in simulation, where the task maps
        ``partition_id`` to a site of its cohort.
    """

    partition_id: int
    num_partitions: int
    data_dir: str | None = None


@dataclass
class SiteData:
    """One site's examples, split once into training and held-out test rows.

    Attributes
    ----------
    site
        Site name (e.g. ``"site1"``).
    x_train, y_train
        Training features (n, ...) float32 and binary labels (n,) in {0, 1}.
    x_test, y_test
        Held-out features and labels; the same split for centralized and federated training.
    groups_test
        Optional subgroup labels of the test rows for the fairness audit
        (e.g. ``{"sex": array(["F", "M", ...]), "age_band": array([...])}``).
    x_audit, y_audit
        Optional rows held out of training for the membership audit only: records drawn
        from the same population as the training rows (e.g. a random patient-level split of
        the same period), so members and non-members differ only in membership.  None when
        the task keeps no such rows (the audit then falls back to the test rows).
    groups_train
        Optional subgroup labels of the training rows, same attributes as ``groups_test``;
        used only at the site, for group-reweighted training
        (:func:`~secured_bio.privacy.federated.fairness.group_weights`); never sent.
    ids_train, ids_audit
        Optional unit (e.g. patient) of each training and audit row: the audit then scores
        units (mean loss over their rows), since a unit, not a row, is in the training data
        or not, and its rows are not independent.
    """

    site: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    groups_test: dict[str, np.ndarray] = field(default_factory=dict)
    x_audit: np.ndarray | None = None
    y_audit: np.ndarray | None = None
    ids_train: np.ndarray | None = None
    ids_audit: np.ndarray | None = None
    groups_train: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult:
    """What local training reports to the server (no data, only counts and a loss)."""

    num_examples: int
    loss: float
    metrics: dict[str, float] = field(default_factory=dict)
