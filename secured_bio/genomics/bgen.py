"""Ingest a BGEN v1.2/v1.3 file (genotype probabilities) into a genotype store as hard calls.

:func:`ingest_bgen` reads the file with a small reader of its own (numpy, ``zlib``, and
numcodecs' zstd, which zarr already needs) and turns the probabilities into hard calls by
plink2's own rule, so the store equals the one
:func:`~secured_bio.genomics.ingest_vcf` writes from what plink2 converts
(``plink2 --bgen F.bgen ref-first|ref-last --sample F.sample --export vcf``).

What maps how:

- samples: the ``.sample`` file when one is given (``ID_1``/``ID_2`` columns: the ID is
  ``ID_2``, or ``ID_1_ID_2`` when an ``ID_1`` other than ``0`` is present, as plink2 writes
  VCF sample names; a QCTOOL v2 file with one ``ID`` column gives that ID); otherwise the
  sample identifiers stored in the BGEN (v1.2+), as plink2 does.
- variants: chromosome, position, the ``rsid`` field as ID (``'.'`` when empty), and the
  two alleles.  BGEN does not say which allele is REF: ``ref_allele="first"`` or ``"last"``
  (plink2's ``ref-first``/``ref-last``) must be given.  ``plink2 --export bgen-1.x`` writes
  REF *last* unless its ``ref-first`` modifier is given; UK Biobank's imputed BGENs have
  REF first.
- calls: plink2's ``--hard-call-threshold`` rule (default 0.1).  The ALT dosage ``d`` of an
  unphased diploid call, ``P(het) + 2 P(hom ALT)``, is rounded to plink2's 1/16384 units;
  the call is the nearest integer when ``|d - round(d)| <= threshold`` (plink2's
  ``0.5 * sum_i |x_i - round(x_i)|`` over the two allele dosages is ``|d - round(d)|`` for
  a biallelic variant), else missing.  ``import_dosage_certainty`` (plink2's
  ``--import-dosage-certainty``, off by default) also sets a call missing when its largest
  genotype probability is below the value.  A call flagged missing in the BGEN is missing.
  Dosages themselves are not kept (the store holds hard calls).

Why not ``cbgen`` or ``bgen-reader``: measured here, ``cbgen`` 1.0.6 (the engine of
bgen-reader 4, whose 4.0.9 does not install beside our pinned dask) kills the Python
process with a segmentation fault when it indexes a truncated or garbled file, so a damaged
input could not be reported; the reader here checks every length against the file and
reports the variant where a file ends or breaks.  It also sees
the stored integers, so plink2's integer rounding is reproduced exactly at any bit depth.

Not supported (each refused with a message saying how to convert): BGEN v1.1 (layout 1),
phased (haplotype) probabilities, ploidy other than 2, multi-allelic variants with
``multiallelic="split"`` (they can be skipped).  ``plink2 --bgen F ref-first --make-pgen``
followed by :func:`~secured_bio.genomics.pgen.ingest_pgen` reads those through plink2.
"""

from __future__ import annotations

import contextlib
import os
import struct
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from secured_bio._atomic import atomic_dir
from secured_bio._inputs import describe_error, reject_folder
from secured_bio._progress import track
from secured_bio.errors import (
    ConfigError,
    FormatError,
    InputFileNotFoundError,
    SchemaError,
    did_you_mean,
)
from secured_bio.genomics._writer import MISSING_ALLELE, _StoreWriter, auto_chunk_size
from secured_bio.genomics.ingest import (
    MULTIALLELIC_MODES,
    IngestReport,
    _check_out,
    _ChunkBuffer,
    _created_by,
)

__all__ = ["REF_ALLELE_MODES", "ingest_bgen", "read_bgen_header"]

REF_ALLELE_MODES = ("first", "last")
"""Accepted values of ``ingest_bgen(ref_allele=...)`` (plink2's ``ref-first``/``ref-last``)."""

_DOSAGE_MID = 16384  # plink2's dosage unit: 1/16384 of an allele (kDosageMid)
_DOSAGE_4TH = _DOSAGE_MID // 2
_COMPRESSION = {0: "none", 1: "zlib", 2: "zstd"}
_FIX_CONVERT = ("convert it with plink2: plink2 --bgen FILE.bgen ref-first --make-pgen "
                "--out P, then ingest --pgen P")


