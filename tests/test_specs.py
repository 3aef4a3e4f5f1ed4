"""Tests of secured_bio.specs: every kind passes on a valid file and fails clearly on each defect.

Inputs are built in ``tmp_path`` by the small writers below (no committed fixtures).
"""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pysam
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secured_bio import specs
from secured_bio._bgzf import BGZF_EOF
from secured_bio.errors import (
    ConfigError,
    FormatError,
    InputFileNotFoundError,
    SchemaError,
    SecuredBioError,
)
from secured_bio.specs import ValidationReport, list_kinds, load_spec, validate

SECRET = "SECRET_ID_123"

# --------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------

_VCF_HEADER = [
    "##fileformat=VCFv4.2",
    "##contig=<ID=1,length=100000>",
    "##contig=<ID=2,length=100000>",
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
    '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">',
]
_VCF_FIXED = "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT"


def _vcf_text(records: list[str], *, samples: tuple[str, ...] = ("S1", "S2", "S3"),
              header: list[str] | None = None) -> str:
    lines = list(_VCF_HEADER if header is None else header)
    lines.append("\t".join([_VCF_FIXED, *samples]))
    return "\n".join(lines + records) + "\n"


def _rec(chrom: str, pos: int, alt: str = "G", fmt: str = "GT", gts: tuple[str, ...] = (
        "0/1", "1|1", "./.")) -> str:
    return "\t".join([chrom, str(pos), ".", "A", alt, ".", "PASS", ".", fmt, *gts])


_GOOD_RECORDS = [
    _rec("1", 100),
    _rec("1", 200, alt="G,T", gts=("0/2", "1/2", "0/0")),
    _rec("1", 200, gts=("0", "1", ".")),  # haploid calls; equal positions are sorted
    _rec("2", 50, gts=("0|0", "0|1", "1|1")),
]
_HEADER_LINES = len(_VCF_HEADER) + 1


def _write_vcf(tmp: Path, text: str, *, compress: bool = True, index: bool = True,
               name: str = "calls.vcf") -> Path:
    plain = tmp / name
    plain.write_text(text)
    if not compress:
        return plain
    gz = tmp / (name + ".gz")
    pysam.tabix_compress(str(plain), str(gz), force=True)
    if index:
        pysam.tabix_index(str(gz), preset="vcf", force=True, keep_original=True)
    return gz


def _write_nifti(path: Path, *, shape: tuple[int, ...] = (4, 5, 3, 12), tr: float = 2.0,
                 time_unit: str = "sec", affine: np.ndarray | None = None,
                 n_nan: int = 0, dtype: type = np.float32) -> Path:
    rng = np.random.default_rng(0)
    data = rng.normal(100, 5, size=shape).astype(dtype)
    if n_nan:
        data.reshape(-1)[:n_nan] = np.nan
    aff = np.diag([2.0, 2.0, 3.0, 1.0]) if affine is None else affine
    img = nib.Nifti1Image(data, aff)
    img.header.set_xyzt_units(xyz="mm", t=time_unit)
    if len(shape) == 4:
        zooms = img.header.get_zooms()
        img.header.set_zooms((*zooms[:3], tr))
    nib.save(img, path)
    return path


def _write_atlas(path: Path, *, shape: tuple[int, ...] = (4, 5, 3),
                 affine: np.ndarray | None = None, labels: int = 3,
                 dtype: type = np.int16) -> Path:
    data = (np.arange(int(np.prod(shape))).reshape(shape) % (labels + 1)).astype(dtype)
    aff = np.diag([2.0, 2.0, 3.0, 1.0]) if affine is None else affine
    nib.save(nib.Nifti1Image(data, aff), path)
    return path


_VITALS_HEADER = "patient_id,time,vital,value,unit"
_VITALS_ROWS = [
    "p1,2024-05-01T08:00:00+02:00,heart_rate,72,/min",
    "p1,2024-05-01T08:00:00+02:00,spo2,97,%",
    "p1,2024-05-01T08:05:00+02:00,temperature,36.8,Cel",
    "p2,2024-05-01T06:00:00Z,systolic_bp,121,mm[Hg]",
    "p2,2024-05-01T06:00:00Z,diastolic_bp,79,mm[Hg]",
    "p2,2024-05-01T06:01:00Z,respiratory_rate,16,/min",
]


def _write_csv(tmp: Path, header: str, rows: list[str], name: str = "table.csv") -> Path:
    path = tmp / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _obs(code: str, value: float | None = None, unit: str | None = None, *,
         system: str = "http://loinc.org", when: str = "2024-05-01T08:00:00+02:00",
         components: list[dict[str, Any]] | None = None, subject: str = "Patient/p1",
         category: str = "vital-signs") -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": category}]}],
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": subject},
        "effectiveDateTime": when,
    }
    if value is not None:
        res["valueQuantity"] = {"value": value, "unit": unit, "system": "http://unitsofmeasure.org",
                                "code": unit}
    if components is not None:
        res["component"] = components
    return {"fullUrl": "urn:uuid:0", "resource": res}


def _bp(sys_v: float = 120, dia_v: float = 80, dia_code: str = "8462-4") -> dict[str, Any]:
    def comp(code: str, v: float) -> dict[str, Any]:
        return {"code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "valueQuantity": {"value": v, "unit": "mm[Hg]",
                                  "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
    return _obs("85354-9", components=[comp("8480-6", sys_v), comp(dia_code, dia_v)])


def _good_entries() -> list[dict[str, Any]]:
    return [
        _obs("8867-4", 72, "/min"),
        _obs("9279-1", 16, "/min"),
        _obs("59408-5", 97, "%"),
        _obs("2708-6", 98, "%", subject="Patient/p2"),
        _obs("8310-5", 36.9, "Cel", when="2024-05-01T06:00:00Z"),
        _bp(),
    ]


def _write_bundle(tmp: Path, entries: list[dict[str, Any]], **top: Any) -> Path:
    doc = {"resourceType": "Bundle", "type": "collection", "entry": entries, **top}
    path = tmp / "bundle.json"
    path.write_text(json.dumps(doc, indent=1))
    return path


_CLINICAL_HEADER = "patient_id,age,sex,zip_code,admission_date,diagnosis"
_CLINICAL_ROWS = [
    "a1,34,F,75001,2024-01-03,flu",
    "a2,34,F,75001,2024-01-04,asthma",
    "a3,61,M,69002,2024-02-11,flu",
    "a4,61,M,69002,,diabetes",
    "a5,NA,M,69002,2024-03-01,flu",
]


def _secret_free(exc: pytest.ExceptionInfo[BaseException], *secrets: str) -> None:
    text = str(exc.value) + " ".join(getattr(exc.value, "__notes__", []))
    for s in secrets:
        assert s not in text


# --------------------------------------------------------------------------------------
# Registry, specs, options
# --------------------------------------------------------------------------------------


def test_list_kinds__has_every_kind_and_the_covariate_alias() -> None:
    assert list_kinds() == ["clinical", "covariate", "fhir", "nifti", "phenotype", "vcf",
                            "vitals"]


@pytest.mark.parametrize("kind", ["clinical", "fhir", "nifti", "phenotype", "vcf", "vitals"])
def test_load_spec__carries_kind_title_description_and_format(kind: str) -> None:
    spec = load_spec(kind)
    assert spec["kind"] == kind
    assert spec["title"] and spec["description"]
    assert spec["format"] == specs.SPEC_FORMAT
    assert spec["format_version"].split(".")[0] == specs.SPEC_FORMAT_VERSION.split(".")[0]
    assert "table" in spec or "rules" in spec


def test_load_spec__returns_a_copy() -> None:
    load_spec("vitals")["table"]["columns"].clear()
    assert load_spec("vitals")["table"]["columns"]


def test_validate__unknown_kind_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match=r"unknown data kind.*one of clinical, covariate.*"
                                          r"did you mean 'vitals'"):
        validate("vital", "x.csv")


