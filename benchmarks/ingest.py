"""Benchmark VCF ingest against ``plink2 --vcf X --make-pgen``; prints JSON on stdout.

Both tools read the same bgzipped VCF in the same run, each in its own child process, so
that peak memory (GNU time's maximum resident set size) belongs to one tool only.
For ours two times are given:

- ``ours_ingest_s``: ``ingest_vcf`` alone, timed inside the child (library imports excluded);
- ``ours_cli_s``: the whole ``secured-bio genomics ingest`` command (interpreter start-up and
  imports of numpy, zarr, pysam included), comparable with plink2's process wall time.

Sizes: 3 sites x 200 samples x 2,000 variants (msprime demo cohort, each site ingested
separately; times are summed over sites, peak memory is the largest site) and one file of
2,000 samples x 20,000 variants (HWE genotypes with ~0.5 % missing calls, written with numpy
because msprime takes minutes at that size).  The best of ``--repeats`` runs is reported.

Usage::

    python benchmarks/ingest.py                # both sizes (~1 min)
    python benchmarks/ingest.py --small-only   # 3 x 200 x 2,000 only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

_CHILD = """
import json, sys, time
import pysam, zarr  # library imports are not part of the timed ingest
from secured_bio.genomics import ingest_vcf
t0 = time.perf_counter()
r = ingest_vcf(sys.argv[1], sys.argv[2], progress=False)
print(json.dumps({"ingest_s": time.perf_counter() - t0, "variants": r.n_variants,
                  "samples": r.n_samples}))
