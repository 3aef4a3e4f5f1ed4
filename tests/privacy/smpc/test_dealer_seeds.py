"""The TTP dealer's randomness: 256-bit OS keys and a SHAKE-256 stream, not torch's generator.

CrypTen 0.4.1's ``TTPServer`` seeds each party's triple generator from torch's global
Mersenne Twister (fixed by 32 bits, and by ``torch.manual_seed``).  These tests call the
dealer's and the parties' ``_setup_generators`` in this process with ``torch.distributed``
replaced by a loopback, so they run in milliseconds; the multi-process runs in
``test_inference.py`` check that encrypted inference through the patched dealer stays correct.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.distributed as dist

from secured_bio.privacy.smpc import import_crypten
from secured_bio.privacy.smpc._compat import DEALER_KEY_BYTES, DealerStream

WORLD_SIZE = 2


class _Comm:
    """The few calls of CrypTen's communicator that ``_setup_generators`` makes."""

    def __init__(self, rank: int) -> None:
        self.rank = rank

    def get_world_size(self) -> int:
        return WORLD_SIZE

    def get_ttp_rank(self) -> int:
        return WORLD_SIZE

    def get_rank(self) -> int:
        return self.rank


class _Done:
    def wait(self) -> None:
        return None


class _Loopback(dict):
    """What the dealer sends to rank i (``self[i]``); ``rank`` is the process being simulated."""

    rank = WORLD_SIZE


@pytest.fixture()
def loopback(monkeypatch: pytest.MonkeyPatch) -> _Loopback:
    """Replace the point-to-point calls of ``torch.distributed`` and CrypTen's communicator."""
    import_crypten()
    import crypten.communicator as comm

    sent = _Loopback()

    def isend(tensor: torch.Tensor, dst: int, group: Any = None) -> _Done:
        sent[dst] = tensor.clone()
        return _Done()

    def irecv(tensor: torch.Tensor, src: int, group: Any = None) -> _Done:
        tensor.copy_(sent[sent.rank].reshape(tensor.shape))
        return _Done()

    monkeypatch.setattr(dist, "isend", isend)
    monkeypatch.setattr(dist, "irecv", irecv)
    monkeypatch.setattr(dist, "barrier", lambda group=None: None)
    monkeypatch.setattr(comm, "get", lambda: _Comm(sent.rank))
    return sent


def _start_dealer() -> Any:
    from crypten.mpc.provider.ttp_provider import TTPServer

    server = object.__new__(TTPServer)  # without __init__: no serving loop
    server.ttp_group = None
    server.device = "cpu"
    server._setup_generators()
    return server


def _start_client(loopback: _Loopback, rank: int) -> Any:
    from crypten.mpc.provider.ttp_provider import TTPClient

    loopback.rank = rank
    client = object.__new__(TTPClient._TTPClient__TTPClient)  # type: ignore[attr-defined]
    client.ttp_group = None
    client._setup_generators()
    return client


def test_dealer__same_torch_manual_seed_gives_unrelated_triples(loopback) -> None:
    torch.manual_seed(1234)
    first = _start_dealer()
    c_first = first.additive((6, 5), (5, 3), "matmul")
    bits_first = first.binary((64,), (64,))
    torch.manual_seed(1234)
    second = _start_dealer()
    c_second = second.additive((6, 5), (5, 3), "matmul")
    bits_second = second.binary((64,), (64,))
    # Unpatched CrypTen: identical triples (the dealer's seeds come from torch's global RNG).
    assert not torch.equal(c_first, c_second)
    assert not torch.equal(bits_first, bits_second)
    # Unrelated, not merely different: about half of the bits differ.
    differing = torch.bitwise_xor(c_first, c_second)
    n_bits = sum(bin(int(v) & (2**64 - 1)).count("1") for v in differing.flatten())
    assert 0.4 < n_bits / (64 * differing.numel()) < 0.6


