"""Option checks shared by the plaintext GWAS (``gwas_cli``) and the secure GWAS.

Both :func:`secured_bio.genomics.run_gwas` and the secure multi-site GWAS
(:mod:`secured_bio.genomics.secure_gwas`) check their options here before any work, so that
the two give the same errors and neither has to import the other for it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from secured_bio.errors import ConfigError, InputFileNotFoundError


def check_test(test: str) -> None:
    """Raise ConfigError (with "did you mean ...?") unless ``test`` is a known test."""
    from secured_bio.genomics import sumstats

    if test not in sumstats.TESTS:
        from secured_bio.errors import did_you_mean

        raise ConfigError("unknown association test", where="--test",
                          expected="one of " + ", ".join(sumstats.TESTS), got=repr(test),
                          fix=did_you_mean(str(test), sumstats.TESTS) or "pick one of the tests")


def check_options(
    test: str, *, pheno: str | os.PathLike[str], covar: str | os.PathLike[str] | None,
    covar_names: Sequence[str] | None, pcs: int, firth: object, chunk_size: int | None,
) -> None:
    """Check the options of :func:`run_gwas` and of the secure GWAS before any work.

    ``chunk_size`` None means the default.  Raises ConfigError (bad or clashing options)
    or InputFileNotFoundError (a missing phenotype or covariate file).
    """
    check_test(test)
    if firth not in (True, False, "fallback"):
        raise ConfigError("unknown Firth mode", where="--firth",
                          expected="True, False or 'fallback'", got=repr(firth))
    if firth and test != "logistic":
        raise ConfigError("Firth regression applies to the logistic test only",
                          where="--firth", got=f"--test {test}",
                          fix="drop --firth or use --test logistic")
    if test in ("allelic", "trend") and (covar is not None or pcs):
        raise ConfigError(
            f"the {test} test does not use covariates", where="--covar/--pcs",
            fix="drop --covar and --pcs, or use --test logistic to adjust for covariates",
        )
    if covar_names is not None and covar is None:
        raise ConfigError("--covar-name needs --covar", where="--covar-name",
                          fix="give the covariate file with --covar")
    if not isinstance(pcs, int) or isinstance(pcs, bool) or pcs < 0:
        raise ConfigError("invalid number of principal components", where="--pcs",
                          expected="an integer >= 0", got=repr(pcs))
    if chunk_size is not None and (not isinstance(chunk_size, int)
                                   or isinstance(chunk_size, bool) or chunk_size < 1):
        raise ConfigError("invalid chunk size", where="--chunk-size",
                          expected="an integer >= 1", got=repr(chunk_size))
    for path, option in ((pheno, "--pheno"), (covar, "--covar")):
        if path is not None and not Path(path).is_file():
            raise InputFileNotFoundError(
                f"{option[2:]} file not found", where=str(path), expected="an existing file",
                fix=f"check the path given to {option}",
            )
