"""De-identification of VCF files, and a Homer-style membership test on released frequencies.

:func:`deidentify_vcf` writes a copy of a VCF that a site can share:

- sample IDs are replaced by keyed pseudonyms ``sb-<16 hex>`` (HMAC-SHA256 with a key that
  stays at the site, RFC 2104): the same key gives the same pseudonym, so a site can link its
  releases, and nobody without the key can recompute or test a guessed ID;
- header lines that identify people, machines or runs are removed, by these rules (keys are
  compared case-insensitively):

  1. ``##SAMPLE`` and ``##PEDIGREE`` (they hold sample IDs), ``##fileDate``, and every line
     whose key names a command line or the options of a run: a key containing ``command`` or
     ``cmdline``, or ending in ``cmd`` or ``options`` (``##GATKCommandLine``,
     ``##GATKCommandLine.HaplotypeCaller`` of GATK3, ``##DRAGENCommandLine``,
     ``##bcftools_viewCommand``, ``##commandline``, ``##cmdline``, ``##SnpEffCmd``,
     ``##platypusOptions``...): they hold input and output paths, user names and the
     ``-s``/``--RGSM`` sample names;
  2. ``##source=`` unless its value is a program name with an optional version
     (``##source=HaplotypeCaller``, ``##source=freeBayes v1.3.6``); free text
     (``##source=... sample HG00097``) goes;
  3. every other line whose value holds a local file path (an absolute POSIX path, ``~/``,
     a ``file:`` URL or a Windows drive: ``##reference=file:///home/x/hs37d5.fa``);
     URLs of public resources (``ftp://``, ``https://``) are kept;
  4. the keys the caller names in ``drop_header``.

  The lines that records depend on (``##fileformat``, ``##INFO``, ``##FORMAT``,
  ``##FILTER``, ``##ALT``, ``##contig``) are never removed.  After these rules, any line left
  (these included) that still holds a local path or names an original sample ID (as a whole
  word, case-insensitively; IDs shorter than 4 characters are not searched, they cannot be
  told from numbers and versions) makes the whole call fail with :class:`InputError` naming
  the header key and line, never the value, and nothing is written: remove that line or
  name its key in ``drop_header``.  The same check covers the ID and INFO columns of the
  records.  INFO fields are otherwise copied as they are: INFO/AC, AN and AF may describe
  a larger population than the samples in the file (as in 1000 Genomes subsets).  One line
  ``##secured_bio_deidentify=<...>`` is added: the format name and version, and how we
  recognise an output of ours;
- optionally, rare variants are suppressed: records in which some ALT allele is carried fewer
  than ``min_ac`` times are dropped (singletons and doubletons identify families);
- the output is bgzipped and tabix-indexed, written atomically; records are copied byte for
  byte, so genotypes are unchanged.

:func:`homer_membership` and :func:`membership_power` measure what released allele
frequencies reveal about membership (Homer et al. 2008; Sankararaman et al. 2009).
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import logging
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from secured_bio._atomic import atomic_paths
from secured_bio._bgzf import compression, has_bgzf_eof
from secured_bio._inputs import reject_folder, require_file
from secured_bio.errors import ConfigError, FormatError, InputError, InputFileNotFoundError

__all__ = [
    "MIN_KEY_BYTES",
    "VcfReport",
    "MembershipPower",
    "read_key_file",
    "pseudonymize_id",
    "deidentify_vcf",
    "homer_membership",
    "membership_power",
]

logger = logging.getLogger(__name__)

FORMAT_NAME = "secured_bio.deid_vcf"
FORMAT_VERSION = 1
MIN_KEY_BYTES = 32
"""Shortest accepted key: 256 bits, the HMAC-SHA256 output size (RFC 2104 section 3)."""
PSEUDONYM_PREFIX = "sb-"
_MARKER_KEY = "secured_bio_deidentify"
_DROP_KEYS = {"sample", "pedigree", "filedate"}
# Keys of command lines and run options (GATK3 appends ".<Walker>", bcftools prefixes the tool).
_COMMAND_KEY = re.compile(r"command|cmdline|cmd$|options$", re.IGNORECASE)
# Lines the records depend on: never dropped (a path or sample ID there refuses the file).
_STRUCTURAL_KEYS = {"fileformat", "info", "format", "filter", "alt", "contig"}
# ##source= kept only as a program name, optionally followed by a version.
_PROGRAM = re.compile(r"[A-Za-z0-9][\w.+-]*( v?\d[\w.+-]*)?")
# A local path in a value: absolute POSIX path, home folder, file URL or Windows drive,
# at the start or after a separator ('/' is not one, so ftp://host//dir is not a path).
_PATH = re.compile(r"(^|[\s=:,;\"'(\[{<|])(/[\w.~-]|~/|file:|[A-Za-z]:[\\/])")
# Sample IDs shorter than this are not searched for (they look like numbers and versions).
MIN_SEARCHED_ID_LENGTH = 4


@dataclass
class VcfReport:
    """What :func:`deidentify_vcf` did: counts and header keys, never IDs or genotypes."""

    in_path: str
    out_path: str
    index_path: str
    samples: int = 0
    variants_in: int = 0
    variants_out: int = 0
    variants_suppressed: int = 0
    min_ac: int | None = None
    header_lines_removed: dict[str, int] = field(default_factory=dict)
    format_name: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-ready dict."""
        return asdict(self)

    def summary(self) -> str:
        """Return a one-line summary for the command line."""
        removed = sum(self.header_lines_removed.values())
        keys = ", ".join(f"{k} x{n}" for k, n in sorted(self.header_lines_removed.items()))
        line = (f"{Path(self.in_path).name} -> {self.out_path}: {self.samples} samples "
                f"pseudonymized, {removed} header line(s) removed ({keys or 'none'}), "
                f"{self.variants_out} of {self.variants_in} variants written")
        if self.min_ac is not None:
            line += f" ({self.variants_suppressed} with ALT count < {self.min_ac} suppressed)"
        return line


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """Read a site's pseudonymization key (raw bytes, at least :data:`MIN_KEY_BYTES`).

    Create one with ``head -c 32 /dev/urandom > site.key`` and keep it at the site: whoever
    holds it can recompute every pseudonym.

    Raises
    ------
    InputFileNotFoundError
        If the key file does not exist.
    ConfigError
        If it holds fewer than :data:`MIN_KEY_BYTES` bytes.

    Examples
    --------
    >>> import tempfile, pathlib, os
    >>> k = pathlib.Path(tempfile.mkdtemp()) / "site.key"
    >>> _ = k.write_bytes(os.urandom(32))
    >>> len(read_key_file(k))
    32
    """
    p = Path(path)
    reject_folder(p, "key file", option="--key-file")
    if not p.is_file():
        raise InputFileNotFoundError("key file not found", where=str(p),
                                     fix="create one at the site: head -c 32 /dev/urandom > "
                                         f"{p.name}")
    key = p.read_bytes()
    _check_key(key, str(p))
    return key


