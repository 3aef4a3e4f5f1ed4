"""Benchmark secure aggregation (secure_sum); prints JSON on stdout.

For 2 and 3 parties (separate OS processes over gloo on loopback, one torch thread each) and
1e3, 1e5, 1e6 float64 values per party, measured in the same run:

* ``secure_sum``: our protocol (header round + one masked round), time and bytes per party;
* ``plaintext_numpy_sum``: the pooled reference, numpy adding the parties' arrays in one
  process (what a trusted aggregator would do);
* ``torch_all_reduce``: ``torch.distributed.all_reduce`` of the same float64 tensor over the same
  gloo process group (no privacy: the transport cost floor);
* ``crypten_sum``: CrypTen's own route (``crypten.cryptensor(x, src=rank)`` per party, add,
  ``get_plain_text``), whose masks we do not trust (see ``secured_bio.privacy.smpc.protocols``).

Times are medians over ``--repeats`` runs, of the slowest party; bytes are per party (the
maximum over parties).  Usage::

    python benchmarks/smpc.py                 # ~1 min on 2 cores
    python benchmarks/smpc.py --sizes 1000 100000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Any

import numpy as np

from secured_bio.privacy.smpc import run_parties


def _party(arg: dict[str, Any]) -> dict[str, Any]:
    import crypten
    import crypten.communicator as comm
    import torch
    import torch.distributed as dist

    from secured_bio.privacy.smpc import current_party, measure, secure_sum

    me = current_party()
    group = comm.get().main_group
    secure_sum(np.zeros(1))  # key agreement, once per session: not part of the timings
    out: dict[str, Any] = {}
    for n in arg["sizes"]:
        x = np.random.default_rng([arg["seed"], me.rank, n]).normal(0.0, 50.0, size=n)
        rows: dict[str, list[dict[str, Any]]] = {"secure_sum": [], "torch_all_reduce": [],
                                                 "crypten_sum": []}
        for _ in range(arg["repeats"]):
            comm.get().barrier()
            with measure() as st:
                total = secure_sum(x)
            rows["secure_sum"].append(st.as_dict())

            t = torch.from_numpy(x.copy())
            comm.get().barrier()
            with measure() as st:
                dist.all_reduce(t, group=group)
            rows["torch_all_reduce"].append(st.as_dict())

            comm.get().barrier()
            with measure() as st:
                shares = [crypten.cryptensor(torch.from_numpy(x) if src == me.rank
                                             else torch.empty(n, dtype=torch.float64), src=src)
                          for src in range(me.world_size)]
                acc = shares[0]
                for s in shares[1:]:
                    acc = acc + s
                crypten_total = acc.get_plain_text()
            rows["crypten_sum"].append(st.as_dict())
        out[str(n)] = {
            "rows": rows,
            "secure_sum_result": total,
            "all_reduce_result": t.numpy(),
            "crypten_result": crypten_total.double().numpy(),
        }
    return out


def _median_row(per_party: list[list[dict[str, Any]]]) -> dict[str, Any]:
    repeats = len(per_party[0])
    slowest = [max(p[i]["seconds"] for p in per_party) for i in range(repeats)]
    return {
        "seconds": statistics.median(slowest),
        "bytes_sent_per_party": max(p[0]["bytes_sent"] for p in per_party),
        "bytes_received_per_party": max(p[0]["bytes_received"] for p in per_party),
        "rounds": per_party[0][0]["rounds"],
    }


def bench(n_parties: int, sizes: list[int], repeats: int, seed: int) -> list[dict[str, Any]]:
    arg = {"sizes": sizes, "repeats": repeats, "seed": seed}
    t0 = time.perf_counter()
    outs = run_parties(_party, [arg] * n_parties, timeout_s=120, torch_threads=1)
    session_s = time.perf_counter() - t0
    results = []
    for n in sizes:
        xs = [np.random.default_rng([seed, r, n]).normal(0.0, 50.0, size=n)
              for r in range(n_parties)]
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            plain = np.sum(xs, axis=0)
            times.append(time.perf_counter() - t)
        per = [o[str(n)] for o in outs]
        entry: dict[str, Any] = {"parties": n_parties, "n_values": n}
        for name in ("secure_sum", "torch_all_reduce", "crypten_sum"):
            entry[name] = _median_row([p["rows"][name] for p in per])
        entry["plaintext_numpy_sum"] = {"seconds": statistics.median(times)}
        entry["secure_sum"]["max_abs_error"] = float(
            max(np.abs(p["secure_sum_result"] - plain).max() for p in per))
        entry["crypten_sum"]["max_abs_error"] = float(
            max(np.abs(p["crypten_result"] - plain).max() for p in per))
        entry["ratio_secure_sum_to_all_reduce"] = (
            entry["secure_sum"]["seconds"] / entry["torch_all_reduce"]["seconds"])
        results.append(entry)
    results.append({"parties": n_parties, "session_seconds_incl_process_start": session_s})
    return results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000, 1_000_000])
    ap.add_argument("--parties", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    results = []
    for n_parties in args.parties:
        results.extend(bench(n_parties, args.sizes, args.repeats, args.seed))
    report = {
        "benchmark": "secured_bio.privacy.smpc.secure_sum",
        "format_version": 1,
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0],
                    "cpu_count": os.cpu_count(), "torch_threads_per_party": 1,
                    "transport": "gloo over loopback TCP"},
        "results": results,
    }
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
