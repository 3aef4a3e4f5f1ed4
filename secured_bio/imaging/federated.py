"""The tumour-classification task for the federation layer (connectivity features -> grade).

Each site holds one table of connectivity features (one row per scan, made by
:func:`secured_bio.imaging.features.connectivity_features` from its own NIfTI series) in
``<site folder>/connectivity_features.tsv``.  :class:`TumorConnectivityTask` reads only that
site's table, splits it once into training and held-out rows (stratified by class, seeded, so
centralized and federated training are evaluated on the same held-out scans) and trains the
MONAI connectivity classifier of :mod:`secured_bio.imaging.models`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from secured_bio.errors import InputError, InputFileNotFoundError, SchemaError
from secured_bio.privacy.federated.task import FederatedTask, SiteData, SiteRef

if TYPE_CHECKING:
    import torch

__all__ = ["FEATURES_FILE", "TumorConnectivityTask", "feature_columns", "stratified_split"]

FEATURES_FILE = "connectivity_features.tsv"
"""Name of a site's feature table inside its folder."""

_EDGE = re.compile(r"^roi[^-\s]+-roi[^-\s]+$")
_WHERE = "tumor_classification task"


def feature_columns(columns: list[str]) -> list[str]:
    """Return the connectivity edge columns (``roiA-roiB``) of a feature table, in order.

    Examples
    --------
    >>> feature_columns(["site", "label", "roi1-roi2", "roi1-roi3", "age"])
    ['roi1-roi2', 'roi1-roi3']
    """
    return [c for c in columns if _EDGE.match(str(c))]


def stratified_split(
    labels: np.ndarray, *, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices (seeded) keeping both classes in the test rows when possible.

    Each class contributes ``round(test_fraction * n_class)`` rows to the test set, at least
    one when the class has two or more rows (so a site's held-out AUROC is defined).

    Examples
    --------
    >>> train, test = stratified_split(np.array([0, 1] * 5), test_fraction=0.4, seed=0)
    >>> len(train), len(test), sorted(np.array([0, 1] * 5)[test].tolist())
    (6, 4, [0, 0, 1, 1])
    """
    rng = np.random.default_rng(seed)
    test: list[np.ndarray] = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        k = int(round(test_fraction * len(idx)))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        else:
            k = 0
        test.append(rng.permutation(idx)[:k])
    test_idx = np.sort(np.concatenate(test)) if test else np.array([], dtype=int)
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return train_idx, test_idx


class TumorConnectivityTask(FederatedTask):
    """Tumour grade (0 low, 1 high) from connectivity edge features, one table per site.

    The keyword parameters must be JSON-serialisable (they are passed as ``task_params`` of
    :func:`~secured_bio.privacy.federated.run_federated`).

    Parameters
    ----------
    features_dir
        Folder holding one sub-folder per site (simulation; ``sites`` names them in partition
        order).  In a deployment each SuperNode names its own folder as ``data-dir`` instead.
    sites
        Site names in partition order (simulation).
    test_fraction
        Share of each site's scans held out (default 0.3).
    split_seed
        Seed of the split (default 0).
    hidden, dropout
        Classifier hidden layer widths (default [32]) and dropout (default 0.1).
    batch_size
        Mini-batch size of local training (default 16).
    """

    def build_model(self) -> torch.nn.Module:
        """Build the MONAI connectivity classifier sized for the edge features."""
        from secured_bio.imaging.models import connectivity_classifier

        n = self.params.get("n_features")
        if n is None:
            n = len(self._table(self._site_dir(SiteRef(0, 1)))[1])
        return connectivity_classifier(int(n), hidden=tuple(self.params.get("hidden", [32])),
                                       dropout=float(self.params.get("dropout", 0.1)))

    def _site_dir(self, ref: SiteRef) -> Path:
        if ref.data_dir:
            return Path(ref.data_dir)
        sites = list(self.params.get("sites") or [])
        root = self.params.get("features_dir")
        if root is None or ref.partition_id >= len(sites):
            raise InputError(
                "no data folder for this site",
                where=f"{_WHERE}, partition {ref.partition_id}",
                expected="a node config data-dir, or task parameters features_dir and sites "
                         f"with at least {ref.partition_id + 1} names",
                got=f"features_dir={'set' if root else 'unset'}, {len(sites)} site names",
                fix="start the SuperNode with --node-config 'data-dir=...' or pass "
                    "features_dir and sites",
            )
        return Path(root) / sites[ref.partition_id]

    def _table(self, site_dir: Path) -> tuple[Any, list[str]]:
        import pandas as pd

        path = site_dir / FEATURES_FILE
        if not path.is_file():
            raise InputFileNotFoundError(
                "site feature table not found", where=str(path),
                expected=f"{FEATURES_FILE} written by `secured-bio imaging features`",
                got="no such file", fix="run the feature step for this site first",
            )
        df = pd.read_csv(path, sep="\t", index_col=0)
        cols = feature_columns(list(df.columns))
        missing = [c for c in ("label",) if c not in df.columns]
        if missing or not cols:
            raise SchemaError(
                "site feature table lacks required columns", where=str(path),
                expected="a 'label' column and edge columns named roiA-roiB",
                got=f"{len(cols)} edge columns; missing {missing or 'none'}",
                fix="regenerate it with `secured-bio imaging features`",
            )
        return df, cols

    def load_site(self, ref: SiteRef) -> SiteData:
        """Read this site's feature table and split it (stratified, seeded)."""
        from secured_bio.privacy.assess.fairness import age_bands

        site_dir = self._site_dir(ref)
        df, cols = self._table(site_dir)
        x = df[cols].to_numpy(dtype=np.float32)
        y = df["label"].to_numpy()
        if not np.isin(y, (0, 1)).all() or not np.isfinite(x).all():
            raise SchemaError(
                "site feature table has invalid values", where=str(site_dir / FEATURES_FILE),
                expected="labels in {0, 1} and finite features",
                got=f"{int((~np.isin(y, (0, 1))).sum())} bad labels, "
                    f"{int((~np.isfinite(x)).sum())} non-finite features",
                fix="check the scans and participants.tsv of this site",
            )
        y = y.astype(np.float32)
        train, test = stratified_split(y, test_fraction=float(self.params.get("test_fraction",
                                                                                0.3)),
                                       seed=int(self.params.get("split_seed", 0)))
        every: dict[str, np.ndarray] = {}
        if "sex" in df.columns:
            every["sex"] = df["sex"].astype(str).to_numpy()
        if "age" in df.columns:
            every["age_band"] = age_bands(df["age"].to_numpy(dtype=float))
        site = str(df["site"].iloc[0]) if "site" in df.columns and len(df) else site_dir.name
        return SiteData(site=site, x_train=x[train], y_train=y[train], x_test=x[test],
                        y_test=y[test], groups_test={k: v[test] for k, v in every.items()},
                        groups_train={k: v[train] for k, v in every.items()})