def _check_key(key: bytes, where: str) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) < MIN_KEY_BYTES:
        n = len(key) if isinstance(key, bytes | bytearray) else 0
        raise ConfigError("pseudonymization key too short", where=where,
                          expected=f">= {MIN_KEY_BYTES} bytes", got=f"{n} bytes",
                          fix="make a new key: head -c 32 /dev/urandom > site.key")


def pseudonymize_id(sample_id: str, key: bytes) -> str:
    """Return the keyed pseudonym ``sb-<first 16 hex of HMAC-SHA256(key, id)>`` of an ID.

    Raises
    ------
    ConfigError
        If ``key`` is shorter than :data:`MIN_KEY_BYTES`.

    Examples
    --------
    >>> key = bytes(range(32))
    >>> p = pseudonymize_id("NA12878", key)
    >>> p.startswith("sb-"), len(p), p == pseudonymize_id("NA12878", key)
    (True, 19, True)
    """
    _check_key(key, "pseudonymize_id")
    digest = hmac.new(bytes(key), sample_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:16]


def _open_text(path: Path) -> Iterator[str]:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    opener: Any = gzip.open if magic == b"\x1f\x8b" else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        yield from fh


def _header_key(line: str) -> str:
    return line[2:].split("=", 1)[0].strip()


def _header_value(line: str) -> str:
    return line[2:].split("=", 1)[1].rstrip("\r\n") if "=" in line else ""


