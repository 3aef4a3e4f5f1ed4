"""Cohort-level imaging features for the tumour classifiers.

- :func:`connectivity_features`: one row per participant, the upper triangle of its
  connectivity matrix (edges ``roi<a>-roi<b>``) beside the participants.tsv columns; input
  of the connectivity classifier.
- :func:`seed_map`: a voxelwise seed-correlation volume; input of the 3D CNN.

The cohort layout is that of :func:`secured_bio.testing.simulate_imaging` and
``secured-bio demo tumor_classification``::

    COHORT/atlas.nii.gz
    COHORT/participants.tsv                 (optional: participant_id, site, label, ...)
    COHORT/<site>/sub-<id>/func/*.nii[.gz]  (one 4D series per participant)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from secured_bio._inputs import read_table
from secured_bio._progress import track
from secured_bio.errors import ConfigError, InputFileNotFoundError, SchemaError, did_you_mean
from secured_bio.imaging.connectivity import _series_and_atlas, series_connectivity
from secured_bio.imaging.io import Atlas, FunctionalSeries, load_atlas

__all__ = [
    "FEATURES_FORMAT",
    "PHENOTYPE_COLUMNS",
    "connectivity_features",
    "edge_names",
    "find_series",
    "seed_map",
    "write_features",
]

FEATURES_FORMAT = "secured_bio.imaging_features"
"""Format name of a feature table's JSON sidecar (version 1)."""

logger = logging.getLogger(__name__)

#: participants.tsv columns carried into the feature table when present.
PHENOTYPE_COLUMNS = ("site", "label", "sex", "age")


def edge_names(labels: Sequence[int]) -> list[str]:
    """Name the upper-triangle edges of a connectivity matrix, row by row.

    Examples
    --------
    >>> edge_names([1, 2, 3])
    ['roi1-roi2', 'roi1-roi3', 'roi2-roi3']
    """
    labs = [int(v) for v in labels]
    return [f"roi{a}-roi{b}" for i, a in enumerate(labs) for b in labs[i + 1:]]


def find_series(
    cohort_dir: str | os.PathLike[str], *, sites: Sequence[str] | None = None
) -> dict[str, tuple[str, Path]]:
    """Find the one 4D series of each participant: ``{participant_id: (site, path)}``.

    Parameters
    ----------
    cohort_dir
        Cohort folder (layout in the module docstring).
    sites
        Only these site folders (default: all).

    Returns
    -------
    dict
        Participant ID -> (site, series path), sorted by site then participant.

    Raises
    ------
    InputFileNotFoundError
        If the folder does not exist or holds no series.
    ConfigError
        If a requested site has no folder (with a "did you mean" hint).
    SchemaError
        If a participant has more than one series.

    Examples
    --------
    >>> import tempfile
    >>> from secured_bio.testing import simulate_imaging
    >>> c = simulate_imaging(tempfile.mkdtemp(), n_sites=2, subjects_per_site=2,
    ...                      n_timepoints=12, n_rois=3, shape=(6, 6, 4))
    >>> found = find_series(c.out_dir, sites=["site2"])
    >>> [site for site, _ in found.values()]
    ['site2', 'site2']
    """
    root = Path(cohort_dir)
    if not root.is_dir():
        raise InputFileNotFoundError("cohort folder not found", where=str(root),
                                     expected="a folder with atlas.nii.gz and <site>/sub-*/func/",
                                     fix="check --cohort (write one with 'secured-bio demo "
                                     "tumor_classification --out DIR')")
    files = sorted(p for p in root.glob("*/sub-*/func/*")
                   if p.name.endswith((".nii", ".nii.gz")) and p.is_file())
    available = sorted({p.relative_to(root).parts[0] for p in files})
    if sites is not None:
        for s in sites:
            if s not in available:
                raise ConfigError("unknown site", where=f"{root}: site {s!r}",
                                  expected="one of " + ", ".join(available),
                                  fix=did_you_mean(s, available) or "choose a listed site")
        files = [p for p in files if p.relative_to(root).parts[0] in set(sites)]
    if not files:
        raise InputFileNotFoundError(
            "no functional series in the cohort folder", where=str(root),
            expected="<site>/sub-<id>/func/<name>.nii.gz files",
            fix="check the folder layout (see 'secured-bio imaging features --help')",
        )
    found: dict[str, tuple[str, Path]] = {}
    duplicates = 0
    for p in files:
        site, pid = p.relative_to(root).parts[:2]
        if pid in found:
            duplicates += 1
            continue
        found[pid] = (site, p)
    if duplicates:
        raise SchemaError(
            "participants with more than one series", where=str(root),
            expected="one 4D series per participant folder",
            got=f"{duplicates} extra series", fix="keep one run per participant in func/",
        )
    return found


