"""De-identification of NIfTI images: header text fields, extensions, BIDS sidecars, defacing.

What can identify a person in a NIfTI file, and what this module does with it:

- Header text fields ``descrip`` (80 bytes; scanners and converters put dates, names and
  protocol text there), ``db_name``, ``aux_file``, ``intent_name`` and ``data_type``:
  cleared.  ``descrip`` then carries :data:`MARKER` (our format name and version).
- Header extensions (DICOM headers, AFNI/XML attributes...): all removed and counted.
- The JSON sidecar next to the image (BIDS ``sub-01_T1w.json`` beside ``sub-01_T1w.nii.gz``):
  keys that identify a person, a place, a device or a date (:data:`SIDECAR_KEYS`, and any key
  whose name contains ``Date``, ``UID``, ``Patient``, ``Physician``, ``Operator``...) are
  removed; the others are kept.
- The face of a structural head image: removed by :func:`deface` (optional).

Geometry (dims, pixdim, units, qform/sform and their codes), datatype, scaling and voxel
data are written back unchanged, byte for byte, unless the image is defaced.

Reports name fields and count them; they never hold values.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from secured_bio._atomic import atomic_paths
from secured_bio._inputs import reject_folder
from secured_bio.errors import (
    ConfigError,
    FormatError,
    InputError,
    InputFileNotFoundError,
    SecuredBioError,
)

__all__ = [
    "MARKER",
    "SIDECAR_KEYS",
    "HEADER_TEXT_FIELDS",
    "DefaceResult",
    "NiftiReport",
    "DefaceError",
    "deidentify_header",
    "deidentify_sidecar",
    "deface",
    "anonymize_nifti",
]

logger = logging.getLogger(__name__)

FORMAT_NAME = "secured_bio.deid_nifti"
FORMAT_VERSION = 1
MARKER = f"{FORMAT_NAME} v{FORMAT_VERSION}"
"""Written to ``descrip`` of every output; also how we recognise an output of ours."""

HEADER_TEXT_FIELDS = ("descrip", "db_name", "aux_file", "intent_name", "data_type")
"""Free-text NIfTI header fields that are cleared (``db_name``/``data_type`` exist in NIfTI-1)."""

SIDECAR_KEYS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge",
    "PatientWeight", "PatientSize", "OtherPatientIDs", "AccessionNumber", "StudyID",
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
    "AcquisitionDateTime", "AcquisitionDate", "AcquisitionTime", "ContentDate", "ContentTime",
    "SeriesDate", "SeriesTime", "StudyDate", "StudyTime", "InstitutionName",
    "InstitutionAddress", "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber",
    "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName",
    "ProcedureStepDescription", "ImageComments", "DateOfLastCalibration",
    "TimeOfLastCalibration",
)
"""BIDS/dcm2niix sidecar keys that are always removed (DICOM PS3.15 Annex E identifiers)."""

# Any other key whose name says it holds a date, an identifier or a person is removed too.
_SIDECAR_PATTERN = re.compile(
    r"Date|UID|Patient|Physician|Operator|Institution|Serial|Station|Accession|Birth|Address",
    re.IGNORECASE)
# Dates in free text (2024-01-31, 20240131, 31.01.2024, 01/31/2024) and times (13:45[:10]).
_DATE_PATTERN = re.compile(
    r"(19|20)\d\d[-/.]?[01]\d[-/.]?[0-3]\d|[0-3]?\d[./][01]?\d[./](19|20)?\d\d|\b[0-2]\d:[0-5]\d")
_NIFTI_SUFFIXES = (".nii", ".nii.gz")


class DefaceError(SecuredBioError, RuntimeError):
    """Defacing failed its quality check (brain not kept, or no face found and removed)."""


@dataclass(frozen=True)
class DefaceResult:
    """Outcome of :func:`deface`: the defaced volume, the removed voxels and the QC figures.

    ``brain_kept`` is the share of estimated brain voxels left untouched; ``face_ml`` the
    volume of head tissue found in front of and below the brain; ``face_cleared`` the share
    of that face region at background level after defacing.
    """

    data: np.ndarray
    removed: np.ndarray
    brain_kept: float
    face_ml: float
    face_cleared: float
    removed_ml: float

    def qc(self) -> dict[str, float]:
        """Return the quality-check figures (no voxel values)."""
        return {"brain_kept": round(self.brain_kept, 6), "face_ml": round(self.face_ml, 3),
                "face_cleared": round(self.face_cleared, 6),
                "removed_ml": round(self.removed_ml, 3)}


@dataclass
class NiftiReport:
    """What :func:`anonymize_nifti` removed: field names and counts, never values."""

    in_path: str
    out_path: str
    header_fields_cleared: list[str] = field(default_factory=list)
    dates_in_header: int = 0
    extensions_removed: int = 0
    extension_codes: list[int] = field(default_factory=list)
    sidecar_out: str | None = None
    sidecar_keys_removed: list[str] = field(default_factory=list)
    defaced: bool = False
    deface_qc: dict[str, float] | None = None
    format_name: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-ready dict."""
        return asdict(self)

    def summary(self) -> str:
        """Return a one-line summary for the command line."""
        line = (f"{Path(self.in_path).name} -> {self.out_path}: cleared "
                f"{len(self.header_fields_cleared)} header field(s) "
                f"({', '.join(self.header_fields_cleared) or 'none'}), "
                f"{self.dates_in_header} date(s), {self.extensions_removed} extension(s)")
        if self.sidecar_out is not None:
            line += f"; sidecar: removed {len(self.sidecar_keys_removed)} key(s)"
        if self.defaced and self.deface_qc is not None:
            q = self.deface_qc
            line += (f"; defaced {q['removed_ml']:.0f} ml (brain kept {q['brain_kept']:.1%}, "
                     f"face cleared {q['face_cleared']:.1%})")
        return line


