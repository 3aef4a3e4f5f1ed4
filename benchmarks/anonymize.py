"""Benchmark: anonymize 100k rows x 8 quasi-identifiers at k=5, l=2 (distinct).

Compares secured_bio's default method (Mondrian with nearest-allowable, hierarchy-aware
cuts) against a plain Mondrian baseline (LeFevre et al. 2006: median cuts only) run on the
same seeded table in the same process, and prints one JSON object: time (search, our privacy
checks and pycanon's k/l re-check), information loss (NCP, discernibility, C_avg) and
whether the release satisfies k and l per pycanon.  Target: < 30 s for our method.

    python benchmarks/anonymize.py [--rows 100000] [--seed 0] [--no-pycanon]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from typing import Any

import numpy as np
import pandas as pd


def simulate(n: int, seed: int) -> pd.DataFrame:
    """A seeded table with 8 quasi-identifiers and a sensitive diagnosis (numpy only)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(0, 96, n)
    sex = rng.choice(["F", "M"], n)
    regions = rng.choice(np.arange(1, 96), n, p=np.r_[[5.0] * 5, np.ones(90)] / 115)
    postcode = [f"{r:02d}{c:03d}" for r, c in zip(regions, rng.integers(0, 40, n) * 10,
                                                  strict=True)]
    first = date(2024, 1, 1).toordinal()
    admission = [date.fromordinal(first + int(d)).isoformat() for d in rng.integers(0, 731, n)]
    height = np.clip(rng.normal(168, 10, n), 120, 210).round().astype(int)
    weight = np.clip(rng.normal(75, 15, n), 30, 180).round().astype(int)
    ethnicity = rng.choice(["White", "Black", "Asian", "Mixed", "Other", "Not stated"], n,
                           p=[0.7, 0.08, 0.08, 0.04, 0.04, 0.06])
    smoker = rng.choice(["never", "former", "current"], n, p=[0.5, 0.3, 0.2])
    dx_names = np.array(["asthma", "appendicitis", "pneumonia", "fracture", "pregnancy",
                         "diabetes", "heart_failure", "copd", "stroke", "depression"])
    band = np.digitize(age, [15, 45, 65])
    shift = rng.integers(0, 4, n)
    diagnosis = dx_names[(band * 2 + shift) % 10]
    return pd.DataFrame({
        "patient_id": [f"p{i:06d}" for i in range(n)], "age": age.astype(str), "sex": sex,
        "postcode": postcode, "admission_date": admission, "height_cm": height.astype(str),
        "weight_kg": weight.astype(str), "ethnicity": ethnicity, "smoker": smoker,
        "diagnosis": diagnosis,
    })


QI = ["age", "sex", "postcode", "admission_date", "height_cm", "weight_kg", "ethnicity",
      "smoker"]


def run(df: pd.DataFrame, method: str, pycanon: bool) -> dict[str, Any]:
    from secured_bio.privacy.anonymize import anonymize, verify_with_pycanon

    t0 = time.perf_counter()
    r = anonymize(df, qi=QI, sensitive="diagnosis", k=5, l=2, method=method,
                  drop=["patient_id"], verify=False)
    elapsed = time.perf_counter() - t0
    out: dict[str, Any] = {
        "seconds": round(elapsed, 2),
        "seconds_search": r.report["elapsed_s"]["search"],
        "ncp": r.report["utility"]["ncp"],
        "ncp_per_qi": r.report["utility"]["ncp_per_qi"],
        "discernibility": r.report["utility"]["discernibility"],
        "c_avg": r.report["utility"]["c_avg"],
        "n_classes": r.report["utility"]["n_classes"],
        "suppressed": r.report["rows"]["suppressed"],
        "achieved": r.report["achieved"]["ours"],
    }
    if pycanon:
        t1 = time.perf_counter()
        check = r.table[QI + ["diagnosis"]]
        out["pycanon"] = verify_with_pycanon(check, QI, "diagnosis", l_kind="distinct",
                                             t=False)
        out["pycanon_seconds"] = round(time.perf_counter() - t1, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-pycanon", action="store_true",
                    help="skip pycanon's re-check (about 1-2 ms per class)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    df = simulate(args.rows, args.seed)
    gen = time.perf_counter() - t0
    ours = run(df, "mondrian", not args.no_pycanon)
    plain = run(df, "plain-mondrian", not args.no_pycanon)
    result = {
        "benchmark": "anonymize_table", "rows": args.rows, "quasi_identifiers": len(QI),
        "k": 5, "l": 2, "seed": args.seed, "generate_seconds": round(gen, 2),
        "secured_bio_mondrian": ours, "plain_mondrian_baseline": plain,
        "ncp_reduction_vs_baseline": round(1 - float(ours["ncp"]) / float(plain["ncp"]), 4),
        "within_30s": float(ours["seconds"]) < 30.0,
    }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
