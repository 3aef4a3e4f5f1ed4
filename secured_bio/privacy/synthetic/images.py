"""Synthetic 2D images from a small MONAI diffusion model, with fidelity and diversity metrics.

A denoising diffusion probabilistic model (DDPM; Ho et al. 2020, arXiv:2006.11239) learns to
predict the Gaussian noise added to an image at a random step of a fixed noising schedule.
Images are then generated from pure noise with the faster deterministic DDIM sampler (Song et al.
2021, arXiv:2010.02502). The network is MONAI's ``DiffusionModelUNet`` (the MONAI Generative
Models design, Pinaya et al. 2023, arXiv:2307.15208), optionally class-conditional through a
learned class embedding added to the timestep embedding (``num_class_embeds``).

Data model
----------
``images``
    float32 array ``(n, height, width)``, values in [0, 1] (each slice min-max scaled by
    :func:`load_image_slices`); the network sees them scaled to [-1, 1].
``labels``
    integer array ``(n,)``: the class of each image (e.g. 0 = low grade, 1 = high grade).

The CPU default is tiny (16 x 16 slices, channels (16, 32), one residual block per level, no
attention): one epoch over the 360 slices of the demo cohort takes seconds on two cores. Larger
images or models want a GPU (``device="cuda"``).

Metrics (:func:`image_mmd`, :func:`ssim_diversity`):

- **MMD**: the unbiased squared maximum mean discrepancy (Gretton et al. 2012, JMLR 13:723)
  with a Gaussian kernel whose bandwidth is the median pairwise distance of the pooled features.
  Features come from a *randomly initialised, fixed-seed* small CNN (no download, no pretrained
  weights) or from raw pixels. The numbers are comparable across runs of this toolkit, not with
  published FID values on Inception features.
- **Diversity**: mean SSIM (Wang et al. 2004) over pairs of generated images; lower is more
  diverse. MS-SSIM (Wang et al. 2003) needs images larger than 160 pixels a side for its five
  scales and an 11-pixel window, so smaller images get single-scale SSIM with a 7-pixel window;
  the result says which was used.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from secured_bio._inputs import read_table, reject_folder
from secured_bio.errors import (
    ConfigError,
    FormatError,
    InputError,
    InputFileNotFoundError,
    SchemaError,
)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "DiffusionModel",
    "ImageSet",
    "load_image_slices",
    "train_diffusion",
    "sample",
    "save_diffusion",
    "load_diffusion",
    "image_features",
    "image_mmd",
    "ssim_diversity",
    "nearest_distance",
    "resolve_device",
    "synthesize_images",
    "REPORT_FORMAT",
    "REPORT_VERSION",
]

logger = logging.getLogger(__name__)

#: Format name and version written into every saved model.
FORMAT_NAME = "secured_bio.diffusion_model"
FORMAT_VERSION = 1

_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_IGNORED_SUFFIXES = (".tsv", ".json", ".md", ".txt")
# MS-SSIM with its 5 standard weights halves the image 4 times; MONAI requires
# size // 16 > win_size - 1 (win_size 11), i.e. a side of at least 161 pixels.
_MS_SSIM_MIN_SIDE = 161


@dataclass(frozen=True)
class ImageSet:
    """2D training slices and where they came from.

    Attributes
    ----------
    images
        float32 ``(n, size, size)`` in [0, 1].
    labels
        int64 ``(n,)`` class of each slice, or None when no labels were found.
    subjects
        Number of subjects (volumes) read.
    slices_per_subject
        Axial slices taken from each volume.
    source_shape
        Shape of the first volume read (3D, after a temporal mean for 4D series).
    pixdim
        Voxel size (mm) of the output slices: in-plane size rescaled to ``size``, and the
        slice thickness.
    layout
        ``'cohort'`` (``<site>/sub-*/func/*.nii.gz`` 4D series) or ``'folder'`` (3D images).
    """

    images: np.ndarray
    labels: np.ndarray | None
    subjects: int
    slices_per_subject: int
    source_shape: tuple[int, ...]
    pixdim: tuple[float, float, float]
    layout: str


@dataclass
class DiffusionModel:
    """A trained diffusion network with its configuration and training history.

    Attributes
    ----------
    network
        The ``monai.networks.nets.DiffusionModelUNet`` (on ``device``).
    config
        Plain, JSON-serialisable settings: ``image_size``, ``channels``, ``attention_levels``,
        ``num_res_blocks``, ``norm_num_groups``, ``num_train_timesteps``, ``classes`` (label
        values, or None when unconditional), ``seed``.
    history
        ``loss`` (mean training loss per epoch) and ``seconds`` (wall time per epoch).
    device
        The torch device the network is on.
    """

    network: Any
    config: dict[str, Any]
    history: dict[str, list[float]] = field(default_factory=dict)
    device: str = "cpu"

    @property
    def conditional(self) -> bool:
        """True when the model was trained with class labels."""
        return self.config.get("classes") is not None

    @property
    def image_size(self) -> int:
        """Side of the square images the model generates."""
        return int(self.config["image_size"])


# --------------------------------------------------------------------------------------------
# Input


def resolve_device(device: str) -> str:
    """Turn ``'auto'``, ``'cpu'`` or ``'cuda'`` into a torch device name.

    Raises
    ------
    ConfigError
        If the device is unknown, or ``'cuda'`` is requested and no GPU is available.

    Examples
    --------
    >>> resolve_device("cpu")
    'cpu'
    """
    import torch

    choices = ("auto", "cpu", "cuda")
    if device not in choices:
        raise ConfigError("unknown device", where="device", expected=" | ".join(choices),
                          got=repr(device), fix="use cpu, cuda or auto")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "a CUDA GPU was requested but none is available", where="device",
            expected="torch.cuda.is_available() to be True",
            got=f"no usable GPU (torch {torch.__version__}"
            f"{', a CPU-only build' if torch.version.cuda is None else ''})",
            fix="use --device cpu (or auto), or install a CUDA build of torch on a GPU machine",
        )
    return device


def _is_nifti(path: Path) -> bool:
    return path.name.endswith(_NIFTI_SUFFIXES)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _read_labels(path: Path) -> dict[str, int]:
    import pandas as pd

    reject_folder(path, "labels table", option="--labels")
    if not path.is_file():
        raise InputFileNotFoundError("labels table not found", where=str(path),
                                     expected="a TSV with participant_id and label columns",
                                     fix="check the labels path")
    table = read_table(path, "labels table", option="--labels", sep="\t",
                       dtype={"participant_id": str})
    missing = [c for c in ("participant_id", "label") if c not in table.columns]
    if missing:
        raise SchemaError("labels table lacks columns", where=str(path),
                          expected="participant_id and label columns",
                          got="missing " + ", ".join(missing), fix="add the columns")
    labels = pd.to_numeric(table["label"], errors="coerce")
    if labels.isna().any() or not np.all(np.equal(np.mod(labels, 1), 0)):
        raise SchemaError("labels are not all integers", where=f"{path}: label",
                          expected="integer class labels (e.g. 0/1), none missing",
                          got=f"{int((labels.isna() | (np.mod(labels, 1) != 0)).sum())} "
                          "non-integer or missing values", fix="recode the labels as integers")
    return dict(zip(table["participant_id"], labels.astype(int), strict=True))


def _volume(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    from secured_bio.specs import _load_nifti

    img = _load_nifti(path, "image")
    ndim = len(img.shape)
    if ndim not in (3, 4):
        raise SchemaError("image is neither 3D nor 4D", where=str(path),
                          expected="a 3D volume (or a 4D series, averaged over time)",
                          got=f"{ndim}D, shape {tuple(img.shape)}",
                          fix="give one 3D NIfTI volume per subject")
    try:
        data = np.asarray(img.dataobj, dtype=np.float64)
    except (OSError, EOFError, ValueError) as e:
        raise FormatError("image data could not be read", where=str(path),
                          got=type(e).__name__, fix="the file may be truncated: re-export it"
                          ) from e
    n_bad = int(np.count_nonzero(~np.isfinite(data)))
    if n_bad:
        raise SchemaError("image has non-finite voxels", where=str(path),
                          expected="finite values", got=f"{n_bad} NaN/inf voxels",
                          fix="replace them (e.g. with 0) before training")
    if ndim == 4:
        data = data.mean(axis=3)
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    return data, (zooms[0], zooms[1], zooms[2])


def _slices(volume: np.ndarray, k: int, size: int) -> np.ndarray:
    """Take the ``k`` central axial slices, resize to ``size`` and min-max scale to [0, 1]."""
    import torch
    import torch.nn.functional as F

    depth = volume.shape[2]
    start = max(0, (depth - k) // 2)
    stack = np.moveaxis(volume[:, :, start:start + k], 2, 0).astype(np.float32)
    if stack.shape[1:] != (size, size):
        t = torch.from_numpy(np.ascontiguousarray(stack))[:, None]
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=True)
        stack = t[:, 0].numpy()
    lo = stack.min(axis=(1, 2), keepdims=True)
    span = stack.max(axis=(1, 2), keepdims=True) - lo
    # A constant slice carries no structure: map it to 0 instead of dividing by zero.
    out = np.where(span > 0, (stack - lo) / np.where(span > 0, span, 1.0), 0.0)
    return out.astype(np.float32)


def load_image_slices(
    in_dir: str | os.PathLike[str],
    *,
    labels: str | os.PathLike[str] | None = None,
    size: int = 16,
    slices: int = 3,
) -> ImageSet:
    """Read 2D training slices from an imaging cohort or a folder of 3D NIfTI images.

    Two layouts are accepted:

    - a cohort as written by :func:`secured_bio.testing.simulate_imaging`
      (``<site>/sub-*/func/*.nii.gz`` 4D series, ``participants.tsv`` with ``label``): each
      series is averaged over time;
    - a folder of 3D (or 4D) NIfTI images, one per subject, with an optional labels TSV
      (``participant_id`` = file name without ``.nii.gz``, or its ``sub-*`` part, and ``label``).

    From each volume the ``slices`` central axial slices (last axis) are taken, resized to
    ``size x size`` (bilinear, anti-aliased) and min-max scaled to [0, 1] one by one.

    Parameters
    ----------
    in_dir
        Cohort or image folder.
    labels
        Labels TSV (default: ``participants.tsv`` in ``in_dir`` when present).
    size
        Side of the square output slices (>= 4).
    slices
        Central slices per volume (>= 1).

    Returns
    -------
    ImageSet
        Slices, labels (None when there is no labels table) and provenance.

    Raises
    ------
    InputFileNotFoundError
        If ``in_dir`` or ``labels`` does not exist, or the folder holds no file at all.
    FormatError
        If the folder holds non-NIfTI files and no images, or an image is not readable NIfTI.
    SchemaError
        If an image is not 3D/4D, is thinner than ``slices``, has non-finite voxels, or the
        labels table lacks columns, has non-integer labels or misses a subject.
    ConfigError
        If ``size`` or ``slices`` is out of range.

    Examples
    --------
    >>> import tempfile
    >>> from secured_bio.testing import simulate_imaging
    >>> c = simulate_imaging(tempfile.mkdtemp(), n_sites=1, subjects_per_site=2,
    ...                      n_timepoints=10, n_rois=2, shape=(8, 8, 4))
    >>> s = load_image_slices(c.out_dir, size=8, slices=2)
    >>> s.images.shape, s.labels.tolist(), s.layout
    ((4, 8, 8), [0, 0, 1, 1], 'cohort')
    """
    if size < 4:
        raise ConfigError("image size too small", where="size", expected=">= 4",
                          got=str(size), fix="use --size 16 or more")
    if slices < 1:
        raise ConfigError("slices per volume must be positive", where="slices",
                          expected=">= 1", got=str(slices), fix="use --slices 1 or more")
    root = Path(in_dir)
    if not root.is_dir():
        raise InputFileNotFoundError(
            "image folder not found", where=str(root),
            expected="a cohort folder (<site>/sub-*/func/) or a folder of NIfTI images",
            fix="check --in" + (" (it is a file)" if root.exists() else ""))
    cohort = sorted(p for p in root.glob("*/sub-*/func/*") if p.is_file() and _is_nifti(p))
    label_path = Path(labels) if labels is not None else root / "participants.tsv"
    table = _read_labels(label_path) if labels is not None or label_path.is_file() else None
    items: list[tuple[str, Path]]
    if cohort:
        layout = "cohort"
        items = [(p.relative_to(root).parts[1], p) for p in cohort]
        if len({pid for pid, _ in items}) != len(items):
            raise SchemaError("participants with more than one series", where=str(root),
                              expected="one series per participant",
                              got=f"{len(items)} series for {len({i for i, _ in items})} "
                              "participants", fix="keep one run per participant in func/")
    else:
        layout = "folder"
        files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
        nifti = [p for p in files if _is_nifti(p)]
        other = [p for p in files if not _is_nifti(p) and not p.name.endswith(_IGNORED_SUFFIXES)]
        if not files:
            raise InputFileNotFoundError(
                "image folder is empty", where=str(root),
                expected="NIfTI images (.nii/.nii.gz), one per subject, or a cohort layout",
                fix="point --in at the folder that holds the images")
        if other or not nifti:
            kinds = sorted({p.suffix or "(no suffix)" for p in other}) or ["only tables"]
            raise FormatError(
                "folder holds files that are not NIfTI images", where=str(root),
                expected=".nii or .nii.gz images (tables .tsv/.json are ignored)",
                got=f"{len(other)} other file(s) ({', '.join(kinds)}), {len(nifti)} NIfTI",
                fix="convert the images to NIfTI (e.g. dcm2niix) or move the other files out")
        items = [(_stem(p), p) for p in nifti]

    images, label_list = [], []
    source_shape: tuple[int, ...] = ()
    pixdim = (1.0, 1.0, 1.0)
    n_missing = 0
    for i, (pid, path) in enumerate(items):
        volume, zooms = _volume(path)
        if volume.shape[2] < slices:
            raise SchemaError("volume has fewer slices than requested", where=str(path),
                              expected=f">= {slices} slices on the last axis",
                              got=f"shape {volume.shape}", fix="lower --slices")
        if i == 0:
            source_shape = tuple(int(s) for s in volume.shape)
            pixdim = (zooms[0] * volume.shape[0] / size, zooms[1] * volume.shape[1] / size,
                      zooms[2])
        images.append(_slices(volume, slices, size))
        if table is not None:
            key = pid if pid in table else pid.split("_")[0]
            if key not in table:
                n_missing += 1
                continue
            label_list.extend([table[key]] * slices)
    if n_missing:
        raise SchemaError("subjects without a label", where=str(label_path),
                          expected="one row per image (participant_id = file name or its sub-*)",
                          got=f"{n_missing} of {len(items)} subjects missing",
                          fix="add the missing rows, or leave out --labels")
    logger.info("read %d slices of %d x %d from %d subjects (%s layout)",
                len(items) * slices, size, size, len(items), layout)
    return ImageSet(
        images=np.concatenate(images, axis=0),
        labels=np.asarray(label_list, dtype=np.int64) if table is not None else None,
        subjects=len(items), slices_per_subject=slices, source_shape=source_shape,
        pixdim=pixdim, layout=layout,
    )


