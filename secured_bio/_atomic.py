"""Write outputs so that a crash never leaves a file that looks finished.

Everything is written under a temporary name in the destination folder and renamed into
place (``os.replace`` is atomic on POSIX within one file system) only when complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_path", "atomic_write", "atomic_dir", "atomic_paths", "check_replaceable_dir"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _tmp_name(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp creates 0600; give the final file the permissions a plain open() would.
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    return Path(name)


def check_replaceable_dir(path: str | os.PathLike[str], *, marker: str) -> None:
    """Refuse to replace a folder that holds files secured_bio did not write.

    ``path`` may be missing, empty (or holding only empty folders, as workflow engines such
    as Snakemake create for expected outputs), or an earlier output of ours (it holds
    ``marker``).

    Raises
    ------
    ConfigError
        If ``path`` is a file, or a non-empty folder without ``marker``.
    """
    from secured_bio.errors import ConfigError

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError(
            "output path exists and is not a folder", where=str(out), fix="choose another --out"
        )
    holds_files = out.is_dir() and any(not p.is_dir() for p in out.rglob("*"))
    if holds_files and not (out / marker).is_file():
        raise ConfigError(
            "output folder is not empty and is not an earlier secured_bio output",
            where=str(out),
            expected=f"a new or empty folder, or one holding an earlier {marker}",
            fix="choose another --out (secured-bio never overwrites unrelated files)",
        )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "x.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> (d / "x.txt").read_text()
    'done'
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(final)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "w", **open_kwargs: Any
) -> Iterator[IO[Any]]:
    """Open a temporary file for writing and rename it to ``path`` when the block ends.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_write(d / "m.json") as fh:
    ...     _ = fh.write("{}")
    >>> sorted(p.name for p in d.iterdir())
    ['m.json']
    """
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as fh:
        yield fh


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike[str]) -> Iterator[list[Path]]:
    """Like :func:`atomic_path` for several files that belong together (data + index).

    The files are renamed in reverse order, so the first one (the data file) appears last:
    a reader that sees it can rely on the others (e.g. the ``.tbi`` index) being there.
    """
    finals = [Path(p) for p in paths]
    for p in finals:
        p.parent.mkdir(parents=True, exist_ok=True)
    tmps = [_tmp_name(p) for p in finals]
    try:
        yield tmps
        for tmp, final in reversed(list(zip(tmps, finals, strict=True))):
            os.replace(tmp, final)
    except BaseException:
        for tmp in tmps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; move it to ``path`` on success.

    Used for multi-file outputs (zarr stores, demo cohorts).  An existing ``path`` is
    replaced only after the new content is complete.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    tmp.chmod(0o777 & ~_umask())
    try:
        yield tmp
        if final.exists():
            if not overwrite:
                raise FileExistsError(final)
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
            os.replace(final, old / "x")
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
