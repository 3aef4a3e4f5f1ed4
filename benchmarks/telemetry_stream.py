"""Benchmark: real-time deterioration scoring throughput (target >= 10,000 observations/s).

Simulates a ward (``simulate_vitals``: 1 site, 20 patients, 48 h, a round every 10 min,
~33k observations), trains the default gradient-boosting model on it, interleaves every
patient's observations by time as a monitor feed would, and measures

- ``library``: :func:`secured_bio.telemetry.stream.score_stream` over the lines in memory
  (and ``library_torch_mlp``: the same with the federation's MLP);
- ``cli``: ``secured-bio telemetry score --stream`` end to end, the lines piped to its stdin
  by a subprocess (process start, model load and JSON output included).

Prints one JSON object (observations/s, alerts, latency percentiles, the host's load
average: other processes on a small host lower the numbers).

    python benchmarks/telemetry_stream.py [--patients 20] [--hours 48] [--interval 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

_SCORE = ("from secured_bio.telemetry.model_cli import score; "
          "score(prog_name='secured-bio telemetry score')")


def main() -> None:
    from secured_bio.telemetry.features import read_patients, site_features
    from secured_bio.telemetry.model import save_model, train_model
    from secured_bio.telemetry.stream import score_stream
    from secured_bio.testing import simulate_vitals

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, default=20)
    ap.add_argument("--hours", type=int, default=48)
    ap.add_argument("--interval", type=int, default=10, help="minutes between rounds")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        c = simulate_vitals(d / "cohort", n_sites=1, patients_per_site=a.patients,
                            hours=a.hours, interval_minutes=a.interval, seed=a.seed)
        site = c.out_dir / c.sites[0]
        model = train_model(site_features(site, event_delay_hours=6.0), seed=a.seed, n_threads=1)
        save_model(model, d / "model")
        raw = pd.read_csv(c.vitals_paths[0], dtype={"patient_id": str, "time": str})
        raw["_t"] = pd.to_datetime(raw["time"], utc=True, format="ISO8601")
        raw = raw.sort_values("_t", kind="stable").drop(columns="_t")
        lines = [json.dumps(r) for r in raw.to_dict("records")]
        ages = read_patients(c.patients_paths[0])["age_years"].to_dict()

        lib = score_stream(lines, model, ages).as_dict()
        mlp_model = train_model(site_features(site, event_delay_hours=6.0), method="torch",
                                seed=a.seed, n_threads=1, epochs=5)
        lib_mlp = score_stream(lines, mlp_model, ages).as_dict()

        feed = d / "feed.jsonl"
        feed.write_text("\n".join(lines) + "\n", encoding="utf-8")
        t0 = time.perf_counter()
        with open(feed, "rb") as fin:
            proc = subprocess.run(
                [sys.executable, "-c", _SCORE, "--model", str(d / "model"), "--patients",
                 str(c.patients_paths[0]), "--stream"],
                stdin=fin, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        cli = json.loads(proc.stderr.strip().splitlines()[-1])

    print(json.dumps({
        "benchmark": "telemetry_stream",
        "observations": len(lines),
        "patients": a.patients,
        "model": model.method,
        "library": {"obs_per_s": lib["obs_per_s"], "alerts": lib["alerts"],
                    "latency_ms_median": lib["latency_ms_median"],
                    "latency_ms_p99": lib["latency_ms_p99"]},
        "library_torch_mlp": {"obs_per_s": lib_mlp["obs_per_s"],
                              "latency_ms_median": lib_mlp["latency_ms_median"]},
        "cli": {"obs_per_s_end_to_end": round(len(lines) / wall, 1),
                "obs_per_s_scoring_loop": cli["obs_per_s"], "wall_s": round(wall, 3),
                "alerts": cli["alerts"], "bad_lines": cli["bad_lines"],
                "latency_ms_median": cli["latency_ms_median"]},
        "target_obs_per_s": 10000,
        "load_average_1min": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }, indent=2))


if __name__ == "__main__":
    main()
