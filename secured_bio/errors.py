"""The whole exception hierarchy of secured_bio.

Every class also subclasses the matching builtin, so callers that catch ``ValueError``,
``FileNotFoundError`` or ``RuntimeError`` keep working.

Exit codes of the ``secured-bio`` command come from the class (``exit_code``), one rule for
every command: **2** when the command line is wrong (an unknown command, option, pilot, data
kind or config key, an invalid option value, a column named on the command line that the
table does not have: :class:`ConfigError` and its subclasses, :class:`UnknownPilotError`);
**1** when the command line is valid but the inputs or the run failed (a file missing,
unreadable, truncated or corrupt, data that violates its spec, a protocol failure, a privacy
check that fails closed: every other class).

Messages follow one shape: *what* failed, *where* (file, line/record, variable, pilot),
*expected* vs *got*, and *how to fix* it.  Privacy rule: a message may show names, shapes,
dtypes, counts and paths, never data values (genotypes, voxels, participant IDs).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "SecuredBioError",
    "InputError",
    "InputFileNotFoundError",
    "FormatError",
    "SchemaError",
    "ConfigError",
    "UnknownColumnError",
    "PluginError",
    "UnknownPilotError",
    "ProtocolError",
    "DependencyError",
    "did_you_mean",
]


class SecuredBioError(Exception):
    """Base class of every error raised on purpose by secured_bio.

    Parameters
    ----------
    what
        One sentence saying what failed.
    where
        File, line/record, variable or pilot concerned.
    expected, got
        What was expected and what was found (never data values).
    fix
        How the user can fix it.

    Examples
    --------
    >>> e = SecuredBioError("constant phenotype", where="pheno.tsv:bmi",
    ...                     expected="2+ values", got="1 value", fix="choose another column")
    >>> print(e)
    constant phenotype [pheno.tsv:bmi]: expected 2+ values, got 1 value. Fix: choose another column
    """

    #: Exit status of the ``secured-bio`` command when this error ends it (see the module
    #: docstring): 1 = the inputs or the run failed, 2 = the command line is wrong.
    exit_code: int = 1

    def __init__(
        self,
        what: str,
        *,
        where: str | None = None,
        expected: str | None = None,
        got: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.what = what
        self.where = where
        self.expected = expected
        self.got = got
        self.fix = fix
        super().__init__(self._compose())

    def _compose(self) -> str:
        msg = self.what
        if self.where:
            msg += f" [{self.where}]"
        parts = []
        if self.expected is not None:
            parts.append(f"expected {self.expected}")
        if self.got is not None:
            parts.append(f"got {self.got}")
        if parts:
            msg += ": " + ", ".join(parts)
        if self.fix:
            msg += f". Fix: {self.fix}"
        return msg


class InputError(SecuredBioError, ValueError):
    """An input (file, table, array) has the wrong content."""


class InputFileNotFoundError(SecuredBioError, FileNotFoundError):
    """An input file or folder does not exist."""


class FormatError(InputError):
    """A file is not in the expected format (not BGZF, not NIfTI, unparseable record...)."""


class SchemaError(InputError):
    """An input violates its data spec (columns, ranges, dimensions...)."""


class ConfigError(SecuredBioError, ValueError):
    """A configuration value or command-line option is invalid (exit code 2)."""

    exit_code = 2


class UnknownColumnError(ConfigError, SchemaError):
    """A column named by the caller (e.g. with ``--qi``) is not in the table (exit code 2).

    A usage error (fix the name on the command line), and a :class:`SchemaError` for callers
    that catch those.
    """

    exit_code = 2


class PluginError(SecuredBioError, RuntimeError):
    """A pilot plugin failed to load or is malformed."""


class UnknownPilotError(PluginError, LookupError):
    """No registered pilot has the requested name (exit code 2)."""

    exit_code = 2


class ProtocolError(SecuredBioError, RuntimeError):
    """A multi-party protocol (SMPC, federation) failed: party lost, timeout, mismatch."""


class DependencyError(SecuredBioError, ImportError):
    """An optional dependency or external tool is missing."""


def did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    """Return a ``"did you mean 'x'?"`` hint for the closest choice, or None.

    Examples
    --------
    >>> did_you_mean("genomic_acess", ["genomic_access", "telemonitoring"])
    "did you mean 'genomic_access'?"
    >>> did_you_mean("zzz", ["genomic_access"]) is None
    True
    """
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
