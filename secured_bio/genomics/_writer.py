"""The genotype store format and its writer, below both the reader and the ingesters.

:mod:`secured_bio.genomics.store` (the reader) and the ingesters
(:mod:`secured_bio.genomics.ingest` for VCF/BCF, :mod:`secured_bio.genomics.pgen` for
PLINK 2) import the format constants, the variable specs and :class:`_StoreWriter` from
here, so the format is written in one place and the modules import each other in one
direction only (store -> ingest -> _writer).  The public names are re-exported by
:mod:`secured_bio.genomics.store`; see its docstring for the format itself.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from secured_bio.errors import FormatError

FORMAT_NAME = "secured_bio.genotypes"
"""Value of the ``format`` attribute of every genotype store."""
FORMAT_VERSION = 1
"""Store format version written and read by this release (newer versions are refused)."""
DEFAULT_CHUNK_SIZE = 10_000
"""Largest default number of variants per chunk (all samples in every chunk)."""
CHUNK_TARGET_BYTES = 128 * 2**20
"""Default chunks hold at most this many bytes of float64 dosages (variants x samples x 8)."""


def auto_chunk_size(n_samples: int) -> int:
    """Default variants per chunk for a cohort of ``n_samples``: memory bounded by bytes.

    A chunk's float64 dosage matrix (what the analyses hold) stays under
    :data:`CHUNK_TARGET_BYTES` (128 MiB): 8,388 variants for 2,000 samples, 671 for 25,000,
    never more than :data:`DEFAULT_CHUNK_SIZE` nor fewer than 64.

    Examples
    --------
    >>> auto_chunk_size(100), auto_chunk_size(2_000), auto_chunk_size(25_000)
    (10000, 8388, 671)
    """
    per_variant = 8 * max(int(n_samples), 1)
    return int(min(DEFAULT_CHUNK_SIZE, max(64, CHUNK_TARGET_BYTES // per_variant)))


MISSING_ALLELE = -1
"""``call_genotype`` value of a missing allele call (``.``)."""
FILL_ALLELE = -2
"""``call_genotype`` value of the absent second allele of a haploid call (sgkit's fill)."""

@dataclass(frozen=True)
class Variable:
    """Specification of one store variable (sgkit-style variable spec).

    Attributes
    ----------
    name
        Array name in the zarr group.
    dims
        Dimension names, in order.
    kind
        numpy dtype kind: ``"i"`` (signed integer), ``"b"`` (bool) or ``"T"`` (string).
    description
        Meaning of the variable.
    """

    name: str
    dims: tuple[str, ...]
    kind: str
    description: str


VARIABLES: Mapping[str, Variable] = {
    v.name: v
    for v in (
        Variable("call_genotype", ("variants", "samples", "ploidy"), "i",
                 "allele index per haplotype: 0 REF, 1 ALT, -1 missing, -2 non-allele (haploid)"),
        Variable("call_genotype_phased", ("variants", "samples"), "b",
                 "True where the call was phased in the VCF"),
        Variable("variant_contig", ("variants",), "T", "contig (CHROM)"),
        Variable("variant_position", ("variants",), "i", "1-based position (POS)"),
        Variable("variant_id", ("variants",), "T", "variant ID ('.' when missing)"),
        Variable("variant_allele", ("variants", "alleles"), "T", "REF and ALT alleles"),
        Variable("sample_id", ("samples",), "T", "sample names from the VCF header"),
    )
}
"""Every variable of the store format, by name."""

_GENOTYPE_COMPRESSOR: dict[str, Any] = {
    "cname": "zstd", "clevel": 1, "shuffle": "bitshuffle", "typesize": 1,
}


def _read_group_meta(path: Path) -> dict[str, Any]:
    meta_file = path / "zarr.json"
    if not meta_file.is_file():
        v2 = (path / ".zgroup").is_file() or (path / ".zattrs").is_file()
        raise FormatError(
            "not a secured_bio genotype store", where=str(path),
            expected="a zarr v3 group (zarr.json)",
            got="a zarr v2 store" if v2 else "a folder without zarr.json",
            fix="create the store with: secured-bio genomics ingest --vcf V --out Z.zarr",
        )
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError("zarr.json could not be read", where=str(meta_file),
                          expected="JSON", got=type(e).__name__,
                          fix="re-create the store with secured-bio genomics ingest") from e
    if not isinstance(meta, dict) or meta.get("node_type") != "group":
        raise FormatError("not a secured_bio genotype store", where=str(meta_file),
                          expected="a zarr group", got="another zarr node",
                          fix="pass the store folder written by secured-bio genomics ingest")
    attrs = meta.get("attributes") or {}
    return attrs if isinstance(attrs, dict) else {}


# ------------------------------------------------------------------------------------------
# Writer (used by the ingesters; kept here so that the format lives in one module)
# ------------------------------------------------------------------------------------------


class _StoreWriter:
    """Append variant chunks to a new store folder; attributes are written last."""

    def __init__(self, root: Path, *, sample_ids: Sequence[str], chunk_size: int) -> None:
        import zarr
        from zarr.codecs import BloscCodec

        self.root = root
        self.n_samples = len(sample_ids)
        self.chunk_size = chunk_size
        self.n_variants = 0
        g = zarr.open_group(str(root), mode="w", zarr_format=3)
        self._group = g
        n = self.n_samples
        blosc = BloscCodec(**_GENOTYPE_COMPRESSOR)
        self._arrays = {
            "call_genotype": g.create_array(
                "call_genotype", shape=(0, n, 2), chunks=(chunk_size, n, 2), dtype="i1",
                fill_value=MISSING_ALLELE, compressors=blosc,
                dimension_names=VARIABLES["call_genotype"].dims),
            "call_genotype_phased": g.create_array(
                "call_genotype_phased", shape=(0, n), chunks=(chunk_size, n), dtype=bool,
                fill_value=False, compressors=blosc,
                dimension_names=VARIABLES["call_genotype_phased"].dims),
            "variant_contig": g.create_array(
                "variant_contig", shape=(0,), chunks=(chunk_size,), dtype=str,
                dimension_names=VARIABLES["variant_contig"].dims),
            "variant_position": g.create_array(
                "variant_position", shape=(0,), chunks=(chunk_size,), dtype="i8",
                fill_value=0, dimension_names=VARIABLES["variant_position"].dims),
            "variant_id": g.create_array(
                "variant_id", shape=(0,), chunks=(chunk_size,), dtype=str,
                dimension_names=VARIABLES["variant_id"].dims),
            "variant_allele": g.create_array(
                "variant_allele", shape=(0, 2), chunks=(chunk_size, 2), dtype=str,
                dimension_names=VARIABLES["variant_allele"].dims),
        }
        samples = g.create_array("sample_id", shape=(n,), chunks=(max(n, 1),), dtype=str,
                                 dimension_names=VARIABLES["sample_id"].dims)
        samples[:] = np.asarray(list(sample_ids), dtype=object)

    def append(self, gt: np.ndarray, phased: np.ndarray | None, contig: Sequence[str],
               position: np.ndarray, variant_id: Sequence[str],
               alleles: Sequence[tuple[str, str]]) -> None:
        m = gt.shape[0]
        if m == 0:
            return
        start, stop = self.n_variants, self.n_variants + m
        values: dict[str, np.ndarray | None] = {
            "call_genotype": gt,
            "call_genotype_phased": phased,
            "variant_contig": np.asarray(contig, dtype=object),
            "variant_position": np.asarray(position, dtype=np.int64),
            "variant_id": np.asarray(variant_id, dtype=object),
            "variant_allele": np.asarray(alleles, dtype=object).reshape(m, 2),
        }
        for name, arr in self._arrays.items():
            arr.resize((stop, *arr.shape[1:]))
            value = values[name]
            if value is not None:  # phase flags: None when no call was phased
                arr[start:stop] = value
        self.n_variants = stop

    def finish(self, attrs: dict[str, Any]) -> None:
        full = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                "n_samples": self.n_samples, "n_variants": self.n_variants,
                "chunk_size": self.chunk_size, **attrs}
        self._group.attrs.update(full)


def _is_our_store(path: Path) -> bool:
    with contextlib.suppress(FormatError):
        return _read_group_meta(path).get("format") == FORMAT_NAME
    return False
