"""Export a genotype store as VCF Zarr, the format of bio2zarr, sgkit and vcztools.

:func:`export_vcz` writes the arrays of the VCF Zarr specification (version 0.4,
https://github.com/sgkit-dev/vcf-zarr-spec) as a zarr v2 group, as bio2zarr's ``vcf2zarr``
does by default, so ``vcztools view``/``query`` and sgkit read it:

========================= ===================== ======= ===========================================
array                     dims                  dtype   from the store
========================= ===================== ======= ===========================================
``call_genotype``         variants, samples,    int8    ``call_genotype`` (-1 missing, -2 fill: the
                          ploidy                        absent second allele of a haploid call)
``call_genotype_mask``    variants, samples,    bool    ``call_genotype < 0``
                          ploidy
``call_genotype_phased``  variants, samples     bool    ``call_genotype_phased``
``variant_contig``        variants              int     index into ``contig_id``
``variant_position``      variants              int32   POS
``variant_id``            variants              str     ID (``'.'`` where missing)
``variant_id_mask``       variants              bool    ID is missing
``variant_allele``        variants, alleles     str     REF, ALT (``''``: a record without ALT)
``variant_quality``       variants              float32 missing (the store keeps no QUAL)
``variant_filter``        variants, filters     bool    all False: FILTER not kept (``.``)
``contig_id``             contigs               str     contigs in order of first appearance
``filter_id``             filters               str     ``PASS``
``sample_id``             samples               str     ``sample_id``
========================= ===================== ======= ===========================================

Every array carries ``_ARRAY_DIMENSIONS``; the group carries ``vcf_zarr_version`` ``"0.4"``
and ``source``.  What the store does not keep (QUAL, FILTER, INFO, other FORMAT fields,
contig lengths, the VCF header) is not invented.  The reverse direction needs no export:
:func:`~secured_bio.genomics.open_genotypes` reads a VCF Zarr store in place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from secured_bio._atomic import atomic_dir
from secured_bio.errors import ConfigError
from secured_bio.genomics.store import open_genotypes

__all__ = ["VCF_ZARR_EXPORT_VERSION", "export_vcz"]

VCF_ZARR_EXPORT_VERSION = "0.4"
"""The VCF Zarr specification version :func:`export_vcz` writes."""

_FLOAT32_MISSING = np.array([0x7F800001], dtype=np.uint32).view(np.float32)[0]


def export_vcz(store: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    r"""Write a genotype store (or any input :func:`open_genotypes` takes) as VCF Zarr.

    Parameters
    ----------
    store
        A genotype store folder, a VCF Zarr store or a VCF/BCF file.
    out
        The VCF Zarr folder to create (``.vcz`` by convention); written under a temporary
        name and renamed when complete.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ConfigError
        If ``out`` exists and is not empty, or is the input.
    InputFileNotFoundError, FormatError
        As :func:`open_genotypes` for the input.

    Examples
    --------
    >>> import tempfile, pathlib, zarr
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "x.vcf").write_text(
    ...     "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ta\n"
    ...     "1\t5\trs1\tA\tG\t.\t.\t.\tGT\t0|1\n")
    >>> g = zarr.open_group(str(export_vcz(d / "x.vcf", d / "x.vcz")), mode="r")
    >>> g.attrs["vcf_zarr_version"], g["call_genotype"][:].tolist()
    ('0.4', [[[0, 1]]])
    """
    import zarr

    dest = Path(out)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigError("output path exists", where=str(dest),
                          expected="a new or empty folder",
                          fix="choose another output path (nothing is overwritten)")
    if Path(store).resolve() == dest.resolve():
        raise ConfigError("output would overwrite the input", where=str(dest),
                          fix="choose another output path")
    with open_genotypes(store) as s, atomic_dir(dest) as tmp:
        g = zarr.open_group(str(tmp), mode="w", zarr_format=2)
        n, m, step = s.n_samples, s.n_variants, max(1, s.chunk_size)
        contig = s.contig
        names, first = np.unique(contig, return_index=True)
        order = names[np.argsort(first)] if names.size else names
        index = {c: i for i, c in enumerate(order.tolist())}
        contig_idx = np.asarray([index[c] for c in contig.tolist()], dtype=np.int32)
        ids = s.variant_id
        alt = np.where(s.alt == ".", "", s.alt)

        def put(name: str, data: np.ndarray, dims: tuple[str, ...], *, dtype: Any = None,
                chunks: tuple[int, ...] | None = None) -> None:
            arr = g.create_array(name, shape=data.shape,
                                 dtype=dtype if dtype is not None else data.dtype,
                                 chunks=chunks or "auto",
                                 attributes={"_ARRAY_DIMENSIONS": list(dims)})
            if data.size:
                arr[...] = data

        vchunk = (min(step, max(m, 1)),)
        put("variant_position", s.position.astype(np.int32), ("variants",), chunks=vchunk)
        put("variant_contig", contig_idx, ("variants",), chunks=vchunk)
        put("contig_id", np.asarray(order.tolist(), dtype=object), ("contigs",), dtype=str)
        put("variant_id", np.asarray(ids.tolist(), dtype=object), ("variants",), dtype=str,
            chunks=vchunk)
        put("variant_id_mask", ids == ".", ("variants",), chunks=vchunk)
        alleles = np.stack([s.ref, alt], axis=1) if m else np.zeros((0, 2), dtype=str)
        put("variant_allele", np.asarray(alleles.tolist(), dtype=object).reshape(m, 2),
            ("variants", "alleles"), dtype=str, chunks=(vchunk[0], 2))
        put("variant_quality", np.full(m, _FLOAT32_MISSING, dtype=np.float32), ("variants",),
            chunks=vchunk)
        put("variant_filter", np.zeros((m, 1), dtype=bool), ("variants", "filters"),
            chunks=(vchunk[0], 1))
        put("filter_id", np.asarray(["PASS"], dtype=object), ("filters",), dtype=str)
        put("sample_id", np.asarray(s.sample_ids.tolist(), dtype=object), ("samples",),
            dtype=str)
        gt_chunks = (vchunk[0], max(n, 1), 2)
        gt = g.create_array("call_genotype", shape=(m, n, 2), dtype="i1", chunks=gt_chunks,
                            fill_value=-1,
                            attributes={"_ARRAY_DIMENSIONS": ["variants", "samples", "ploidy"]})
        mask = g.create_array("call_genotype_mask", shape=(m, n, 2), dtype=bool,
                              chunks=gt_chunks, fill_value=False,
                              attributes={"_ARRAY_DIMENSIONS": ["variants", "samples",
                                                                "ploidy"]})
        phased = g.create_array("call_genotype_phased", shape=(m, n), dtype=bool,
                                chunks=gt_chunks[:2], fill_value=False,
                                attributes={"_ARRAY_DIMENSIONS": ["variants", "samples"]})
        for (sl, calls), (_, ph) in zip(s.iter_genotypes(chunk_size=vchunk[0]),
                                        s.iter_phased(chunk_size=vchunk[0]), strict=True):
            gt[sl] = calls
            mask[sl] = calls < 0
            if ph.any():
                phased[sl] = ph
        from secured_bio.genomics.ingest import _created_by

        g.attrs.update({"vcf_zarr_version": VCF_ZARR_EXPORT_VERSION, "source": _created_by(),
                        "secured_bio_source": str(s.attrs.get("source", Path(store).name))})
    return dest