def _drop_reason(line: str, extra_keys: frozenset[str] = frozenset()) -> str | None:
    """Return the header key when a ``##`` line must go (rules 1-4 of the module), else None."""
    key = _header_key(line)
    low = key.lower()
    if low in _STRUCTURAL_KEYS:
        return None
    value = _header_value(line)
    if low in _DROP_KEYS or low in extra_keys or _COMMAND_KEY.search(key):
        return key
    if low == "source" and not _PROGRAM.fullmatch(value.strip()):
        return key
    if _PATH.search(value):
        return key
    return None


_ATTRIBUTE = re.compile(r'([^=,<>]+)=("(?:[^"\\]|\\.)*"|[^,>]*)')


def _strip_contig_paths(line: str) -> tuple[str, int]:
    """Remove the attributes of a ``##contig=<...>`` line whose value is a local path.

    Sequence dictionaries carry the reference's location (``URL=file:/home/...``); ID and
    length, which records depend on, are never paths.
    """
    body = _header_value(line)
    if not (body.startswith("<") and body.endswith(">")):
        return line, 0
    attrs = _ATTRIBUTE.findall(body[1:-1])
    keep = [(k, v) for k, v in attrs if not _PATH.search(v)]
    if len(keep) == len(attrs):
        return line, 0
    rebuilt = ",".join(f"{k}={v}" for k, v in keep)
    return f"##{_header_key(line)}=<{rebuilt}>\n", len(attrs) - len(keep)


class _SampleIdSearch:
    """Finds original sample IDs as whole words (case-insensitive) in text."""

    def __init__(self, ids: Iterable[str]) -> None:
        searched = sorted({i.lower() for i in ids if len(i) >= MIN_SEARCHED_ID_LENGTH},
                          key=len, reverse=True)
        self._regex = (re.compile("(?<![A-Za-z0-9])(" + "|".join(map(re.escape, searched))
                                  + ")(?![A-Za-z0-9])", re.IGNORECASE) if searched else None)
        # Records are many: split on characters no searched ID holds, then look tokens up.
        self._set = set(searched)
        chars = set("".join(searched))
        seps = [c for c in "\t;=,|&:/()[]{}<>'\" .+" if c not in chars]
        self._split = re.compile("[" + re.escape("".join(seps)) + "]") if seps else None

    def in_header(self, text: str) -> bool:
        return self._regex is not None and self._regex.search(text) is not None

    def in_record_field(self, text: str) -> bool:
        if not self._set or text in (".", ""):
            return False
        if self._split is None:
            return self.in_header(text)
        return any(t in self._set for t in self._split.split(text.lower()))


def _check_header(lines: Sequence[tuple[int, str]], ids: Sequence[str], src: Path,
                  drop_keys: frozenset[str], removed: Counter[str]) -> list[str]:
    """Apply the header rules to the ``##`` lines once the sample IDs are known."""
    search = _SampleIdSearch(ids)
    kept = []
    for lineno, line in lines:
        reason = _drop_reason(line, drop_keys)
        if reason is not None:
            removed[reason] += 1
            continue
        key = _header_key(line)
        if key.lower() == "contig":
            line, n = _strip_contig_paths(line)
            if n:
                removed[f"{key}:path attribute"] += n
        if _PATH.search(_header_value(line)):
            raise InputError(
                "a header line that cannot be removed holds a file path",
                where=f"{src}:{lineno} (##{key})", expected="no local path in ##" + key,
                got="a path", fix="edit that line (bcftools reheader -h new_header.txt)")
        if search.in_header(line):
            fix = ("remove the line (bcftools reheader -h new_header.txt)"
                   if key.lower() in _STRUCTURAL_KEYS else
                   f"remove the line, or drop it with --drop-header '{key}'")
            raise InputError(
                "a header line names an original sample ID; nothing was written",
                where=f"{src}:{lineno} (##{key})", expected="no sample ID outside #CHROM",
                got="a sample ID in the line", fix=fix)
        kept.append(line)
    return kept


