"""``secured-bio anonymize``: de-identify tables (and, through attached commands, files).

Loaded lazily by :mod:`secured_bio.cli` (``LAZY_GROUPS``); errors raised here are turned into
one-line messages and exit codes by ``secured_bio.cli.main``.
"""

from __future__ import annotations

from pathlib import Path

import click

from secured_bio.errors import ConfigError

__all__ = ["anonymize", "table"]


def _columns(value: str | None, option: str) -> list[str]:
    if value is None:
        return []
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise ConfigError("empty column list", where=option,
                          expected="comma-separated column names", fix=f"e.g. {option} age,sex")
    return names


@click.group()
def anonymize() -> None:
    """De-identify data before release: tables (k-anonymity, l-diversity, t-closeness).

    \b
    secured-bio anonymize table --in adm.csv --qi age,sex,postcode,admission_date \\
        --sensitive diagnosis --k 5 --l 2 --drop patient_id --out rel.csv --report rel.json
    """


@anonymize.command("table")
@click.option("--in", "in_path", required=True, type=click.Path(path_type=Path),
              help="Input CSV (UTF-8, header row).")
@click.option("--qi", required=True,
              help="Comma-separated quasi-identifier columns (generalized).")
@click.option("--sensitive", help="Sensitive column (kept; needed by --l and --t).")
@click.option("--k", "k", required=True, type=click.IntRange(min=1),
              help="k-anonymity: every released class holds at least K records.")
@click.option("--l", "l_", type=click.IntRange(min=2), help="l-diversity's l.")
@click.option("--l-kind", type=click.Choice(["distinct", "entropy", "recursive"]),
              default="distinct", show_default=True, help="Kind of l-diversity.")
@click.option("--c", "c", type=click.FloatRange(min=0, min_open=True),
              help="c of recursive (c,l)-diversity.")
@click.option("--t", "t", type=click.FloatRange(0, 1),
              help="t-closeness threshold (EMD; ordered for numeric sensitive values).")
@click.option("--hierarchies", type=click.Path(path_type=Path),
              help="Folder of ARX hierarchy files, one <column>.csv per quasi-identifier "
              "(rows: value;level1;level2...). Columns without a file get automatic "
              "hierarchies: intervals for numbers, month/year/decade for ISO dates, "
              "masking for codes such as postcodes, '*' for other categories.")
@click.option("--max-suppression", type=click.FloatRange(0, 1, max_open=True), default=0.05,
              show_default=True,
              help="Largest fraction of records that may be removed (lattice method).")
@click.option("--method", type=click.Choice(["mondrian", "lattice"]), default="mondrian",
              show_default=True,
              help="mondrian: multidimensional partitioning (local recoding, lowest loss, "
              "scales to many columns); lattice: optimal full-domain generalization with "
              "record suppression (a few quasi-identifiers).")
@click.option("--drop", help="Comma-separated direct identifiers (names, patient IDs...) to "
              "remove from the release. Columns not in --qi/--drop are released unchanged: "
              "drop every direct identifier here.")
@click.option("--keep-unique-columns", "keep_unique", is_flag=True,
              help="Release text columns with a distinct value in every row (refused by "
              "default: they look like direct identifiers).")
@click.option("--groups", metavar="COLS",
              help="Comma-separated grouping columns of the bias audit (e.g. sex,ethnicity), "
              "besides --sensitive: the report gives each group's suppressed share and "
              "information loss (NCP), and flags groups that pay clearly more than the whole.")
@click.option("--target", metavar="COL",
              help="Binary outcome column: the bias audit also gives the per-group AUROC of a "
              "model trained on a release vs on the original records (tested on held-out "
              "original records).")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Released CSV.")
@click.option("--report", "report_path", required=True, type=click.Path(path_type=Path),
              help="JSON report: transformation, k/l/t by us and by pycanon, suppression, "
              "utility. Written together with --out (both or neither).")
@click.option("--passport", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the privacy passport of the output (JSON to FILE, HTML page to "
              "FILE with the suffix .html; see secured_bio.passport).")
def table(in_path: Path, qi: str, sensitive: str | None, k: int, l_: int | None,
          l_kind: str, c: float | None, t: float | None, hierarchies: Path | None,
          max_suppression: float, method: str, drop: str | None, keep_unique: bool,
          groups: str | None, target: str | None, out: Path, report_path: Path,
          passport: Path | None) -> None:
    """Anonymize a table: generalize quasi-identifiers, suppress records, verify with pycanon.

    Released values are readable labels ([30-39], 2024-03, 751**, *). Suppressed records
    are removed and counted in the report. Every release is re-checked with pycanon, and
    the check fails closed: if the achieved k, l or t is below the request (by our figures
    or pycanon's) or the two disagree, neither --out nor --report is written and the
    command exits with status 1, naming each model with its requested and achieved figures.

    The report's bias section gives, per group of --sensitive and --groups, the suppressed
    share and NCP of its records; a warning line names each group that pays clearly more
    (all suppressed, or >= 2x and >= 0.2 above the overall figure).
    """
    from secured_bio.privacy.anonymize.table import anonymize_csv

    result = anonymize_csv(
        in_path, out, report_path, hierarchies_dir=hierarchies, qi=_columns(qi, "--qi"),
        sensitive=sensitive, k=k, l=l_, l_kind=l_kind, c=c, t=t,
        max_suppression=max_suppression, method=method, drop=_columns(drop, "--drop"),
        keep_unique=keep_unique, groups=_columns(groups, "--groups"), target=target,
    )
    r = result.report
    if passport is not None:
        from secured_bio.passport import build_passport, input_record, write_passport

        ctx = click.get_current_context()
        write_passport(build_passport(
            out, kind="anonymized_table", report=r, command=ctx.command_path,
            parameters=ctx.params, inputs=[input_record(in_path, role="table")]), passport)
    a = r["achieved"]
    figures = f"k={a['ours']['k']}"
    if "l_distinct" in a["ours"]:
        figures += f", l={a['ours']['l_distinct']}, t={a['ours']['t']:.3f}"
    click.echo(
        f"{r['method']}: released {r['rows']['released']}/{r['rows']['input']} records "
        f"({r['rows']['suppressed']} suppressed) in {r['utility']['n_classes']} classes; "
        f"{figures}; pycanon agrees; "
        f"NCP {r['utility']['ncp']:.3f}; release: {out}",
        err=True,
    )
    from secured_bio.privacy.anonymize.bias import summary_lines

    for line in summary_lines(r["bias"]):
        click.echo(line, err=True)


def _attach_file_commands() -> None:
    from secured_bio.privacy.anonymize.files_cli import nifti, vcf

    anonymize.add_command(nifti)
    anonymize.add_command(vcf)


_attach_file_commands()
