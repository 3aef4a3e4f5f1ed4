"""Logging set-up for the command line: rich handler on stderr, optional log file.

Privacy rule: log records may carry names, shapes, counts and paths, never data values.
"""

from __future__ import annotations

import logging
from pathlib import Path


def configure_logging(verbosity: int = 0, log_file: Path | None = None) -> None:
    """Configure the ``secured_bio`` logger: WARNING by default, INFO with -v, DEBUG with -vv."""
    from rich.console import Console
    from rich.logging import RichHandler

    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    if verbosity < 0:
        level = logging.ERROR
    logger = logging.getLogger("secured_bio")
    logger.setLevel(min(level, logging.INFO) if log_file else level)
    logger.handlers.clear()
    handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)
    handler.setLevel(level)
    logger.addHandler(handler)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        fh.setLevel(logging.INFO)
        logger.addHandler(fh)
    logger.propagate = False