def _is_ours(path: Path) -> bool:
    try:
        for line in _open_text(path):
            if not line.startswith("##"):
                return False
            if line.startswith(f"##{_MARKER_KEY}="):
                return True
    except (OSError, UnicodeDecodeError, EOFError):
        return False
    return False


def _alt_counts(fields: list[str], n_alt: int, where: str) -> list[int]:
    fmt = fields[8].split(":") if len(fields) > 8 else []
    if not fmt or fmt[0] != "GT":
        raise FormatError("cannot count alleles: no GT field", where=where,
                          expected="FORMAT starting with GT", got=f"FORMAT '{fields[8]}'"
                          if len(fields) > 8 else "no FORMAT column",
                          fix="drop --min-ac, or add genotypes")
    counts = [0] * (n_alt + 1)
    for sample in fields[9:]:
        gt = sample.split(":", 1)[0]
        for allele in re.split(r"[/|]", gt):
            if allele not in (".", ""):
                a = int(allele)
                if 0 <= a <= n_alt:
                    counts[a] += 1
    return counts[1:]


def deidentify_vcf(
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    key: bytes,
    min_ac: int | None = None,
    drop_header: Sequence[str] = (),
) -> VcfReport:
    """Write a de-identified, bgzipped and tabix-indexed copy of a VCF.

    See the module docstring for what is removed and kept.  Records are copied unchanged
    (same order; the input must be sorted for tabix), only the sample columns are renamed.

    Parameters
    ----------
    in_path
        VCF, plain or (b)gzipped.
    out_path
        Output ``.vcf.gz``; its index is ``out_path + ".tbi"``.  An existing file is replaced
        only if it is an earlier output of ours.
    key
        Site key (>= :data:`MIN_KEY_BYTES` bytes), e.g. from :func:`read_key_file`.
    min_ac
        Drop records in which some ALT allele is carried fewer than ``min_ac`` times
        (``min_ac=3`` drops singletons and doubletons).  Missing calls do not count.
    drop_header
        Further header keys to remove (case-insensitive), e.g. a pipeline's own key that
        names a sample.  The keys records depend on (INFO, FORMAT, FILTER, ALT, contig,
        fileformat) cannot be named.

    Returns
    -------
    VcfReport

    Raises
    ------
    InputFileNotFoundError
        If ``in_path`` does not exist.
    ConfigError
        If the key is too short, ``min_ac`` < 1, ``out_path`` does not end in ``.vcf.gz``, is
        the input, or exists and is not an earlier output of ours, or ``drop_header`` names a
        key records depend on.
    FormatError
        If the input is not a VCF (BCF, missing ``##fileformat``, ragged records, no GT
        with ``min_ac``, unsorted records), or two samples share an ID.
    InputError
        If two sample IDs get the same pseudonym (a collision of 64-bit prefixes), or a
        header line left after the removal rules (or a record's ID or INFO column) names an
        original sample ID or holds a local path: the message names the header key and the
        line, never the value.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "in.vcf").write_text(
    ...     "##fileformat=VCFv4.2\\n##contig=<ID=1>\\n##commandline=/home/me/run.sh\\n"
    ...     "##FORMAT=<ID=GT,Number=1,Type=String,Description=\\"Genotype\\">\\n"
    ...     "#CHROM\\tPOS\\tID\\tREF\\tALT\\tQUAL\\tFILTER\\tINFO\\tFORMAT\\tanna\\tbob\\n"
    ...     "1\\t10\\t.\\tA\\tG\\t.\\t.\\t.\\tGT\\t0/1\\t1/1\\n"
    ...     "1\\t20\\t.\\tC\\tT\\t.\\t.\\t.\\tGT\\t0/0\\t0/1\\n")
    >>> r = deidentify_vcf(d / "in.vcf", d / "out.vcf.gz", key=bytes(32), min_ac=2)
    >>> r.samples, r.variants_out, r.variants_suppressed, r.header_lines_removed
    (2, 1, 1, {'commandline': 1})
    """
    import pysam

    src, dst = Path(in_path), Path(out_path)
    _check_key(key, "key")
    if min_ac is not None and (isinstance(min_ac, bool) or not isinstance(min_ac, int)
                               or min_ac < 1):
        raise ConfigError("min_ac must be a positive integer", where="min_ac",
                          expected="an integer >= 1", got=repr(min_ac),
                          fix="use --min-ac 3 to drop singletons and doubletons")
    if isinstance(drop_header, str):
        drop_header = [drop_header]
    drop_keys = frozenset(k.strip().lstrip("#").lower() for k in drop_header)
    if drop_keys & _STRUCTURAL_KEYS:
        raise ConfigError("cannot drop a header key that records depend on",
                          where="drop_header", expected="a key other than "
                          + ", ".join(sorted(_STRUCTURAL_KEYS)),
                          got=", ".join(sorted(drop_keys & _STRUCTURAL_KEYS)),
                          fix="edit that header line instead (bcftools reheader)")
    require_file(src, "input VCF", expected="a VCF file (plain, gzip or bgzip)")
    if compression(src) == "bgzf" and not has_bgzf_eof(src):
        raise FormatError("input VCF is truncated", where=str(src),
                          expected="the BGZF end-of-file block", got="a file that ends without it",
                          fix="the file was cut short: re-copy or re-create it")
    if not dst.name.endswith(".vcf.gz"):
        raise ConfigError("output must be a bgzipped VCF", where=str(dst),
                          expected="a name ending in .vcf.gz", got=f"'{dst.name}'",
                          fix="name the output like out.vcf.gz")
    if dst.exists() and dst.resolve() == src.resolve():
        raise ConfigError("output would overwrite the input", where=str(dst),
                          fix="write to another path")
    if dst.exists() and not _is_ours(dst):
        raise ConfigError("output exists and is not an earlier secured_bio output",
                          where=str(dst), fix="choose another output path "
                          "(secured-bio never overwrites unrelated files)")
    index = Path(str(dst) + ".tbi")
    report = VcfReport(in_path=str(src), out_path=str(dst), index_path=str(index),
                       min_ac=min_ac)
    removed: Counter[str] = Counter()
    with atomic_paths(dst, index) as (tmp_vcf, tmp_tbi):
        try:
            _copy(src, tmp_vcf, key, min_ac, report, removed, pysam, drop_keys)
        except UnicodeDecodeError as e:
            raise FormatError("not a text VCF", where=str(src),
                              expected="VCF text (plain, gzip or bgzip)", got="binary data",
                              fix="convert BCF first: bcftools view -Oz -o in.vcf.gz in.bcf"
                              ) from e
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise FormatError("truncated or corrupt compressed VCF", where=str(src),
                              got=type(e).__name__, fix="recompress the file with bgzip"
                              ) from e
        try:
            pysam.tabix_index(str(tmp_vcf), preset="vcf", index=str(tmp_tbi), force=True)
        except (OSError, ValueError) as e:
            raise FormatError("cannot index the output: records not sorted", where=str(src),
                              expected="records sorted by contig and position",
                              fix="sort first: bcftools sort -Oz -o sorted.vcf.gz in.vcf"
                              ) from e
    report.header_lines_removed = dict(sorted(removed.items()))
    logger.info("%s", report.summary())
    return report


