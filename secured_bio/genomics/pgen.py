"""Ingest a PLINK 2 fileset (``.pgen`` + ``.pvar`` + ``.psam``) into a genotype store.

:func:`ingest_pgen` reads the hard calls with ``pgenlib`` (the Python binding of plink2's own
reader, by plink2's authors) and writes the same store as
:func:`~secured_bio.genomics.ingest_vcf` with the shared writer, so QC and GWAS on the result
equal those on the VCF that plink2 converted (``plink2 --vcf X --make-pgen``).

What maps how:

- samples: ``IID`` from the ``.psam`` (its ``#FID``/``#IID`` header, or a ``.fam``-style file
  without a header); when a ``FID`` column holds anything but ``0``, the ID is ``FID_IID``,
  as plink2's ``--export vcf`` writes it (``id-paste=maybefid,iid``).
- variants: ``#CHROM POS ID REF ALT`` of the ``.pvar`` (or a ``.bim``-style file) as written;
  plink2 keeps the VCF's REF/ALT order and its ``.`` IDs and ALT.  A multi-allelic variant is
  split into one biallelic variant per ALT allele (as ``bcftools norm -m-any``) or skipped,
  as in :func:`~secured_bio.genomics.ingest_vcf`.
- calls: the hard calls (``-9`` = missing).  PGEN stores phase only for heterozygous calls,
  so ``call_genotype_phased`` is True on phased heterozygous calls only.

Not supported: dosages (``--import-dosage``, ``DS``/``HDS`` tracks are ignored; plink2's
hard-call threshold applies), compressed ``.pvar.zst`` (decompress it first), ``.bed``
filesets (convert with ``plink2 --bfile P --make-pgen``).  plink2 itself stores no haploid
calls (they become homozygous diploid calls) and no half-missing calls.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from secured_bio._atomic import atomic_dir
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
    _split_alt,
)

__all__ = ["ingest_pgen", "pgen_paths"]

_PGEN_MISSING = -9  # pgenlib's missing allele code
_BIM_COLUMNS = ("CHROM", "ID", "CM", "POS", "ALT", "REF")


def pgen_paths(prefix: str | os.PathLike[str]) -> tuple[Path, Path, Path]:
    """Return the ``.pgen``, ``.pvar`` and ``.psam`` paths of a PLINK 2 fileset.

    ``prefix`` may name the fileset (``P``) or any of its three files (``P.pgen``).

    Examples
    --------
    >>> [p.name for p in pgen_paths("data/site1.pgen")]
    ['site1.pgen', 'site1.pvar', 'site1.psam']
    """
    p = Path(prefix)
    if p.suffix.lower() in (".pgen", ".pvar", ".psam"):
        p = p.with_suffix("")
    return (p.with_name(p.name + ".pgen"), p.with_name(p.name + ".pvar"),
            p.with_name(p.name + ".psam"))


@dataclass
class _Pvar:
    """Where the variant columns are in a ``.pvar`` and how many records it has."""

    path: Path
    columns: dict[str, int]
    n_variants: int
    n_alleles: np.ndarray  # per variant (2 = biallelic)


def _read_psam(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise FormatError("the .psam file could not be read", where=str(path),
                          got=type(e).__name__, fix="re-create it with plink2 --make-pgen") from e
    rows = [(i, ln) for i, ln in enumerate(lines, 1)
            if ln.strip() and not ln.startswith("##")]
    if rows and rows[0][1].startswith("#"):
        header = rows[0][1][1:].split()
        rows = rows[1:]
    else:  # .fam-style: FID IID PAT MAT SEX PHENO
        header = ["FID", "IID"]
    if "IID" not in header:
        raise FormatError("the .psam header has no IID column", where=f"{path}:1",
                          expected="#IID or #FID IID ...", got=" ".join(header[:6]),
                          fix="re-create it with plink2 --make-pgen")
    iid, fid = header.index("IID"), header.index("FID") if "FID" in header else None
    ids: list[tuple[str, str]] = []
    for line_no, ln in rows:
        fields = ln.split()
        if len(fields) < len(header):
            raise FormatError("a .psam line has too few columns", where=f"{path}:{line_no}",
                              expected=f"{len(header)} columns", got=f"{len(fields)} columns",
                              fix="re-create it with plink2 --make-pgen")
        ids.append((fields[fid] if fid is not None else "0", fields[iid]))
    if not ids:
        raise SchemaError("the .psam file has no samples", where=str(path),
                          expected="at least one sample", got="0 samples")
    with_fid = any(f != "0" for f, _ in ids)
    samples = [f"{f}_{i}" if with_fid else i for f, i in ids]
    n_dup = sum(c - 1 for c in Counter(samples).values() if c > 1)
    if n_dup:
        raise SchemaError("duplicated sample IDs", where=str(path), expected="unique sample IDs",
                          got=f"{n_dup} duplicated sample {'ID' if n_dup == 1 else 'IDs'}",
                          fix="rename the duplicates (plink2 --update-ids) or drop them")
    return samples


def _pvar_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields) of every line that is not a ``##`` header line."""
    with path.open("r", encoding="utf-8", newline=None) as fh:
        for line_no, ln in enumerate(fh, 1):
            if ln.startswith("##") or not ln.strip():
                continue
            yield line_no, ln.split()


