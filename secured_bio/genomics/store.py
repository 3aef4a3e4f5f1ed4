"""The genotype store: a versioned zarr v3 group of genotype calls, and its reader.

One store holds one cohort's (one site's) biallelic genotype calls, as written by
:func:`secured_bio.genomics.ingest_vcf`.  Variables follow sgkit's names and conventions
(sgkit's ``call_genotype`` fill value -2 marks the "non-allele" of a haploid call):

======================== ==================== ====== ==============================================
variable                 dims                 dtype  meaning
======================== ==================== ====== ==============================================
``call_genotype``        variants, samples,   int8   allele index per haplotype: 0 = REF, 1 = ALT,
                         ploidy (2)                  -1 = missing, -2 = non-allele (a haploid call
                                                     keeps its allele in ``[..., 0]``)
``call_genotype_phased`` variants, samples    bool   True where the VCF call was phased (``0|1``)
``variant_contig``       variants             str    CHROM
``variant_position``     variants             int64  POS (1-based, as in the VCF)
``variant_id``           variants             str    ID (``'.'`` when the VCF has none)
``variant_allele``       variants, alleles(2) str    REF, ALT (``'.'`` for a record without ALT)
``sample_id``            samples              str    sample names from the VCF header
======================== ==================== ====== ==============================================

Genotype arrays are chunked along variants only (``chunk_size`` variants x all samples per
chunk) and compressed with Blosc/zstd (bit-shuffled); string arrays use zarr's default codecs.
Chunks of ``call_genotype_phased`` without any phased call are not written (they read as
False), so unphased data costs nothing there.
The group's attributes carry ``format`` (``"secured_bio.genotypes"``), ``format_version``,
``source`` (the input file's name, never its folder), ``n_samples``, ``n_variants``,
``multiallelic`` (``{"split": n}`` or ``{"skip": n}``, multi-allelic records seen) and
provenance counts.  :func:`open_genotypes` refuses another format or a newer version.

Reading is streaming: :meth:`GenotypeStore.iter_dosage` and
:meth:`GenotypeStore.iter_genotypes` yield one slice of variants at a time, so memory is
bounded by ``chunk_size x n_samples``, never by the cohort.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from secured_bio.errors import ConfigError, FormatError, InputFileNotFoundError

# The format constants, the variable specs and the writer live one level below (in
# ``_writer``, shared with the ingesters) and are re-exported here, where readers look.
from secured_bio.genomics._writer import (
    CHUNK_TARGET_BYTES,
    DEFAULT_CHUNK_SIZE,
    FILL_ALLELE,
    FORMAT_NAME,
    FORMAT_VERSION,
    MISSING_ALLELE,
    VARIABLES,
    Variable,
    _is_our_store,  # noqa: F401  (re-exported: callers and tests use store._StoreWriter)
    _read_group_meta,
    _StoreWriter,  # noqa: F401
    auto_chunk_size,
)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CHUNK_TARGET_BYTES",
    "DEFAULT_CHUNK_SIZE",
    "auto_chunk_size",
    "MISSING_ALLELE",
    "FILL_ALLELE",
    "VARIABLES",
    "Variable",
    "GenotypeStore",
    "open_genotypes",
    "open_vcf_zarr",
    "VCF_ZARR_VERSIONS",
    "is_vcf_path",
    "genotype_dosage",
]

_VCF_SUFFIXES = (".vcf", ".vcf.gz", ".vcf.bgz", ".bcf")


def is_vcf_path(path: str | os.PathLike[str]) -> bool:
    """Return True when ``path`` names a VCF/BCF file by its suffix.

    Examples
    --------
    >>> is_vcf_path("site1.vcf.gz"), is_vcf_path("x.BCF"), is_vcf_path("site1.zarr")
    (True, True, False)
    """
    return Path(path).name.lower().endswith(_VCF_SUFFIXES)


# ------------------------------------------------------------------------------------------
# Genotype codes -> dosage / categories (lookup tables over the two int8 alleles of a call)
# ------------------------------------------------------------------------------------------


def _pair_codes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (code, allele 0, allele 1) for all 65,536 int8 pairs, as their uint16 views."""
    a = np.arange(-128, 128, dtype=np.int16)
    a0, a1 = np.meshgrid(a, a, indexing="ij")
    pairs = np.stack([a0.ravel(), a1.ravel()], axis=-1).astype(np.int8)
    return np.ascontiguousarray(pairs).view(np.uint16).ravel(), a0.ravel(), a1.ravel()


