"""Benchmark ``secured-bio gwas secure`` (3 sites) against pooled plink2; prints JSON.

One msprime cohort of ``--sites`` x ``--people`` x ``--snps`` (0.5 % missing calls, ~2 %
missing phenotypes, sex and age covariates) is simulated once and cached (``--cache``);
the scaling series takes the first N samples of every site (``bcftools view``).  For each N
and test, in the same run on the same machine:

- plink2 on the pooled cohort (the sites' VCFs merged with ``bcftools merge``, not timed):
  ``--make-pgen`` then ``--glm omit-ref hide-covar [no-firth]`` (wall time and peak RSS
  from GNU time);
- ours: ``secured-bio gwas secure`` with one site per VCF, each site a process that ingests
  its own VCF and runs the secure protocol over loopback TCP.  Reported per site from the
  run's JSON summary: seconds (ingest + analysis), ingest seconds, peak RSS of the site
  process (torch and CrypTen included, see ``party_baseline_rss_mib``), bytes sent and
  rounds; and the wall time of the whole command (process start-up and imports included).

Ratios: ``ratio_end_to_end`` = slowest site's ingest + secure analysis / plink2
(make-pgen + glm); ``ratio_wall`` = the whole command / plink2; ``ratio_analysis`` =
slowest site's analysis (without ingest) / plink2 --glm alone.  All sites share this
machine's cores (``--threads`` BLAS threads each; plink2 gets the same count), so the
per-site times are pessimistic next to one host per site.

``summary`` (per test, largest N) adds the scaling in N: seconds, seconds per 1,000 people
and peak RSS per N, a least-squares line through (people, seconds) (the intercept is the
fixed cost: imports, connection, phenotype files) and ``peak_rss_growth_mib`` (flat memory:
the growth of the largest site's peak over the series).  ``targets`` checks the issue's
acceptance bounds that this size covers: end to end <= 4x plink2 (default size),
analysis <= 2x plink2 --glm (``--large``), <= 2 GiB per site (any size).

Usage::

    python benchmarks/gwas.py --quick     # 3 x 300 x 2,000 SNPs, series 100/200/300
    python benchmarks/gwas.py             # 3 x 2,000 x 20,000 SNPs, series 500/1000/2000
    python benchmarks/gwas.py --large     # 3 x 10,000 x 50,000 SNPs, tiled from the default
                                          # cohort (an msprime cohort that size takes hours)
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

from gwas_plaintext import _timed  # same folder: wall seconds and peak RSS via GNU time

PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"people": 300, "snps": 2_000, "series": [100, 200, 300]},
    "default": {"people": 2_000, "snps": 20_000, "series": [500, 1_000, 2_000]},
    # The default cohort tiled: samples copied 5x (renamed), variants 2.5x (new contigs).
    "large": {"people": 10_000, "snps": 50_000, "series": [5_000, 10_000],
              "tile_from": (2_000, 20_000)},
}


def _cohort(cache: Path, sites: int, people: int, snps: int, seed: int) -> Path:
    from secured_bio.testing import simulate_genotypes

    d = cache / f"cohort_{sites}x{people}x{snps}_s{seed}"
    if not (d / "truth.json").is_file():
        simulate_genotypes(d, n_sites=sites, samples_per_site=people, n_variants=snps,
                           n_causal=10, seed=seed)
    return d


def _tiled(base: Path, cache: Path, sites: int, people: int, snps: int) -> Path:
    """A larger cohort made of copies of ``base`` (for timing and memory only).

    Every site's samples are repeated (``<id>_c<k>``, same genotypes, phenotypes and
    covariates) up to ``people`` per site, and its variants repeated on contigs
    ``1``, ``2``... (same positions) up to ``snps``.  Simulating the same size with msprime
    takes hours; the statistics of a tiled cohort are meaningless, the work is not.
    """
    import gzip

    params = json.loads((base / "truth.json").read_text())["parameters"]
    base_people, base_snps = params["samples_per_site"], params["n_variants"]
    reps = -(-people // base_people)
    d = cache / f"tiled_{sites}x{people}x{snps}_from_{base.name}"
    if (d / "done").is_file():
        return d
    d.mkdir(parents=True, exist_ok=True)
    for name in ("pheno.tsv", "covar.tsv"):
        lines = (base / name).read_text().splitlines()
        rows = [ln.split("\t", 1) for ln in lines[1:]]
        out = [lines[0]] + [f"{i}_c{k}\t{rest}" for k in range(reps) for i, rest in rows]
        (d / name).write_text("\n".join(out) + "\n")
    contigs = -(-snps // base_snps)
    for i in range(1, sites + 1):
        with gzip.open(base / f"site{i}.vcf.gz", "rt") as fh:
            lines = fh.read().splitlines()
        header = [ln for ln in lines if ln.startswith("##") and not ln.startswith("##contig")]
        contig_line = next(ln for ln in lines if ln.startswith("##contig"))
        chrom = lines[next(k for k, ln in enumerate(lines) if not ln.startswith("#"))
                      ].split("\t", 1)[0]
        header += [contig_line.replace(f"ID={chrom},", f"ID={c + 1},")
                   for c in range(contigs)]
        cols = next(ln for ln in lines if ln.startswith("#CHROM")).split("\t")
        ids = [f"{s}_c{k}" for k in range(reps) for s in cols[9:]][:people]
        header.append("\t".join(cols[:9] + ids))
        records = [ln.split("\t", 9) for ln in lines if not ln.startswith("#")]
        target = d / f"site{i}.vcf.gz"
        with subprocess.Popen(["bgzip", "-@", "2", "-c"], stdin=subprocess.PIPE,
                              stdout=target.open("wb")) as bg:
            assert bg.stdin is not None
            bg.stdin.write(("\n".join(header) + "\n").encode())
            written = 0
            for c in range(contigs):
                for r in records:
                    if written == snps:
                        break
                    gts = "\t".join([r[9]] * reps).split("\t")[:people]
                    bg.stdin.write((f"{c + 1}\t" + "\t".join(r[1:9]) + "\t"
                                    + "\t".join(gts) + "\n").encode())
                    written += 1
        subprocess.run(["tabix", "-f", "-p", "vcf", str(target)], check=True)
    (d / "done").write_text("ok\n")
    return d


def _subset(cohort: Path, sites: int, n: int, people: int, work: Path) -> list[Path]:
    """Every site's VCF restricted to its first ``n`` samples (the full VCF when n = all)."""
    out = []
    for i in range(1, sites + 1):
        vcf = cohort / f"site{i}.vcf.gz"
        if n == people:
            out.append(vcf)
            continue
        names = work / f"site{i}.samples"
        header = subprocess.run(["bcftools", "query", "-l", str(vcf)], check=True,
                                capture_output=True, text=True).stdout.split()
        names.write_text("\n".join(header[:n]) + "\n")
        sub = work / f"site{i}_{n}.vcf.gz"
        subprocess.run(["bcftools", "view", "-S", str(names), "-Oz", "-o", str(sub),
                        str(vcf)], check=True)
        subprocess.run(["tabix", "-f", "-p", "vcf", str(sub)], check=True)
        out.append(sub)
    return out