"""


def _run_measured(cmd: list[str], env: dict[str, str] | None = None
                  ) -> tuple[float, float, str]:
    """Run a command; return (wall s, peak RSS MiB of that command, stdout).

    Peak RSS comes from GNU time (``/usr/bin/time -f %M``), which forks the command from its
    own small process.  (``os.wait4`` on a child of this Python process would report at
    least this process's RSS: Linux carries the pre-exec peak across ``execve``.)
    """
    gnu_time = shutil.which("time", path="/usr/bin:/bin")
    with tempfile.TemporaryDirectory() as d:
        rss_file = Path(d) / "rss"
        full = [gnu_time, "-f", "%M", "-o", str(rss_file), *cmd] if gnu_time else cmd
        t0 = time.perf_counter()
        proc = subprocess.run(full, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{Path(cmd[0]).name} failed: {proc.stderr[-2000:]}")
        rss = float(rss_file.read_text().split()[-1]) / 1024 if gnu_time else float("nan")
    return wall, rss, proc.stdout


def _write_random_vcf(path: Path, n_samples: int, n_variants: int, seed: int) -> None:
    """HWE diploid genotypes, ~0.5 % missing, bgzipped and tabix-indexed."""
    import pysam

    rng = np.random.default_rng(seed)
    lut = np.array(["0/0", "0/1", "1/1", "./."])
    plain = path.with_suffix("")
    with open(plain, "w") as fh:
        fh.write("##fileformat=VCFv4.2\n##contig=<ID=1>\n"
                 '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
                 "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t"
                 + "\t".join(f"s{i:05d}" for i in range(n_samples)) + "\n")
        for start in range(0, n_variants, 1000):
            m = min(1000, n_variants - start)
            p = rng.uniform(0.01, 0.5, m)[:, None]
            u = rng.random((m, n_samples))
            g = (u < p * p).astype(np.int8) + (u < p * p + 2 * p * (1 - p))
            g = np.where(rng.random((m, n_samples)) < 0.005, 3, g)
            for i in range(m):
                pos = 1000 + 50 * (start + i)
                fh.write(f"1\t{pos}\t1:{pos}:A:G\tA\tG\t.\tPASS\t.\tGT\t")
                fh.write("\t".join(lut[g[i]].tolist()) + "\n")
    pysam.tabix_compress(str(plain), str(path), force=True)
    pysam.tabix_index(str(path), preset="vcf", force=True)
    plain.unlink()


def _size_mb(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 1e6
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def bench_files(name: str, vcfs: list[Path], work: Path, repeats: int) -> dict:
    plink2 = shutil.which("plink2")
    env = dict(os.environ, SECURED_BIO_PROGRESS="0")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    best: dict[str, float] = {}
    rss: dict[str, float] = {}
    sizes = {"store_mb": 0.0, "pgen_mb": 0.0}
    n_samples = n_variants = 0
    for k, vcf in enumerate(vcfs):
        per: dict[str, list[float]] = {"ingest": [], "cli": [], "plink2": []}
        for rep in range(repeats):
            out = work / f"{name}_{k}_{rep}.zarr"
            wall, peak, text = _run_measured(
                [sys.executable, "-c", _CHILD, str(vcf), str(out)], env=env)
            info = json.loads(text.strip().splitlines()[-1])
            n_samples, n_variants = info["samples"], info["variants"]
            per["ingest"].append(info["ingest_s"])
            rss["ours"] = max(rss.get("ours", 0.0), peak)
            if k == 0 and rep == 0:
                sizes["store_mb"] = _size_mb(out)
            out_cli = work / f"{name}_{k}_{rep}_cli.zarr"
            wall, peak, _ = _run_measured(
                [str(BIN / "secured-bio"), "genomics", "ingest", "--vcf", str(vcf), "--out",
                 str(out_cli)], env=env)
            per["cli"].append(wall)
            rss["ours_cli"] = max(rss.get("ours_cli", 0.0), peak)
            if plink2:
                prefix = work / f"{name}_{k}_{rep}_plink2"
                wall, peak, _ = _run_measured(
                    [plink2, "--vcf", str(vcf), "--make-pgen", "--out", str(prefix)])
                per["plink2"].append(wall)
                rss["plink2"] = max(rss.get("plink2", 0.0), peak)
                if k == 0 and rep == 0:
                    sizes["pgen_mb"] = _size_mb(prefix.with_suffix(".pgen"))
            for p in work.glob(f"{name}_{k}_{rep}*"):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        for key, values in per.items():
            if values:
                best[key] = best.get(key, 0.0) + min(values)
    result: dict = {
        "case": name, "files": len(vcfs), "samples_per_file": n_samples,
        "variants": n_variants, "vcf_gz_mb": round(sum(_size_mb(v) for v in vcfs), 2),
        "ours_ingest_s": round(best["ingest"], 3),
        "ours_cli_s": round(best["cli"], 3),
        "ours_peak_rss_mb": round(rss["ours"], 1),
        "ours_cli_peak_rss_mb": round(rss["ours_cli"], 1),
        "store_mb_per_file": round(sizes["store_mb"], 2),
    }
    if "plink2" in best:
        result.update({
            "plink2_make_pgen_s": round(best["plink2"], 3),
            "plink2_peak_rss_mb": round(rss["plink2"], 1),
            "pgen_mb_per_file": round(sizes["pgen_mb"], 2),
            "ratio_ingest_over_plink2": round(best["ingest"] / best["plink2"], 2),
            "ratio_cli_over_plink2": round(best["cli"] / best["plink2"], 2),
        })
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small-only", action="store_true", help="only 3 x 200 x 2,000")
    ap.add_argument("--repeats", type=int, default=3, help="runs per tool (best is kept)")
    args = ap.parse_args()
    from secured_bio.testing import simulate_genotypes

    results: dict = {
        "benchmark": "ingest", "python": sys.version.split()[0],
        "cpus": os.cpu_count(), "machine": platform.machine(),
        "plink2": shutil.which("plink2"), "cases": [],
    }
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        cohort = simulate_genotypes(work / "small", n_sites=3, samples_per_site=200,
                                    n_variants=2000, seed=0)
        results["cases"].append(bench_files("3x200x2000", list(cohort.vcf_paths), work,
                                            args.repeats))
        if not args.small_only:
            big = work / "big.vcf.gz"
            _write_random_vcf(big, 2000, 20_000, seed=1)
            results["cases"].append(bench_files("2000x20000", [big], work, args.repeats))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