@functools.cache
def _dosage_lut() -> np.ndarray:
    code, a0, a1 = _pair_codes()
    dose = np.full(65_536, np.nan)
    dip = (a0 >= 0) & (a0 <= 1) & (a1 >= 0) & (a1 <= 1)
    hap = (a0 >= 0) & (a0 <= 1) & (a1 == FILL_ALLELE)
    dose[code[dip]] = (a0 + a1)[dip]
    dose[code[hap]] = a0[hap]
    return dose


# Call categories used by QC (one pass of a lookup table instead of many comparisons).
(_CAT_HOM_REF, _CAT_HET, _CAT_HOM_ALT, _CAT_HAP_REF, _CAT_HAP_ALT, _CAT_MISSING,
 _CAT_INVALID) = range(7)


@functools.cache
def _category_lut() -> np.ndarray:
    code, a0, a1 = _pair_codes()
    cat = np.full(65_536, _CAT_INVALID, dtype=np.uint8)

    def put(mask: np.ndarray, value: int) -> None:
        cat[code[mask]] = value

    called = (a0 >= 0) & (a0 <= 1)
    put((a0 == 0) & (a1 == 0), _CAT_HOM_REF)
    put(((a0 == 0) & (a1 == 1)) | ((a0 == 1) & (a1 == 0)), _CAT_HET)
    put((a0 == 1) & (a1 == 1), _CAT_HOM_ALT)
    put((a0 == 0) & (a1 == FILL_ALLELE), _CAT_HAP_REF)
    put((a0 == 1) & (a1 == FILL_ALLELE), _CAT_HAP_ALT)
    # Missing: either allele missing (a half-call such as ./1 counts as missing, as with
    # plink2 --vcf-half-call missing), or a missing haploid call.
    miss = ((a0 == MISSING_ALLELE) & ((a1 == MISSING_ALLELE) | (a1 == FILL_ALLELE)))
    miss |= (a0 == MISSING_ALLELE) & (a1 >= 0) & (a1 <= 1)
    miss |= called & (a1 == MISSING_ALLELE)
    put(miss, _CAT_MISSING)
    return cat


def genotype_dosage(gt: np.ndarray) -> np.ndarray:
    """Return the ALT-allele dosage of int8 calls ``(..., 2)``.

    0, 1 or 2 for a diploid call, 0 or 1 for a haploid call, NaN when missing (half-calls
    such as ``./1`` included).

    Examples
    --------
    >>> g = np.array([[[0, 1], [1, 1], [-1, -1], [1, -2], [-1, 1]]], dtype=np.int8)
    >>> genotype_dosage(g)
    array([[ 1.,  2., nan,  1., nan]])
    """
    codes = np.ascontiguousarray(gt, dtype=np.int8).view(np.uint16)[..., 0]
    return _dosage_lut()[codes]


@functools.cache
def _code_lut() -> np.ndarray:
    dose = _dosage_lut()
    return np.where(np.isnan(dose), -1, dose).astype(np.int8)


def _genotype_codes(gt: np.ndarray) -> np.ndarray:
    """Return the ALT-allele dosage of int8 calls ``(..., 2)`` as int8 codes, -1 = missing.

    The values of :func:`genotype_dosage` (missing as -1 instead of NaN) in one byte each:
    the look-up table fits in the CPU cache and the output is 8x smaller than float64, so
    the linear test's hot loop reads far less memory.

    Examples
    --------
    >>> g = np.array([[[0, 1], [1, 1], [-1, -1], [1, -2], [-1, 1]]], dtype=np.int8)
    >>> _genotype_codes(g).tolist()
    [[1, 2, -1, 1, -1]]
    """
    codes = np.ascontiguousarray(gt, dtype=np.int8).view(np.uint16)[..., 0]
    return _code_lut()[codes]


