"""Seeded synthetic head phantom for defacing tests: scalp, skull, brain and a face."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from secured_bio.errors import ConfigError

__all__ = ["HeadPhantom", "simulate_head_phantom"]

# Ellipsoids in RAS millimetres: (centre x, y, z), (semi-axes x, y, z), intensity.  The head
# centre is the world origin; the face (eyes, nose) sits anterior-inferior of the brain, as
# in a T1-weighted scan (bright brain, dark skull, medium scalp).
_SCALP = ((0.0, 0.0, 10.0), (68.0, 88.0, 95.0), 0.45)
_SKULL = ((0.0, 0.0, 10.0), (62.0, 82.0, 89.0), 0.08)
_CSF = ((0.0, 0.0, 10.0), (57.0, 77.0, 84.0), 0.25)
_BRAIN = ((0.0, -5.0, 25.0), (52.0, 70.0, 60.0), 1.0)
_EYES = (((-30.0, 80.0, -15.0), (12.0, 12.0, 12.0), 0.7),
         ((30.0, 80.0, -15.0), (12.0, 12.0, 12.0), 0.7))
_NOSE = ((0.0, 90.0, -45.0), (10.0, 18.0, 22.0), 0.45)


@dataclass(frozen=True)
class HeadPhantom:
    """A synthetic 3D head image and its ground truth, in the voxel order of ``axcodes``.

    Attributes
    ----------
    data
        float32 volume, background about 0 (plus noise), brain about 1.
    affine
        Voxel-to-world (RAS+ mm) affine matching ``axcodes``.
    brain
        Boolean mask of the brain ellipsoid.
    face
        Boolean mask of the face features (eyes and nose); empty when ``face=False``.
    axcodes
        Orientation of the voxel axes, e.g. ``("R", "A", "S")`` or ``("L", "P", "S")``.
    """

    data: np.ndarray
    affine: np.ndarray
    brain: np.ndarray
    face: np.ndarray
    axcodes: tuple[str, str, str]


def _ellipsoid(grid: Sequence[np.ndarray], centre: Sequence[float],
               semi: Sequence[float]) -> np.ndarray:
    total = np.zeros(np.broadcast_shapes(*(g.shape for g in grid)))
    for g, c, s in zip(grid, centre, semi, strict=True):
        total += ((g - c) / s) ** 2
    return total <= 1.0


def simulate_head_phantom(
    *,
    axcodes: str | Sequence[str] = "RAS",
    voxel_mm: float = 3.0,
    face: bool = True,
    noise: float = 0.03,
    seed: int = 0,
) -> HeadPhantom:
    """Simulate a 3D T1-like head: scalp, skull, CSF, brain and (optionally) eyes and a nose.

    The head is built in RAS+ world millimetres (field of view 180 x 240 x 228 mm) and then
    stored in the voxel order given by ``axcodes`` with the matching affine, so the same
    anatomy can be written as RAS, LPS, or with axes permuted (a 90 degree rotation of the
    voxel grid); defacing must give the same result in world space for each.

    Parameters
    ----------
    axcodes
        Voxel axis orientation, three letters from nibabel's axis codes (e.g. ``"LPS"``,
        ``"ALS"``).
    voxel_mm
        Isotropic voxel size in mm (> 0).
    face
        Add the face features (eyes and nose); ``False`` leaves only the scalp there.
    noise
        Standard deviation of Gaussian noise (>= 0).
    seed
        Seed of the noise.

    Returns
    -------
    HeadPhantom

    Raises
    ------
    ConfigError
        If ``axcodes`` is not a valid orientation, or ``voxel_mm``/``noise`` is out of range.

    Examples
    --------
    >>> p = simulate_head_phantom(axcodes="LPS", voxel_mm=6.0)
    >>> p.data.shape, p.axcodes
    ((30, 40, 38), ('L', 'P', 'S'))
    >>> bool(p.brain.any() and p.face.any())
    True
    """
    from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform

    codes = tuple(str(c).upper() for c in axcodes)
    pairs = [{"L", "R"}, {"A", "P"}, {"S", "I"}]
    if len(codes) != 3 or sorted(i for c in codes for i, p in enumerate(pairs) if c in p) != [
            0, 1, 2]:
        raise ConfigError("invalid phantom orientation", where="simulate_head_phantom",
                          expected="three axis codes, one of L/R, A/P and S/I each, e.g. 'LPS'",
                          got=f"{len(codes)} code(s)", fix="pass axcodes='RAS'")
    target = axcodes2ornt(codes)
    if not voxel_mm > 0 or not noise >= 0:
        raise ConfigError("voxel size and noise out of range", where="simulate_head_phantom",
                          expected="voxel_mm > 0 and noise >= 0", fix="use the defaults")
    fov = np.array([180.0, 240.0, 228.0])
    shape = tuple(int(n) for n in np.round(fov / voxel_mm))
    axes = [(np.arange(n) - (n - 1) / 2.0) * voxel_mm for n in shape]
    grid = np.meshgrid(*axes, indexing="ij")
    data = np.zeros(shape, dtype=np.float32)
    for centre, semi, value in (_SCALP, _SKULL, _CSF):
        data[_ellipsoid(grid, centre, semi)] = value
    brain = _ellipsoid(grid, _BRAIN[0], _BRAIN[1])
    data[brain] = _BRAIN[2]
    face_mask = np.zeros(shape, dtype=bool)
    if face:
        for centre, semi, value in (*_EYES, _NOSE):
            part = _ellipsoid(grid, centre, semi)
            data[part] = value
            face_mask |= part
    rng = np.random.default_rng(seed)
    data += rng.normal(0.0, noise, size=shape).astype(np.float32)
    np.abs(data, out=data)  # magnitude images are non-negative
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = [-(n - 1) / 2.0 * voxel_mm for n in shape]
    transform = ornt_transform(axcodes2ornt(("R", "A", "S")), target)
    out_affine = affine @ inv_ornt_aff(transform, shape)
    return HeadPhantom(
        data=np.ascontiguousarray(apply_orientation(data, transform), dtype=np.float32),
        affine=out_affine,
        brain=np.ascontiguousarray(apply_orientation(brain, transform)),
        face=np.ascontiguousarray(apply_orientation(face_mask, transform)),
        axcodes=(codes[0], codes[1], codes[2]),
    )
