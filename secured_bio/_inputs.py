"""What every reader of user files does the same way: folder/missing checks, damaged files.

Two rules hold for every command that reads a VCF, NIfTI, FHIR or CSV file:

* a path that does not exist, or is a folder where a file is expected (or the reverse), is
  named as such (:class:`~secured_bio.errors.InputFileNotFoundError`, "is a folder, not a
  file"), with the command-line option that gave it;
* a file that is truncated or corrupt gives one :class:`~secured_bio.errors.FormatError`
  naming the file, never the low-level exception of gzip, zlib, htslib (through pysam) or
  nibabel (:func:`reading`).

Messages name the path and the exception's type, never its text (it can quote data).
"""

from __future__ import annotations

import contextlib
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from secured_bio.errors import FormatError, InputError, InputFileNotFoundError, SecuredBioError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DAMAGED_FILE_ERRORS", "describe_error", "read_table", "reading", "reject_folder",
           "require_dir", "require_file"]

#: What reading a truncated or corrupt file raises: ``EOFError`` (a gzip stream cut short),
#: ``OSError`` (``gzip.BadGzipFile``, htslib's "error reading BGZF"), ``zlib.error`` (a
#: damaged deflate block; not an ``OSError``), ``UnicodeDecodeError`` (binary garbage in a
#: text format).
DAMAGED_FILE_ERRORS: tuple[type[BaseException], ...] = (
    EOFError, OSError, zlib.error, UnicodeDecodeError,
)


def describe_error(e: BaseException) -> str:
    """Say what a low-level read error means, without its message (it can quote data).

    Examples
    --------
    >>> describe_error(EOFError("x"))
    'an unexpected end of the data (EOFError)'
    """
    import gzip

    if isinstance(e, zlib.error):
        return "a damaged compressed block (zlib.error)"
    if isinstance(e, EOFError):
        return "an unexpected end of the data (EOFError)"
    if isinstance(e, gzip.BadGzipFile):
        return "data that is not gzip (BadGzipFile)"
    if isinstance(e, UnicodeDecodeError):
        return "bytes that are not UTF-8 text (UnicodeDecodeError)"
    return type(e).__name__


def _fix_path(option: str | None) -> str:
    return f"check the {option} path" if option else "check the path"


def require_file(
    path: str | os.PathLike[str], what: str, *, option: str | None = None,
    expected: str | None = None,
) -> Path:
    """Return ``path`` as a Path if it is an existing file; else say what it is instead.

    Parameters
    ----------
    path
        The path given by the user.
    what
        What the file is, for the message (``"input table"``, ``"ages file"``...).
    option
        The command-line option that named it (``"--in"``), for the fix hint.
    expected
        What the file should be (``"a CSV file"``), for the message.

    Raises
    ------
    InputFileNotFoundError
        If the path does not exist, or is a folder.

    Examples
    --------
    >>> import tempfile
    >>> require_file(tempfile.gettempdir(), "input table", option="--in")
    Traceback (most recent call last):
    ...
    secured_bio.errors.InputFileNotFoundError: input table is a folder, not a file [...]...
    """
    p = Path(path)
    if p.is_dir():
        raise InputFileNotFoundError(
            f"{what} is a folder, not a file", where=str(p), expected=expected or "a file",
            got="a folder", fix=f"give {option or 'the path'} the file itself, not its folder",
        )
    if not p.is_file():
        raise InputFileNotFoundError(f"{what} not found", where=str(p),
                                     expected=expected or "an existing file",
                                     got="no such file", fix=_fix_path(option))
    return p


def reject_folder(
    path: str | os.PathLike[str], what: str, *, option: str | None = None,
    expected: str | None = None,
) -> None:
    """Raise if ``path`` is a folder (where a file is expected); else do nothing.

    Put it before a reader's own "not found" check, which keeps its specific fix hint.

    Raises
    ------
    InputFileNotFoundError
        If ``path`` is a folder.

    Examples
    --------
    >>> reject_folder("no/such/file.csv", "input table") is None
    True
    """
    if Path(path).is_dir():
        require_file(path, what, option=option, expected=expected)