def _genotype_categories(gt: np.ndarray) -> np.ndarray:
    """Return the call category (``_CAT_*`` code, uint8) of int8 calls ``(..., 2)``.

    Examples
    --------
    >>> g = np.array([[0, 0], [1, 0], [1, 1], [0, -2], [1, -2], [-1, -1], [5, 0]], np.int8)
    >>> _genotype_categories(g).tolist()
    [0, 1, 2, 3, 4, 5, 6]
    """
    codes = np.ascontiguousarray(gt, dtype=np.int8).view(np.uint16)[..., 0]
    return _category_lut()[codes]


# ------------------------------------------------------------------------------------------
# Reader
# ------------------------------------------------------------------------------------------


def _as_str_array(values: Any) -> np.ndarray:
    """Convert zarr's variable-width strings to a fixed-width numpy ``str`` array."""
    arr = np.asarray(values)
    if arr.dtype.kind == "U":
        return arr
    if arr.size == 0:
        return np.zeros(arr.shape, dtype="<U1")
    width = max(1, int(np.max(np.strings.str_len(arr))))
    return arr.astype(f"<U{width}")


class GenotypeStore:
    """Read-only view of a genotype store (see the module docstring for the format).

    Create it with :func:`open_genotypes`.  Metadata arrays (``sample_ids``, ``contig``,
    ``position``, ``variant_id``, ``ref``, ``alt``) are read on first access; genotypes are
    only read chunk by chunk through :meth:`iter_dosage` and :meth:`iter_genotypes`.

    Attributes
    ----------
    path
        The store folder.
    attrs
        The group attributes (format, version, source, counts).
    n_samples, n_variants
        Dimensions.
    chunk_size
        Variants per stored chunk (the default step of the iterators).
    sample_ids, contig, variant_id, ref, alt
        ``str`` arrays; ``position`` is int64 (1-based).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from secured_bio.genomics.ingest import ingest_vcf
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "x.vcf").write_text(
    ...     "##fileformat=VCFv4.2\\n#CHROM\\tPOS\\tID\\tREF\\tALT\\tQUAL\\tFILTER\\tINFO\\t"
    ...     "FORMAT\\ts1\\ts2\\n1\\t5\\trs1\\tA\\tG\\t.\\t.\\t.\\tGT\\t0/1\\t1|1\\n")
    >>> _ = ingest_vcf(d / "x.vcf", d / "x.zarr")
    >>> with open_genotypes(d / "x.zarr") as store:
    ...     print(store.n_samples, store.n_variants, store.ref.tolist(), store.alt.tolist())
    ...     print([dose.tolist() for _, dose in store.iter_dosage()])
    2 1 ['A'] ['G']
    [[[1.0, 2.0]]]
    """

    path: Path
    attrs: dict[str, Any]
    n_samples: int
    n_variants: int

    def __init__(self, path: str | os.PathLike[str], *, _owned_tmpdir: Path | None = None
                 ) -> None:
        import zarr

        self.path = Path(path)
        self._group = zarr.open_group(str(self.path), mode="r", zarr_format=3)
        self.attrs = dict(self._group.attrs)
        self.n_samples = int(self.attrs["n_samples"])
        self.n_variants = int(self.attrs["n_variants"])
        self._gt = self._array("call_genotype")
        self._closed = False
        self._finalizer: weakref.finalize | None = None
        if _owned_tmpdir is not None:
            # A store ingested on the fly from a VCF lives in a temporary folder that this
            # object owns: removed on close() or when the object is garbage-collected.
            self._finalizer = weakref.finalize(
                self, shutil.rmtree, str(_owned_tmpdir), ignore_errors=True
            )

    # -- metadata ------------------------------------------------------------------------
    def _array(self, name: str) -> Any:
        """Return the zarr array ``name`` (typed Any: group indexing returns a union)."""
        return self._group[name]

    def _read(self, name: str) -> np.ndarray:
        return np.asarray(self._array(name)[...])

    @functools.cached_property
    def sample_ids(self) -> np.ndarray:
        """Sample names, ``(n_samples,)`` str."""
        return _as_str_array(self._read("sample_id"))

    @functools.cached_property
    def contig(self) -> np.ndarray:
        """Contig of each variant, ``(n_variants,)`` str."""
        return _as_str_array(self._read("variant_contig"))

    @functools.cached_property
    def position(self) -> np.ndarray:
        """1-based position of each variant, ``(n_variants,)`` int64."""
        return self._read("variant_position").astype(np.int64, copy=False)

    @functools.cached_property
    def variant_id(self) -> np.ndarray:
        """Variant IDs, ``(n_variants,)`` str (``'.'`` where the VCF had none)."""
        return _as_str_array(self._read("variant_id"))

    @functools.cached_property
    def _alleles(self) -> np.ndarray:
        return _as_str_array(self._read("variant_allele")).reshape(self.n_variants, 2)

    @functools.cached_property
    def ref(self) -> np.ndarray:
        """REF allele of each variant, ``(n_variants,)`` str."""
        return self._alleles[:, 0].copy()

    @functools.cached_property
    def alt(self) -> np.ndarray:
        """ALT allele of each variant, ``(n_variants,)`` str."""
        return self._alleles[:, 1].copy()

    @property
    def chunk_size(self) -> int:
        """Variants per stored chunk."""
        return int(self._gt.chunks[0])

    @property
    def has_phase(self) -> bool:
        """True when the store carries ``call_genotype_phased``."""
        return "call_genotype_phased" in self._group

    # -- genotypes -----------------------------------------------------------------------
    def _sample_index(self, samples: np.ndarray | Sequence[int] | None) -> np.ndarray | None:
        if samples is None:
            return None
        sel = np.asarray(samples)
        if sel.dtype == bool:
            if sel.shape != (self.n_samples,):
                raise ConfigError(
                    "boolean sample mask has the wrong length", where="samples",
                    expected=f"shape ({self.n_samples},)", got=f"shape {sel.shape}",
                )
            return np.flatnonzero(sel)
        if sel.ndim != 1 or (sel.size and sel.dtype.kind not in "iu"):
            raise ConfigError(
                "samples must be an integer index or a boolean mask", where="samples",
                got=f"dtype {sel.dtype}, shape {sel.shape}",
            )
        sel = sel.astype(np.int64, copy=False)
        if sel.size and (sel.min() < -self.n_samples or sel.max() >= self.n_samples):
            raise ConfigError(
                "sample index out of range", where="samples",
                expected=f"indices in [0, {self.n_samples})", got="an index outside",
            )
        return sel

    def _steps(self, chunk_size: int | None) -> Iterator[slice]:
        step = self.chunk_size if chunk_size is None else chunk_size
        if not isinstance(step, int | np.integer) or isinstance(step, bool) or step < 1:
            raise ConfigError("chunk_size must be a positive integer", where="chunk_size",
                              got=repr(step))
        for start in range(0, self.n_variants, int(step)):
            yield slice(start, min(start + int(step), self.n_variants))

    def read_genotypes(self, variants: slice, *, samples: np.ndarray | None = None
                       ) -> np.ndarray:
        """Return the int8 calls ``(n_variants_in_slice, n_selected_samples, 2)``.

        Parameters
        ----------
        variants
            A slice of variant indices.
        samples
            Integer index or boolean mask of samples (default: all).
        """
        self._check_open()
        idx = self._sample_index(samples)
        gt = np.asarray(self._gt[variants])
        return gt if idx is None else gt[:, idx, :]

    def iter_genotypes(self, *, chunk_size: int | None = None,
                       samples: np.ndarray | None = None
                       ) -> Iterator[tuple[slice, np.ndarray]]:
        """Yield ``(variant slice, int8 calls (n_chunk_variants, n_selected_samples, 2))``.

        Parameters
        ----------
        chunk_size
            Variants per step (default: the stored chunk size, which reads each chunk once).
        samples
            Integer index or boolean mask selecting samples.

        Raises
        ------
        ConfigError
            If ``chunk_size`` or ``samples`` is invalid.
        """
        self._check_open()
        idx = self._sample_index(samples)
        # Steps that do not line up with the stored chunks are cut from the stored chunk
        # held in memory, so every stored chunk is decompressed exactly once.
        stored = self.chunk_size
        held_start, held = -1, np.empty((0, 0, 2), dtype=np.int8)
        for sl in self._steps(chunk_size):
            parts = []
            pos = sl.start
            while pos < sl.stop:
                c0 = (pos // stored) * stored
                if c0 != held_start:
                    held = np.asarray(self._gt[c0:min(c0 + stored, self.n_variants)])
                    if idx is not None:
                        held = np.ascontiguousarray(held[:, idx, :])
                    held_start = c0
                end = min(sl.stop, c0 + stored)
                parts.append(held[pos - c0:end - c0])
                pos = end
            yield sl, (parts[0] if len(parts) == 1 else np.concatenate(parts))

    def iter_dosage(self, *, chunk_size: int | None = None,
                    samples: np.ndarray | None = None
                    ) -> Iterator[tuple[slice, np.ndarray]]:
        """Yield ``(variant slice, ALT-allele dosage float64 (n_chunk_variants, n_selected))``.

        Diploid calls give 0, 1 or 2; haploid calls 0 or 1; NaN where the call is missing
        (including half-missing calls such as ``./1``).

        Parameters
        ----------
        chunk_size
            Variants per step (default: the stored chunk size).
        samples
            Integer index or boolean mask selecting samples.

        Raises
        ------
        ConfigError
            If ``chunk_size`` or ``samples`` is invalid.
        """
        for sl, gt in self.iter_genotypes(chunk_size=chunk_size, samples=samples):
            yield sl, genotype_dosage(gt)

    def iter_phased(self, *, chunk_size: int | None = None,
                    samples: np.ndarray | None = None) -> Iterator[tuple[slice, np.ndarray]]:
        """Yield ``(variant slice, bool (n_chunk_variants, n_selected))`` phase flags."""
        self._check_open()
        idx = self._sample_index(samples)
        arr = self._array("call_genotype_phased") if self.has_phase else None
        for sl in self._steps(chunk_size):
            if arr is None:
                ph = np.zeros((sl.stop - sl.start, self.n_samples), dtype=bool)
            else:
                ph = np.asarray(arr[sl])
            yield sl, (ph if idx is None else ph[:, idx])

    # -- lifetime ------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ConfigError("genotype store is closed", where=str(self.path),
                              fix="open it again with open_genotypes()")

    def close(self) -> None:
        """Release the store; a temporary store ingested from a VCF is deleted."""
        self._closed = True
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> GenotypeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"GenotypeStore({str(self.path)!r}, n_samples={self.n_samples}, "
                f"n_variants={self.n_variants})")