def _participants(root: Path) -> pd.DataFrame | None:
    path = root / "participants.tsv"
    if not path.is_file():
        return None
    table = read_table(path, "participants table", sep="\t", dtype={"participant_id": str})
    if "participant_id" not in table.columns:
        raise SchemaError("participants.tsv has no participant_id column", where=str(path),
                          expected="a BIDS participants.tsv", fix="add the column")
    if table["participant_id"].duplicated().any():
        raise SchemaError("participants.tsv has duplicated participant IDs", where=str(path),
                          got=f"{int(table['participant_id'].duplicated().sum())} duplicates",
                          fix="keep one row per participant")
    return table.set_index("participant_id")


def connectivity_features(
    cohort_dir: str | os.PathLike[str],
    *,
    kind: str = "correlation",
    fisher_z: bool = True,
    preprocess: bool = True,
    sites: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Tabulate the connectivity edges of every participant of a cohort.

    Each series is reduced to ROI mean signals with the cohort atlas, cleaned (when
    ``preprocess``: detrend and z-score) and turned into a connectivity matrix
    (:func:`~secured_bio.imaging.connectivity.series_connectivity`); its upper triangle
    (without the diagonal) becomes the ``roi<a>-roi<b>`` columns.

    Parameters
    ----------
    cohort_dir
        Cohort folder (layout in the module docstring).
    kind, fisher_z, preprocess
        See :func:`~secured_bio.imaging.connectivity.series_connectivity`.
    sites
        Only these sites (default: all).

    Returns
    -------
    pandas.DataFrame
        Index ``participant_id``; columns ``site``, ``label``, ``sex``, ``age`` (those
        present in participants.tsv; ``site`` at least), then the edges.

    Raises
    ------
    InputFileNotFoundError
        If the folder, its atlas or any series is missing.
    ConfigError
        If a site or option is unknown.
    SchemaError
        If participants.tsv lacks a participant found on disk, or a series or the atlas
        fails its checks.

    Examples
    --------
    >>> import tempfile
    >>> from secured_bio.testing import simulate_imaging
    >>> c = simulate_imaging(tempfile.mkdtemp(), n_sites=1, subjects_per_site=2,
    ...                      n_timepoints=12, n_rois=3, shape=(6, 6, 4))
    >>> df = connectivity_features(c.out_dir)
    >>> list(df.columns)
    ['site', 'label', 'sex', 'age', 'roi1-roi2', 'roi1-roi3', 'roi2-roi3']
    """
    root = Path(cohort_dir)
    found = find_series(root, sites=sites)
    atlas_path = root / "atlas.nii.gz"
    if not atlas_path.is_file() and (root / "atlas.nii").is_file():
        atlas_path = root / "atlas.nii"
    if not atlas_path.is_file():
        raise InputFileNotFoundError("cohort atlas not found", where=str(atlas_path),
                                     expected="atlas.nii.gz at the cohort root",
                                     fix="put the label atlas of the cohort there")
    atlas = load_atlas(atlas_path)
    table = _participants(root)
    if table is not None:
        missing = sum(pid not in table.index for pid in found)
        if missing:
            raise SchemaError(
                "participants with a series but no row in participants.tsv",
                where=str(root / "participants.tsv"), got=f"{missing} participants",
                fix="add their rows (participant_id, site, label, ...)",
            )
        order = [pid for pid in table.index if pid in found]
    else:
        order = list(found)
    edges = edge_names(atlas.labels)
    iu = np.triu_indices(len(atlas.labels), k=1)
    rows = np.empty((len(order), len(edges)), dtype=np.float64)
    for i, pid in enumerate(track(order, "connectivity features", total=len(order))):
        conn = series_connectivity(found[pid][1], atlas, kind=kind, fisher_z=fisher_z,
                                   preprocess=preprocess)
        rows[i] = conn.matrix[iu]
    out = pd.DataFrame(rows, index=pd.Index(order, name="participant_id"), columns=edges)
    pheno = pd.DataFrame({"site": [found[pid][0] for pid in order]}, index=out.index)
    if table is not None:
        for col in PHENOTYPE_COLUMNS:
            if col in table.columns:
                pheno[col] = table.loc[order, col].to_numpy()
    logger.info("connectivity features: %d participants x %d edges", len(order), len(edges))
    return pd.concat([pheno, out], axis=1)


def seed_map(
    series: FunctionalSeries | str | os.PathLike[str],
    atlas: Atlas | str | os.PathLike[str] | None = None,
    *,
    seed_label: int,
    detrend: bool = True,
) -> np.ndarray:
    """Pearson correlation of every voxel's time series with a seed region's mean signal.

    Parameters
    ----------
    series
        A loaded series or its path.
    atlas
        Label atlas on the series' grid (default: ``series.atlas``).
    seed_label
        Atlas label of the seed region.
    detrend
        Remove a linear trend from every voxel and the seed first (scanner drift).

    Returns
    -------
    numpy.ndarray
        (x, y, z) float32 correlations in [-1, 1]; 0 outside the atlas (label 0) and at
        voxels whose signal is constant.

    Raises
    ------
    ConfigError
        If no atlas is given and the series has none.
    SchemaError
        If the seed label is not in the atlas, or the seed signal is constant.

    Examples
    --------
    >>> import tempfile
    >>> from secured_bio.testing import simulate_imaging
    >>> c = simulate_imaging(tempfile.mkdtemp(), n_sites=1, subjects_per_site=2,
    ...                      n_timepoints=12, n_rois=3, shape=(6, 6, 4))
    >>> m = seed_map(c.series_paths[0], c.atlas_path, seed_label=1)
    >>> m.shape, m.dtype
    ((6, 6, 4), dtype('float32'))
    """
    from scipy.signal import detrend as sp_detrend

    s, a = _series_and_atlas(series, atlas, "seed map")
    if int(seed_label) not in a.labels:
        raise SchemaError("seed label is not in the atlas", where=f"{a.path or 'atlas'}",
                          expected=f"one of {len(a.labels)} atlas labels",
                          got=f"label {int(seed_label)}", fix="choose a label of atlas.labels")
    brain = a.data != 0
    x = s.data[brain].T  # (t, voxels)
    if detrend:
        x = sp_detrend(x, axis=0, type="linear")
    x = x - x.mean(axis=0)
    seed = x[:, a.data[brain] == int(seed_label)].mean(axis=1)
    seed_norm = float(np.linalg.norm(seed))
    if seed_norm <= np.finfo(np.float64).eps:
        raise SchemaError("seed signal is constant", where=f"{a.path or 'atlas'}",
                          expected="a varying mean signal in the seed region",
                          fix="choose another seed label")
    norms = np.linalg.norm(x, axis=0)
    corr = np.zeros(x.shape[1], dtype=np.float64)
    ok = norms > np.finfo(np.float64).eps * max(1.0, float(np.abs(s.data).max()))
    corr[ok] = (seed @ x[:, ok]) / (norms[ok] * seed_norm)
    out = np.zeros(a.shape, dtype=np.float32)
    out[brain] = np.clip(corr, -1.0, 1.0)
    return out


def write_features(
    table: pd.DataFrame, path: str | os.PathLike[str], *,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write a feature table (TSV) and its JSON sidecar together (all or nothing).

    The sidecar carries the format name and version, counts and ``metadata`` (e.g. the
    connectivity kind); never a value of the table.

    Raises
    ------
    ConfigError
        If ``path`` does not end with ``.tsv``.

    Examples
    --------
    >>> import tempfile
    >>> t = pd.DataFrame({"site": ["s1"], "label": [1], "roi1-roi2": [0.5]},
    ...                  index=pd.Index(["sub-1"], name="participant_id"))
    >>> p = write_features(t, Path(tempfile.mkdtemp()) / "f.tsv", metadata={"kind": "x"})
    >>> sorted(q.name for q in p.parent.iterdir())
    ['f.json', 'f.tsv']
    """
    import json

    from secured_bio._atomic import atomic_paths

    out = Path(path)
    if out.suffix != ".tsv":
        raise ConfigError("a feature table must be written as .tsv", where=str(out),
                          expected="a path ending with .tsv", got=out.suffix or "no extension",
                          fix="add the .tsv extension")
    n_edges = sum(str(c).startswith("roi") for c in table.columns)
    sites = sorted(set(table["site"])) if "site" in table.columns else []
    doc = {"format": FEATURES_FORMAT, "format_version": 1, "table_file": out.name,
           **dict(metadata or {}), "sites": sites, "n_participants": int(len(table)),
           "n_edges": int(n_edges)}
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_paths(out, out.with_suffix(".json")) as (tmp_tsv, tmp_json):
        table.to_csv(tmp_tsv, sep="\t")
        tmp_json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return out
