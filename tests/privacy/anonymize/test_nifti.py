"""NIfTI de-identification: header fields, extensions, sidecars, defacing with its QC, CLI."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import click
import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from secured_bio.errors import ConfigError, FormatError, InputError, InputFileNotFoundError
from secured_bio.privacy.anonymize.files_cli import nifti as nifti_cmd
from secured_bio.privacy.anonymize.nifti import (
    MARKER,
    DefaceError,
    anonymize_nifti,
    deface,
    deidentify_header,
    deidentify_sidecar,
)
from secured_bio.testing._phantom import simulate_head_phantom

SECRETS = ("Smith^John", "2023-05-17", "St Mary ward 7", "/home/jsmith/aux.txt", "PID-4711")
GEOMETRY = ("dim", "pixdim", "xyzt_units", "datatype", "bitpix", "qform_code", "sform_code",
            "quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z",
            "srow_x", "srow_y", "srow_z", "scl_slope", "scl_inter")


def _identifying_image(cls: type = nib.Nifti1Image) -> nib.Nifti1Image:
    rng = np.random.default_rng(3)
    raw = rng.integers(-500, 500, size=(6, 5, 4), dtype=np.int16)
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([1.5, 2.0, 2.5])
    affine[:3, 3] = [10.0, -20.0, 5.0]
    img = cls(raw, affine)
    hdr = img.header
    hdr.set_data_dtype(np.int16)
    hdr.set_slope_inter(2.0, -3.0)
    hdr.set_xyzt_units("mm", "sec")
    hdr["descrip"] = f"{SECRETS[0]} {SECRETS[1]} 13:45".encode()
    hdr["aux_file"] = b"/home/jsmith/aux.txt"
    hdr["intent_name"] = b"PID-4711"
    if "db_name" in hdr:
        hdr["db_name"] = SECRETS[2].encode()
    hdr.extensions.append(nib.nifti1.Nifti1Extension(6, b"PatientName=Smith^John"))
    hdr.extensions.append(nib.nifti1.Nifti1Extension(4, b"<AFNI_attributes/>"))
    return img


def _load(path: Path) -> Any:
    """nibabel.load, typed loosely (its stubs return the FileBasedImage base class)."""
    return nib.load(str(path))


def _voxel_bytes(path: Path) -> bytes:
    img = _load(path)
    return np.asanyarray(img.dataobj.get_unscaled()).tobytes()


@pytest.mark.parametrize("cls", [nib.Nifti1Image, nib.Nifti2Image])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_anonymize_nifti__clears_identity_keeps_geometry_and_voxels(
        tmp_path: Path, cls: type, suffix: str) -> None:
    src, dst = tmp_path / f"in{suffix}", tmp_path / "out" / f"anon{suffix}"
    nib.save(_identifying_image(cls), src)
    report = anonymize_nifti(src, dst)

    before, after = _load(src), _load(dst)
    assert type(after) is type(before)
    for key in GEOMETRY:
        np.testing.assert_array_equal(after.header[key], before.header[key], err_msg=key)
    np.testing.assert_array_equal(after.affine, before.affine)
    assert (after.dataobj.slope, after.dataobj.inter) == (before.dataobj.slope,
                                                          before.dataobj.inter)
    assert _voxel_bytes(dst) == _voxel_bytes(src)
    np.testing.assert_array_equal(after.get_fdata(), before.get_fdata())
    assert len(after.header.extensions) == 0
    assert after.header["descrip"].item().decode() == MARKER
    for name in ("aux_file", "intent_name", "db_name"):
        if name in after.header:
            assert after.header[name].item() == b""
    expected_fields = {"descrip", "aux_file", "intent_name"} | (
        {"db_name"} if cls is nib.Nifti1Image else set())
    assert set(report.header_fields_cleared) == expected_fields
    assert report.extensions_removed == 2 and sorted(report.extension_codes) == [4, 6]
    assert report.dates_in_header == 2  # the date and the time in descrip
    # The report names fields and counts; it never carries the values.
    text = json.dumps(report.to_dict()) + report.summary()
    assert not any(s in text for s in SECRETS)
    # The output bytes do not hold them either.
    raw = dst.read_bytes() if suffix == ".nii" else gzip.decompress(dst.read_bytes())
    assert not any(s.encode() in raw for s in SECRETS)


def test_anonymize_nifti__sidecar_identifying_keys_removed_others_kept(tmp_path: Path) -> None:
    src = tmp_path / "sub-01_T1w.nii.gz"
    nib.save(_identifying_image(), src)
    meta = {"RepetitionTime": 2.3, "EchoTime": 0.003, "MagneticFieldStrength": 3,
            "PatientName": SECRETS[0], "AcquisitionDateTime": SECRETS[1],
            "InstitutionName": SECRETS[2], "DeviceSerialNumber": "12345",
            "StudyInstanceUID": "1.2.3", "CustomScanDate": SECRETS[1]}
    (tmp_path / "sub-01_T1w.json").write_text(json.dumps(meta), encoding="utf-8")
    report = anonymize_nifti(src, tmp_path / "rel" / "sub-01_T1w.nii.gz")
    out = json.loads((tmp_path / "rel" / "sub-01_T1w.json").read_text(encoding="utf-8"))
    assert out == {"RepetitionTime": 2.3, "EchoTime": 0.003, "MagneticFieldStrength": 3}
    assert set(report.sidecar_keys_removed) == set(meta) - set(out)
    assert report.sidecar_out == str(tmp_path / "rel" / "sub-01_T1w.json")
    assert not any(s in json.dumps(report.to_dict()) for s in SECRETS)


def test_anonymize_nifti__no_sidecar_option_leaves_sidecar_out(tmp_path: Path) -> None:
    src = tmp_path / "a.nii"
    nib.save(_identifying_image(), src)
    (tmp_path / "a.json").write_text("{}", encoding="utf-8")
    report = anonymize_nifti(src, tmp_path / "o" / "b.nii", sidecar=False)
    assert report.sidecar_out is None and not (tmp_path / "o" / "b.json").exists()


def test_deidentify_sidecar__pattern_catches_unlisted_date_keys() -> None:
    kept, removed = deidentify_sidecar({"SliceTiming": [0, 1], "MyStudyDate": "x"})
    assert kept == {"SliceTiming": [0, 1]} and removed == ["MyStudyDate"]


def test_deidentify_header__not_nifti_raises() -> None:
    img = nib.Nifti1Pair(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    analyze = nib.AnalyzeImage(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    assert deidentify_header(img)[1]["extensions_removed"] == 0  # a pair is NIfTI-1 too
    with pytest.raises(FormatError, match="not a NIfTI image"):
        deidentify_header(analyze)


# ----------------------------------------------------------------------------- defacing


def _world_to_ras_array(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Reorient with nibabel's canonical reorientation (independent of our code)."""
    return np.asarray(nib.as_closest_canonical(nib.Nifti1Image(data, affine)).dataobj)