VCF_ZARR_VERSIONS = ("0.2", "0.3", "0.4", "0.5")
"""``vcf_zarr_version`` values read by :func:`open_genotypes` (0.5: bio2zarr 0.2.1 writes it)."""


def _vcf_zarr_attrs(path: Path) -> dict[str, Any] | None:
    """Return the group attributes of a VCF Zarr store (zarr v2 or v3), or None."""
    import json

    for name in (".zattrs", "zarr.json"):
        f = path / name
        if f.is_file():
            try:
                meta = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                return None
            attrs = meta.get("attributes", {}) if name == "zarr.json" else meta
            if isinstance(attrs, dict) and "vcf_zarr_version" in attrs:
                return attrs
    return None


class _VcfZarrStore(GenotypeStore):
    """A VCF Zarr store (bio2zarr's ``vcf2zarr``, sgkit) read as a :class:`GenotypeStore`.

    Nothing is copied: ``call_genotype`` is read chunk by chunk as for our own stores; the
    variant metadata arrays map as ``variant_contig`` (an index into ``contig_id``) ->
    contig names, an empty ALT (a record without ALT) -> ``'.'``, an ID masked by
    ``variant_id_mask`` -> ``'.'``.  Only biallelic diploid data is accepted (split
    multi-allelic records first: ``bcftools norm -m-any``, before ``vcf2zarr convert``).
    """

    def __init__(self, path: str | os.PathLike[str], attrs: dict[str, Any]) -> None:
        import zarr

        self.path = Path(path)
        self._closed = False
        self._finalizer = None
        try:
            self._group = zarr.open_group(str(self.path), mode="r")
        except Exception as e:  # zarr raises several types for a broken group
            raise FormatError("VCF Zarr store could not be opened", where=str(self.path),
                              got=type(e).__name__,
                              fix="re-create it with vcf2zarr convert") from e
        for name in ("call_genotype", "variant_position", "variant_allele", "variant_contig",
                     "contig_id", "sample_id"):
            if name not in self._group:
                raise FormatError("VCF Zarr store lacks a required array", where=str(self.path),
                                  expected=f"array '{name}' (VCF Zarr spec)", got="none",
                                  fix="re-create it with vcf2zarr convert")
        self._gt = self._array("call_genotype")
        n_var, n_samples, ploidy = (tuple(self._gt.shape) + (0, 0, 0))[:3]
        if self._gt.ndim != 3 or ploidy != 2 or np.dtype(self._gt.dtype).kind != "i":
            raise FormatError(
                "VCF Zarr call_genotype is not diploid integer calls",
                where=f"{self.path}:call_genotype",
                expected="int array (variants, samples, ploidy 2)",
                got=f"{self._gt.dtype} shape {tuple(self._gt.shape)}",
                fix="give vcf2zarr convert --ploidy 2 (haploid calls are kept as [a, -2])")
        self.n_variants, self.n_samples = int(n_var), int(n_samples)
        alleles = self._array("variant_allele")
        if alleles.ndim != 2 or alleles.shape[0] != self.n_variants:
            raise FormatError("VCF Zarr variant_allele has the wrong shape",
                              where=f"{self.path}:variant_allele",
                              expected=f"({self.n_variants}, alleles)",
                              got=str(tuple(alleles.shape)))
        for name, want in (("variant_position", (self.n_variants,)),
                           ("variant_contig", (self.n_variants,)),
                           ("sample_id", (self.n_samples,))):
            if tuple(self._array(name).shape) != want:
                raise FormatError("VCF Zarr array has the wrong shape",
                                  where=f"{self.path}:{name}", expected=str(want),
                                  got=str(tuple(self._array(name).shape)))
        if alleles.shape[1] > 2:
            extra = _as_str_array(alleles[:, 2:])
            n_multi = int(np.count_nonzero((extra != "").any(axis=1)))
            if n_multi:
                raise FormatError(
                    "VCF Zarr store has multi-allelic variants",
                    where=f"{self.path}:variant_allele", expected="biallelic variants",
                    got=f"{n_multi} variants with more than one ALT allele",
                    fix="split them before conversion (bcftools norm -m-any IN.vcf.gz "
                        "-Oz -o SPLIT.vcf.gz; vcf2zarr convert SPLIT.vcf.gz OUT.vcz)")
        self.attrs = {
            **{k: v for k, v in attrs.items() if k != "vcf_meta_information"},
            "format": "vcf_zarr", "source_format": "VCF Zarr",
            "source": str(attrs.get("source", self.path.name)),
            "n_samples": self.n_samples, "n_variants": self.n_variants,
        }

    @functools.cached_property
    def contig(self) -> np.ndarray:
        """Contig of each variant, ``(n_variants,)`` str (from ``contig_id``)."""
        names = _as_str_array(self._read("contig_id"))
        idx = self._read("variant_contig").astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= names.size):
            raise FormatError("VCF Zarr variant_contig points outside contig_id",
                              where=f"{self.path}:variant_contig",
                              expected=f"indices in [0, {names.size})", got="an index outside")
        return names[idx] if idx.size else np.zeros(0, dtype="<U1")

    @functools.cached_property
    def variant_id(self) -> np.ndarray:
        """Variant IDs (``'.'`` where missing)."""
        if "variant_id" not in self._group:
            return np.full(self.n_variants, ".", dtype="<U1")
        ids = _as_str_array(self._read("variant_id"))
        missing = ids == ""
        if "variant_id_mask" in self._group:
            missing |= self._read("variant_id_mask").astype(bool)
        return np.where(missing, ".", ids) if missing.any() else ids

    @functools.cached_property
    def _alleles(self) -> np.ndarray:
        a = _as_str_array(self._array("variant_allele")[:, :2])
        if a.shape[1] < 2:
            a = np.concatenate([a, np.full((a.shape[0], 1), "", dtype=a.dtype)], axis=1)
        return np.where(a == "", ".", a)