def test_validate__unknown_option_suggests_the_closest(tmp_path: Path) -> None:
    path = _write_vcf(tmp_path, _vcf_text(_GOOD_RECORDS))
    with pytest.raises(ConfigError, match=r"unknown option for kind 'vcf'.*did you mean "
                                          r"'max_records'"):
        validate("vcf", path, max_record=3)


def test_validate__option_on_a_kind_without_options_raises(tmp_path: Path) -> None:
    path = _write_csv(tmp_path, _VITALS_HEADER, _VITALS_ROWS)
    with pytest.raises(ConfigError, match="expected no options"):
        validate("vitals", path, qi=["age"])


@pytest.mark.parametrize("kind", ["vcf", "phenotype", "nifti", "vitals", "fhir", "clinical"])
def test_validate__missing_file_names_path_and_kind(tmp_path: Path, kind: str) -> None:
    missing = tmp_path / "nope.dat"
    with pytest.raises(InputFileNotFoundError, match=rf"{kind} input file not found.*nope\.dat"):
        validate(kind, missing)


def test_validate__folder_instead_of_file_raises(tmp_path: Path) -> None:
    with pytest.raises(InputFileNotFoundError, match="is a folder"):
        validate("vitals", tmp_path)


def test_report__to_dict_is_json_and_versioned(tmp_path: Path) -> None:
    report = validate("vitals", _write_csv(tmp_path, _VITALS_HEADER, _VITALS_ROWS))
    d = json.loads(json.dumps(report.to_dict()))
    assert d["format"] == specs.REPORT_FORMAT
    assert d["format_version"] == specs.REPORT_FORMAT_VERSION
    assert d["kind"] == "vitals" and d["ok"] is True and d["summary"]["rows"] == 6
    with pytest.raises(AttributeError):
        report.ok = False  # type: ignore[misc]


def test_check_spec__refuses_a_newer_format_version() -> None:
    spec = load_spec("vitals") | {"format_version": "2.0"}
    with pytest.raises(ConfigError, match=r"unsupported format_version.*upgrade secured_bio"):
        specs._check_spec(spec, "data_specs/vitals.yaml")


def test_check_spec__refuses_another_format() -> None:
    with pytest.raises(ConfigError, match="not a secured_bio data spec"):
        specs._check_spec(load_spec("vcf") | {"format": "other"}, "x.yaml")


def test_check_spec__refuses_a_misspelled_column_key() -> None:
    spec = load_spec("vitals")
    spec["table"]["columns"][0]["nulable"] = True
    with pytest.raises(ConfigError, match=r"data spec is malformed.*table/columns/0"):
        specs._check_spec(spec, "data_specs/vitals.yaml")


def test_check_spec__refuses_counts_by_on_a_free_text_column() -> None:
    spec = load_spec("vitals")
    spec["table"]["counts_by"] = "patient_id"
    with pytest.raises(ConfigError, match="counts_by must name a vocabulary column"):
        specs._check_spec(spec, "data_specs/vitals.yaml")


def test_spec_root__falls_back_to_the_source_tree() -> None:
    root = specs._spec_root()
    assert any(e.name == "vcf.yaml" for e in root.iterdir())


# --------------------------------------------------------------------------------------
# VCF
# --------------------------------------------------------------------------------------


def test_vcf__valid_bgzipped_indexed_passes(tmp_path: Path) -> None:
    path = _write_vcf(tmp_path, _vcf_text(_GOOD_RECORDS))
    report = validate("vcf", path)
    s = report.summary
    assert report.ok and report.warnings == []
    assert s["compression"] == "bgzf" and s["index"] == "tbi"
    assert (s["samples"], s["records"], s["contigs"], s["multiallelic_records"]) == (3, 4, 2, 1)
    assert s["missing_call_fraction"] == pytest.approx(2 / 12)
    assert s["ploidy"] == {"1": 3, "2": 9}
    assert s["all_records_scanned"] is True


def test_vcf__missing_index_is_a_warning_with_tabix_fix(tmp_path: Path) -> None:
    path = _write_vcf(tmp_path, _vcf_text(_GOOD_RECORDS), index=False)
    report = validate("vcf", path)
    assert report.summary["index"] is None
    assert any(f"run tabix -p vcf {path}" in w for w in report.warnings)


def test_vcf__csi_index_is_accepted(tmp_path: Path) -> None:
    path = _write_vcf(tmp_path, _vcf_text(_GOOD_RECORDS), index=False)
    pysam.tabix_index(str(path), preset="vcf", csi=True, force=True)
    report = validate("vcf", path)
    assert report.summary["index"] == "csi" and report.warnings == []


def test_vcf__plain_text_passes_with_a_warning(tmp_path: Path) -> None:
    path = _write_vcf(tmp_path, _vcf_text(_GOOD_RECORDS), compress=False)
    report = validate("vcf", path)
    assert report.summary["compression"] == "plain" and report.summary["records"] == 4
    assert any("bgzip" in w for w in report.warnings)


def test_vcf__bcf_passes(tmp_path: Path) -> None:
    src = _write_vcf(tmp_path, _vcf_text(_GOOD_RECORDS), compress=False)
    bcf = tmp_path / "calls.bcf"
    with pysam.VariantFile(str(src)) as vin, pysam.VariantFile(str(bcf), "wb",
                                                                header=vin.header) as vout:
        for rec in vin:
            vout.write(rec)
    report = validate("vcf", bcf)
    assert report.summary["format"] == "BCF" and report.summary["records"] == 4


def test_vcf__max_records_limits_the_scan(tmp_path: Path) -> None:
    path = _write_vcf(tmp_path, _vcf_text(_GOOD_RECORDS))
    report = validate("vcf", path, max_records=2)
    assert report.summary["records"] == 2 and report.summary["all_records_scanned"] is False
    assert any("max_records=2" in w for w in report.warnings)


def test_vcf__bad_max_records_raises(tmp_path: Path) -> None:
    path = _write_vcf(tmp_path, _vcf_text(_GOOD_RECORDS))
    with pytest.raises(ConfigError, match="max_records must be a non-negative integer"):
        validate("vcf", path, max_records=-1)


