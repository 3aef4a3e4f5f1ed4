"""Benchmark: synthetic table of 10k rows x 20 columns with the default generator (copula).

Builds a seeded mixed table (the simulated admissions table without its identifier, plus 12
correlated lab values and a binary outcome that depends on them), then times reading the CSV,
fitting, generating as many rows, and the evaluation report (when
``secured_bio.privacy.synthetic.evaluate`` is installed; against a held-out table of the same
size), and prints one JSON object. Target: fit + generate + report < 60 s on the 2-core machine.

    python benchmarks/synth.py [--rows 10000] [--method copula] [--seed 0] [--no-evaluate]

``--suite``: every method on real tables that ship with installed packages and on the demo
tables, several seeds each: rows split 70/30 (stratified on the outcome, by seed), the
generator fitted on the 70 % and as many rows drawn, scored on the 30 % with
:func:`~secured_bio.privacy.synthetic.evaluate.validation_scores` (TSTR/TRTR AUROC of a
HistGradientBoosting model, column similarity, distance-based membership AUC, exact copies),
fit and sample seconds.  Prints the runs and a summary (mean and range per table and
method).  Target: the default (``auto``) reaches >= 0.95 x TRTR on average over 5 seeds on
every real table with membership AUC <= 0.6.

    python benchmarks/synth.py --suite [--seeds 5] [--methods auto,copula,cart]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def simulate(path: Path, n: int, seed: int) -> None:
    """Write a seeded 20-column table: 7 clinical columns, 12 lab values and an outcome."""
    from secured_bio._csv import read_csv_strings
    from secured_bio.testing import simulate_clinical

    simulate_clinical(path, n_rows=n, seed=seed)
    table = read_csv_strings(path).drop(columns="patient_id")
    rng = np.random.default_rng(seed + 1)
    # the same loadings for every seed: train and holdout come from one population
    loadings = np.random.default_rng(12345).normal(0, 1, (12, 3))
    latent = rng.standard_normal((n, 3))
    age = table["age"].astype(float).to_numpy()
    for i in range(12):
        mix = latent @ loadings[i] + 0.02 * (age - 50) + rng.normal(0, 0.7, n)
        table[f"lab_{i:02d}"] = [f"{v:.2f}" for v in 10 + 3 * mix]
    logit = 2 * latent[:, 0] - 1.6 * latent[:, 1] + 0.03 * (age - 50)
    table["outcome"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int).astype(str)
    table.to_csv(path, index=False)


def _as_text(frame: Any) -> Any:
    """A table as the CLI reads it: every column as text, in its CSV spelling."""
    import io

    import pandas as pd

    return pd.read_csv(io.StringIO(frame.to_csv(index=False)), dtype=str,
                       keep_default_na=False)


def suite_tables() -> dict[str, tuple[Any, str, str]]:
    """Name -> (text table, outcome column, provenance) for ``--suite``."""
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

    from secured_bio._csv import read_csv_strings

    tables: dict[str, tuple[Any, str, str]] = {}
    bc = load_breast_cancer(as_frame=True).frame
    tables["breast_cancer"] = (_as_text(bc), "target", "real: Wisconsin diagnostic breast "
                               "cancer, 569 patients x 30 numeric + binary diagnosis "
                               "(scikit-learn)")
    db = load_diabetes(as_frame=True, scaled=False).frame
    db["target"] = (db["target"] > db["target"].median()).astype(int)
    tables["diabetes_binary"] = (_as_text(db), "target", "real: Efron et al. diabetes, 442 "
                                 "patients x 10 (sex categorical), outcome: one-year "
                                 "progression above the median (scikit-learn)")
    wine = load_wine(as_frame=True).frame
    tables["wine"] = (_as_text(wine), "target", "real, not clinical: 178 wines x 13, "
                      "3 classes (macro AUROC) (scikit-learn)")
    with tempfile.TemporaryDirectory() as tmp:
        simulate(Path(tmp) / "demo.csv", 1000, 0)
        tables["demo_labs_outcome"] = (read_csv_strings(Path(tmp) / "demo.csv"), "outcome",
                                       "demo: simulated admissions + 12 labs + outcome, 1000 "
                                       "rows (this script's table)")
    return tables


def run_suite(methods: list[str], seeds: int) -> dict[str, Any]:
    """Fit every method on every suite table and seed; return runs and a summary."""
    from sklearn.model_selection import train_test_split

    from secured_bio.privacy.synthetic.evaluate import validation_scores
    from secured_bio.privacy.synthetic.tabular import fit_synthesizer

    runs: list[dict[str, Any]] = []
    tables = suite_tables()
    for name, (table, target, _) in tables.items():
        for seed in range(seeds):
            train, hold = train_test_split(table, test_size=0.3, random_state=seed,
                                           stratify=table[target])
            for method in methods:
                extra: dict[str, Any] = {"epsilon": 1.0} if method == "mst" else {}
                if method in ("auto", "cart"):
                    extra["target"] = target
                t0 = time.perf_counter()
                synth = fit_synthesizer(train, method=method, seed=seed, **extra)
                t_fit = time.perf_counter() - t0
                t0 = time.perf_counter()
                out = synth.sample(len(train))
                t_sample = time.perf_counter() - t0
                fig = validation_scores(train, out, hold, target=target, seed=seed)
                runs.append({"table": name, "method": method, "seed": seed,
                             "chosen": synth.method, **fig, "fit_seconds": round(t_fit, 3),
                             "sample_seconds": round(t_sample, 3)})
    summary: dict[str, Any] = {}
    for name in tables:
        summary[name] = {}
        for method in methods:
            rs = [r for r in runs if r["table"] == name and r["method"] == method]
            ratio = np.array([r["utility_ratio"] for r in rs], dtype=float)
            mia = np.array([r["membership_auc"] for r in rs], dtype=float)
            summary[name][method] = {
                "tstr_over_trtr_mean": round(float(ratio.mean()), 3),
                "tstr_over_trtr_range": [round(float(ratio.min()), 3),
                                         round(float(ratio.max()), 3)],
                "trtr_auroc_mean": round(float(np.mean([r["trtr_auroc"] for r in rs])), 3),
                "column_similarity_mean": round(float(np.mean(
                    [r["column_similarity"] for r in rs])), 3),
                "membership_auc_mean": round(float(mia.mean()), 3),
                "membership_auc_max": round(float(mia.max()), 3),
                "exact_copy_share_max": round(float(max(r["exact_copy_share"] for r in rs)), 4),
                "fit_seconds_mean": round(float(np.mean([r["fit_seconds"] for r in rs])), 2),
                "sample_seconds_mean": round(float(np.mean([r["sample_seconds"] for r in rs])),
                                             2),
                "chosen": sorted({r["chosen"] for r in rs}),
            }
    real = [n for n, t in tables.items() if t[2].startswith("real")]
    target_met = all(summary[n]["auto"]["tstr_over_trtr_mean"] >= 0.95
                     and summary[n]["auto"]["membership_auc_max"] <= 0.6
                     for n in real) if "auto" in methods else None
    return {"benchmark": "synth_table_suite", "seeds": seeds, "methods": methods,
            "split": "70/30 stratified on the outcome, by seed",
            "tables": {n: t[2] for n, t in tables.items()},
            "target": "auto >= 0.95 x TRTR on average on every real table, membership AUC "
                      "<= 0.6", "target_met": target_met, "summary": summary, "runs": runs}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and return (and print) its JSON result."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--method", default="copula")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-evaluate", action="store_true")
    ap.add_argument("--suite", action="store_true",
                    help="every method on the real and demo tables (see the docstring)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--methods", default="auto,copula,cart")
    args = ap.parse_args(argv)
    if args.suite:
        doc = run_suite([m for m in args.methods.split(",") if m], args.seeds)
        print(json.dumps(doc, indent=2))
        return doc

    from secured_bio._csv import read_csv_strings
    from secured_bio.privacy.synthetic.tabular import fit_synthesizer

    with tempfile.TemporaryDirectory() as tmp:
        simulate(Path(tmp) / "train.csv", args.rows, args.seed)
        simulate(Path(tmp) / "holdout.csv", args.rows, args.seed + 100)
        t0 = time.perf_counter()
        real = read_csv_strings(Path(tmp) / "train.csv")
        holdout = read_csv_strings(Path(tmp) / "holdout.csv")
        t_read = time.perf_counter() - t0
    extra: dict[str, Any] = {"epsilon": 1.0} if args.method == "mst" else {}
    t0 = time.perf_counter()
    synth = fit_synthesizer(real, method=args.method, seed=args.seed, **extra)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = synth.sample(len(real))
    t_sample = time.perf_counter() - t0
    t0 = time.perf_counter()
    conditioned = synth.sample(1000, conditions=["age=5..10", "outcome=1"])
    t_cond = time.perf_counter() - t0
    evaluation: dict[str, Any] | None = None
    t_eval = 0.0
    if not args.no_evaluate and importlib.util.find_spec(
            "secured_bio.privacy.synthetic.evaluate") is not None:
        from secured_bio.privacy.synthetic.evaluate import evaluate_synthetic

        t0 = time.perf_counter()
        evaluation = evaluate_synthetic(real, out, holdout=holdout, target="outcome",
                                        seed=args.seed)
        t_eval = time.perf_counter() - t0
    copies = int(out.merge(real.drop_duplicates(), how="inner").shape[0])
    result: dict[str, Any] = {
        "benchmark": "synth_table", "method": args.method, "rows": len(real),
        "columns": real.shape[1], "kinds": {c.name: c.kind for c in synth.schema.columns},
        "seconds": {"read": round(t_read, 3), "fit": round(t_fit, 3),
                    "generate": round(t_sample, 3), "generate_1000_conditioned":
                    round(t_cond, 3), "evaluate": round(t_eval, 3),
                    "fit_generate_evaluate": round(t_fit + t_sample + t_eval, 3)},
        "target_seconds": 60,
        "within_target": t_fit + t_sample + t_eval < 60,
        "conditioned_rows_ok": bool((conditioned["age"].astype(int).between(5, 10)
                                     & (conditioned["outcome"] == "1")).all()),
        "exact_copies": copies, "exact_copy_fraction": copies / len(out),
        "evaluated": evaluation is not None,
    }
    if evaluation is not None:
        util = evaluation.get("utility") or {}
        priv = evaluation.get("privacy") or {}
        result["utility"] = {k: util.get(k) for k in ("tstr_auroc", "trtr_auroc", "ratio")
                             if k in util}
        mia = priv.get("membership_inference") or {}
        result["membership_inference_auc"] = mia.get("auc") if isinstance(mia, dict) else None
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