def _baseline_party(_: object) -> int:
    """A party that does nothing: the peak RSS of torch + CrypTen + secured_bio (KiB)."""
    from secured_bio.genomics import secure_gwas

    return secure_gwas._peak_rss_kib()


def _relay_run(cmd: list[str], out: Path, test: str, env: dict[str, str],
               gloo: dict[str, Any]) -> dict[str, Any]:
    """The same secure run over the encrypted relay links; its cost next to gloo's."""
    relay_out = out.with_name(out.name + "_relay")
    cmd = [*cmd[:cmd.index("--out")], "--links", "relay", "--out", str(relay_out)]
    wall = _timed(cmd, env=env)
    summary = json.loads(Path(f"{relay_out}.{test}.summary.json").read_text())
    per_site = summary["protocol"]["per_site"]
    slowest = max(s["seconds"] for s in per_site.values())
    analysis = max(s["seconds"] - s["load_seconds"] for s in per_site.values())
    import numpy as np
    import pandas as pd

    a = pd.read_csv(f"{out}.{test}.tsv", sep="\t")["P"].to_numpy(dtype=float)
    b = pd.read_csv(f"{relay_out}.{test}.tsv", sep="\t")["P"].to_numpy(dtype=float)
    return {
        "ours_wall": wall,
        "ours_slowest_site_s": round(slowest, 3),
        "ours_slowest_site_analysis_s": round(analysis, 3),
        "ours_bytes_sent": {k: s["bytes_sent"] for k, s in per_site.items()},
        "extra_seconds_vs_gloo": round(analysis - gloo["ours_slowest_site_analysis_s"], 3),
        "ratio_analysis_vs_gloo": round(analysis / gloo["ours_slowest_site_analysis_s"], 3),
        "extra_bytes_vs_gloo": {k: s["bytes_sent"] - gloo["ours_bytes_sent"][k]
                                for k, s in per_site.items()},
        "max_abs_diff_mlog10p_vs_gloo": float(np.nanmax(np.abs(np.log10(a) - np.log10(b)))),
    }


