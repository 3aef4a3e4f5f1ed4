"""Ingest a VCF/BCF into a genotype store, streaming chunk by chunk.

Records are read with pysam/htslib: VCF text (plain, BGZF or gzip) line by line through
``pysam.BGZFile`` (or ``pysam.TabixFile.fetch`` for a region), BCF through
``pysam.VariantFile``, whose records are turned back into VCF text by htslib.  Both routes
then share one parser that decodes the genotype (GT) column of a batch of records with numpy:
the common case (``FORMAT`` = ``GT``, diploid single-digit calls such as ``0/1`` or ``1|0``) is
decoded for a whole batch at once; any other layout (more FORMAT fields, haploid calls,
multi-digit alleles) is decoded per record, and odd calls one by one.

Memory is bounded by ``chunk_size x n_samples``, never by the number of variants: two chunk
buffers of int8 calls (one being filled while the other is compressed and written in a
background thread; 2 bytes per call each, plus 1 byte per call for phase flags once a phased
call appears) and one parse batch of at most ~2 million calls.  The store is written into a
temporary folder renamed into place when complete, so a failure leaves no store behind.

Multi-allelic records (more than one ALT allele) are either

- ``split`` into one biallelic variant per ALT allele, as ``bcftools norm -m-any`` does: in
  the variant of ALT allele *k*, allele *k* becomes 1 (ALT) and every other allele (REF and
  the other ALT alleles) becomes 0 (REF); missing stays missing.  So a ``1/2`` call gives
  ``1/0`` for ALT 1 and ``0/1`` for ALT 2.  Alleles are not trimmed or left-aligned (use
  ``bcftools norm -f ref.fa`` for that), and the ID is kept on every split variant; or
- ``skip``-ped.

In both modes the number of multi-allelic records is counted, reported and stored in the
attributes (``{"split": n}`` or ``{"skip": n}``).

Calls: ``0/1`` and ``0|1`` (phase flag kept), haploid ``0``/``1`` (stored as ``[a, -2]``),
missing ``./.`` and ``.`` (``[-1, -1]`` / ``[-1, -2]``), half-missing ``./1`` (``[-1, 1]``,
read as missing by the dosage and QC readers).  Ploidy above 2 is refused.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from secured_bio._atomic import atomic_dir
from secured_bio._bgzf import compression as _compression
from secured_bio._bgzf import has_bgzf_eof as _has_bgzf_eof
from secured_bio._inputs import describe_error, reading
from secured_bio._progress import track
from secured_bio.errors import (
    ConfigError,
    FormatError,
    InputFileNotFoundError,
    SchemaError,
    SecuredBioError,
    did_you_mean,
)
from secured_bio.genomics._writer import (
    FILL_ALLELE,
    MISSING_ALLELE,
    _is_our_store,
    _StoreWriter,
    auto_chunk_size,
)

__all__ = ["IngestReport", "ingest_vcf", "MULTIALLELIC_MODES"]

MULTIALLELIC_MODES = ("split", "skip")
"""Accepted values of ``ingest_vcf(multiallelic=...)``."""

_FIXED = [b"#CHROM", b"POS", b"ID", b"REF", b"ALT", b"QUAL", b"FILTER", b"INFO", b"FORMAT"]
# Calls per parse batch (~4 MB of int8 calls): bounds the parse memory for any cohort size.
_BATCH_CALLS = 1 << 21
_MAX_BATCH_LINES = 1024
# Largest allele index an int8 call can hold.
_MAX_ALLELES = 127

# One byte of a GT field -> allele (0-9), -1 for '.', _BAD for anything else.
_BAD = -100
_ALLELE_LUT = np.full(256, _BAD, dtype=np.int16)
_ALLELE_LUT[ord("0"):ord("9") + 1] = np.arange(10)
_ALLELE_LUT[ord(".")] = MISSING_ALLELE
_TAB, _COLON, _SLASH, _PIPE = 9, 58, 47, 124


def _fast_luts() -> tuple[np.ndarray, np.ndarray]:
    """Build the lookup tables that decode fixed-width calls.

    Each sample's 4 bytes ``A S B \\t`` are read as two little-endian uint16.  ``lo[AS]``
    gives allele A (low byte, int8 bits) and flags (0x100 valid allele and separator, 0x200
    phased); ``hi[B\\t]`` gives allele B (low byte) and 0x100 when B is valid and followed
    by a tab.
    """
    lo = np.zeros(65_536, dtype=np.uint16)
    hi = np.zeros(65_536, dtype=np.uint16)
    for b0 in range(256):
        a = int(_ALLELE_LUT[b0])
        if a == _BAD:
            continue
        for sep, flags in ((_SLASH, 0x100), (_PIPE, 0x300)):
            lo[b0 | (sep << 8)] = (a & 0xFF) | flags
        hi[b0 | (_TAB << 8)] = (a & 0xFF) | 0x100
    return lo, hi


_FAST_LO, _FAST_HI = _fast_luts()
_GT_RE = re.compile(rb"^(\.|\d+)(?:([/|])(\.|\d+))?$")
_POLYPLOID_RE = re.compile(rb"^(?:\.|\d+)(?:[/|](?:\.|\d+)){2,}$")


@dataclass(frozen=True)
class IngestReport:
    """What :func:`ingest_vcf` wrote (counts only, never data values).

    Attributes
    ----------
    store
        The store folder.
    source
        File name of the input (no folder).
    source_format
        ``"VCF"`` or ``"BCF"``.
    region
        The region read, or None for the whole file.
    n_samples
        Samples (VCF columns).
    n_records
        Data records read.
    n_variants
        Biallelic variants written.
    multiallelic
        ``"split"`` or ``"skip"``.
    multiallelic_records
        Records with more than one ALT allele (split or skipped).
    split_variants
        Variants produced by splitting (0 with ``skip``).
    haploid_calls, phased_calls
        Calls that were haploid, or phased, in the input.
    chunk_size
        Variants per stored chunk.
    elapsed_s
        Wall time.
    """

    store: Path
    source: str
    source_format: str
    region: str | None
    n_samples: int
    n_records: int
    n_variants: int
    multiallelic: str
    multiallelic_records: int
    split_variants: int
    haploid_calls: int
    phased_calls: int
    chunk_size: int
    elapsed_s: float

    def summary(self) -> str:
        """One line for the CLI.

        Examples
        --------
        >>> r = IngestReport(Path("z.zarr"), "a.vcf.gz", "VCF", None, 3, 5, 6, "split", 1, 2,
        ...                  0, 0, 10000, 0.1)
        >>> r.summary()
        'ingested a.vcf.gz: 3 samples, 6 variants from 5 records (multi-allelic records: 1 split into 2 variants) -> z.zarr'
        """  # noqa: E501
        if self.multiallelic == "split":
            multi = f"{self.multiallelic_records} split into {self.split_variants} variants"
        else:
            multi = f"{self.multiallelic_records} skipped"
        return (f"ingested {self.source}: {self.n_samples} samples, {self.n_variants} variants "
                f"from {self.n_records} records (multi-allelic records: {multi}) -> {self.store}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of the report."""
        d = asdict(self)
        d["store"] = str(self.store)
        return d


