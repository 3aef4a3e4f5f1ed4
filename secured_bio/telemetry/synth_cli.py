"""``secured-bio synth vitals``: fit a vital-signs generator and write synthetic patients.

A standalone click command, attached to the ``synth`` group by
:mod:`secured_bio.privacy.synthetic.cli`.  The work is done by
:mod:`secured_bio.telemetry.synthetic`; errors raised here are turned into one-line messages
and exit codes by ``secured_bio.cli.main`` (1 bad input, 2 bad option).  The output folder,
the model file and the report are written together, only when everything succeeded.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import click

__all__ = ["vitals", "parse_age_range"]

logger = logging.getLogger(__name__)

_SUMMARY = "synth_vitals.json"
_RANGE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*\.\.\s*([0-9]+(?:\.[0-9]*)?)\s*$")
_N_PLOTS = 4


def parse_age_range(text: str) -> tuple[float, float]:
    """Parse ``LOW..HIGH`` (years, 0 <= LOW <= HIGH <= 18).

    Raises
    ------
    ConfigError
        If the text is not a range in [0, 18].

    Examples
    --------
    >>> parse_age_range("2..5.5")
    (2.0, 5.5)
    """
    from secured_bio.errors import ConfigError

    m = _RANGE.match(text)
    if not m or not (0.0 <= float(m.group(1)) <= float(m.group(2)) <= 18.0):
        raise ConfigError("invalid --age range", where="--age",
                          expected="LOW..HIGH in years with 0 <= LOW <= HIGH <= 18, e.g. 2..5",
                          got=repr(text), fix="pass e.g. --age 1..5")
    return float(m.group(1)), float(m.group(2))


def _inside(path: Path, folder: Path) -> Path | None:
    """``path`` relative to ``folder`` when it lies inside it, else None."""
    try:
        return path.resolve().relative_to(folder.resolve())
    except ValueError:
        return None


@click.command()
@click.option("--in", "input_path", type=click.Path(path_type=Path), default=None,
              help="Real cohort: a folder with vitals.csv, patients.csv, events.csv, or a "
                   "folder of site folders (pooled), or a vitals.csv (then --patients/--events "
                   "or the files next to it).  Not needed with --model unless --report.")
@click.option("--patients", type=click.Path(path_type=Path), default=None,
              help="patients.csv (patient_id,age_years,sex) when --in is a vitals.csv.")
@click.option("--events", type=click.Path(path_type=Path), default=None,
              help="events.csv (patient_id,deterioration,onset_time) when --in is a CSV.")
@click.option("--n", "n", required=True, type=click.IntRange(min=1),
              help="Number of synthetic patients.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Output folder (new, empty, or an earlier output; replaced when complete).")
@click.option("--deterioration-fraction", type=click.FloatRange(0, 1), default=None,
              help="Share of patients with a deterioration episode [default: as fitted].")
@click.option("--age", "age", default=None, metavar="LOW..HIGH",
              help="Draw ages in this range (years, within 0..18).")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), default=48.0,
              show_default=True, help="Length of each stay in hours.")
@click.option("--interval-minutes", type=click.IntRange(min=1), default=None,
              help="Minutes between measurement rounds [default: as fitted].")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed: the same seed and input give the same files.")
@click.option("--fhir", is_flag=True, help="Also write OUT/vitals.fhir.json (FHIR R4 Bundle).")
@click.option("--model-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Save the fitted model (JSON, aggregates only).")
@click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Use a saved model instead of fitting (skips fitting).")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON evaluation: fidelity, utility (TSTR vs TRTR) and privacy (membership "
                   "inference needs --holdout).")
@click.option("--holdout", type=click.Path(path_type=Path), default=None,
              help="Real patients NOT in --in (a cohort folder), for the report.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Most threads while training the report's models [default: all]; 1 is "
                   "often faster on a small or busy host.")
@click.option("--epsilon", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Fit with (EPSILON, DELTA)-differential privacy, patient-level (add/remove "
                   "one patient): per-patient contributions to every statistic are clipped and "
                   "Gaussian noise from the OS CSPRNG is added (zCDP accounting over all "
                   "statistics; see secured_bio.telemetry.synthetic_dp).  Without it the model "
                   "is fitted on exact aggregates and is NOT differentially private.")
@click.option("--delta", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
              default=None, help="Delta of the DP guarantee [default: 1e-6]; needs --epsilon.")
@click.option("--plot", is_flag=True,
              help=f"Write OUT/plots/: the first {_N_PLOTS} synthetic patients' vital signs.")
@click.option("--passport", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the privacy passport of OUT (JSON to FILE, HTML page to "
              "FILE with the suffix .html; see secured_bio.passport).")
def vitals(input_path: Path | None, patients: Path | None, events: Path | None, n: int,
           out: Path, deterioration_fraction: float | None, age: str | None, hours: float,
           interval_minutes: int | None, seed: int, fhir: bool, model_out: Path | None,
           model_path: Path | None, report: Path | None, holdout: Path | None,
           threads: int | None, epsilon: float | None, delta: float | None,
           plot: bool, passport: Path | None) -> None:
    """Synthetic paediatric vital-sign trajectories, fitted on real telemonitoring data.

    \b
    secured-bio synth vitals --in demo/telemonitoring --n 200 --out synth_vitals/ \\
        --deterioration-fraction 0.3 --age 1..5 --fhir --model-out vitals_model.json
    secured-bio synth vitals --model vitals_model.json --n 50 --out more/ --hours 24
    secured-bio synth vitals --in demo/site1 --n 100 --out s/ --report r.json \\
        --holdout demo/site3
    secured-bio synth vitals --in demo/telemonitoring --n 200 --out dp/ --epsilon 1 \\
        --report r.json --holdout demo/holdout

    \b
    Writes OUT/vitals.csv, OUT/patients.csv, OUT/events.csv (the layouts of
    `secured-bio demo telemonitoring`), OUT/vitals.fhir.json with --fhir, OUT/plots/ with
    --plot, and OUT/synth_vitals.json (what was done).  The model holds aggregate statistics
    only; see secured_bio.telemetry.synthetic.
    """
    from secured_bio._atomic import atomic_dir, atomic_paths, check_replaceable_dir
    from secured_bio.errors import ConfigError
    from secured_bio.telemetry import synthetic as syn

    start = time.perf_counter()
    ages = parse_age_range(age) if age is not None else None
    if model_path is not None and model_out is not None:
        raise ConfigError("--model and --model-out exclude each other", where="--model",
                          expected="fit and save (--in, --model-out) or load (--model)",
                          got="both", fix="drop one of them")
    if model_path is None and input_path is None:
        raise ConfigError("nothing to fit on", where="--in", expected="--in DIR|VITALS.csv or "
                          "--model FILE", got="neither", fix="add --in or --model")
    if report is not None and input_path is None:
        raise ConfigError("--report needs the real data", where="--report",
                          expected="--in with --report", got="no --in", fix="add --in")
    if holdout is not None and report is None:
        raise ConfigError("--holdout only feeds the report", where="--holdout",
                          expected="--report FILE", got="no --report", fix="add --report")
    if input_path is not None and input_path.is_dir() and (patients or events):
        raise ConfigError("--patients/--events go with a vitals.csv, not a cohort folder",
                          where="--patients" if patients else "--events",
                          expected="--in VITALS.csv with them, or --in DIR alone",
                          got="a folder for --in",
                          fix="drop them (the folder's own patients.csv/events.csv are used)")
    if delta is not None and epsilon is None:
        raise ConfigError("--delta needs --epsilon", where="--delta",
                          expected="--epsilon E with --delta D", got="no --epsilon",
                          fix="add --epsilon or drop --delta")
    if epsilon is not None and model_path is not None:
        raise ConfigError("--epsilon applies to fitting, not to a saved model", where="--epsilon",
                          expected="--in with --epsilon (a DP fit)", got="--model",
                          fix="drop --epsilon (a saved DP model keeps its guarantee) or refit")
    check_replaceable_dir(out, marker=_SUMMARY)
    extra = [p for p in (model_out, report) if p is not None]
    for p in extra:
        if _inside(p, out) is not None:
            raise ConfigError("file inside the output folder", where=str(p),
                              expected="--model-out/--report outside --out (it is replaced)",
                              got=f"a path inside {out}", fix="write it next to --out")
    timings: dict[str, float] = {}
    real = None
    if input_path is not None:
        real = syn.read_cohort(input_path, patients=patients, events=events)
    if model_path is not None:
        model = syn.load_vitals_model(model_path)
    else:
        assert real is not None
        t0 = time.perf_counter()
        if epsilon is not None:
            from secured_bio.telemetry.synthetic_dp import DEFAULT_DELTA, fit_vitals_model_dp

            model = fit_vitals_model_dp(*real, epsilon=epsilon,
                                        delta=delta if delta is not None else DEFAULT_DELTA)
        else:
            model = syn.fit_vitals_model(*real, seed=seed)
        timings["fit_seconds"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    result = model.sample(n, ages=ages, deterioration=deterioration_fraction, hours=hours,
                          interval_minutes=interval_minutes, seed=seed)
    timings["sample_seconds"] = round(time.perf_counter() - t0, 3)
    evaluation: dict[str, Any] | None = None
    if report is not None:
        assert real is not None
        t0 = time.perf_counter()
        evaluation = syn.evaluate_vitals(real, result, holdout=holdout, seed=seed,
                                         n_threads=threads,
                                         differential_privacy=model.differential_privacy)
        timings["evaluate_seconds"] = round(time.perf_counter() - t0, 3)
    summary = {
        "format": "secured_bio.synth_vitals_run", "format_version": 1,
        "input": str(input_path) if input_path is not None else None,
        "model": str(model_path) if model_path is not None else None,
        "differential_privacy": (
            {k: model.differential_privacy[k] for k in ("epsilon", "delta", "adjacency")}
            if model.differential_privacy else "not differentially private"),
        "fitted_on": {"patients": model.n_patients, "deteriorating": model.n_deteriorating,
                      "measurements": model.n_measurements},
        "parameters": result.parameters,
        "patients": len(result.patients),
        "deteriorating": int(result.events["deterioration"].sum()),
        "measurements": len(result.vitals),
        "files": ["vitals.csv", "patients.csv", "events.csv"] + (
            ["vitals.fhir.json"] if fhir else []) + (["plots/"] if plot else []),
        **timings,
    }
    with atomic_paths(*extra) as tmps, atomic_dir(out) as tmp:
        syn.write_synthetic_vitals(result, tmp, fhir=fhir)
        if plot:
            ids = result.patients["patient_id"].tolist()[:_N_PLOTS]
            for k, pid in enumerate(ids):
                syn.plot_vitals(result, pid, tmp / "plots" / f"{pid}.png",
                                title=f"synthetic patient {pid}")
                del k
        (tmp / _SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        for p, t in zip(extra, tmps, strict=True):
            if p == model_out:
                syn.save_vitals_model(model, t)
            else:
                doc = dict(evaluation or {}, run=summary)
                t.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    if passport is not None:
        from secured_bio.passport import build_passport, input_record, write_passport

        ctx = click.get_current_context()
        write_passport(build_passport(
            out, kind="synthetic_vitals", report=dict(evaluation, run=summary)
            if evaluation is not None else summary, command=ctx.command_path,
            parameters=ctx.params,
            inputs=[input_record(input_path, role="vitals")] if input_path else None), passport)
    line = (f"wrote {summary['patients']} synthetic patients ({summary['deteriorating']} "
            f"deteriorating), {summary['measurements']} measurements -> {out}")
    if model.differential_privacy:
        dp = model.differential_privacy
        line += f"; ({dp['epsilon']:g}, {dp['delta']:g})-DP"
    if evaluation is not None:
        u = evaluation["utility"]
        if u.get("auroc_tstr") is not None:
            line += f"; AUROC TSTR {u['auroc_tstr']:.3f} vs TRTR {u['auroc_trtr']:.3f}"
        mia = evaluation["privacy"]["membership_inference"]
        if mia:
            line += f"; MIA AUC {mia['auc']:.3f}"
    click.echo(line)
    logger.info("synth vitals done in %.1f s", time.perf_counter() - start)
