"""Helpers shared by the demo-cohort simulators: parameter checks, seeds, deterministic writes."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from secured_bio._atomic import atomic_write
from secured_bio.errors import ConfigError

__all__ = [
    "check_int",
    "check_fraction",
    "check_seed",
    "site_names",
    "child_rng",
    "child_seed",
    "gzip_bytes",
    "json_text",
    "write_json",
    "as_dir",
]


def check_int(name: str, value: object, *, minimum: int, where: str) -> int:
    """Return ``value`` as an int, or raise ConfigError if it is not an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(
            f"{name} must be an integer",
            where=where,
            expected=f"an int >= {minimum}",
            got=type(value).__name__,
            fix=f"pass an integer {name}",
        )
    if value < minimum:
        raise ConfigError(
            f"{name} is too small",
            where=where,
            expected=f"{name} >= {minimum}",
            got=f"{name}={int(value)}",
            fix=f"pass {name} >= {minimum}",
        )
    return int(value)


def check_fraction(
    name: str, value: object, *, where: str, low: float = 0.0, high: float = 1.0,
    include_low: bool = True, include_high: bool = True,
) -> float:
    """Return ``value`` as a float in the interval, or raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise ConfigError(
            f"{name} must be a number", where=where, expected="a float", got=type(value).__name__
        )
    v = float(value)
    ok_low = v >= low if include_low else v > low
    ok_high = v <= high if include_high else v < high
    if not (np.isfinite(v) and ok_low and ok_high):
        lo = "[" if include_low else "("
        hi = "]" if include_high else ")"
        raise ConfigError(
            f"{name} is out of range",
            where=where,
            expected=f"{name} in {lo}{low}, {high}{hi}",
            got=f"{name}={v}",
            fix=f"pass {name} in {lo}{low}, {high}{hi}",
        )
    return v


def check_seed(seed: object, *, where: str) -> int:
    """Return ``seed`` as a non-negative int, or raise ConfigError."""
    return check_int("seed", seed, minimum=0, where=where)


def site_names(n_sites: int) -> tuple[str, ...]:
    """Return ``('site1', 'site2', ...)``."""
    return tuple(f"site{i}" for i in range(1, n_sites + 1))


def child_seed(seed: int, *key: int) -> int:
    """Derive an independent 32-bit seed (>= 1) from ``seed`` and a key path.

    Each component (ancestry, effects, missingness...) draws from its own stream, so changing
    one parameter does not reshuffle unrelated parts of the output.
    """
    state = np.random.SeedSequence([seed, *key]).generate_state(1, dtype=np.uint32)[0]
    return int(state) % (2**31 - 2) + 1


def child_rng(seed: int, *key: int) -> np.random.Generator:
    """Return a Generator on an independent stream derived from ``seed`` and ``key``."""
    return np.random.default_rng(np.random.SeedSequence([seed, *key]))


def gzip_bytes(data: bytes) -> bytes:
    """Gzip ``data`` deterministically (mtime 0, no file name in the header)."""
    return gzip.compress(data, compresslevel=6, mtime=0)


def json_text(obj: Mapping[str, Any]) -> str:
    """Return ``obj`` as pretty, key-sorted JSON text (reproducible byte for byte)."""
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def write_json(path: str | os.PathLike[str], obj: Mapping[str, Any]) -> Path:
    """Write ``obj`` as pretty, key-sorted JSON through a temporary file."""
    p = Path(path)
    with atomic_write(p) as fh:
        fh.write(json_text(obj))
    return p


def as_dir(out_dir: str | os.PathLike[str], *, where: str) -> Path:
    """Return ``out_dir`` as a Path, creating it; refuse an existing non-folder."""
    p = Path(out_dir)
    if p.exists() and not p.is_dir():
        raise ConfigError(
            "output folder is a file",
            where=where,
            expected="a folder (created if missing)",
            got=f"existing file {p}",
            fix="choose another out_dir",
        )
    p.mkdir(parents=True, exist_ok=True)
    return p
