"""Logging set-up for the command line: stderr (rich on a terminal), optional log file.

Rich formats for a terminal only: when stderr is a file or a pipe (a workflow rule's
``2> log``), rich would wrap at 80 columns and split paths across lines, so records are
written there as plain, unwrapped lines (``time LEVEL logger: message``), as in ``--log-file``.

Privacy rule: log records may carry names, shapes, counts and paths, never data values.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

#: One record per line, never wrapped: for log files and a redirected stderr.
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(verbosity: int = 0, log_file: Path | None = None) -> None:
    """Configure the ``secured_bio`` logger: WARNING by default, INFO with -v, DEBUG with -vv."""
    from rich.console import Console
    from rich.logging import RichHandler

    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    if verbosity < 0:
        level = logging.ERROR
    logger = logging.getLogger("secured_bio")
    logger.setLevel(min(level, logging.INFO) if log_file else level)
    for old in logger.handlers:  # an earlier --log-file stays open otherwise
        old.close()
    logger.handlers.clear()
    handler: logging.Handler
    if sys.stderr.isatty():
        handler = RichHandler(console=Console(stderr=True), show_path=False,
                              rich_tracebacks=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    handler.setLevel(level)
    logger.addHandler(handler)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setFormatter(logging.Formatter(PLAIN_FORMAT))
        fh.setLevel(logging.INFO)
        logger.addHandler(fh)
    logger.propagate = False
