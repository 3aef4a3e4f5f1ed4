"""Benchmark: fit the vital-signs generator, sample 1,000 patients x 48 h, evaluate.

Simulates a seeded demo cohort (``--sites`` x ``--patients`` x 48 h, hourly rounds) as the
"real" data and a second one (other seed) as holdout, then times fitting
(:func:`secured_bio.telemetry.synthetic.fit_vitals_model`), sampling ``--n`` patients x
``--hours`` h, writing them (CSV + FHIR), and the evaluation report
(:func:`~secured_bio.telemetry.synthetic.evaluate_vitals`, on ``--eval-n`` synthetic patients
against the holdout), and prints one JSON object.

With ``--epsilon E`` the generator is fitted with (E, ``--delta``)-differential privacy
(:func:`secured_bio.telemetry.synthetic_dp.fit_vitals_model_dp`, patient level); the JSON then
also carries the fidelity summary and the DP accounting.  ``--repeats R`` refits R times
(fresh noise each time) and reports every run's utility plus their median.

    python benchmarks/synth_vitals.py [--sites 2] [--patients 30] [--n 1000] [--hours 48]
                                      [--eval-n 60] [--threads 1] [--seed 0]
                                      [--epsilon E] [--delta 1e-6] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _brief(rep: dict[str, Any]) -> dict[str, Any]:
    """Utility and a fidelity summary of one evaluation report."""
    import numpy as np

    pv = rep["fidelity"]["per_vital"].values()
    lag = [abs(e["lag1_autocorr_real"] - e["lag1_autocorr_synthetic"]) for e in pv
           if e["lag1_autocorr_real"] is not None and e["lag1_autocorr_synthetic"] is not None]
    shift = [abs(e["episode_shift_real"] - e["episode_shift_synthetic"]) for e in pv
             if e["episode_shift_real"] is not None and e["episode_shift_synthetic"] is not None]
    mia = rep["privacy"]["membership_inference"]
    return {"auroc_tstr": rep["utility"].get("auroc_tstr"),
            "auroc_trtr": rep["utility"].get("auroc_trtr"),
            "mean_ks_z": round(float(np.mean([e["ks_z"] for e in pv if "ks_z" in e])), 4),
            "mean_abs_lag1_diff": round(float(np.mean(lag)), 4) if lag else None,
            "mean_abs_episode_shift_diff": round(float(np.mean(shift)), 4) if shift else None,
            "corr_mean_abs_diff": round(rep["fidelity"]["correlation"]["mean_abs_difference"],
                                        4),
            "mia_auc": mia["auc"] if mia else None}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=2)
    ap.add_argument("--patients", type=int, default=30)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--hours", type=float, default=48.0)
    ap.add_argument("--eval-n", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epsilon", type=float, default=None,
                    help="fit with differential privacy at this epsilon (default: not DP)")
    ap.add_argument("--delta", type=float, default=1e-6)
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args(argv)

    from secured_bio.telemetry.synthetic import (
        evaluate_vitals,
        fit_vitals_model,
        read_cohort,
        write_synthetic_vitals,
    )
    from secured_bio.telemetry.synthetic_dp import fit_vitals_model_dp
    from secured_bio.testing import simulate_vitals

    def fit(tables: Any) -> Any:
        if a.epsilon is None:
            return fit_vitals_model(*tables, seed=a.seed)
        return fit_vitals_model_dp(*tables, epsilon=a.epsilon, delta=a.delta)

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        real = simulate_vitals(d / "real", n_sites=a.sites, patients_per_site=a.patients,
                               hours=48, seed=a.seed)
        hold = simulate_vitals(d / "holdout", n_sites=a.sites, patients_per_site=a.patients,
                               hours=48, seed=a.seed + 1000)
        t0 = time.perf_counter()
        tables = read_cohort(real.out_dir)
        model = fit(tables)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        big = model.sample(a.n, hours=a.hours, seed=a.seed)
        sample_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_synthetic_vitals(big, d / "synth", fhir=True)
        write_s = time.perf_counter() - t0
        small = model.sample(a.eval_n, hours=48, seed=a.seed + 1)
        t0 = time.perf_counter()
        rep = evaluate_vitals(tables, small, holdout=hold.out_dir, seed=a.seed,
                              n_threads=a.threads,
                              differential_privacy=model.differential_privacy)
        eval_s = time.perf_counter() - t0
        runs = [_brief(rep)]
        for _ in range(a.repeats - 1):
            m = fit(tables)
            runs.append(_brief(evaluate_vitals(
                tables, m.sample(a.eval_n, hours=48, seed=a.seed + 1), holdout=hold.out_dir,
                seed=a.seed, n_threads=a.threads)))
    u, mia = rep["utility"], rep["privacy"]["membership_inference"]
    dp = model.differential_privacy
    json.dump({
        "benchmark": "synth_vitals",
        "real_patients": model.n_patients, "real_measurements": model.n_measurements,
        "fit_seconds": round(fit_s, 3),
        "sample_patients": a.n, "sample_hours": a.hours,
        "sample_measurements": len(big.vitals), "sample_seconds": round(sample_s, 3),
        "write_csv_fhir_seconds": round(write_s, 3),
        "evaluate_synthetic_patients": a.eval_n, "evaluate_seconds": round(eval_s, 3),
        "auroc_trtr": u.get("auroc_trtr"), "auroc_tstr": u.get("auroc_tstr"),
        "mia_auc": mia["auc"] if mia else None,
        "exact_copies": rep["privacy"]["exact_copies"],
        "epsilon": a.epsilon, "delta": a.delta if a.epsilon is not None else None,
        "dp_groups": ({k: {"rho": round(g["rho"], 5), "sigma": round(g["sigma"], 3)}
                       for k, g in dp["groups"].items()} if dp else None),
        "runs": runs,
        "median_auroc_tstr": statistics.median(
            r["auroc_tstr"] for r in runs if r["auroc_tstr"] is not None)
        if any(r["auroc_tstr"] is not None for r in runs) else None,
    }, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
