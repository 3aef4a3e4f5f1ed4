"""Seeded multi-site imaging cohort: 4D fMRI or functional-ultrasound series with an atlas."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from secured_bio._atomic import atomic_paths, atomic_write
from secured_bio.errors import ConfigError, did_you_mean
from secured_bio.testing._common import (
    as_dir,
    check_fraction,
    check_int,
    check_seed,
    child_rng,
    gzip_bytes,
    json_text,
    site_names,
    write_json,
)

__all__ = ["ImagingCohort", "simulate_imaging", "MODALITIES"]

logger = logging.getLogger(__name__)

FORMAT_NAME = "secured_bio.demo_imaging"
FORMAT_VERSION = 1
ROI_PAIR = (1, 2)
"""Atlas labels whose latent signals are correlated in class 1 and not in class 0."""


@dataclass(frozen=True)
class _Modality:
    tr: float  # seconds
    n_timepoints: int
    shape: tuple[int, int, int]
    zooms: tuple[float, float, float]  # mm
    suffix: str  # BIDS-like file suffix
    units: str
    description: str


# fUS: BIDS has no released specification yet; the proposed extension (BEP040) names
# power-Doppler series "pwd".  Thin-slab volumes: one 0.4 mm elevation plane of 0.1 mm pixels.
MODALITIES: dict[str, _Modality] = {
    "fmri": _Modality(2.0, 80, (16, 16, 8), (3.0, 3.0, 3.0), "bold", "a.u.",
                      "secured_bio demo resting-state BOLD fMRI"),
    "fus": _Modality(0.4, 200, (32, 1, 24), (0.1, 0.4, 0.1), "pwd", "a.u. (power Doppler)",
                     "secured_bio demo functional ultrasound power Doppler"),
}
_WHERE = "simulate_imaging"


@dataclass(frozen=True)
class ImagingCohort:
    """What :func:`simulate_imaging` wrote.

    Attributes
    ----------
    out_dir
        Output folder.
    modality
        ``'fmri'`` or ``'fus'``.
    sites
        Site names.
    atlas_path, participants_path, truth_path
        ``atlas.nii.gz``, ``participants.tsv`` and ``truth.json``.
    participant_ids
        ``sub-site1x001``, ... in site order.
    series_paths
        One 4D NIfTI per participant, same order (each with a ``.json`` sidecar).
    labels
        Class of each participant (0 = low grade, 1 = high grade), same order.
    shape, n_timepoints, tr, zooms
        Volume shape, number of volumes, repetition time (s) and voxel size (mm).
    n_rois
        Number of atlas labels (1..n_rois).
    roi_pair
        The two labels whose latent signals correlate at ``connectivity`` in class 1 only.
    connectivity
        Planted latent correlation of ``roi_pair`` in class 1 (0 in class 0).
    seed
        The seed used.
    """

    out_dir: Path
    modality: str
    sites: tuple[str, ...]
    atlas_path: Path
    participants_path: Path
    truth_path: Path
    participant_ids: tuple[str, ...]
    series_paths: tuple[Path, ...]
    labels: tuple[int, ...]
    shape: tuple[int, int, int]
    n_timepoints: int
    tr: float
    zooms: tuple[float, float, float]
    n_rois: int
    roi_pair: tuple[int, int]
    connectivity: float
    seed: int


def simulate_imaging(
    out_dir: str | os.PathLike[str],
    *,
    n_sites: int = 3,
    subjects_per_site: int = 40,
    modality: str = "fmri",
    shape: tuple[int, int, int] | None = None,
    n_timepoints: int | None = None,
    n_rois: int = 8,
    connectivity: float = 0.7,
    seed: int = 0,
) -> ImagingCohort:
    """Simulate a multi-site functional imaging cohort with a planted connectivity difference.

    Each atlas region (ROI) carries a latent slow time series (Gaussian-smoothed white noise,
    ~4 s kernel); every voxel of the ROI is ``baseline x (1 + a x weight x signal)`` plus
    voxel noise and a slow per-voxel drift.  Participants fall in two classes, balanced per
    site (``label`` 0 = low-grade, 1 = high-grade tumour): in class 1 the latent signals of
    ROIs 1 and 2 correlate at ``connectivity``; in class 0 they are independent.  All other
    ROIs are independent in both classes.

    - ``fmri``: TR 2.0 s, 80 volumes, 3 mm voxels, BOLD-like values around 1000 (2 % signal).
    - ``fus``: TR 0.4 s, 200 frames, thin slab of 0.1 mm pixels (0.4 mm elevation),
      positive power-Doppler-like values (multiplicative signal), default shape (32, 1, 24).

    Files written in ``out_dir`` (``truth.json`` last):

    - ``atlas.nii.gz``: 3D int16 labels, 0 = background, 1..n_rois = compact parcels (Voronoi
      cells of an ellipsoidal brain mask), on the grid and affine of the series.
    - ``site{i}/sub-site{i}x{nnn}/func/sub-site{i}x{nnn}_task-rest_bold.nii.gz`` (fMRI) or
      ``..._task-rest_pwd.nii.gz`` (fUS): 4D float32, ``pixdim[4]`` = TR, units mm and s,
      qform/sform aligned; a ``.json`` sidecar holds ``RepetitionTime`` and units.
    - ``participants.tsv``: ``participant_id``, ``site``, ``label``, ``sex``, ``age``.
    - ``truth.json``: format name/version, parameters, ROI pair, realised latent correlations.

    Parameters
    ----------
    out_dir
        Output folder.
    n_sites
        Number of sites (>= 1).
    subjects_per_site
        Participants per site (>= 2, so each site has both classes).
    modality
        ``'fmri'`` or ``'fus'``.
    shape
        Volume shape; defaults to (16, 16, 8) for fMRI and (32, 1, 24) for fUS.
    n_timepoints
        Number of volumes; defaults to 80 (fMRI) or 200 (fUS).  At least 10.
    n_rois
        Number of atlas regions (>= 2); the brain mask needs at least 4 voxels per region.
    connectivity
        Latent correlation of ROIs 1 and 2 in class 1, in [0, 0.99].
    seed
        Seed (>= 0); the same seed gives byte-identical files.

    Returns
    -------
    ImagingCohort
        Paths, labels, acquisition parameters and the planted signal.

    Raises
    ------
    ConfigError
        If the modality is unknown or a parameter is out of range.

    Examples
    --------
    >>> import tempfile
    >>> c = simulate_imaging(tempfile.mkdtemp(), n_sites=1, subjects_per_site=2,
    ...                      n_timepoints=20, seed=1)
    >>> c.participant_ids, c.labels, c.tr
    (('sub-site1x001', 'sub-site1x002'), (0, 1), 2.0)
    """
    import nibabel as nib

    if modality not in MODALITIES:
        hint = did_you_mean(str(modality), MODALITIES)
        raise ConfigError(
            "unknown imaging modality",
            where=f"{_WHERE}(modality=...)",
            expected=" or ".join(repr(m) for m in MODALITIES),
            got=repr(modality) if isinstance(modality, str) else type(modality).__name__,
            fix=hint or "choose one of the listed modalities",
        )
    mod = MODALITIES[modality]
    n_sites = check_int("n_sites", n_sites, minimum=1, where=_WHERE)
    subjects_per_site = check_int("subjects_per_site", subjects_per_site, minimum=2, where=_WHERE)
    n_rois = check_int("n_rois", n_rois, minimum=2, where=_WHERE)
    n_timepoints = check_int(
        "n_timepoints", mod.n_timepoints if n_timepoints is None else n_timepoints,
        minimum=10, where=_WHERE,
    )
    shape = _check_shape(mod.shape if shape is None else shape)
    connectivity = check_fraction("connectivity", connectivity, where=_WHERE, high=0.99)
    seed = check_seed(seed, where=_WHERE)

    mask = _ellipsoid_mask(shape)
    if mask.sum() < 4 * n_rois:
        raise ConfigError(
            "volume too small for the number of regions",
            where=_WHERE,
            expected=f"at least {4 * n_rois} brain voxels (4 per region)",
            got=f"{int(mask.sum())} brain voxels for shape {shape}",
            fix="use a larger shape or fewer n_rois",
        )
    out = as_dir(out_dir, where=_WHERE)
    sites = site_names(n_sites)
    affine = _affine(shape, mod.zooms)
    atlas = _atlas(mask, n_rois, child_rng(seed, 10))

    atlas_img = nib.Nifti1Image(atlas.astype(np.int16), affine)
    _set_header(atlas_img, mod.zooms, None, "secured_bio demo atlas (labels)")
    atlas_path = out / "atlas.nii.gz"
    with atomic_write(atlas_path, "wb") as fh:
        fh.write(gzip_bytes(atlas_img.to_bytes()))

    width = max(3, len(str(subjects_per_site)))
    ids: list[str] = []
    labels: list[int] = []
    sexes: list[str] = []
    ages: list[int] = []
    paths: list[Path] = []
    latent_corr: dict[str, float] = {}
    for i, site in enumerate(sites):
        rng_site = child_rng(seed, 11, i)
        site_labels = rng_site.permutation(np.arange(subjects_per_site) % 2)
        for j in range(subjects_per_site):
            pid = f"sub-{site}x{j + 1:0{width}d}"
            label = int(site_labels[j])
            rng = child_rng(seed, 20, i, j)
            sexes.append(str(rng.choice(["F", "M"])))
            ages.append(int(np.clip(rng.normal(55, 14), 18, 90)))
            data, corr = _series(mod, modality, atlas, mask, n_rois, n_timepoints,
                                 connectivity if label == 1 else 0.0, rng)
            img = nib.Nifti1Image(data, affine)
            _set_header(img, mod.zooms, mod.tr, f"{mod.description} ({mod.units})")
            stem = f"{pid}_task-rest_{mod.suffix}"
            path = out / site / pid / "func" / f"{stem}.nii.gz"
            sidecar = {
                "RepetitionTime": mod.tr,
                "TaskName": "rest",
                "Units": mod.units,
                "Modality": modality,
                "secured_bio_format": FORMAT_NAME,
                "secured_bio_format_version": FORMAT_VERSION,
            }
            with atomic_paths(path, path.parent / f"{stem}.json") as (tmp_nii, tmp_json):
                tmp_nii.write_bytes(gzip_bytes(img.to_bytes()))
                tmp_json.write_text(json_text(sidecar), encoding="utf-8")
            ids.append(pid)
            labels.append(label)
            paths.append(path)
            latent_corr[pid] = round(corr, 6)
        logger.info("wrote %d %s series for %s", subjects_per_site, modality, site)

    participants_path = out / "participants.tsv"
    with atomic_write(participants_path) as fh:
        fh.write("participant_id\tsite\tlabel\tsex\tage\n")
        for k, pid in enumerate(ids):
            fh.write(f"{pid}\t{sites[k // subjects_per_site]}\t{labels[k]}\t{sexes[k]}\t"
                     f"{ages[k]}\n")

    truth_path = out / "truth.json"
    write_json(truth_path, {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "generator": "secured_bio.testing.simulate_imaging",
        "seed": seed,
        "parameters": {
            "n_sites": n_sites,
            "subjects_per_site": subjects_per_site,
            "modality": modality,
            "shape": list(shape),
            "n_timepoints": n_timepoints,
            "n_rois": n_rois,
            "connectivity": connectivity,
        },
        "acquisition": {"repetition_time_s": mod.tr, "voxel_size_mm": list(mod.zooms),
                        "units": mod.units, "file_suffix": mod.suffix},
        "labels": {"0": "low-grade", "1": "high-grade"},
        "roi_pair": list(ROI_PAIR),
        "planted_connectivity": {"0": 0.0, "1": connectivity},
        "latent_correlation": latent_corr,
        "files": {"atlas": atlas_path.name, "participants": participants_path.name,
                  "series": [str(p.relative_to(out)) for p in paths]},
    })
    return ImagingCohort(
        out_dir=out,
        modality=modality,
        sites=sites,
        atlas_path=atlas_path,
        participants_path=participants_path,
        truth_path=truth_path,
        participant_ids=tuple(ids),
        series_paths=tuple(paths),
        labels=tuple(labels),
        shape=shape,
        n_timepoints=n_timepoints,
        tr=mod.tr,
        zooms=mod.zooms,
        n_rois=n_rois,
        roi_pair=ROI_PAIR,
        connectivity=connectivity,
        seed=seed,
    )


def _check_shape(shape: object) -> tuple[int, int, int]:
    ok = (
        isinstance(shape, tuple | list)
        and len(shape) == 3
        and all(isinstance(s, int | np.integer) and not isinstance(s, bool) and s >= 1
                for s in shape)
    )
    if not ok:
        length = len(shape) if isinstance(shape, tuple | list) else "?"
        raise ConfigError(
            "shape must be three positive integers",
            where=f"{_WHERE}(shape=...)",
            expected="(nx, ny, nz), e.g. (16, 16, 8) or (32, 1, 24)",
            got=f"{type(shape).__name__} of length {length}",
        )
    nx, ny, nz = (int(s) for s in shape)  # type: ignore[attr-defined]
    return nx, ny, nz


def _ellipsoid_mask(shape: tuple[int, int, int]) -> np.ndarray:
    """Brain-ish mask: the ellipsoid inscribed in 90 % of the grid (thin axes kept whole)."""
    grids = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    r2 = np.zeros(shape)
    for g, n in zip(grids, shape, strict=True):
        if n > 2:
            r2 += ((g - (n - 1) / 2) / (0.45 * n)) ** 2
    return r2 <= 1.0


def _affine(shape: tuple[int, int, int], zooms: tuple[float, float, float]) -> np.ndarray:
    """RAS+ affine with the given voxel size, centred on the middle of the grid."""
    aff = np.diag([*zooms, 1.0])
    aff[:3, 3] = [-(n - 1) / 2 * z for n, z in zip(shape, zooms, strict=True)]
    return aff


def _atlas(mask: np.ndarray, n_rois: int, rng: np.random.Generator) -> np.ndarray:
    """Parcellate the mask into compact regions: Voronoi cells of farthest-point seeds."""
    coords = np.argwhere(mask).astype(float)
    first = int(rng.integers(coords.shape[0]))
    seeds = [first]
    dist = np.linalg.norm(coords - coords[first], axis=1)
    for _ in range(n_rois - 1):
        nxt = int(np.argmax(dist))
        seeds.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(coords - coords[nxt], axis=1))
    # Order regions along the first axis so label numbers are spatially meaningful.
    seed_xyz = coords[seeds]
    seed_xyz = seed_xyz[np.lexsort(seed_xyz.T[::-1])]
    d2 = ((coords[:, None, :] - seed_xyz[None, :, :]) ** 2).sum(axis=2)
    atlas = np.zeros(mask.shape, dtype=np.int16)
    atlas[mask] = np.argmin(d2, axis=1) + 1
    return atlas


def _smooth_noise(n: int, k: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``k`` standardized slow signals of length ``n`` (white noise, Gaussian-smoothed)."""
    from scipy.ndimage import gaussian_filter1d

    x = gaussian_filter1d(rng.standard_normal((n, k)), sigma=sigma, axis=0, mode="reflect")
    x -= x.mean(axis=0)
    x /= x.std(axis=0)
    return x


