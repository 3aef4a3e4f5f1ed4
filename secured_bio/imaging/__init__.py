"""Functional imaging (fMRI, functional ultrasound): NIfTI I/O, preprocessing, connectivity.

- :mod:`~secured_bio.imaging.io`: load and check 4D series and label atlases; BIDS-like
  derivative names.
- :mod:`~secured_bio.imaging.connectivity`: ROI signals, cleaning, connectivity matrices and
  their TSV files.
- :mod:`~secured_bio.imaging.features`: cohort feature tables and seed maps for the models.
- :mod:`~secured_bio.imaging.plots`: connectivity heatmaps.
- :mod:`~secured_bio.imaging.models`: the MONAI connectivity classifier and 3D CNN, training,
  saving and latency (imported on demand: it loads torch and MONAI).
- :mod:`~secured_bio.imaging.federated`: the tumour-grade task of the federation layer.
"""

from secured_bio.imaging.connectivity import (
    KINDS,
    Connectivity,
    clean_signals,
    connectivity_matrix,
    format_connectivity_tsv,
    read_confounds,
    read_connectivity_tsv,
    roi_timeseries,
    series_connectivity,
    write_connectivity_tsv,
)
from secured_bio.imaging.features import (
    connectivity_features,
    edge_names,
    find_series,
    seed_map,
    write_features,
)
from secured_bio.imaging.io import (
    Atlas,
    FunctionalSeries,
    derivative_path,
    load_atlas,
    load_series,
)
from secured_bio.imaging.plots import connectivity_png, plot_connectivity

__all__ = [
    "Atlas",
    "FunctionalSeries",
    "load_series",
    "load_atlas",
    "derivative_path",
    "KINDS",
    "Connectivity",
    "roi_timeseries",
    "clean_signals",
    "connectivity_matrix",
    "series_connectivity",
    "read_confounds",
    "format_connectivity_tsv",
    "write_connectivity_tsv",
    "read_connectivity_tsv",
    "connectivity_features",
    "edge_names",
    "find_series",
    "seed_map",
    "write_features",
    "plot_connectivity",
    "connectivity_png",
]