def _scan_pvar(path: Path) -> _Pvar:
    """First pass: the column layout, the variant count and the alleles per variant."""
    columns: dict[str, int] | None = None
    n_alleles: list[int] = []
    try:
        for line_no, fields in _pvar_lines(path):
            if columns is None:
                if fields[0].startswith("#"):
                    names = [fields[0][1:], *fields[1:]]
                    missing = [c for c in ("CHROM", "POS", "ID", "REF", "ALT") if c not in names]
                    if missing:
                        raise FormatError("the .pvar header lacks columns",
                                          where=f"{path}:{line_no}",
                                          expected="#CHROM POS ID REF ALT",
                                          got="missing " + ", ".join(missing),
                                          fix="re-create it with plink2 --make-pgen")
                    columns = {c: names.index(c) for c in ("CHROM", "POS", "ID", "REF", "ALT")}
                    continue
                columns = {c: _BIM_COLUMNS.index(c) for c in ("CHROM", "POS", "ID", "REF", "ALT")}
            if len(fields) <= max(columns.values()):
                raise FormatError("a .pvar line has too few columns", where=f"{path}:{line_no}",
                                  expected=f"at least {max(columns.values()) + 1} columns",
                                  got=f"{len(fields)} columns",
                                  fix="re-create it with plink2 --make-pgen")
            n_alleles.append(1 + fields[columns["ALT"]].count(",") + 1)
    except UnicodeDecodeError as e:
        raise FormatError("the .pvar file is not text", where=str(path),
                          expected="a plain-text .pvar (a .pvar.zst must be decompressed first)",
                          got=type(e).__name__, fix="zstd -d FILE.pvar.zst") from e
    if columns is None:
        columns = {c: _BIM_COLUMNS.index(c) for c in ("CHROM", "POS", "ID", "REF", "ALT")}
    return _Pvar(path, columns, len(n_alleles), np.asarray(n_alleles, dtype=np.int64))


def _pvar_chunks(pvar: _Pvar, size: int) -> Iterator[list[list[str]]]:
    """Second pass: the variant records, ``size`` at a time."""
    cols = pvar.columns
    batch: list[list[str]] = []
    for line_no, fields in _pvar_lines(pvar.path):
        if fields[0].startswith("#"):
            continue
        try:
            int(fields[cols["POS"]])
        except ValueError as e:
            raise FormatError("a .pvar position is not an integer", where=f"{pvar.path}:{line_no}",
                              expected="POS >= 0", got=repr(fields[cols["POS"]][:20]),
                              fix="re-create it with plink2 --make-pgen") from e
        batch.append([fields[cols[c]] for c in ("CHROM", "POS", "ID", "REF", "ALT")])
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _corrupt(path: Path, e: Exception, what: str) -> FormatError:
    detail = e.args[0] if e.args else ""
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    return FormatError(
        f"the .pgen file {what}", where=str(path), expected="a complete plink2 .pgen",
        got=str(detail).strip()[:200] or type(e).__name__,
        fix="re-create the fileset with plink2 --make-pgen (is the file truncated?)",
    )