@dataclass(frozen=True)
class BgenHeader:
    """The fixed header of a BGEN file (no data values).

    Attributes
    ----------
    n_variants, n_samples
        Counts from the header block.
    layout
        1 (BGEN v1.1) or 2 (v1.2/v1.3).
    compression
        ``"none"``, ``"zlib"`` or ``"zstd"``.
    has_sample_ids
        Whether the file stores sample identifiers.
    first_variant_offset
        Byte offset of the first variant block.
    """

    n_variants: int
    n_samples: int
    layout: int
    compression: str
    has_sample_ids: bool
    first_variant_offset: int


def _damaged(path: Path, what: str, got: str | None = None) -> FormatError:
    return FormatError(f"the BGEN file {what}", where=str(path),
                       expected="a complete BGEN v1.2/v1.3 file", got=got,
                       fix="re-create or re-download it (is the file truncated?)")


def read_bgen_header(path: str | os.PathLike[str]) -> BgenHeader:
    """Read and check the header block of a BGEN file.

    Parameters
    ----------
    path
        The ``.bgen`` file.

    Returns
    -------
    BgenHeader
        Counts, layout and compression.

    Raises
    ------
    FormatError
        If the file is too short, is not BGEN, or uses a layout or compression this
        reader does not support (BGEN v1.1 layout 1; compression codes other than
        none/zlib/zstd).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.bgen"
    >>> _ = p.write_bytes(b"not a bgen file at all, just text")
    >>> read_bgen_header(p)
    Traceback (most recent call last):
    ...
    secured_bio.errors.FormatError: the file is not BGEN [...]...
    """
    p = Path(path)
    try:
        with p.open("rb") as fh:
            head = fh.read(24)
            size = os.fstat(fh.fileno()).st_size
            if len(head) < 24:
                raise _damaged(p, "is too short for a BGEN header", f"{len(head)} bytes")
            offset, header_len, n_var, n_samples, magic = struct.unpack("<IIII4s", head[:20])
            if magic not in (b"bgen", b"\0\0\0\0") or header_len < 20 or header_len > offset:
                raise FormatError("the file is not BGEN", where=str(p),
                                  expected="a BGEN file (magic number 'bgen')",
                                  got="other bytes", fix="check the --bgen path")
            fh.seek(header_len)  # the flags: the last 4 bytes of the header block
            flags_bytes = fh.read(4)
    except OSError as e:
        raise FormatError("the BGEN file could not be read", where=str(p),
                          got=type(e).__name__, fix="check the file's permissions") from e
    if len(flags_bytes) < 4:
        raise _damaged(p, "is too short for a BGEN header", f"{size} bytes")
    (flags,) = struct.unpack("<I", flags_bytes)
    comp_code, layout = flags & 3, (flags >> 2) & 0xF
    if comp_code not in _COMPRESSION:
        raise FormatError("the BGEN file uses an unknown compression", where=str(p),
                          expected="0 (none), 1 (zlib) or 2 (zstd)", got=f"code {comp_code}",
                          fix=_FIX_CONVERT)
    if layout != 2:
        raise FormatError(
            "the BGEN layout is not supported", where=str(p),
            expected="layout 2 (BGEN v1.2/v1.3)",
            got=f"layout {layout}" + (" (BGEN v1.1)" if layout == 1 else ""),
            fix="convert it: plink2 --bgen FILE.bgen ref-first --export bgen-1.2 --out NEW",
        )
    if offset + 4 > size:
        raise _damaged(p, "ends before its first variant", f"{size} bytes")
    return BgenHeader(n_variants=n_var, n_samples=n_samples, layout=layout,
                      compression=_COMPRESSION[comp_code], has_sample_ids=bool(flags >> 31),
                      first_variant_offset=offset + 4)