def _copy(src: Path, tmp: Path, key: bytes, min_ac: int | None, report: VcfReport,
          removed: Counter[str], pysam: Any, drop_keys: frozenset[str]) -> None:
    lines = _open_text(src)
    first = next(lines, "")
    if first.startswith("BCF"):
        raise FormatError("not a text VCF", where=str(src), expected="VCF text", got="BCF",
                          fix="convert first: bcftools view -Oz -o in.vcf.gz in.bcf")
    if not first.startswith("##fileformat=VCF"):
        raise FormatError("not a VCF", where=f"{src}:1",
                          expected="a first line '##fileformat=VCFv4.x'",
                          got=f"a line of {len(first)} characters",
                          fix="pass a VCF file (plain, gzip or bgzip)")
    header: list[tuple[int, str]] = []
    search = _SampleIdSearch(())
    with pysam.BGZFile(str(tmp), "wb") as out:
        out.write(first.encode())
        n_samples = -1
        for lineno, line in enumerate(lines, start=2):
            if line.startswith("##"):
                if n_samples >= 0:
                    raise FormatError("a ## header line after #CHROM", where=f"{src}:{lineno}",
                                      fix="repair the VCF header")
                header.append((lineno, line))  # checked once the sample IDs are known
                continue
            if line.startswith("#CHROM"):
                cols = line.rstrip("\r\n").split("\t")
                ids = cols[9:]
                for kept in _check_header(header, ids, src, drop_keys, removed):
                    out.write(kept.encode())
                search = _SampleIdSearch(ids)
                if len(set(ids)) != len(ids):
                    raise FormatError("duplicate sample IDs", where=f"{src}:{lineno}",
                                      expected="unique sample IDs",
                                      got=f"{len(ids) - len(set(ids))} duplicate(s)",
                                      fix="rename the samples (bcftools reheader)")
                pseudo = [pseudonymize_id(i, key) for i in ids]
                if len(set(pseudo)) != len(pseudo):
                    raise InputError("pseudonym collision", where=f"{src}:{lineno}",
                                     expected="distinct pseudonyms",
                                     got=f"{len(pseudo) - len(set(pseudo))} collision(s)",
                                     fix="use another key")
                marker = (f"##{_MARKER_KEY}=<Format={FORMAT_NAME},Version={FORMAT_VERSION},"
                          f"Pseudonyms=HMAC-SHA256,MinAC={min_ac if min_ac else 0}>\n")
                out.write(marker.encode())
                out.write(("\t".join(cols[:9] + pseudo) + "\n").encode())
                n_samples = len(ids)
                report.samples = n_samples
                continue
            if n_samples < 0:
                raise FormatError("no #CHROM header line before the records",
                                  where=f"{src}:{lineno}", fix="repair the VCF header")
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            report.variants_in += 1
            expected = 9 + n_samples if n_samples else 8
            if len(fields) < expected or (n_samples and len(fields) != expected):
                raise FormatError("ragged VCF record", where=f"{src}:{lineno}",
                                  expected=f"{expected} columns", got=f"{len(fields)}",
                                  fix="repair the file (bcftools view reports the record)")
            for col, name in ((2, "ID"), (7, "INFO")):
                if search.in_record_field(fields[col]):
                    raise InputError(
                        f"a record's {name} column names an original sample ID; nothing was "
                        "written", where=f"{src}:{lineno}", expected="no sample ID in "
                        f"{name}", got="a sample ID",
                        fix=f"remove it first (bcftools annotate -x {name})")
            if min_ac is not None:
                n_alt = 0 if fields[4] == "." else fields[4].count(",") + 1
                counts = _alt_counts(fields, n_alt, f"{src}:{lineno}")
                if not counts or min(counts) < min_ac:
                    report.variants_suppressed += 1
                    continue
            report.variants_out += 1
            out.write(line.encode() if line.endswith("\n") else (line + "\n").encode())
        if n_samples < 0:
            raise FormatError("no #CHROM header line", where=str(src),
                              fix="repair the VCF header")


