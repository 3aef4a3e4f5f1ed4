"""Recognising BGZF files (the blocked gzip of bgzip/tabix) from their bytes (SAM spec 4.1)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["BGZF_EOF", "compression", "has_bgzf_eof"]

#: The 28-byte empty block that ends every complete BGZF file (SAM spec section 4.1.2).
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def compression(path: str | os.PathLike[str]) -> str:
    """Return 'bgzf', 'gzip' or 'plain' from the file's magic bytes (SAM spec 4.1)."""
    with open(path, "rb") as f:
        head = f.read(18)
    if head[:2] != b"\x1f\x8b":
        return "plain"
    # BGZF: gzip with FEXTRA (FLG bit 2) and an extra subfield 'BC' at bytes 12-13.
    if len(head) >= 18 and head[3] & 4 and head[12:14] == b"BC":
        return "bgzf"
    return "gzip"


def has_bgzf_eof(path: str | os.PathLike[str]) -> bool:
    """Tell whether the file ends with the BGZF end-of-file block (else it is truncated)."""
    with open(Path(path), "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() < len(BGZF_EOF):
            return False
        f.seek(-len(BGZF_EOF), os.SEEK_END)
        return f.read() == BGZF_EOF