def test_vcf__truncated_bgzf_names_the_record(tmp_path: Path) -> None:
    # ~3000 records span two BGZF blocks; cutting the tail breaks the second block.
    records = [_rec("1", 10 * i + 1) for i in range(3000)]
    path = _write_vcf(tmp_path, _vcf_text(records), index=False)
    data = path.read_bytes()
    path.write_bytes(data[:-200])
    with pytest.raises(FormatError, match=r"record could not be parsed.*record \d+ \(line \d+\)"
                                          r".*truncated file"):
        validate("vcf", path)


def test_vcf__truncated_at_a_block_boundary_raises(tmp_path: Path) -> None:
    path = _write_vcf(tmp_path, _vcf_text(_GOOD_RECORDS), index=False)
    path.write_bytes(path.read_bytes()[: -len(BGZF_EOF)])
    with pytest.raises(FormatError, match="BGZF file is truncated.*after record 4"):
        validate("vcf", path)


def test_vcf__malformed_gt_names_record_and_line(tmp_path: Path) -> None:
    records = [_GOOD_RECORDS[0], _rec("1", 150, gts=("0/x", "0/1", "0/0"))]
    path = _write_vcf(tmp_path, _vcf_text(records))
    with pytest.raises(FormatError, match=rf"record 2 \(line {_HEADER_LINES + 2}\).*malformed"):
        validate("vcf", path)


def test_vcf__duplicate_sample_ids_gives_a_count_not_the_ids(tmp_path: Path) -> None:
    path = _write_vcf(tmp_path, _vcf_text(_GOOD_RECORDS, samples=(SECRET, "S2", SECRET)),
                      compress=False)
    with pytest.raises(SchemaError, match=r"duplicated sample IDs.*1 duplicated sample ID "
                                          r"\(first duplicate is sample column 3\)") as exc:
        validate("vcf", path)
    _secret_free(exc, SECRET)


def test_vcf__unsorted_positions_raise(tmp_path: Path) -> None:
    records = [_rec("1", 300), _rec("1", 200)]
    path = _write_vcf(tmp_path, _vcf_text(records), index=False)
    with pytest.raises(SchemaError, match=r"not sorted by position.*record 2.*contig '1'"
                                          r".*bcftools sort"):
        validate("vcf", path)


def test_vcf__contig_in_two_blocks_raises(tmp_path: Path) -> None:
    records = [_rec("1", 100), _rec("2", 100), _rec("1", 200)]
    path = _write_vcf(tmp_path, _vcf_text(records), compress=False)
    with pytest.raises(SchemaError, match=r"contig appears in two blocks.*record 3"):
        validate("vcf", path)


def test_vcf__record_without_gt_in_format_raises(tmp_path: Path) -> None:
    records = [_GOOD_RECORDS[0], _rec("1", 300, fmt="DP", gts=("3", "4", "5"))]
    path = _write_vcf(tmp_path, _vcf_text(records))
    with pytest.raises(SchemaError, match=r"record has no GT in FORMAT.*record 2.*got FORMAT "
                                          r"fields DP"):
        validate("vcf", path)


def test_vcf__header_without_gt_declaration_raises(tmp_path: Path) -> None:
    header = [h for h in _VCF_HEADER if "ID=GT" not in h]
    records = [_rec("1", 300, fmt="DP", gts=("3", "4", "5"))]
    path = _write_vcf(tmp_path, _vcf_text(records, header=header), compress=False)
    with pytest.raises(SchemaError, match="FORMAT field GT is not declared"):
        validate("vcf", path)


def test_vcf__triploid_call_raises(tmp_path: Path) -> None:
    records = [_rec("1", 100, gts=("0/1/1", "0/1", "0/0"))]
    path = _write_vcf(tmp_path, _vcf_text(records), compress=False)
    with pytest.raises(SchemaError, match=r"unsupported ploidy.*ploidy 1 or 2.*ploidy 3"):
        validate("vcf", path)


def test_vcf__sites_only_raises(tmp_path: Path) -> None:
    text = "\n".join([*_VCF_HEADER, "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
                      "1\t100\t.\tA\tG\t.\tPASS\t."]) + "\n"
    path = _write_vcf(tmp_path, text, compress=False)
    with pytest.raises(SchemaError, match="FORMAT column missing|VCF has no samples"):
        validate("vcf", path)


def test_vcf__format_column_without_samples_raises(tmp_path: Path) -> None:
    path = _write_vcf(tmp_path, _vcf_text([], samples=()), compress=False)
    with pytest.raises(SchemaError, match=r"VCF has no samples.*got 0 samples"):
        validate("vcf", path)


def test_vcf__plain_gzip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "calls.vcf.gz"
    path.write_bytes(gzip.compress(_vcf_text(_GOOD_RECORDS).encode()))
    with pytest.raises(FormatError, match=r"gzip-compressed but not BGZF.*bgzip"):
        validate("vcf", path)


def test_vcf__missing_fileformat_line_raises(tmp_path: Path) -> None:
    path = _write_vcf(tmp_path, _vcf_text(_GOOD_RECORDS, header=_VCF_HEADER[1:]), compress=False)
    with pytest.raises(FormatError, match=r"missing ##fileformat header.*line 1"):
        validate("vcf", path)


def test_vcf__old_version_raises(tmp_path: Path) -> None:
    header = ["##fileformat=VCFv3.3", *_VCF_HEADER[1:]]
    path = _write_vcf(tmp_path, _vcf_text(_GOOD_RECORDS, header=header), compress=False)
    with pytest.raises(FormatError, match=r"unsupported VCF version.*'VCFv3.3'"):
        validate("vcf", path)


def test_vcf__missing_chrom_line_raises(tmp_path: Path) -> None:
    path = tmp_path / "x.vcf"
    path.write_text("\n".join([*_VCF_HEADER, _GOOD_RECORDS[0]]) + "\n")
    with pytest.raises(FormatError, match="missing #CHROM header line"):
        validate("vcf", path)


def test_vcf__space_separated_header_raises(tmp_path: Path) -> None:
    text = _vcf_text(_GOOD_RECORDS).replace(_VCF_FIXED, _VCF_FIXED.replace("\t", " "))
    path = _write_vcf(tmp_path, text, compress=False)
    with pytest.raises(FormatError, match=r"malformed #CHROM header line.*tab-separated"):
        validate("vcf", path)


# --------------------------------------------------------------------------------------
# Phenotype / covariate
# --------------------------------------------------------------------------------------

_PHENO = [
    "#FID\tIID\tbmi\tdisease\tsmoker",
    "f1\ti1\t22.5\t1\t0",
    "f1\ti2\tNA\t2\t1",
    "f2\ti3\t31.0\t-9\t1",
    "f3\ti4\t27.25\t2\tnan",
    "",  # blank lines are skipped, as plink2 does
    "f4  i5  24.0  1  0",
]


