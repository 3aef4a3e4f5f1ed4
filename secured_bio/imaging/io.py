"""Read 4D functional series (fMRI BOLD, functional ultrasound) and label atlases.

The checks are those of the ``nifti`` data spec (``data_specs/nifti.yaml``), run by the
same code as ``secured-bio validate nifti`` (:mod:`secured_bio.specs`): a 4D image with
enough volumes, a finite non-singular affine, finite voxel values, a repetition time, and
an integer label atlas on the same voxel grid.  One difference: the loader also takes the
repetition time from a BIDS JSON sidecar (``RepetitionTime``) when the header has none.

Variables
---------
``data``
    (x, y, z, t) float64 voxel values of a series; ``t`` is time, one volume per TR.
``tr``
    Repetition time in seconds (the sampling interval of the series).
``atlas.data``
    (x, y, z) integer labels; 0 is the background, every other value one region (ROI).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from secured_bio.errors import (
    ConfigError,
    FormatError,
    InputFileNotFoundError,
    SchemaError,
)

__all__ = [
    "FunctionalSeries",
    "Atlas",
    "load_series",
    "load_atlas",
    "derivative_path",
    "sidecar_path",
    "MODALITY_SUFFIXES",
]

logger = logging.getLogger(__name__)

#: BIDS-like file suffix of each modality (fUS follows the proposed BEP040 "pwd").
MODALITY_SUFFIXES: dict[str, str] = {"bold": "fmri", "pwd": "fus"}

_NIFTI_EXT = (".nii.gz", ".nii")
_BIDS_LABEL = re.compile(r"[A-Za-z0-9]+")


@functools.cache
def _rules() -> dict[str, Any]:
    from secured_bio.specs import load_spec

    rules: dict[str, Any] = load_spec("nifti")["rules"]
    return rules


@dataclass(frozen=True)
class Atlas:
    """A 3D label atlas checked by :func:`load_atlas`.

    Attributes
    ----------
    path
        The file read (None when built in memory).
    data
        (x, y, z) integer labels; 0 is the background.
    affine
        4x4 voxel-to-world affine.
    labels
        The non-background label values, ascending.
    """

    path: Path | None
    data: np.ndarray = field(repr=False)
    affine: np.ndarray = field(repr=False)
    labels: tuple[int, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid shape (x, y, z)."""
        x, y, z = (int(s) for s in self.data.shape)
        return x, y, z


