"""``secured-bio synth``: synthetic tables (vitals and images attached from their modules).

Loaded lazily by :mod:`secured_bio.cli` (``LAZY_GROUPS``); errors raised here are turned into
one-line messages and exit codes by ``secured_bio.cli.main`` (1 bad input, 2 bad options).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from pathlib import Path
from typing import Any

import click

__all__ = ["synth", "table"]

log = logging.getLogger(__name__)

_METHODS = ("auto", "copula", "cart", "tvae", "mst")  # = tabular.METHODS (keeps --help light)
_EVALUATE = "secured_bio.privacy.synthetic.evaluate"


@click.group()
def synth() -> None:
    """Synthetic data that carries no real patient: tables, vital signs and images.

    \b
    secured-bio synth table --in admissions.csv --n 500 --out synth.csv --report synth.json \\
        --drop patient_id --condition 'age=5..10' --condition 'diagnosis=pneumonia'
    secured-bio synth table --in trial.csv --n 300 --target outcome --method cart \\
        --min-leaf 5 --smoothing density --out cart.csv
    secured-bio synth table --in admissions.csv --n 500 --method mst --epsilon 1 \\
        --drop patient_id --out dp.csv
    secured-bio synth vitals --in ward_cohort --n 50 --age 5..10 --out synth_vitals
    secured-bio synth images --in imaging_cohort --n 32 --out synth_images
    """


def _evaluation(real: Any, out: Any, holdout: Path | None, target: str | None, seed: int
                ) -> dict[str, Any] | None:
    """Run the evaluation module when it is installed (it is optional at runtime)."""
    try:
        found = importlib.util.find_spec(_EVALUATE) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        if holdout is not None or target is not None:
            from secured_bio.errors import DependencyError

            raise DependencyError("the evaluation module is not available", where=_EVALUATE,
                                  fix="drop --holdout/--target or update secured_bio")
        return None
    from secured_bio._csv import read_csv_strings

    evaluate = importlib.import_module(_EVALUATE).evaluate_synthetic
    hold = None
    if holdout is not None:
        hold = read_csv_strings(holdout, label="holdout", option="--holdout", allow_empty=False)
        hold = hold[[c for c in real.columns if c in hold.columns]]
    result: dict[str, Any] = evaluate(real, out, holdout=hold, target=target, seed=seed)
    return result


@synth.command()
@click.option("--in", "input_path", required=True, type=click.Path(path_type=Path),
              help="Real table (CSV with a header; values kept as text).")
@click.option("--n", "n_rows", required=True, type=click.IntRange(min=1),
              help="Number of synthetic rows (all satisfy every --condition).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Synthetic CSV to write: the input's columns, in order and formats.")
@click.option("--method", type=click.Choice(_METHODS), default="auto", show_default=True,
              help="auto: fit copula and cart on 70% of the rows, score them on the rest "
                   "(utility on --target, fidelity, membership AUC <= 0.6 and <= 1% copies) "
                   "and refit the best on all rows; copula: Gaussian copula (fast); cart: "
                   "sequential CART (synthpop); tvae: variational autoencoder (torch); "
                   "mst: differentially private (needs --epsilon).")
@click.option("--order", default=None, metavar="COL1,COL2,...",
              help="cart: columns visited first, in this order (the others follow; "
                   "--target last).")
@click.option("--min-leaf", "min_leaf", type=click.IntRange(min=1), default=None,
              help="cart: minimum rows per tree leaf [default: 5].")
@click.option("--smoothing", type=click.Choice(("density", "none")), default=None,
              help="cart: Gaussian-kernel smoothing of numeric draws [default: density].")
@click.option("--epsilon", type=float, default=None,
              help="Privacy budget of --method mst (> 0; smaller is more private).")
@click.option("--delta", type=float, default=None,
              help="DP delta of --method mst [default: 1e-6; keep it below 1/rows].")
@click.option("--condition", "conditions", multiple=True, metavar="EXPR",
              help="COLUMN=VALUE or COLUMN=LOW..HIGH (inclusive; numbers and dates); "
                   "repeat to combine with AND.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the NON-PRIVATE parts only: copula/tvae give the same CSV for the "
                   "same seed and input; for mst it drives only the sampling from the noisy "
                   "model, the DP noise comes from the OS CSPRNG, so two mst runs differ.")
@click.option("--insecure-reproducible-dp", "insecure_dp", is_flag=True,
              help="TESTS ONLY, off by default: seed mst's DP noise with --seed too "
                   "(reproducible). The noise is then predictable and the epsilon does NOT "
                   "hold; the report's privacy section says so.")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Training epochs of --method tvae [default: 300].")
@click.option("--drop", "drop", multiple=True, metavar="COLUMN",
              help="Leave a column out (identifiers such as patient_id are refused otherwise); "
                   "it is then absent from the output.")
@click.option("--public-domain", "public_domain", type=click.Path(path_type=Path),
              default=None, help="mst: JSON {column: [categories] | [low, high]} known without "
                                 "the data, so the domain is covered by epsilon.")
@click.option("--report", "report", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="JSON report: method, parameters, epsilon/delta, conditions, "
                                 "timings and (when available) the evaluation.")
@click.option("--html", "html", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the evaluation as a self-contained HTML page (charts of "
                   "distributions, correlations, utility, the membership attack's ROC).")
@click.option("--holdout", type=click.Path(path_type=Path), default=None,
              help="Real rows NOT in --in, for utility and membership-inference figures.")
@click.option("--target", default=None,
              help="Outcome column: utility figures of the report, the column --method auto "
                   "scores utility on, and cart's last column.")
@click.option("--no-evaluate", "no_evaluate", is_flag=True,
              help="Skip the evaluation in the report.")
@click.option("--passport", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the privacy passport of the output (JSON to FILE, HTML page to "
              "FILE with the suffix .html; see secured_bio.passport).")
def table(input_path: Path, n_rows: int, out: Path, method: str, epsilon: float | None,
          delta: float | None, conditions: tuple[str, ...], seed: int, epochs: int | None,
          drop: tuple[str, ...], public_domain: Path | None, report: Path | None,
          html: Path | None, holdout: Path | None, target: str | None, no_evaluate: bool,
          insecure_dp: bool, order: str | None, min_leaf: int | None,
          smoothing: str | None, passport: Path | None) -> None:
    """Fit a generator on a real table and write N synthetic rows.

    The CSV and the JSON report are written together, only when everything succeeded.
    With --method mst the differential-privacy noise is drawn from the OS CSPRNG: --seed
    does not fix it, so two runs on the same input differ (as DP requires).
    """
    from secured_bio._atomic import atomic_paths
    from secured_bio._csv import read_csv_strings
    from secured_bio._inputs import reject_folder
    from secured_bio.errors import ConfigError, InputFileNotFoundError
    from secured_bio.privacy.synthetic.tabular import synthesize_table

    if report is not None and report.resolve() == out.resolve():
        raise ConfigError("--out and --report are the same file", where=str(out),
                          fix="give the report another name")
    if html is not None and (report is None or no_evaluate):
        raise ConfigError("--html shows the evaluation of the report", where="--html",
                          expected="--report FILE (without --no-evaluate)",
                          got="no evaluation asked for", fix="add --report, or drop --html")
    outputs = [p.resolve() for p in (out, report, html) if p is not None]
    if len(set(outputs)) < len(outputs):
        raise ConfigError("two outputs share a file name", where="--out/--report/--html",
                          fix="give each output its own name")
    if report is None and (holdout is not None or (target is not None and method not in
                                                   ("auto", "cart"))):
        raise ConfigError("--holdout/--target only feed the report", where="--report",
                          expected="--report FILE", got="no --report", fix="add --report")
    domain = None
    if public_domain is not None:
        reject_folder(public_domain, "public domain file", option="--public-domain")
        if not public_domain.is_file():
            raise InputFileNotFoundError("public domain file not found",
                                         where=str(public_domain), fix="check --public-domain")
        try:
            domain = json.loads(public_domain.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError("public domain is not valid JSON", where=str(public_domain),
                              expected='{"column": ["a", "b"] or [low, high]}',
                              fix="fix the JSON") from e
        if not isinstance(domain, dict):
            raise ConfigError("public domain must be a JSON object", where=str(public_domain),
                              expected='{"column": [...]}', got=type(domain).__name__)
    start = time.perf_counter()
    real = read_csv_strings(input_path, label="input", option="--in", allow_empty=False)
    result = synthesize_table(real, n_rows, method=method, conditions=conditions, seed=seed,
                              epsilon=epsilon, delta=delta, epochs=epochs, drop=drop,
                              public_domain=domain,
                              insecure_dp_seed=seed if insecure_dp else None, target=target,
                              order=None if order is None else
                              [c.strip() for c in order.split(",") if c.strip()],
                              min_leaf=min_leaf, smoothing=smoothing)
    doc = dict(result.report, input=str(input_path), output=str(out))
    if report is not None:
        doc["evaluation"] = None
        if not no_evaluate:
            t0 = time.perf_counter()
            kept = real[[c for c in real.columns if c not in drop]]
            doc["evaluation"] = _evaluation(kept, result.table, holdout, target, seed)
            doc["evaluate_seconds"] = round(time.perf_counter() - t0, 3)
        doc["total_seconds"] = round(time.perf_counter() - start, 3)
    page = None
    if html is not None:
        if doc.get("evaluation") is None:
            from secured_bio.errors import DependencyError

            raise DependencyError("the evaluation module is not available", where=_EVALUATE,
                                  fix="drop --html or update secured_bio")
        from secured_bio.privacy.synthetic.report_html import render_html

        page = render_html(doc["evaluation"])
    paths = [out] + [p for p in (report, html) if p is not None]
    with atomic_paths(*paths) as tmps:
        result.table.to_csv(tmps[0], index=False)
        if report is not None:
            tmps[1].write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
        if page is not None:
            tmps[2].write_text(page, encoding="utf-8")
    if passport is not None:
        from secured_bio.passport import build_passport, input_record, write_passport

        ctx = click.get_current_context()
        write_passport(build_passport(
            out, kind="synthetic_table", report=doc, command=ctx.command_path,
            parameters=ctx.params, inputs=[input_record(input_path, role="table")]), passport)
    privacy = result.report.get("privacy")
    dp = (f", (epsilon={privacy['epsilon']:g}, delta={privacy['delta']:g})-DP, domain "
          f"{privacy['domain']}" if privacy else "")
    if privacy and not privacy.get("epsilon_holds", True):
        dp += "; INSECURE reproducible DP noise: the epsilon does NOT hold"
    chosen = result.report["method"]
    label = f"{chosen}, chosen by auto" if method == "auto" else chosen
    click.echo(f"wrote {len(result.table)} synthetic rows x {result.table.shape[1]} columns "
               f"({label}{dp}) -> {out}" + (f" and {report}" if report else "")
               + (f" and {html}" if html else ""))


def _attach_image_command() -> None:
    from secured_bio.privacy.synthetic.images_cli import images
    from secured_bio.telemetry.synth_cli import vitals

    synth.add_command(images)
    synth.add_command(vitals)


_attach_image_command()
