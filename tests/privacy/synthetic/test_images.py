"""Synthetic images: slice loading, diffusion training/sampling, save/load, metrics and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import click
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from scipy.signal import convolve2d

from secured_bio.errors import (
    ConfigError,
    FormatError,
    InputError,
    InputFileNotFoundError,
    SchemaError,
)
from secured_bio.privacy.synthetic import images as im
from secured_bio.privacy.synthetic.images_cli import images as images_cmd
from secured_bio.testing import simulate_imaging


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from threads; one thread avoids stalls on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    return simulate_imaging(tmp_path_factory.mktemp("cohort"), n_sites=1, subjects_per_site=4,
                            n_timepoints=10, n_rois=2, shape=(8, 8, 4), seed=3)


def _blobs(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    """Seeded images of one Gaussian blob each, in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = np.empty((n, size, size), np.float32)
    for i in range(n):
        cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
        out[i] = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size / 6) ** 2))
    return out


@pytest.fixture(scope="module")
def tiny_model() -> im.DiffusionModel:
    with torch.random.fork_rng():
        torch.set_num_threads(1)
        x = _blobs(16, size=8)
        return im.train_diffusion(x, labels=np.arange(16) % 2, epochs=2, batch_size=8,
                                  channels=(8, 16), seed=0)


def _write_nifti(path: Path, data: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.diag([2.0, 2.0, 3.0, 1.0])), path)


# ------------------------------------------------------------------------------ loading


def test_load_image_slices__cohort_gives_central_temporal_mean_slices(cohort):
    s = im.load_image_slices(cohort.out_dir, size=8, slices=2)
    assert s.images.shape == (len(cohort.series_paths) * 2, 8, 8)
    assert s.images.dtype == np.float32
    assert s.images.min() >= 0.0 and s.images.max() <= 1.0
    assert s.labels.tolist() == [int(v) for v in np.repeat(cohort.labels, 2)]
    # Independent reference: nibabel, temporal mean, slices 1 and 2 of 4, min-max scaled.
    ref = np.asarray(nib.load(cohort.series_paths[0]).dataobj, np.float64).mean(axis=3)
    for k, z in enumerate((1, 2)):
        sl = ref[:, :, z]
        np.testing.assert_allclose(s.images[k], (sl - sl.min()) / (sl.max() - sl.min()),
                                   atol=1e-5)
    assert s.layout == "cohort" and s.source_shape == (8, 8, 4)