def _write_pheno(tmp: Path, lines: list[str], name: str = "pheno.tsv") -> Path:
    path = tmp / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_phenotype__valid_reports_trait_types_and_missing(tmp_path: Path) -> None:
    report = validate("phenotype", _write_pheno(tmp_path, _PHENO))
    s = report.summary
    assert s["rows"] == 5
    assert s["traits"] == {"bmi": "quantitative", "disease": "binary (1/2)",
                           "smoker": "binary (0/1)"}
    assert s["missing"] == {"bmi": 1, "disease": 1, "smoker": 1}
    assert any("'smoker' is coded 0/1" in w and "--1" in w for w in report.warnings)


@pytest.mark.parametrize("header", ["FID IID", "#FID IID", "IID", "#IID"])
def test_phenotype__each_plink2_id_header_is_accepted(tmp_path: Path, header: str) -> None:
    ids = "f1 i1" if "FID" in header else "i1"
    ids2 = "f1 i2" if "FID" in header else "i2"
    path = _write_pheno(tmp_path, [f"{header} y", f"{ids} 1.5", f"{ids2} 2.5"])
    assert validate("phenotype", path).summary["traits"] == {"y": "quantitative"}


def test_covariate__alias_uses_the_phenotype_spec(tmp_path: Path) -> None:
    report = validate("covariate", _write_pheno(tmp_path, ["#IID age PC1", "i1 40 0.1",
                                                           "i2 50 -0.2"]))
    assert report.kind == "covariate" and report.summary["rows"] == 2


def test_phenotype__bad_header_raises_without_echoing_it(tmp_path: Path) -> None:
    path = _write_pheno(tmp_path, [f"fam1 {SECRET} 1.5", "fam1 i2 2.5"])
    with pytest.raises(SchemaError, match=r"header does not start with the ID columns.*line 1"
                                          r".*'#FID IID'") as exc:
        validate("phenotype", path)
    _secret_free(exc, SECRET, "fam1")


def test_phenotype__non_numeric_column_names_line_and_column(tmp_path: Path) -> None:
    lines = ["FID IID bmi", "f1 i1 22.5", "f1 i2 SECRET_VALUE"]
    with pytest.raises(SchemaError, match=r"non-numeric value in column 'bmi'.*line 3, "
                                          r"column 'bmi'") as exc:
        validate("phenotype", _write_pheno(tmp_path, lines))
    _secret_free(exc, "SECRET_VALUE")


def test_phenotype__duplicate_iid_gives_count_and_first_line(tmp_path: Path) -> None:
    lines = ["#IID y", f"{SECRET} 1", "i2 2", f"{SECRET} 3", "i2 4"]
    with pytest.raises(SchemaError, match=r"duplicated values in unique column 'IID'.*"
                                          r"2 duplicated values \(first at line 4\)") as exc:
        validate("phenotype", _write_pheno(tmp_path, lines))
    _secret_free(exc, SECRET)


def test_phenotype__missing_iid_raises(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"missing value in column 'IID'.*line 3"):
        validate("phenotype", _write_pheno(tmp_path, ["#IID y", "i1 1", "NA 2"]))


def test_phenotype__ragged_row_raises(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"wrong number of fields.*line 3.*3 fields.*2 fields"):
        validate("phenotype", _write_pheno(tmp_path, ["FID IID y", "f1 i1 1", "f1 i2"]))


def test_phenotype__duplicated_column_raises(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"duplicated column names.*first at field 4"):
        validate("phenotype", _write_pheno(tmp_path, ["FID IID y y", "f1 i1 1 2"]))


def test_phenotype__all_missing_column_is_a_warning(tmp_path: Path) -> None:
    report = validate("phenotype", _write_pheno(tmp_path, ["#IID y", "i1 NA", "i2 -9"]))
    assert report.summary["traits"] == {"y": "empty"}
    assert any("only missing values" in w for w in report.warnings)


def test_phenotype__gzipped_table_is_read(tmp_path: Path) -> None:
    path = tmp_path / "pheno.tsv.gz"
    path.write_bytes(gzip.compress(("\n".join(_PHENO) + "\n").encode()))
    assert validate("phenotype", path).summary["rows"] == 5


def test_phenotype__binary_file_raises_format_error(tmp_path: Path) -> None:
    path = tmp_path / "pheno.tsv"
    path.write_bytes(b"#IID y\n\xff\xfe\x00\x01 2\n")
    with pytest.raises(FormatError, match="not UTF-8"):
        validate("phenotype", path)


def test_phenotype__empty_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "pheno.tsv"
    path.write_text("")
    with pytest.raises(SchemaError, match="table is empty"):
        validate("phenotype", path)


# --------------------------------------------------------------------------------------
# NIfTI
# --------------------------------------------------------------------------------------


def test_nifti__valid_series_reports_shape_tr_voxels_dtype(tmp_path: Path) -> None:
    report = validate("nifti", _write_nifti(tmp_path / "bold.nii"))
    s = report.summary
    assert s["shape"] == [4, 5, 3, 12] and s["timepoints"] == 12
    assert s["tr_seconds"] == pytest.approx(2.0)
    assert s["voxel_size"] == [2.0, 2.0, 3.0] and s["space_unit"] == "mm"
    assert s["dtype"] == "float32"
    assert report.warnings == []


def test_nifti__gzipped_msec_series_converts_tr(tmp_path: Path) -> None:
    path = _write_nifti(tmp_path / "fus.nii.gz", tr=400.0, time_unit="msec", dtype=np.int16)
    report = validate("nifti", path)
    assert report.summary["tr_seconds"] == pytest.approx(0.4)
    assert report.summary["dtype"] == "int16"


def test_nifti__valid_atlas_passes(tmp_path: Path) -> None:
    bold = _write_nifti(tmp_path / "bold.nii")
    atlas = _write_atlas(tmp_path / "atlas.nii")
    summary = validate("nifti", bold, atlas=atlas).summary
    assert summary["atlas"]["labels"] == 3 and summary["atlas"]["shape"] == [4, 5, 3]


def test_nifti__3d_image_raises(tmp_path: Path) -> None:
    path = _write_nifti(tmp_path / "t1.nii", shape=(4, 5, 3))
    with pytest.raises(SchemaError, match=r"image is 3D, not 4D.*shape \(4, 5, 3\)"):
        validate("nifti", path)


def test_nifti__too_few_timepoints_raises(tmp_path: Path) -> None:
    path = _write_nifti(tmp_path / "bold.nii", shape=(4, 5, 3, 5))
    with pytest.raises(SchemaError, match=r"too few timepoints.*at least 10 volumes.*5 volumes"):
        validate("nifti", path)
    assert validate("nifti", path, min_timepoints=5).summary["timepoints"] == 5


def test_nifti__nan_voxels_are_counted_not_shown(tmp_path: Path) -> None:
    path = _write_nifti(tmp_path / "bold.nii", n_nan=7)
    with pytest.raises(SchemaError, match=r"non-finite values.*7 NaN/inf voxel values in 7 of "
                                          r"12 volumes"):
        validate("nifti", path)