# ------------------------------------------------------------------------------------------
# Sources: text lines of data records, from VCF text or BCF
# ------------------------------------------------------------------------------------------


def _where(path: Path, record: int | None, line: int | None = None, extra: str = "") -> str:
    parts = []
    if record is not None:
        parts.append(f"record {record}" + (f" (line {line})" if line is not None else ""))
    if extra:
        parts.append(extra)
    return f"{path}: " + ", ".join(parts) if parts else str(path)






def _is_bcf(path: Path, compression: str) -> bool:
    with reading(path, "VCF/BCF file", expected="a VCF (plain, BGZF or gzip) or a BCF",
                 fix="the file was cut short or damaged: re-copy or re-create it"):
        if compression == "plain":
            with open(path, "rb") as f:
                return f.read(3) == b"BCF"
        with gzip.open(path, "rb") as g:
            return g.read(3) == b"BCF"


class _Source:
    """Data records of a VCF/BCF as VCF text lines (bytes without the newline)."""

    path: Path
    source_format: str
    samples: list[str]
    header_lines: int | None
    truncated: bool

    def records(self) -> Iterator[bytes]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    region: str | None = None

    def where(self, record: int | None, extra: str = "") -> str:
        line = (self.header_lines + record
                if self.header_lines is not None and record is not None else None)
        if self.region is not None:
            extra = ", ".join(x for x in (f"in region {self.region}", extra) if x)
        return _where(self.path, record, line, extra)

    def truncated_error(self, record: int) -> FormatError:
        """Return the error for a stream that breaks off at (or just after) ``record``."""
        record = max(record, 1)
        return FormatError(
            f"{self.source_format} file is truncated or corrupt", where=self.where(record),
            expected="complete BGZF blocks up to the end-of-file block",
            got=f"data that breaks off at or after record {record}",
            fix="the file was cut short or damaged: re-copy or re-create it",
        )