def _text(value: Any) -> str:
    raw = np.asarray(value).item()
    if isinstance(raw, bytes):
        return raw.split(b"\0", 1)[0].decode("latin-1")
    return str(raw)


def deidentify_header(img: Any) -> tuple[Any, dict[str, Any]]:
    """Return a copy of a NIfTI image with identifying header fields and extensions removed.

    Clears :data:`HEADER_TEXT_FIELDS` (then writes :data:`MARKER` into ``descrip``) and
    removes every header extension.  Geometry, datatype, scaling and the data object are
    kept as they are.

    Parameters
    ----------
    img
        A ``nibabel.Nifti1Image`` or ``nibabel.Nifti2Image`` (or a ``.img``/``.hdr`` pair).

    Returns
    -------
    image, removed
        The new image, and a dict with ``header_fields_cleared`` (names of the non-empty
        fields cleared), ``dates_in_header`` (how many date/time strings they held) and
        ``extensions_removed``/``extension_codes``.

    Raises
    ------
    FormatError
        If ``img`` is not a NIfTI-1/2 image (e.g. ANALYZE).

    Examples
    --------
    >>> import nibabel as nib, numpy as np
    >>> img = nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4))
    >>> img.header["descrip"] = b"Smith^John 2024-01-31"
    >>> clean, removed = deidentify_header(img)
    >>> removed["header_fields_cleared"], removed["dates_in_header"]
    (['descrip'], 1)
    >>> clean.header["descrip"].item().decode()
    'secured_bio.deid_nifti v1'
    """
    import nibabel as nib

    if not isinstance(img, nib.Nifti1Pair):  # also Nifti1Image, Nifti2Pair, Nifti2Image
        raise FormatError("not a NIfTI image", where="deidentify_header",
                          expected="a nibabel NIfTI-1/2 image or pair",
                          got=type(img).__name__, fix="load the file with nibabel.load")
    hdr = img.header.copy()
    cleared: list[str] = []
    dates = 0
    for name in HEADER_TEXT_FIELDS:
        if name not in hdr:
            continue
        text = _text(hdr[name])
        if text.strip():
            cleared.append(name)
            dates += len(_DATE_PATTERN.findall(text))
        hdr[name] = b""
    hdr["descrip"] = MARKER.encode()
    codes = [int(ext.get_code()) for ext in hdr.extensions]
    hdr.extensions.clear()
    clean = img.__class__(img.dataobj, img.affine, header=hdr)
    # The constructor may touch qform/sform; put the original geometry back exactly.
    for key in ("qform_code", "sform_code", "quatern_b", "quatern_c", "quatern_d",
                "qoffset_x", "qoffset_y", "qoffset_z", "srow_x", "srow_y", "srow_z", "pixdim",
                "xyzt_units", "dim", "datatype", "bitpix", "scl_slope", "scl_inter"):
        clean.header[key] = img.header[key]
    return clean, {"header_fields_cleared": cleared, "dates_in_header": dates,
                   "extensions_removed": len(codes), "extension_codes": codes}