def test_nifti__zero_tr_raises(tmp_path: Path) -> None:
    path = _write_nifti(tmp_path / "bold.nii", tr=0.0)
    with pytest.raises(SchemaError, match=r"repetition time must be positive.*pixdim\[4\]"):
        validate("nifti", path)


def test_nifti__unknown_time_unit_raises(tmp_path: Path) -> None:
    path = _write_nifti(tmp_path / "bold.nii", time_unit="unknown")
    with pytest.raises(SchemaError, match=r"repetition time has no time unit.*set_xyzt_units"):
        validate("nifti", path)


def test_nifti__singular_affine_raises(tmp_path: Path) -> None:
    path = _write_nifti(tmp_path / "bold.nii")
    img = nib.load(path)
    img.set_sform(np.diag([2.0, 0.0, 3.0, 1.0]), code=1)  # a zero voxel size in y
    nib.save(img, tmp_path / "singular.nii")
    path = tmp_path / "singular.nii"
    with pytest.raises(SchemaError, match="affine is singular"):
        validate("nifti", path)


def test_nifti__atlas_shape_mismatch_raises(tmp_path: Path) -> None:
    bold = _write_nifti(tmp_path / "bold.nii")
    atlas = _write_atlas(tmp_path / "atlas.nii", shape=(4, 5, 4))
    with pytest.raises(SchemaError, match=r"atlas grid does not match.*\(4, 5, 3\).*"
                                          r"\(4, 5, 4\).*resample_to_img"):
        validate("nifti", bold, atlas=atlas)


def test_nifti__atlas_affine_mismatch_raises(tmp_path: Path) -> None:
    bold = _write_nifti(tmp_path / "bold.nii")
    shifted = np.diag([2.0, 2.0, 3.0, 1.0])
    shifted[0, 3] = 0.01
    atlas = _write_atlas(tmp_path / "atlas.nii", affine=shifted)
    with pytest.raises(SchemaError, match=r"atlas affine does not match.*within 0\.001"):
        validate("nifti", bold, atlas=atlas)


def test_nifti__atlas_within_tolerance_passes(tmp_path: Path) -> None:
    bold = _write_nifti(tmp_path / "bold.nii")
    near = np.diag([2.0, 2.0, 3.0, 1.0])
    near[0, 3] = 0.0005
    atlas = _write_atlas(tmp_path / "atlas.nii", affine=near)
    assert validate("nifti", bold, atlas=atlas).ok


def test_nifti__atlas_with_one_label_raises(tmp_path: Path) -> None:
    bold = _write_nifti(tmp_path / "bold.nii")
    atlas = _write_atlas(tmp_path / "mask.nii", labels=1)
    with pytest.raises(SchemaError, match=r"too few labels.*at least 2.*got 1"):
        validate("nifti", bold, atlas=atlas)


def test_nifti__probabilistic_atlas_raises(tmp_path: Path) -> None:
    bold = _write_nifti(tmp_path / "bold.nii")
    data = np.full((4, 5, 3), 0.5, dtype=np.float32)
    atlas = tmp_path / "prob.nii"
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0])), atlas)
    with pytest.raises(SchemaError, match="atlas labels are not integers"):
        validate("nifti", bold, atlas=atlas)


def test_nifti__float_label_atlas_passes_with_warning(tmp_path: Path) -> None:
    bold = _write_nifti(tmp_path / "bold.nii")
    atlas = _write_atlas(tmp_path / "atlas.nii", dtype=np.float32)
    report = validate("nifti", bold, atlas=atlas)
    assert any("stored as float32" in w for w in report.warnings)


def test_nifti__missing_atlas_raises(tmp_path: Path) -> None:
    bold = _write_nifti(tmp_path / "bold.nii")
    with pytest.raises(InputFileNotFoundError, match="atlas file not found"):
        validate("nifti", bold, atlas=tmp_path / "none.nii")


def test_nifti__not_a_nifti_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "bold.nii"
    path.write_text("this is not an image\n" * 50)
    with pytest.raises(FormatError, match=r"not a readable NIfTI image|is not NIfTI"):
        validate("nifti", path)


def test_nifti__truncated_gzip_raises(tmp_path: Path) -> None:
    path = _write_nifti(tmp_path / "bold.nii.gz")
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(FormatError, match="could not be read|not a readable NIfTI"):
        validate("nifti", path)


# --------------------------------------------------------------------------------------
# Vitals
# --------------------------------------------------------------------------------------


def test_vitals__valid_table_reports_counts_per_vital(tmp_path: Path) -> None:
    report = validate("vitals", _write_csv(tmp_path, _VITALS_HEADER, _VITALS_ROWS))
    assert report.summary["counts"] == {
        "heart_rate": 1, "respiratory_rate": 1, "spo2": 1, "temperature": 1,
        "systolic_bp": 1, "diastolic_bp": 1,
    }
    assert report.summary["unsorted_rows"] == 0 and report.warnings == []


def test_vitals__extra_columns_are_allowed(tmp_path: Path) -> None:
    rows = [r + ",device" for r in _VITALS_ROWS]
    assert validate("vitals", _write_csv(tmp_path, _VITALS_HEADER + ",source", rows)).ok


def test_vitals__time_going_back_within_a_patient_is_reported(tmp_path: Path) -> None:
    rows = [*_VITALS_ROWS, "p1,2024-05-01T07:00:00+02:00,heart_rate,70,/min"]
    report = validate("vitals", _write_csv(tmp_path, _VITALS_HEADER, rows))
    assert report.summary["unsorted_rows"] == 1
    assert any("decreases within patient_id at 1 row (first at line 8)" in w
               for w in report.warnings)


def test_vitals__same_instant_in_two_offsets_is_a_duplicate(tmp_path: Path) -> None:
    rows = ["p1,2024-05-01T08:00:00+02:00,heart_rate,72,/min",
            "p1,2024-05-01T06:00:00Z,heart_rate,73,/min"]
    with pytest.raises(SchemaError, match=r"duplicated rows for the key \(patient_id, time, "
                                          r"vital\).*1 duplicated row \(first at line 3\)"):
        validate("vitals", _write_csv(tmp_path, _VITALS_HEADER, rows))


def test_vitals__missing_column_suggests_the_misspelled_one(tmp_path: Path) -> None:
    path = _write_csv(tmp_path, "patientid,time,vital,value,unit", _VITALS_ROWS)
    with pytest.raises(SchemaError, match=r"required column 'patient_id' is missing.*"
                                          r"did you mean 'patientid'"):
        validate("vitals", path)


def test_vitals__unknown_vital_suggests_the_closest(tmp_path: Path) -> None:
    rows = [*_VITALS_ROWS, "p3,2024-05-01T08:00:00+02:00,heart_rat,72,/min"]
    with pytest.raises(SchemaError, match=r"unknown value in column 'vital'.*line 8.*"
                                          r"'heart_rat'.*did you mean 'heart_rate'"):
        validate("vitals", _write_csv(tmp_path, _VITALS_HEADER, rows))


