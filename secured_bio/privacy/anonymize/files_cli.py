"""``secured-bio anonymize nifti`` and ``secured-bio anonymize vcf``: de-identify files.

Two standalone click commands, attached to the ``anonymize`` group by
:mod:`secured_bio.privacy.anonymize.cli`.  Errors raised here are turned into one-line
messages and exit codes by ``secured_bio.cli.main``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from secured_bio._atomic import atomic_write

__all__ = ["nifti", "vcf"]


def _write_report(report: dict[str, object], path: Path | None) -> None:
    if path is not None:
        with atomic_write(path) as fh:
            json.dump(report, fh, indent=2)
            fh.write("\n")


@click.command()
@click.argument("in_path", metavar="IN", type=click.Path(path_type=Path))
@click.argument("out_path", metavar="OUT", type=click.Path(path_type=Path))
@click.option("--deface", is_flag=True,
              help="Also remove the face (3D structural head images) and check the result.")
@click.option("--no-sidecar", is_flag=True,
              help="Leave the JSON sidecar (IN.json) alone instead of de-identifying it.")
@click.option("--report", "report_path", type=click.Path(path_type=Path), default=None,
              help="Write what was removed (field names and counts, no values) as JSON.")
def nifti(in_path: Path, out_path: Path, deface: bool, no_sidecar: bool,
          report_path: Path | None) -> None:
    """De-identify a NIfTI image: header text fields, extensions, BIDS sidecar, face.

    \b
    secured-bio anonymize nifti sub-01_T1w.nii.gz out/sub-01_T1w.nii.gz --deface
    Clears descrip, db_name, aux_file, intent_name and all header extensions; removes
    identifying keys (dates, names, institution, device serial...) from IN.json into
    OUT.json; keeps geometry and voxels unchanged unless --deface.  Nothing is written
    when the defacing quality check fails.
    """
    from secured_bio.privacy.anonymize.nifti import anonymize_nifti

    report = anonymize_nifti(in_path, out_path, deface=deface, sidecar=not no_sidecar)
    _write_report(report.to_dict(), report_path)
    click.echo(report.summary())


@click.command()
@click.argument("in_path", metavar="IN", type=click.Path(path_type=Path))
@click.argument("out_path", metavar="OUT", type=click.Path(path_type=Path))
@click.option("--key-file", required=True, type=click.Path(path_type=Path),
              help="Site key (>= 32 random bytes; head -c 32 /dev/urandom > site.key). "
                   "Keep it at the site: it links pseudonyms to IDs.")
@click.option("--min-ac", type=click.IntRange(min=1), default=None,
              help="Drop records whose rarest ALT allele is carried fewer than N times "
                   "(3 drops singletons and doubletons).")
@click.option("--drop-header", "drop_header", multiple=True, metavar="KEY",
              help="Also remove the ##KEY=... header lines (repeatable), e.g. a pipeline's "
                   "own line that names a sample.")
@click.option("--report", "report_path", type=click.Path(path_type=Path), default=None,
              help="Write the counts as JSON.")
def vcf(in_path: Path, out_path: Path, key_file: Path, min_ac: int | None,
        drop_header: tuple[str, ...], report_path: Path | None) -> None:
    """De-identify a VCF: keyed sample pseudonyms, identifying header lines, rare variants.

    \b
    secured-bio anonymize vcf site1.vcf.gz release/site1.vcf.gz --key-file site.key --min-ac 3
    Writes OUT (.vcf.gz, bgzipped) and OUT.tbi; genotypes are unchanged.  Removes sample
    and pedigree lines, command lines (GATK, DRAGEN, bcftools...), free-text ##source and
    header lines holding local paths.  If any other header line names an original sample
    ID, nothing is written and the message names that line's key (drop it with
    --drop-header KEY).
    """
    from secured_bio.privacy.anonymize.vcf import deidentify_vcf, read_key_file

    report = deidentify_vcf(in_path, out_path, key=read_key_file(key_file), min_ac=min_ac,
                            drop_header=drop_header)
    _write_report(report.to_dict(), report_path)
    click.echo(report.summary())
