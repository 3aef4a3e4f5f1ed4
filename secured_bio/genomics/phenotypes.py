"""Phenotype and covariate tables as plink2 reads them, aligned to the genotype samples.

A table has a header row whose first columns identify the sample: ``FID IID``, ``#FID IID``,
``IID`` or ``#IID``; every other column is numeric, with ``NA``, ``nan`` or ``-9`` for a
missing value (plink2's conventions, checked by ``secured_bio.specs.validate("phenotype")``).
Samples are matched on IID only: plink2 reads VCF samples with FID 0 (or FID = IID with
``--double-id``), so the FID column, when present, is not used for matching.

Binary traits are coded 1/2 (1 = control, 2 = case; plink's default) or 0/1 (0 = control,
1 = case; plink2 ``--1``). A column whose values are all in {1, 2}, or all in {0, 1}, is
binary; every other numeric column is quantitative. :class:`Trait` keeps binary traits as
0.0 (control) / 1.0 (case), whatever the file's coding.

Privacy rule: errors and logs give column names, counts and paths, never IDs or values.

References
----------
plink2 input formats, https://www.cog-genomics.org/plink/2.0/input#pheno
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from secured_bio.errors import ConfigError, InputError, SchemaError, did_you_mean

__all__ = [
    "MISSING_TOKENS",
    "Trait",
    "Covariates",
    "AnalysisSamples",
    "read_pheno_table",
    "trait_kind",
    "load_phenotype",
    "load_covariates",
    "analysis_samples",
]

logger = logging.getLogger(__name__)

MISSING_TOKENS: tuple[str, ...] = ("NA", "nan", "NaN", "-9")
"""Tokens read as a missing value (plink2: ``NA``, ``nan`` and ``-9``)."""

_ID_COLUMNS = ("FID", "IID")

TraitKind = Literal["quantitative", "binary"]


@dataclass(frozen=True)
class Trait:
    """One phenotype column aligned to the genotype samples.

    Attributes
    ----------
    name
        Column name in the phenotype file.
    values
        float64 ``(n_samples,)`` in genotype-sample order; NaN where missing or where the
        sample is absent from the file. Binary traits hold 0.0 (control) and 1.0 (case).
    kind
        ``"quantitative"`` or ``"binary"``.
    coding
        ``"1/2"`` or ``"0/1"`` for binary traits, None otherwise.
    n_absent
        Rows of the file whose IID is not among the genotype samples (ignored).
    source
        The file read.
    """

    name: str
    values: NDArray[np.float64]
    kind: TraitKind
    coding: str | None
    n_absent: int
    source: str

    @property
    def is_binary(self) -> bool:
        """True for a case/control trait."""
        return self.kind == "binary"


@dataclass(frozen=True)
class Covariates:
    """Covariate columns aligned to the genotype samples.

    Attributes
    ----------
    names
        Column names, in the order of ``values``' columns.
    values
        float64 ``(n_samples, n_covariates)`` in genotype-sample order; NaN where missing.
    n_absent
        Rows of the file whose IID is not among the genotype samples (ignored).
    source
        The file read.
    """

    names: tuple[str, ...]
    values: NDArray[np.float64]
    n_absent: int
    source: str


@dataclass(frozen=True)
class AnalysisSamples:
    """The samples an association analysis uses: phenotype and all covariates present.

    Attributes
    ----------
    mask
        bool ``(n_samples,)`` over the genotype samples.
    phenotype
        float64 ``(n_used,)``: the trait of the used samples (0/1 for binary traits).
    covariates
        float64 ``(n_used, n_covariates)`` (no intercept column).
    covariate_names
        Names of the covariate columns.
    n_missing_phenotype, n_missing_covariates
        Genotype samples dropped for a missing phenotype, or for a missing covariate.
    """

    mask: NDArray[np.bool_]
    phenotype: NDArray[np.float64]
    covariates: NDArray[np.float64]
    covariate_names: tuple[str, ...]
    n_missing_phenotype: int
    n_missing_covariates: int

    @property
    def n_used(self) -> int:
        """Number of samples used."""
        return int(self.mask.sum())


def read_pheno_table(
    path: str | os.PathLike[str], *, kind: Literal["phenotype", "covariate"] = "phenotype"
) -> pd.DataFrame:
    """Read a plink2 phenotype or covariate table.

    The file is first checked against ``data_specs/phenotype.yaml`` (header, numeric
    columns, unique IIDs) with :func:`secured_bio.specs.validate`.

    Parameters
    ----------
    path
        Whitespace-separated table with a header row starting ``FID IID``, ``#FID IID``,
        ``IID`` or ``#IID``.
    kind
        ``"phenotype"`` or ``"covariate"`` (used in messages only).

    Returns
    -------
    pandas.DataFrame
        Indexed by IID (str), one float64 column per data column (FID dropped), NaN where
        missing.

    Raises
    ------
    InputFileNotFoundError
        If ``path`` does not exist.
    SchemaError
        If the header, a value or the IIDs violate the spec.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "pheno.tsv"
    >>> _ = p.write_text("#FID IID bmi case\\n0 s1 21.5 1\\n0 s2 NA 2\\n")
    >>> t = read_pheno_table(p)
    >>> list(t.columns), t.shape
    (['bmi', 'case'], (2, 2))
    """
    from secured_bio.specs import validate

    validate(kind, path)
    table = pd.read_csv(path, sep=r"\s+", dtype=str, keep_default_na=False, na_values=[])
    first = str(table.columns[0]).lstrip("#")
    table = table.rename(columns={table.columns[0]: first})
    table = table.drop(columns=[c for c in ("FID",) if c in table.columns])
    table = table.set_index("IID")
    table.index = table.index.astype(str)
    out = table.apply(lambda col: pd.to_numeric(col.where(~col.isin(MISSING_TOKENS))))
    return out.astype(np.float64)


def trait_kind(values: NDArray[np.float64]) -> tuple[TraitKind, str | None]:
    """Classify a phenotype column as binary (and its coding) or quantitative.

    Parameters
    ----------
    values
        Values with NaN for missing.

    Returns
    -------
    tuple
        ``("binary", "1/2")``, ``("binary", "0/1")`` or ``("quantitative", None)``.

    Examples
    --------
    >>> trait_kind(np.array([1.0, 2.0, np.nan, 2.0]))
    ('binary', '1/2')
    >>> trait_kind(np.array([0.0, 1.0, 1.0]))
    ('binary', '0/1')
    >>> trait_kind(np.array([0.0, 1.0, 2.0]))
    ('quantitative', None)
    """
    present = values[~np.isnan(values)]
    distinct = set(np.unique(present).tolist())
    if distinct and distinct <= {1.0, 2.0}:
        return "binary", "1/2"
    if distinct and distinct <= {0.0, 1.0}:
        return "binary", "0/1"
    return "quantitative", None


def _align(
    table: pd.DataFrame, sample_ids: Sequence[str], *, source: str, what: str
) -> tuple[pd.DataFrame, int]:
    """Reorder ``table`` to ``sample_ids`` (NaN rows for absent samples); count extra rows."""
    ids = pd.Index([str(s) for s in sample_ids])
    overlap = table.index.isin(ids)
    n_in = int(overlap.sum())
    if n_in == 0:
        raise InputError(
            f"no sample of the {what} file is in the genotype data",
            where=source,
            expected="IIDs that match the genotype sample IDs",
            got=f"0 of {len(table)} rows match {len(ids)} genotype samples",
            fix="check that the file belongs to this cohort and that its IID column holds "
            "the VCF sample names (FIDs are not used for matching)",
        )
    n_absent = len(table) - n_in
    if n_absent:
        logger.warning(
            "%s: %d of %d rows have an IID absent from the genotype data (ignored)",
            source, n_absent, len(table),
        )
    return table.reindex(ids), n_absent


def _pick_columns(
    table: pd.DataFrame, names: Sequence[str] | None, *, source: str, option: str, what: str
) -> list[str]:
    available = [str(c) for c in table.columns]
    if not available:
        raise SchemaError(
            f"the {what} file has no data column", where=source,
            expected="at least one column after the ID columns", got="only ID columns",
            fix=f"add a {what} column",
        )
    if names is None:
        return available
    picked = []
    for name in names:
        if name not in available:
            raise ConfigError(
                f"{what} column '{name}' is not in the file",
                where=f"{source} ({option})",
                expected="one of " + ", ".join(f"'{c}'" for c in available),
                got=f"'{name}'",
                fix=did_you_mean(name, available) or f"choose a column with {option}",
            )
        picked.append(name)
    if len(set(picked)) != len(picked):
        raise ConfigError(
            f"a {what} column is named twice", where=option, fix="name each column once"
        )
    return picked


def load_phenotype(
    path: str | os.PathLike[str],
    sample_ids: Sequence[str],
    *,
    name: str | None = None,
    require: TraitKind | None = None,
) -> Trait:
    """Read one phenotype column and align it to the genotype samples.

    Parameters
    ----------
    path
        plink2 phenotype file.
    sample_ids
        Genotype sample IDs (matched to the IID column).
    name
        Column to use; default the first data column.
    require
        ``"binary"`` to demand a case/control trait (for logistic, allelic and trend
        tests); ``"quantitative"`` is not enforced (linear regression of a 0/1 trait is
        allowed, as in a linear probability model).

    Returns
    -------
    Trait
        Aligned values (binary traits as 0/1) and their kind.

    Raises
    ------
    InputFileNotFoundError
        If the file does not exist.
    SchemaError
        If the file violates the phenotype spec (header, non-numeric value, duplicated
        IIDs), or the trait is constant among the genotype samples.
    InputError
        If no IID of the file is among the genotype samples, or ``require="binary"`` and
        the trait is not coded 1/2 or 0/1.
    ConfigError
        If ``name`` is not a column of the file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "pheno.tsv"
    >>> _ = p.write_text("#IID case\\ns1 2\\ns2 1\\ns3 -9\\nx9 1\\n")
    >>> t = load_phenotype(p, ["s3", "s2", "s1"], require="binary")
    >>> t.values.tolist(), t.coding, t.n_absent
    ([nan, 0.0, 1.0], '1/2', 1)
    """
    source = str(path)
    table = read_pheno_table(path, kind="phenotype")
    column = _pick_columns(
        table, [name] if name is not None else None, source=source, option="--pheno-name",
        what="phenotype",
    )[0]
    aligned, n_absent = _align(table[[column]], sample_ids, source=source, what="phenotype")
    values = aligned[column].to_numpy(dtype=np.float64)
    where = f"{source}: column '{column}'"
    present = values[~np.isnan(values)]
    if present.size == 0:
        raise SchemaError(
            "phenotype has no value for any genotype sample", where=where,
            expected="values for at least 2 samples", got="all missing",
            fix="choose another column with --pheno-name",
        )
    if np.unique(present).size < 2:
        raise SchemaError(
            "constant phenotype", where=where,
            expected="at least 2 distinct values among the genotype samples",
            got=f"1 distinct value in {present.size} samples",
            fix="choose another column with --pheno-name",
        )
    kind, coding = trait_kind(values)
    if require == "binary" and kind != "binary":
        raise InputError(
            "case/control test on a quantitative trait", where=where,
            expected="a binary trait coded 1/2 (1 = control, 2 = case) or 0/1 "
            "(missing as NA or -9)",
            got=f"{np.unique(present).size} distinct values",
            fix="use --test linear for a quantitative trait, or recode the column",
        )
    if kind == "binary":
        values = values - 1.0 if coding == "1/2" else values.copy()
    logger.info(
        "phenotype '%s' (%s%s): %d of %d genotype samples have a value", column, kind,
        f" {coding}" if coding else "", present.size, len(sample_ids),
    )
    return Trait(
        name=column, values=values, kind=kind, coding=coding, n_absent=n_absent, source=source
    )


def load_covariates(
    path: str | os.PathLike[str],
    sample_ids: Sequence[str],
    *,
    names: Sequence[str] | None = None,
) -> Covariates:
    """Read covariate columns and align them to the genotype samples.

    Parameters
    ----------
    path
        plink2 covariate file (same format as a phenotype file).
    sample_ids
        Genotype sample IDs.
    names
        Columns to use; default all data columns.

    Returns
    -------
    Covariates
        Aligned float64 values with NaN for missing.

    Raises
    ------
    InputFileNotFoundError
        If the file does not exist.
    SchemaError
        If the file violates the spec (non-numeric value...).
    InputError
        If no IID of the file is among the genotype samples.
    ConfigError
        If a name in ``names`` is not a column of the file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "covar.tsv"
    >>> _ = p.write_text("FID IID sex age\\n0 s1 1 50\\n0 s2 2 NA\\n")
    >>> c = load_covariates(p, ["s1", "s2"], names=["age"])
    >>> c.names, c.values.tolist()
    (('age',), [[50.0], [nan]])
    """
    source = str(path)
    table = read_pheno_table(path, kind="covariate")
    picked = _pick_columns(
        table, list(names) if names is not None else None, source=source,
        option="--covar-name", what="covariate",
    )
    aligned, n_absent = _align(table[picked], sample_ids, source=source, what="covariate")
    return Covariates(
        names=tuple(picked), values=aligned.to_numpy(dtype=np.float64), n_absent=n_absent,
        source=source,
    )


def analysis_samples(
    trait: Trait,
    covariates: Covariates | None = None,
    *,
    extra: NDArray[np.float64] | None = None,
    extra_names: Sequence[str] = (),
) -> AnalysisSamples:
    """Select the samples with a phenotype and every covariate (plink2 drops the others).

    Parameters
    ----------
    trait
        The aligned phenotype.
    covariates
        Aligned covariates, or None.
    extra
        More covariate columns ``(n_samples, k)`` computed from the genotypes (principal
        components), appended after ``covariates``.
    extra_names
        Names of the ``extra`` columns.

    Returns
    -------
    AnalysisSamples
        Mask, phenotype and covariates of the used samples.

    Raises
    ------
    InputError
        If no sample has the phenotype and all covariates, or a binary trait has no case
        or no control among them.
    SchemaError
        If a covariate is constant among the used samples (it would be collinear with the
        intercept).

    Examples
    --------
    >>> t = Trait("y", np.array([1.0, np.nan, 2.0, 3.0]), "quantitative", None, 0, "p")
    >>> c = Covariates(("age",), np.array([[50.0], [60.0], [np.nan], [40.0]]), 0, "c")
    >>> s = analysis_samples(t, c)
    >>> s.mask.tolist(), s.phenotype.tolist(), s.n_missing_covariates
    ([True, False, False, True], [1.0, 3.0], 1)
    """
    n = trait.values.shape[0]
    cols: list[NDArray[np.float64]] = []
    names: list[str] = []
    sources: list[str] = []
    if covariates is not None:
        cols.append(covariates.values)
        names += covariates.names
        sources += [covariates.source] * len(covariates.names)
    if extra is not None:
        cols.append(np.asarray(extra, dtype=np.float64).reshape(n, -1))
        names += list(extra_names)
        sources += ["genotypes"] * cols[-1].shape[1]
    cov = np.concatenate(cols, axis=1) if cols else np.empty((n, 0))
    has_y = ~np.isnan(trait.values)
    has_cov = ~np.isnan(cov).any(axis=1)
    mask = has_y & has_cov
    where = f"{trait.source}: column '{trait.name}'"
    if not mask.any():
        raise InputError(
            "no sample has the phenotype and all covariates", where=where,
            expected="at least 1 sample with every value present",
            got=f"{int(has_y.sum())} with the phenotype, {int(has_cov.sum())} with all "
            "covariates, none with both",
            fix="check the covariate file and --covar-name",
        )
    y = trait.values[mask]
    if trait.is_binary:
        n_case = int((y == 1).sum())
        if n_case == 0 or n_case == y.size:
            raise InputError(
                "case/control trait has only one class among the analysed samples",
                where=where, expected="cases and controls",
                got=f"{n_case} cases, {y.size - n_case} controls",
                fix="check the coding (1/2 or 0/1) and the covariates' missing values",
            )
    elif np.unique(y).size < 2:
        raise SchemaError(
            "constant phenotype among the analysed samples", where=where,
            expected="at least 2 distinct values", got="1 distinct value",
            fix="check the covariates' missing values",
        )
    c = cov[mask]
    for j, cname in enumerate(names):
        if c.shape[0] > 0 and np.all(c[:, j] == c[0, j]):
            raise SchemaError(
                "constant covariate among the analysed samples",
                where=f"{sources[j]}: column '{cname}'",
                expected="at least 2 distinct values", got=f"1 distinct value in {c.shape[0]} "
                "samples", fix="drop it from --covar-name",
            )
    return AnalysisSamples(
        mask=mask, phenotype=y, covariates=c, covariate_names=tuple(names),
        n_missing_phenotype=int((~has_y).sum()),
        n_missing_covariates=int((has_y & ~has_cov).sum()),
    )