def _read_sample_file(path: Path) -> list[str]:
    """Sample IDs of an Oxford ``.sample`` file (two header lines), as plink2 names them."""
    try:
        lines = [ln.split() for ln in path.read_text(encoding="utf-8").splitlines()
                 if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise FormatError("the .sample file could not be read", where=str(path),
                          got=type(e).__name__, fix="check the --sample path") from e
    if len(lines) < 2:
        raise FormatError("the .sample file has no header", where=str(path),
                          expected="a header line and a column-type line (Oxford format)",
                          got=f"{len(lines)} lines", fix="check the --sample path")
    header, types = lines[0], lines[1]
    if header[:2] == ["ID_1", "ID_2"]:
        two = True
    elif header[:1] == ["ID"]:
        two = False
    else:
        raise FormatError("the .sample header is not Oxford format", where=f"{path}:1",
                          expected="ID_1 ID_2 ... (or ID ... for QCTOOL v2)",
                          got=" ".join(header[:4])[:60], fix="check the --sample path")
    if not types or types[0] != "0":
        raise FormatError("the .sample file lacks its column-type line", where=f"{path}:2",
                          expected="a line starting with 0 (e.g. 0 0 0 D)",
                          got="another line", fix="add the type line (Oxford .sample format)")
    ids: list[tuple[str, str]] = []
    need = 2 if two else 1
    for line_no, fields in enumerate(lines[2:], 3):
        if len(fields) < need:
            raise FormatError("a .sample line has too few columns", where=f"{path}:{line_no}",
                              expected=f"at least {need} columns", got=f"{len(fields)}")
        ids.append((fields[0], fields[1]) if two else ("0", fields[0]))
    with_fid = any(f != "0" for f, _ in ids)
    return [f"{f}_{i}" if with_fid else i for f, i in ids]


def _check_unique(samples: list[str], where: str) -> None:
    n_dup = sum(c - 1 for c in Counter(samples).values() if c > 1)
    if n_dup:
        raise SchemaError("duplicated sample IDs", where=where, expected="unique sample IDs",
                          got=f"{n_dup} duplicated sample {'ID' if n_dup == 1 else 'IDs'}",
                          fix="rename the duplicates in the .sample file")


def _hard_calls(values: np.ndarray, missing: np.ndarray, bits: int, *, alt_first: bool,
                halfdist: int, certainty: float) -> np.ndarray:
    """Diploid int8 calls ``(n, 2)`` from the stored integers of P(AA), P(AB) ``(n, 2)``.

    ``alt_first`` is True when the first allele (A) is ALT (ref-last).

    Examples
    --------
    >>> v = np.array([[255, 0], [0, 255], [0, 0], [20, 235], [128, 127]])
    >>> _hard_calls(v, np.zeros(5, bool), 8, alt_first=False, halfdist=_halfdist(0.1),
    ...             certainty=0.0).tolist()
    [[0, 0], [0, 1], [1, 1], [0, 1], [-1, -1]]
    """
    top = (1 << bits) - 1
    p_aa, p_ab = values[:, 0], values[:, 1]
    p_bb = top - p_aa - p_ab
    numer = p_ab + 2 * (p_aa if alt_first else p_bb)  # ALT dosage x (2^bits - 1)
    # ALT dosage in plink2's 1/16384 units, rounded to nearest (2^bits - 1 is odd: no ties).
    d = (numer * (2 * _DOSAGE_MID) + top) // (2 * top)
    called = (np.abs((d & (_DOSAGE_MID - 1)) - _DOSAGE_4TH) >= halfdist) & ~missing
    called &= p_bb >= 0  # probabilities summing above 1: missing (checked by the caller)
    if certainty > 0:
        called &= np.maximum(np.maximum(p_aa, p_ab), p_bb) >= certainty * top
    call = (d + _DOSAGE_4TH) >> 14  # 0, 1 or 2 ALT alleles
    gt = np.full((values.shape[0], 2), MISSING_ALLELE, dtype=np.int8)
    gt[called, 0] = (call[called] == 2).astype(np.int8)
    gt[called, 1] = (call[called] >= 1).astype(np.int8)
    return gt


def _halfdist(threshold: float) -> int:
    """plink2's ``hard_call_halfdist`` for ``--hard-call-threshold`` (0.1 -> 8192 - 1638)."""
    thresh = int(threshold * _DOSAGE_MID * (1 + 2**-40))
    return max(0, _DOSAGE_4TH - thresh)


@dataclass
class _Variant:
    """One variant block: identification, and the probability block (not yet decoded)."""

    index: int  # 1-based
    chrom: str
    pos: int
    rsid: str
    alleles: list[str]
    block: bytes  # compressed (or raw) genotype probability block
    length: int  # its uncompressed length (0 when stored uncompressed)


class _BgenReader:
    """Walk the variant blocks of a layout-2 BGEN file, checking every length."""

    def __init__(self, path: Path, header: BgenHeader) -> None:
        self.path = path
        self.header = header
        self._fh = path.open("rb")
        self._size = os.fstat(self._fh.fileno()).st_size

    def close(self) -> None:
        self._fh.close()

    def _take(self, k: int, index: int | None, what: str) -> bytes:
        data = self._fh.read(k) if k <= self._size - self._fh.tell() else b""
        if len(data) != k:
            where = f"variant {index}" if index is not None else "the sample block"
            raise _damaged(self.path, f"ends inside {where} ({what})",
                           f"{self._size} bytes")
        return data

    def _u(self, fmt: str, index: int | None, what: str) -> int:
        return int(struct.unpack(fmt, self._take(struct.calcsize(fmt), index, what))[0])

    def _text(self, k: int, index: int | None, what: str) -> str:
        raw = self._take(k, index, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _damaged(self.path, f"has a garbled {what} at "
                           + (f"variant {index}" if index is not None else "the sample block"),
                           "bytes that are not UTF-8") from e

    def sample_ids(self) -> list[str]:
        self._fh.seek(4 + self._u_at(4))
        self._u("<I", None, "its length")
        n = self._u("<I", None, "its sample count")
        if n != self.header.n_samples:
            raise _damaged(self.path, "has a sample block that disagrees with its header",
                           f"{n} sample IDs for {self.header.n_samples} samples")
        return [self._text(self._u("<H", None, "a sample ID"), None, "sample ID")
                for _ in range(n)]

    def _u_at(self, offset: int) -> int:
        self._fh.seek(offset)
        return self._u("<I", None, "the header")

    def variants(self) -> Iterator[_Variant]:
        self._fh.seek(self.header.first_variant_offset)
        compressed = self.header.compression != "none"
        for index in range(1, self.header.n_variants + 1):
            self._take(self._u("<H", index, "its ID"), index, "its ID")
            rsid = self._text(self._u("<H", index, "its rsid"), index, "rsid")
            chrom = self._text(self._u("<H", index, "its chromosome"), index, "chromosome")
            pos = self._u("<I", index, "its position")
            k = self._u("<H", index, "its allele count")
            alleles = [self._text(self._u("<I", index, "an allele"), index, "allele")
                       for _ in range(k)]
            c = self._u("<I", index, "its genotype block")
            if compressed:
                if c < 4:
                    raise _damaged(self.path, f"has a garbled genotype block at variant {index}")
                d = self._u("<I", index, "its genotype block")
                block = self._take(c - 4, index, "its genotype block")
            else:
                d, block = 0, self._take(c, index, "its genotype block")
            yield _Variant(index, chrom, pos, rsid or ".", alleles, block, d)


def _decode_block(v: _Variant, header: BgenHeader, path: Path
                  ) -> tuple[np.ndarray, np.ndarray, int]:
    """Return (stored integers ``(n, 2)`` of P(AA), P(AB); missing mask; bit depth)."""
    try:
        if header.compression == "zlib":
            raw = zlib.decompress(v.block)
        elif header.compression == "zstd":
            from numcodecs import Zstd

            raw = bytes(Zstd().decode(v.block))
        else:
            raw = v.block
    except Exception as e:  # zlib.error, or numcodecs' RuntimeError for a bad zstd frame
        raise _damaged(path, f"has a corrupt genotype block at variant {v.index}",
                       describe_error(e)) from e
    n = header.n_samples
    where = f"{path}: variant {v.index}"
    if (header.compression != "none" and len(raw) != v.length) or len(raw) < 10 + n:
        raise _damaged(path, f"has a garbled genotype block at variant {v.index}")
    n_block, k = struct.unpack("<IH", raw[:6])
    if n_block != n or k != len(v.alleles):
        raise _damaged(path, f"has a garbled genotype block at variant {v.index}",
                       f"{n_block} samples, {k} alleles")
    ploidy = np.frombuffer(raw, dtype=np.uint8, count=n, offset=8)
    missing = (ploidy & 0x80) != 0
    phased, bits = raw[8 + n], raw[9 + n]
    if phased:
        raise FormatError("phased BGEN probabilities are not supported", where=where,
                          expected="unphased genotype probabilities", got="phased",
                          fix=_FIX_CONVERT)
    bad = ((ploidy & 0x3F) != 2) & ~missing
    if bad.any():
        raise FormatError("only diploid BGEN calls are supported", where=where,
                          expected="ploidy 2", got=f"{int(bad.sum())} calls of another ploidy",
                          fix=_FIX_CONVERT)
    if not 1 <= bits <= 32:
        raise _damaged(path, f"has a garbled genotype block at variant {v.index}",
                       f"{bits} bits per probability")
    count = 2 * n
    body = raw[10 + n:]
    if len(body) != (count * bits + 7) // 8:
        raise _damaged(path, f"has a garbled genotype block at variant {v.index}",
                       f"{len(body)} bytes of probabilities for {n} samples at {bits} bits")
    if bits in (8, 16, 32):
        values = np.frombuffer(body, dtype=f"<u{bits // 8}").astype(np.int64)
    else:  # values packed LSB first, bit by bit (BGEN v1.2 spec)
        unpacked = np.unpackbits(np.frombuffer(body, dtype=np.uint8), bitorder="little")
        bit_rows = unpacked[:count * bits].reshape(count, bits).astype(np.int64)
        values = bit_rows @ (np.int64(1) << np.arange(bits, dtype=np.int64))
    return values.reshape(n, 2), missing, int(bits)


def ingest_bgen(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    ref_allele: str,
    sample: str | os.PathLike[str] | None = None,
    hard_call_threshold: float = 0.1,
    import_dosage_certainty: float = 0.0,
    chunk_size: int | None = None,
    multiallelic: str = "split",
    progress: bool = True,
) -> IngestReport:
    r"""Ingest a BGEN v1.2/v1.3 file into a genotype store as hard calls (plink2's rule).

    The store equals the one :func:`~secured_bio.genomics.ingest_vcf` writes from
    ``plink2 --bgen FILE ref-first|ref-last [--sample S] --export vcf``; see the module
    docstring for the mapping and what is not supported.

    Parameters
    ----------
    path
        The ``.bgen`` file (layout 2: v1.2 or v1.3; uncompressed, zlib or zstd; any bit
        depth).
    out
        Store folder to create, written under a temporary name and renamed when complete.
    ref_allele
        ``"first"`` or ``"last"``: which allele of each variant is REF (plink2's
        ``ref-first``/``ref-last``; ``plink2 --export bgen-1.x`` writes REF last).
    sample
        Oxford ``.sample`` file; required when the BGEN stores no sample identifiers.
    hard_call_threshold
        plink2's ``--hard-call-threshold``: a call is kept when its ALT dosage is within
        this distance of 0, 1 or 2 (default 0.1, plink2's default), else missing.
    import_dosage_certainty
        plink2's ``--import-dosage-certainty``: a call is missing when its largest genotype
        probability is below this (default 0: off, as in plink2).
    chunk_size
        Variants per chunk; None picks
        :func:`~secured_bio.genomics.store.auto_chunk_size` of the number of samples.
    multiallelic
        ``"skip"`` drops variants with more than two alleles; ``"split"`` (the default,
        as for VCF) refuses them when one is present (hard calls from multi-allelic
        probabilities are not implemented).
    progress
        Show a progress bar over variants on an interactive stderr.

    Returns
    -------
    IngestReport
        Counts; ``source_format`` is ``"BGEN"``.

    Raises
    ------
    InputFileNotFoundError
        If the ``.bgen`` or the ``.sample`` file is missing, or the BGEN has no sample
        identifiers and no ``.sample`` was given.
    ConfigError
        If an option is invalid or ``out`` is an unrelated folder.
    FormatError
        If a file is malformed, truncated or corrupt, uses an unsupported layout,
        compression, ploidy or phasing, or the ``.sample`` has another number of samples.
    SchemaError
        If sample IDs are duplicated.

    Examples
    --------
    >>> import shutil, subprocess, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "x.vcf").write_text(
    ...     "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ta\tb\n"
    ...     "1\t5\trs1\tA\tG\t.\t.\t.\tGT\t0/1\t1/1\n")
    >>> if shutil.which("plink2"):
    ...     _ = subprocess.run(["plink2", "--vcf", str(d / "x.vcf"), "--export", "bgen-1.2",
    ...                         "bits=8", "--out", str(d / "x")], check=True,
    ...                        capture_output=True)
    ...     report = ingest_bgen(d / "x.bgen", d / "x.zarr", ref_allele="last",
    ...                          sample=d / "x.sample", progress=False)
    ...     print(report.n_samples, report.n_variants)
    ... else:
    ...     print(2, 1)
    2 1
    """
    t0 = time.perf_counter()
    if ref_allele not in REF_ALLELE_MODES:
        raise ConfigError("unknown REF allele mode", where="ref_allele",
                          expected=" or ".join(REF_ALLELE_MODES), got=repr(ref_allele),
                          fix=did_you_mean(str(ref_allele), REF_ALLELE_MODES))
    if multiallelic not in MULTIALLELIC_MODES:
        raise ConfigError("unknown multi-allelic mode", where="multiallelic",
                          expected=" or ".join(MULTIALLELIC_MODES), got=repr(multiallelic),
                          fix=did_you_mean(str(multiallelic), MULTIALLELIC_MODES))
    for name, value in (("hard_call_threshold", hard_call_threshold),
                        ("import_dosage_certainty", import_dosage_certainty)):
        if not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ConfigError(f"{name} must be a number in [0, 1]", where=name,
                              got=repr(value)[:40])
    if chunk_size is not None and (
            not isinstance(chunk_size, int | np.integer) or isinstance(chunk_size, bool)
            or chunk_size < 1):
        raise ConfigError("chunk_size must be a positive integer", where="chunk_size",
                          got=repr(chunk_size))
    bgen = Path(path)
    reject_folder(bgen, "BGEN file", option="--bgen")
    if not bgen.is_file():
        raise InputFileNotFoundError("BGEN file not found", where=str(bgen),
                                     fix="check the --bgen path")
    header = read_bgen_header(bgen)
    if sample is not None:
        sample_path = Path(sample)
        reject_folder(sample_path, ".sample file", option="--sample")
        if not sample_path.is_file():
            raise InputFileNotFoundError(".sample file not found", where=str(sample_path),
                                         fix="check the --sample path")
    elif not header.has_sample_ids:
        guess = bgen.with_suffix(".sample")
        raise InputFileNotFoundError(
            "the BGEN file stores no sample IDs and no .sample file was given",
            where=str(bgen), expected="--sample FILE.sample",
            fix=f"pass --sample {guess.name}" if guess.is_file()
            else "pass the Oxford .sample file written with the BGEN (--sample)",
        )
    dest = Path(out)
    _check_out(dest, bgen)
    halfdist = _halfdist(float(hard_call_threshold))
    n_multi = 0
    reader = _BgenReader(bgen, header)
    with contextlib.ExitStack() as stack:
        stack.callback(reader.close)
        if sample is not None:
            samples, where = _read_sample_file(sample_path), str(sample_path)
        else:
            samples, where = reader.sample_ids(), str(bgen)
        n = len(samples)
        if n != header.n_samples:
            raise FormatError("the .sample file does not match the BGEN", where=where,
                              expected=f"{header.n_samples} samples (the BGEN header)",
                              got=f"{n} samples",
                              fix="use the .sample file written with this BGEN")
        _check_unique(samples, where)
        chunk = int(chunk_size) if chunk_size is not None else auto_chunk_size(n)
        with atomic_dir(dest) as tmp:
            writer = _StoreWriter(tmp, sample_ids=samples, chunk_size=chunk)
            buf = _ChunkBuffer(writer, chunk, n)
            no_phase = np.zeros((1, n), dtype=bool)
            variants: Iterator[_Variant] = reader.variants()
            if progress:
                variants = track(variants, f"ingest {bgen.name}", total=header.n_variants)
            try:
                for v in variants:
                    if len(v.alleles) != 2:
                        n_multi += 1
                        if multiallelic == "skip":
                            continue
                        raise FormatError(
                            "multi-allelic BGEN variants cannot be split",
                            where=f"{bgen}: variant {v.index}", expected="2 alleles",
                            got=f"{len(v.alleles)} alleles",
                            fix="use --multiallelic skip, or " + _FIX_CONVERT)
                    values, missing, bits = _decode_block(v, header, bgen)
                    gt = _hard_calls(values, missing, bits, alt_first=ref_allele == "last",
                                     halfdist=halfdist,
                                     certainty=float(import_dosage_certainty))
                    a, b = v.alleles
                    buf.add(gt[None], no_phase, [v.chrom], [v.pos], [v.rsid],
                            [(a, b) if ref_allele == "first" else (b, a)])
                buf.flush()
            except BaseException:
                with contextlib.suppress(Exception):
                    buf.close()
                raise
            buf.close()
            writer.finish({
                "source": bgen.name,
                "source_format": "BGEN",
                "region": None,
                "n_records": header.n_variants,
                "multiallelic": {multiallelic: n_multi},
                "split_variants": 0,
                "haploid_calls": buf.haploid,
                "phased_calls": buf.phased_calls,
                "hard_call_threshold": float(hard_call_threshold),
                "import_dosage_certainty": float(import_dosage_certainty),
                "ref_allele": ref_allele,
                "created_by": _created_by(),
            })
    return IngestReport(
        store=dest, source=bgen.name, source_format="BGEN", region=None, n_samples=n,
        n_records=header.n_variants, n_variants=writer.n_variants, multiallelic=multiallelic,
        multiallelic_records=n_multi, split_variants=0, haploid_calls=buf.haploid,
        phased_calls=buf.phased_calls, chunk_size=chunk,
        elapsed_s=round(time.perf_counter() - t0, 4),
    )