@pytest.fixture(scope="module")
def ras_result() -> tuple:
    p = simulate_head_phantom(voxel_mm=4.0, seed=1)
    return p, deface(p.data, p.affine)


def test_deface__removes_face_and_keeps_brain_on_phantom(ras_result: tuple) -> None:
    p, r = ras_result
    background = p.data.min()
    assert np.all(r.data[p.face] == background)  # every planted eye/nose voxel removed
    np.testing.assert_array_equal(r.data[p.brain], p.data[p.brain])  # brain untouched
    assert r.brain_kept >= 0.99 and r.face_cleared >= 0.99
    # Only anterior-inferior voxels are touched: nothing behind or above the brain's centre.
    brain_y, brain_z = (int(c) for c in np.mean(np.nonzero(p.brain), axis=1)[1:])
    assert not r.removed[:, : brain_y - 1, :].any()
    assert not r.removed[:, :, brain_z:].any()
    assert r.removed.any(axis=(0, 2))[brain_y + 1:].all()


@pytest.mark.parametrize("axcodes", ["LPS", "ALS", "SRA"])
def test_deface__same_world_result_for_reoriented_affines(ras_result: tuple,
                                                          axcodes: str) -> None:
    p_ras, r_ras = ras_result
    p = simulate_head_phantom(voxel_mm=4.0, seed=1, axcodes=axcodes)
    assert nib.aff2axcodes(p.affine) == tuple(axcodes)
    r = deface(p.data, p.affine)
    np.testing.assert_array_equal(_world_to_ras_array(r.data, p.affine), r_ras.data)
    assert np.all(r.data[p.face] == p.data.min())
    np.testing.assert_array_equal(r.data[p.brain], p.data[p.brain])


def test_deface__already_defaced_image_fails_quality_check(ras_result: tuple) -> None:
    p, r = ras_result
    with pytest.raises(DefaceError, match="no face found"):
        deface(r.data, p.affine)


def test_deface__real_skull_stripped_mni_template_has_no_face() -> None:
    from nilearn.datasets import load_mni152_template

    # nilearn ships the skull-stripped MNI152 2009a T1 template: a real brain, no face.
    mni = load_mni152_template(resolution=2)
    with pytest.raises(DefaceError, match="no face found"):
        deface(np.asarray(mni.dataobj), mni.affine)


def test_deface__cut_into_brain_fails_quality_check(ras_result: tuple) -> None:
    p, _ = ras_result
    with pytest.raises(DefaceError, match="would touch the brain"):
        deface(p.data, p.affine, margin_mm=-30.0)


def test_deface__no_brain_fails_quality_check() -> None:
    data = np.zeros((40, 40, 40), np.float32)
    data[18:22, 18:22, 18:22] = 1.0
    with pytest.raises(DefaceError, match="no brain found"):
        deface(data, np.eye(4))


def test_deface__not_3d_or_bad_affine_raises() -> None:
    with pytest.raises(InputError, match="needs a 3D structural image"):
        deface(np.zeros((10, 10, 10, 3)), np.eye(4))
    with pytest.raises(InputError, match="not an invertible 4x4"):
        deface(np.zeros((10, 10, 10)), np.zeros((4, 4)))