def test_load_image_slices__folder_of_3d_images_with_labels_resized(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        _write_nifti(tmp_path / f"sub-{i:02d}_T1w.nii.gz", rng.random((12, 12, 5)))
    pd.DataFrame({"participant_id": ["sub-00", "sub-01", "sub-02"], "label": [1, 0, 1]}).to_csv(
        tmp_path / "labels.tsv", sep="\t", index=False)
    s = im.load_image_slices(tmp_path, labels=tmp_path / "labels.tsv", size=8, slices=1)
    assert s.images.shape == (3, 8, 8) and s.layout == "folder"
    assert s.labels.tolist() == [1, 0, 1]
    assert s.pixdim == pytest.approx((3.0, 3.0, 3.0))  # 12 voxels of 2 mm over 8 pixels


def test_load_image_slices__folder_without_labels_has_none(tmp_path):
    _write_nifti(tmp_path / "a.nii", np.random.default_rng(1).random((8, 8, 3)))
    assert im.load_image_slices(tmp_path, size=8, slices=1).labels is None


@pytest.mark.parametrize(("setup", "error", "match"), [
    ("missing", InputFileNotFoundError, "image folder not found"),
    ("empty", InputFileNotFoundError, "image folder is empty"),
    ("png", FormatError, "not NIfTI images"),
    ("corrupt", FormatError, "not a readable NIfTI"),
    ("2d", SchemaError, "neither 3D nor 4D"),
    ("thin", SchemaError, "fewer slices than requested"),
    ("nan", SchemaError, "non-finite voxels"),
    ("label_missing", SchemaError, "subjects without a label"),
    ("label_columns", SchemaError, "lacks columns"),
    ("label_float", SchemaError, "not all integers"),
    ("label_file", InputFileNotFoundError, "labels table not found"),
])
def test_load_image_slices__bad_input_raises(tmp_path, setup, error, match):
    d = tmp_path / "in"
    d.mkdir()
    labels = None
    good = np.random.default_rng(0).random((8, 8, 4))
    if setup == "missing":
        d = tmp_path / "nope"
    elif setup == "png":
        (d / "a.png").write_bytes(b"\x89PNG")
    elif setup == "corrupt":
        (d / "a.nii.gz").write_bytes(b"not a nifti")
    elif setup == "2d":
        nib.save(nib.Nifti1Image(good[:, :, 0].astype(np.float32), np.eye(4)), d / "a.nii.gz")
    elif setup == "thin":
        _write_nifti(d / "a.nii.gz", good[:, :, :1])
    elif setup == "nan":
        bad = good.copy()
        bad[0, 0, 0] = np.nan
        _write_nifti(d / "a.nii.gz", bad)
    elif setup.startswith("label"):
        _write_nifti(d / "sub-01.nii.gz", good)
        _write_nifti(d / "sub-02.nii.gz", good)
        labels = d / "labels.tsv"
        rows = {"label_missing": "participant_id\tlabel\nsub-01\t1\n",
                "label_columns": "participant_id\tclass\nsub-01\t1\nsub-02\t0\n",
                "label_float": "participant_id\tlabel\nsub-01\t0.5\nsub-02\t0\n"}
        if setup == "label_file":
            labels = d / "absent.tsv"
        else:
            labels.write_text(rows[setup])
    with pytest.raises(error, match=match):
        im.load_image_slices(d, labels=labels, size=8, slices=2)


@pytest.mark.parametrize(("kwargs", "match"), [({"size": 2}, "image size too small"),
                                               ({"slices": 0}, "slices per volume")])
def test_load_image_slices__bad_options_raise(cohort, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        im.load_image_slices(cohort.out_dir, **kwargs)


def test_load_image_slices__error_never_shows_voxel_values(tmp_path):
    data = np.full((8, 8, 4), 1234.5678)
    data[0, 0, 0] = np.inf
    _write_nifti(tmp_path / "a.nii.gz", data)
    with pytest.raises(SchemaError) as e:
        im.load_image_slices(tmp_path, size=8, slices=1)
    assert "1234" not in str(e.value)


# ------------------------------------------------------------------------------ training


def test_train_diffusion__loss_decreases_over_epochs():
    model = im.train_diffusion(_blobs(32), epochs=6, batch_size=8, seed=0)
    loss = model.history["loss"]
    assert len(loss) == 6 and len(model.history["seconds"]) == 6
    assert np.mean(loss[-2:]) < 0.6 * loss[0]


def test_train_diffusion__same_seed_gives_same_model():
    a = im.train_diffusion(_blobs(8, size=8), epochs=1, batch_size=4, channels=(8,), seed=5)
    b = im.train_diffusion(_blobs(8, size=8), epochs=1, batch_size=4, channels=(8,), seed=5)
    assert a.history["loss"] == b.history["loss"]
    for (ka, va), (kb, vb) in zip(a.network.state_dict().items(),
                                  b.network.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"epochs": 0}, ConfigError, "epochs must be positive"),
    ({"batch_size": 0}, ConfigError, "batch_size must be positive"),
    ({"channels": (12,)}, ConfigError, "multiples of 8"),
    ({"channels": (8, 16), "images": _blobs(2, size=7)}, ConfigError, "does not fit the U-Net"),
    ({"attention_levels": (True, False, False)}, ConfigError, "one attention flag"),
    ({"learning_rate": 0.0}, ConfigError, "learning rate"),
    ({"device": "tpu"}, ConfigError, "unknown device"),
    ({"images": np.zeros((0, 8, 8), np.float32)}, InputError, "wrong shape"),
    ({"images": np.zeros((2, 8, 8), np.int64)}, InputError, "finite floats"),
    ({"labels": [0]}, InputError, "labels do not match"),
])
def test_train_diffusion__bad_arguments_raise(kwargs, error, match):
    images = kwargs.pop("images", _blobs(2, size=8))
    with pytest.raises(error, match=match):
        im.train_diffusion(images, **{"epochs": 1, "channels": (8, 16), **kwargs})


