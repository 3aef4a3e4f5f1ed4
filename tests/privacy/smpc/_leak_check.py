"""Check, message by message, that what a party sent reveals no plaintext.

Used by the reveal-set tests of the secure sums (``privacy/smpc/test_protocols.py``) and of
the secure GWAS (``genomics/test_secure_gwas.py``), and by the tests that show the check
catches a leak (one unmasked vector among many masked ones) that a check pooled over all
messages would miss.

Every message a party sends must be one of

* a protocol **header** of the known small format: 5 int64 words ``[magic, seq, status, bad
  index, spec hash]`` with the magic word, a call number, a known status code and a bad index
  that is -1 exactly when the status is OK;
* anything else (the key-agreement public key, masked vectors, and whatever a transport sends)
  must look like uniform 64-bit words, **each message on its own**: for several thresholds
  ``2**b`` the number of words with ``|w| < 2**b`` must not exceed what a uniform vector of
  that length reaches with probability ``ALPHA`` (binomial tail, Bonferroni over the
  thresholds).  One word below ``2**16`` fails a message of any length up to about ``2**37``
  words; plaintext statistics (small counts, fixed-point values far below ``2**63``) fail it
  from a few words on.  Each of the 64 bit positions must also be set in about half of the
  words (binomial, Bonferroni): this catches float64 bit patterns and other structured words
  from about 40 words on.  A message that parses as a key-agreement public value (an element
  of the prime-order subgroup, :func:`is_public_key`) is reported as a key; it must pass the
  same tests.
* with ``known`` plaintext encodings (what the party put into each secure call), no word of a
  message may equal the word at the same position of a known encoding of the same length: a
  masked word equals it with probability ``2**-64``.  This also covers one-word messages,
  whose randomness alone proves little.

The payloads are read as raw bytes in 64-bit little-endian words (any dtype: a transport that
sends bytes is checked the same way).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from secured_bio.privacy.smpc.protocols import _MAGIC, _P, _Q

#: False-alarm probability per message: negligible even over ~10**4 messages of a GWAS run.
ALPHA = 1e-9
#: ``|w| < 2**b`` counts as small at each of these thresholds.
SMALL_BITS = (8, 16, 24, 32, 40, 48, 56)
#: The old, pooled check: fraction of all non-header words below 2**56.
POOLED_BITS, POOLED_FRACTION = 56, 0.03
_N_STATUS = 5  # _OK, _OUT_OF_RANGE, _NON_FINITE, _NOT_INTEGER, _NOT_NUMERIC
_KEY_BYTES = 256


@dataclass
class Report:
    """What :func:`check_sent` found: one kind per message and the problems."""

    kinds: list[str] = field(default_factory=list)  # "header", "key" or "data"
    problems: list[str] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return self.kinds.count(kind)


def words64(payload: np.ndarray) -> np.ndarray:
    """The payload's bytes as little-endian int64 words (a trailing partial word dropped)."""
    raw = np.ascontiguousarray(payload).tobytes()
    return np.frombuffer(raw[: len(raw) // 8 * 8], dtype="<i8")


def is_header(payload: np.ndarray) -> bool:
    """Whether ``payload`` is a protocol header of the known 5-word format."""
    if payload.dtype != np.int64 or payload.size != 5:
        return False
    magic, seq, status, bad, _spec = (int(v) for v in payload.ravel())
    return (magic == _MAGIC and 1 <= seq < 2**40 and 0 <= status < _N_STATUS
            and -1 <= bad < 2**20 and (status == 0) == (bad == -1))


def is_public_key(payload: np.ndarray) -> bool:
    """Whether ``payload`` is a Diffie-Hellman public value of the protocol's group."""
    raw = np.ascontiguousarray(payload).tobytes()
    if len(raw) != _KEY_BYTES:
        return False
    x = int.from_bytes(raw, "big")
    return 1 < x < _P - 1 and pow(x, _Q, _P) == 1


def small_word_pvalue(words: np.ndarray) -> float:
    """P-value of the small words of ``words`` under 'uniform 64-bit words' (Bonferroni)."""
    if words.size == 0:
        return 1.0
    magnitude = np.abs(words.astype(np.float64))
    best = 1.0
    for b in SMALL_BITS:
        s = int(np.count_nonzero(magnitude < 2.0**b))
        if s:
            # P(|w| < 2**b) = (2**(b+1) - 1) / 2**64 for a uniform int64 word.
            best = min(best, float(stats.binom.sf(s - 1, words.size, 2.0 ** (b + 1 - 64))))
    return min(1.0, best * len(SMALL_BITS))


def bit_pvalue(words: np.ndarray) -> float:
    """P-value of the bit frequencies of ``words`` under 'uniform bits' (Bonferroni, 64 bits).

    Catches structured words that are not small, such as float64 bit patterns (their
    exponent bits are nearly constant).
    """
    if words.size == 0:
        return 1.0
    u = words.view(np.uint64)
    ones = np.array([int(np.count_nonzero((u >> np.uint64(b)) & np.uint64(1)))
                     for b in range(64)])
    n = words.size
    tail = np.minimum(stats.binom.cdf(ones, n, 0.5), stats.binom.sf(ones - 1, n, 0.5))
    return float(min(1.0, 2 * tail.min() * 64))


def check_message(payload: np.ndarray, known: Sequence[np.ndarray] = ()) -> tuple[str, str]:
    """Return ``(kind, problem)`` for one sent payload; ``problem`` is '' when it passes."""
    if is_header(payload):
        return "header", ""
    kind = "key" if is_public_key(payload) else "data"
    words = words64(payload)
    if words.size == 0:
        return kind, f"{payload.nbytes}-byte message that is neither a header nor 64-bit words"
    p = small_word_pvalue(words)
    if p < ALPHA:
        small = int(np.count_nonzero(np.abs(words.astype(np.float64)) < 2.0**SMALL_BITS[-1]))
        return kind, (f"{words.size}-word {kind} message is not uniform: {small} words below "
                      f"2**{SMALL_BITS[-1]} (p = {p:.2g})")
    p = bit_pvalue(words)
    if p < ALPHA:
        return kind, f"{words.size}-word {kind} message has biased bits (p = {p:.2g})"
    for x in known:
        x = np.asarray(x, dtype=np.int64).ravel()
        if x.size == words.size and x.size and (same := int(np.sum(words == x))):
            return kind, (f"{words.size}-word {kind} message equals a plaintext input in "
                          f"{same} word(s)")
    return kind, ""


def check_sent(payloads: Iterable[np.ndarray], known: Sequence[np.ndarray] = ()) -> Report:
    """Check every sent payload on its own (see the module docstring)."""
    report = Report()
    for i, payload in enumerate(payloads):
        kind, problem = check_message(np.asarray(payload), known)
        report.kinds.append(kind)
        if problem:
            report.problems.append(f"message {i}: {problem}")
    return report


def pooled_check_passes(payloads: Iterable[np.ndarray]) -> bool:
    """The old check: under 3 % of all non-header words, pooled, are below 2**56."""
    data = [words64(np.asarray(p)) for p in payloads if not is_header(np.asarray(p))]
    words = np.concatenate(data) if data else np.zeros(0, np.int64)
    return bool(words.size > 100 and
                np.mean(np.abs(words.astype(np.float64)) < 2.0**POOLED_BITS) < POOLED_FRACTION)
