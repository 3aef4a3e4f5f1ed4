"""Benchmark: synthetic table of 10k rows x 20 columns with the default generator (copula).

Builds a seeded mixed table (the simulated admissions table without its identifier, plus 12
correlated lab values and a binary outcome that depends on them), then times reading the CSV,
fitting, generating as many rows, and the evaluation report (when
``secured_bio.privacy.synthetic.evaluate`` is installed; against a held-out table of the same
size), and prints one JSON object. Target: fit + generate + report < 60 s on the 2-core machine.

    python benchmarks/synth.py [--rows 10000] [--method copula] [--seed 0] [--no-evaluate]
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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and return (and print) its JSON result."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--method", default="copula")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-evaluate", action="store_true")
    args = ap.parse_args(argv)

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
