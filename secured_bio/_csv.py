"""Strict reading of user CSV tables as strings (anonymization and assessment inputs).

One reader for every command that takes a table whose values must survive unchanged
(postcodes with leading zeros, codes that look like numbers): every field is a ``str``.
Errors name the file and line (``path:line``) and never show a value.
"""

from __future__ import annotations

import csv
import io
import os
from typing import TYPE_CHECKING

from secured_bio._inputs import require_file
from secured_bio.errors import FormatError, InputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["read_csv_strings"]


def read_csv_strings(
    path: str | os.PathLike[str], *, label: str = "input", option: str = "--in",
    allow_empty: bool = True,
) -> pd.DataFrame:
    """Read a UTF-8 CSV with a header row; every column as ``str`` (empty fields are ``""``).

    Blank lines are skipped.

    Parameters
    ----------
    path
        The CSV file.
    label
        What the table is, for messages (``"input"``, ``"released"``...).
    option
        The command-line option that named the file, for the fix hint.
    allow_empty
        Accept a header without data rows.

    Raises
    ------
    InputFileNotFoundError
        If the file does not exist, or is a folder.
    FormatError
        If it is not UTF-8, has no header, repeats a column name, or a row's number of
        fields differs from the header's (``path:line`` is given).
    InputError
        If it has no data rows and ``allow_empty`` is false.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("zip,age\\n06000,41\\n\\n")
    >>> read_csv_strings(p).to_dict("list")
    {'zip': ['06000'], 'age': ['41']}
    """
    import pandas as pd

    p = require_file(path, f"{label} table", option=option, expected="an existing CSV file")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise FormatError(f"{label} table is not UTF-8 text", where=f"{p}:{line}",
                          expected="UTF-8", got=f"an invalid byte at offset {e.start}",
                          fix="re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from e
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or not any(c.strip() for c in rows[0]):
        raise FormatError(f"{label} table has no header row", where=str(p),
                          expected="a CSV header with column names", fix="check the file")
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header):
        raise FormatError("column name repeated in the header", where=f"{p}:1",
                          expected="distinct column names",
                          got=f"{len(header)} names, {len(set(header))} distinct",
                          fix="rename the duplicated column")
    body = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:  # a blank line
            continue
        if len(row) != len(header):
            raise FormatError("ragged CSV: a row has a different number of fields",
                              where=f"{p}:{line}", expected=f"{len(header)} fields",
                              got=f"{len(row)} fields", fix="fix the row or quote its commas")
        body.append(row)
    if not body and not allow_empty:
        raise InputError(f"{label} table has no data rows", where=str(p),
                         expected="at least 1 row", got="only a header", fix="check the file")
    return pd.DataFrame(body, columns=header, dtype=str)