def test_vitals__wrong_unit_names_the_canonical_one(tmp_path: Path) -> None:
    rows = [*_VITALS_ROWS, "p3,2024-05-01T08:00:00+02:00,heart_rate,72,bpm"]
    with pytest.raises(SchemaError, match=r"wrong unit for vital 'heart_rate'.*line 8.*"
                                          r"expected '/min', got 'bpm'"):
        validate("vitals", _write_csv(tmp_path, _VITALS_HEADER, rows))


def test_vitals__fahrenheit_temperature_is_a_wrong_unit(tmp_path: Path) -> None:
    rows = ["p3,2024-05-01T08:00:00+02:00,temperature,98.6,[degF]"]
    with pytest.raises(SchemaError, match=r"wrong unit for vital 'temperature'.*'Cel'"):
        validate("vitals", _write_csv(tmp_path, _VITALS_HEADER, rows))


def test_vitals__out_of_range_value_is_not_shown(tmp_path: Path) -> None:
    rows = [*_VITALS_ROWS, "p3,2024-05-01T08:00:00+02:00,spo2,987654,%"]
    with pytest.raises(SchemaError, match=r"value out of range in column 'value' for vital "
                                          r"'spo2'.*line 8.*\[40, 100\].*above the maximum") as exc:
        validate("vitals", _write_csv(tmp_path, _VITALS_HEADER, rows))
    _secret_free(exc, "987654")


def test_vitals__time_without_offset_raises(tmp_path: Path) -> None:
    rows = [*_VITALS_ROWS, "p3,2024-05-01T08:00:00,heart_rate,72,/min"]
    with pytest.raises(SchemaError, match=r"date-time without UTC offset.*line 8, column 'time'"):
        validate("vitals", _write_csv(tmp_path, _VITALS_HEADER, rows))


def test_vitals__invalid_time_raises(tmp_path: Path) -> None:
    rows = ["p3,2024-13-01T08:00:00+02:00,heart_rate,72,/min"]
    with pytest.raises(SchemaError, match=r"invalid date-time in column 'time'.*line 2"):
        validate("vitals", _write_csv(tmp_path, _VITALS_HEADER, rows))


def test_vitals__duplicates_are_counted_without_ids(tmp_path: Path) -> None:
    row = f"{SECRET},2024-05-01T08:00:00+02:00,heart_rate,72,/min"
    with pytest.raises(SchemaError, match=r"2 duplicated rows \(first at line 3\)") as exc:
        validate("vitals", _write_csv(tmp_path, _VITALS_HEADER, [row, row, row]))
    _secret_free(exc, SECRET)


def test_vitals__non_numeric_value_raises(tmp_path: Path) -> None:
    rows = ["p3,2024-05-01T08:00:00+02:00,heart_rate,seventy,/min"]
    with pytest.raises(SchemaError, match=r"non-numeric value in column 'value'.*line 2") as exc:
        validate("vitals", _write_csv(tmp_path, _VITALS_HEADER, rows))
    _secret_free(exc, "seventy")


def test_vitals__empty_patient_id_raises(tmp_path: Path) -> None:
    rows = [",2024-05-01T08:00:00+02:00,heart_rate,72,/min"]
    with pytest.raises(SchemaError, match=r"missing value in column 'patient_id'.*line 2"):
        validate("vitals", _write_csv(tmp_path, _VITALS_HEADER, rows))


def test_vitals__header_only_passes_with_a_warning(tmp_path: Path) -> None:
    report = validate("vitals", _write_csv(tmp_path, _VITALS_HEADER, []))
    assert report.summary["rows"] == 0 and any("no rows" in w for w in report.warnings)


def test_vitals__headerless_file_does_not_echo_its_first_row(tmp_path: Path) -> None:
    row = f"{SECRET},2024-05-01T08:00:00+02:00,heart_rate,72,/min"
    with pytest.raises(SchemaError, match="is missing") as exc:
        validate("vitals", _write_csv(tmp_path, row, [row.replace(SECRET, "p2")]))
    _secret_free(exc, SECRET, "2024-05-01T08")


def test_vitals__chunks_keep_line_numbers_and_cross_chunk_duplicates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(specs, "_CHUNK_ROWS", 2)
    rows = [*_VITALS_ROWS, _VITALS_ROWS[0]]
    with pytest.raises(SchemaError, match=r"1 duplicated row \(first at line 8\)"):
        validate("vitals", _write_csv(tmp_path, _VITALS_HEADER, rows))


_VITAL_RANGES = {  # name: (unit, min, max) as in data_specs/vitals.yaml
    "heart_rate": ("/min", 20, 300), "respiratory_rate": ("/min", 4, 120),
    "spo2": ("%", 40, 100), "temperature": ("Cel", 30, 45),
    "systolic_bp": ("mm[Hg]", 30, 250), "diastolic_bp": ("mm[Hg]", 10, 180),
}


def test_vitals__spec_units_and_ranges_are_the_documented_ones() -> None:
    rules = load_spec("vitals")["table"]["group_rules"]["rules"]
    got = {k: (v["unit"]["equals"], v["value"]["min"], v["value"]["max"]) for k, v in rules.items()}
    assert got == _VITAL_RANGES


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(_VITAL_RANGES)), st.floats(0, 1),
                          st.integers(0, 3)), min_size=1, max_size=30))
def test_vitals__any_in_range_table_passes_and_counts_add_up(
        rows: list[tuple[str, float, int]]) -> None:
    lines = []
    for i, (vital, frac, patient) in enumerate(rows):
        unit, lo, hi = _VITAL_RANGES[vital]
        value = lo + frac * (hi - lo)
        lines.append(f"p{patient},2024-05-01T08:{i // 60:02d}:{i % 60:02d}+01:00,{vital},"
                     f"{value!r},{unit}")
    with tempfile.TemporaryDirectory() as d:
        report = validate("vitals", _write_csv(Path(d), _VITALS_HEADER, lines))
    assert sum(report.summary["counts"].values()) == report.summary["rows"] == len(rows)
    assert report.summary["unsorted_rows"] == 0


# --------------------------------------------------------------------------------------
# FHIR
# --------------------------------------------------------------------------------------


def test_fhir__valid_bundle_reports_counts(tmp_path: Path) -> None:
    report = validate("fhir", _write_bundle(tmp_path, _good_entries()))
    s = report.summary
    assert s["entries"] == 6 and s["subjects"] == 2
    assert s["counts"] == {"heart_rate": 1, "respiratory_rate": 1, "spo2": 2, "temperature": 1,
                           "systolic_bp": 1, "diastolic_bp": 1}


def test_fhir__data_absent_reason_is_counted(tmp_path: Path) -> None:
    entry = _obs("8867-4")
    entry["resource"]["dataAbsentReason"] = {"text": "not measured"}
    report = validate("fhir", _write_bundle(tmp_path, [entry]))
    assert report.summary["absent_values"] == 1