class _TextSource(_Source):
    source_format = "VCF"

    def __init__(self, path: Path, compression: str, region: str | None) -> None:
        import pysam

        self.path = path
        self.region = region
        self.truncated = compression == "bgzf" and not _has_bgzf_eof(path)
        try:
            self._fh = pysam.BGZFile(str(path), "rb", index=None)
        except (OSError, ValueError) as e:
            raise FormatError("VCF could not be opened", where=str(path),
                              got=type(e).__name__, fix="check the file with bcftools view -h"
                              ) from e
        self._lines = iter(self._fh)
        self._tabix: Any = None
        self.header_lines = None
        try:
            self.samples, self.header_lines = self._read_header()
        except BaseException as e:
            # Close now: pysam's __dealloc__ would otherwise print "Exception ignored" with
            # a traceback when the damaged handle is collected.
            self.close()
            if not isinstance(e, SecuredBioError) and isinstance(e, OSError | ValueError |
                                                                 EOFError):
                raise FormatError(
                    "VCF header could not be read", where=str(path),
                    expected="a complete VCF text header",
                    got=("a file cut short (no BGZF end-of-file block)" if self.truncated
                         else describe_error(e)),
                    fix="the file was cut short or damaged: re-copy or re-create it",
                ) from e
            raise
        if region is not None:
            if compression != "bgzf":
                raise ConfigError(
                    "a region needs a BGZF-compressed, indexed VCF", where=str(path),
                    got=f"a {compression} file", fix="bgzip it and run tabix -p vcf on it, "
                    "or leave out the region",
                )
            if not any(path.with_name(path.name + ext).exists() for ext in (".tbi", ".csi")):
                raise ConfigError("a region needs an index next to the VCF", where=str(path),
                                  expected=".tbi or .csi", got="none",
                                  fix=f"run tabix -p vcf {path}")
            self.header_lines = None  # record numbers count from the region's start
            try:
                self._tabix = pysam.TabixFile(str(path))
            except (OSError, ValueError) as e:
                raise FormatError("VCF index could not be read", where=str(path),
                                  got=type(e).__name__, fix=f"re-run tabix -p vcf {path}") from e

    def _read_header(self) -> tuple[list[str], int]:
        n = 0
        first = True
        for raw in self._lines:
            n += 1
            if first:
                first = False
                if not raw.startswith(b"##fileformat=VCF"):
                    raise FormatError(
                        "not a VCF file", where=_where(self.path, None, extra="line 1"),
                        expected="'##fileformat=VCFv4.x' as the first line",
                        got="a first line without it", fix="check that this is a VCF/BCF",
                    )
                continue
            if raw.startswith(b"##"):
                continue
            if raw.startswith(b"#CHROM"):
                columns = raw.rstrip(b"\r\n").split(b"\t")
                if columns[:8] != _FIXED[:8]:
                    raise FormatError(
                        "malformed #CHROM header line", where=_where(self.path, None,
                                                                      extra=f"line {n}"),
                        expected="tab-separated " + " ".join(c.decode() for c in _FIXED[:8]),
                        got=f"{len(columns)} fields not in that order",
                        fix="the header line must be tab-separated (bcftools reheader)",
                    )
                if len(columns) < 10 or columns[8] != b"FORMAT":
                    raise SchemaError(
                        "VCF has no genotype columns", where=_where(self.path, None,
                                                                    extra=f"line {n}"),
                        expected="FORMAT and at least one sample column after INFO",
                        got=f"{max(0, len(columns) - 9)} sample columns",
                        fix="use the VCF with per-sample genotypes",
                    )
                try:
                    samples = [c.decode("utf-8") for c in columns[9:]]
                except UnicodeDecodeError as e:
                    raise FormatError("sample names are not UTF-8",
                                      where=_where(self.path, None, extra=f"line {n}"),
                                      fix="rename the samples (bcftools reheader -s)") from e
                return samples, n
            break
        if self.truncated:
            raise self.truncated_error(1)
        raise FormatError("VCF header has no #CHROM line", where=str(self.path),
                          expected="'##' meta lines then the #CHROM header line",
                          got=f"{n} lines without it", fix="check that this is a VCF file")

    def records(self) -> Iterator[bytes]:
        n = 0
        if self._tabix is not None:
            try:
                it = self._tabix.fetch(region=self.region)
            except ValueError as e:
                raise ConfigError("region not found in the VCF index", where=str(self.path),
                                  got=repr(self.region),
                                  fix="use CONTIG or CONTIG:START-END with a contig of the VCF"
                                  ) from e
            try:
                for line in it:
                    n += 1
                    yield line.encode("utf-8")
            except (OSError, ValueError) as e:
                raise self.truncated_error(n + 1) from e
            return
        try:
            for raw in self._lines:
                if raw:
                    n += 1
                    yield raw
        except (OSError, ValueError) as e:
            raise self.truncated_error(n + 1) from e
        # htslib reports a damaged or cut BGZF stream only when the file is closed; the
        # last line read (record n) may then be partial.
        try:
            self._fh.close()
        except OSError as e:
            raise self.truncated_error(n) from e
        if self.truncated:
            raise self.truncated_error(n)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()
        if self._tabix is not None:
            with contextlib.suppress(OSError):
                self._tabix.close()


