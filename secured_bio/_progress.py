"""Progress bars (rich) for long work, written to stderr so stdout stays machine-readable."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

__all__ = ["track", "progress_enabled"]


def progress_enabled() -> bool:
    """Progress bars are shown on an interactive stderr unless ``SECURED_BIO_PROGRESS=0``."""
    env = os.environ.get("SECURED_BIO_PROGRESS")
    if env is not None:
        return env not in ("0", "false", "no", "")
    return sys.stderr.isatty()


def track(items: Iterable[T], description: str, *, total: int | None = None) -> Iterator[T]:
    """Iterate over ``items`` showing a rich progress bar on stderr (when enabled).

    Examples
    --------
    >>> list(track([1, 2, 3], "counting"))
    [1, 2, 3]
    """
    if not progress_enabled():
        yield from items
        return
    from rich.console import Console
    from rich.progress import track as rich_track

    yield from rich_track(
        items, description=description, total=total, console=Console(stderr=True)
    )