# ----------------------------------------------------------------------------- membership


@dataclass(frozen=True)
class MembershipPower:
    """Result of :func:`membership_power` (Homer test on released allele frequencies).

    Attributes
    ----------
    power
        True-positive rate: share of pool members whose statistic exceeds ``threshold``.
    fpr
        Requested false-positive rate; ``fpr_observed`` is the share of non-members above
        the threshold (at most ``fpr``).
    auc
        Area under the ROC curve of the statistic, members vs non-members.
    threshold
        The (1 - fpr) quantile of the non-members' statistics.
    n_snps, n_members, n_nonmembers
        Sizes.
    """

    power: float
    fpr: float
    fpr_observed: float
    auc: float
    threshold: float
    n_snps: int
    n_members: int
    n_nonmembers: int


def _dosage(genotypes: Any, name: str) -> np.ndarray:
    g = np.asarray(genotypes, dtype=float)
    if g.ndim == 1:
        g = g[None, :]
    if g.ndim != 2:
        raise InputError("genotypes must be a (people, snps) matrix", where=name,
                         expected="1 or 2 dimensions", got=f"{g.ndim}",
                         fix="pass ALT dosages 0/1/2 per person and SNP")
    ok = np.isnan(g) | np.isin(g, (0.0, 1.0, 2.0))
    if not ok.all():
        raise InputError("genotypes must be ALT dosages", where=name,
                         expected="0, 1, 2 or NaN (missing)",
                         got=f"{int((~ok).sum())} other value(s)",
                         fix="pass diploid ALT allele counts")
    return g