class _BcfSource(_Source):
    source_format = "BCF"
    header_lines = None

    def __init__(self, path: Path, compression: str, region: str | None) -> None:
        import pysam

        self.path = path
        self.region = region
        self.truncated = compression == "bgzf" and not _has_bgzf_eof(path)
        try:
            # ignore_truncation: read up to the cut so that the error names the record.
            self._vf = pysam.VariantFile(str(path), ignore_truncation=True)
        except (OSError, ValueError) as e:
            raise FormatError(
                "BCF could not be opened by htslib", where=str(path), got=type(e).__name__,
                fix="the file may be truncated or corrupted, or have duplicated sample "
                "names; check it with bcftools view -h",
            ) from e
        self.samples = list(self._vf.header.samples)
        if region is not None and self._vf.index is None:
            raise ConfigError("a region needs an index next to the BCF", where=str(path),
                              expected=".csi", got="none", fix=f"run bcftools index {path}")

    def records(self) -> Iterator[bytes]:
        n = 0
        if self.region is not None:
            try:
                it = self._vf.fetch(region=self.region)
            except ValueError as e:
                raise ConfigError("region not found in the BCF index", where=str(self.path),
                                  got=repr(self.region),
                                  fix="use CONTIG or CONTIG:START-END with a contig of the BCF"
                                  ) from e
        else:
            it = iter(self._vf)
        while True:
            try:
                rec = next(it)
            except StopIteration:
                break
            except (OSError, ValueError) as e:
                if self.truncated:
                    raise self.truncated_error(n + 1) from e
                raise FormatError("BCF record could not be parsed", where=self.where(n + 1),
                                  expected="a valid BCF record", got="a malformed record",
                                  fix="inspect the record with bcftools view") from e
            n += 1
            yield str(rec).rstrip("\n").encode("utf-8")
        if self.truncated:
            raise self.truncated_error(n + 1)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._vf.close()


def _open_source(path: Path, region: str | None) -> _Source:
    compression = _compression(path)
    if _is_bcf(path, compression):
        return _BcfSource(path, compression, region)
    return _TextSource(path, compression, region)


@contextlib.contextmanager
def _quiet_htslib() -> Iterator[None]:
    """Silence htslib's stderr messages: they can quote record content (sample names...).

    pysam's "no BGZF EOF marker" warning is silenced too: truncation is reported as an
    error naming the record where the data ends.
    """
    import pysam

    previous = pysam.set_verbosity(0)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="no BGZF EOF marker")
            yield
    finally:
        pysam.set_verbosity(previous)


def _check_samples(source: _Source) -> None:
    samples = source.samples
    if not samples:
        raise SchemaError("VCF has no samples", where=str(source.path),
                          expected="at least one sample column", got="0 samples",
                          fix="use the VCF with per-sample genotypes")
    counts = Counter(samples)
    n_dup = sum(c - 1 for c in counts.values() if c > 1)
    if n_dup:
        seen: set[str] = set()
        first = 0
        for i, s in enumerate(samples):
            if s in seen:
                first = i
                break
            seen.add(s)
        raise SchemaError(
            "duplicated sample IDs", where=_where(source.path, None, extra="#CHROM header"),
            expected="unique sample IDs",
            got=f"{n_dup} duplicated sample {'ID' if n_dup == 1 else 'IDs'} "
            f"(first duplicate is sample column {first + 1})",
            fix="rename the duplicates (bcftools reheader -s) or drop them",
        )


# ------------------------------------------------------------------------------------------
# Parsing a batch of records
# ------------------------------------------------------------------------------------------


class _LazyWhere:
    """Location of a record, formatted only when an error message needs it."""

    __slots__ = ("source", "record")

    def __init__(self, source: _Source, record: int) -> None:
        self.source = source
        self.record = record

    def __str__(self) -> str:
        return self.source.where(self.record)


@dataclass
class _Batch:
    gt: np.ndarray            # (k, n, 2) int8
    phased: np.ndarray        # (k, n) bool
    contig: list[str]
    position: list[int]
    variant_id: list[str]
    alleles: list[list[str]]  # REF, ALT...
    keep: list[bool]          # False: skipped multi-allelic record (genotypes not parsed)


def _parse_gt_text(text: bytes, n_alleles: int, where: object) -> tuple[int, int, bool]:
    """Parse one GT field outside the vectorised paths (rare layouts)."""
    m = _GT_RE.match(text)
    if m is None:
        if _POLYPLOID_RE.match(text):
            raise SchemaError("unsupported ploidy", where=str(where), expected="ploidy 1 or 2",
                              got="a call of ploidy > 2",
                              fix="drop or convert polyploid records (bcftools +fixploidy)")
        raise FormatError("malformed GT", where=str(where),
                          expected="allele indices or '.' separated by '/' or '|'",
                          got=f"a GT field of {len(text)} characters that does not parse",
                          fix="inspect that record (bcftools view) and correct or drop it")
    a0 = MISSING_ALLELE if m.group(1) == b"." else int(m.group(1))
    if m.group(2) is None:
        a1, phased = FILL_ALLELE, False
    else:
        a1 = MISSING_ALLELE if m.group(3) == b"." else int(m.group(3))
        phased = m.group(2) == b"|"
    if max(a0, a1) >= n_alleles:
        raise FormatError("malformed GT: allele index out of range", where=str(where),
                          expected=f"allele indices below {n_alleles} (REF + ALT alleles)",
                          got="a larger index", fix="correct the genotype or the ALT column")
    return a0, a1, phased