def test_dealer__sends_each_party_its_own_256_bit_key(loopback) -> None:
    torch.manual_seed(0)
    _start_dealer()
    assert sorted(loopback) == list(range(WORLD_SIZE))
    for words in loopback.values():
        assert words.dtype == torch.int64
        assert words.numel() * 8 == DEALER_KEY_BYTES >= 16  # >= 128 bits; CrypTen sent one word
    assert not torch.equal(loopback[0], loopback[1])


def test_dealer__does_not_draw_from_torch_global_generator(loopback) -> None:
    torch.manual_seed(7)
    before = torch.get_rng_state()
    _start_dealer()
    assert torch.equal(torch.get_rng_state(), before)


def test_dealer__generators_are_not_mersenne_twisters(loopback) -> None:
    server = _start_dealer()
    client = _start_client(loopback, 0)
    assert all(isinstance(g, DealerStream) for g in server.generators)
    assert isinstance(client.generator, DealerStream)
    assert "key" not in repr(client.generator).lower()


def test_dealer__triples_reconstruct_across_parties_and_dealer(loopback) -> None:
    """The parties' streams match the dealer's: a*b = c, a&b = c (XOR), rA = rB."""
    from crypten.mpc.provider import ttp_provider as ttp

    server = _start_dealer()
    gens = [_start_client(loopback, r).generator for r in range(WORLD_SIZE)]
    size0, size1 = (4, 5), (5, 3)

    # generate_additive_triple: each party draws a_i, b_i; party 1 also c_1; the dealer sends c_0
    a, b = [], []
    for g in gens:
        a.append(ttp.generate_random_ring_element(size0, generator=g, device=None))
        b.append(ttp.generate_random_ring_element(size1, generator=g, device=None))
    c0 = server.additive(size0, size1, "matmul")
    c1 = ttp.generate_random_ring_element(c0.size(), generator=gens[1], device=None)
    assert torch.equal(c0 + c1, (a[0] + a[1]).matmul(b[0] + b[1]))

    # generate_binary_triple
    a, b = [], []
    for g in gens:
        a.append(ttp.generate_kbit_random_tensor((9,), generator=g, device=None))
        b.append(ttp.generate_kbit_random_tensor((9,), generator=g, device=None))
    c0 = server.binary((9,), (9,))
    c1 = ttp.generate_kbit_random_tensor((9,), generator=gens[1], device=None)
    assert torch.equal(c0 ^ c1, (a[0] ^ a[1]) & (b[0] ^ b[1]))

    # B2A_rng: random bits shared in XOR and as ring elements
    r_b = [ttp.generate_kbit_random_tensor((50,), bitlength=1, generator=g, device=None)
           for g in gens]
    r_a0 = server.B2A((50,))
    r_a1 = ttp.generate_random_ring_element((50,), generator=gens[1], device=None)
    assert set((r_b[0] ^ r_b[1]).tolist()) <= {0, 1}
    assert torch.equal(r_a0 + r_a1, r_b[0] ^ r_b[1])


def test_torch_manual_seed__cpu_mersenne_twister_keeps_only_32_bits() -> None:
    """The measured fact behind the patch (torch 2.13, CPU): seeds equal mod 2**32 collide."""
    def draws(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randint(-(2**63), 2**63 - 1, (8,), generator=g)

    assert torch.equal(draws(5), draws(5 + 2**32))
    assert torch.equal(draws(5), draws(5 + 2**40))
    assert torch.Generator().manual_seed(5 + 2**40).initial_seed() == 5 + 2**40  # kept, unused
    assert not torch.equal(draws(5), draws(6))


def test_dealer_stream__kbit_draws_stay_in_range() -> None:
    s = DealerStream(bytes(range(32)))
    for bits in (1, 8, 63):
        t = s.kbit_elements((1000,), bits)
        assert int(t.min()) >= 0 and int(t.max()) < 2**bits
    assert set(s.kbit_elements((1000,), 1).tolist()) == {0, 1}
    with pytest.raises(ValueError, match="32 bytes"):
        DealerStream(b"\x00" * 8)
