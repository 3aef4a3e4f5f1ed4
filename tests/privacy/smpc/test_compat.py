"""The CrypTen compatibility layer: import on torch 2.13, legacy ONNX export, exact decode."""

from __future__ import annotations

import sys

import pytest
import torch
from privacy.smpc import _party_fns as fns

from secured_bio.privacy.smpc import import_crypten, run_parties
from secured_bio.privacy.smpc._compat import fixed_point_decode, original_fixed_point_decode

SCALE = 2**16


def test_import_crypten__aliases_the_moved_onnx_module_and_is_idempotent():
    crypten = import_crypten()
    assert import_crypten() is crypten
    moved = sys.modules["torch.onnx._internal.torchscript_exporter.registration"]
    assert sys.modules["torch.onnx._internal.registration"] is moved
    assert crypten.__version__ == "0.4.1"


def test_decode__original_crypten_decode_is_one_too_low_on_some_negatives():
    crypten = import_crypten()
    encoder = crypten.encoder.FixedPointEncoder()
    decode = original_fixed_point_decode()
    # -100.99990845 = -101 + 6/2**16: floor(x / (scale - 1)) gives -102 instead of -101.
    x = torch.tensor([-101 * SCALE + 6])
    assert decode(encoder, x).item() == pytest.approx(-101.9999, abs=1e-4)
    # On N(0, 50) values in [-200, 200] some negatives are off by exactly 1.0, no positives.
    g = torch.Generator().manual_seed(0)
    t = torch.randint(-200 * SCALE, 200 * SCALE, (200_000,), generator=g)
    err = decode(encoder, t).double() - t.double() / SCALE
    wrong = err.abs() > 0.5
    assert wrong.sum() > 10
    assert (t[wrong] < 0).all()
    assert torch.allclose(err[wrong], torch.tensor(-1.0, dtype=torch.float64), atol=1e-4)


def test_decode__patched_decode_is_exact_for_negative_and_positive_values():
    crypten = import_crypten()
    encoder = crypten.encoder.FixedPointEncoder()
    g = torch.Generator().manual_seed(1)
    t = torch.randint(-200 * SCALE, 200 * SCALE, (200_000,), generator=g)
    t[:4] = torch.tensor([-101 * SCALE + 6, -SCALE, 0, SCALE - 1])
    exact = (t.double() / SCALE).float()  # correctly rounded reference
    assert torch.equal(encoder.decode(t), exact)  # the patch is installed on the class
    assert torch.equal(fixed_point_decode(t, SCALE), exact)
    # CrypTen's integer branch (precision 0) is left as it was.
    assert torch.equal(crypten.encoder.FixedPointEncoder(precision_bits=0).decode(t), t)


def test_decode__rejects_float_tensors():
    crypten = import_crypten()
    with pytest.raises(TypeError, match="LongTensor"):
        crypten.encoder.FixedPointEncoder().decode(torch.zeros(2))


def test_from_pytorch__converts_a_linear_relu_model_with_the_legacy_exporter():
    crypten = import_crypten()
    model = fns._tiny_model()
    # Warnings are errors in this suite: the conversion must not emit any.
    cmodel = crypten.nn.from_pytorch(model, torch.empty(1, 4))
    assert {type(m).__name__ for m in cmodel.modules()} >= {"Gemm", "ReLU"}
    x = torch.randn(5, 4)
    assert torch.allclose(cmodel(x), model(x), atol=1e-6)


def test_torch_generator__keeps_only_32_bits_of_a_seed():
    # Why protocols.py does not mask with CrypTen's PRZS: CrypTen seeds torch.Generator with
    # 64 random bits, but torch keeps 32 of them, so a mask can be brute-forced.
    def draw(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randint(-(2**63), 2**63 - 1, (4,), generator=g)

    assert torch.equal(draw(5), draw(2**40 + 5))
    assert torch.equal(draw(5), draw(-(2**63) + 5))
    assert not torch.equal(draw(5), draw(6))


@pytest.fixture(scope="module")
def two_party_tfp():
    return run_parties(fns.crypten_party, [{}, {}], dealer="trusted_first_party", timeout_s=60)


def test_crypten_arithmetic__matches_plaintext_on_negative_values(two_party_tfp):
    for out in two_party_tfp:
        assert out["provider"] == "TFP"
        assert out["n_negative"] > 5000
        for key in ("err_share", "err_add", "err_sum", "err_matmul"):
            assert out[key] < 1e-3, key


def test_crypten_arithmetic__unpatched_decode_reproduces_the_bug_in_a_real_run(two_party_tfp):
    out = two_party_tfp[0]
    assert out["original_decode_n_wrong"] > 0
    assert out["original_decode_max_err"] == pytest.approx(1.0, abs=1e-3)
    assert out["err_share_raw"] < 2**-15  # the same revealed integers, patched decode


def test_from_pytorch__encrypted_inference_equals_plaintext(two_party_tfp):
    for out in two_party_tfp:
        assert out["err_inference"] < 1e-2