def _freqs(values: Any, n_snps: int, name: str) -> np.ndarray:
    f = np.asarray(values, dtype=float)
    if f.shape != (n_snps,) or not np.all((f >= 0) & (f <= 1)):
        raise InputError("allele frequencies must be one value in [0, 1] per SNP", where=name,
                         expected=f"shape ({n_snps},), values in [0, 1]",
                         got=f"shape {f.shape}", fix="pass ALT allele frequencies per SNP")
    return f


def homer_membership(genotypes_person: Any, pool_freqs: Any, reference_freqs: Any
                     ) -> np.ndarray:
    """Homer's statistic: how much closer a person is to the pool than to the reference.

    ``D = sum_j |Y_j - Pop_j| - |Y_j - M_j|``, with Y_j in {0, 0.5, 1} the person's ALT allele
    frequency at SNP j (dosage / 2), M_j the pool's released ALT frequency and Pop_j that of
    a reference population (Homer et al., PLoS Genet 4:e1000167, 2008).  D > 0 points to
    membership; missing genotypes (NaN) contribute 0.

    Parameters
    ----------
    genotypes_person
        ALT dosages (0/1/2, NaN missing), shape (snps,) for one person or (people, snps).
    pool_freqs
        Released ALT allele frequencies of the pool, shape (snps,).
    reference_freqs
        ALT allele frequencies of a reference population, shape (snps,).

    Returns
    -------
    numpy.ndarray
        D per person, shape (people,).

    Raises
    ------
    InputError
        If dosages are not 0/1/2/NaN, or frequencies have the wrong shape or range.

    Examples
    --------
    >>> homer_membership([2, 0, 1], [0.9, 0.1, 0.5], [0.5, 0.5, 0.5])
    array([0.8])
    """
    g = _dosage(genotypes_person, "genotypes_person")
    m = _freqs(pool_freqs, g.shape[1], "pool_freqs")
    pop = _freqs(reference_freqs, g.shape[1], "reference_freqs")
    y = g / 2.0
    d = np.abs(y - pop) - np.abs(y - m)
    return np.asarray(np.nansum(d, axis=1))


