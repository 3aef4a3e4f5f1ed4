"""``secured-bio assess``: re-identification risk and attack simulations on a released table.

Loaded lazily by :mod:`secured_bio.cli` (``LAZY_GROUPS``); errors raised here are turned into
one-line messages and exit codes by ``secured_bio.cli.main``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import pandas as pd


@click.group()
def assess() -> None:
    """Assess a release: re-identification risk and attack simulations.

    \b
    secured-bio assess table --original main.csv --released release.csv \\
        --control holdout.csv --qi age,sex,postcode --sensitive diagnosis \\
        --report risk.json --plot risk.png
    """


def read_table(path: Path, name: str) -> pd.DataFrame:
    """Read a UTF-8 CSV table as strings; refuse a missing, non-UTF-8, ragged or empty file.

    Raises
    ------
    InputFileNotFoundError
        If the file does not exist.
    FormatError
        If it is not UTF-8, a row has a different number of fields than the header, or a
        column name repeats.
    InputError
        If it has no header or no data rows.
    """
    from secured_bio._csv import read_csv_strings

    return read_csv_strings(path, label=name, option=f"--{name}", allow_empty=False)


def _jsonable(x: Any) -> Any:
    """Make a report JSON-safe: NaN/inf become null (JSON has no NaN)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if hasattr(x, "item") and not isinstance(x, str | bytes):
        return _jsonable(x.item())
    return x


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * float(x):.1f}%"


@assess.command("table")
@click.option("--original", "original", required=True, type=click.Path(path_type=Path),
              help="Original records the release was made from (the main set).")
@click.option("--released", "released", required=True, type=click.Path(path_type=Path),
              help="The released (anonymized or synthetic) table.")
@click.option("--control", "control", type=click.Path(path_type=Path), default=None,
              help="Original records NOT used for the release; without it the singling-out, "
                   "linkability and inference risks are not reported.")
@click.option("--external", "external", type=click.Path(path_type=Path), default=None,
              help="An identified table the attacker holds (linkage; journalist population) "
                   "[default: the original table, the worst case].")
@click.option("--qi", "qi", required=True, metavar="COLS",
              help="Quasi-identifier columns, comma-separated.")
@click.option("--sensitive", default=None, metavar="COL", help="Sensitive column.")
@click.option("--secret", default=None, metavar="COL",
              help="Column the inference attack guesses [default: --sensitive].")
@click.option("--id", "id_column", default=None, metavar="COL",
              help="Identity column of the attacker's table, to count correct links; the "
                   "release's own column, or the original's when both have as many rows.")
@click.option("--population-size", type=click.IntRange(min=1), default=None,
              help="Size of the population the data were sampled from (uniqueness estimate).")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=0.2, show_default=True,
              help="Record risk above which a record is at risk (0.2: classes smaller than 5).")
@click.option("--n-attacks", type=click.IntRange(min=1), default=500, show_default=True,
              help="Attacks per singling-out, linkability and inference evaluation.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Random seed of the attacks.")
@click.option("--groups", default=None, metavar="COLS",
              help="Bias audit: comma-separated grouping columns released unchanged (e.g. "
                   "sex,ethnicity; --sensitive is added). Reports each group's suppressed share "
                   "and information loss (NCP, estimated from the released labels) and warns "
                   "about groups that pay clearly more than the whole.")
@click.option("--report", "report_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="JSON report to write.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="PNG chart of the risks to write.")
def table(original: Path, released: Path, control: Path | None, external: Path | None, qi: str,
          sensitive: str | None, secret: str | None, id_column: str | None,
          population_size: int | None, threshold: float, n_attacks: int, seed: int,
          groups: str | None, report_path: Path, plot_path: Path | None) -> None:
    """Re-identification risk of a released table, and attacks against it.

    \b
    Report keys (one per model or attack):
      prosecutor, journalist, marketer   highest/average record risk, records at risk
      sample_uniques, population_uniqueness (Zayatz's model)
      linkage                            records linked uniquely (and correctly, with --id)
      singling_out, linkability, inference  anonymeter's method: main vs control rate,
                                         risk with 95% CI, or null with the reason
      bias (with --groups)               per group: suppressed share, NCP, flags
    Prints one summary line; the report and chart are written only when complete.
    """
    from secured_bio._atomic import atomic_write
    from secured_bio.privacy.assess.attacks import assess_table

    tables = {"original": read_table(original, "original"),
              "released": read_table(released, "released")}
    if control is not None:
        tables["control"] = read_table(control, "control")
    if external is not None:
        tables["external"] = read_table(external, "external")
    bias = None
    if groups is not None:  # before the attacks: a bad --groups fails at once
        from secured_bio.privacy.anonymize.bias import release_group_audit

        names = [g.strip() for g in groups.split(",") if g.strip()]
        qi_cols = [q.strip() for q in qi.split(",") if q.strip()]
        bias = release_group_audit(
            tables["original"], tables["released"], qi=qi_cols,
            columns=([sensitive] if sensitive else []) + names)
    report = assess_table(tables["original"], tables["released"], qi=qi,
                          control=tables.get("control"), external=tables.get("external"),
                          sensitive=sensitive, secret=secret, id_column=id_column,
                          population_size=population_size, threshold=threshold,
                          n_attacks=n_attacks, seed=seed)
    if bias is not None:
        report["bias"] = bias
    report["inputs"] = {k: {"file": str(p), "rows": len(tables[k])}
                        for k, p in (("original", original), ("released", released),
                                     ("control", control), ("external", external))
                        if p is not None}
    if plot_path is not None:
        from secured_bio.privacy.assess.plots import plot_risk

        plot_risk(report, plot_path)
    with atomic_write(report_path) as fh:
        json.dump(_jsonable(report), fh, indent=2)
        fh.write("\n")
    so = report["singling_out"]["multivariate"]
    click.echo(
        f"risk of {released.name} ({report['n_records']} records, {len(report['qi'])} QIs): "
        f"prosecutor highest {_pct(report['prosecutor']['highest'])}, average "
        f"{_pct(report['prosecutor']['average'])}; sample uniques "
        f"{report['sample_uniques']['count']}; singling out {_pct(so['risk'])}, linkability "
        f"{_pct(report['linkability']['risk'])}, inference {_pct(report['inference']['risk'])}"
        f" -> {report_path}" + (f", {plot_path}" if plot_path else "")
    )
    if "bias" in report:
        from secured_bio.privacy.anonymize.bias import summary_lines

        for line in summary_lines(report["bias"]):
            click.echo(line, err=True)