def _series(
    mod: _Modality,
    modality: str,
    atlas: np.ndarray,
    mask: np.ndarray,
    n_rois: int,
    n_t: int,
    rho: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, float]:
    """One participant's 4D series and the realised latent correlation of ROI_PAIR."""
    sigma = 4.0 / mod.tr  # ~4 s smoothing: haemodynamic-like slow fluctuations
    latent = _smooth_noise(n_t, n_rois, sigma, rng)
    a, b = ROI_PAIR[0] - 1, ROI_PAIR[1] - 1
    latent[:, b] = rho * latent[:, a] + math.sqrt(1 - rho**2) * latent[:, b]
    corr = float(np.corrcoef(latent[:, a], latent[:, b])[0, 1])

    nvox = int(mask.sum())
    roi_of_vox = atlas[mask].astype(int) - 1
    weight = rng.uniform(0.7, 1.3, nvox)
    t_lin = np.linspace(-1.0, 1.0, n_t)
    drift = rng.normal(0.0, 1.0, nvox)[None, :] * t_lin[:, None]
    noise = rng.standard_normal((n_t, nvox))
    signal = latent[:, roi_of_vox] * weight[None, :]
    data = np.empty((n_t, *mask.shape), dtype=np.float32)
    if modality == "fmri":
        baseline = rng.normal(1000.0, 50.0, nvox)
        # 2 % BOLD fluctuation, 1 % thermal noise, up to ~1 % linear drift over the run.
        brain = baseline * (1 + 0.02 * signal + 0.01 * noise + 0.01 * drift)
        background = np.abs(rng.normal(0.0, 20.0, (n_t, int((~mask).sum()))))
    else:
        baseline = rng.lognormal(math.log(1e4), 0.5, nvox)
        # Power Doppler scales with blood volume: multiplicative, always positive.
        brain = baseline * np.exp(0.15 * signal + 0.05 * noise + 0.02 * drift)
        background = rng.lognormal(math.log(300.0), 0.3, (n_t, int((~mask).sum())))
    data[:, mask] = brain
    data[:, ~mask] = background
    return np.ascontiguousarray(np.moveaxis(data, 0, -1)), corr


def _set_header(img, zooms: tuple[float, float, float], tr: float | None, descrip: str) -> None:
    hdr = img.header
    hdr.set_xyzt_units("mm", "sec")
    hdr.set_zooms((*zooms, tr) if tr is not None else zooms)
    hdr["descrip"] = descrip[:79].encode()
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