def _check_images(images: np.ndarray, where: str) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] != arr.shape[2]:
        raise InputError("images have the wrong shape", where=where,
                         expected="a non-empty (n, size, size) array", got=f"shape {arr.shape}",
                         fix="pass square 2D slices (see load_image_slices)")
    if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.isfinite(arr)):
        raise InputError("images must be finite floats", where=where,
                         expected="float values in [0, 1]", got=f"dtype {arr.dtype}",
                         fix="scale the images to [0, 1] (see load_image_slices)")
    return arr.astype(np.float32, copy=False)


def _check_labels(labels: Sequence[int] | np.ndarray, n: int, where: str) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer):
        raise InputError("labels do not match the images", where=where,
                         expected=f"{n} integer labels", got=f"shape {arr.shape}, {arr.dtype}",
                         fix="give one integer label per image")
    return arr.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Model


def _network(config: dict[str, Any]) -> Any:
    from monai.networks.nets import DiffusionModelUNet

    classes = config.get("classes")
    return DiffusionModelUNet(
        spatial_dims=2, in_channels=1, out_channels=1,
        num_res_blocks=config["num_res_blocks"], channels=tuple(config["channels"]),
        attention_levels=tuple(config["attention_levels"]),
        norm_num_groups=config["norm_num_groups"],
        num_head_channels=config["num_head_channels"],
        num_class_embeds=len(classes) if classes is not None else None,
    )