def _one_size(n: int, vcfs: list[Path], cohort: Path, tests: list[str], work: Path,
              env: dict[str, str], threads: int, relay: bool = False) -> dict[str, Any]:
    pheno, covar = cohort / "pheno.tsv", cohort / "covar.tsv"
    pooled = work / f"pooled_{n}.vcf.gz"
    subprocess.run(["bcftools", "merge", "--threads", str(threads), "-Oz", "-o", str(pooled),
                    *map(str, vcfs)], check=True)
    pgen = _timed(["plink2", "--vcf", str(pooled), "--make-pgen", "--out",
                   str(work / f"pg_{n}"), "--threads", str(threads)])
    row: dict[str, Any] = {"people_per_site": n, "people_total": n * len(vcfs),
                           "plink2_make_pgen": pgen, "tests": {}}
    for test in tests:
        binary = test != "linear"
        name = "case" if binary else "quant"
        glm = _timed(["plink2", "--pfile", str(work / f"pg_{n}"), "--pheno", str(pheno),
                      "--pheno-name", name, "--covar", str(covar), "--glm", "omit-ref",
                      "hide-covar", *(["no-firth"] if binary else []), "--out",
                      str(work / f"ref_{n}"), "--threads", str(threads)])
        out = work / f"ours_{n}"
        cmd = [sys.executable, "-m", "secured_bio", "-q", "gwas", "secure"]
        for i, vcf in enumerate(vcfs, start=1):
            cmd += ["--site", f"site{i}={vcf}"]
        cmd += ["--pheno", str(pheno), "--pheno-name", name, "--covar", str(covar),
                "--test", test, "--timeout", "600", "--out", str(out)]
        wall = _timed(cmd, env=env)
        summary = json.loads(Path(f"{out}.{test}.summary.json").read_text())
        per_site = summary["protocol"]["per_site"]
        slowest = max(s["seconds"] for s in per_site.values())
        analysis = max(s["seconds"] - s["load_seconds"] for s in per_site.values())
        plink_total = pgen["s"] + glm["s"]
        row["tests"][test] = {
            "plink2_glm": glm,
            "plink2_total_s": round(plink_total, 3),
            "ours_wall": wall,
            "ours_slowest_site_s": round(slowest, 3),
            "ours_slowest_site_analysis_s": round(analysis, 3),
            "ours_ingest_s": {k: s["load_seconds"] for k, s in per_site.items()},
            "ours_peak_rss_mib": {k: s["peak_rss_mib"] for k, s in per_site.items()},
            "ours_bytes_sent": {k: s["bytes_sent"] for k, s in per_site.items()},
            "ours_rounds": max(s["rounds"] for s in per_site.values()),
            "ratio_end_to_end": round(slowest / plink_total, 2),
            "ratio_wall": round(wall["s"] / plink_total, 2),
            "ratio_analysis": round(analysis / glm["s"], 2),
            "n_variants_tested": summary["n_variants_tested"],
            "lambda_gc": summary["lambda_gc"],
        }
        if relay:
            row["tests"][test]["relay_links"] = _relay_run(cmd, out, test, env,
                                                           row["tests"][test])
    return row


def _linear_fit(x: list[float], y: list[float]) -> dict[str, float | None]:
    """Least-squares ``y = a + b x``: intercept, slope and the largest relative residual."""
    if len(x) < 2:
        return {"intercept": None, "slope": None, "max_rel_residual": None}
    mx, my = sum(x) / len(x), sum(y) / len(y)
    b = sum((u - mx) * (v - my) for u, v in zip(x, y, strict=True)) / sum(
        (u - mx) ** 2 for u in x)
    a = my - b * mx
    res = max(abs(v - (a + b * u)) / v for u, v in zip(x, y, strict=True))
    return {"intercept": round(a, 3), "slope": round(b, 6), "max_rel_residual": round(res, 3)}


def _test_summary(series: list[dict[str, Any]], test: str) -> dict[str, Any]:
    """The largest size's figures and the scaling in N (time linear, memory flat)."""
    main_row = series[-1]["tests"][test]
    n = [r["people_total"] for r in series]
    total = [r["tests"][test]["ours_slowest_site_s"] for r in series]
    analysis = [r["tests"][test]["ours_slowest_site_analysis_s"] for r in series]
    rss = [max(r["tests"][test]["ours_peak_rss_mib"].values()) for r in series]
    return {
        "people_total": series[-1]["people_total"],
        "plink2_total_s": main_row["plink2_total_s"],
        "plink2_glm_s": main_row["plink2_glm"]["s"],
        "ours_slowest_site_s": main_row["ours_slowest_site_s"],
        "ours_slowest_site_analysis_s": main_row["ours_slowest_site_analysis_s"],
        "ratio_end_to_end": main_row["ratio_end_to_end"],
        "ratio_wall": main_row["ratio_wall"],
        "ratio_analysis": main_row["ratio_analysis"],
        "max_peak_rss_mib": max(main_row["ours_peak_rss_mib"].values()),
        "max_bytes_sent": max(main_row["ours_bytes_sent"].values()),
        "scaling_s": {r["people_per_site"]: t for r, t in zip(series, total, strict=True)},
        "scaling_analysis_s": {r["people_per_site"]: t
                               for r, t in zip(series, analysis, strict=True)},
        "scaling_s_per_1k_people": {
            r["people_per_site"]: round(1000 * t / m, 4)
            for r, t, m in zip(series, total, n, strict=True)},
        "scaling_peak_rss_mib": {r["people_per_site"]: m
                                 for r, m in zip(series, rss, strict=True)},
        # Linear time: a straight line through (N, seconds) with small residuals (the
        # intercept is the fixed cost: imports, connection, phenotype files).
        "time_fit_vs_people_total": _linear_fit(n, total),
        "analysis_fit_vs_people_total": _linear_fit(n, analysis),
        # Flat memory: the peak per site grows by at most this much over the series.
        "peak_rss_growth_mib": round(max(rss) - min(rss), 1),
    }


