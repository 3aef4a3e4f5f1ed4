"""The Beacon membership attack against our Beacon's defences; prints JSON.

Cohorts: the hub's demo cohort (3 sites x 120 people x 600 variants, pooled) and, when
Debian's ``bio-eagle-examples`` is installed, the 1000 Genomes EUR panel it ships
(``/usr/share/doc/bio-eagle/examples/EUR_test.vcf.gz``: 379 people, 2,000 chr21 SNPs).  The
people are split at random in three equal parts: the Beacon's members, non-members (the
attack's negatives) and the attacker's reference panel (allele frequencies).

For each defence setting the attacker asks ``--queries`` questions per target (its
alternate alleles, rarest first, repeated when it has fewer) through the same release
function the hub uses (:func:`secured_bio.privacy.beacon.release_count`, with an in-memory
per-user budget), without HTTP; boolean answers are scored with Shringarpure & Bustamante's
LRT, count answers with von Thenen et al.'s.  Reported: power at 5 % false-positive rate
(threshold from the non-members' scores).

Usage::

    python benchmarks/beacon_attack.py [--queries 1000] [--seed 0] [--targets 120]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

EAGLE = Path("/usr/share/doc/bio-eagle/examples/EUR_test.vcf.gz")


def carriers(paths: list[Path]) -> np.ndarray:
    """Return people x variants carrier indicators (variants common to every file)."""
    import pysam

    blocks, keys = [], None
    for path in paths:
        rows: dict[tuple[Any, ...], np.ndarray] = {}
        with pysam.VariantFile(str(path)) as vf:
            for rec in vf:
                if not rec.alts or len(rec.alts) != 1:
                    continue
                gts = [s["GT"] for s in rec.samples.values()]
                rows[(rec.chrom, rec.pos, rec.ref, rec.alts[0])] = np.array(
                    [any(a is not None and a > 0 for a in g) for g in gts], dtype=np.int8)
        keys = list(rows) if keys is None else [k for k in keys if k in rows]
        blocks.append(rows)
    assert keys is not None
    return np.concatenate([np.stack([b[k] for k in keys], axis=1) for b in blocks], axis=0)


def scenarios() -> dict[str, Any]:
    """Return the defence settings measured."""
    from secured_bio.privacy.beacon import BeaconPolicy

    return {
        "none": BeaconPolicy(min_count=1, queries_per_day=None),
        "min_count_5": BeaconPolicy(min_count=5, queries_per_day=None),
        "noise_eps_1": BeaconPolicy(min_count=1, noise_epsilon=1.0, queries_per_day=None),
        "noise_eps_1_budget_eps_10": BeaconPolicy(min_count=1, noise_epsilon=1.0,
                                                  epsilon_per_day=10.0, queries_per_day=None),
        "budget_100_queries": BeaconPolicy(min_count=1, queries_per_day=100),
        "defaults": BeaconPolicy(),
        "defaults_plus_noise_eps_1_budget_eps_10": BeaconPolicy(
            noise_epsilon=1.0, epsilon_per_day=10.0),
    }


def attack(g: np.ndarray, *, queries: int, seed: int, targets: int) -> dict[str, Any]:
    """Split ``g`` and run every scenario in both answer modes."""
    from secured_bio.privacy.assess.beacon_attack import membership_power
    from secured_bio.privacy.beacon import QueryBudget, release_count

    rng = np.random.default_rng(seed)  # the split only; the Beacon's noise is secure
    perm = rng.permutation(g.shape[0])
    third = g.shape[0] // 3
    members, others, ref = (g[perm[:third]], g[perm[third:2 * third]],
                            g[perm[2 * third:3 * third]])
    counts = members.sum(axis=0)
    # the attacker's allele frequency from carrier frequency (HWE): p = 1 - (1 - f)^2
    carrier_freq = (ref.sum(axis=0) + 0.5) / (ref.shape[0] + 1)
    ref_af = 1 - np.sqrt(1 - np.clip(carrier_freq, 0, 0.9999))
    out: dict[str, Any] = {"people": int(g.shape[0]), "variants": int(g.shape[1]),
                           "beacon_members": int(third), "singletons_in_beacon": int(
                               (counts == 1).sum()), "results": {}}
    for name, policy in scenarios().items():
        for mode in ("boolean", "count"):
            def make_oracle(policy: Any = policy, mode: str = mode) -> Any:
                budget = QueryBudget(policy)

                def oracle(v: int) -> Any:
                    if not budget.allowed():
                        return None
                    budget.spend()
                    exists, c = release_count(int(counts[v]), policy=policy, granted=False)
                    return exists if mode == "boolean" else c
                return oracle

            t0 = time.perf_counter()
            r = membership_power(members, others, ref_af, make_oracle, n_beacon=third,
                                 n_queries=queries, mode=mode, max_targets=targets)
            r["seconds"] = round(time.perf_counter() - t0, 2)
            r["policy"] = policy.describe()
            out["results"][f"{name}/{mode}"] = r
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--targets", type=int, default=120, help="targets per set (max)")
    args = ap.parse_args(argv)
    from secured_bio.hub.demo_data import write_hub_demo_data

    report: dict[str, Any] = {"benchmark": "beacon_attack", "fpr": 0.05,
                              "queries": args.queries, "seed": args.seed, "cohorts": {}}
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_hub_demo_data(Path(tmp) / "demo")
        vcfs = [paths[s] / "genomics" / f"{s}.vcf.gz" for s in ("site1", "site2", "site3")]
        report["cohorts"]["demo"] = attack(carriers(vcfs), queries=args.queries,
                                           seed=args.seed, targets=args.targets)
    if EAGLE.is_file():
        report["cohorts"]["1000genomes_eur_chr21"] = attack(
            carriers([EAGLE]), queries=args.queries, seed=args.seed, targets=args.targets)
    else:
        report["cohorts"]["1000genomes_eur_chr21"] = {"skipped": f"{EAGLE} not found"}
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