def _scheduler(kind: str, config: dict[str, Any]) -> Any:
    from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

    # Linear beta schedule 1e-4 .. 0.02 over 1000 steps: the DDPM paper's.
    cls = DDPMScheduler if kind == "ddpm" else DDIMScheduler
    return cls(num_train_timesteps=config["num_train_timesteps"], schedule="linear_beta",
               beta_start=1e-4, beta_end=0.02)


def train_diffusion(
    images: np.ndarray,
    *,
    labels: Sequence[int] | np.ndarray | None = None,
    epochs: int = 20,
    batch_size: int = 32,
    device: str = "cpu",
    seed: int = 0,
    channels: Sequence[int] = (16, 32),
    attention_levels: Sequence[bool] | None = None,
    num_res_blocks: int = 1,
    learning_rate: float = 1e-3,
    num_train_timesteps: int = 1000,
    progress: bool = False,
) -> DiffusionModel:
    """Train a 2D DDPM (MONAI ``DiffusionModelUNet``) on square images.

    Each step draws a random timestep per image, adds the scheduler's Gaussian noise and
    regresses the noise with mean squared error (Ho et al. 2020). With ``labels`` the network
    is class-conditional (one learned embedding per distinct label value).

    Parameters
    ----------
    images
        float ``(n, size, size)`` in [0, 1]; ``size`` must be divisible by
        ``2 ** (len(channels) - 1)``.
    labels
        Integer class per image, for a class-conditional model.
    epochs
        Passes over the images (>= 1).
    batch_size
        Images per step (>= 1).
    device
        ``'cpu'``, ``'cuda'`` or ``'auto'``.
    seed
        Seed of initialisation, batching, timesteps and noise; the same seed on the same
        device gives the same model.
    channels
        Output channels of each U-Net level (each a multiple of 8).
    attention_levels
        Self-attention per level (default: none; attention is slow on CPU).
    num_res_blocks
        Residual blocks per level.
    learning_rate
        Adam learning rate.
    num_train_timesteps
        Steps of the noising schedule.
    progress
        Show a progress bar over epochs.

    Returns
    -------
    DiffusionModel
        The trained network, its configuration and per-epoch loss and wall time.

    Raises
    ------
    InputError
        If ``images`` or ``labels`` have the wrong shape or type.
    ConfigError
        If an option is out of range, the size does not fit the U-Net, or the device is
        unavailable.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> m = train_diffusion(rng.random((8, 8, 8), dtype=np.float32), epochs=1, batch_size=8,
    ...                     channels=(8,))
    >>> m.image_size, len(m.history["loss"])
    (8, 1)
    """
    import torch
    import torch.nn.functional as F

    from secured_bio._progress import track

    arr = _check_images(images, "train_diffusion(images)")
    n, size = arr.shape[0], arr.shape[1]
    for name, value in (("epochs", epochs), ("batch_size", batch_size),
                        ("num_res_blocks", num_res_blocks),
                        ("num_train_timesteps", num_train_timesteps)):
        if int(value) < 1:
            raise ConfigError(f"{name} must be positive", where=name, expected=">= 1",
                              got=str(value), fix=f"use a {name} of 1 or more")
    if not learning_rate > 0:
        raise ConfigError("learning rate must be positive", where="learning_rate",
                          expected="> 0", got=str(learning_rate), fix="use e.g. 1e-3")
    chans = [int(c) for c in channels]
    if not chans or any(c < 8 or c % 8 for c in chans):
        raise ConfigError("channels must be multiples of 8", where="channels",
                          expected="e.g. (16, 32)", got=str(tuple(chans)),
                          fix="use multiples of 8 (one group norm of 8 groups per level)")
    factor = 2 ** (len(chans) - 1)
    if size % factor:
        raise ConfigError("image size does not fit the U-Net", where="images",
                          expected=f"a side divisible by {factor} ({len(chans)} levels)",
                          got=f"{size} x {size}", fix="resize the images or use fewer levels")
    attn = [False] * len(chans) if attention_levels is None else [bool(a) for a in
                                                                  attention_levels]
    if len(attn) != len(chans):
        raise ConfigError("one attention flag per level is needed", where="attention_levels",
                          expected=f"{len(chans)} flags", got=f"{len(attn)}",
                          fix="match the length of channels")
    lab = None
    classes: list[int] | None = None
    if labels is not None:
        lab = _check_labels(labels, n, "train_diffusion(labels)")
        classes = sorted(int(v) for v in np.unique(lab))
    dev = resolve_device(device)
    config: dict[str, Any] = {
        "image_size": int(size), "channels": chans, "attention_levels": attn,
        "num_res_blocks": int(num_res_blocks), "norm_num_groups": 8,
        "num_head_channels": 8, "num_train_timesteps": int(num_train_timesteps),
        "classes": classes, "seed": int(seed), "learning_rate": float(learning_rate),
        "batch_size": int(batch_size),
    }
    gen = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        network = _network(config)
    network.to(dev)
    scheduler = _scheduler("ddpm", config)
    optimiser = torch.optim.Adam(network.parameters(), lr=learning_rate)
    x_all = torch.from_numpy(arr * 2.0 - 1.0)[:, None]
    class_index = None
    if lab is not None and classes is not None:
        class_index = torch.as_tensor(np.searchsorted(classes, lab))
    history: dict[str, list[float]] = {"loss": [], "seconds": []}
    network.train()
    epoch_iter = (track(range(int(epochs)), "training diffusion model", total=int(epochs))
                  if progress else range(int(epochs)))
    for epoch in epoch_iter:
        start = time.perf_counter()
        order = torch.randperm(n, generator=gen)
        total, count = 0.0, 0
        for b in range(0, n, int(batch_size)):
            idx = order[b:b + int(batch_size)]
            x = x_all[idx]
            noise = torch.randn(x.shape, generator=gen)
            t = torch.randint(0, int(num_train_timesteps), (len(idx),), generator=gen)
            x, noise, t = x.to(dev), noise.to(dev), t.to(dev)
            noisy = scheduler.add_noise(original_samples=x, noise=noise, timesteps=t)
            cls = class_index[idx].to(dev) if class_index is not None else None
            loss = F.mse_loss(network(noisy, t, class_labels=cls).float(), noise.float())
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        history["loss"].append(total / count)
        history["seconds"].append(time.perf_counter() - start)
        logger.info("epoch %d/%d: loss %.4f (%.2f s)", epoch + 1, epochs, total / count,
                    history["seconds"][-1])
    network.eval()
    return DiffusionModel(network=network, config=config, history=history, device=dev)


