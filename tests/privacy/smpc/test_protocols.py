"""Secure aggregation across three real party processes, and what leaves each site."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from privacy.smpc import _leak_check as leak
from privacy.smpc import _party_fns as fns
from scipy import stats as scipy_stats

from secured_bio.errors import ProtocolError
from secured_bio.privacy.smpc import ProtocolStats, measure, record_messages, run_parties
from secured_bio.privacy.smpc import secure_sum as secure_sum_fn
from secured_bio.privacy.smpc.protocols import (
    _OUT_OF_RANGE,
    _apply_masks,
    _decode_fixed,
    _encode,
    _mask,
)

N_PARTIES = 3
P = 16


@pytest.fixture(scope="module")
def three():
    return run_parties(fns.protocols_party, [{}] * N_PARTIES, timeout_s=60)


def _encoded_inputs(rank: int) -> np.ndarray:
    """What party ``rank`` contributes to secure_sum_many, as the protocol encodes it."""
    x = fns.inputs(rank)
    return np.concatenate([  # keys in sorted order: beta, counts, flags
        np.rint(x["beta"] * 2.0**P).astype(np.int64), x["counts"], x["flags"].astype(np.int64)
    ])


# -- results ----------------------------------------------------------------------------------


def test_secure_sum_many__equals_the_plaintext_sums(three):
    inputs = [fns.inputs(r) for r in range(N_PARTIES)]
    for out in three:
        many = out["many"]
        assert list(many) == ["counts", "beta", "flags"]  # the caller's key order
        np.testing.assert_array_equal(many["counts"], sum(x["counts"] for x in inputs))
        assert many["counts"].dtype == np.int64
        np.testing.assert_array_equal(many["flags"], sum(x["flags"].astype(int) for x in inputs))
        np.testing.assert_allclose(many["beta"], sum(x["beta"] for x in inputs), rtol=0,
                                   atol=N_PARTIES * 2.0 ** -(P + 1))


def test_secure_sum__floats_with_negatives_and_large_magnitudes(three):
    plain = sum(out["float_in"] for out in three)
    assert (plain < 0).mean() > 0.3 and np.abs(plain).max() > 1e10
    for out in three:
        got = out["float_sum"]
        assert got.shape == plain.shape and got.dtype == np.float64
        # fixed-point rounding of each party's value plus float64 rounding of large sums
        tol = N_PARTIES * 2.0 ** -(P + 1) + 4 * np.finfo(float).eps * np.abs(plain)
        assert (np.abs(got - plain) <= tol).all()


def test_secure_sum_int__is_exact_up_to_the_int64_bound(three):
    exact = [sum(int(out["int_in"][i]) for out in three) for i in range(300)]
    assert max(map(abs, exact)) > 2**62
    for out in three:
        assert out["int_sum"].dtype == np.int64
        assert out["int_sum"].tolist() == exact


def test_secure_sum__reveal_to_one_party_only(three):
    plain = sum(out["float_in"][:3] for out in three)
    assert three[0]["to_two"] is None and three[1]["to_two"] is None
    np.testing.assert_allclose(three[2]["to_two"], plain, rtol=1e-15, atol=1e-4)


# -- errors: every party raises the same error at the same call -------------------------------


@pytest.mark.parametrize(
    ("key", "kind", "match"),
    [
        ("err_range", "ConfigError", r"outside the range .*\[party rank 1, secure_sum\]"),
        ("err_nan", "InputError", r"NaN or infinite values \[party rank 2"),
        ("err_shape", "ProtocolError", r"different keys, shapes"),
        ("err_float_for_int", "InputError", r"integer array is needed \[party rank 0"),
        ("err_mul", "ProtocolError", r"no dealer"),
        ("err_reveal_to", "ConfigError", r"invalid reveal set"),
        ("err_precision", "ConfigError", r"invalid number of fractional bits"),
    ],
)
def test_secure_sum__bad_input_raises_on_every_party(three, key, kind, match):
    import re

    for out in three:
        got_kind, message = out[key]
        assert got_kind == kind
        assert re.search(match, message)
        assert "1e+14" not in message and "100000000000000" not in message


def test_secure_sum__session_goes_on_after_errors(three):
    for out in three:
        assert out["after_errors"].tolist() == [0 + 1 + 2]


def test_secure_sum__outside_a_party_raises():
    with pytest.raises(ProtocolError, match="not inside an SMPC party"):
        secure_sum_fn(np.zeros(2))


# -- what leaves a site -------------------------------------------------------------------------


def _candidate_encodings(rank: int) -> list[np.ndarray]:
    """Ways a careless protocol could put party ``rank``'s input on the wire."""
    x = fns.inputs(rank)
    e = _encoded_inputs(rank)
    n = len(x["beta"])
    raw = e.copy()
    raw[:n] = x["beta"].view(np.int64)  # float64 bit patterns
    f32 = e.copy()
    f32[:n] = x["beta"].astype(np.float32).view(np.int32)
    cands = [raw, f32] + [k * e for k in (1, -1, 2, -2, 3, 2**16)]
    for p in (0, 8, 24, 32):
        c = e.copy()
        c[:n] = np.rint(x["beta"] * 2.0**p).astype(np.int64)
        cands.append(c)
    return cands


