"""ROI time series, signal cleaning and functional connectivity matrices.

The steps follow nilearn, the field's standard, and are cross-checked against it in the
tests (``NiftiLabelsMasker``, ``nilearn.signal.clean``, ``ConnectivityMeasure``):

1. :func:`roi_timeseries`: the mean signal of each atlas region (ROI).
2. :func:`clean_signals`: linear detrending, Butterworth band-pass, confound regression
   and z-scoring, in the order of ``nilearn.signal.clean`` so that filters and confound
   regression stay orthogonal (Lindquist et al. 2019, Hum. Brain Mapp. 40:2358).
3. :func:`connectivity_matrix`: Pearson correlation or partial correlation (from the
   inverse covariance, Smith et al. 2011, NeuroImage 54:875), optionally Fisher z.

Variables
---------
``signals``
    (t, r) float64: one column per ROI, one row per volume.
``labels``
    The atlas label value of each column (and of each matrix row/column), ascending.
``matrix``
    (r, r) float64, symmetric.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from secured_bio._atomic import atomic_paths, atomic_write
from secured_bio._inputs import DAMAGED_FILE_ERRORS, reject_folder
from secured_bio.errors import (
    ConfigError,
    FormatError,
    InputFileNotFoundError,
    SchemaError,
    did_you_mean,
)
from secured_bio.imaging.io import Atlas, FunctionalSeries, load_atlas, load_series

__all__ = [
    "KINDS",
    "CONNECTIVITY_FORMAT",
    "CONNECTIVITY_FORMAT_VERSION",
    "Connectivity",
    "roi_timeseries",
    "clean_signals",
    "connectivity_matrix",
    "series_connectivity",
    "read_confounds",
    "format_connectivity_tsv",
    "write_connectivity_tsv",
    "read_connectivity_tsv",
]

logger = logging.getLogger(__name__)

#: Connectivity measures: Pearson correlation and partial correlation.
KINDS = ("correlation", "partial")
CONNECTIVITY_FORMAT = "secured_bio.connectivity"
CONNECTIVITY_FORMAT_VERSION = 1
_BUTTERWORTH_ORDER = 5  # nilearn.signal.butterworth's default


def _as_series(series: FunctionalSeries | str | os.PathLike[str]) -> FunctionalSeries:
    return series if isinstance(series, FunctionalSeries) else load_series(series)


def _series_and_atlas(
    series: FunctionalSeries | str | os.PathLike[str],
    atlas: Atlas | str | os.PathLike[str] | None, purpose: str,
) -> tuple[FunctionalSeries, Atlas]:
    """Return the series and its atlas (``atlas``, checked against the series' grid, or its own)."""
    s = _as_series(series)
    if atlas is not None:
        return s, load_atlas(atlas, like=s)
    if s.atlas is None:
        raise ConfigError(f"no atlas for the {purpose}", where=str(s.path),
                          fix="pass atlas=... or load_series(path, atlas=...)")
    return s, s.atlas


def roi_timeseries(
    series: FunctionalSeries | str | os.PathLike[str],
    atlas: Atlas | str | os.PathLike[str] | None = None,
    *,
    labels: Sequence[int] | None = None,
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Mean time series of each atlas region (as NiftiLabelsMasker, strategy 'mean').

    Parameters
    ----------
    series
        A series from :func:`~secured_bio.imaging.io.load_series`, or its path.
    atlas
        Label atlas on the series' grid; defaults to ``series.atlas``.
    labels
        The labels to extract, in this order; defaults to every non-zero label, ascending.
        Give the same list for every participant so that columns line up.

    Returns
    -------
    signals : numpy.ndarray
        (t, r) float64 means over each region's voxels.
    labels : tuple of int
        The label of each column.

    Raises
    ------
    ConfigError
        If no atlas is given and the series has none.
    SchemaError
        If the atlas grid differs from the series', or a requested label has no voxels.

    Examples
    --------
    >>> import tempfile
    >>> from secured_bio.testing import simulate_imaging
    >>> c = simulate_imaging(tempfile.mkdtemp(), n_sites=1, subjects_per_site=2,
    ...                      n_timepoints=12, n_rois=3, shape=(6, 6, 4))
    >>> signals, labels = roi_timeseries(c.series_paths[0], c.atlas_path)
    >>> signals.shape, labels
    ((12, 3), (1, 2, 3))
    """
    s, a = _series_and_atlas(series, atlas, "ROI signals")
    wanted = a.labels if labels is None else tuple(int(v) for v in labels)
    flat_atlas = a.data.reshape(-1)
    flat = s.data.reshape(-1, s.n_timepoints)
    out = np.empty((s.n_timepoints, len(wanted)), dtype=np.float64)
    for j, label in enumerate(wanted):
        voxels = flat_atlas == label
        if label == 0 or not voxels.any():
            raise SchemaError(
                "atlas region has no voxels", where=f"{a.path or 'atlas'}: label {label}",
                expected="every requested label present in the atlas (0 is background)",
                got=f"no voxel with label {label}",
                fix="request only labels the atlas holds (atlas.labels)",
            )
        out[:, j] = flat[voxels].mean(axis=0)
    return out, wanted


def _check_signals(signals: Any, name: str = "signals") -> np.ndarray:
    x = np.asarray(signals, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise SchemaError(f"{name} must be a (timepoints, columns) array", where=name,
                          expected="2D with at least 2 rows", got=f"shape {x.shape}",
                          fix="put time along the first axis")
    n_bad = int(np.count_nonzero(~np.isfinite(x)))
    if n_bad:
        raise SchemaError(f"{name} have non-finite values", where=name,
                          expected="finite values only", got=f"{n_bad} NaN/inf values",
                          fix="remove or impute them first")
    return x


def _check_cutoff(name: str, value: float | None, nyquist: float) -> None:
    if value is None:
        return
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not (math.isfinite(value) and 0 < value < nyquist):
        raise ConfigError(
            f"{name} cut-off out of range", where=f"clean_signals({name}=...)",
            expected=f"0 < {name} < the Nyquist frequency {nyquist:g} Hz (1 / (2 TR))",
            got=f"{value!r} Hz" if ok else type(value).__name__,
            fix=f"give {name} in Hz below {nyquist:g}, or leave it off",
        )


def clean_signals(
    signals: np.ndarray,
    *,
    tr: float,
    detrend: bool = True,
    confounds: np.ndarray | None = None,
    high_pass: float | None = None,
    low_pass: float | None = None,
    standardize: bool = True,
) -> np.ndarray:
    """Detrend, band-pass, regress out confounds and z-score signals (nilearn's order).

    The steps match ``nilearn.signal.clean(signals, detrend=detrend, confounds=confounds,
    standardize='zscore_sample' or None, standardize_confounds=True, filter='butterworth',
    high_pass=high_pass, low_pass=low_pass, t_r=tr)``: confounds get the same detrending and
    filtering as the signals before they are regressed out (Lindquist et al. 2019), the
    filter is a 5th-order Butterworth run forwards and backwards (zero phase), and
    z-scoring uses the sample standard deviation (a constant column stays 0).

    Parameters
    ----------
    signals
        (t, r) signals, time along the first axis.
    tr
        Repetition time in seconds (sampling interval).
    detrend
        Remove a linear trend (and the mean) from each column.
    confounds
        (t, k) nuisance regressors (motion, physiology...) to regress out.
    high_pass, low_pass
        Band-pass cut-offs in Hz; off when None.  Must lie below 1 / (2 tr).
    standardize
        Scale each column to mean 0 and sample standard deviation 1.

    Returns
    -------
    numpy.ndarray
        (t, r) cleaned signals, float64.

    Raises
    ------
    SchemaError
        If signals or confounds are not 2D and finite, their lengths differ, or the series
        is too short for the filter.
    ConfigError
        If ``tr`` is not positive or a cut-off is out of range (``high_pass >= low_pass``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(50, 3)) + np.linspace(0, 5, 50)[:, None]
    >>> y = clean_signals(x, tr=2.0)
    >>> bool(np.allclose(y.mean(axis=0), 0) and np.allclose(y.std(axis=0, ddof=1), 1))
    True
    """
    from scipy import linalg
    from scipy import signal as sp_signal

    x = _check_signals(signals)
    ok = isinstance(tr, int | float) and not isinstance(tr, bool)
    if not ok or not (math.isfinite(tr) and tr > 0):
        raise ConfigError("tr must be a positive number of seconds", where="clean_signals(tr=)",
                          expected="tr > 0", fix="give the repetition time in seconds")
    nyquist = 0.5 / tr
    _check_cutoff("high_pass", high_pass, nyquist)
    _check_cutoff("low_pass", low_pass, nyquist)
    if high_pass is not None and low_pass is not None and high_pass >= low_pass:
        raise ConfigError("high_pass must be below low_pass", where="clean_signals",
                          expected="high_pass < low_pass (a pass band)",
                          got=f"high_pass {high_pass:g} Hz, low_pass {low_pass:g} Hz",
                          fix="swap or correct the cut-offs")
    conf = None
    if confounds is not None:
        conf = _check_signals(confounds, "confounds")
        if conf.shape[0] != x.shape[0]:
            raise SchemaError("confounds and signals differ in length", where="confounds",
                              expected=f"{x.shape[0]} rows (one per volume)",
                              got=f"{conf.shape[0]} rows",
                              fix="give one confound row per volume")

    if detrend:
        x = sp_signal.detrend(x, axis=0, type="linear")
        if conf is not None:
            conf = sp_signal.detrend(conf, axis=0, type="linear")
    if high_pass is not None or low_pass is not None:
        if high_pass is not None and low_pass is not None:
            wn: float | list[float] = [high_pass, low_pass]
            btype = "bandpass"
        else:
            wn = high_pass if high_pass is not None else low_pass  # type: ignore[assignment]
            btype = "highpass" if high_pass is not None else "lowpass"
        sos = sp_signal.butter(_BUTTERWORTH_ORDER, wn, btype=btype, output="sos", fs=1.0 / tr)
        # scipy.signal.sosfiltfilt's default padding; the series must be longer than it.
        padlen = 3 * (2 * len(sos) + 1 - min(int((sos[:, 2] == 0).sum()),
                                             int((sos[:, 5] == 0).sum())))
        if x.shape[0] <= padlen:
            raise SchemaError(
                "series too short for the band-pass filter", where="clean_signals",
                expected=f"more than {padlen} volumes (the zero-phase filter's padding)",
                got=f"{x.shape[0]} volumes", fix="drop the band-pass or use a longer series",
            )
        x = sp_signal.sosfiltfilt(sos, x, axis=0, padtype="odd")
        if conf is not None:
            conf = sp_signal.sosfiltfilt(sos, conf, axis=0, padtype="odd")
    if conf is not None:
        # Centre and scale the confounds (as nilearn does) so the constant is not regressed
        # twice and the rank test below is scale-free; project onto their orthogonal.
        conf = conf - conf.mean(axis=0)
        std = conf.std(axis=0)
        std[std < np.finfo(np.float64).eps] = 1.0
        conf = conf / std
        q, r, _ = linalg.qr(conf, mode="economic", pivoting=True)
        q = q[:, np.abs(np.diag(r)) > np.finfo(np.float64).eps * 100.0]
        x = x - q @ (q.T @ x)
    if standardize:
        x = x - x.mean(axis=0)
        std = x.std(axis=0, ddof=1)
        std[std < np.finfo(np.float64).eps] = 1.0
        x = x / std
    return np.ascontiguousarray(x)


def connectivity_matrix(
    signals: np.ndarray,
    *,
    kind: str = "correlation",
    fisher_z: bool = False,
) -> np.ndarray:
    """Compute the connectivity between the columns of ``signals``.

    - ``correlation``: Pearson correlation (``numpy.corrcoef``), diagonal exactly 1.
    - ``partial``: partial correlation of each pair given all other columns,
      ``-P_ij / sqrt(P_ii P_jj)`` with ``P`` the inverse of the sample covariance (Smith et
      al. 2011); diagonal 1.  Needs more timepoints than columns.

    With ``fisher_z`` the off-diagonal values become ``arctanh(r)`` (Fisher 1915), which
    makes them roughly normal for averaging and classification; the diagonal, infinite in
    theory, is set to **0** so the matrix stays finite (a perfect off-diagonal +-1 gives
    +-inf).

    Parameters
    ----------
    signals
        (t, r) signals, r >= 2.
    kind
        ``'correlation'`` or ``'partial'``.
    fisher_z
        Apply the Fisher z-transform.

    Returns
    -------
    numpy.ndarray
        (r, r) symmetric float64 matrix.

    Raises
    ------
    ConfigError
        If ``kind`` is unknown (with a "did you mean" hint).
    SchemaError
        If there are fewer than 2 columns, a column is constant, or (partial) the
        covariance is singular (too few timepoints for the number of regions).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(100, 3))
    >>> bool(np.allclose(connectivity_matrix(x), np.corrcoef(x.T)))
    True
    >>> float(connectivity_matrix(x, kind="partial", fisher_z=True)[0, 0])
    0.0
    """
    if kind not in KINDS:
        raise ConfigError("unknown connectivity kind", where="connectivity_matrix(kind=...)",
                          expected=" or ".join(repr(k) for k in KINDS),
                          got=repr(kind) if isinstance(kind, str) else type(kind).__name__,
                          fix=did_you_mean(str(kind), KINDS) or "choose a listed kind")
    x = _check_signals(signals)
    n_t, n_r = x.shape
    if n_r < 2:
        raise SchemaError("connectivity needs at least 2 regions", where="signals",
                          expected="2 or more columns", got=f"{n_r} column",
                          fix="use an atlas with 2 or more labels")
    sd = x.std(axis=0)
    constant = np.flatnonzero(sd <= np.finfo(np.float64).eps * np.maximum(1.0, np.abs(x).max(0)))
    if constant.size:
        raise SchemaError(
            "region signal is constant: its correlation is undefined", where="signals",
            expected="a varying signal in every region",
            got=f"{constant.size} constant column(s), first at index {int(constant[0])}",
            fix="check the atlas covers brain voxels of this series, or drop that region",
        )
    if kind == "correlation":
        m = np.corrcoef(x, rowvar=False)
    else:
        if n_t - 1 < n_r:
            raise SchemaError(
                "too few timepoints for partial correlation", where="signals",
                expected=f"more than {n_r} timepoints for {n_r} regions",
                got=f"{n_t} timepoints", fix="use kind='correlation' or fewer regions",
            )
        cov = np.cov(x, rowvar=False)
        if np.linalg.matrix_rank(cov) < n_r:
            raise SchemaError(
                "covariance of the region signals is singular", where="signals",
                expected=f"rank {n_r}", got=f"rank {int(np.linalg.matrix_rank(cov))}",
                fix="some regions are linear combinations of others (e.g. after confound "
                "regression); use kind='correlation' or fewer regions",
            )
        prec = np.linalg.inv(cov)
        d = np.sqrt(np.diag(prec))
        m = -prec / np.outer(d, d)
    m = (m + m.T) / 2.0
    np.fill_diagonal(m, 1.0)
    if fisher_z:
        with np.errstate(divide="ignore"):  # |r| == 1 gives +-inf, as documented
            m = np.arctanh(np.clip(m, -1.0, 1.0))
        np.fill_diagonal(m, 0.0)
    return m


def read_confounds(path: str | os.PathLike[str], *, n_timepoints: int | None = None
                   ) -> np.ndarray:
    """Read a confounds TSV (a header row, one numeric column per regressor).

    Parameters
    ----------
    path
        Tab-separated file, e.g. fMRIPrep's ``desc-confounds_timeseries.tsv`` restricted to
        the wanted columns.
    n_timepoints
        Required number of rows (one per volume), if given.

    Returns
    -------
    numpy.ndarray
        (t, k) float64.

    Raises
    ------
    InputFileNotFoundError
        If the file does not exist.
    FormatError
        If it is not a TSV with a header.
    SchemaError
        If a column is not numeric, a value is missing (``n/a``), or the row count differs
        from ``n_timepoints``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "conf.tsv"
    >>> _ = p.write_text("trans_x\\trot_x\\n0.1\\t0.0\\n0.2\\t0.1\\n0.0\\t0.3\\n")
    >>> read_confounds(p, n_timepoints=3).shape
    (3, 2)
    """
    import pandas as pd

    p = Path(path)
    reject_folder(p, "confounds file", option="--confounds")
    if not p.is_file():
        raise InputFileNotFoundError("confounds file not found", where=str(p),
                                     expected="a TSV with one column per regressor",
                                     fix="check the --confounds path")
    try:
        df = pd.read_csv(p, sep="\t", na_values=["n/a", "NA", "nan", ""],
                         keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, *DAMAGED_FILE_ERRORS) as e:
        raise FormatError("confounds file is not a readable TSV", where=str(p),
                          expected="tab-separated values with a header row",
                          got=type(e).__name__, fix="write it as a TSV") from e
    bad_cols = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if bad_cols or df.shape[1] == 0:
        raise SchemaError("confound columns must be numeric", where=str(p),
                          expected="numbers in every column",
                          got=f"non-numeric columns {bad_cols}" if bad_cols else "no columns",
                          fix="keep only numeric regressor columns")
    missing = df.isna().sum()
    if int(missing.sum()):
        cols = [str(c) for c in missing[missing > 0].index]
        raise SchemaError("confounds have missing values", where=f"{p}: columns {cols}",
                          expected="a value in every row",
                          got=f"{int(missing.sum())} missing values",
                          fix="fill them (e.g. 0 for the first row of derivative columns)")
    if n_timepoints is not None and len(df) != n_timepoints:
        raise SchemaError("confounds and series differ in length", where=str(p),
                          expected=f"{n_timepoints} rows (one per volume)", got=f"{len(df)}",
                          fix="give the confounds of this series")
    return df.to_numpy(dtype=np.float64)


@dataclass(frozen=True)
class Connectivity:
    """What :func:`series_connectivity` computed.

    Attributes
    ----------
    matrix
        (r, r) connectivity matrix.
    labels
        Atlas label of each row/column.
    kind, fisher_z
        The measure.
    tr
        Repetition time used (s).
    n_timepoints
        Volumes in the series.
    preprocessing
        The cleaning options used (``None`` when ``preprocess=False``).
    signals
        (t, r) ROI signals the matrix was computed from (after cleaning).
    """

    matrix: np.ndarray = field(repr=False)
    labels: tuple[int, ...]
    kind: str
    fisher_z: bool
    tr: float
    n_timepoints: int
    preprocessing: dict[str, Any] | None
    signals: np.ndarray = field(repr=False)

    def metadata(self) -> dict[str, Any]:
        """Provenance for the JSON sidecar (no data values)."""
        return {"kind": self.kind, "fisher_z": self.fisher_z, "labels": list(self.labels),
                "repetition_time_s": self.tr, "n_timepoints": self.n_timepoints,
                "preprocessing": self.preprocessing,
                "fisher_z_diagonal": 0.0 if self.fisher_z else None}


def series_connectivity(
    series: FunctionalSeries | str | os.PathLike[str],
    atlas: Atlas | str | os.PathLike[str],
    *,
    kind: str = "correlation",
    fisher_z: bool = False,
    preprocess: bool = True,
    tr: float | None = None,
    detrend: bool = True,
    standardize: bool = True,
    high_pass: float | None = None,
    low_pass: float | None = None,
    confounds: np.ndarray | str | os.PathLike[str] | None = None,
    labels: Sequence[int] | None = None,
) -> Connectivity:
    """Load a series and an atlas, extract ROI signals, clean them and compute connectivity.

    Parameters
    ----------
    series, atlas
        Paths (or loaded objects) of the 4D series and the label atlas on its grid.
    kind, fisher_z
        See :func:`connectivity_matrix`.
    preprocess
        Clean the ROI signals with :func:`clean_signals` (detrend, optional band-pass and
        confounds, z-score); False uses the raw ROI means.
    tr
        Repetition time override in seconds (else header, else sidecar).
    detrend, standardize, high_pass, low_pass
        :func:`clean_signals` options (ignored when ``preprocess`` is False).
    confounds
        (t, k) array or a TSV path for :func:`read_confounds`.
    labels
        Labels to extract (default: all of the atlas).

    Returns
    -------
    Connectivity
        Matrix, labels and provenance.

    Raises
    ------
    ConfigError
        If confounds are given with ``preprocess=False``, or an option is invalid.
    SchemaError, FormatError, InputFileNotFoundError
        From :func:`~secured_bio.imaging.io.load_series`, :func:`roi_timeseries`,
        :func:`clean_signals` and :func:`connectivity_matrix`.

    Examples
    --------
    >>> import tempfile
    >>> from secured_bio.testing import simulate_imaging
    >>> c = simulate_imaging(tempfile.mkdtemp(), n_sites=1, subjects_per_site=2,
    ...                      n_timepoints=12, n_rois=3, shape=(6, 6, 4))
    >>> conn = series_connectivity(c.series_paths[0], c.atlas_path, fisher_z=True)
    >>> conn.matrix.shape, conn.labels, conn.tr
    ((3, 3), (1, 2, 3), 2.0)
    """
    if isinstance(series, FunctionalSeries):
        s = series if tr is None else dataclasses.replace(series, tr=float(tr),
                                                           tr_source="argument")
    else:
        s = load_series(series, tr=tr)
    a = load_atlas(atlas, like=s)
    signals, used = roi_timeseries(s, a, labels=labels)
    options: dict[str, Any] | None = None
    if preprocess:
        conf: np.ndarray | None = None
        if isinstance(confounds, np.ndarray):
            conf = confounds
        elif confounds is not None:
            conf = read_confounds(confounds, n_timepoints=s.n_timepoints)
        signals = clean_signals(signals, tr=s.tr, detrend=detrend, confounds=conf,
                                high_pass=high_pass, low_pass=low_pass,
                                standardize=standardize)
        options = {"detrend": detrend, "standardize": "zscore_sample" if standardize else None,
                   "filter": "butterworth" if high_pass or low_pass else None,
                   "butterworth_order": _BUTTERWORTH_ORDER if high_pass or low_pass else None,
                   "high_pass_hz": high_pass, "low_pass_hz": low_pass,
                   "n_confounds": 0 if conf is None else int(conf.reshape(len(conf), -1).shape[1])}
    elif confounds is not None or high_pass is not None or low_pass is not None:
        raise ConfigError("confounds and band-pass need preprocessing",
                          where="series_connectivity(preprocess=False)",
                          fix="drop --no-preprocess, or drop the confounds and cut-offs")
    matrix = connectivity_matrix(signals, kind=kind, fisher_z=fisher_z)
    return Connectivity(matrix=matrix, labels=used, kind=kind, fisher_z=fisher_z, tr=s.tr,
                        n_timepoints=s.n_timepoints, preprocessing=options, signals=signals)


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def format_connectivity_tsv(matrix: np.ndarray, labels: Sequence[int], *,
                            where: str = "matrix") -> str:
    """Return the TSV text of :func:`write_connectivity_tsv` (values as ``repr``).

    Raises
    ------
    SchemaError
        If the matrix is not square or the label count differs.

    Examples
    --------
    >>> format_connectivity_tsv(np.eye(2), [1, 2]).splitlines()[1]
    '1\\t1.0\\t0.0'
    """
    m = np.asarray(matrix, dtype=np.float64)
    labs = [int(v) for v in labels]
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(labs):
        raise SchemaError("connectivity matrix must be square with one label per row",
                          where=where, expected=f"({len(labs)}, {len(labs)})",
                          got=f"shape {m.shape}", fix="pass the labels returned with it")
    lines = ["\t".join(["label", *map(str, labs)])]
    lines += ["\t".join([str(lab), *(repr(float(v)) for v in row)])
              for lab, row in zip(labs, m, strict=True)]
    return "\n".join(lines) + "\n"


def write_connectivity_tsv(
    matrix: np.ndarray,
    labels: Sequence[int],
    path: str | os.PathLike[str],
    *,
    metadata: dict[str, Any] | None = None,
) -> list[Path]:
    """Write a square connectivity TSV (and a JSON sidecar), atomically.

    The header is ``label`` followed by the atlas label values; each row starts with its
    label.  Values are written with ``repr`` (shortest exact round trip), so a reader gets
    the very same float64 numbers back.  With ``metadata`` a sidecar (``path`` with
    ``.json``) is written too, carrying the format name and version.

    Parameters
    ----------
    matrix
        (r, r) matrix.
    labels
        r atlas labels (integers).
    path
        Output TSV.
    metadata
        Provenance for the sidecar (kind, preprocessing...); no sidecar when None.

    Returns
    -------
    list of Path
        Files written.

    Raises
    ------
    SchemaError
        If the matrix is not square or the label count differs.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "conn.tsv"
    >>> _ = write_connectivity_tsv(np.array([[1.0, 0.25], [0.25, 1.0]]), [3, 7], p)
    >>> p.read_text().splitlines()
    ['label\\t3\\t7', '3\\t1.0\\t0.25', '7\\t0.25\\t1.0']
    """
    text = format_connectivity_tsv(matrix, labels, where=str(path))
    out = Path(path)
    if metadata is None:
        with atomic_write(out) as fh:
            fh.write(text)
        return [out]
    side = _sidecar(out)
    doc = {"format": CONNECTIVITY_FORMAT, "format_version": CONNECTIVITY_FORMAT_VERSION,
           "matrix_file": out.name, **metadata}
    with atomic_paths(out, side) as (tmp_tsv, tmp_json):
        tmp_tsv.write_text(text, encoding="utf-8")
        tmp_json.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    return [out, side]


def read_connectivity_tsv(path: str | os.PathLike[str]) -> tuple[np.ndarray, tuple[int, ...]]:
    """Read a TSV written by :func:`write_connectivity_tsv`.

    Parameters
    ----------
    path
        The TSV; a sidecar next to it, if present, must be of a known format version.

    Returns
    -------
    matrix : numpy.ndarray
        (r, r) float64.
    labels : tuple of int
        The atlas labels.

    Raises
    ------
    InputFileNotFoundError
        If the file does not exist.
    FormatError
        If it is not a square TSV with integer labels in the header and first column, a
        value is not a number, or the sidecar has an unknown format version.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "conn.tsv"
    >>> m = np.array([[1.0, 1 / 3], [1 / 3, 1.0]])
    >>> _ = write_connectivity_tsv(m, [1, 2], p)
    >>> back, labels = read_connectivity_tsv(p)
    >>> bool((back == m).all()), labels
    (True, (1, 2))
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileNotFoundError("connectivity TSV not found", where=str(p),
                                     fix="check the path")
    side = _sidecar(p)
    if side.is_file():
        try:
            doc = json.loads(side.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise FormatError("connectivity sidecar is not JSON", where=str(side),
                              got=type(e).__name__, fix="remove or rewrite it") from e
        if isinstance(doc, dict) and doc.get("format") == CONNECTIVITY_FORMAT and doc.get(
                "format_version") != CONNECTIVITY_FORMAT_VERSION:
            raise FormatError(
                "unknown connectivity format version", where=str(side),
                expected=f"format_version {CONNECTIVITY_FORMAT_VERSION}",
                got=f"format_version {doc.get('format_version')!r}",
                fix="upgrade secured_bio to read files written by a newer version",
            )
    with open(p, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))

    def bad(what: str, line: int) -> FormatError:
        return FormatError(f"not a connectivity TSV: {what}", where=f"{p}:{line}",
                           expected="a header 'label' + integer labels, then one row per "
                           "label starting with it", fix="write it with "
                           "write_connectivity_tsv or 'secured-bio imaging connectivity'")

    if not rows or len(rows[0]) < 2:
        raise bad("no header", 1)
    try:
        labels = tuple(int(v) for v in rows[0][1:])
    except ValueError:
        raise bad("header labels are not integers", 1) from None
    body = rows[1:]
    if len(body) != len(labels):
        raise bad(f"{len(body)} rows for {len(labels)} labels", len(rows))
    m = np.empty((len(labels), len(labels)), dtype=np.float64)
    for i, row in enumerate(body):
        if len(row) != len(labels) + 1:
            raise bad(f"{len(row)} cells, expected {len(labels) + 1}", i + 2)
        try:
            row_label = int(row[0])
            m[i] = [float(v) for v in row[1:]]
        except ValueError:
            raise bad("a cell is not a number", i + 2) from None
        if row_label != labels[i]:
            raise bad("row label differs from the header's order", i + 2)
    return m, labels