def deidentify_sidecar(meta: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Remove identifying keys from a BIDS JSON sidecar (top level).

    Parameters
    ----------
    meta
        The parsed sidecar.

    Returns
    -------
    kept, removed
        The sidecar without identifying keys, and the removed key names (sorted).

    Examples
    --------
    >>> deidentify_sidecar({"RepetitionTime": 2.0, "PatientName": "x", "StudyDate": "y"})
    ({'RepetitionTime': 2.0}, ['PatientName', 'StudyDate'])
    """
    always = set(SIDECAR_KEYS)
    removed = sorted(k for k in meta if k in always or _SIDECAR_PATTERN.search(k))
    return {k: v for k, v in meta.items() if k not in removed}, removed


# ----------------------------------------------------------------------------- defacing


def _otsu(values: np.ndarray) -> float:
    # Otsu (1979): the threshold maximising the between-class variance of a 256-bin histogram.
    hist, edges = np.histogram(values, bins=256)
    centres = (edges[:-1] + edges[1:]) / 2.0
    w0 = np.cumsum(hist).astype(float)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centres[int(np.argmax(between[:-1]))])


def _largest_component(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


def _ball(radius_mm: float, zooms: np.ndarray) -> np.ndarray:
    r = np.maximum(np.round(radius_mm / zooms).astype(int), 1)
    grid = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    return sum((g * z / radius_mm) ** 2 for g, z in zip(grid, zooms, strict=True)) <= 1.0


def _masks(data: np.ndarray, zooms: np.ndarray, erode_mm: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """Head and brain mask estimates (template-free, intensity and morphology only)."""
    from scipy import ndimage

    # Half the Otsu threshold: the histogram of a head image has several tissue classes, and
    # Otsu alone may split dark tissue (scalp, CSF) from the bright; half of it still lies
    # well above the background noise.
    head = _largest_component(ndimage.binary_fill_holes(data > 0.5 * _otsu(data)))
    # Brain: the bright tissue deep inside the head.  Eroding the head mask by about the
    # scalp + skull thickness cuts the brain's links to bright scalp and eyes; the largest
    # bright component left is the brain, grown back within the bright tissue (a geodesic
    # dilation), as in morphology-based skull stripping (Smith 2002, BET, without its mesh).
    bright = data > _otsu(data[head])
    core = ndimage.binary_erosion(head, structure=_ball(erode_mm, zooms))
    brain = _largest_component(bright & core)
    if brain.any():
        grow = max(1, int(round(erode_mm / 2.0 / float(zooms.min()))))
        brain = ndimage.binary_dilation(brain, iterations=grow, mask=bright & head)
        brain = ndimage.binary_fill_holes(brain)
    return head, brain


def deface(
    data: np.ndarray,
    affine: np.ndarray,
    *,
    margin_mm: float = 6.0,
    erode_mm: float = 10.0,
    min_brain_kept: float = 0.99,
    min_face_ml: float = 10.0,
    min_face_cleared: float = 0.99,
) -> DefaceResult:
    """Remove the face from a 3D structural head image, registration-free, and check it.

    The volume is reoriented to RAS voxel order with the affine's orientation (so LPS,
    oblique or axis-permuted images are handled), head and brain masks are estimated from
    intensities, and every voxel below a cut surface in the anterior half of the head is set
    to the image's minimum (background).  The cut follows the lower edge of the brain seen
    from the side (its projection on the antero-posterior / inferior-superior plane),
    lowered by ``margin_mm``, and never descends when moving forwards (a running maximum),
    so in front of the brain it stays at the height of the frontal pole: eyes, nose, mouth
    and chin are removed, the forehead and the brain are kept.  This is quickshear's idea
    (Schimke & Hale 2011: shear below the brain's convex hull in the sagittal projection)
    with a monotone lower envelope instead of a single plane.

    Quality check, raising :class:`DefaceError` when it fails:

    - brain kept: at least ``min_brain_kept`` of the estimated brain voxels are untouched;
    - face found: at least ``min_face_ml`` ml of head tissue lies in front of the brain
      (beyond its anterior edge by ``margin_mm``) and below its frontal pole;
    - face removed: at least ``min_face_cleared`` of that region is at background level
      after defacing.

    The orientation comes from the affine alone: an affine whose axes are wrong (e.g. a
    flipped left/right or front/back) cannot be detected without a template, so check
    orientation before releasing.

    Parameters
    ----------
    data
        3D volume (any numeric dtype).
    affine
        4x4 voxel-to-world affine (RAS+ mm, as nibabel gives it).
    margin_mm
        Distance kept between the cut and the brain.
    erode_mm
        Scalp + skull thickness used to separate the brain from the scalp.
    min_brain_kept, min_face_ml, min_face_cleared
        Quality-check thresholds.

    Returns
    -------
    DefaceResult

    Raises
    ------
    InputError
        If ``data`` is not 3D or ``affine`` is not an invertible 4x4 matrix.
    DefaceError
        If the quality check fails (no head or brain found, brain touched, no face found,
        face not removed).

    Examples
    --------
    >>> from secured_bio.testing._phantom import simulate_head_phantom
    >>> p = simulate_head_phantom(voxel_mm=6.0)
    >>> r = deface(p.data, p.affine)
    >>> bool(r.brain_kept >= 0.99 and r.face_cleared >= 0.99)
    True
    >>> bool((r.data[p.face] == r.data.min()).all() and (r.data[p.brain] == p.data[p.brain]).all())
    True
    """
    from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

    arr = np.asanyarray(data)
    aff = np.asarray(affine, dtype=float)
    if arr.ndim != 3 or min(arr.shape) < 8:
        raise InputError("defacing needs a 3D structural image", where="deface",
                         expected="3 dimensions of at least 8 voxels",
                         got=f"shape {arr.shape}", fix="deface the T1w/T2w anatomical image only")
    if aff.shape != (4, 4) or not np.isfinite(aff).all() or abs(np.linalg.det(aff[:3, :3])) < 1e-9:
        raise InputError("affine is not an invertible 4x4 matrix", where="deface",
                         got=f"shape {aff.shape}", fix="fix the image's qform/sform")
    ornt = io_orientation(aff)
    to_ras = ornt_transform(ornt, axcodes2ornt(("R", "A", "S")))
    back = ornt_transform(axcodes2ornt(("R", "A", "S")), ornt)
    vol = apply_orientation(arr, to_ras).astype(np.float64)
    zooms_in = np.sqrt((aff[:3, :3] ** 2).sum(axis=0))
    zooms = np.empty(3)
    zooms[to_ras[:, 0].astype(int)] = zooms_in
    voxel_ml = float(np.prod(zooms)) / 1000.0

    head, brain = _masks(vol, zooms, erode_mm)
    if not brain.any() or brain.sum() * voxel_ml < 50.0:
        raise DefaceError("no brain found", where="deface",
                          expected="a 3D head image with a bright brain inside the skull",
                          got=f"{brain.sum() * voxel_ml:.0f} ml of brain-like tissue",
                          fix="deface structural (T1w/T2w) head images only")
    # Sagittal projection: rows y (anterior +), columns z (superior +).
    side = np.asarray(np.any(brain, axis=0), dtype=bool)
    ys = np.flatnonzero(side.any(axis=1))
    y_front, y_centre = int(ys.max()), int(round(float(np.mean(np.nonzero(side)[0]))))
    n_y, n_z = side.shape
    z_index = np.arange(n_z)
    lower = np.where(side, z_index[None, :], n_z).min(axis=1).astype(float)
    lower[lower >= n_z] = -np.inf  # no brain in this column
    cut = np.full(n_y, -np.inf)
    cut[y_centre:] = np.maximum.accumulate(lower[y_centre:])
    margin_z = margin_mm / zooms[2]
    margin_y = margin_mm / zooms[1]
    below = z_index[None, :] < (cut[:, None] - margin_z)  # (y, z)
    removed_ras = below[None, :, :] & np.ones(vol.shape[0], dtype=bool)[:, None, None]

    pole_z = lower[y_front]
    face_region = head & (np.arange(n_y)[None, :, None] > y_front + margin_y) & (
        z_index[None, None, :] < pole_z - margin_z)
    face_ml = float(face_region.sum()) * voxel_ml
    fill = float(vol.min())
    out_ras = vol.copy()
    out_ras[removed_ras] = fill
    brain_kept = float(np.mean(out_ras[brain] == vol[brain]))
    background = _otsu(vol) if face_region.any() else fill
    face_cleared = float(np.mean(out_ras[face_region] < background)) if face_region.any() else 0.0
    removed_ml = float((removed_ras & head).sum()) * voxel_ml
    qc = (f"brain kept {brain_kept:.4f}, face region {face_ml:.1f} ml, "
          f"face cleared {face_cleared:.4f}")
    if brain_kept < min_brain_kept:
        raise DefaceError("defacing would touch the brain", where="deface",
                          expected=f"brain kept >= {min_brain_kept}", got=qc,
                          fix="check the image orientation (affine) or raise margin_mm")
    if face_ml < min_face_ml:
        raise DefaceError("no face found in front of and below the brain", where="deface",
                          expected=f"face region >= {min_face_ml} ml", got=qc,
                          fix="check that this is an uncropped head image, not already defaced, "
                              "with a correct affine (orientation)")
    if face_cleared < min_face_cleared:
        raise DefaceError("face not removed", where="deface",
                          expected=f"face cleared >= {min_face_cleared}", got=qc,
                          fix="check the image orientation (affine)")
    removed = apply_orientation(removed_ras, back).astype(bool)
    out = np.asanyarray(data).copy()
    out[removed] = arr.min()
    return DefaceResult(data=out, removed=removed, brain_kept=brain_kept, face_ml=face_ml,
                        face_cleared=face_cleared, removed_ml=removed_ml)


_deface_volume = deface  # anonymize_nifti's keyword `deface` shadows the function


# ----------------------------------------------------------------------------- files


def _split_suffix(path: Path) -> tuple[str, str]:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)], suffix
    return path.stem, path.suffix


def _is_ours(path: Path) -> bool:
    import nibabel as nib

    try:
        header: Any = nib.load(str(path)).header
        return _text(header["descrip"]) == MARKER
    except Exception:  # unreadable or not NIfTI: certainly not ours
        return False


def _write_nifti(img: Any, raw: np.ndarray, tmp: Path, gz: bool) -> None:
    """Write header + raw (unscaled, on-disk dtype) voxels exactly, no rescaling."""
    hdr = img.header
    hdr["vox_offset"] = hdr.single_vox_offset
    opener = gzip.open if gz else open
    with opener(tmp, "wb") as fh:
        hdr.write_to(fh)
        pad = int(hdr["vox_offset"]) - fh.tell()
        fh.write(b"\0" * pad)
        fh.write(np.asarray(raw, dtype=hdr.get_data_dtype()).tobytes(order="F"))


def anonymize_nifti(
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    deface: bool = False,
    sidecar: bool = True,
    margin_mm: float = 6.0,
    min_brain_kept: float = 0.99,
) -> NiftiReport:
    """De-identify a NIfTI file (and its JSON sidecar); optionally deface it.

    Writes ``out_path`` (``.nii`` or ``.nii.gz``) and, when ``IN.json`` exists next to the
    input (BIDS), ``OUT.json`` next to the output, both atomically: on any error nothing is
    written.  Voxel data are copied byte for byte unless ``deface`` is set; defaced voxels
    get the image's minimum raw value.

    Parameters
    ----------
    in_path
        Single-file NIfTI-1/2 image (``.nii`` or ``.nii.gz``).
    out_path
        Output image; an existing file is replaced only if it is an earlier output of ours.
    deface
        Remove the face with :func:`deface` (3D images only) and check the result.
    sidecar
        Also de-identify the JSON sidecar if there is one.
    margin_mm, min_brain_kept
        Passed to :func:`deface`.

    Returns
    -------
    NiftiReport

    Raises
    ------
    InputFileNotFoundError
        If ``in_path`` does not exist.
    FormatError
        If the input is not a readable single-file NIfTI image, or the sidecar is not JSON.
    ConfigError
        If ``out_path`` does not end in ``.nii``/``.nii.gz``, is the input, or exists and
        is not an earlier output of ours.
    InputError, DefaceError
        From :func:`deface` (wrong dimensions, failed quality check).

    Examples
    --------
    >>> import tempfile, pathlib, nibabel as nib, numpy as np
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> img = nib.Nifti1Image(np.arange(8, dtype=np.int16).reshape(2, 2, 2), np.eye(4))
    >>> img.header["db_name"] = b"ward 7"
    >>> nib.save(img, d / "a.nii.gz")
    >>> anonymize_nifti(d / "a.nii.gz", d / "b.nii.gz").header_fields_cleared
    ['db_name']
    >>> int(np.asarray(nib.load(d / "b.nii.gz").dataobj).sum())
    28
    """
    import nibabel as nib

    src, dst = Path(in_path), Path(out_path)
    reject_folder(src, "input image", option="IN", expected="a .nii or .nii.gz file")
    if not src.is_file():
        raise InputFileNotFoundError("input image not found", where=str(src),
                                     fix="check the path")
    stem, suffix = _split_suffix(dst)
    if suffix not in _NIFTI_SUFFIXES:
        raise ConfigError("output must be a NIfTI file", where=str(dst),
                          expected="a name ending in .nii or .nii.gz", got=f"'{suffix}'",
                          fix=f"use {stem}.nii.gz")
    if dst.exists() and dst.resolve() == src.resolve():
        raise ConfigError("output would overwrite the input", where=str(dst),
                          fix="write to another path")
    if dst.exists() and not _is_ours(dst):
        raise ConfigError("output exists and is not an earlier secured_bio output",
                          where=str(dst), fix="choose another output path "
                          "(secured-bio never overwrites unrelated files)")
    in_stem, in_suffix = _split_suffix(src)
    try:
        if in_suffix not in _NIFTI_SUFFIXES:
            raise ValueError("suffix")
        img: Any = nib.load(str(src))
        if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
            raise ValueError("class")
        proxy: Any = img.dataobj
        raw = np.asanyarray(proxy.get_unscaled())
    except Exception as e:
        raise FormatError("not a readable single-file NIfTI image", where=str(src),
                          expected="a .nii or .nii.gz NIfTI-1/2 file",
                          got=f"'{in_suffix}' ({type(e).__name__})",
                          fix="convert with dcm2niix, or nibabel for .img/.hdr pairs") from e
    clean, removed = deidentify_header(img)
    # nibabel moves a loaded file's scaling into the data proxy (header scl_* read NaN);
    # the raw voxels we copy need it back in the header.
    clean.header["scl_slope"], clean.header["scl_inter"] = proxy.slope, proxy.inter
    report = NiftiReport(in_path=str(src), out_path=str(dst), **removed)

    sidecar_in = src.with_name(in_stem + ".json")
    meta: dict[str, Any] | None = None
    if sidecar and sidecar_in.is_file():
        try:
            loaded = json.loads(sidecar_in.read_text(encoding="utf-8"))
            if not isinstance(loaded, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError) as e:
            raise FormatError("sidecar is not a JSON object", where=str(sidecar_in),
                              expected="UTF-8 JSON object (BIDS sidecar)",
                              got=type(e).__name__, fix="fix or remove the sidecar") from e
        meta, report.sidecar_keys_removed = deidentify_sidecar(loaded)
        report.sidecar_out = str(dst.with_name(stem + ".json"))

    if deface:
        result = _deface_volume(raw, img.affine, margin_mm=margin_mm,
                                min_brain_kept=min_brain_kept)
        raw = result.data
        report.defaced = True
        report.deface_qc = result.qc()

    outputs = [dst] + ([Path(report.sidecar_out)] if report.sidecar_out else [])
    with atomic_paths(*outputs) as tmps:
        _write_nifti(clean, raw, tmps[0], gz=suffix == ".nii.gz")
        if meta is not None:
            tmps[1].write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n",
                               encoding="utf-8")
    logger.info("anonymized %s: %d header field(s), %d extension(s), sidecar keys %d",
                src.name, len(report.header_fields_cleared), report.extensions_removed,
                len(report.sidecar_keys_removed))
    return report