def test_fhir__wrong_resource_type_raises(tmp_path: Path) -> None:
    path = tmp_path / "obs.json"
    path.write_text(json.dumps(_obs("8867-4", 72, "/min")["resource"]))
    with pytest.raises(SchemaError, match=r"wrong resourceType.*expected 'Bundle', got "
                                          r"'Observation'"):
        validate("fhir", path)


def test_fhir__entry_of_another_type_names_the_index(tmp_path: Path) -> None:
    entries = [*_good_entries(), {"resource": {"resourceType": "Patient"}}]
    with pytest.raises(SchemaError, match=r"entry is not an Observation.*entry\[6\]"):
        validate("fhir", _write_bundle(tmp_path, entries))


def test_fhir__unknown_loinc_suggests_the_closest(tmp_path: Path) -> None:
    entries = [_good_entries()[0], _obs("8867-5", 72, "/min")]
    with pytest.raises(SchemaError, match=r"unknown LOINC code.*entry\[1\]\.code.*'8867-5'.*"
                                          r"did you mean '8867-4'"):
        validate("fhir", _write_bundle(tmp_path, entries))


def test_fhir__missing_offset_names_the_entry(tmp_path: Path) -> None:
    entries = [_good_entries()[0], _obs("8867-4", 72, "/min", when="2024-05-01T08:00:00")]
    with pytest.raises(SchemaError, match=r"effectiveDateTime without UTC offset.*entry\[1\]"):
        validate("fhir", _write_bundle(tmp_path, entries))


def test_fhir__date_only_effective_raises(tmp_path: Path) -> None:
    entries = [_obs("8867-4", 72, "/min", when="2024-05-01")]
    with pytest.raises(SchemaError, match=r"not a FHIR dateTime with time.*entry\[0\]"):
        validate("fhir", _write_bundle(tmp_path, entries))


def test_fhir__wrong_ucum_unit_raises(tmp_path: Path) -> None:
    entries = [_obs("8310-5", 98.6, "[degF]")]
    with pytest.raises(SchemaError, match=r"wrong unit for temperature.*entry\[0\]\."
                                          r"valueQuantity\.code.*'Cel'.*'\[degF\]'"):
        validate("fhir", _write_bundle(tmp_path, entries))


def test_fhir__out_of_range_value_is_not_shown(tmp_path: Path) -> None:
    entries = [_obs("8867-4", 987654, "/min")]
    with pytest.raises(SchemaError, match=r"heart_rate value out of plausible range.*"
                                          r"\[20, 300\] /min") as exc:
        validate("fhir", _write_bundle(tmp_path, entries))
    _secret_free(exc, "987654")


def test_fhir__blood_pressure_panel_without_diastolic_raises(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"blood_pressure panel lacks a component.*8462-4"):
        validate("fhir", _write_bundle(tmp_path, [_bp(dia_code="1234-5")]))


def test_fhir__blood_pressure_component_out_of_range_names_it(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"diastolic_bp value out of plausible range.*"
                                          r"entry\[0\]\.component\[1\]"):
        validate("fhir", _write_bundle(tmp_path, [_bp(dia_v=500)]))


def test_fhir__wrong_category_raises(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="not in category vital-signs"):
        validate("fhir", _write_bundle(tmp_path, [_obs("8867-4", 72, "/min",
                                                       category="laboratory")]))


def test_fhir__missing_subject_raises_without_showing_it(tmp_path: Path) -> None:
    entries = [_obs("8867-4", 72, "/min", subject=f"Group/{SECRET}")]
    with pytest.raises(SchemaError, match=r"subject is missing or not a Patient") as exc:
        validate("fhir", _write_bundle(tmp_path, entries))
    _secret_free(exc, SECRET)


def test_fhir__non_loinc_code_raises(tmp_path: Path) -> None:
    entries = [_obs("8867-4", 72, "/min", system="http://snomed.info/sct")]
    with pytest.raises(SchemaError, match="no LOINC coding"):
        validate("fhir", _write_bundle(tmp_path, entries))


def test_fhir__missing_bundle_type_raises(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"Bundle\.type is missing or invalid"):
        validate("fhir", _write_bundle(tmp_path, _good_entries(), type="bag"))


def test_fhir__invalid_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    path.write_text('{\n  "resourceType": "Bundle",\n  "entry": [\n}\n')
    with pytest.raises(FormatError, match=r"not valid JSON.*line 4"):
        validate("fhir", path)


# --------------------------------------------------------------------------------------
# Clinical
# --------------------------------------------------------------------------------------


def test_clinical__valid_with_qi_and_sensitive_reports_k_and_l(tmp_path: Path) -> None:
    path = _write_csv(tmp_path, _CLINICAL_HEADER, _CLINICAL_ROWS)
    s = validate("clinical", path, qi=["age", "sex", "zip_code"], sensitive="diagnosis").summary
    assert s["rows"] == 5 and s["equivalence_classes"] == 3
    assert s["k_anonymity"] == 1 and s["l_diversity"] == 1
    assert s["missing"] == {"age": 1, "admission_date": 1}


def test_clinical__without_options_passes(tmp_path: Path) -> None:
    report = validate("clinical", _write_csv(tmp_path, _CLINICAL_HEADER, _CLINICAL_ROWS))
    assert "k_anonymity" not in report.summary


def test_clinical__misspelled_qi_column_suggests_the_closest(tmp_path: Path) -> None:
    path = _write_csv(tmp_path, _CLINICAL_HEADER, _CLINICAL_ROWS)
    with pytest.raises(SchemaError, match=r"quasi-identifier column 'zipcode' is missing.*"
                                          r"did you mean 'zip_code'"):
        validate("clinical", path, qi=["age", "zipcode"])


def test_clinical__misspelled_sensitive_column_raises(tmp_path: Path) -> None:
    path = _write_csv(tmp_path, _CLINICAL_HEADER, _CLINICAL_ROWS)
    with pytest.raises(SchemaError, match=r"sensitive attribute column 'diagnoses'.*"
                                          r"did you mean 'diagnosis'"):
        validate("clinical", path, qi=["age"], sensitive="diagnoses")


def test_clinical__sensitive_also_in_qi_raises(tmp_path: Path) -> None:
    path = _write_csv(tmp_path, _CLINICAL_HEADER, _CLINICAL_ROWS)
    with pytest.raises(ConfigError, match="also a quasi-identifier"):
        validate("clinical", path, qi=["age", "diagnosis"], sensitive="diagnosis")


def test_clinical__id_column_as_qi_raises(tmp_path: Path) -> None:
    path = _write_csv(tmp_path, _CLINICAL_HEADER, _CLINICAL_ROWS)
    with pytest.raises(ConfigError, match="ID column cannot be a quasi-identifier"):
        validate("clinical", path, qi=["patient_id"])