def _targets(summary: dict[str, dict[str, Any]], preset: str) -> dict[str, Any]:
    """The issue's acceptance targets for the sizes this run covers."""
    out: dict[str, Any] = {}
    for test, s in summary.items():
        t: dict[str, Any] = {"memory_per_site_le_2gib": s["max_peak_rss_mib"] <= 2048}
        if preset == "default":
            t["end_to_end_le_4x_plink2"] = s["ratio_end_to_end"] <= 4
        if preset == "large":
            t["analysis_le_2x_plink2_glm"] = s["ratio_analysis"] <= 2
        out[test] = t
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="3 x 300 people x 2,000 SNPs")
    size.add_argument("--large", action="store_true",
                      help="3 x 10,000 people x 50,000 SNPs (tiled from the default cohort)")
    ap.add_argument("--people", type=int, help="people per site (overrides the preset)")
    ap.add_argument("--snps", type=int, help="SNPs (overrides the preset)")
    ap.add_argument("--series", help="comma-separated people per site for the scaling series")
    ap.add_argument("--sites", type=int, default=3)
    ap.add_argument("--tests", default="linear,logistic")
    ap.add_argument("--threads", type=int, default=2, help="plink2 threads; BLAS per site")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--relay", action="store_true",
                    help="also run each test over the encrypted relay links (--links relay) "
                    "and report their cost next to the default gloo links")
    ap.add_argument("--cache", type=Path,
                    default=Path(tempfile.gettempdir()) / "secured_bio_bench_gwas",
                    help="where simulated cohorts are kept for reuse")
    args = ap.parse_args()
    for tool in ("plink2", "bcftools", "tabix"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not on PATH (make sysdeps)")
    preset_name = "quick" if args.quick else "large" if args.large else "default"
    if args.people or args.snps:
        preset_name = "custom"
    preset = PRESETS["default" if preset_name == "custom" else preset_name]
    people = args.people or preset["people"]
    snps = args.snps or preset["snps"]
    series = sorted({int(x) for x in args.series.split(",")} if args.series else
                    {n for n in preset["series"] if n <= people} | {people})
    if series[-1] > people:
        sys.exit("--series values must not exceed --people")
    env = dict(os.environ, SECURED_BIO_PROGRESS="0", OMP_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    out: dict[str, Any] = {
        "benchmark": "gwas_secure", "sites": args.sites, "people_per_site": people,
        "snps": snps, "tests": args.tests.split(","), "threads": args.threads,
        "machine": {"cpus": os.cpu_count()},
    }
    t0 = time.perf_counter()
    out["preset"] = preset_name
    if "tile_from" in preset and preset_name != "custom":
        base = _cohort(args.cache, args.sites, *preset["tile_from"], args.seed)
        cohort = _tiled(base, args.cache, args.sites, people, snps)
        out["cohort_note"] = (f"tiled from {base.name}: samples repeated, variants repeated "
                              "on new contigs (timing and memory only)")
    else:
        cohort = _cohort(args.cache, args.sites, people, snps, args.seed)
    out["cohort"] = {"path": str(cohort), "simulate_or_reuse_s": round(time.perf_counter()
                                                                       - t0, 1)}
    from secured_bio.privacy.smpc import run_parties

    base = run_parties(_baseline_party, [None] * args.sites, timeout_s=120)
    out["party_baseline_rss_mib"] = round(max(base) / 1024, 1)
    out["series"] = []
    with tempfile.TemporaryDirectory(prefix="bench_secure_gwas_") as tmp:
        work = Path(tmp)
        for n in series:
            vcfs = _subset(cohort, args.sites, n, people, work)
            out["series"].append(_one_size(n, vcfs, cohort, out["tests"], work, env,
                                           args.threads, relay=args.relay))
    out["summary"] = {test: _test_summary(out["series"], test) for test in out["tests"]}
    out["targets"] = _targets(out["summary"], preset_name)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
