"""Benchmark ``secured-bio gwas run`` against plink2/plink1.9 on the same data; prints JSON.

One msprime cohort (one VCF, ``--people`` x ``--snps``, 0.5 % missing calls, ~2 % missing
phenotypes, sex and age covariates) is simulated, then every tool runs as its own process,
timed in the same run on the same machine (wall time and peak RSS from ``wait4``):

- ours, end to end: ``secured-bio gwas run --vcf`` (VCF ingest + test + all outputs);
- ours, analysis only: ``secured-bio gwas run --zarr`` on a store ingested beforehand
  (``ours_store_read_dosage`` times reading every dosage chunk from that store alone);
- plink2: ``--make-pgen`` then ``--glm omit-ref hide-covar [no-firth]`` (linear, logistic);
- plink1.9: ``--make-bed`` then ``--assoc`` / ``--model`` (allelic, trend; plink2 has no
  such tests).

Reported: seconds and peak MiB of each step, ``ratio_end_to_end`` = ours / (reference
conversion + test) and ``ratio_analysis`` = ours on zarr / reference test alone.
``--threads`` sets plink's thread count and our BLAS threads (default 2).

Usage::

    python benchmarks/gwas_plaintext.py                     # 3,000 people x 10k SNPs
    python benchmarks/gwas_plaintext.py --people 6000 --snps 20000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd


def _timed(cmd: list[str], *, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd``; return wall seconds and the process's peak RSS (MiB).

    The peak comes from GNU time (``/usr/bin/time -f %M``): ``wait4`` on a child forked
    from this Python process would count the parent's pages copied into the child.
    """
    gnu_time = shutil.which("time", path="/usr/bin:/bin")
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        full = [gnu_time, "-f", "%M", "-o", rss.name, *cmd] if gnu_time else cmd
        t0 = time.perf_counter()
        proc = subprocess.run(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env=env, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[:3]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        text = rss.read().strip().splitlines()
    peak = round(int(text[-1]) / 1024, 1) if gnu_time and text else None
    return {"s": round(wall, 3), "peak_mib": peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=3000)
    ap.add_argument("--snps", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tests", default="linear,logistic,allelic,trend")
    ap.add_argument("--data", type=Path,
                    help="reuse a cohort folder written by simulate_genotypes(n_sites=1)")
    args = ap.parse_args()
    for tool in ("plink2", "plink1.9"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not on PATH (make sysdeps)")

    from secured_bio.testing import simulate_genotypes

    env = dict(os.environ, SECURED_BIO_PROGRESS="0", OMP_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    ours_cmd = [sys.executable, "-m", "secured_bio", "-q", "gwas", "run"]
    threads = ["--threads", str(args.threads)]
    out: dict = {"benchmark": "gwas_plaintext", "people": args.people, "snps": args.snps,
                 "threads": args.threads, "machine": {"cpus": os.cpu_count()}, "tests": {}}
    with tempfile.TemporaryDirectory(prefix="bench_gwas_") as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        if args.data is None:
            c = simulate_genotypes(tmp / "data", n_sites=1, samples_per_site=args.people,
                                   n_variants=args.snps, n_causal=10, seed=args.seed)
            out["simulate_s"] = round(time.perf_counter() - t0, 2)
            vcf, pheno, covar_path = str(c.vcf_paths[0]), c.pheno_path, c.covar_path
        else:
            vcf = str(args.data / "site1.vcf.gz")
            pheno, covar_path = args.data / "pheno.tsv", args.data / "covar.tsv"
            params = json.loads((args.data / "truth.json").read_text())["parameters"]
            out["people"] = params["samples_per_site"] * params["n_sites"]
            out["snps"] = params["n_variants"]
            out["data"] = str(args.data)
        p19 = tmp / "p19.pheno"
        ph = pd.read_csv(pheno, sep="\t", dtype=str, keep_default_na=False)
        ph = ph.rename(columns={"#IID": "IID"})
        ph.insert(0, "FID", "0")
        ph.replace("NA", "-9").to_csv(p19, sep="\t", index=False)

        ingest = _timed([sys.executable, "-c",
                         "import sys; from secured_bio.genomics.ingest import ingest_vcf; "
                         "ingest_vcf(sys.argv[1], sys.argv[2], progress=False)",
                         vcf, str(tmp / "g.zarr")], env=env)
        # The floor of every "ours" run: reading all dosages from the store once.
        read = _timed([sys.executable, "-c",
                       "import sys; from secured_bio.genomics.store import open_genotypes; "
                       "s = open_genotypes(sys.argv[1]); "
                       "[None for _ in s.iter_dosage(chunk_size=1000)]",
                       str(tmp / "g.zarr")], env=env)
        pgen = _timed(["plink2", "--vcf", vcf, "--make-pgen", "--out", str(tmp / "pg"),
                       *threads])
        bed = _timed(["plink1.9", "--vcf", vcf, "--const-fid", "0", "--keep-allele-order",
                      "--make-bed", "--out", str(tmp / "bed"), *threads])
        out["convert"] = {"ours_ingest_zarr": ingest, "ours_store_read_dosage": read,
                          "plink2_make_pgen": pgen, "plink1.9_make_bed": bed}
        for test in args.tests.split(","):
            binary = test != "linear"
            pheno_name = "case" if binary else "quant"
            covar = ["--covar", str(covar_path)] if test in ("linear", "logistic") else []
            common = ["--pheno", str(pheno), "--pheno-name", pheno_name, "--test",
                      test, *covar]
            end_to_end = _timed([*ours_cmd, "--vcf", vcf, *common, "--out",
                                 str(tmp / "ours_vcf")], env=env)
            analysis = _timed([*ours_cmd, "--zarr", str(tmp / "g.zarr"), *common, "--out",
                               str(tmp / "ours_zarr")], env=env)
            if test in ("linear", "logistic"):
                ref = _timed(["plink2", "--pfile", str(tmp / "pg"), "--pheno",
                              str(pheno), "--pheno-name", pheno_name, *covar, "--glm",
                              "omit-ref", "hide-covar", *(["no-firth"] if binary else []),
                              "--out", str(tmp / "ref"), *threads])
                ref_name, conv = "plink2 --glm", pgen
            else:
                ref = _timed(["plink1.9", "--bfile", str(tmp / "bed"), "--pheno", str(p19),
                              "--pheno-name", "case", "--allow-no-sex", "--keep-allele-order",
                              "--assoc" if test == "allelic" else "--model", "--out",
                              str(tmp / "ref"), *threads])
                ref_name, conv = "plink1.9 " + ("--assoc" if test == "allelic" else
                                                "--model"), bed
            out["tests"][test] = {
                "ours_end_to_end": end_to_end,
                "ours_analysis_on_zarr": analysis,
                "reference": ref_name,
                "reference_test": ref,
                "ratio_end_to_end": round(end_to_end["s"] / (conv["s"] + ref["s"]), 2),
                "ratio_analysis": round(analysis["s"] / ref["s"], 2),
            }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
