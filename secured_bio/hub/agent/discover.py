"""Find a site's datasets and describe them for the hub's catalogue, computed at the site.

A site's data folder holds a manifest, ``datasets.yaml``::

    format: secured_bio.site_datasets      # optional; checked when present
    format_version: 1                      # optional; checked when present
    datasets:
      - name: gwas_cohort                  # unique at the site: letters, digits, - _ .
        kind: genotypes                    # genotypes | imaging | vitals | clinical
        description: Cardiology biobank, GSA array, imputed
        duo: [DUO:0000042, DUO:0000018]    # GA4GH Data Use Ontology codes (see DUO_CODES)
        contact: data-office@site1.example
        files:                             # role: path or glob, or a list of them,
          genotypes: genomics/site1.vcf.gz #   relative to the folder
          pheno: genomics/pheno.tsv
          covar: genomics/covar.tsv

File roles per kind (required ones marked *):

============  ======================================================================
genotypes     ``genotypes``\\* (one VCF/BCF), ``pheno``, ``covar`` (plink2 tables)
vitals        ``vitals``\\* (CSV long table or FHIR), ``patients``, ``events`` (CSV)
clinical      ``table``\\* (one CSV with a header row)
imaging       ``series``\\* (NIfTI 4D series, globs welcome), ``participants`` (TSV),
              ``atlas`` (one label NIfTI)
============  ======================================================================

The catalogue metadata of each dataset is computed here, from the files, with the same
readers and data specs the analyses use (:func:`secured_bio.specs.validate`,
:func:`secured_bio.telemetry.ingest.read_vitals`, :func:`secured_bio.imaging.io.load_series`).
It holds only aggregate facts - counts, column names and types, contigs, shapes, a date range
at day precision - never participant IDs, sample names, values or rows.  Category labels of
a clinical column are listed only for a coded column with at most
:data:`MAX_LISTED_CATEGORIES` categories of at least :data:`MIN_CATEGORY_COUNT` rows each.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secured_bio.errors import (
    ConfigError,
    FormatError,
    InputFileNotFoundError,
    SchemaError,
    did_you_mean,
)
from secured_bio.hub.services.duo import PERMISSIONS, TERMS

__all__ = [
    "DATASET_KINDS",
    "DUO_CODES",
    "FILE_ROLES",
    "LocalDataset",
    "MANIFEST_FORMAT",
    "MANIFEST_FORMAT_VERSION",
    "MANIFEST_NAME",
    "MAX_LISTED_CATEGORIES",
    "MIN_CATEGORY_COUNT",
    "discover_datasets",
    "file_sha256",
]

#: The manifest's file name in a site's data folder.
MANIFEST_NAME = "datasets.yaml"
MANIFEST_FORMAT = "secured_bio.site_datasets"
MANIFEST_FORMAT_VERSION = 1

#: Dataset kinds known to the hub.
DATASET_KINDS = ("genotypes", "imaging", "vitals", "clinical")

#: File roles per kind: role -> (required, at most one file).
FILE_ROLES: dict[str, dict[str, tuple[bool, bool]]] = {
    "genotypes": {"genotypes": (True, True), "pheno": (False, True), "covar": (False, True)},
    "vitals": {"vitals": (True, True), "patients": (False, True), "events": (False, True)},
    "clinical": {"table": (True, True)},
    "imaging": {"series": (True, False), "participants": (False, True),
                "atlas": (False, True)},
}

#: GA4GH Data Use Ontology (DUO) codes a manifest may use: code -> (abbreviation, label)
#: (the hub's DUO matcher's list). Every dataset needs at least one data use *permission*.
DUO_CODES: dict[str, tuple[str, str]] = TERMS
_DUO_PERMISSIONS = PERMISSIONS

#: A clinical column's category labels are listed only when it has at most this many...
MAX_LISTED_CATEGORIES = 12
#: ...categories, each held by at least this many rows (otherwise only their number).
MIN_CATEGORY_COUNT = 10
_MAX_LABEL_LENGTH = 40

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DUO_RE = re.compile(r"^DUO:\d{7}$")
_DATASET_KEYS = ("name", "kind", "files", "description", "duo", "contact")
_ISO_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass(frozen=True)
class LocalDataset:
    """A dataset at this site: where its files are, and what the catalogue may know of it.

    Attributes
    ----------
    name
        Name, unique at the site.
    kind
        ``genotypes``, ``imaging``, ``vitals`` or ``clinical``.
    files
        Role -> absolute paths (see :data:`FILE_ROLES`); these never leave the site.
    description
        Free text for the catalogue.
    duo
        GA4GH DUO codes of the allowed data uses.
    contact
        Who answers questions on the data (an e-mail address or a team).
    metadata
        Aggregate facts computed from the files (counts, names, shapes; no values or IDs).
    fingerprint
        ``sha256:`` + SHA-256 over the files' SHA-256 digests (roles in :data:`FILE_ROLES`
        order, paths sorted): the input hash that a privacy passport cites.

    Examples
    --------
    >>> d = LocalDataset("t", "clinical", {"table": (Path("/x/t.csv"),)}, "demo",
    ...                  ("DUO:0000042",), "dpo@example.org", {"n_rows": 3}, "sha256:00")
    >>> sorted(d.to_registration())
    ['contact', 'description', 'duo', 'fingerprint', 'kind', 'metadata', 'name']
    >>> d.file("table").name
    't.csv'
    """

    name: str
    kind: str
    files: Mapping[str, tuple[Path, ...]]
    description: str
    duo: tuple[str, ...]
    contact: str
    metadata: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""

    def file(self, role: str) -> Path:
        """Return the one file of ``role``.

        Raises
        ------
        ConfigError
            If the dataset has no file (or several files) in that role.
        """
        paths = self.files.get(role, ())
        if len(paths) != 1:
            raise ConfigError(
                f"dataset {self.name!r} needs exactly one {role!r} file for this job",
                where=f"{MANIFEST_NAME}: {self.name}.files.{role}", got=f"{len(paths)} files",
                fix=f"list one {role} file in the manifest")
        return paths[0]

    def has(self, role: str) -> bool:
        """Whether the dataset has a file in ``role``."""
        return bool(self.files.get(role))

    def to_registration(self) -> dict[str, Any]:
        """Return this dataset as the hub's registration JSON (no paths).

        Returns
        -------
        dict
            ``name``, ``kind``, ``description``, ``metadata``, ``duo``, ``contact`` and
            ``fingerprint``.
        """
        return {
            "name": self.name, "kind": self.kind, "description": self.description,
            "metadata": self.metadata, "duo": list(self.duo), "contact": self.contact,
            "fingerprint": self.fingerprint,
        }


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Return the hex SHA-256 of a file's bytes (read in 1 MiB blocks).

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = p.write_bytes(b"abc")
    >>> file_sha256(p)[:16]
    'ba7816bf8f01cfea'
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def discover_datasets(data_dir: str | os.PathLike[str]) -> list[LocalDataset]:
    """Read a site folder's ``datasets.yaml`` and describe every dataset it lists.

    Parameters
    ----------
    data_dir
        The site's data folder (holds ``datasets.yaml``; file paths are relative to it).

    Returns
    -------
    list of LocalDataset
        In manifest order, each with its catalogue metadata and fingerprint.

    Raises
    ------
    InputFileNotFoundError
        If the folder, the manifest or a listed file does not exist.
    FormatError
        If the manifest is not YAML or has an unknown format/version.
    ConfigError
        If the manifest is malformed: a missing or unknown key, an unknown kind, file role
        or DUO code, a duplicated name, a path outside the folder.
    SchemaError, FormatError
        If a data file violates its data spec (from the readers).

    Examples
    --------
    >>> import tempfile
    >>> from secured_bio.testing import simulate_clinical
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = simulate_clinical(d / "adm.csv", n_rows=30, seed=1)
    >>> _ = (d / "datasets.yaml").write_text(
    ...     "datasets:\\n- {name: adm, kind: clinical, files: {table: adm.csv},"
    ...     " description: demo, duo: [DUO:0000042], contact: dpo@example.org}\\n")
    >>> (ds,) = discover_datasets(d)
    >>> ds.metadata["n_rows"], ds.fingerprint.startswith("sha256:")
    (30, True)
    """
    root = Path(data_dir).resolve()
    if not root.is_dir():
        raise InputFileNotFoundError("site data folder not found", where=str(root),
                                     fix="pass the folder that holds datasets.yaml with --data")
    entries = _read_manifest(root / MANIFEST_NAME)
    out: list[LocalDataset] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        ds = _parse_entry(root, entry, i)
        if ds.name in seen:
            raise ConfigError("duplicated dataset name", where=f"{MANIFEST_NAME}: datasets[{i}]",
                              got=repr(ds.name), fix="give every dataset its own name")
        seen.add(ds.name)
        try:
            metadata = _DESCRIBERS[ds.kind](ds)
        except (SchemaError, FormatError, InputFileNotFoundError) as e:
            e.add_note(f"while describing dataset {ds.name!r} ({ds.kind}) of {root}")
            raise
        out.append(LocalDataset(ds.name, ds.kind, ds.files, ds.description, ds.duo,
                                ds.contact, metadata, _fingerprint(ds.files)))
    return out


# -- the manifest ------------------------------------------------------------------------------


def _read_manifest(path: Path) -> list[Any]:
    import yaml

    if not path.is_file():
        raise InputFileNotFoundError(
            "dataset manifest not found", where=str(path),
            fix=f"write {MANIFEST_NAME} listing the site's datasets "
                "(see secured_bio.hub.agent.discover)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise FormatError("the dataset manifest is not valid YAML", where=where,
                          got=type(e).__name__, fix="fix the YAML syntax") from e
    if not isinstance(raw, dict) or "datasets" not in raw:
        raise ConfigError("the dataset manifest has no 'datasets' list", where=str(path),
                          expected="a mapping with a 'datasets' list",
                          got=type(raw).__name__)
    unknown = sorted(set(raw) - {"format", "format_version", "datasets"})
    if unknown:
        raise ConfigError("unknown key in the dataset manifest", where=f"{path}: {unknown[0]}",
                          expected="format, format_version, datasets",
                          fix=did_you_mean(unknown[0], ("format", "format_version", "datasets"))
                          or "remove it")
    if raw.get("format", MANIFEST_FORMAT) != MANIFEST_FORMAT:
        raise FormatError("not a site dataset manifest", where=f"{path}: format",
                          expected=repr(MANIFEST_FORMAT), got=repr(raw.get("format")))
    version = raw.get("format_version", MANIFEST_FORMAT_VERSION)
    if version != MANIFEST_FORMAT_VERSION:
        raise FormatError("unsupported dataset manifest version", where=f"{path}: format_version",
                          expected=str(MANIFEST_FORMAT_VERSION), got=repr(version),
                          fix="upgrade secured_bio on this site, or write a version-1 manifest")
    datasets = raw["datasets"]
    if not isinstance(datasets, list) or not datasets:
        raise ConfigError("the dataset manifest lists no datasets", where=f"{path}: datasets",
                          expected="a non-empty list", got=type(datasets).__name__)
    return datasets


def _str_field(entry: dict[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"dataset field {key!r} is missing or empty", where=f"{where}.{key}",
                          expected="a non-empty string",
                          got="nothing" if value is None else type(value).__name__)
    return value.strip()


def _parse_entry(root: Path, entry: Any, i: int) -> LocalDataset:
    where = f"{MANIFEST_NAME}: datasets[{i}]"
    if not isinstance(entry, dict):
        raise ConfigError("a dataset entry is not a mapping", where=where,
                          expected="name, kind, files, description, duo, contact",
                          got=type(entry).__name__)
    for key in entry:
        if key not in _DATASET_KEYS:
            raise ConfigError("unknown dataset field", where=f"{where}.{key}",
                              expected=", ".join(_DATASET_KEYS),
                              fix=did_you_mean(str(key), _DATASET_KEYS) or "remove it")
    name = _str_field(entry, "name", where)
    if not _NAME_RE.match(name):
        raise ConfigError("invalid dataset name", where=f"{where}.name",
                          expected="1-64 letters, digits, '-', '_' or '.'", got=repr(name))
    where = f"{MANIFEST_NAME}: {name}"
    kind = _str_field(entry, "kind", where)
    if kind not in DATASET_KINDS:
        raise ConfigError("unknown dataset kind", where=f"{where}.kind",
                          expected=" | ".join(DATASET_KINDS), got=repr(kind),
                          fix=did_you_mean(kind, DATASET_KINDS) or "choose a listed kind")
    description = _str_field(entry, "description", where)
    contact = _str_field(entry, "contact", where)
    duo = _parse_duo(entry.get("duo"), f"{where}.duo")
    files = _parse_files(root, kind, entry.get("files"), f"{where}.files")
    return LocalDataset(name, kind, files, description, duo, contact)


def _parse_duo(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError("a dataset needs its data use conditions", where=where,
                          expected="a list of GA4GH DUO codes, e.g. [DUO:0000042]",
                          got="nothing" if value is None else type(value).__name__)
    codes: list[str] = []
    for code in value:
        if not isinstance(code, str) or not _DUO_RE.match(code):
            raise ConfigError("invalid DUO code", where=where, expected="DUO:NNNNNNN",
                              got=repr(code) if isinstance(code, str) else type(code).__name__)
        if code not in DUO_CODES:
            raise ConfigError("unknown DUO code", where=where, got=repr(code),
                              expected="one of " + ", ".join(DUO_CODES),
                              fix=did_you_mean(code, DUO_CODES) or "see DUO_CODES")
        if code not in codes:
            codes.append(code)
    if not any(c in _DUO_PERMISSIONS for c in codes):
        raise ConfigError(
            "no DUO data use permission", where=where,
            expected="one of " + ", ".join(f"{c} ({DUO_CODES[c][0]})" for c in _DUO_PERMISSIONS),
            got=", ".join(codes), fix="add the permission; the others only restrict it")
    return tuple(codes)


def _parse_files(root: Path, kind: str, value: Any,
                 where: str) -> dict[str, tuple[Path, ...]]:
    roles = FILE_ROLES[kind]
    if not isinstance(value, dict) or not value:
        raise ConfigError("a dataset needs its files, by role", where=where,
                          expected="a mapping " + ", ".join(f"{r}: PATH" for r in roles),
                          got="nothing" if value is None else type(value).__name__)
    files: dict[str, tuple[Path, ...]] = {}
    for role in value:
        if role not in roles:
            raise ConfigError(f"unknown file role for kind {kind!r}", where=f"{where}.{role}",
                              expected=", ".join(roles),
                              fix=did_you_mean(str(role), roles) or "use a listed role")
    for role, (required, single) in roles.items():
        if role not in value:
            if required:
                raise ConfigError(f"missing the {role!r} file", where=f"{where}.{role}",
                                  fix=f"add '{role}: PATH' (relative to the data folder)")
            continue
        patterns = value[role] if isinstance(value[role], list) else [value[role]]
        paths: list[Path] = []
        for pattern in patterns:
            paths.extend(_resolve(root, pattern, f"{where}.{role}"))
        paths = sorted(set(paths))
        if single and len(paths) > 1:
            raise ConfigError(f"the {role!r} role takes one file", where=f"{where}.{role}",
                              got=f"{len(paths)} files", fix="list one file")
        files[role] = tuple(paths)
    return files


def _resolve(root: Path, pattern: Any, where: str) -> list[Path]:
    if not isinstance(pattern, str) or not pattern.strip():
        raise ConfigError("a file entry is not a path", where=where,
                          expected="a path or glob relative to the data folder",
                          got=type(pattern).__name__)
    if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
        raise ConfigError("a dataset file lies outside the data folder", where=where,
                          got=pattern, fix="use a path relative to the data folder, without ..")
    if glob.has_magic(pattern):
        found = [Path(p).resolve() for p in glob.glob(str(root / pattern), recursive=True)]
        found = [p for p in found if p.is_file()]
        if not found:
            raise InputFileNotFoundError("no file matches the pattern", where=where,
                                         got=pattern, fix="fix the pattern or add the files")
    else:
        p = (root / pattern).resolve()
        if not p.is_file():
            raise InputFileNotFoundError("dataset file not found", where=where, got=str(p),
                                         fix="fix the path (relative to the data folder)")
        found = [p]
    for p in found:
        if not p.is_relative_to(root):
            raise ConfigError("a dataset file lies outside the data folder", where=where,
                              got=str(p), fix="move it into the folder (links are followed)")
    return found


def _fingerprint(files: Mapping[str, Sequence[Path]]) -> str:
    h = hashlib.sha256()
    for role in sorted(files):
        for p in files[role]:
            h.update(file_sha256(p).encode("ascii"))
    return "sha256:" + h.hexdigest()


# -- catalogue metadata, per kind --------------------------------------------------------------


def _describe_genotypes(ds: LocalDataset) -> dict[str, Any]:
    from secured_bio import specs

    vcf = ds.file("genotypes")
    summary = specs.validate("vcf", vcf).summary
    header = _vcf_header_facts(vcf)
    meta: dict[str, Any] = {
        "format": summary.get("format"),
        "n_samples": int(summary["samples"]),
        "n_variants": int(summary["records"]),
        "contigs": header["contigs"],
        "assembly": header["assembly"],
        "multiallelic_records": summary.get("multiallelic_records"),
        "missing_call_fraction": summary.get("missing_call_fraction"),
        "has_phenotypes": ds.has("pheno"),
        "phenotypes": [],
        "covariates": [],
    }
    if ds.has("pheno"):
        p = specs.validate("phenotype", ds.file("pheno")).summary
        meta["phenotypes"] = [
            {"name": c, "type": p.get("traits", {}).get(c)}
            for c in p["columns"] if c not in ("FID", "IID")
        ]
    if ds.has("covar"):
        c = specs.validate("covariate", ds.file("covar")).summary
        meta["covariates"] = [n for n in c["columns"] if n not in ("FID", "IID")]
    return meta


def _vcf_header_facts(path: Path) -> dict[str, Any]:
    """Contigs that hold records (from the index when there is one) and the assembly."""
    import pysam

    prev = pysam.set_verbosity(0)
    try:
        with pysam.VariantFile(str(path)) as vf:
            declared = list(vf.header.contigs)
            contigs = declared
            try:
                indexed = set(vf.index.keys()) if vf.index is not None else None
            except (AttributeError, ValueError):
                indexed = None
            if indexed is not None:
                contigs = [c for c in declared if c in indexed]
            assembly = None
            for rec in vf.header.records:
                if rec.key == "reference" and rec.value:
                    assembly = _assembly_name(rec.value)
                elif rec.type == "CONTIG" and rec.get("assembly"):
                    assembly = assembly or _assembly_name(str(rec.get("assembly")))
    finally:
        pysam.set_verbosity(prev)
    return {"contigs": contigs, "assembly": assembly}


def _assembly_name(value: str) -> str:
    low = value.lower()
    for pat, name in (("38", "GRCh38"), ("hg19", "GRCh37"), ("37", "GRCh37"), ("t2t", "T2T")):
        if pat in low:
            return name
    return Path(value).name[:64]


def _describe_vitals(ds: LocalDataset) -> dict[str, Any]:
    from secured_bio.telemetry.ingest import read_vitals

    records, _report = read_vitals(ds.file("vitals"))
    patients = {r.patient_id for r in records}
    days = sorted({r.instant.date() for r in records})
    meta: dict[str, Any] = {
        "n_patients": len(patients),
        "n_observations": len(records),
        "variables": sorted({r.vital for r in records}),
        "units": {v: u for v, u in sorted({(r.vital, r.unit) for r in records})},
        "first_date": days[0].isoformat() if days else None,
        "last_date": days[-1].isoformat() if days else None,
        "has_patients_table": ds.has("patients"),
        "has_events_table": ds.has("events"),
    }
    del patients, records
    return meta


def _describe_clinical(ds: LocalDataset) -> dict[str, Any]:
    from secured_bio import specs
    from secured_bio._csv import read_csv_strings

    path = ds.file("table")
    specs.validate("clinical", path)
    df = read_csv_strings(path, label="clinical table", option="files.table")
    columns = [_describe_column(str(name), df[name].tolist()) for name in df.columns]
    return {"n_rows": len(df), "n_columns": len(columns), "columns": columns}


def _describe_column(name: str, values: list[str]) -> dict[str, Any]:
    present = [v.strip() for v in values if v.strip() != ""]
    info: dict[str, Any] = {"name": name, "n_missing": len(values) - len(present)}
    distinct = set(present)
    low = name.lower()
    if low == "id" or low.endswith("_id"):
        info["type"] = "identifier"
        return info
    if present and all(_is_number(v) for v in present):
        info["type"] = "numeric"
        return info
    if present and all(_ISO_DATE_RE.match(v) for v in present):
        info["type"] = "date"
        return info
    if len(present) > 1 and len(distinct) == len(present):
        info["type"] = "identifier"  # a distinct text in every row: treat as an ID
        return info
    info["type"] = "categorical"
    info["n_categories"] = len(distinct)
    counts: dict[str, int] = {}
    for v in present:
        counts[v] = counts.get(v, 0) + 1
    if (len(counts) <= MAX_LISTED_CATEGORIES
            and all(n >= MIN_CATEGORY_COUNT for n in counts.values())
            and all(len(v) <= _MAX_LABEL_LENGTH for v in counts)):
        info["categories"] = sorted(counts)
    return info


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _describe_imaging(ds: LocalDataset) -> dict[str, Any]:
    from secured_bio.imaging.io import load_series

    series = ds.files["series"]
    bad = [p for p in series if not p.name.endswith(_NIFTI_SUFFIXES)]
    if bad:
        raise ConfigError("an imaging series is not a NIfTI file", where=str(bad[0]),
                          expected="a .nii or .nii.gz file",
                          fix="list only NIfTI series under files.series")
    shapes: set[tuple[int, ...]] = set()
    zooms: set[tuple[float, ...]] = set()
    modalities: set[str] = set()
    trs: set[float] = set()
    subjects: set[str] = set()
    n_volumes = 0
    for p in series:
        s = load_series(p)
        shapes.add(tuple(int(x) for x in s.shape[:3]))
        zooms.add(tuple(round(float(z), 4) for z in s.img.header.get_zooms()[:3]))
        modalities.add(s.modality)
        trs.add(round(float(s.tr), 4))
        n_volumes += int(s.n_timepoints)
        subjects.add(_subject_key(p))
        del s
    meta: dict[str, Any] = {
        "n_subjects": len(subjects),
        "n_series": len(series),
        "n_volumes": n_volumes,
        "shape": list(next(iter(shapes))) if len(shapes) == 1 else sorted(map(list, shapes)),
        "voxel_size_mm": list(next(iter(zooms))) if len(zooms) == 1 else sorted(map(list, zooms)),
        "modality": sorted(modalities)[0] if len(modalities) == 1 else sorted(modalities),
        "tr_seconds": next(iter(trs)) if len(trs) == 1 else sorted(trs),
        "has_participants_table": ds.has("participants"),
        "has_atlas": ds.has("atlas"),
    }
    if ds.has("atlas"):  # the number of atlas regions sizes the federated model at the hub
        from secured_bio.imaging.io import load_atlas

        meta["n_rois"] = len(load_atlas(ds.file("atlas")).labels)
    del subjects
    return meta


def _subject_key(path: Path) -> str:
    # BIDS: the sub-<label> entity; otherwise every file is its own subject.
    for part in (path.name, *reversed(path.parent.parts)):
        if part.startswith("sub-"):
            return part.split("_")[0]
    return str(path)


_DESCRIBERS = {
    "genotypes": _describe_genotypes,
    "vitals": _describe_vitals,
    "clinical": _describe_clinical,
    "imaging": _describe_imaging,
}