def sample(
    model: DiffusionModel,
    n: int,
    *,
    labels: Sequence[int] | np.ndarray | None = None,
    timesteps: int = 50,
    seed: int = 0,
    batch_size: int = 64,
) -> np.ndarray:
    """Generate images with the deterministic DDIM sampler (eta = 0).

    Parameters
    ----------
    model
        A trained :class:`DiffusionModel`.
    n
        Number of images (>= 1).
    labels
        Class (label value) of each image, for a conditional model; default: the classes in
        turn (0, 1, 0, 1, ...).
    timesteps
        DDIM inference steps (1 .. the training schedule's steps).
    seed
        Seed of the starting noise: the same seed gives the same images.
    batch_size
        Images generated at once.

    Returns
    -------
    numpy.ndarray
        float32 ``(n, size, size)`` clipped to [0, 1].

    Raises
    ------
    ConfigError
        If ``n`` or ``timesteps`` is out of range, labels are given to an unconditional model,
        or a label is not one of the model's classes.
    InputError
        If ``labels`` does not hold ``n`` integers.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> m = train_diffusion(rng.random((8, 8, 8), dtype=np.float32), epochs=1, channels=(8,))
    >>> x = sample(m, 3, timesteps=2, seed=1)
    >>> x.shape, bool(x.min() >= 0 and x.max() <= 1)
    ((3, 8, 8), True)
    """
    import torch

    if int(n) < 1:
        raise ConfigError("number of images must be positive", where="n", expected=">= 1",
                          got=str(n), fix="ask for at least one image (--n 1 or more)")
    n_train = int(model.config["num_train_timesteps"])
    if not 1 <= int(timesteps) <= n_train:
        raise ConfigError("inference steps out of range", where="timesteps",
                          expected=f"1 .. {n_train}", got=str(timesteps),
                          fix="use e.g. 50 DDIM steps")
    classes = model.config.get("classes")
    cls = None
    if labels is not None and classes is None:
        raise ConfigError("labels given to an unconditional model", where="labels",
                          expected="no labels", got=f"{len(labels)} labels",
                          fix="train with labels (--conditional), or leave the labels out")
    if classes is not None:
        if labels is None:
            lab = np.asarray([classes[i % len(classes)] for i in range(int(n))], dtype=np.int64)
        else:
            lab = _check_labels(labels, int(n), "sample(labels)")
        unknown = sorted(set(lab.tolist()) - set(classes))
        if unknown:
            raise ConfigError("labels the model was not trained on", where="labels",
                              expected=f"one of {len(classes)} trained classes",
                              got=f"{len(unknown)} unknown class value(s)",
                              fix="use the classes of the training labels")
        cls = torch.as_tensor(np.searchsorted(classes, lab))
    size = model.image_size
    gen = torch.Generator().manual_seed(int(seed))
    noise = torch.randn((int(n), 1, size, size), generator=gen)
    scheduler = _scheduler("ddim", model.config)
    scheduler.set_timesteps(int(timesteps))
    network = model.network
    network.eval()
    out = []
    with torch.no_grad():
        for b in range(0, int(n), int(batch_size)):
            x = noise[b:b + int(batch_size)].to(model.device)
            c = cls[b:b + int(batch_size)].to(model.device) if cls is not None else None
            for t in scheduler.timesteps:
                tt = torch.full((x.shape[0],), int(t), device=model.device, dtype=torch.long)
                eps = network(x, tt, class_labels=c)
                x, _ = scheduler.step(eps, int(t), x)
            out.append(x.float().cpu())
    images = torch.cat(out)[:, 0]
    return ((images.clamp(-1.0, 1.0) + 1.0) / 2.0).numpy().astype(np.float32)


