"""The genotype store format and its reader: attributes, variables, dosage, refusals."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import numpy as np
import pytest

from secured_bio.errors import ConfigError, FormatError, InputFileNotFoundError
from secured_bio.genomics import (
    FORMAT_NAME,
    FORMAT_VERSION,
    VARIABLES,
    GenotypeStore,
    ingest_vcf,
    open_genotypes,
)

HEADER = "##fileformat=VCFv4.2\n##contig=<ID=1>\n##contig=<ID=X>\n" \
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n' \
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tsA\tsB\tsC\tsD\n"
# Calls cover: unphased/phased diploid, missing, half-missing, haploid, missing haploid.
RECORDS = [
    "1\t100\trs1\tA\tG\t.\t.\t.\tGT\t0/0\t0/1\t1|1\t./.",
    "1\t200\t.\tC\tT\t.\t.\t.\tGT\t1|0\t./1\t0/0\t1/1",
    "X\t300\trs3\tG\tA\t.\t.\t.\tGT\t0\t1\t.\t0/1",
]
EXPECTED_GT = np.array([
    [[0, 0], [0, 1], [1, 1], [-1, -1]],
    [[1, 0], [-1, 1], [0, 0], [1, 1]],
    [[0, -2], [1, -2], [-1, -2], [0, 1]],
], dtype=np.int8)
EXPECTED_DOSAGE = np.array([
    [0, 1, 2, np.nan],
    [1, np.nan, 0, 2],
    [0, 1, np.nan, 1],
])
EXPECTED_PHASED = np.array([
    [False, False, True, False],
    [True, False, False, False],
    [False, False, False, False],
])


@pytest.fixture()
def store_path(tmp_path: Path) -> Path:
    vcf = tmp_path / "calls.vcf"
    vcf.write_text(HEADER + "\n".join(RECORDS) + "\n")
    out = tmp_path / "calls.zarr"
    ingest_vcf(vcf, out, chunk_size=2, progress=False)
    return out


def _zarr_attrs(path: Path) -> dict:
    return json.loads((path / "zarr.json").read_text())["attributes"]


def _set_attrs(path: Path, **changes) -> None:
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"].update(changes)
    for key, value in changes.items():
        if value is None:
            del meta["attributes"][key]
    (path / "zarr.json").write_text(json.dumps(meta))


def test_store__attributes_carry_format_version_and_counts(store_path):
    attrs = _zarr_attrs(store_path)
    assert attrs["format"] == FORMAT_NAME == "secured_bio.genotypes"
    assert attrs["format_version"] == FORMAT_VERSION == 1
    assert attrs["source"] == "calls.vcf"  # the file name only, never its folder
    assert attrs["n_samples"] == 4 and attrs["n_variants"] == 3
    assert attrs["multiallelic"] == {"split": 0}
    assert attrs["haploid_calls"] == 3 and attrs["phased_calls"] == 2
    assert str(store_path.parent) not in json.dumps(attrs)


def test_store__variables_follow_their_specs(store_path):
    import zarr

    group = zarr.open_group(str(store_path), mode="r")
    sizes = {"variants": 3, "samples": 4, "ploidy": 2, "alleles": 2}
    for var in VARIABLES.values():
        arr = group[var.name]
        assert arr.shape == tuple(sizes[d] for d in var.dims), var.name
        assert tuple(arr.metadata.dimension_names) == var.dims
    gt = group["call_genotype"]
    assert gt.dtype == np.int8
    assert gt.chunks == (2, 4, 2)  # chunked along variants only, all samples per chunk
    assert gt.compressors, "genotypes must be compressed"


def test_reader__metadata_arrays(store_path):
    with open_genotypes(store_path) as store:
        assert isinstance(store, GenotypeStore)
        assert store.n_samples == 4 and store.n_variants == 3 and store.chunk_size == 2
        assert store.sample_ids.tolist() == ["sA", "sB", "sC", "sD"]
        assert store.contig.tolist() == ["1", "1", "X"]
        assert store.position.dtype == np.int64 and store.position.tolist() == [100, 200, 300]
        assert store.variant_id.tolist() == ["rs1", ".", "rs3"]
        assert store.ref.tolist() == ["A", "C", "G"] and store.alt.tolist() == ["G", "T", "A"]
        for arr in (store.sample_ids, store.contig, store.variant_id, store.ref, store.alt):
            assert arr.dtype.kind == "U"  # plain numpy str arrays
        assert store.attrs["format"] == FORMAT_NAME


def test_reader__genotypes_dosage_and_phase(store_path):
    with open_genotypes(store_path) as store:
        gt = np.concatenate([g for _, g in store.iter_genotypes()])
        np.testing.assert_array_equal(gt, EXPECTED_GT)
        slices, doses = zip(*store.iter_dosage(), strict=True)
        assert slices == (slice(0, 2), slice(2, 3))
        dose = np.concatenate(doses)
        assert dose.dtype == np.float64
        np.testing.assert_array_equal(dose, EXPECTED_DOSAGE)
        ph = np.concatenate([p for _, p in store.iter_phased()])
        np.testing.assert_array_equal(ph, EXPECTED_PHASED)


@pytest.mark.parametrize("samples", [np.array([3, 0]), np.array([True, False, False, True])],
                         ids=["index", "mask"])
def test_reader__sample_selection(store_path, samples):
    with open_genotypes(store_path) as store:
        dose = np.concatenate([d for _, d in store.iter_dosage(chunk_size=1, samples=samples)])
    idx = np.flatnonzero(samples) if samples.dtype == bool else samples
    np.testing.assert_array_equal(dose, EXPECTED_DOSAGE[:, idx])


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 100])
def test_reader__chunk_size_does_not_change_values(store_path, chunk_size):
    with open_genotypes(store_path) as store:
        parts = list(store.iter_dosage(chunk_size=chunk_size))
    assert all(d.shape[0] <= chunk_size for _, d in parts)
    assert parts[-1][0].stop == 3
    np.testing.assert_array_equal(np.concatenate([d for _, d in parts]), EXPECTED_DOSAGE)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"samples": np.array([True, False])}, "boolean sample mask has the wrong length"),
    ({"samples": np.array([0, 9])}, "sample index out of range"),
    ({"samples": np.array([0.5])}, "integer index or a boolean mask"),
    ({"chunk_size": 0}, "chunk_size must be a positive integer"),
])
def test_reader__invalid_selection_raises(store_path, kwargs, match):
    with open_genotypes(store_path) as store, pytest.raises(ConfigError, match=match):
        next(store.iter_dosage(**kwargs))


def test_reader__closed_store_raises(store_path):
    store = open_genotypes(store_path)
    store.close()
    with pytest.raises(ConfigError, match="genotype store is closed"):
        next(store.iter_genotypes())


def test_open_genotypes__missing_path_raises(tmp_path):
    with pytest.raises(InputFileNotFoundError, match="genotype input not found"):
        open_genotypes(tmp_path / "nope.zarr")


def test_open_genotypes__folder_without_zarr_json_raises(tmp_path):
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(FormatError, match="not a secured_bio genotype store.*without zarr.json"):
        open_genotypes(tmp_path / "empty.zarr")


def test_open_genotypes__zarr_v2_store_raises(tmp_path):
    old = tmp_path / "old.zarr"
    old.mkdir()
    (old / ".zgroup").write_text('{"zarr_format": 2}')
    with pytest.raises(FormatError, match="zarr v2 store"):
        open_genotypes(old)


@pytest.mark.parametrize(("fmt", "got"), [(None, "no 'format' attribute"),
                                          ("sgkit.vcf", "'sgkit.vcf'")])
def test_open_genotypes__other_format_raises(store_path, fmt, got):
    _set_attrs(store_path, format=fmt)
    with pytest.raises(FormatError, match=f"not a secured_bio genotype store.*got {got}"):
        open_genotypes(store_path)


def test_open_genotypes__newer_version_refused_with_upgrade_hint(store_path):
    _set_attrs(store_path, format_version=FORMAT_VERSION + 1)
    with pytest.raises(FormatError, match="newer secured_bio.*upgrade secured_bio"):
        open_genotypes(store_path)


def test_open_genotypes__inconsistent_shape_raises(store_path):
    _set_attrs(store_path, n_variants=7)
    with pytest.raises(FormatError, match="wrong shape.*call_genotype"):
        open_genotypes(store_path)


def test_open_genotypes__file_that_is_not_a_vcf_raises(tmp_path):
    (tmp_path / "table.tsv").write_text("a\tb\n")
    with pytest.raises(FormatError, match="not a VCF/BCF"):
        open_genotypes(tmp_path / "table.tsv")


def test_open_genotypes__ingest_options_for_a_store_raise(store_path):
    with pytest.raises(ConfigError, match="ingest options apply to VCF input only"):
        open_genotypes(store_path, chunk_size=5)


def test_open_genotypes__vcf_is_ingested_to_a_temporary_store(tmp_path):
    vcf = tmp_path / "calls.vcf"
    vcf.write_text(HEADER + "\n".join(RECORDS) + "\n")
    store = open_genotypes(vcf, chunk_size=1)
    tmp_store = store.path
    assert tmp_store.is_dir() and not tmp_store.is_relative_to(tmp_path)
    assert store.chunk_size == 1
    np.testing.assert_array_equal(np.concatenate([d for _, d in store.iter_dosage()]),
                                  EXPECTED_DOSAGE)
    store.close()
    assert not tmp_store.exists()
    # without close(), garbage collection removes it
    store = open_genotypes(vcf)
    tmp_store = store.path
    del store
    gc.collect()
    assert not tmp_store.exists()


def test_repr_shows_shape_not_values(store_path):
    with open_genotypes(store_path) as store:
        text = repr(store)
    assert "n_samples=4" in text and "n_variants=3" in text and "sA" not in text
