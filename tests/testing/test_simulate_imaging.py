"""Tests of simulate_imaging: NIfTI headers, atlas, planted connectivity, atomic writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage, stats

from secured_bio.errors import ConfigError
from secured_bio.testing import ImagingCohort, simulate_imaging

nib = pytest.importorskip("nibabel")

SMALL = dict(n_sites=2, subjects_per_site=2, n_timepoints=12, shape=(8, 8, 4), n_rois=3)


@pytest.fixture(scope="module")
def fmri(tmp_path_factory: pytest.TempPathFactory) -> ImagingCohort:
    return simulate_imaging(tmp_path_factory.mktemp("fmri"))


@pytest.fixture(scope="module")
def fus(tmp_path_factory: pytest.TempPathFactory) -> ImagingCohort:
    return simulate_imaging(tmp_path_factory.mktemp("fus"), modality="fus")


def _roi_means(series: Path, atlas: np.ndarray, n_rois: int) -> np.ndarray:
    data = np.asanyarray(nib.load(series).dataobj)
    return np.stack([data[atlas == k].mean(axis=0) for k in range(1, n_rois + 1)], axis=1)


def _participants(c: ImagingCohort) -> list[dict[str, str]]:
    lines = c.participants_path.read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, ln.split("\t"), strict=True)) for ln in lines[1:]]


def _all_bytes(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_simulate_imaging__fmri_series_have_correct_header(fmri: ImagingCohort) -> None:
    assert len(fmri.series_paths) == 120  # 3 sites x 40 (the defaults)
    atlas_img = nib.load(fmri.atlas_path)
    for path in fmri.series_paths:
        img = nib.load(path)
        assert img.shape == (16, 16, 8, 80)
        assert img.get_data_dtype() == np.float32
        assert img.header.get_zooms() == pytest.approx((3.0, 3.0, 3.0, 2.0))
        assert img.header["pixdim"][4] == pytest.approx(2.0)
        assert img.header.get_xyzt_units() == ("mm", "sec")
        assert np.allclose(img.affine, atlas_img.affine)
        assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 1
        sidecar = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
        assert sidecar["RepetitionTime"] == 2.0
    data = np.asanyarray(nib.load(fmri.series_paths[0]).dataobj)
    brain = data[np.asanyarray(atlas_img.dataobj) > 0]
    assert 800 < brain.mean() < 1200  # BOLD-like intensities


def test_simulate_imaging__fus_series_are_positive_thin_slabs(fus: ImagingCohort) -> None:
    assert fus.tr == 0.4 and fus.shape == (32, 1, 24) and fus.n_timepoints == 200
    img = nib.load(fus.series_paths[0])
    assert img.shape == (32, 1, 24, 200)
    assert img.header.get_zooms() == pytest.approx((0.1, 0.4, 0.1, 0.4))
    assert img.header.get_xyzt_units() == ("mm", "sec")
    assert b"power Doppler" in img.header["descrip"].tobytes()
    for path in fus.series_paths[:4]:
        assert path.name.endswith("_task-rest_pwd.nii.gz")
        assert np.asanyarray(nib.load(path).dataobj).min() > 0


def test_simulate_imaging__atlas_has_contiguous_labels_on_same_grid(fmri: ImagingCohort) -> None:
    img = nib.load(fmri.atlas_path)
    atlas = np.asanyarray(img.dataobj)
    assert img.shape == (16, 16, 8) and np.issubdtype(atlas.dtype, np.integer)
    assert sorted(np.unique(atlas).tolist()) == list(range(fmri.n_rois + 1))
    full = np.ones((3, 3, 3))
    for k in range(1, fmri.n_rois + 1):
        assert ndimage.label(atlas == k, structure=full)[1] == 1  # one connected blob
    assert ndimage.label(atlas > 0, structure=full)[1] == 1  # one brain
    assert (atlas == 0).sum() > 0


def test_simulate_imaging__bids_like_names_and_participants(fmri: ImagingCohort) -> None:
    rows = _participants(fmri)
    assert [r["participant_id"] for r in rows] == list(fmri.participant_ids)
    assert len(set(fmri.participant_ids)) == 120
    for r, path, label in zip(rows, fmri.series_paths, fmri.labels, strict=True):
        pid, site = r["participant_id"], r["site"]
        assert re.fullmatch(r"sub-site\dx\d{3}", pid) and pid.startswith(f"sub-{site}x")
        rel = path.relative_to(fmri.out_dir).as_posix()
        assert rel == f"{site}/{pid}/func/{pid}_task-rest_bold.nii.gz"
        assert int(r["label"]) == label and r["sex"] in {"F", "M"} and 18 <= int(r["age"]) <= 90
    for site in fmri.sites:
        labels = [int(r["label"]) for r in rows if r["site"] == site]
        assert sum(labels) == len(labels) // 2  # balanced classes per site


@pytest.mark.parametrize("which", ["fmri", "fus"])
def test_simulate_imaging__planted_connectivity_separates_classes(
    which: str, request: pytest.FixtureRequest
) -> None:
    c: ImagingCohort = request.getfixturevalue(which)
    atlas = np.asanyarray(nib.load(c.atlas_path).dataobj)
    a, b = c.roi_pair
    corr = np.array([
        np.corrcoef(_roi_means(p, atlas, c.n_rois)[:, [a - 1, b - 1]].T)[0, 1]
        for p in c.series_paths
    ])
    labels = np.array(c.labels)
    assert stats.mannwhitneyu(corr[labels == 1], corr[labels == 0],
                              alternative="greater").pvalue < 0.01
    assert np.median(corr[labels == 1]) > 0.4 and abs(np.median(corr[labels == 0])) < 0.2
    # A pair without planted coupling does not separate the classes.
    other = np.array([
        np.corrcoef(_roi_means(p, atlas, c.n_rois)[:, [2, 3]].T)[0, 1] for p in c.series_paths
    ])
    assert stats.mannwhitneyu(other[labels == 1], other[labels == 0]).pvalue > 0.01


@pytest.mark.reference
@pytest.mark.parametrize("which", ["fmri", "fus"])
def test_simulate_imaging__nilearn_labels_masker_matches_numpy(
    which: str, request: pytest.FixtureRequest
) -> None:
    maskers = pytest.importorskip("nilearn.maskers")
    c: ImagingCohort = request.getfixturevalue(which)
    atlas = np.asanyarray(nib.load(c.atlas_path).dataobj)
    masker = maskers.NiftiLabelsMasker(labels_img=str(c.atlas_path), standardize=False)
    for path in c.series_paths[:3]:
        got = masker.fit_transform(str(path))
        ref = _roi_means(path, atlas, c.n_rois)
        assert got.shape == (c.n_timepoints, c.n_rois)
        np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_simulate_imaging__truth_json_records_planted_signal(fmri: ImagingCohort) -> None:
    truth = json.loads(fmri.truth_path.read_text())
    assert truth["format"] == "secured_bio.demo_imaging" and truth["format_version"] == 1
    assert truth["roi_pair"] == [1, 2]
    assert truth["planted_connectivity"] == {"0": 0.0, "1": 0.7}
    latent = truth["latent_correlation"]
    for pid, label in zip(fmri.participant_ids, fmri.labels, strict=True):
        assert (latent[pid] > 0.3) if label == 1 else (abs(latent[pid]) < 0.6)


def test_simulate_imaging__same_seed_same_bytes(tmp_path: Path) -> None:
    simulate_imaging(tmp_path / "a", seed=3, **SMALL)
    simulate_imaging(tmp_path / "b", seed=3, **SMALL)
    assert _all_bytes(tmp_path / "a") == _all_bytes(tmp_path / "b")


def test_simulate_imaging__different_seed_different_content(tmp_path: Path) -> None:
    a = simulate_imaging(tmp_path / "a", seed=3, **SMALL)
    b = simulate_imaging(tmp_path / "b", seed=4, **SMALL)
    da = np.asanyarray(nib.load(a.series_paths[0]).dataobj)
    db = np.asanyarray(nib.load(b.series_paths[0]).dataobj)
    assert not np.array_equal(da, db)


def test_simulate_imaging__no_temporary_files_left(fmri: ImagingCohort) -> None:
    files = [p for p in fmri.out_dir.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.endswith(".tmp") or p.name.startswith(".")]
    assert len(files) == 3 + 2 * 120  # atlas, participants, truth + (series, sidecar) each


def test_simulate_imaging__failure_mid_write_leaves_no_final_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import secured_bio.testing._imaging as mod

    calls = {"n": 0}
    real = mod.gzip_bytes

    def flaky(data: bytes) -> bytes:
        calls["n"] += 1
        if calls["n"] == 3:  # atlas, first series, then fail on the second series
            raise OSError("disk full (simulated)")
        return real(data)

    monkeypatch.setattr(mod, "gzip_bytes", flaky)
    with pytest.raises(OSError, match="simulated"):
        simulate_imaging(tmp_path, **SMALL)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == [
        "atlas.nii.gz",
        "site1/sub-site1x001/func/sub-site1x001_task-rest_bold.json",
        "site1/sub-site1x001/func/sub-site1x001_task-rest_bold.nii.gz",
    ]


def test_simulate_imaging__unknown_modality_suggests_closest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown imaging modality.*did you mean 'fmri'"):
        simulate_imaging(tmp_path, modality="fmir")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_sites": 0}, "n_sites is too small"),
        ({"subjects_per_site": 1}, "subjects_per_site is too small"),
        ({"n_rois": 1}, "n_rois is too small"),
        ({"n_timepoints": 5}, "n_timepoints is too small"),
        ({"shape": (16, 16)}, "shape must be three positive integers"),
        ({"shape": (16, 0, 8)}, "shape must be three positive integers"),
        ({"shape": (4, 4, 2), "n_rois": 8}, "volume too small for the number of regions"),
        ({"connectivity": 1.0}, "connectivity is out of range"),
        ({"seed": -3}, "seed is too small"),
    ],
)
def test_simulate_imaging__bad_parameters_raise_config_error(
    tmp_path: Path, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        simulate_imaging(tmp_path, **kwargs)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