def save_diffusion(model: DiffusionModel, path: str | os.PathLike[str]) -> Path:
    """Save a model (``secured_bio.diffusion_model`` version 1) atomically with ``torch.save``.

    The file holds the format name and version, the configuration, the training history and
    the network's weights (moved to CPU); it loads with ``torch.load(weights_only=True)``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> rng = np.random.default_rng(0)
    >>> m = train_diffusion(rng.random((4, 8, 8), dtype=np.float32), epochs=1, channels=(8,))
    >>> p = save_diffusion(m, pathlib.Path(tempfile.mkdtemp()) / "model.pt")
    >>> load_diffusion(p).config == m.config
    True
    """
    import torch

    from secured_bio._atomic import atomic_path

    payload = {
        "format": FORMAT_NAME, "version": FORMAT_VERSION,
        "config": copy.deepcopy(model.config),
        "history": {k: [float(v) for v in vs] for k, vs in model.history.items()},
        "state_dict": {k: v.detach().cpu() for k, v in model.network.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_diffusion(path: str | os.PathLike[str], *, device: str = "cpu") -> DiffusionModel:
    """Load a model written by :func:`save_diffusion`.

    Raises
    ------
    InputFileNotFoundError
        If the file does not exist.
    FormatError
        If it is not a ``secured_bio.diffusion_model`` file, or its version is unknown.
    ConfigError
        If the device is unavailable.
    """
    import pickle
    import zipfile

    import torch

    p = Path(path)
    if not p.is_file():
        raise InputFileNotFoundError("diffusion model file not found", where=str(p),
                                     expected="a model.pt written by secured-bio synth images",
                                     fix="check the path")
    dev = resolve_device(device)
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError) as e:
        raise FormatError("not a readable model file", where=str(p),
                          expected=f"a {FORMAT_NAME} file (torch.save)", got=type(e).__name__,
                          fix="write it with save_diffusion / secured-bio synth images") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise FormatError("not a diffusion model file", where=str(p),
                          expected=f"format {FORMAT_NAME!r}",
                          got=repr(payload.get("format")) if isinstance(payload, dict)
                          else type(payload).__name__,
                          fix="give a model.pt written by secured-bio synth images")
    if payload.get("version") != FORMAT_VERSION:
        raise FormatError("unsupported diffusion model version", where=str(p),
                          expected=f"version {FORMAT_VERSION}",
                          got=f"version {payload.get('version')!r}",
                          fix="upgrade secured_bio to a release that reads this version")
    config = dict(payload["config"])
    network = _network(config)
    network.load_state_dict(payload["state_dict"])
    network.to(dev)
    network.eval()
    history = {k: list(v) for k, v in payload.get("history", {}).items()}
    return DiffusionModel(network=network, config=config, history=history, device=dev)


# --------------------------------------------------------------------------------------------
# Metrics


def image_features(images: np.ndarray, *, kind: str = "cnn", seed: int = 0) -> np.ndarray:
    """Embed images for distribution comparisons, without any download.

    ``'cnn'``: a fixed-seed, randomly initialised three-layer CNN (3x3 convolutions with
    32/64/64 channels, ReLU, 2x2 average pooling between layers) whose last map is average
    pooled to 2 x 2 and whose every layer is also globally averaged; random convolutional
    features of this kind separate image distributions reasonably well (Naeem et al. 2020,
    arXiv:2002.09797). ``'pixels'``: the raw pixels.

    Parameters
    ----------
    images
        float ``(n, h, w)`` in [0, 1].
    kind
        ``'cnn'`` or ``'pixels'``.
    seed
        Seed of the CNN weights: compare only features made with the same seed.

    Returns
    -------
    numpy.ndarray
        float64 ``(n, d)`` features.

    Raises
    ------
    ConfigError
        If ``kind`` is unknown.
    InputError
        If ``images`` is not a non-empty ``(n, h, w)`` float array.

    Examples
    --------
    >>> image_features(np.zeros((2, 8, 8), np.float32)).shape
    (2, 416)
    """
    import torch

    from secured_bio.errors import did_you_mean

    if kind not in ("cnn", "pixels"):
        raise ConfigError("unknown feature kind", where="kind", expected="cnn | pixels",
                          got=repr(kind), fix=did_you_mean(kind, ["cnn", "pixels"]) or
                          "use cnn or pixels")
    arr = _check_images(images, "image_features(images)")
    if kind == "pixels":
        return arr.reshape(arr.shape[0], -1).astype(np.float64)
    gen = torch.Generator().manual_seed(int(seed))
    convs = [torch.nn.Conv2d(a, b, 3, padding=1, bias=False)
             for a, b in ((1, 32), (32, 64), (64, 64))]
    with torch.no_grad():
        for conv in convs:
            torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu", generator=gen)
        x = torch.from_numpy(arr)[:, None] * 2.0 - 1.0
        pooled = []
        for i, conv in enumerate(convs):
            x = torch.relu(conv(x))
            pooled.append(x.mean(dim=(2, 3)))
            if i < len(convs) - 1 and min(x.shape[2:]) >= 2:
                x = torch.nn.functional.avg_pool2d(x, 2)
        pooled.append(torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1))
        return torch.cat(pooled, dim=1).double().numpy()


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.spatial.distance import cdist

    z = np.concatenate([x, y])
    d2 = cdist(z, z, "sqeuclidean")
    off = d2[~np.eye(len(z), dtype=bool)]
    # Median heuristic for the bandwidth (Gretton et al. 2012, section 8).
    sigma2 = float(np.median(off)) or 1.0
    k = np.exp(-d2 / (2.0 * sigma2))
    m, n = len(x), len(y)
    kxx, kyy, kxy = k[:m, :m], k[m:, m:], k[:m, m:]
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                 + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2.0 * kxy.mean())