def open_vcf_zarr(path: str | os.PathLike[str]) -> GenotypeStore:
    """Open a VCF Zarr store (as written by bio2zarr's ``vcf2zarr``) as a genotype store.

    :func:`open_genotypes` calls this for a folder whose attributes carry
    ``vcf_zarr_version``; QC and GWAS then read it without a copy.

    Raises
    ------
    FormatError
        If the store is not VCF Zarr of a known version, lacks a required array, or holds
        multi-allelic or non-diploid data.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> open_vcf_zarr(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    secured_bio.errors.FormatError: not a VCF Zarr store [...]...
    """
    p = Path(path)
    attrs = _vcf_zarr_attrs(p)
    if attrs is None:
        raise FormatError("not a VCF Zarr store", where=str(p),
                          expected="a zarr group with the attribute vcf_zarr_version",
                          got="none", fix="convert a VCF with: vcf2zarr convert IN.vcf.gz OUT.vcz")
    version = str(attrs.get("vcf_zarr_version"))
    if version not in VCF_ZARR_VERSIONS:
        raise FormatError(
            "VCF Zarr version not supported", where=f"{p}: attribute 'vcf_zarr_version'",
            expected=" or ".join(VCF_ZARR_VERSIONS), got=repr(version)[:20],
            fix="upgrade secured_bio, or re-create the store with bio2zarr 0.2",
        )
    return _VcfZarrStore(p, attrs)