def test_resolve_device__cuda_without_gpu_raises(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="a CUDA GPU was requested but none is available"):
        im.resolve_device("cuda")
    assert im.resolve_device("auto") == "cpu"


# ------------------------------------------------------------------------------ sampling


def test_sample__same_seed_same_images_and_range(tiny_model):
    a = im.sample(tiny_model, 4, timesteps=3, seed=7)
    b = im.sample(tiny_model, 4, timesteps=3, seed=7)
    c = im.sample(tiny_model, 4, timesteps=3, seed=8)
    assert a.shape == (4, 8, 8) and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_sample__class_labels_change_the_images(tiny_model):
    zero = im.sample(tiny_model, 2, labels=[0, 0], timesteps=3, seed=1)
    one = im.sample(tiny_model, 2, labels=[1, 1], timesteps=3, seed=1)
    assert not np.array_equal(zero, one)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"n": 0}, ConfigError, "must be positive"),
    ({"timesteps": 0}, ConfigError, "inference steps out of range"),
    ({"timesteps": 5000}, ConfigError, "inference steps out of range"),
    ({"labels": [0, 7]}, ConfigError, "not trained on"),
    ({"labels": [0]}, InputError, "labels do not match"),
])
def test_sample__bad_arguments_raise(tiny_model, kwargs, error, match):
    with pytest.raises(error, match=match):
        im.sample(tiny_model, **{"n": 2, "timesteps": 2, **kwargs})


def test_sample__labels_for_unconditional_model_raise():
    model = im.train_diffusion(_blobs(4, size=8), epochs=1, channels=(8,))
    with pytest.raises(ConfigError, match="unconditional model"):
        im.sample(model, 2, labels=[0, 1], timesteps=2)


# ------------------------------------------------------------------------------ save/load


def test_save_load__round_trip_keeps_weights_config_and_samples(tiny_model, tmp_path):
    path = im.save_diffusion(tiny_model, tmp_path / "m.pt")
    loaded = im.load_diffusion(path)
    assert loaded.config == tiny_model.config and loaded.history == tiny_model.history
    assert loaded.conditional and loaded.image_size == 8
    raw = torch.load(path, weights_only=True)
    assert (raw["format"], raw["version"]) == (im.FORMAT_NAME, im.FORMAT_VERSION)
    np.testing.assert_array_equal(im.sample(loaded, 3, timesteps=2, seed=2),
                                  im.sample(tiny_model, 3, timesteps=2, seed=2))
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary left behind


@pytest.mark.parametrize(("content", "error", "match"), [
    (None, InputFileNotFoundError, "not found"),
    (b"garbage", FormatError, "not a readable model file"),
    ({"format": "other"}, FormatError, "not a diffusion model file"),
    ({"format": im.FORMAT_NAME, "version": 99}, FormatError, "upgrade secured_bio"),
])
def test_load_diffusion__bad_file_raises(tmp_path, content, error, match):
    path = tmp_path / "m.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(error, match=match):
        im.load_diffusion(path)


# ------------------------------------------------------------------------------ metrics