def membership_power(
    pool_genotypes: Any,
    nonmember_genotypes: Any,
    reference_freqs: Any,
    *,
    fpr: float = 0.05,
    min_ac: int | None = None,
) -> MembershipPower:
    """Power of Homer's test to tell pool members from non-members at a fixed FPR.

    The released data are the pool's ALT allele frequencies (mean dosage / 2 per SNP, as a
    GWAS summary statistic would publish them).  Each member and non-member gets Homer's D
    (:func:`homer_membership`); the threshold is the (1 - ``fpr``) quantile of the
    non-members' D (a likelihood-ratio style calibration as in Sankararaman et al., Nat Genet
    41:965, 2009), and power is the share of members above it.

    Parameters
    ----------
    pool_genotypes
        ALT dosages of the pool (members), (members, snps).
    nonmember_genotypes
        ALT dosages of people from the same population not in the pool, (people, snps).
    reference_freqs
        ALT frequencies of an independent reference sample, (snps,).
    fpr
        False-positive rate at which power is measured, in (0, 1).
    min_ac
        Release only SNPs whose ALT allele count in the pool is >= ``min_ac`` (rare-variant
        suppression, as :func:`deidentify_vcf` does).

    Returns
    -------
    MembershipPower

    Raises
    ------
    InputError
        If the inputs are not dosage matrices with the same SNPs, or no SNP is left.
    ConfigError
        If ``fpr`` is not in (0, 1) or ``min_ac`` < 1.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.05, 0.95, 2000)
    >>> people = rng.binomial(2, p, size=(120, 2000))
    >>> ref = rng.binomial(2, p, size=(200, 2000)).mean(axis=0) / 2
    >>> r = membership_power(people[:20], people[20:], ref)
    >>> r.power > 0.9, r.auc > 0.9
    (True, True)
    """
    if not 0.0 < fpr < 1.0:
        raise ConfigError("fpr must be in (0, 1)", where="fpr", got=repr(fpr),
                          fix="use fpr=0.05")
    if min_ac is not None and (not isinstance(min_ac, int) or min_ac < 1):
        raise ConfigError("min_ac must be a positive integer", where="min_ac",
                          got=repr(min_ac), fix="use min_ac=3")
    members = _dosage(pool_genotypes, "pool_genotypes")
    others = _dosage(nonmember_genotypes, "nonmember_genotypes")
    if others.shape[1] != members.shape[1]:
        raise InputError("pool and non-members have different SNPs",
                         where="nonmember_genotypes", expected=f"{members.shape[1]} SNPs",
                         got=f"{others.shape[1]}", fix="use the same SNPs in the same order")
    ref = _freqs(reference_freqs, members.shape[1], "reference_freqs")
    pool = np.nanmean(members, axis=0) / 2.0
    keep = np.isfinite(pool)
    if min_ac is not None:
        keep &= np.nansum(members, axis=0) >= min_ac
    if not keep.any():
        raise InputError("no SNP left to release", where="membership_power",
                         expected=">= 1 SNP", got="0", fix="lower min_ac")
    d_in = homer_membership(members[:, keep], pool[keep], ref[keep])
    d_out = homer_membership(others[:, keep], pool[keep], ref[keep])
    threshold = float(np.quantile(d_out, 1.0 - fpr, method="higher"))
    # AUC = P(D_member > D_nonmember) + P(tie) / 2 (Mann-Whitney U / (n1 n2)).
    n1, n0 = len(d_in), len(d_out)
    # AUC = P(D_member > D_nonmember) + P(tie) / 2 (Mann-Whitney U / (n1 n0)).
    sorted_out = np.sort(d_out)
    below = np.searchsorted(sorted_out, d_in, side="left")
    ties = np.searchsorted(sorted_out, d_in, side="right") - below
    auc = float((below.sum() + 0.5 * ties.sum()) / (n1 * n0))
    return MembershipPower(
        power=float(np.mean(d_in > threshold)), fpr=fpr,
        fpr_observed=float(np.mean(d_out > threshold)), auc=auc, threshold=threshold,
        n_snps=int(keep.sum()), n_members=n1, n_nonmembers=n0)
