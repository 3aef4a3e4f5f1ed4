"""Secure sum of small integer vectors by pairwise masks, relayed by an untrusted aggregator.

Each party ``i`` holds an X25519 key pair and the public keys of the others (a roster the
aggregator hands out).  For a query id ``q`` and ``n`` slots, parties ``i`` and ``j`` derive
the same key ``k_ij = HKDF-SHA256(X25519(sk_i, pk_j), info=CONTEXT || sorted names)`` and the
same mask vector ``m_ij[s] = HMAC-SHA256(k_ij, q || s)[:4] mod 2^32``.  Party ``i`` sends

    ``y_i = x_i + sum_{j > i} m_ij - sum_{j < i} m_ij   (mod 2^32)``

(parties ordered by name), so the masks cancel in ``sum_i y_i = sum_i x_i (mod 2^32)`` and
the aggregator reads the total; every single ``y_i`` (indeed every proper subset of the
answers) is uniformly distributed to it.  This is the no-dropout core of Bonawitz et al.,
"Practical Secure Aggregation for Privacy-Preserving Machine Learning" (CCS 2017).

Threat model and reveal set
---------------------------
- Honest-but-curious aggregator, non-colluding parties.  The aggregator learns the total of
  each slot (mod 2^32) and which parties answered; nothing of any party's own vector.
- A party learns nothing from the protocol (it sends, it receives nothing but the query).
- Collusion: the aggregator and all parties but two together learn the sum of those two; the
  aggregator with all parties but one learns the last one's vector (as from any sum).
  With two parties, each one learns the other's vector from the total it is told.
- No dropout recovery: a missing answer leaves the other answers masked; the caller must
  fail the query (never publish a partial sum: it would be random).
- The aggregator hands out the roster; a malicious aggregator could give a party fake keys
  (then it learns that party's vector).  The roster's keys must therefore be pinned
  out-of-band or signed (the hub registers each site's key under the site's token).
- The query id must be fresh per query: answers to two queries under one id would reveal
  their difference to the aggregator.  Values must be smaller than 2^32 in total.

Examples
--------
>>> keys = {n: generate_keypair() for n in ("a", "b", "c")}
>>> roster = {n: pub for n, (_sk, pub) in keys.items()}
>>> xs = {"a": [3, 0], "b": [4, 1], "c": [0, 2]}
>>> ys = [mask_vector(xs[n], me=n, private_key=keys[n][0], roster=roster, query_id="q1")
...       for n in roster]
>>> unmask_sum(ys)
[7, 3]
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence

from secured_bio.errors import ConfigError, ProtocolError

__all__ = ["MODULUS", "CONTEXT", "generate_keypair", "public_key_of", "mask_vector",
           "unmask_sum", "pair_mask"]

#: Every value and sum lives in Z / 2^32.
MODULUS = 1 << 32
#: Domain separation of the HKDF that derives pair keys.
CONTEXT = b"secured_bio masked_sum v1"


def generate_keypair() -> tuple[str, str]:
    """Return a fresh X25519 key pair as base64 strings ``(private, public)``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    sk = X25519PrivateKey.generate()
    raw_sk = sk.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                              serialization.NoEncryption())
    return base64.b64encode(raw_sk).decode(), public_key_of(base64.b64encode(raw_sk).decode())


def public_key_of(private_key: str) -> str:
    """Return the base64 X25519 public key of a base64 private key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    sk = X25519PrivateKey.from_private_bytes(_b64(private_key, "private key"))
    return base64.b64encode(sk.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def _b64(value: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"the {what} is not base64", expected="32 bytes, base64") from e
    if len(raw) != 32:
        raise ConfigError(f"the {what} has {len(raw)} bytes", expected="32 bytes (X25519)")
    return raw


def _pair_key(private_key: str, me: str, other: str, other_public: str) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.x25519 import (
        X25519PrivateKey,
        X25519PublicKey,
    )
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    shared = X25519PrivateKey.from_private_bytes(_b64(private_key, "private key")).exchange(
        X25519PublicKey.from_public_bytes(_b64(other_public, f"public key of {other}")))
    a, b = sorted((me, other))
    info = CONTEXT + b"|" + a.encode() + b"|" + b.encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)


def pair_mask(key: bytes, query_id: str, n: int) -> list[int]:
    """Return the ``n`` mask values of one pair key for one query (a PRF: HMAC-SHA256)."""
    out = []
    for s in range(n):
        digest = hmac.new(key, f"{query_id}|{s}".encode(), hashlib.sha256).digest()
        out.append(int.from_bytes(digest[:4], "big"))
    return out


def mask_vector(values: Sequence[int], *, me: str, private_key: str,
                roster: Mapping[str, str], query_id: str) -> list[int]:
    """Mask this party's vector for one query; the masks of all parties cancel in the sum.

    Parameters
    ----------
    values
        This party's non-negative integers (one per slot).
    me
        This party's name in ``roster``.
    private_key
        This party's X25519 private key (base64).
    roster
        Every party's name -> X25519 public key (base64), this party included.
    query_id
        A fresh identifier of the query (never reused).

    Returns
    -------
    list of int
        The masked values, each uniform in ``[0, 2^32)`` to anyone without the pair keys.

    Raises
    ------
    ConfigError
        If ``me`` is not in the roster, a key is malformed, or a value is out of range.
    """
    if me not in roster:
        raise ConfigError("this party is not in the roster", where=f"party {me}",
                          got=f"roster of {len(roster)} parties")
    if public_key_of(private_key) != roster[me]:
        raise ConfigError("the roster holds another public key for this party",
                          where=f"party {me}",
                          fix="re-register this party's key with the aggregator")
    out = []
    for v in values:
        iv = int(v)
        if iv < 0 or iv >= MODULUS:
            raise ConfigError("a value is out of range", expected="0 <= value < 2^32")
        out.append(iv)
    for other in sorted(roster):
        if other == me:
            continue
        mask = pair_mask(_pair_key(private_key, me, other, roster[other]), query_id,
                         len(out))
        sign = 1 if other > me else -1
        out = [(y + sign * m) % MODULUS for y, m in zip(out, mask, strict=True)]
    return out


def unmask_sum(answers: Sequence[Sequence[int]]) -> list[int]:
    """Add every party's masked vector (mod 2^32): the slot totals.

    Raises
    ------
    ProtocolError
        If the vectors differ in length.
    """
    if not answers:
        return []
    n = len(answers[0])
    if any(len(a) != n for a in answers):
        raise ProtocolError("masked answers of different lengths",
                            got=str(sorted({len(a) for a in answers})))
    return [sum(int(a[s]) for a in answers) % MODULUS for s in range(n)]