def ingest_pgen(
    prefix: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    chunk_size: int | None = None,
    multiallelic: str = "split",
    progress: bool = True,
) -> IngestReport:
    r"""Ingest a PLINK 2 fileset (``.pgen``/``.pvar``/``.psam``) into a genotype store.

    The store equals the one :func:`~secured_bio.genomics.ingest_vcf` writes from the VCF
    that plink2 converted, in genotypes (missing calls included), sample IDs and variants;
    see the module docstring for the mapping and what is not supported (dosages,
    ``.pvar.zst``, phase of homozygous calls).

    Parameters
    ----------
    prefix
        The fileset prefix ``P`` (reads ``P.pgen``, ``P.pvar``, ``P.psam``) or one of the
        three files.
    out
        Store folder to create, written under a temporary name and renamed when complete.
    chunk_size
        Variants per chunk; None picks
        :func:`~secured_bio.genomics.store.auto_chunk_size` of the number of samples.
    multiallelic
        ``"split"`` (one biallelic variant per ALT allele) or ``"skip"``.
    progress
        Show a progress bar over variants on an interactive stderr.

    Returns
    -------
    IngestReport
        Counts; ``source_format`` is ``"PGEN"``.

    Raises
    ------
    InputFileNotFoundError
        If one of the three files is missing.
    ConfigError
        If an option is invalid or ``out`` is an unrelated folder.
    FormatError
        If a file is malformed, the ``.pgen`` is truncated or corrupt, or the files do not
        agree on the number of samples or variants.
    SchemaError
        If the ``.psam`` has no samples or duplicated IDs.

    Examples
    --------
    >>> import shutil, subprocess, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "x.vcf").write_text(
    ...     "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ta\tb\n"
    ...     "1\t5\t.\tA\tG,T\t.\t.\t.\tGT\t0/1\t1/2\n")
    >>> if shutil.which("plink2"):
    ...     _ = subprocess.run(["plink2", "--vcf", str(d / "x.vcf"), "--make-pgen",
    ...                         "--out", str(d / "x")], check=True, capture_output=True)
    ...     report = ingest_pgen(d / "x", d / "x.zarr", progress=False)
    ...     print(report.n_samples, report.n_variants, report.multiallelic_records)
    ... else:
    ...     print(2, 2, 1)
    2 2 1
    """
    import pgenlib

    t0 = time.perf_counter()
    if chunk_size is not None and (
            not isinstance(chunk_size, int | np.integer) or isinstance(chunk_size, bool)
            or chunk_size < 1):
        raise ConfigError("chunk_size must be a positive integer", where="chunk_size",
                          got=repr(chunk_size))
    if multiallelic not in MULTIALLELIC_MODES:
        raise ConfigError("unknown multi-allelic mode", where="multiallelic",
                          expected=" or ".join(MULTIALLELIC_MODES), got=repr(multiallelic),
                          fix=did_you_mean(str(multiallelic), MULTIALLELIC_MODES))
    pgen, pvar_path, psam = pgen_paths(prefix)
    for path, kind in ((pgen, ".pgen"), (pvar_path, ".pvar"), (psam, ".psam")):
        if not path.is_file():
            zst = path.with_name(path.name + ".zst")
            raise InputFileNotFoundError(
                f"PLINK 2 {kind} file not found", where=str(path),
                expected="P.pgen, P.pvar and P.psam side by side",
                got="a compressed .pvar.zst" if zst.is_file() else None,
                fix=f"decompress it: zstd -d {zst.name}" if zst.is_file()
                else "check the prefix (plink2 --make-pgen --out P writes all three)",
            )
    dest = Path(out)
    _check_out(dest, pgen)
    samples = _read_psam(psam)
    pvar = _scan_pvar(pvar_path)
    n = len(samples)
    offsets = None
    if (pvar.n_alleles > 2).any():
        offsets = np.zeros(pvar.n_variants + 1, dtype=np.uintp)
        np.cumsum(pvar.n_alleles, out=offsets[1:])
    try:
        reader = pgenlib.PgenReader(bytes(pgen), raw_sample_ct=n, variant_ct=pvar.n_variants,
                                    allele_idx_offsets=offsets)
    except RuntimeError as e:
        raise _corrupt(pgen, e, "could not be opened (or does not match the .pvar/.psam)") from e
    chunk = int(chunk_size) if chunk_size is not None else auto_chunk_size(n)
    n_multi = n_split = 0
    with contextlib.ExitStack() as stack:
        stack.callback(reader.close)
        if reader.get_variant_ct() != pvar.n_variants or reader.get_raw_sample_ct() != n:
            raise FormatError(
                "the .pgen does not match its .pvar/.psam", where=str(pgen),
                expected=f"{pvar.n_variants} variants x {n} samples",
                got=f"{reader.get_variant_ct()} variants x {reader.get_raw_sample_ct()} samples",
                fix="use the three files written by one plink2 --make-pgen run",
            )
        with atomic_dir(dest) as tmp:
            writer = _StoreWriter(tmp, sample_ids=samples, chunk_size=chunk)
            buf = _ChunkBuffer(writer, chunk, n)
            alleles = np.empty((chunk, 2 * n), dtype=np.int32)
            phase = np.zeros((chunk, n), dtype=np.bool_)
            chunks: Iterator[list[list[str]]] = _pvar_chunks(pvar, chunk)
            if progress:
                chunks = track(chunks, f"ingest {pgen.name}", total=-(-pvar.n_variants // chunk))
            start = 0
            try:
                for records in chunks:
                    m = len(records)
                    a, ph = alleles[:m], phase[:m]
                    ph[:] = False
                    try:
                        reader.read_alleles_and_phasepresent_range(start, start + m, a, ph)
                    except RuntimeError as e:
                        raise _corrupt(pgen, e, f"could not be read at variant {start + 1}") \
                            from e
                    gt = a.reshape(m, n, 2)
                    gt = np.where(gt == _PGEN_MISSING, MISSING_ALLELE, gt)
                    # pgenlib reports phase only where it means something: phased hets.
                    phased = ph & (gt[..., 0] != gt[..., 1]) & (gt[..., 1] >= 0)
                    counts = pvar.n_alleles[start:start + m]
                    contig = [r[0] for r in records]
                    pos = [int(r[1]) for r in records]
                    ids = [r[2] for r in records]
                    if (counts == 2).all():
                        buf.add(gt.astype(np.int8), phased, contig, pos, ids,
                                [(r[3], r[4]) for r in records])
                    else:
                        for i in range(m):
                            if counts[i] == 2:
                                buf.add(gt[i:i + 1].astype(np.int8), phased[i:i + 1],
                                        contig[i:i + 1], pos[i:i + 1], ids[i:i + 1],
                                        [(records[i][3], records[i][4])])
                                continue
                            n_multi += 1
                            if multiallelic == "skip":
                                continue
                            alts = records[i][4].split(",")
                            rows = np.stack([_split_alt(gt[i].astype(np.int8), k + 1)
                                             for k in range(len(alts))])
                            n_split += len(alts)
                            buf.add(rows, np.repeat(phased[i][None], len(alts), axis=0),
                                    [contig[i]] * len(alts), [int(pos[i])] * len(alts),
                                    [ids[i]] * len(alts), [(records[i][3], x) for x in alts])
                    start += m
                buf.flush()
            except BaseException:
                with contextlib.suppress(Exception):
                    buf.close()
                raise
            buf.close()
            writer.finish({
                "source": pgen.name,
                "source_format": "PGEN",
                "region": None,
                "n_records": pvar.n_variants,
                "multiallelic": {multiallelic: n_multi},
                "split_variants": n_split,
                "haploid_calls": buf.haploid,
                "phased_calls": buf.phased_calls,
                "created_by": _created_by(),
            })
    return IngestReport(
        store=dest, source=pgen.name, source_format="PGEN", region=None, n_samples=n,
        n_records=pvar.n_variants, n_variants=writer.n_variants, multiallelic=multiallelic,
        multiallelic_records=n_multi, split_variants=n_split, haploid_calls=buf.haploid,
        phased_calls=buf.phased_calls, chunk_size=chunk,
        elapsed_s=round(time.perf_counter() - t0, 4),
    )
