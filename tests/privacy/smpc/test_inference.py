"""Encrypted inference over CrypTen: parties as real OS processes.

Each module-scoped fixture runs one SMPC session and several tests read it (on 2 shared cores
a session takes 20-50 s, mostly process start-up and imports, hence the ``slow`` marks).
Tolerance: the decrypted logits must equal plaintext torch on the same weights within 1e-2
(fixed point with 16 fractional bits; measured errors are ~3e-4), and so the probabilities.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from privacy.smpc import _inference_fns as fns

from secured_bio.errors import ConfigError, InputError, ProtocolError
from secured_bio.imaging.models import (
    cnn3d,
    connectivity_classifier,
    predict_logits,
    predict_proba,
    save_model,
)
from secured_bio.privacy.smpc import run_parties
from secured_bio.privacy.smpc.inference import (
    EncryptedInferenceResult,
    _model_record,
    encrypted_predict,
    inference_party,
)

ATOL = 1e-2
N_FEATURES = 12


def _model_and_scans(seed: int) -> tuple[torch.nn.Module, np.ndarray]:
    """A classifier whose logits on the scans span both signs, with magnitudes up to ~10."""
    net = connectivity_classifier(N_FEATURES, hidden=(8,), seed=seed)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3.0)
    x = np.random.default_rng(seed).normal(0.0, 2.0, size=(5, N_FEATURES)).astype(np.float32)
    return net, x


@pytest.fixture(scope="module")
def ttp_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """encrypted_predict from a saved model, with a separate dealer process (deployment)."""
    net, x = _model_and_scans(seed=3)
    path = save_model(net, tmp_path_factory.mktemp("model") / "classifier")
    result = encrypted_predict(path, x, dealer="ttp", timeout_s=60)
    return {"net": net, "x": x, "result": result}


@pytest.fixture(scope="module")
def audited_run() -> dict[str, Any]:
    """Both parties' return values, and what gloo's reduce leaves at the non-root."""
    net, x = _model_and_scans(seed=4)
    outs = run_parties(fns.audited_inference, [{"features": x}, _model_record(net)],
                       dealer="trusted_first_party", timeout_s=60)
    return {"net": net, "x": x, "data_owner": outs[0], "model_owner": outs[1]}


# -- correctness --------------------------------------------------------------------------


@pytest.mark.slow  # shares a ~20-50 s SMPC session (process start-up on 2 cores)
def test_encrypted_predict__equals_plaintext_including_negative_logits(ttp_run) -> None:
    net, x, result = ttp_run["net"], ttp_run["x"], ttp_run["result"]
    plain = predict_logits(net, x)
    assert plain.min() < -1.0 and plain.max() > 1.0  # both signs are exercised
    np.testing.assert_allclose(result.logits, plain, rtol=0, atol=ATOL)
    np.testing.assert_allclose(result.probabilities, predict_proba(net, x), rtol=0, atol=ATOL)


@pytest.mark.slow  # shares a ~20-50 s SMPC session (process start-up on 2 cores)
def test_encrypted_predict__reports_latency_and_both_parties_traffic(ttp_run) -> None:
    result: EncryptedInferenceResult = ttp_run["result"]
    assert result.latency_ms.shape == (len(ttp_run["x"]),)
    assert (result.latency_ms > 0).all()
    assert result.total_s * 1e3 >= result.latency_ms.sum() * 0.99
    summary = result.latency_summary()
    assert summary["p50_ms"] <= summary["p95_ms"]
    assert set(result.bytes_sent) == {0, 1} and min(result.bytes_sent.values()) > 0
    assert (result.dealer, result.precision_bits) == ("ttp", 16)


@pytest.mark.slow  # shares a ~20-50 s SMPC session (process start-up on 2 cores)
def test_inference_party__trusted_first_party_equals_plaintext(audited_run) -> None:
    plain = predict_logits(audited_run["net"], audited_run["x"])
    np.testing.assert_allclose(audited_run["data_owner"]["logits"], plain, rtol=0, atol=ATOL)


# -- reveal set -----------------------------------------------------------------------------


@pytest.mark.slow  # shares a ~20-50 s SMPC session (process start-up on 2 cores)
def test_reveal_set__model_owner_gets_no_prediction(audited_run) -> None:
    owner = audited_run["model_owner"]
    assert owner["role"] == "model_owner"
    assert "logits" not in owner and "latency_ms" not in owner
    # Only counts and timings: no array (and so no prediction) comes back from party 1.
    assert all(isinstance(v, (int, float, str)) for v in owner.values())


@pytest.mark.slow  # shares a ~20-50 s SMPC session (process start-up on 2 cores)
def test_reveal_set__output_opened_to_data_owner_only(audited_run) -> None:
    n = len(audited_run["x"])
    # Party 1 receives nothing while the outputs are opened; party 0 receives party 1's
    # share of each logit (one int64 per scan), and nothing else.
    assert audited_run["model_owner"]["output_bytes_received"] == 0
    assert audited_run["data_owner"]["output_bytes_received"] == n * 8


@pytest.mark.slow  # shares a ~20-50 s SMPC session (process start-up on 2 cores)
def test_reveal_set__sharing_features_sends_nothing_to_model_owner(audited_run) -> None:
    assert audited_run["model_owner"]["input_bytes_received"] == 0


@pytest.mark.slow  # shares a ~20-50 s SMPC session (process start-up on 2 cores)
def test_gloo_reduce__leaves_full_sums_at_the_non_root(audited_run) -> None:
    # Why _open_to_data_owner does not use CrypTen's get_plain_text(dst=0): its
    # torch.distributed.reduce over gloo hands the non-root part of the opened values.
    assert audited_run["model_owner"]["gloo_reduce_full_sums_at_rank"] > 0


# -- errors -----------------------------------------------------------------------------------


def test_encrypted_predict__bad_feature_shape_raises_before_starting() -> None:
    net, x = _model_and_scans(seed=0)
    with pytest.raises(InputError, match=r"features do not fit the model.*expected \(n_scans"):
        encrypted_predict(net, x[:, :-1])


@pytest.mark.parametrize(
    ("features", "match"),
    [(np.zeros((0, N_FEATURES)), "do not fit"), (np.full((1, N_FEATURES), np.inf), "non-finite"),
     (np.array([["a"] * N_FEATURES]), "not numeric")],
)
def test_encrypted_predict__bad_features_raise(features: np.ndarray, match: str) -> None:
    with pytest.raises(InputError, match=match):
        encrypted_predict(_model_and_scans(seed=0)[0], features)


def test_encrypted_predict__no_dealer_refused() -> None:
    net, x = _model_and_scans(seed=0)
    with pytest.raises(ConfigError, match="needs a dealer"):
        encrypted_predict(net, x, dealer="none")


def test_encrypted_predict__cnn3d_not_supported() -> None:
    with pytest.raises(ConfigError, match="does not support architecture 'cnn3d'"):
        encrypted_predict(cnn3d((8, 8, 4), channels=(2,)), np.zeros((1, 1, 8, 8, 4)))


def test_encrypted_predict__missing_model_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="saved model not found"):
        encrypted_predict(tmp_path / "none", np.zeros((1, N_FEATURES)))


def test_inference_party__data_owner_mismatch_stops_both_parties() -> None:
    net, x = _model_and_scans(seed=0)
    with pytest.raises(ProtocolError, match=r"party rank 0 failed.*features do not fit") as info:
        run_parties(inference_party, [{"features": x[:, :3]}, _model_record(net)],
                    dealer="trusted_first_party", timeout_s=60)
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert "party rank 1 also failed" in notes and "do not fit the model" in notes
