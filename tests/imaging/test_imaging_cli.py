"""Tests of the `secured-bio imaging` commands (real subprocesses of the console script)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from secured_bio.imaging.connectivity import read_connectivity_tsv
from secured_bio.testing import simulate_imaging


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    return simulate_imaging(tmp_path_factory.mktemp("fmri"), n_sites=2, subjects_per_site=2,
                            n_timepoints=40, n_rois=4, shape=(10, 10, 5), seed=4)


def _roi_means(series: Path, atlas: Path) -> np.ndarray:
    data = nib.load(series).get_fdata(dtype=np.float64)
    labels_img = np.asarray(nib.load(atlas).dataobj)
    return np.stack([data[labels_img == lab].mean(axis=0)
                     for lab in sorted(set(np.unique(labels_img)) - {0})], axis=1)


def test_connectivity__no_preprocess_correlation_equals_pearson(cohort, cli_env,
                                                                tmp_path: Path) -> None:
    bold = cohort.series_paths[0]
    out = tmp_path / "out" / "conn.tsv"
    res = run_cli("imaging", "connectivity", "--bold", str(bold), "--atlas",
                  str(cohort.atlas_path), "--out", str(out), "--no-preprocess",
                  "--kind", "correlation", env=cli_env)
    assert res.returncode == 0, res.stderr
    matrix, labels = read_connectivity_tsv(out)
    assert labels == tuple(range(1, cohort.n_rois + 1))
    ref = np.corrcoef(_roi_means(bold, cohort.atlas_path), rowvar=False)
    np.testing.assert_allclose(matrix, ref, rtol=0, atol=1e-10)
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["format"] == "secured_bio.connectivity" and doc["preprocessing"] is None
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in out.parent.iterdir()) == ["conn.json", "conn.png", "conn.tsv"]


def _main(*args: str) -> int:
    """Run the CLI in this process (faster than a subprocess; same exit codes)."""
    from secured_bio.cli import main

    return main(list(args))


def test_connectivity__folder_out_gets_a_bids_like_name(cohort, tmp_path: Path) -> None:
    code = _main("imaging", "connectivity", "--bold", str(cohort.series_paths[1]),
                 "--atlas", str(cohort.atlas_path), "--out", str(tmp_path), "--kind",
                 "partial", "--fisher-z", "--high-pass", "0.01", "--low-pass", "0.2")
    assert code == 0
    stem = f"{cohort.participant_ids[1]}_task-rest_atlas-atlas_desc-partial_connectivity"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"{stem}.json", f"{stem}.png", f"{stem}.tsv"]
    matrix, _ = read_connectivity_tsv(tmp_path / f"{stem}.tsv")
    np.testing.assert_array_equal(np.diag(matrix), 0.0)  # Fisher z diagonal


def test_connectivity__3d_image_fails_with_message_and_no_output(
        cohort, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vol = tmp_path / "t1.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(cohort.shape, np.float32), np.eye(4)), vol)
    out = tmp_path / "out" / "conn.tsv"
    code = _main("imaging", "connectivity", "--bold", str(vol), "--atlas",
                 str(cohort.atlas_path), "--out", str(out))
    assert code == 1
    assert "image is 3D, not 4D" in capsys.readouterr().err
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_connectivity__atlas_grid_mismatch_fails_and_writes_nothing(
        cohort, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = simulate_imaging(tmp_path / "other", n_sites=1, subjects_per_site=2,
                             n_timepoints=12, n_rois=3, shape=(8, 8, 4))
    out = tmp_path / "out"
    out.mkdir()
    code = _main("imaging", "connectivity", "--bold", str(cohort.series_paths[0]),
                 "--atlas", str(other.atlas_path), "--out", str(out / "c.tsv"))
    assert code == 1
    assert "atlas grid does not match the series" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_connectivity__missing_tr_fails_then_tr_option_fixes_it(
        cohort, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = nib.load(cohort.series_paths[0])
    img.header.set_xyzt_units(xyz="mm", t="unknown")
    bold = tmp_path / "scan.nii.gz"
    nib.save(img, bold)
    args = ["imaging", "connectivity", "--bold", str(bold), "--atlas",
            str(cohort.atlas_path), "--out", str(tmp_path / "c.tsv")]
    assert _main(*args) == 1
    err = capsys.readouterr().err
    assert "no repetition time" in err and "--tr" in err
    assert not (tmp_path / "c.tsv").exists()
    assert _main(*args, "--tr", "2.0") == 0
    assert json.loads((tmp_path / "c.json").read_text())["repetition_time_s"] == 2.0


def test_connectivity__bad_out_suffix_is_a_usage_error(
        cohort, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _main("imaging", "connectivity", "--bold", str(cohort.series_paths[0]),
                 "--atlas", str(cohort.atlas_path), "--out", str(tmp_path / "c.csv"))
    assert code == 2 and "--out must end with .tsv" in capsys.readouterr().err


def test_connectivity__unknown_kind_is_a_usage_error(
        cohort, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _main("imaging", "connectivity", "--bold", str(cohort.series_paths[0]),
                 "--atlas", str(cohort.atlas_path), "--out", str(tmp_path / "c.tsv"),
                 "--kind", "covariance")
    assert code == 2 and "covariance" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_features__writes_one_row_per_participant(cohort, cli_env, tmp_path: Path) -> None:
    out = tmp_path / "features.tsv"
    res = run_cli("imaging", "features", "--cohort", str(cohort.out_dir), "--out", str(out),
                  "--kind", "partial", env=cli_env)
    assert res.returncode == 0, res.stderr
    df = pd.read_csv(out, sep="\t", index_col="participant_id")
    assert list(df.index) == list(cohort.participant_ids)
    assert list(df["label"]) == list(cohort.labels)
    assert sum(c.startswith("roi") for c in df.columns) == cohort.n_rois * (cohort.n_rois - 1) // 2
    doc = json.loads((tmp_path / "features.json").read_text())
    assert doc["n_participants"] == len(cohort.participant_ids) and doc["kind"] == "partial"


def test_help_texts_explain_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert _main("imaging", "connectivity", "--help") == 0
    out = capsys.readouterr().out
    for option in ("--bold", "--atlas", "--kind", "--fisher-z", "--no-preprocess", "--tr",
                   "--high-pass", "--low-pass", "--confounds", "--plot"):
        assert option in out
    assert _main("imaging", "--help") == 0
    out = capsys.readouterr().out
    assert "features" in out and "connectivity" in out