def image_mmd(
    real: np.ndarray, generated: np.ndarray, *, features: str = "cnn", seed: int = 0
) -> float:
    """Unbiased squared MMD between two image sets (Gaussian kernel, median bandwidth).

    Near 0 (it can be slightly negative) when both sets come from the same distribution;
    larger when they differ. See :func:`image_features` for the embeddings.

    Parameters
    ----------
    real, generated
        float ``(n, h, w)`` in [0, 1], at least 2 images each, same ``h, w``.
    features
        ``'cnn'`` (fixed random CNN) or ``'pixels'``.
    seed
        Seed of the CNN features.

    Returns
    -------
    float
        MMD^2 estimate.

    Raises
    ------
    InputError
        If a set has fewer than 2 images or the sizes differ.
    ConfigError
        If ``features`` is unknown.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.random((2, 10, 8, 8), dtype=np.float32)
    >>> image_mmd(a, b) < image_mmd(a, np.zeros_like(b))
    True
    """
    x = _check_images(real, "image_mmd(real)")
    y = _check_images(generated, "image_mmd(generated)")
    if len(x) < 2 or len(y) < 2 or x.shape[1:] != y.shape[1:]:
        raise InputError("image sets cannot be compared", where="image_mmd",
                         expected="2+ images in each set, of the same size",
                         got=f"shapes {x.shape} and {y.shape}",
                         fix="generate more images, or resize them to the real size")
    return _mmd2_unbiased(image_features(x, kind=features, seed=seed),
                          image_features(y, kind=features, seed=seed))


