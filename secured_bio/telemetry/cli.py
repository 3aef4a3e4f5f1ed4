"""``secured-bio telemetry``: ingest vital signs (FHIR R4 or CSV) and score the Bedside PEWS.

Loaded lazily by :mod:`secured_bio.cli` (``LAZY_GROUPS``); errors raised here are turned into
one-line messages and exit codes by ``secured_bio.cli.main`` (1 bad input, 2 usage).
"""

from __future__ import annotations

from pathlib import Path

import click

from secured_bio.telemetry.ingest import ON_INVALID


@click.group()
def telemetry() -> None:
    """Vital signs: FHIR/CSV ingest to a canonical long table, and the Bedside PEWS baseline.

    \b
    secured-bio telemetry ingest --in vitals.fhir.json --out vitals.csv --report ingest.json
    secured-bio telemetry pews --in vitals.csv --ages patients.csv --out scores.csv
    """


@telemetry.command()
@click.option("--in", "src", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="FHIR R4 Bundle / Observation (JSON), NDJSON of Observations, or CSV long "
                   "table patient_id,time,vital,value,unit.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output CSV (canonical UCUM units, sorted); written only when complete.")
@click.option("--on-invalid", type=click.Choice(ON_INVALID), default="error", show_default=True,
              help="Implausible values (outside data_specs/vitals.yaml ranges): error, or drop "
                   "and count them.")
@click.option("--skip-unknown", is_flag=True,
              help="Drop and count Observations with an unknown LOINC code (CSV: unknown vital) "
                   "instead of failing.")
@click.option("--report", "report", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write a JSON report: counts read, kept, dropped by "
                                 "reason and per vital.")
def ingest(src: Path, out: Path, on_invalid: str, skip_unknown: bool, report: Path | None
           ) -> None:
    """Read vital signs and write the canonical long table patient_id,time,vital,value,unit.

    Units are converted to canonical UCUM (/min, %, Cel, mm[Hg]); times keep their UTC
    offset; entered-in-error/cancelled Observations, identical duplicates and (with the
    options) implausible values and unknown codes are dropped and counted.  Prints one line
    of counts.
    """
    from secured_bio.telemetry.ingest import ingest_vitals

    rep = ingest_vitals(src, out, on_invalid=on_invalid,  # type: ignore[arg-type]
                        skip_unknown=skip_unknown, report_path=report)
    click.echo(f"{src.name}: {rep.summary()} -> {out}")


@telemetry.command()
@click.option("--in", "src", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Vitals long table (data_specs/vitals.yaml), e.g. from 'telemetry ingest'.")
@click.option("--ages", "ages", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="CSV with columns patient_id,age_years (the demo's patients.csv).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output CSV of scores; written only when complete.")
@click.option("--window", default="4h", show_default=True,
              help="Use the latest value of each vital at most this old (pandas duration).")
def pews(src: Path, ages: Path, out: Path, window: str) -> None:
    """Score the Bedside PEWS (Parshuram et al. 2009) at every measurement time.

    Only the vital-sign items (heart rate, systolic BP, respiratory rate, SpO2) can be scored
    from a vitals table: the score is partial and each row lists its missing items.
    """
    from secured_bio._inputs import read_table
    from secured_bio.errors import SchemaError, SecuredBioError
    from secured_bio.specs import validate
    from secured_bio.telemetry.pews import score_pews, write_scores

    validate("vitals", src)
    vitals = read_table(src, "vitals table", option="--in",
                        dtype={"patient_id": str, "time": str, "vital": str, "unit": str},
                        keep_default_na=False)
    age_table = read_table(ages, "ages file", option="--ages", dtype={"patient_id": str})
    missing = {"patient_id", "age_years"} - set(age_table.columns)
    if missing:
        raise SchemaError("ages file lacks columns", where=str(ages),
                          expected="columns patient_id, age_years",
                          got="missing " + ", ".join(sorted(missing)),
                          fix="give the demo's patients.csv or a patient_id,age_years table")
    try:
        scores = score_pews(vitals, age_table, window=window)
    except SecuredBioError as e:
        e.add_note(f"while scoring {src} with the ages in {ages}")
        raise
    write_scores(scores, out)
    n_pat = scores["patient_id"].nunique()
    click.echo(f"{src.name}: Bedside PEWS (partial: {scores['n_items'].max() if len(scores) else 0}"
               f" of 7 items at most) at {len(scores)} times of {n_pat} patients -> {out}")


def _attach_model_commands() -> None:
    from secured_bio.telemetry.model_cli import score, train

    telemetry.add_command(train)
    telemetry.add_command(score)


_attach_model_commands()