def _assert_uniform_64bit(words: np.ndarray) -> None:
    """Each bit is 1 half of the time; the top byte is uniform (chi-square)."""
    u = words.view(np.uint64)
    bits = (u[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
    freq = bits.mean(axis=0)
    sigma = np.sqrt(0.25 / len(u))
    assert np.abs(freq - 0.5).max() < 6 * sigma, freq
    top = np.bincount((u >> np.uint64(56)).astype(np.int64), minlength=256)
    assert scipy_stats.chisquare(top).pvalue > 1e-6


def test_record_messages__no_plaintext_input_leaves_a_site(three):
    total = len(_encoded_inputs(0))
    for out in three:
        rank = out["rank"]
        sent = [m for m in out["log"] if m[2] > 0]
        sizes = sorted(m[4].size for m in sent)
        # key agreement (32 words) and header (5 words) to each of the two others, then the
        # masked vector to each: nothing else leaves the site.
        assert sizes == [5, 5, 32, 32, total, total]
        for op, peer, *_ in sent:
            assert op == "isend" and peer != rank
        for _, _, _, _, payload in sent:
            if payload.size != total:
                continue
            for cand in _candidate_encodings(rank):
                assert np.mean(payload == cand) < 0.01
            _assert_uniform_64bit(payload)
        # small messages: public DH keys and a header of protocol metadata only
        header = next(m[4] for m in sent if m[4].size == 5)
        assert header[1] == out["seq_many"] and header[2] == 0  # call number, status OK
        # ...and each message on its own: a header, or uniform words (keys, masked data).
        report = leak.check_sent([m[4] for m in sent], known=_candidate_encodings(rank))
        assert not report.problems, report.problems
        assert sorted(report.kinds) == ["data", "data", "header", "header", "key", "key"]


def test_leak_check__flags_one_unmasked_vector_that_the_pooled_check_misses(three):
    # Party 1 sent one 16-word vector unmasked after a 4,008-word masked one (see
    # _party_fns.protocols_party): under 3 % of its words are small, so the pooled check
    # passes; checked message by message, exactly the two unmasked copies are flagged.
    for out in three:
        sent = out["log_leak"]
        report = leak.check_sent(sent, known=[fns.inputs(out["rank"])["counts"][:fns.LEAK_SIZE]])
        assert report.count("header") == 4 and report.count("data") == 4
        if out["rank"] != 1:
            assert not report.problems, report.problems
            continue
        assert leak.pooled_check_passes(sent)
        assert len(report.problems) == 2, report.problems
        # the second call's two data messages (headers first, then data, per call)
        assert [p.split(":")[0] for p in report.problems] == ["message 6", "message 7"]
        assert all(f"{fns.LEAK_SIZE}-word data message is not uniform" in p
                   for p in report.problems)
        assert not leak.check_sent(sent[:4]).problems  # the masked call alone passes


def _uniform(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(-(2**63), 2**63 - 1, size=n, dtype=np.int64, endpoint=True)


def test_leak_check__passes_uniform_words_headers_and_keys_flags_plaintext_per_message():
    rng = np.random.default_rng(3)
    masked = [_uniform(rng, n) for n in (1, 2, 3, 5, 32, 1000, 100_000)]
    header = np.array([leak._MAGIC, 7, 0, -1, -(2**60)], dtype=np.int64)
    key = np.frombuffer(pow(2, 12345, leak._P).to_bytes(256, "big"), dtype=np.int64)
    report = leak.check_sent([*masked, header, key, masked[-1].view(np.uint8)])
    assert not report.problems, report.problems
    assert report.kinds == ["data"] * 7 + ["header", "key", "data"]

    bad = {
        "one zero word": np.zeros(1, np.int64),
        "a count": np.array([70_000]),
        "3 fixed-point values (46 bits)": np.rint(np.ldexp([0.3, -1.2, 2.0], 46)).astype(np.int64),
        "float64 bit patterns": rng.normal(size=200).view(np.int64),
        "small words hidden in 10**5 masked ones": np.concatenate(
            [_uniform(rng, 100_000), np.arange(8)]),
        "int32 genotypes": rng.integers(0, 3, size=64).astype(np.int32),
        "a header with a bad status": np.array([leak._MAGIC, 7, 9, 0, 1], dtype=np.int64),
    }
    for what, payload in bad.items():
        kind, problem = leak.check_message(payload)
        assert problem, what
    # one masked-looking word that equals the plaintext input: caught by the known check
    secret = _uniform(rng, 1)
    assert "equals a plaintext input" in leak.check_message(secret, known=[secret])[1]
    # the old pooled check: a small unmasked vector among many masked ones goes through
    sent = [*masked[-2:], np.arange(40)]
    assert leak.pooled_check_passes(sent) and len(leak.check_sent(sent).problems) == 1



def test_record_messages__received_shares_stay_masked_for_a_curious_party(three):
    # Party 0 strips the mask it shares with each sender; what is left is still uniform and
    # unrelated to the sender's input, because of the sender's key with the third party.
    total = len(_encoded_inputs(0))
    me = three[0]
    seq = me["seq_many"]
    received = {m[1]: m[4] for m in me["log"] if m[3] > 0 and m[4].size == total}
    assert set(received) == {1, 2}
    for peer, y in received.items():
        mask = _mask(me["pairwise_keys"][peer], seq, total)
        stripped = (y.view(np.uint64) + mask).view(np.int64)  # the sender subtracted it
        _assert_uniform_64bit(stripped)
        assert np.mean(stripped == _encoded_inputs(peer)) < 0.01
    # ...and all party 0 holds adds up to the revealed sum, nothing more.
    own = next(m[4] for m in me["log"] if m[2] > 0 and m[4].size == total)
    acc = own.view(np.uint64) + received[1].view(np.uint64) + received[2].view(np.uint64)
    np.testing.assert_array_equal(acc.view(np.int64), sum(map(_encoded_inputs, range(3))))


def test_record_messages__reveal_to_one_party_sends_data_to_it_only(three):
    for out in three:
        rank = out["rank"]
        data_sent = [m for m in out["log_dst"] if m[2] > 40]
        data_received = [m for m in out["log_dst"] if m[3] > 40]
        if rank == 2:
            assert not data_sent and {m[1] for m in data_received} == {0, 1}
        else:
            assert [(m[0], m[1]) for m in data_sent] == [("isend", 2)]
            assert not data_received  # headers (40 bytes) only


def test_measure__counts_bytes_and_rounds_of_a_secure_sum(three):
    for out in three:
        stats = out["stats"]
        # header and 1000 masked float64 words to each of the two other parties
        assert stats["bytes_sent"] == stats["bytes_received"] == 2 * (40 + 8000)
        assert stats["messages_sent"] == 4 and stats["rounds"] == 2
        assert stats["seconds"] > 0


def test_measure__outside_a_party_counts_nothing():
    with measure() as stats, record_messages() as log:
        pass
    assert stats == ProtocolStats(seconds=stats.seconds)
    assert log.messages == []


# -- properties of the arithmetic (no processes) ------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(arrays(np.int64, 7, elements=st.integers(-(2**62), 2**62)), min_size=2,
                    max_size=5),
    seed=st.binary(min_size=32, max_size=32),
    seq=st.integers(1, 2**40),
)
def test_apply_masks__masked_vectors_add_up_to_the_secret_sum(values, seed, seq):
    n = len(values)
    keys = {(i, j): bytes(a ^ b for a, b in zip(seed, bytes([i, j]) * 16, strict=True))
            for i in range(n) for j in range(i + 1, n)}
    masked = [
        _apply_masks(values[me], me, {p: keys[min(me, p), max(me, p)] for p in range(n)
                                      if p != me}, seq)
        for me in range(n)
    ]
    total = np.zeros(7, dtype=np.uint64)
    for y in masked:
        total += y.view(np.uint64)
    expected = np.zeros(7, dtype=np.uint64)
    for v in values:
        expected += v.view(np.uint64)
    np.testing.assert_array_equal(total, expected)
    assert not any(np.array_equal(y, v) for y, v in zip(masked, values, strict=True))


@settings(max_examples=100, deadline=None)
@given(
    x=arrays(np.float64, 5, elements=st.floats(-1e9, 1e9, allow_nan=False)),
    bits=st.integers(0, 40),
)
def test_fixed_point__decode_of_encode_is_within_half_a_unit(x, bits):
    seg = _encode("x", x, "fixed", bits, 3)
    if np.abs(x).max() > 2.0 ** (62 - bits) / 3:
        assert seg.status == _OUT_OF_RANGE and seg.values is None
        return
    back = _decode_fixed(seg.values, bits)
    assert np.all(np.abs(back - x) <= 2.0 ** -(bits + 1) + 2 * np.finfo(float).eps * np.abs(x))
