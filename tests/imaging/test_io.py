"""Tests of secured_bio.imaging.io: loading and checking 4D series and label atlases."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from secured_bio.errors import ConfigError, FormatError, InputFileNotFoundError, SchemaError
from secured_bio.imaging.io import Atlas, derivative_path, load_atlas, load_series, sidecar_path
from secured_bio.testing import simulate_imaging

AFFINE = np.diag([2.0, 2.0, 3.0, 1.0])


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    return simulate_imaging(tmp_path_factory.mktemp("fmri"), n_sites=1, subjects_per_site=2,
                            n_timepoints=16, n_rois=4, shape=(8, 8, 4), seed=5)


def _series(path: Path, *, shape: tuple[int, ...] = (4, 5, 3, 12), tr: float = 2.0,
            time_unit: str = "sec", affine: np.ndarray = AFFINE, n_nan: int = 0,
            sidecar: dict | None = None) -> Path:
    data = np.random.default_rng(0).normal(100, 5, size=shape).astype(np.float32)
    if n_nan:
        data.reshape(-1)[:n_nan] = np.nan
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units(xyz="mm", t=time_unit)
    if len(shape) == 4:
        img.header.set_zooms((*img.header.get_zooms()[:3], tr))
    nib.save(img, path)
    if sidecar is not None:
        sidecar_path(path).write_text(json.dumps(sidecar))
    return path


def _atlas(path: Path, *, shape: tuple[int, ...] = (4, 5, 3), affine: np.ndarray = AFFINE,
           labels: int = 3, dtype: type = np.int16) -> Path:
    data = (np.arange(int(np.prod(shape))).reshape(shape) % (labels + 1)).astype(dtype)
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def test_load_series__demo_fmri_shape_tr_modality_match_the_simulator(cohort) -> None:
    s = load_series(cohort.series_paths[0], atlas=cohort.atlas_path)
    assert s.shape == (*cohort.shape, cohort.n_timepoints)
    assert s.tr == cohort.tr and s.tr_source == "header"
    assert s.modality == "fmri"
    assert s.atlas is not None and s.atlas.labels == tuple(range(1, cohort.n_rois + 1))


def test_load_series__demo_fus_has_its_tr_and_modality(tmp_path: Path) -> None:
    c = simulate_imaging(tmp_path, n_sites=1, subjects_per_site=2, modality="fus",
                         n_timepoints=12, n_rois=3, shape=(8, 1, 6))
    s = load_series(c.series_paths[0])
    assert (s.tr, s.modality) == (c.tr, "fus")


def test_load_series__data_equals_nibabel_float64(cohort) -> None:
    s = load_series(cohort.series_paths[1])
    ref = nib.load(cohort.series_paths[1]).get_fdata(dtype=np.float64)
    assert s.data.dtype == np.float64
    np.testing.assert_array_equal(s.data, ref)


def test_load_series__msec_time_unit_is_converted_to_seconds(tmp_path: Path) -> None:
    s = load_series(_series(tmp_path / "x_pwd.nii.gz", tr=400.0, time_unit="msec"))
    assert s.tr == pytest.approx(0.4) and s.modality == "fus"


def test_load_series__3d_image_raises(tmp_path: Path) -> None:
    path = _series(tmp_path / "t1.nii", shape=(4, 5, 3))
    with pytest.raises(SchemaError, match=r"image is 3D, not 4D.*shape \(4, 5, 3\).*concat"):
        load_series(path)


def test_load_series__too_few_timepoints_raises_unless_allowed(tmp_path: Path) -> None:
    path = _series(tmp_path / "bold.nii", shape=(4, 5, 3, 6))
    with pytest.raises(SchemaError, match=r"too few timepoints.*at least 10.*6 volumes"):
        load_series(path)
    assert load_series(path, min_timepoints=6).n_timepoints == 6


def test_load_series__nan_voxels_are_counted_never_shown(tmp_path: Path) -> None:
    path = _series(tmp_path / "bold.nii", n_nan=5)
    with pytest.raises(SchemaError, match=r"non-finite values.*5 NaN/inf voxel values in 5 "
                                          r"of 12 volumes") as info:
        load_series(path)
    finite = nib.load(path).get_fdata()
    shown = f"{finite.reshape(-1)[10]:.3f}"
    assert shown not in str(info.value)


def test_load_series__missing_tr_raises_with_fix(tmp_path: Path) -> None:
    path = _series(tmp_path / "bold.nii", time_unit="unknown")
    with pytest.raises(SchemaError, match=r"no repetition time.*--tr SECONDS"):
        load_series(path)


def test_load_series__tr_argument_overrides_a_missing_header_tr(tmp_path: Path) -> None:
    path = _series(tmp_path / "bold.nii", tr=0.0)
    s = load_series(path, tr=1.5)
    assert (s.tr, s.tr_source) == (1.5, "argument")


def test_load_series__tr_from_sidecar_when_header_has_none(tmp_path: Path) -> None:
    path = _series(tmp_path / "sub-1_bold.nii.gz", time_unit="unknown",
                   sidecar={"RepetitionTime": 0.8})
    s = load_series(path)
    assert (s.tr, s.tr_source) == (0.8, "sidecar")


def test_load_series__header_and_sidecar_tr_disagree_raises(tmp_path: Path) -> None:
    path = _series(tmp_path / "sub-1_bold.nii.gz", tr=2.0, sidecar={"RepetitionTime": 1.0})
    with pytest.raises(SchemaError, match=r"differs between header and sidecar.*2 s.*1 s"):
        load_series(path)


def test_load_series__invalid_sidecar_raises(tmp_path: Path) -> None:
    path = _series(tmp_path / "sub-1_bold.nii", time_unit="unknown")
    sidecar_path(path).write_text("{not json")
    with pytest.raises(FormatError, match="not valid JSON"):
        load_series(path)
    sidecar_path(path).write_text('{"RepetitionTime": "2s"}')
    with pytest.raises(SchemaError, match="RepetitionTime is not a positive number"):
        load_series(path)


@pytest.mark.parametrize("tr", [0.0, -1.0, float("nan"), "2"])
def test_load_series__invalid_tr_argument_raises(tmp_path: Path, tr: object) -> None:
    path = _series(tmp_path / "bold.nii")
    with pytest.raises(ConfigError, match="tr must be a positive number of seconds"):
        load_series(path, tr=tr)  # type: ignore[arg-type]


def test_load_series__missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(InputFileNotFoundError, match="functional series not found"):
        load_series(tmp_path / "nope.nii.gz")


def test_load_series__not_nifti_raises(tmp_path: Path) -> None:
    path = tmp_path / "bold.nii"
    path.write_bytes(b"not an image at all" * 30)
    with pytest.raises(FormatError, match="not a readable NIfTI image"):
        load_series(path)


def test_load_series__singular_affine_raises(tmp_path: Path) -> None:
    img = nib.load(_series(tmp_path / "bold.nii"))
    img.set_sform(np.diag([2.0, 0.0, 3.0, 1.0]), code=1)  # a zero voxel size in y
    path = tmp_path / "singular.nii"
    nib.save(img, path)
    with pytest.raises(SchemaError, match="affine is singular"):
        load_series(path)


def test_load_atlas__labels_ascending_without_background(tmp_path: Path) -> None:
    a = load_atlas(_atlas(tmp_path / "a.nii", labels=4))
    data = np.asarray(nib.load(tmp_path / "a.nii").dataobj)
    assert a.labels == tuple(int(v) for v in np.unique(data) if v != 0)
    assert a.data.dtype.kind == "i" and a.shape == (4, 5, 3)


def test_load_atlas__shape_mismatch_raises(tmp_path: Path) -> None:
    s = load_series(_series(tmp_path / "bold.nii"))
    with pytest.raises(SchemaError, match=r"atlas grid does not match.*\(4, 5, 3\).*"
                                          r"\(4, 5, 4\).*resample_to_img"):
        load_atlas(_atlas(tmp_path / "a.nii", shape=(4, 5, 4)), like=s)


def test_load_atlas__affine_mismatch_raises_and_tolerance_passes(tmp_path: Path) -> None:
    s = load_series(_series(tmp_path / "bold.nii"))
    shifted = AFFINE.copy()
    shifted[0, 3] = 0.01
    with pytest.raises(SchemaError, match=r"atlas affine does not match.*within 0\.001"):
        load_atlas(_atlas(tmp_path / "a.nii", affine=shifted), like=s)
    near = AFFINE.copy()
    near[0, 3] = 0.0005
    assert load_atlas(_atlas(tmp_path / "b.nii", affine=near), like=s).labels == (1, 2, 3)


def test_load_atlas__in_memory_atlas_is_checked_against_the_series(tmp_path: Path) -> None:
    s = load_series(_series(tmp_path / "bold.nii"))
    wrong = Atlas(path=None, data=np.ones((4, 5, 4), dtype=np.int64), affine=AFFINE,
                  labels=(1,))
    with pytest.raises(SchemaError, match="atlas grid does not match"):
        load_atlas(wrong, like=s)


def test_load_atlas__single_label_raises(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"too few labels.*at least 2.*got 1"):
        load_atlas(_atlas(tmp_path / "mask.nii", labels=1))


def test_load_atlas__non_integer_labels_raise(tmp_path: Path) -> None:
    data = np.random.default_rng(1).uniform(0, 1, (4, 5, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, AFFINE), tmp_path / "prob.nii")
    with pytest.raises(SchemaError, match="atlas labels are not integers"):
        load_atlas(tmp_path / "prob.nii")


def test_load_atlas__4d_atlas_raises(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="atlas is 4D, not 3D"):
        load_atlas(_atlas(tmp_path / "a.nii", shape=(4, 5, 3, 2)))


def test_load_atlas__missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(InputFileNotFoundError, match="atlas file not found"):
        load_atlas(tmp_path / "none.nii.gz")


def test_load_series__atlas_mismatch_raises_through_load_series(tmp_path: Path) -> None:
    path = _series(tmp_path / "bold.nii")
    with pytest.raises(SchemaError, match="atlas grid does not match"):
        load_series(path, atlas=_atlas(tmp_path / "a.nii", shape=(5, 5, 3)))


def test_derivative_path__keeps_entities_and_drops_modality_suffix() -> None:
    src = "site1/sub-01/func/sub-01_ses-2_task-rest_run-1_bold.nii.gz"
    got = derivative_path(src, "out", atlas="schaefer100", desc="partial")
    assert got == Path("out/sub-01_ses-2_task-rest_run-1_atlas-schaefer100_desc-partial"
                       "_connectivity.tsv")
    assert derivative_path("sub-9_task-rest_pwd.nii", "o").name == (
        "sub-9_task-rest_atlas-demo_desc-correlation_connectivity.tsv")


def test_derivative_path__replaces_existing_atlas_and_desc() -> None:
    src = "sub-01_task-rest_atlas-old_desc-preproc_bold.nii.gz"
    assert derivative_path(src, ".", suffix="seedmap", ext=".nii.gz").name == (
        "sub-01_task-rest_atlas-demo_desc-correlation_seedmap.nii.gz")


@pytest.mark.parametrize("kwargs", [{"atlas": "my_atlas"}, {"desc": "a-b"}, {"suffix": ""}])
def test_derivative_path__non_alphanumeric_label_raises(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match="must be letters and digits only"):
        derivative_path("sub-1_bold.nii", ".", **kwargs)


def test_derivative_path__extension_without_dot_raises() -> None:
    with pytest.raises(ConfigError, match="must start with a dot"):
        derivative_path("sub-1_bold.nii", ".", ext="tsv")