def test_clinical__duplicate_ids_are_counted_not_shown(tmp_path: Path) -> None:
    rows = [*_CLINICAL_ROWS, f"{SECRET},40,F,75001,2024-01-03,flu",
            f"{SECRET},41,F,75001,2024-01-03,flu"]
    path = _write_csv(tmp_path, _CLINICAL_HEADER, rows)
    with pytest.raises(SchemaError, match=r"unique column 'patient_id'.*1 duplicated value "
                                          r"\(first at line 8\)") as exc:
        validate("clinical", path)
    _secret_free(exc, SECRET)


def test_clinical__custom_id_column(tmp_path: Path) -> None:
    header = _CLINICAL_HEADER.replace("patient_id", "record")
    path = _write_csv(tmp_path, header, _CLINICAL_ROWS)
    with pytest.raises(SchemaError, match=r"required column 'patient_id' is missing"):
        validate("clinical", path)
    assert validate("clinical", path, id_column="record").summary["rows"] == 5


def test_clinical__age_out_of_range_raises(tmp_path: Path) -> None:
    rows = [*_CLINICAL_ROWS, "a6,130,F,75001,2024-01-03,flu"]
    with pytest.raises(SchemaError, match=r"value out of range in column 'age'.*line 7.*"
                                          r"\[0, 120\].*above the maximum 120"):
        validate("clinical", _write_csv(tmp_path, _CLINICAL_HEADER, rows))


def test_clinical__bad_date_raises(tmp_path: Path) -> None:
    rows = [*_CLINICAL_ROWS, "a6,30,F,75001,03/01/2024,flu"]
    with pytest.raises(SchemaError, match=r"invalid date in column 'admission_date'.*line 7.*"
                                          r"YYYY-MM-DD") as exc:
        validate("clinical", _write_csv(tmp_path, _CLINICAL_HEADER, rows))
    _secret_free(exc, "03/01/2024")


def test_clinical__impossible_date_raises(tmp_path: Path) -> None:
    rows = ["a6,30,F,75001,2024-02-30,flu"]
    with pytest.raises(SchemaError, match="invalid date in column 'admission_date'"):
        validate("clinical", _write_csv(tmp_path, _CLINICAL_HEADER, rows))


def test_clinical__quoted_csv_fields_keep_line_numbers(tmp_path: Path) -> None:
    rows = ['a1,34,F,75001,2024-01-03,"flu,\nsevere"', "a2,200,F,75001,2024-01-03,flu"]
    with pytest.raises(SchemaError, match=r"column 'age'.*line 4"):
        validate("clinical", _write_csv(tmp_path, _CLINICAL_HEADER, rows))


# --------------------------------------------------------------------------------------
# The generic table engine (features no shipped spec uses yet)
# --------------------------------------------------------------------------------------

_GENERIC_TABLE: dict[str, Any] = {
    "delimiter": "\t",
    "missing": ["", "NA"],
    "columns": [
        {"name": "id", "dtype": "string", "pattern": "S[0-9]{3}", "unique": True},
        {"name": "visits", "dtype": "integer", "min": 0, "nullable": True},
        {"name": "day", "dtype": "integer"},
    ],
    "extra_columns": "error",
    "sort": {"by": "day", "on_violation": "error"},
}


def _generic(tmp: Path, lines: list[str], **changes: Any) -> tuple[dict[str, Any], list[str]]:
    table = {**_GENERIC_TABLE, **changes}
    spec = {"kind": "generic", "title": "t", "description": "d", "format": specs.SPEC_FORMAT,
            "format_version": specs.SPEC_FORMAT_VERSION, "table": table}
    specs._check_spec(spec, "generic.yaml")  # the test table is itself a valid spec
    path = tmp / "t.tsv"
    path.write_text("\n".join(lines) + "\n")
    return specs._TableChecker(path, table).run()


def test_table_engine__valid_generic_table_passes(tmp_path: Path) -> None:
    summary, warns = _generic(tmp_path, ["id\tvisits\tday", "S001\t3\t1", "S002\tNA\t2"])
    assert summary["rows"] == 2 and summary["missing"] == {"visits": 1} and warns == []


@pytest.mark.parametrize(("row", "match"), [
    ("S003\t2.5\t3", r"non-integer value in column 'visits'.*line 4"),
    ("S003\t-1\t3", r"value out of range in column 'visits'.*below the minimum 0"),
    ("X3\t1\t3", r"does not match the pattern of column 'id'.*line 4"),
    ("S003\t1\t0", r"rows are not sorted.*line 4, column 'day'"),
    ("S003\t1\t", r"missing value in column 'day'"),
])
def test_table_engine__each_rule_raises(tmp_path: Path, row: str, match: str) -> None:
    with pytest.raises(SchemaError, match=match):
        _generic(tmp_path, ["id\tvisits\tday", "S001\t3\t1", "S002\tNA\t2", row])


def test_table_engine__extra_columns_error_or_warn(tmp_path: Path) -> None:
    lines = ["id\tvisits\tday\tnote", "S001\t3\t1\tx"]
    with pytest.raises(SchemaError, match=r"unexpected columns.*got 1 more"):
        _generic(tmp_path, lines)
    _, warns = _generic(tmp_path, lines, extra_columns="warn")
    assert warns == ["1 column not in the spec ignored"]


def test_table_engine__sort_violation_can_be_a_warning(tmp_path: Path) -> None:
    lines = ["id\tvisits\tday", "S001\t3\t2", "S002\t3\t1"]
    summary, warns = _generic(tmp_path, lines, sort={"by": "day", "on_violation": "warn"})
    assert summary["unsorted_rows"] == 1 and "'day' decreases at 1 row" in warns[0]


# --------------------------------------------------------------------------------------
# Cross-cutting
# --------------------------------------------------------------------------------------


def test_errors__carry_a_note_naming_the_spec(tmp_path: Path) -> None:
    path = _write_csv(tmp_path, "patientid,time,vital,value,unit", _VITALS_ROWS)
    with pytest.raises(SecuredBioError) as exc:
        validate("vitals", path)
    assert any("data_specs/vitals.yaml" in n for n in exc.value.__notes__)


def test_errors__subclass_builtins(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        validate("vitals", _write_csv(tmp_path, "a,b", ["1,2"]))
    with pytest.raises(FileNotFoundError):
        validate("vitals", tmp_path / "none.csv")


def test_validation_report__is_frozen() -> None:
    r = ValidationReport("vcf", "x.vcf.gz", True)
    assert r.summary == {} and r.warnings == []


def test_htslib_verbosity_is_restored(tmp_path: Path) -> None:
    before = pysam.set_verbosity(3)
    try:
        validate("vcf", _write_vcf(tmp_path, _vcf_text(_GOOD_RECORDS)))
        assert pysam.set_verbosity(3) == 3
    finally:
        pysam.set_verbosity(before)


def test_data_specs__one_yaml_per_kind() -> None:
    root = Path(__file__).resolve().parents[1] / "data_specs"  # tests run from a checkout
    names = sorted(p.stem for p in root.glob("*.yaml"))
    assert names == sorted(k for k in list_kinds() if k != "covariate")