def _check_attrs(path: Path, attrs: dict[str, Any]) -> None:
    fmt = attrs.get("format")
    if fmt != FORMAT_NAME:
        raise FormatError(
            "not a secured_bio genotype store", where=f"{path}: attribute 'format'",
            expected=repr(FORMAT_NAME), got="no 'format' attribute" if fmt is None
            else repr(str(fmt)[:60]),
            fix="create the store with: secured-bio genomics ingest --vcf V --out Z.zarr",
        )
    version = attrs.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FormatError("genotype store has an invalid format_version",
                          where=f"{path}: attribute 'format_version'",
                          expected="a positive integer", got=repr(version)[:40])
    if version > FORMAT_VERSION:
        raise FormatError(
            "genotype store was written by a newer secured_bio",
            where=f"{path}: attribute 'format_version'",
            expected=f"format_version <= {FORMAT_VERSION}", got=str(version),
            fix="upgrade secured_bio (pip install -U secured-bio) to read this store",
        )
    for key in ("n_samples", "n_variants"):
        if not isinstance(attrs.get(key), int):
            raise FormatError("genotype store attributes are incomplete",
                              where=f"{path}: attribute '{key}'", expected="an integer",
                              got="missing" if key not in attrs else type(attrs[key]).__name__)


def _check_arrays(store: GenotypeStore) -> None:
    """Check that every variable is present with the dims the attributes promise."""
    sizes = {"variants": store.n_variants, "samples": store.n_samples, "ploidy": 2,
             "alleles": 2}
    group = store._group
    for var in VARIABLES.values():
        if var.name not in group:
            if var.name == "call_genotype_phased":
                continue  # optional
            raise FormatError("genotype store lacks a variable", where=f"{store.path}",
                              expected=f"array '{var.name}'", got="none",
                              fix="re-create the store with secured-bio genomics ingest")
        arr = store._array(var.name)
        want = tuple(sizes[d] for d in var.dims)
        if tuple(arr.shape) != want:
            raise FormatError(
                "genotype store variable has the wrong shape", where=f"{store.path}:{var.name}",
                expected=f"{want} ({', '.join(var.dims)})", got=str(tuple(arr.shape)),
                fix="re-create the store with secured-bio genomics ingest",
            )
        kind = np.dtype(arr.dtype).kind if var.kind != "T" else None
        if var.kind != "T" and kind != var.kind:
            raise FormatError("genotype store variable has the wrong dtype",
                              where=f"{store.path}:{var.name}", expected=f"kind '{var.kind}'",
                              got=str(arr.dtype))