def test_anonymize_nifti__deface_writes_defaced_image_and_qc(tmp_path: Path) -> None:
    p = simulate_head_phantom(voxel_mm=4.0, axcodes="LPS", seed=2)
    src = tmp_path / "t1.nii.gz"
    nib.save(nib.Nifti1Image(p.data, p.affine), src)
    report = anonymize_nifti(src, tmp_path / "d.nii.gz", deface=True)
    out = np.asarray(_load(tmp_path / "d.nii.gz").dataobj)
    assert np.all(out[p.face] == p.data.min())
    np.testing.assert_array_equal(out[p.brain], p.data[p.brain])
    assert report.defaced and report.deface_qc is not None
    assert report.deface_qc["brain_kept"] >= 0.99


def test_anonymize_nifti__failed_deface_writes_nothing(tmp_path: Path,
                                                      ras_result: tuple) -> None:
    p, r = ras_result
    src = tmp_path / "in" / "t1.nii.gz"
    src.parent.mkdir()
    nib.save(nib.Nifti1Image(r.data, p.affine), src)  # already defaced: no face to find
    (src.parent / "t1.json").write_text('{"PatientName": "x"}', encoding="utf-8")
    out_dir = tmp_path / "out"
    with pytest.raises(DefaceError, match="no face found"):
        anonymize_nifti(src, out_dir / "t1.nii.gz", deface=True)
    assert not out_dir.exists() or not any(out_dir.iterdir())


# ----------------------------------------------------------------------------- bad input


def test_anonymize_nifti__missing_input_raises(tmp_path: Path) -> None:
    with pytest.raises(InputFileNotFoundError, match="input image not found"):
        anonymize_nifti(tmp_path / "nope.nii.gz", tmp_path / "o.nii.gz")


def test_anonymize_nifti__not_nifti_raises_and_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "fake.nii.gz"
    src.write_text("not an image", encoding="utf-8")
    with pytest.raises(FormatError, match="not a readable single-file NIfTI"):
        anonymize_nifti(src, tmp_path / "o.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.nii.gz"]


def test_anonymize_nifti__bad_sidecar_raises(tmp_path: Path) -> None:
    src = tmp_path / "a.nii"
    nib.save(_identifying_image(), src)
    (tmp_path / "a.json").write_text("[1, 2", encoding="utf-8")
    with pytest.raises(FormatError, match="sidecar is not a JSON object"):
        anonymize_nifti(src, tmp_path / "b.nii")
    assert not (tmp_path / "b.nii").exists()


def test_anonymize_nifti__output_rules(tmp_path: Path) -> None:
    src = tmp_path / "a.nii.gz"
    nib.save(_identifying_image(), src)
    with pytest.raises(ConfigError, match="output must be a NIfTI file"):
        anonymize_nifti(src, tmp_path / "a.img")
    with pytest.raises(ConfigError, match="overwrite the input"):
        anonymize_nifti(src, src)
    foreign = tmp_path / "foreign.nii.gz"
    nib.save(_identifying_image(), foreign)
    with pytest.raises(ConfigError, match="not an earlier secured_bio output"):
        anonymize_nifti(src, foreign)
    # An earlier output of ours may be replaced.
    anonymize_nifti(src, tmp_path / "ours.nii.gz")
    anonymize_nifti(src, tmp_path / "ours.nii.gz")


def test_simulate_head_phantom__bad_orientation_raises() -> None:
    with pytest.raises(ConfigError, match="invalid phantom orientation"):
        simulate_head_phantom(axcodes="RAR")
    with pytest.raises(ConfigError, match="voxel size and noise"):
        simulate_head_phantom(voxel_mm=0.0)


# ----------------------------------------------------------------------------- CLI


def _group() -> click.Group:
    group = click.Group("anonymize")
    group.add_command(nifti_cmd, "nifti")
    return group


def test_cli_nifti__deface_and_report(tmp_path: Path) -> None:
    p = simulate_head_phantom(voxel_mm=4.0)
    src = tmp_path / "t1.nii.gz"
    nib.save(nib.Nifti1Image(p.data, p.affine), src)
    res = CliRunner().invoke(_group(), ["nifti", str(src), str(tmp_path / "o.nii.gz"),
                                        "--deface", "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert "defaced" in res.output and "brain kept" in res.output
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert report["defaced"] and report["format_name"] == "secured_bio.deid_nifti"
    out = np.asarray(_load(tmp_path / "o.nii.gz").dataobj)
    assert np.all(out[p.face] == p.data.min())


def test_cli_nifti__failed_check_is_an_error_and_writes_nothing(tmp_path: Path,
                                                               ras_result: tuple) -> None:
    p, r = ras_result
    src = tmp_path / "t1.nii.gz"
    nib.save(nib.Nifti1Image(r.data, p.affine), src)
    res = CliRunner().invoke(_group(), ["nifti", str(src), str(tmp_path / "o.nii.gz"),
                                        "--deface", "--report", str(tmp_path / "r.json")])
    assert res.exit_code != 0 and isinstance(res.exception, DefaceError)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["t1.nii.gz"]