def _parse_samples(rest: bytes, n: int, n_alleles: int, gt: np.ndarray, phased: np.ndarray,
                   where: object) -> None:
    """Decode one record's sample columns into ``gt`` (n, 2) and ``phased`` (n,)."""
    buf = np.frombuffer(rest + b"\t", dtype=np.uint8)
    tabs = np.flatnonzero(buf == _TAB)
    if tabs.size != n:
        raise FormatError("wrong number of sample columns", where=str(where),
                          expected=f"{n} (as in the #CHROM header)", got=str(tabs.size),
                          fix="the record is cut or has extra tabs: inspect it")
    starts = np.empty(n, dtype=np.int64)
    starts[0] = 0
    starts[1:] = tabs[:-1] + 1
    if b":" in rest:
        delim = np.flatnonzero((buf == _TAB) | (buf == _COLON))
        ends = delim[np.searchsorted(delim, starts)]
    else:
        ends = tabs
    length = ends - starts
    done = np.zeros(n, dtype=bool)
    hap = np.flatnonzero(length == 1)
    if hap.size:
        v = _ALLELE_LUT[buf[starts[hap]]]
        ok = v != _BAD
        idx = hap[ok]
        gt[idx, 0] = v[ok]
        gt[idx, 1] = FILL_ALLELE
        phased[idx] = False
        done[idx] = True
    dip = np.flatnonzero(length == 3)
    if dip.size:
        s = starts[dip]
        v0, sep, v1 = _ALLELE_LUT[buf[s]], buf[s + 1], _ALLELE_LUT[buf[s + 2]]
        ok = (v0 != _BAD) & (v1 != _BAD) & ((sep == _SLASH) | (sep == _PIPE))
        idx = dip[ok]
        gt[idx, 0] = v0[ok]
        gt[idx, 1] = v1[ok]
        phased[idx] = sep[ok] == _PIPE
        done[idx] = True
    for j in np.flatnonzero(~done):
        text = buf[starts[j]:ends[j]].tobytes()
        a0, a1, ph = _parse_gt_text(text, n_alleles, f"{where}, sample column {j + 1}")
        gt[j] = (a0, a1)
        phased[j] = ph


def _fixed_fields(line: bytes, where: str) -> tuple[list[bytes], bytes]:
    fields = line.rstrip(b"\r\n").split(b"\t", 9)
    if len(fields) < 10:
        raise FormatError("record has too few columns", where=str(where),
                          expected="CHROM POS ID REF ALT QUAL FILTER INFO FORMAT and samples",
                          got=f"{len(fields)} tab-separated columns",
                          fix="the record is cut short or not tab-separated: inspect it")
    return fields[:9], fields[9]