def require_dir(
    path: str | os.PathLike[str], what: str, *, option: str | None = None,
    expected: str | None = None,
) -> Path:
    """Return ``path`` as a Path if it is an existing folder; else say what it is instead.

    Raises
    ------
    InputFileNotFoundError
        If the path does not exist, or is a file.

    Examples
    --------
    >>> import tempfile
    >>> require_dir(tempfile.gettempdir(), "cohort folder").is_dir()
    True
    """
    p = Path(path)
    if p.is_file():
        raise InputFileNotFoundError(
            f"{what} is a file, not a folder", where=str(p), expected=expected or "a folder",
            got="a file", fix=f"give {option or 'the path'} the folder that holds it",
        )
    if not p.is_dir():
        raise InputFileNotFoundError(f"{what} not found", where=str(p),
                                     expected=expected or "an existing folder",
                                     got="no such folder", fix=_fix_path(option))
    return p


@contextlib.contextmanager
def reading(
    path: str | os.PathLike[str], what: str, *, expected: str | None = None,
    fix: str | None = None, errors: tuple[type[BaseException], ...] = DAMAGED_FILE_ERRORS,
) -> Iterator[None]:
    """Turn the low-level errors of reading a damaged ``path`` into one clear FormatError.

    Errors of secured_bio itself pass through unchanged; a missing file or a folder becomes
    an :class:`~secured_bio.errors.InputFileNotFoundError`; the ``errors`` (by default
    :data:`DAMAGED_FILE_ERRORS`) become "WHAT is truncated or corrupt [path]".

    Raises
    ------
    FormatError
        If the block raises one of ``errors``.
    InputFileNotFoundError
        If the block finds no file at ``path``, or a folder.

    Examples
    --------
    >>> import gzip, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "cut.csv.gz"
    >>> _ = p.write_bytes(gzip.compress(b"a,b\\n" * 1000)[:40])
    >>> with reading(p, "input table"):
    ...     _ = gzip.open(p).read()
    Traceback (most recent call last):
    ...
    secured_bio.errors.FormatError: input table is truncated or corrupt [...]: ... (EOFError)...
    """
    try:
        yield
    except SecuredBioError:
        raise
    except (IsADirectoryError, NotADirectoryError, FileNotFoundError) as e:
        require_file(path, what, expected=expected)
        raise FormatError(f"{what} could not be opened", where=str(path),
                          got=type(e).__name__, fix="check the path") from e
    except errors as e:
        raise FormatError(
            f"{what} is truncated or corrupt", where=str(path),
            expected=expected or "a complete, readable file", got=describe_error(e),
            fix=fix or "the file was cut short or damaged: re-copy or re-create it",
        ) from e


def read_table(
    path: str | os.PathLike[str], what: str, *, option: str | None = None, **kwargs: Any
) -> pd.DataFrame:
    """``pandas.read_csv`` of a user file, with the checks and messages of this module.

    Parameters
    ----------
    path
        The CSV/TSV file (``.gz`` is decompressed by pandas).
    what
        What the table is, for messages (``"ages file"``).
    option
        The command-line option that named it, for the fix hint.
    **kwargs
        Passed to :func:`pandas.read_csv`.

    Raises
    ------
    InputFileNotFoundError
        If the file does not exist, or is a folder.
    InputError
        If the file is empty.
    FormatError
        If it is truncated, corrupt, not UTF-8 or not parseable as a table.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "ages.csv"
    >>> _ = p.write_text("patient_id,age_years\\np1,4\\n")
    >>> read_table(p, "ages file").shape
    (1, 2)
    """
    import pandas as pd

    p = require_file(path, what, option=option)
    if p.stat().st_size == 0:
        raise InputError(f"{what} is empty", where=str(p), expected="a header row",
                         got="an empty file", fix="check that the right file was given")
    with reading(p, what, expected="a UTF-8 CSV/TSV table",
                 errors=(*DAMAGED_FILE_ERRORS, pd.errors.ParserError,
                         pd.errors.EmptyDataError)):
        return pd.read_csv(p, **kwargs)