@dataclass(frozen=True)
class FunctionalSeries:
    """A 4D functional series checked by :func:`load_series`.

    Attributes
    ----------
    path
        The file read.
    img
        The nibabel image (data read lazily through ``img.dataobj``).
    affine
        4x4 voxel-to-world affine.
    shape
        (x, y, z, t).
    tr
        Repetition time in seconds.
    tr_source
        Where the TR came from: ``'header'``, ``'sidecar'`` or ``'argument'``.
    modality
        ``'fmri'``, ``'fus'`` or ``'unknown'`` (from the sidecar ``Modality``, else the
        file suffix ``bold``/``pwd``).
    atlas
        The atlas given to :func:`load_series`, checked against this grid, or None.
    """

    path: Path
    img: Any = field(repr=False)
    affine: np.ndarray = field(repr=False)
    shape: tuple[int, int, int, int]
    tr: float
    tr_source: str
    modality: str
    atlas: Atlas | None = field(default=None, repr=False)

    @functools.cached_property
    def data(self) -> np.ndarray:
        """Voxel values as float64, (x, y, z, t); read once, then cached."""
        return np.asarray(np.asanyarray(self.img.dataobj), dtype=np.float64)

    @property
    def n_timepoints(self) -> int:
        """Number of volumes."""
        return self.shape[3]


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Return the BIDS JSON sidecar path of a NIfTI file (``x.nii.gz`` -> ``x.json``).

    Examples
    --------
    >>> sidecar_path("sub-1/func/sub-1_task-rest_bold.nii.gz").name
    'sub-1_task-rest_bold.json'
    """
    p = Path(path)
    return p.with_name(_stem(p) + ".json")


def _stem(path: Path) -> str:
    name = path.name
    for ext in _NIFTI_EXT:
        if name.endswith(ext):
            return name[: -len(ext)]
    return path.stem


def _read_sidecar(path: Path) -> dict[str, Any]:
    side = sidecar_path(path)
    if not side.is_file():
        return {}
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError("JSON sidecar is not valid JSON", where=str(side),
                          got=type(e).__name__, fix="repair or remove the sidecar") from e
    if not isinstance(meta, dict):
        raise FormatError("JSON sidecar is not an object", where=str(side),
                          expected="a JSON object (BIDS sidecar)", got=type(meta).__name__,
                          fix="repair or remove the sidecar")
    return meta


def _sidecar_tr(path: Path, meta: dict[str, Any]) -> float | None:
    if "RepetitionTime" not in meta:
        return None
    value = meta["RepetitionTime"]
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not (math.isfinite(value) and value > 0):
        raise SchemaError(
            "sidecar RepetitionTime is not a positive number", where=f"{sidecar_path(path)}",
            expected="RepetitionTime > 0 in seconds (BIDS)", got=type(value).__name__,
            fix="set RepetitionTime to the TR in seconds",
        )
    return float(value)


def _header_tr(hdr: Any) -> float | None:
    """TR in seconds from pixdim[4] and the time unit, or None when either is missing."""
    scale = _rules()["time_units"].get(hdr.get_xyzt_units()[1])
    # pixdim is float32: take its shortest decimal form, so 0.4 s reads 0.4, not 0.40000001.
    tr = float(str(np.float32(hdr["pixdim"][4])))
    if scale is None or not (math.isfinite(tr) and tr > 0):
        return None
    return tr * float(scale)


def _guess_modality(path: Path, meta: dict[str, Any]) -> str:
    declared = meta.get("Modality")
    if isinstance(declared, str) and declared.lower() in ("fmri", "fus"):
        return declared.lower()
    suffix = _stem(path).rsplit("_", 1)[-1]
    return MODALITY_SUFFIXES.get(suffix, "unknown")


def _check_positive(name: str, value: float | None, where: str) -> None:
    if value is None:
        return
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not (math.isfinite(value) and value > 0):
        raise ConfigError(
            f"{name} must be a positive number of seconds", where=where, expected=f"{name} > 0",
            got=type(value).__name__ if not ok else "a number <= 0 or not finite",
            fix=f"give {name} in seconds, e.g. 2.0",
        )


def load_series(
    path: str | os.PathLike[str],
    *,
    atlas: str | os.PathLike[str] | Atlas | None = None,
    tr: float | None = None,
    min_timepoints: int | None = None,
) -> FunctionalSeries:
    """Load a 4D functional series (fMRI or fUS) and check it against the ``nifti`` spec.

    The voxel data are read once to count non-finite values and kept for
    :attr:`FunctionalSeries.data`.

    Parameters
    ----------
    path
        NIfTI-1/2 file (``.nii`` or ``.nii.gz``).
    atlas
        Optional label atlas (path or :class:`Atlas`), checked by :func:`load_atlas`
        against this series and attached as ``series.atlas``.
    tr
        Repetition time in seconds; overrides the header and the sidecar.
    min_timepoints
        Fewest volumes accepted; defaults to the spec's ``min_timepoints`` (10).

    Returns
    -------
    FunctionalSeries
        The image, affine, shape, TR (seconds) and modality guess.

    Raises
    ------
    InputFileNotFoundError
        If ``path`` (or the atlas) does not exist.
    FormatError
        If the file is not a readable NIfTI image, or its sidecar is not valid JSON.
    SchemaError
        If the image is not 4D, has too few volumes, a singular or non-finite affine,
        NaN/inf voxels (counted, never shown), no repetition time in the header
        (``pixdim[4]`` with a time unit) nor in a JSON sidecar, or a header TR that
        disagrees with the sidecar; or if the atlas fails :func:`load_atlas`.
    ConfigError
        If ``tr`` is not a positive number.

    Examples
    --------
    >>> import tempfile
    >>> from secured_bio.testing import simulate_imaging
    >>> c = simulate_imaging(tempfile.mkdtemp(), n_sites=1, subjects_per_site=2,
    ...                      n_timepoints=12, n_rois=3, shape=(6, 6, 4))
    >>> s = load_series(c.series_paths[0], atlas=c.atlas_path)
    >>> s.shape, s.tr, s.modality, s.atlas.labels
    ((6, 6, 4, 12), 2.0, 'fmri', (1, 2, 3))
    """
    from secured_bio import specs

    rules = _rules()
    p = Path(path)
    _check_positive("tr", tr, f"load_series({p.name}, tr=...)")
    if not p.is_file():
        raise InputFileNotFoundError(
            "functional series not found", where=str(p),
            expected="an existing 4D NIfTI file (.nii or .nii.gz)",
            fix="check the path" + (" (it is a folder)" if p.is_dir() else ""),
        )
    img = specs._load_nifti(p, "image")
    shape = tuple(int(s) for s in img.shape)
    min_t = rules["min_timepoints"] if min_timepoints is None else int(min_timepoints)
    specs._check_series_shape(p, shape, rules["ndim"], min_t)
    specs._check_affine(p, img.affine, "image")

    meta = _read_sidecar(p)
    header_tr = _header_tr(img.header)
    side_tr = _sidecar_tr(p, meta)
    if tr is not None:
        tr_s, source = float(tr), "argument"
    elif header_tr is not None:
        if side_tr is not None and not math.isclose(header_tr, side_tr, rel_tol=1e-3):
            raise SchemaError(
                "repetition time differs between header and sidecar", where=str(p),
                expected="the same TR in pixdim[4] and the sidecar's RepetitionTime",
                got=f"{header_tr:g} s in the header, {side_tr:g} s in the sidecar",
                fix="correct the wrong one, or give the TR explicitly (--tr / tr=)",
            )
        tr_s, source = header_tr, "header"
    elif side_tr is not None:
        tr_s, source = side_tr, "sidecar"
    else:
        unit = img.header.get_xyzt_units()[1]
        raise SchemaError(
            "no repetition time", where=f"{p}: header pixdim[4] / JSON sidecar",
            expected="pixdim[4] > 0 with a time unit (sec, msec, usec), or RepetitionTime "
            f"in {sidecar_path(p).name}",
            got=f"pixdim[4] = {float(img.header['pixdim'][4]):g} with time unit '{unit}' "
            "and no sidecar RepetitionTime",
            fix="pass the TR (--tr SECONDS / tr=), or set it in the header "
            "(img.header.set_xyzt_units(t='sec'); pixdim[4] = TR) or the sidecar",
        )

    series = FunctionalSeries(
        path=p, img=img, affine=np.asarray(img.affine, dtype=np.float64),
        shape=(shape[0], shape[1], shape[2], shape[3]), tr=tr_s, tr_source=source,
        modality=_guess_modality(p, meta),
    )
    try:
        raw = np.asanyarray(img.dataobj)
    except (OSError, EOFError, ValueError) as e:
        raise FormatError("image data could not be read", where=str(p),
                          expected=f"{shape[3]} complete volumes", got=type(e).__name__,
                          fix="the file may be truncated: re-export it") from e
    n_bad, bad_volumes = specs._count_nonfinite(p, img, raw)
    if n_bad:
        specs._raise_nonfinite(p, n_bad, bad_volumes, shape[3])
    # Keep the array just read: FunctionalSeries.data is a cached_property.
    object.__setattr__(series, "data", np.asarray(raw, dtype=np.float64))
    if atlas is not None:
        object.__setattr__(series, "atlas", load_atlas(atlas, like=series))
    logger.info("loaded %s: shape %s, TR %.3g s (%s), modality %s", p.name, shape, tr_s,
                source, series.modality)
    return series


def load_atlas(
    path: str | os.PathLike[str] | Atlas,
    *,
    like: FunctionalSeries | None = None,
) -> Atlas:
    """Load a 3D integer label atlas and check that it shares the grid of ``like``.

    Parameters
    ----------
    path
        NIfTI label image (an :class:`Atlas` is re-checked against ``like``).
    like
        A series whose grid (shape and affine within the spec's ``affine_atol``) the atlas
        must match.

    Returns
    -------
    Atlas
        The labels as an integer array and the non-background label values.

    Raises
    ------
    InputFileNotFoundError
        If the file does not exist.
    FormatError
        If it is not a readable NIfTI image.
    SchemaError
        If it is not 3D, its labels are not integers, it has fewer than 2 labels besides
        the background 0, or its shape or affine differs from ``like``'s.

    Examples
    --------
    >>> import tempfile
    >>> from secured_bio.testing import simulate_imaging
    >>> c = simulate_imaging(tempfile.mkdtemp(), n_sites=1, subjects_per_site=2,
    ...                      n_timepoints=12, n_rois=3, shape=(6, 6, 4))
    >>> a = load_atlas(c.atlas_path)
    >>> a.shape, a.labels
    ((6, 6, 4), (1, 2, 3))
    """
    from secured_bio import specs

    rules = _rules()
    like_shape = like.shape[:3] if like is not None else None
    if isinstance(path, Atlas):
        where = Path(path.path) if path.path is not None else Path("<atlas>")
        if like_shape is not None and path.shape != like_shape:
            raise SchemaError(
                "atlas grid does not match the series", where=f"{where}: shape",
                expected=f"shape {like_shape} (the series' x, y, z)", got=f"shape {path.shape}",
                fix="resample the atlas to the series (nilearn.image.resample_to_img, "
                "interpolation='nearest')",
            )
        if like is not None:
            specs._check_atlas_grid(where, path.affine, like_shape or (), like.affine,
                                    rules["affine_atol"])
        return path
    p = Path(path)
    if p.is_dir():
        raise InputFileNotFoundError("atlas path is a folder", where=str(p),
                                     expected="a 3D label image file", fix="point to the file")
    warnings: list[str] = []
    img, data = specs._read_atlas(p, rules["atlas"], warnings, like_shape=like_shape)
    for w in warnings:
        logger.info("%s: %s", p, w)
    if like is not None:
        specs._check_atlas_grid(p, np.asarray(img.affine), like.shape[:3], like.affine,
                                rules["affine_atol"])
    background = rules["atlas"]["background"]
    labels = tuple(int(v) for v in np.unique(data) if v != background)
    return Atlas(path=p, data=data.astype(np.int64, copy=False),
                 affine=np.asarray(img.affine, dtype=np.float64), labels=labels)


def derivative_path(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    atlas: str = "demo",
    desc: str = "correlation",
    suffix: str = "connectivity",
    ext: str = ".tsv",
) -> Path:
    """Name a derivative of ``source`` in a BIDS-like scheme, inside ``out_dir``.

    The source's key-value entities (``sub-``, ``ses-``, ``task-``, ``run-``...) are kept in
    order, its modality suffix (``bold``, ``pwd``, or any last part without ``-``) is
    dropped, ``atlas-`` and ``desc-`` entities are set (replacing any the source had) and
    the new suffix and extension are appended.

    Parameters
    ----------
    source
        The source series (its folder is ignored).
    out_dir
        Folder of the derivative.
    atlas, desc
        Values of the ``atlas-`` and ``desc-`` entities (letters and digits only, as BIDS
        labels).
    suffix
        The derivative's suffix (letters and digits).
    ext
        File extension including the dot.

    Returns
    -------
    Path
        ``out_dir / <entities>_atlas-<atlas>_desc-<desc>_<suffix><ext>``.

    Raises
    ------
    ConfigError
        If ``atlas``, ``desc`` or ``suffix`` is not alphanumeric, or ``ext`` lacks its dot.

    Examples
    --------
    >>> derivative_path("site1/sub-01/func/sub-01_task-rest_bold.nii.gz", "out").as_posix()
    'out/sub-01_task-rest_atlas-demo_desc-correlation_connectivity.tsv'
    >>> derivative_path("sub-02_task-rest_pwd.nii", "d", desc="partial", ext=".png").name
    'sub-02_task-rest_atlas-demo_desc-partial_connectivity.png'
    """
    for name, value in (("atlas", atlas), ("desc", desc), ("suffix", suffix)):
        if not isinstance(value, str) or not _BIDS_LABEL.fullmatch(value):
            raise ConfigError(
                f"derivative {name} must be letters and digits only",
                where=f"derivative_path({name}=...)", expected="a BIDS label like 'demo'",
                got=f"{type(value).__name__} of length {len(value)}"
                if isinstance(value, str) else type(value).__name__,
                fix="remove '-', '_', spaces and punctuation",
            )
    if not (isinstance(ext, str) and ext.startswith(".") and len(ext) > 1):
        raise ConfigError("derivative extension must start with a dot",
                          where="derivative_path(ext=...)", expected="e.g. '.tsv'",
                          fix="add the leading dot")
    parts = _stem(Path(source)).split("_")
    if len(parts) > 1 and "-" not in parts[-1]:
        parts = parts[:-1]
    kept = [p for p in parts if not p.startswith(("atlas-", "desc-"))]
    return Path(out_dir) / ("_".join([*kept, f"atlas-{atlas}", f"desc-{desc}"])
                            + f"_{suffix}{ext}")