def _parse_batch(lines: Sequence[bytes], first_record: int, n: int, source: _Source,
                 multiallelic: str) -> _Batch:
    k = len(lines)
    gt = np.empty((k, n, 2), dtype=np.int8)
    phased = np.zeros((k, n), dtype=bool)
    contig: list[str] = []
    position: list[int] = []
    variant_id: list[str] = []
    alleles: list[list[str]] = []
    keep: list[bool] = []
    n_alleles = np.empty(k, dtype=np.int64)
    fast_rows: list[int] = []
    fast_rests: list[bytes] = []
    fast_len = 4 * n - 1
    for i, line in enumerate(lines):
        rec = first_record + i
        fields = line.split(b"\t", 9)
        if len(fields) < 10 or fields[9][-1:] in (b"\r", b"\n"):
            fixed, rest = _fixed_fields(line, source.where(rec))
        else:
            fixed, rest = fields, fields[9]
        where = _LazyWhere(source, rec)
        try:
            chrom, pos_b, vid, ref, alt = (fixed[0].decode(), fixed[1], fixed[2].decode(),
                                           fixed[3].decode(), fixed[4].decode())
        except UnicodeDecodeError as e:
            raise FormatError("record is not UTF-8 text", where=str(where),
                              fix="inspect the record") from e
        try:
            pos = int(pos_b)
        except ValueError as e:
            raise FormatError("POS is not an integer", where=f"{where}, column POS",
                              expected="a non-negative integer", got="another value",
                              fix="inspect the record") from e
        if pos < 0 or not ref or not alt or not chrom:
            raise FormatError("malformed record", where=str(where),
                              expected="CHROM, POS >= 0, REF and ALT present",
                              got="an empty field or a negative POS", fix="inspect the record")
        alts = [] if alt == "." else alt.split(",")
        na = 1 + len(alts)
        n_alleles[i] = na
        contig.append(chrom)
        position.append(pos)
        variant_id.append(vid)
        alleles.append([ref, *alts] if alts else [ref, "."])
        skip = na > 2 and multiallelic == "skip"
        keep.append(not skip)
        if skip:
            continue
        if na > _MAX_ALLELES:
            raise SchemaError("record has too many alleles to split", where=str(where),
                              expected=f"at most {_MAX_ALLELES} alleles", got=f"{na} alleles",
                              fix="skip multi-allelic records (--multiallelic skip)")
        fmt = fixed[8]
        if not fmt.startswith(b"GT") or (len(fmt) > 2 and fmt[2:3] != b":"):
            raise SchemaError(
                "GT is not the first FORMAT field", where=f"{where}, column FORMAT",
                expected="FORMAT starting with GT", got="another first field",
                fix="keep only records with genotypes (bcftools view -i 'GT!=\"mis\"')")
        if fmt == b"GT" and len(rest) == fast_len:
            fast_rows.append(i)
            fast_rests.append(rest)
        else:
            _parse_samples(rest, n, na, gt[i], phased[i], where)
    if fast_rows:
        # Fixed-width calls ("0/1\t" per sample): decode the whole batch at once, reading
        # each call's 4 bytes as two uint16 decoded by two 16-bit lookup tables.
        u = np.frombuffer(b"\t".join(fast_rests) + b"\t", dtype="<u2").reshape(-1, n, 2)
        lo = _FAST_LO[u[..., 0]]
        hi = _FAST_HI[u[..., 1]]
        good = np.all(lo & hi & 0x100, axis=1)
        pair = (lo & 0xFF) | (hi << 8)  # int8 alleles (A, B) as a little-endian uint16
        rows = np.asarray(fast_rows)
        if good.all():
            gr, sel = rows, slice(None)
        else:
            gr, sel = rows[good], good
        gt.view("<u2")[gr, :, 0] = pair[sel]
        phased[gr] = (lo[sel] & 0x200) != 0
        for j in np.flatnonzero(~good):
            i = int(rows[j])
            _parse_samples(fast_rests[j], n, int(n_alleles[i]), gt[i], phased[i],
                           source.where(first_record + i))
    # Allele indices must exist among REF + ALT.
    kept = np.asarray(keep)
    if kept.any():
        top = gt.max(axis=(1, 2))
        bad = np.flatnonzero(kept & (top >= n_alleles))
        if bad.size:
            raise FormatError("malformed GT: allele index out of range",
                              where=source.where(first_record + int(bad[0])),
                              expected=f"allele indices below {int(n_alleles[bad[0]])} "
                              "(REF + ALT alleles)", got="a larger index",
                              fix="correct the genotype or the ALT column")
    return _Batch(gt, phased, contig, position, variant_id, alleles, keep)


def _split_alt(gt: np.ndarray, k: int) -> np.ndarray:
    """Biallelic calls for ALT allele k (bcftools norm -m-any: other alleles become REF)."""
    out = np.where(gt == k, np.int8(1), np.where(gt >= 0, np.int8(0), gt))
    return out.astype(np.int8, copy=False)


# ------------------------------------------------------------------------------------------
# Chunk buffer and the driver
# ------------------------------------------------------------------------------------------


class _ChunkBuffer:
    """Holds at most ``chunk_size`` variants; each full buffer becomes one stored chunk.

    Compressing and writing a full chunk runs in a background thread while the next chunk
    is parsed (double buffering: two chunk buffers at most).  Phase flags get a buffer only
    once a phased call is seen; chunks without any are not written (they read as False).
    """

    def __init__(self, writer: _StoreWriter, chunk_size: int, n: int, *,
                 background: bool = True) -> None:
        self.writer = writer
        self.size = chunk_size
        self.n = n
        self._gt = [np.empty((chunk_size, n, 2), dtype=np.int8)]
        self._ph: list[np.ndarray | None] = [None]
        self._has_phase = False
        self._cur = 0
        self.fill = 0
        self._meta: tuple[list[Any], list[Any], list[Any], list[Any]] = ([], [], [], [])
        self.haploid = 0
        self.phased_calls = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="zarr-write") \
            if background else None
        self._pending: Future[None] | None = None

    def add(self, gt: np.ndarray, phased: np.ndarray, contig: Sequence[str],
            position: Sequence[int], variant_id: Sequence[str],
            alleles: Sequence[tuple[str, str]]) -> None:
        m = gt.shape[0]
        done = 0
        while done < m:
            take = min(self.size - self.fill, m - done)
            sl = slice(self.fill, self.fill + take)
            src = slice(done, done + take)
            self._gt[self._cur][sl] = gt[src]
            if phased[src].any():
                ph = self._ph[self._cur]
                if ph is None:
                    ph = self._ph[self._cur] = np.zeros((self.size, self.n), dtype=bool)
                ph[sl] = phased[src]
                self._has_phase = True
            for store, values in zip(self._meta, (contig, position, variant_id, alleles),
                                     strict=True):
                store.extend(values[src])
            self.fill += take
            done += take
            if self.fill == self.size:
                self.flush()

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()  # re-raises a failed write here

    def flush(self) -> None:
        if not self.fill:
            return
        f = self.fill
        gt = self._gt[self._cur][:f]
        buf_ph = self._ph[self._cur]
        ph = buf_ph[:f] if self._has_phase and buf_ph is not None else None
        self.haploid += int(np.count_nonzero(gt[..., 1] == FILL_ALLELE))
        self.phased_calls += int(np.count_nonzero(ph)) if ph is not None else 0
        contig, position, variant_id, alleles = self._meta
        args = (gt, ph, contig, np.asarray(position, dtype=np.int64), variant_id, alleles)
        self._wait()
        if self._pool is None:
            self.writer.append(*args)
        else:
            self._pending = self._pool.submit(self.writer.append, *args)
            if len(self._gt) == 1:
                self._gt.append(np.empty_like(self._gt[0]))
                self._ph.append(None)
            self._cur = 1 - self._cur
        # The buffer now in use is free (its write finished): clear stale phase flags.
        ph_next = self._ph[self._cur]
        if ph_next is not None and (self._has_phase or self._pool is not None):
            ph_next[:] = False
        self._has_phase = False
        self.fill = 0
        self._meta = ([], [], [], [])

    def close(self) -> None:
        """Wait for the last write (re-raising its error) and stop the writer thread."""
        try:
            self._wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)