def open_genotypes(path: str | os.PathLike[str], **ingest_options: Any) -> GenotypeStore:
    """Open a genotype store; a VCF/BCF path is ingested into a temporary store first.

    Parameters
    ----------
    path
        A store folder written by :func:`~secured_bio.genomics.ingest_vcf`, a VCF Zarr
        store (bio2zarr's ``vcf2zarr convert``, read in place by :func:`open_vcf_zarr`),
        or a VCF/BCF
        file (``.vcf``, ``.vcf.gz``, ``.vcf.bgz``, ``.bcf``).  A VCF is ingested into a
        temporary folder owned by the returned object and deleted by
        :meth:`GenotypeStore.close` or when the object is garbage-collected.
    **ingest_options
        Passed to :func:`~secured_bio.genomics.ingest_vcf` when ``path`` is a VCF/BCF
        (``chunk_size``, ``multiallelic``, ``region``).

    Returns
    -------
    GenotypeStore
        A read-only view; use it as a context manager to release it.

    Raises
    ------
    InputFileNotFoundError
        If ``path`` does not exist.
    FormatError
        If ``path`` is not a genotype store, was written by a newer secured_bio
        (the message says to upgrade), or is inconsistent; or a VCF that cannot be read.
    ConfigError
        If ingest options are given for a store folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "x.vcf").write_text(
    ...     "##fileformat=VCFv4.2\\n#CHROM\\tPOS\\tID\\tREF\\tALT\\tQUAL\\tFILTER\\tINFO\\t"
    ...     "FORMAT\\ts1\\n1\\t5\\t.\\tA\\tG\\t.\\t.\\t.\\tGT\\t0/1\\n")
    >>> store = open_genotypes(d / "x.vcf")   # ingested into a temporary store
    >>> store.n_variants, store.variant_id.tolist()
    (1, ['.'])
    >>> store.close()
    """
    p = Path(path)
    if not p.exists():
        raise InputFileNotFoundError("genotype input not found", where=str(p),
                                     expected="a genotype store folder or a VCF/BCF file",
                                     fix="check the path")
    if p.is_file():
        if not is_vcf_path(p):
            raise FormatError(
                "genotype input is a file but not a VCF/BCF", where=str(p),
                expected="a store folder, or a file ending in " + ", ".join(_VCF_SUFFIXES),
                got=f"suffix {''.join(p.suffixes)[-16:] or '(none)'}",
                fix="pass the .zarr folder or the VCF",
            )
        from secured_bio.genomics.ingest import ingest_vcf

        tmp = Path(tempfile.mkdtemp(prefix="secured_bio_genotypes_"))
        try:
            ingest_vcf(p, tmp / "store.zarr", progress=False, **ingest_options)
            store = GenotypeStore(tmp / "store.zarr", _owned_tmpdir=tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return store
    if ingest_options:
        raise ConfigError("ingest options apply to VCF input only", where=str(p),
                          got=", ".join(sorted(ingest_options)))
    if _vcf_zarr_attrs(p) is not None:  # VCF Zarr (bio2zarr, sgkit): read as it is
        return open_vcf_zarr(p)
    attrs = _read_group_meta(p)
    _check_attrs(p, attrs)
    store = GenotypeStore(p)
    _check_arrays(store)
    return store