def nearest_distance(images: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Root-mean-square pixel distance from each image to its closest reference image.

    A distance-to-closest-record check for images: a generated image that copies a training
    slice has distance 0. It is secondary privacy evidence only; it misses partial copies
    and the leaks that membership-inference attacks find (Carlini et al. 2023,
    arXiv:2301.13188).

    Parameters
    ----------
    images, reference
        float ``(n, h, w)`` arrays of the same ``h, w``.

    Returns
    -------
    numpy.ndarray
        float64 ``(n,)`` distances.

    Raises
    ------
    InputError
        If the arrays are empty or their image sizes differ.

    Examples
    --------
    >>> x = np.zeros((2, 4, 4), np.float32)
    >>> nearest_distance(x, np.stack([x[0], x[0] + 0.5])).tolist()
    [0.0, 0.0]
    """
    from scipy.spatial.distance import cdist

    x = _check_images(images, "nearest_distance(images)")
    r = _check_images(reference, "nearest_distance(reference)")
    if x.shape[1:] != r.shape[1:]:
        raise InputError("image sizes differ", where="nearest_distance",
                         expected="the same (h, w)", got=f"{x.shape[1:]} and {r.shape[1:]}",
                         fix="resize the images to the reference size")
    d = cdist(x.reshape(len(x), -1).astype(np.float64), r.reshape(len(r), -1).astype(np.float64))
    return np.asarray(d.min(axis=1) / math.sqrt(x.shape[1] * x.shape[2]), dtype=np.float64)


def ssim_diversity(images: np.ndarray, *, max_pairs: int = 500, seed: int = 0
                   ) -> dict[str, Any]:
    """Mean structural similarity over pairs of images: lower means more diverse.

    Uses MONAI's ``MultiScaleSSIMMetric`` (window 11) when the images are at least 161 pixels
    a side, else ``SSIMMetric`` with a 7-pixel Gaussian window (sigma 1.5), or the image side
    when smaller; data range 1.

    Parameters
    ----------
    images
        float ``(n, h, w)`` in [0, 1], n >= 2.
    max_pairs
        At most this many random distinct pairs are scored.
    seed
        Seed of the pair sampling.

    Returns
    -------
    dict
        ``metric`` (``'ms-ssim'`` or ``'ssim'``), ``win_size``, ``pairs`` and ``mean``.

    Raises
    ------
    InputError
        If fewer than 2 images are given.

    Examples
    --------
    >>> x = np.random.default_rng(0).random((4, 16, 16), dtype=np.float32)
    >>> d = ssim_diversity(np.stack([x[0]] * 3))
    >>> d["metric"], round(d["mean"], 6)
    ('ssim', 1.0)
    """
    import torch
    from monai.metrics import MultiScaleSSIMMetric, SSIMMetric

    arr = _check_images(images, "ssim_diversity(images)")
    n = arr.shape[0]
    if n < 2:
        raise InputError("diversity needs at least two images", where="ssim_diversity",
                         expected=">= 2 images", got=f"{n}", fix="generate more images")
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    if len(pairs) > max_pairs:
        pick = np.random.default_rng(seed).choice(len(pairs), size=max_pairs, replace=False)
        pairs = [pairs[k] for k in sorted(pick)]
    a = torch.from_numpy(arr[[i for i, _ in pairs]])[:, None]
    b = torch.from_numpy(arr[[j for _, j in pairs]])[:, None]
    side = min(arr.shape[1:])
    if side >= _MS_SSIM_MIN_SIDE:
        metric, win = "ms-ssim", 11
        values = MultiScaleSSIMMetric(spatial_dims=2, data_range=1.0, kernel_size=win,
                                      reduction="none")(a, b)
    else:
        metric = "ssim"
        win = min(7, side if side % 2 else side - 1)
        values = SSIMMetric(spatial_dims=2, data_range=1.0, win_size=win,
                            reduction="none")(a, b)
    mean = float(torch.as_tensor(values).float().mean())
    return {"metric": metric, "win_size": int(win), "pairs": len(pairs),
            "mean": mean if math.isfinite(mean) else float("nan")}


# --------------------------------------------------------------------------------------------
# End to end

#: Format name and version of the JSON report written by :func:`synthesize_images`.
REPORT_FORMAT = "secured_bio.synth_images_report"
REPORT_VERSION = 1
REPORT_NAME = "synth_images.json"


def _write_grid(path: Path, images: np.ndarray, labels: np.ndarray | None, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from secured_bio._atomic import atomic_path

    k = min(len(images), 64)
    cols = min(8, k)
    rows = math.ceil(k / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.2 * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < k:
            # Slices are stored (x, y): show y upwards as radiological viewers do.
            ax.imshow(images[i].T, cmap="gray", vmin=0.0, vmax=1.0, origin="lower")
            if labels is not None:
                ax.set_title(f"class {int(labels[i])}", fontsize=6)
    fig.suptitle(title, fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def synthesize_images(
    in_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    n: int,
    epochs: int = 20,
    device: str = "auto",
    seed: int = 0,
    conditional: bool = False,
    labels: str | os.PathLike[str] | None = None,
    size: int = 16,
    slices: int = 3,
    batch_size: int = 32,
    timesteps: int = 50,
    progress: bool = False,
) -> dict[str, Any]:
    """Train a diffusion model on an image folder, generate ``n`` images and evaluate them.

    Writes into ``out_dir`` (all files or none; an earlier output there is replaced):

    - ``samples/synth-0001.nii.gz``, ...: each image as a one-slice NIfTI (float32 in [0, 1],
      the in-plane voxel size of the resized real slices), and ``samples.tsv``
      (``sample_id``, ``label`` when conditional);
    - ``grid.png``: the first 64 generated images;
    - ``model.pt``: the model (``secured_bio.diffusion_model`` version 1);
    - ``synth_images.json``: the report (format ``secured_bio.synth_images_report`` v1):
      data and model settings, loss and seconds per epoch, and the metrics (MMD^2 of real vs
      generated on fixed random CNN features, with the MMD^2 between two random halves of the
      real slices as a yardstick; SSIM diversity of generated and of real slices).

    Parameters
    ----------
    in_dir
        Cohort or image folder (see :func:`load_image_slices`).
    out_dir
        Output folder: new, empty, or an earlier output of this function.
    n
        Number of images to generate (>= 1).
    epochs, device, seed, batch_size
        Training options (see :func:`train_diffusion`).
    conditional
        Train a class-conditional model on the labels; generate the classes in turn.
    labels
        Labels TSV (default ``participants.tsv`` in ``in_dir``).
    size, slices
        Slice size and slices per volume (see :func:`load_image_slices`).
    timesteps
        DDIM inference steps.
    progress
        Show progress bars.

    Returns
    -------
    dict
        The report that was written.

    Raises
    ------
    ConfigError
        If ``n`` is not positive, the device is unavailable, ``out_dir`` holds unrelated files,
        or ``conditional`` is asked without labels (or with a single class).
    InputFileNotFoundError, FormatError, SchemaError
        From :func:`load_image_slices`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from secured_bio.testing import simulate_imaging
    >>> c = simulate_imaging(tempfile.mkdtemp(), n_sites=1, subjects_per_site=2,
    ...                      n_timepoints=10, n_rois=2, shape=(8, 8, 4))
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "synth"
    >>> r = synthesize_images(c.out_dir, out, n=2, epochs=1, device="cpu", size=8, slices=2,
    ...                       timesteps=2)
    >>> sorted(p.name for p in out.iterdir())
    ['grid.png', 'model.pt', 'samples', 'samples.tsv', 'synth_images.json']
    """
    import json

    import nibabel as nib
    import pandas as pd

    from secured_bio._atomic import atomic_dir, check_replaceable_dir

    if int(n) < 1:
        raise ConfigError("number of images must be positive", where="--n", expected=">= 1",
                          got=str(n), fix="ask for at least one image (--n 1 or more)")
    dev = resolve_device(device)
    out = Path(out_dir)
    check_replaceable_dir(out, marker=REPORT_NAME)
    data = load_image_slices(in_dir, labels=labels, size=size, slices=slices)
    train_labels = None
    if conditional:
        if data.labels is None:
            raise ConfigError(
                "class-conditional training needs labels", where=str(in_dir),
                expected="participants.tsv (or --labels TSV) with participant_id and label",
                got="no labels table", fix="add a labels table, or leave out --conditional")
        if len(np.unique(data.labels)) < 2:
            raise ConfigError("class-conditional training needs two or more classes",
                              where="labels", expected=">= 2 distinct labels",
                              got="1 class", fix="leave out --conditional")
        train_labels = data.labels
    model = train_diffusion(data.images, labels=train_labels, epochs=epochs,
                            batch_size=batch_size, device=dev, seed=seed, progress=progress)
    classes = model.config.get("classes")
    gen_labels = (np.asarray([classes[i % len(classes)] for i in range(int(n))])
                  if classes is not None else None)
    t0 = time.perf_counter()
    generated = sample(model, int(n), labels=gen_labels, timesteps=timesteps, seed=seed + 1)
    sample_seconds = time.perf_counter() - t0

    rng = np.random.default_rng(seed)
    real = data.images
    metrics: dict[str, Any] = {
        "features": "fixed random CNN (seed 0; see image_features), no pretrained weights",
    }
    if len(real) >= 4 and n >= 2:
        half = rng.permutation(len(real))
        a, b = real[half[: len(real) // 2]], real[half[len(real) // 2:]]
        metrics["mmd2_real_vs_generated"] = image_mmd(real, generated)
        metrics["mmd2_real_half_vs_half"] = image_mmd(a, b)
        metrics["mmd2_real_vs_uniform_noise"] = image_mmd(
            real, rng.random(generated.shape, dtype=np.float32))
        metrics["diversity_generated"] = ssim_diversity(generated, seed=seed)
        metrics["diversity_real"] = ssim_diversity(real, seed=seed)
        metrics["nearest_real_distance"] = {
            "note": "RMS pixel distance to the closest training slice (secondary privacy "
                    "evidence: a copy has distance 0; it misses subtler leaks)",
            "generated_median": float(np.median(nearest_distance(generated, real))),
            "generated_min": float(np.min(nearest_distance(generated, real))),
            "real_half_vs_half_median": float(np.median(nearest_distance(b, a))),
        }
    else:
        metrics["skipped"] = "needs >= 4 real slices and >= 2 generated images"
    seconds = model.history["seconds"]
    report: dict[str, Any] = {
        "format": REPORT_FORMAT, "version": REPORT_VERSION,
        "data": {"layout": data.layout, "subjects": data.subjects,
                 "slices_per_subject": data.slices_per_subject, "real_images": len(real),
                 "source_shape": list(data.source_shape), "image_size": size,
                 "classes": classes},
        "model": {"path": "model.pt", "format": FORMAT_NAME, "version": FORMAT_VERSION,
                  "network": "monai DiffusionModelUNet 2D", "train_scheduler": "DDPM",
                  "sample_scheduler": "DDIM (eta 0)", "inference_steps": int(timesteps),
                  **{k: v for k, v in model.config.items() if k != "classes"}},
        "training": {"device": dev, "epochs": int(epochs), "seed": int(seed),
                     "loss_per_epoch": model.history["loss"], "seconds_per_epoch": seconds,
                     "mean_seconds_per_epoch": float(np.mean(seconds))},
        "generation": {"n": int(n), "seconds": sample_seconds, "seed": int(seed) + 1,
                       "samples": "samples/", "table": "samples.tsv", "grid": "grid.png"},
        "metrics": metrics,
    }
    affine = np.diag([*data.pixdim, 1.0])
    with atomic_dir(out) as tmp:
        (tmp / "samples").mkdir()
        ids = [f"synth-{i + 1:04d}" for i in range(int(n))]
        for sid, image in zip(ids, generated, strict=True):
            img = nib.Nifti1Image(image[:, :, None].astype(np.float32), affine)
            img.header.set_xyzt_units(xyz="mm")
            nib.save(img, tmp / "samples" / f"{sid}.nii.gz")
        table = pd.DataFrame({"sample_id": ids})
        if gen_labels is not None:
            table["label"] = gen_labels
        table.to_csv(tmp / "samples.tsv", sep="\t", index=False)
        _write_grid(tmp / "grid.png", generated, gen_labels,
                    f"{n} synthetic images ({'conditional' if classes else 'unconditional'} "
                    f"DDPM, {epochs} epochs)")
        save_diffusion(model, tmp / "model.pt")
        # The report is the marker of a complete output: write it last.
        (tmp / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %d synthetic images to %s", n, out)
    return report
