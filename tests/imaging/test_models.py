"""Tests of secured_bio.imaging.models: shapes, training, prediction, save/load, latency."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from secured_bio.errors import ConfigError, FormatError, InputError, InputFileNotFoundError
from secured_bio.imaging import models as m


def _separable(n: int, n_features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded features whose class shifts a few edges (a planted, noisy signal)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = rng.normal(size=(n, n_features))
    x[:, :3] += 1.5 * (2 * y[:, None] - 1)
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def trained() -> tuple[torch.nn.Module, np.ndarray, np.ndarray]:
    x, y = _separable(300, 15, seed=1)
    net = m.connectivity_classifier(15, hidden=(16,), seed=0)
    m.fit(net, x[:200], y[:200], epochs=30, lr=1e-2, batch_size=32, seed=0)
    return net, x[200:], y[200:]


# -- shapes and architectures --------------------------------------------------------------


def test_connectivity_classifier__one_logit_per_example() -> None:
    net = m.connectivity_classifier(10, hidden=(8, 4), dropout=0.2)
    assert net(torch.zeros(7, 10)).shape == (7, 1)
    assert m.architecture(net) == {
        "name": "connectivity_classifier",
        "params": {"n_features": 10, "hidden": [8, 4], "dropout": 0.2},
    }


def test_connectivity_classifier__uses_only_crypten_convertible_layers() -> None:
    kinds = {type(mod).__name__ for mod in m.connectivity_classifier(4, hidden=(3,)).modules()}
    assert "PReLU" not in kinds and "ReLU" in kinds


def test_connectivity_classifier__seed_reproducible_and_global_rng_untouched() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = m.connectivity_classifier(5, seed=3)
    after = torch.rand(1)
    b = m.connectivity_classifier(5, seed=3)
    assert torch.equal(after, expected_next)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_features": 0}, "positive integer"),
        ({"n_features": 3, "hidden": (0,)}, r"hidden\[0\]"),
        ({"n_features": 3, "dropout": 1.0}, "dropout"),
    ],
)
def test_connectivity_classifier__bad_config_raises(kwargs: dict, match: str) -> None:
    n = kwargs.pop("n_features")
    with pytest.raises(ConfigError, match=match):
        m.connectivity_classifier(n, **kwargs)


def test_cnn3d__forward_backward_on_tiny_batch() -> None:
    net = m.cnn3d((8, 8, 4), channels=(2, 4), seed=0)
    x = torch.randn(3, 1, 8, 8, 4)
    out = net(x)
    assert out.shape == (3, 1)
    out.sum().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads if g is not None)


def test_cnn3d__learns_planted_blob() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=48)
    x = rng.normal(size=(48, 1, 8, 8, 4)).astype(np.float32)
    x[:, 0, 2:5, 2:5, 1:3] += 1.5 * y[:, None, None, None]
    net = m.cnn3d((8, 8, 4), channels=(4,), seed=0)
    losses = m.fit(net, x, y, epochs=15, lr=1e-2, batch_size=16, seed=0)
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"in_shape": (8, 8)}, "3D input shape"),
        ({"in_shape": (8, 8, 4), "channels": (2, 4), "strides": (2,)}, "one stride per stage"),
        ({"in_shape": (8, 0, 4)}, r"in_shape\[1\]"),
    ],
)
def test_cnn3d__bad_config_raises(kwargs: dict, match: str) -> None:
    shape = kwargs.pop("in_shape")
    with pytest.raises(ConfigError, match=match):
        m.cnn3d(shape, **kwargs)


def test_build_model__unknown_name_suggests() -> None:
    with pytest.raises(ConfigError, match="did you mean 'cnn3d'"):
        m.build_model("cnn_3d", {})


def test_build_model__bad_params_raises() -> None:
    with pytest.raises(ConfigError, match="do not fit architecture"):
        m.build_model("connectivity_classifier", {"hidden": [3]})


def test_architecture__foreign_model_raises() -> None:
    with pytest.raises(InputError, match="no secured_bio architecture record"):
        m.architecture(torch.nn.Linear(2, 1))


# -- training and prediction ----------------------------------------------------------------


def test_fit__heldout_auroc_above_0_9(trained) -> None:
    net, x_test, y_test = trained
    assert roc_auc_score(y_test, m.predict_proba(net, x_test)) > 0.9


def test_predict_proba__is_sigmoid_of_plain_torch_forward(trained) -> None:
    net, x_test, _ = trained
    net.eval()
    with torch.no_grad():
        ref = torch.sigmoid(net(torch.from_numpy(x_test))).reshape(-1).numpy()
    np.testing.assert_allclose(m.predict_proba(net, x_test), ref, rtol=1e-6, atol=1e-7)


def test_predict_proba__restores_training_mode() -> None:
    net = m.connectivity_classifier(3)
    net.train()
    m.predict_proba(net, np.zeros((1, 3)))
    assert net.training


def test_fit__same_seed_same_losses() -> None:
    x, y = _separable(40, 5, seed=2)
    a = m.fit(m.connectivity_classifier(5, seed=0), x, y, epochs=3, seed=4)
    b = m.fit(m.connectivity_classifier(5, seed=0), x, y, epochs=3, seed=4)
    assert a == b


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.zeros((4, 6)), r"wrong shape.*expected \(n, 5\).*got \(4, 6\)"),
        (np.zeros(5), "wrong shape"),
        (np.zeros((0, 5)), "no examples"),
        (np.array([["a"] * 5]), "not numeric"),
        (np.where(np.eye(5) > 0, np.nan, 0.0), "non-finite"),
    ],
)
def test_predict_proba__bad_input_raises(x: np.ndarray, match: str) -> None:
    with pytest.raises(InputError, match=match):
        m.predict_proba(m.connectivity_classifier(5), x)


def test_predict_proba__error_does_not_echo_values() -> None:
    x = np.full((2, 5), 1234.5678)
    x[0, 0] = np.nan
    with pytest.raises(InputError) as info:
        m.predict_proba(m.connectivity_classifier(5), x)
    assert "1234" not in str(info.value)


@pytest.mark.parametrize(
    ("y", "match"),
    [(np.zeros(3), "labels have the wrong shape"), (np.full(4, 2), "labels must be binary")],
)
def test_fit__bad_labels_raise(y: np.ndarray, match: str) -> None:
    with pytest.raises(InputError, match=match):
        m.fit(m.connectivity_classifier(2), np.zeros((4, 2)), y, epochs=1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"epochs": 0}, "epochs"), ({"batch_size": 0}, "batch_size"), ({"lr": 0.0}, "lr")],
)
def test_fit__bad_options_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        m.fit(m.connectivity_classifier(2), np.zeros((4, 2)), np.array([0, 1, 0, 1]), **kwargs)


def test_cnn3d__input_shape_checked() -> None:
    with pytest.raises(InputError, match=r"expected \(n, 1, 8, 8, 4\)"):
        m.predict_proba(m.cnn3d((8, 8, 4), channels=(2,)), np.zeros((2, 8, 8, 4)))


# -- save / load ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["connectivity_classifier", "cnn3d"])
def test_save_load__round_trip_identical_outputs(tmp_path: Path, kind: str) -> None:
    if kind == "cnn3d":
        net = m.cnn3d((8, 8, 4), channels=(2, 4), seed=1)
        x = np.random.default_rng(0).normal(size=(3, 1, 8, 8, 4))
    else:
        net = m.connectivity_classifier(6, hidden=(5, 3), seed=1)
        x = np.random.default_rng(0).normal(size=(4, 6))
    out = m.save_model(net, tmp_path / "model", metadata={"trained_on": "demo"})
    loaded = m.load_model(out)
    assert m.architecture(loaded) == m.architecture(net)
    assert not loaded.training
    np.testing.assert_array_equal(m.predict_logits(loaded, x), m.predict_logits(net, x))
    header = m.read_model_header(out)
    assert (header["format"], header["format_version"]) == ("secured_bio.model", 1)
    assert header["metadata"] == {"trained_on": "demo"}


def test_save_model__leaves_no_temporary_files(tmp_path: Path) -> None:
    m.save_model(m.connectivity_classifier(2), tmp_path / "model")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_save_model__unserialisable_metadata_raises(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not JSON-serialisable"):
        m.save_model(m.connectivity_classifier(2), tmp_path / "m", metadata={"x": object()})
    assert not (tmp_path / "m").exists()


def _rewrite_header(path: Path, **changes: object) -> None:
    header = json.loads((path / "model.json").read_text())
    header.update(changes)
    (path / "model.json").write_text(json.dumps(header))


def test_load_model__unknown_version_refused(tmp_path: Path) -> None:
    out = m.save_model(m.connectivity_classifier(2), tmp_path / "m")
    _rewrite_header(out, format_version=2)
    with pytest.raises(FormatError, match=r"unsupported model format version.*upgrade"):
        m.load_model(out)


def test_load_model__other_format_refused(tmp_path: Path) -> None:
    out = m.save_model(m.connectivity_classifier(2), tmp_path / "m")
    _rewrite_header(out, format="monai.bundle")
    with pytest.raises(FormatError, match="not a secured_bio model"):
        m.load_model(out)


def test_load_model__invalid_json_refused(tmp_path: Path) -> None:
    out = m.save_model(m.connectivity_classifier(2), tmp_path / "m")
    (out / "model.json").write_text("{")
    with pytest.raises(FormatError, match="not valid JSON"):
        m.load_model(out)


def test_load_model__missing_architecture_refused(tmp_path: Path) -> None:
    out = m.save_model(m.connectivity_classifier(2), tmp_path / "m")
    _rewrite_header(out, architecture=None)
    with pytest.raises(FormatError, match="no architecture record"):
        m.load_model(out)


def test_load_model__tampered_weights_refused(tmp_path: Path) -> None:
    out = m.save_model(m.connectivity_classifier(2), tmp_path / "m")
    other = m.save_model(m.connectivity_classifier(2, hidden=(7,)), tmp_path / "other")
    (out / "model.pt").write_bytes((other / "model.pt").read_bytes())
    with pytest.raises(FormatError, match="checksum"):
        m.load_model(out)


def test_load_model__weights_not_fitting_architecture_refused(tmp_path: Path) -> None:
    out = m.save_model(m.connectivity_classifier(2), tmp_path / "m")
    arch = {"name": "connectivity_classifier", "params": {"n_features": 3, "hidden": [32],
                                                           "dropout": 0.1}}
    _rewrite_header(out, architecture=arch)
    with pytest.raises(FormatError, match="do not fit the architecture"):
        m.load_model(out)


def test_load_model__unbuildable_architecture_refused(tmp_path: Path) -> None:
    out = m.save_model(m.connectivity_classifier(2), tmp_path / "m")
    _rewrite_header(out, architecture={"name": "vit", "params": {}})
    with pytest.raises(FormatError, match="cannot build"):
        m.load_model(out)


def test_load_model__missing_files_raise(tmp_path: Path) -> None:
    with pytest.raises(InputFileNotFoundError, match="saved model not found"):
        m.load_model(tmp_path / "nothing")
    out = m.save_model(m.connectivity_classifier(2), tmp_path / "m")
    (out / "model.pt").unlink()
    with pytest.raises(InputFileNotFoundError, match="weights file is missing"):
        m.load_model(out)


# -- latency ------------------------------------------------------------------------------


def test_inference_latency__reports_ordered_percentiles() -> None:
    lat = m.inference_latency(m.connectivity_classifier(4), np.zeros((3, 4)), repeats=20)
    assert 0 < lat["min_ms"] <= lat["p50_ms"] <= lat["p95_ms"] <= lat["max_ms"]
    assert lat["repeats"] == 20


def test_inference_latency__bad_repeats_raises() -> None:
    with pytest.raises(ConfigError, match="repeats"):
        m.inference_latency(m.connectivity_classifier(4), np.zeros((1, 4)), repeats=0)
