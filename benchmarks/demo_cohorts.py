"""Benchmark the demo-cohort simulators; prints JSON on stdout.

For genotypes the reference is the plain msprime/tskit route measured in the same run:
``sim_ancestry`` + ``sim_mutations`` + tskit's own ``write_vcf`` + bgzip + tabix, for the same
number of people, without our filtering, phenotypes or per-site split.  The ratio
``ours / reference`` says what our extras (MAF filter, per-site VCFs, phenotypes) cost.

Usage::

    python benchmarks/demo_cohorts.py                 # small sizes (~1 min)
    python benchmarks/demo_cohorts.py --large         # adds 30k people x 50k SNPs
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from secured_bio.testing import (
    simulate_clinical,
    simulate_genotypes,
    simulate_imaging,
    simulate_vitals,
)


def _timed(fn, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def _reference_msprime_vcf(out: Path, n_people: int, n_variants: int, seed: int) -> int:
    """msprime + tskit write_vcf + bgzip + tabix: the reference route."""
    import msprime
    import pysam

    seq_len = 2_000 * n_variants  # about 1 biallelic site per 2 kb at Ne=1e4, mu=1e-8 ... tuned
    ts = msprime.sim_ancestry(
        samples=n_people, population_size=10_000, ploidy=2, sequence_length=seq_len,
        recombination_rate=1e-8, random_seed=seed,
    )
    ts = msprime.sim_mutations(ts, rate=1e-8, random_seed=seed, discrete_genome=True)
    plain = out / "ref.vcf"
    with open(plain, "w") as fh:
        ts.write_vcf(fh, allow_position_zero=True)
    pysam.tabix_compress(str(plain), str(out / "ref.vcf.gz"), force=True)
    pysam.tabix_index(str(out / "ref.vcf.gz"), preset="vcf", force=True)
    return int(ts.num_sites)


def bench_genotypes(tmp: Path, n_sites: int, per_site: int, n_variants: int) -> dict:
    ours = _timed(
        simulate_genotypes, tmp / f"ours_{per_site}_{n_variants}", n_sites=n_sites,
        samples_per_site=per_site, n_variants=n_variants, seed=1,
    )
    t0 = time.perf_counter()
    ref_sites = _reference_msprime_vcf(tmp, n_sites * per_site, n_variants, seed=1)
    ref = time.perf_counter() - t0
    return {
        "people": n_sites * per_site, "variants": n_variants, "sites": n_sites,
        "ours_s": round(ours, 2), "reference_msprime_tskit_vcf_s": round(ref, 2),
        "reference_variants": ref_sites, "ratio_ours_over_reference": round(ours / ref, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--large", action="store_true", help="also 30k people x 50k SNPs")
    args = ap.parse_args()
    results: dict = {"benchmark": "demo_cohorts", "python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        sizes = [(3, 200, 2_000), (3, 2_000, 20_000)]
        if args.large:
            sizes.append((3, 10_000, 50_000))
        results["genotypes"] = [bench_genotypes(tmp, *s) for s in sizes]
        results["imaging_fmri_3x8_s"] = round(_timed(simulate_imaging, tmp / "img", seed=1), 2)
        results["imaging_fus_3x8_s"] = round(
            _timed(simulate_imaging, tmp / "fus", modality="fus", seed=1), 2
        )
        results["vitals_3x10x48h_s"] = round(_timed(simulate_vitals, tmp / "vit", seed=1), 2)
        results["clinical_100k_rows_s"] = round(
            _timed(simulate_clinical, tmp / "clin.csv", n_rows=100_000, seed=1), 2
        )
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
