"""Tests of secured_bio.imaging.features: cohort feature tables and seed maps."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from secured_bio.errors import ConfigError, InputFileNotFoundError, SchemaError
from secured_bio.imaging.connectivity import series_connectivity
from secured_bio.imaging.features import connectivity_features, edge_names, find_series, seed_map
from secured_bio.testing import simulate_imaging


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    return simulate_imaging(tmp_path_factory.mktemp("fmri"), n_sites=2, subjects_per_site=3,
                            n_timepoints=30, n_rois=4, shape=(10, 10, 5), seed=8)


def _copy(cohort, tmp_path: Path) -> Path:
    return Path(shutil.copytree(cohort.out_dir, tmp_path / "cohort"))


def test_connectivity_features__rows_follow_participants_and_edges_match_matrices(
        cohort) -> None:
    df = connectivity_features(cohort.out_dir, kind="partial", fisher_z=True)
    participants = pd.read_csv(cohort.participants_path, sep="\t", dtype={"participant_id": str})
    assert list(df.index) == list(participants["participant_id"])
    assert df.index.name == "participant_id"
    pd.testing.assert_frame_equal(
        df[["site", "label", "sex", "age"]].reset_index(drop=True),
        participants[["site", "label", "sex", "age"]], check_dtype=False)
    edges = edge_names(range(1, cohort.n_rois + 1))
    assert list(df.columns[4:]) == edges
    k = 4  # one participant, recomputed on its own
    conn = series_connectivity(cohort.series_paths[k], cohort.atlas_path, kind="partial",
                               fisher_z=True)
    iu = np.triu_indices(cohort.n_rois, 1)
    np.testing.assert_array_equal(df.loc[cohort.participant_ids[k], edges].to_numpy(float),
                                  conn.matrix[iu])


def test_connectivity_features__sites_filter_and_unknown_site_hint(cohort) -> None:
    df = connectivity_features(cohort.out_dir, sites=["site2"], preprocess=False,
                               fisher_z=False)
    assert set(df["site"]) == {"site2"} and len(df) == 3
    with pytest.raises(ConfigError, match="unknown site.*did you mean 'site2'"):
        connectivity_features(cohort.out_dir, sites=["site-2"])


def test_connectivity_features__without_participants_tsv_has_site_only(cohort,
                                                                       tmp_path: Path) -> None:
    root = _copy(cohort, tmp_path)
    (root / "participants.tsv").unlink()
    df = connectivity_features(root, sites=["site1"])
    assert list(df.columns[:2]) == ["site", "roi1-roi2"]
    assert list(df.index) == list(cohort.participant_ids[:3])


def test_connectivity_features__participant_missing_from_tsv_raises(cohort,
                                                                    tmp_path: Path) -> None:
    root = _copy(cohort, tmp_path)
    lines = (root / "participants.tsv").read_text().splitlines()
    (root / "participants.tsv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(SchemaError, match="no row in participants.tsv.*1 participants") as info:
        connectivity_features(root)
    assert cohort.participant_ids[-1] not in str(info.value)


def test_connectivity_features__missing_atlas_raises(cohort, tmp_path: Path) -> None:
    root = _copy(cohort, tmp_path)
    (root / "atlas.nii.gz").unlink()
    with pytest.raises(InputFileNotFoundError, match="cohort atlas not found"):
        connectivity_features(root)


def test_find_series__two_runs_of_one_participant_raise(cohort, tmp_path: Path) -> None:
    root = _copy(cohort, tmp_path)
    src = root.joinpath(cohort.series_paths[0].relative_to(cohort.out_dir))
    shutil.copy(src, src.with_name(src.name.replace("task-rest", "task-rest_run-2")))
    with pytest.raises(SchemaError, match="more than one series.*1 extra"):
        find_series(root)


def test_find_series__missing_or_empty_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(InputFileNotFoundError, match="cohort folder not found"):
        find_series(tmp_path / "none")
    with pytest.raises(InputFileNotFoundError, match="no functional series"):
        find_series(tmp_path)


def test_seed_map__equals_pearson_of_each_voxel_with_the_seed_mean(cohort) -> None:
    series = cohort.series_paths[1]
    m = seed_map(series, cohort.atlas_path, seed_label=2, detrend=False)
    data = nib.load(series).get_fdata()
    atlas = np.asarray(nib.load(cohort.atlas_path).dataobj)
    seed = data[atlas == 2].mean(axis=0)
    assert m.dtype == np.float32 and m.shape == atlas.shape
    for idx in np.argwhere(atlas > 0)[::17]:
        ref = np.corrcoef(data[tuple(idx)], seed)[0, 1]
        assert m[tuple(idx)] == pytest.approx(ref, abs=1e-6)
    np.testing.assert_array_equal(m[atlas == 0], 0.0)


def test_seed_map__detrend_equals_pearson_of_detrended_signals(cohort) -> None:
    from scipy.signal import detrend

    series = cohort.series_paths[0]
    m = seed_map(series, cohort.atlas_path, seed_label=1)
    data = detrend(nib.load(series).get_fdata(), axis=-1)
    atlas = np.asarray(nib.load(cohort.atlas_path).dataobj)
    seed = data[atlas == 1].mean(axis=0)
    idx = tuple(np.argwhere(atlas == 3)[0])
    assert m[idx] == pytest.approx(np.corrcoef(data[idx], seed)[0, 1], abs=1e-6)


def test_seed_map__unknown_seed_label_raises(cohort) -> None:
    with pytest.raises(SchemaError, match="seed label is not in the atlas.*label 42"):
        seed_map(cohort.series_paths[0], cohort.atlas_path, seed_label=42)


def test_seed_map__without_atlas_raises(cohort) -> None:
    with pytest.raises(ConfigError, match="no atlas for the seed map"):
        seed_map(cohort.series_paths[0], seed_label=1)