def _naive_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Textbook unbiased MMD^2 (Gretton et al. 2012, eq. 3) with explicit loops."""
    z = np.concatenate([x, y])
    d = [float(np.sum((a - b) ** 2)) for i, a in enumerate(z) for j, b in enumerate(z) if i != j]
    s2 = float(np.median(d))

    def k(a, b):
        return np.exp(-np.sum((a - b) ** 2) / (2 * s2))

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return float(xx + yy - 2 * xy)


def test_image_mmd__matches_textbook_estimator_on_pixels():
    rng = np.random.default_rng(0)
    a, b = rng.random((7, 4, 4), dtype=np.float32), _blobs(5, size=4)
    ref = _naive_mmd2(a.reshape(7, -1).astype(np.float64), b.reshape(5, -1).astype(np.float64))
    assert im.image_mmd(a, b, features="pixels") == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("features", ["cnn", "pixels"])
def test_image_mmd__real_halves_closer_than_real_vs_noise(cohort, features):
    real = im.load_image_slices(cohort.out_dir, size=8, slices=4).images
    order = np.random.default_rng(0).permutation(len(real))
    a, b = real[order[:8]], real[order[8:]]
    noise = np.random.default_rng(1).random(b.shape, dtype=np.float32)
    assert im.image_mmd(a, b, features=features) < im.image_mmd(a, noise, features=features)


def test_image_mmd__bad_input_raises():
    x = _blobs(4, size=8)
    with pytest.raises(InputError, match="cannot be compared"):
        im.image_mmd(x, x[:1])
    with pytest.raises(InputError, match="cannot be compared"):
        im.image_mmd(x, _blobs(4, size=16))
    with pytest.raises(ConfigError, match="did you mean 'pixels'"):
        im.image_features(x, kind="pixel")


def _ssim_ref(a: np.ndarray, b: np.ndarray, win: int = 7, sigma: float = 1.5) -> float:
    """Wang et al. 2004 SSIM, Gaussian window, mean over the valid region (scipy)."""
    g = np.exp(-((np.arange(win) - (win - 1) / 2) ** 2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()

    def f(x):
        return convolve2d(x, w, mode="valid")

    a, b = a.astype(np.float64), b.astype(np.float64)
    ma, mb = f(a), f(b)
    va, vb, cov = f(a * a) - ma**2, f(b * b) - mb**2, f(a * b) - ma * mb
    c1, c2 = 0.01**2, 0.03**2
    s = (2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    return float(s.mean())


def test_ssim_diversity__matches_reference_ssim_on_small_images():
    x = _blobs(3, size=16, seed=2) * 0.8 + np.random.default_rng(0).random((3, 16, 16)) * 0.2
    x = x.astype(np.float32)
    got = im.ssim_diversity(x)
    ref = np.mean([_ssim_ref(x[i], x[j]) for i, j in ((0, 1), (0, 2), (1, 2))])
    assert got["metric"] == "ssim" and got["win_size"] == 7 and got["pairs"] == 3
    assert got["mean"] == pytest.approx(ref, abs=1e-5)


def test_ssim_diversity__large_images_use_ms_ssim_and_identical_score_one():
    x = np.random.default_rng(0).random((1, 176, 176), dtype=np.float32)
    got = im.ssim_diversity(np.concatenate([x, x]))
    assert got["metric"] == "ms-ssim" and got["mean"] == pytest.approx(1.0, abs=1e-5)


def test_ssim_diversity__single_image_raises():
    with pytest.raises(InputError, match="at least two images"):
        im.ssim_diversity(_blobs(1))


def test_nearest_distance__copy_is_zero_and_matches_brute_force():
    ref = _blobs(6, size=8, seed=4)
    gen = np.concatenate([ref[2:3], np.random.default_rng(0).random((2, 8, 8),
                                                                   dtype=np.float32)])
    got = im.nearest_distance(gen, ref)
    brute = [min(float(np.sqrt(np.mean((g.astype(np.float64) - r) ** 2))) for r in ref)
             for g in gen]
    np.testing.assert_allclose(got, brute, rtol=1e-9)
    assert got[0] == 0.0 and got[1] > 0.0


def test_nearest_distance__size_mismatch_raises():
    with pytest.raises(InputError, match="image sizes differ"):
        im.nearest_distance(_blobs(2, size=8), _blobs(2, size=16))


# ------------------------------------------------------------------------------ CLI


@click.group()
def _synth() -> None:
    """Throwaway group standing in for ``secured-bio synth``."""


_synth.add_command(images_cmd)

_TINY = ["--size", "8", "--slices", "2", "--epochs", "2", "--timesteps", "3",
         "--batch-size", "8", "--device", "cpu"]


def test_cli_images__writes_samples_grid_model_and_report(cohort, tmp_path):
    out = tmp_path / "synth"
    result = CliRunner().invoke(_synth, ["images", "--in", str(cohort.out_dir), "--n", "4",
                                         "--out", str(out), "--conditional", *_TINY])
    assert result.exit_code == 0, result.output
    assert "generated 4 images" in result.output
    report = json.loads((out / "synth_images.json").read_text())
    assert (report["format"], report["version"]) == (im.REPORT_FORMAT, im.REPORT_VERSION)
    assert len(report["training"]["seconds_per_epoch"]) == 2
    assert report["data"]["real_images"] == 8 and report["data"]["classes"] == [0, 1]
    m = report["metrics"]
    assert m["mmd2_real_vs_uniform_noise"] > m["mmd2_real_half_vs_half"]
    assert m["diversity_generated"]["metric"] == "ssim"
    assert m["nearest_real_distance"]["generated_min"] >= 0.0
    samples = sorted((out / "samples").iterdir())
    assert [p.name for p in samples] == [f"synth-000{i}.nii.gz" for i in range(1, 5)]
    img = nib.load(samples[0])
    assert img.shape == (8, 8, 1)
    data = np.asarray(img.dataobj)
    assert data.min() >= 0.0 and data.max() <= 1.0
    table = pd.read_csv(out / "samples.tsv", sep="\t")
    assert table["label"].tolist() == [0, 1, 0, 1]
    assert (out / "grid.png").read_bytes()[:4] == b"\x89PNG"
    assert im.load_diffusion(out / report["model"]["path"]).conditional
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cli_images__n_zero_is_a_usage_error(cohort, tmp_path):
    result = CliRunner().invoke(_synth, ["images", "--in", str(cohort.out_dir), "--n", "0",
                                         "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--n" in result.output
    assert not (tmp_path / "o").exists()


def test_synthesize_images__n_zero_raises(cohort, tmp_path):
    with pytest.raises(ConfigError, match="number of images must be positive"):
        im.synthesize_images(cohort.out_dir, tmp_path / "o", n=0)


def test_cli_images__cuda_without_gpu_fails_clearly(cohort, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = CliRunner().invoke(_synth, ["images", "--in", str(cohort.out_dir), "--n", "2",
                                         "--out", str(tmp_path / "o"), "--device", "cuda"])
    assert isinstance(result.exception, ConfigError)
    assert "no GPU" in str(result.exception) or "none is available" in str(result.exception)
    assert not (tmp_path / "o").exists()


def test_cli_images__empty_folder_fails(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(_synth, ["images", "--in", str(tmp_path / "empty"), "--n", "2",
                                         "--out", str(tmp_path / "o"), *_TINY])
    assert isinstance(result.exception, InputFileNotFoundError)
    assert not (tmp_path / "o").exists()


def test_synthesize_images__conditional_without_labels_raises(tmp_path):
    _write_nifti(tmp_path / "a.nii.gz", np.random.default_rng(0).random((8, 8, 3)))
    with pytest.raises(ConfigError, match="needs labels"):
        im.synthesize_images(tmp_path, tmp_path / "o", n=2, conditional=True, device="cpu",
                             size=8, slices=1)


def test_synthesize_images__refuses_unrelated_output_folder(cohort, tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "thesis.docx").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        im.synthesize_images(cohort.out_dir, tmp_path / "o", n=2, device="cpu", size=8)


def test_synthesize_images__crash_leaves_nothing_half_written(cohort, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(im, "save_diffusion", boom)
    with pytest.raises(OSError, match="disk full"):
        im.synthesize_images(cohort.out_dir, tmp_path / "o", n=2, epochs=1, device="cpu",
                             size=8, slices=2, timesteps=2)
    assert list(tmp_path.iterdir()) == []