def _batches(lines: Iterator[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for line in lines:
        batch.append(line)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _check_out(out: Path, source: Path) -> None:
    if out.resolve() == source.resolve():
        raise ConfigError("--out would overwrite the input", where=str(out),
                          fix="choose another output path")
    if out.exists() and not out.is_dir():
        raise ConfigError("output path exists and is not a folder", where=str(out),
                          fix="choose another --out")
    if out.is_dir() and any(out.iterdir()) and not _is_our_store(out):
        raise ConfigError(
            "output folder is not empty and is not a genotype store", where=str(out),
            expected="a new or empty folder, or an earlier genotype store",
            fix="choose another --out (secured-bio never overwrites unrelated files)",
        )


def ingest_vcf(
    vcf: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    chunk_size: int | None = None,
    multiallelic: str = "split",
    region: str | None = None,
    progress: bool = True,
) -> IngestReport:
    r"""Stream a VCF/BCF into a chunked, compressed zarr v3 genotype store.

    Parameters
    ----------
    vcf
        VCF (plain, bgzipped or gzipped) or BCF file.
    out
        Store folder to create.  It is written under a temporary name and renamed when
        complete; an earlier genotype store there is replaced, any other non-empty folder
        is refused.
    chunk_size
        Variants per chunk (all samples in a chunk).  Working memory is about
        ``4 * chunk_size * n_samples`` bytes (6 with phased calls), whatever the number of
        variants; analyses later hold ``8 * chunk_size * n_samples`` bytes per chunk.  None
        (default) picks :func:`~secured_bio.genomics.store.auto_chunk_size` of the number
        of samples (at most 128 MiB of dosages per chunk, at most 10,000 variants).
    multiallelic
        ``"split"`` (one biallelic variant per ALT allele, as ``bcftools norm -m-any``) or
        ``"skip"``; either way multi-allelic records are counted in the report.
    region
        ``CONTIG`` or ``CONTIG:START-END`` (1-based, inclusive) to read through the
        index (``.tbi``/``.csi``) instead of the whole file.
    progress
        Show a progress bar over records on an interactive stderr.

    Returns
    -------
    IngestReport
        Counts of samples, records, variants, multi-allelic records.

    Raises
    ------
    InputFileNotFoundError
        If ``vcf`` does not exist.
    ConfigError
        If an option is invalid, ``out`` is an unrelated folder, or a region is asked of
        a file without an index.
    FormatError
        If the file is not a VCF/BCF, is truncated or corrupt, or a record is malformed
        (e.g. a GT that does not parse); the message names the file and record number.
    SchemaError
        If sample IDs are duplicated (the message gives their count, never the IDs), the
        file has no samples or no GT, or a call has ploidy above 2.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "x.vcf").write_text(
    ...     "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ta\tb\n"
    ...     "1\t5\t.\tA\tG,T\t.\t.\t.\tGT\t0/1\t1|2\n")
    >>> report = ingest_vcf(d / "x.vcf", d / "x.zarr")
    >>> report.n_records, report.n_variants, report.multiallelic_records
    (1, 2, 1)
    """
    t0 = time.perf_counter()
    if chunk_size is not None and (
            not isinstance(chunk_size, int | np.integer) or isinstance(chunk_size, bool)
            or chunk_size < 1):
        raise ConfigError("chunk_size must be a positive integer", where="chunk_size",
                          got=repr(chunk_size))
    chunk_size = None if chunk_size is None else int(chunk_size)
    if multiallelic not in MULTIALLELIC_MODES:
        raise ConfigError("unknown multi-allelic mode", where="multiallelic",
                          expected=" or ".join(MULTIALLELIC_MODES), got=repr(multiallelic),
                          fix=did_you_mean(str(multiallelic), MULTIALLELIC_MODES))
    if region is not None and (not isinstance(region, str) or not region.strip()):
        raise ConfigError("region must be CONTIG or CONTIG:START-END", where="region",
                          got=repr(region))
    src = Path(vcf)
    if not src.exists():
        raise InputFileNotFoundError("VCF input file not found", where=str(src),
                                     fix="check the path")
    if src.is_dir():
        raise InputFileNotFoundError("VCF input is a folder, not a file", where=str(src),
                                     fix="pass the .vcf/.vcf.gz/.bcf file")
    dest = Path(out)
    _check_out(dest, src)

    with contextlib.ExitStack() as stack:
        stack.enter_context(_quiet_htslib())
        source = _open_source(src, region)
        stack.callback(source.close)
        _check_samples(source)
        n = len(source.samples)
        if chunk_size is None:
            chunk_size = auto_chunk_size(n)
        with atomic_dir(dest) as tmp:
            writer = _StoreWriter(tmp, sample_ids=source.samples, chunk_size=chunk_size)
            buf = _ChunkBuffer(writer, chunk_size, n)
            try:
                counts = _stream(source, buf, chunk_size=chunk_size, multiallelic=multiallelic,
                                 progress=progress)
                buf.flush()
            except BaseException:
                # Never leave a background write running into the folder being removed.
                with contextlib.suppress(Exception):
                    buf.close()
                raise
            buf.close()
            n_records, n_multi, n_split = counts
            writer.finish({
                "source": src.name,
                "source_format": source.source_format,
                "region": region,
                "n_records": n_records,
                "multiallelic": {multiallelic: n_multi},
                "split_variants": n_split,
                "haploid_calls": buf.haploid,
                "phased_calls": buf.phased_calls,
                "created_by": _created_by(),
            })
    return IngestReport(
        store=dest, source=src.name, source_format=source.source_format, region=region,
        n_samples=n, n_records=n_records, n_variants=writer.n_variants,
        multiallelic=multiallelic, multiallelic_records=n_multi, split_variants=n_split,
        haploid_calls=buf.haploid, phased_calls=buf.phased_calls, chunk_size=chunk_size,
        elapsed_s=round(time.perf_counter() - t0, 4),
    )


def _stream(source: _Source, buf: _ChunkBuffer, *, chunk_size: int, multiallelic: str,
            progress: bool) -> tuple[int, int, int]:
    """Parse every record into ``buf``; return (records, multi-allelic records, split rows)."""
    n = len(source.samples)
    batch_size = max(1, min(_MAX_BATCH_LINES, chunk_size, _BATCH_CALLS // n))
    n_records = n_multi = n_split = 0
    lines: Iterator[bytes] = source.records()
    if progress:
        lines = track(lines, f"ingest {source.path.name}")
    for batch in _batches(lines, batch_size):
        try:
            b = _parse_batch(batch, n_records + 1, n, source, multiallelic)
        except FormatError as e:
            if source.truncated:  # a record cut by the truncation
                raise source.truncated_error(n_records + len(batch)) from e
            raise
        n_records += len(batch)
        multi = [i for i, a in enumerate(b.alleles) if len(a) > 2]
        n_multi += len(multi)
        if not multi:
            buf.add(b.gt, b.phased, b.contig, b.position, b.variant_id,
                    [(a[0], a[1]) for a in b.alleles])
            continue
        # Records in order; a multi-allelic record becomes n_alt rows (or none).
        start = 0
        for i in [*multi, len(b.alleles)]:
            if i > start:
                sl = slice(start, i)
                buf.add(b.gt[sl], b.phased[sl], b.contig[sl], b.position[sl],
                        b.variant_id[sl], [(a[0], a[1]) for a in b.alleles[sl]])
            if i == len(b.alleles):
                break
            start = i + 1
            if not b.keep[i]:
                continue
            alts = b.alleles[i][1:]
            rows = np.stack([_split_alt(b.gt[i], k + 1) for k in range(len(alts))])
            n_split += len(alts)
            buf.add(rows, np.repeat(b.phased[i][None], len(alts), axis=0),
                    [b.contig[i]] * len(alts), [b.position[i]] * len(alts),
                    [b.variant_id[i]] * len(alts), [(b.alleles[i][0], a) for a in alts])
    return n_records, n_multi, n_split


def _created_by() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"secured_bio {version('secured-bio')}"
    except PackageNotFoundError:  # running from a source tree
        return "secured_bio"
