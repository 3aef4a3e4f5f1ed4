"""Benchmark: fit the vital-signs generator, sample 1,000 patients x 48 h, evaluate.

Simulates a seeded demo cohort (``--sites`` x ``--patients`` x 48 h, hourly rounds) as the
"real" data and a second one (other seed) as holdout, then times fitting
(:func:`secured_bio.telemetry.synthetic.fit_vitals_model`), sampling ``--n`` patients x
``--hours`` h, writing them (CSV + FHIR), and the evaluation report
(:func:`~secured_bio.telemetry.synthetic.evaluate_vitals`, on ``--eval-n`` synthetic patients
against the holdout), and prints one JSON object.

    python benchmarks/synth_vitals.py [--sites 2] [--patients 30] [--n 1000] [--hours 48]
                                      [--eval-n 60] [--threads 1] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


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
    a = ap.parse_args(argv)

    from secured_bio.telemetry.synthetic import (
        evaluate_vitals,
        fit_vitals_model,
        read_cohort,
        write_synthetic_vitals,
    )
    from secured_bio.testing import simulate_vitals

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        real = simulate_vitals(d / "real", n_sites=a.sites, patients_per_site=a.patients,
                               hours=48, seed=a.seed)
        hold = simulate_vitals(d / "holdout", n_sites=a.sites, patients_per_site=a.patients,
                               hours=48, seed=a.seed + 1000)
        t0 = time.perf_counter()
        tables = read_cohort(real.out_dir)
        model = fit_vitals_model(*tables, seed=a.seed)
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
                              n_threads=a.threads)
        eval_s = time.perf_counter() - t0
    u, mia = rep["utility"], rep["privacy"]["membership_inference"]
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
    }, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
