"""Secure multi-site GWAS: equals the pooled analysis, reveals only pooled sums, fails clearly.

Every secure run starts one OS process per site (torch + CrypTen each, several seconds), so
the runs are made once per module and shared: one audited run per test (every message and
every secure sum recorded in each party), then a few runs that must fail.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import BIN, requires_tools
from genomics import _secure_party_fns as fns
from privacy.smpc import _leak_check as leak

from secured_bio.cli import main
from secured_bio.errors import ConfigError, InputFileNotFoundError
from secured_bio.genomics import association as assoc
from secured_bio.genomics import secure_gwas as sg
from secured_bio.genomics import sumstats as S
from secured_bio.genomics.gwas_cli import run_gwas
from secured_bio.privacy.smpc import free_port, run_parties

needs_plink2 = requires_tools("plink2")

TESTS = ("linear", "logistic", "allelic", "trend")
# Options of each audited run: the linear one also covers the federated PCA.
OPTIONS: dict[str, dict[str, Any]] = {
    "linear": {"pheno_name": "quant", "covar": "COVAR", "pcs": 2},
    "logistic": {"pheno_name": "case", "covar": "COVAR"},
    "allelic": {"pheno_name": "case"},
    "trend": {"pheno_name": "case"},
}
EFFECT = {"linear": "BETA", "logistic": "OR", "allelic": "OR", "trend": "CHISQ"}


def _read_vcf(path: Path) -> tuple[list[str], list[list[str]]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        lines = fh.read().splitlines()
    header = [ln for ln in lines if ln.startswith("#")]
    return header, [ln.split("\t") for ln in lines if not ln.startswith("#")]


def _write_vcf(path: Path, header: list[str], records: list[list[str]]) -> Path:
    path.write_text("\n".join(header + ["\t".join(r) for r in records]) + "\n")
    return path


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """3 sites x 150 samples x 400 variants; ~2 % missing phenotypes, 5 missing ages.

    The pooled cohort is the three VCFs side by side (same variants in the same order).
    """
    from secured_bio.testing import simulate_genotypes

    d = tmp_path_factory.mktemp("secure_gwas")
    c = simulate_genotypes(d, n_sites=3, samples_per_site=150, n_variants=400, n_causal=4,
                           seed=23)
    covar = pd.read_csv(c.covar_path, sep="\t", dtype=str, keep_default_na=False)
    covar.loc[covar.index[[3, 60, 170, 301, 440]], "age"] = "NA"
    covar.to_csv(d / "covar_na.tsv", sep="\t", index=False)
    parts = [_read_vcf(p) for p in c.vcf_paths]
    header = parts[0][0][:-1] + ["\t".join(
        [parts[0][0][-1]] + [h[-1].split("\t", 9)[9] for h, _ in parts[1:]])]
    records = [r0 + [x for _, recs in parts[1:] for x in recs[i][9:]]
               for i, r0 in enumerate(parts[0][1])]
    merged = _write_vcf(d / "pooled.vcf", header, records)
    return {"dir": d, "cohort": c, "covar": d / "covar_na.tsv", "pooled": merged,
            "sites": dict(zip(c.sites, c.vcf_paths, strict=True))}


def _kwargs(cohort: dict[str, Any], test: str) -> dict[str, Any]:
    opts = {k: (cohort["covar"] if v == "COVAR" else v) for k, v in OPTIONS[test].items()}
    return {"pheno": cohort["cohort"].pheno_path, "test": test, **opts}


@pytest.fixture(scope="module")
def pooled(cohort: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The plaintext reference: run_gwas on the pooled cohort."""
    return {t: run_gwas(vcf=cohort["pooled"], out=cohort["dir"] / "pooled" / t,
                        **_kwargs(cohort, t)).results for t in TESTS}


def _audited_run(sites: dict[str, Path], cohort: dict[str, Any], test: str, out: Path, *,
                 intersect: bool = False, chunk: int | None = None) -> dict[str, Any]:
    """One secure run with every party audited (messages and secure sums)."""
    args = sg._party_args(sites, out=out, intersect=intersect, chunk_size=chunk,
                          dealer="none", covar_names=None, firth=False,
                          **{"covar": None, "pcs": 0, **_kwargs(cohort, test)})
    parties = run_parties(fns.audited_site, args, timeout_s=60)
    return {"run": sg._first_run([p["outcome"] for p in parties]), "parties": parties,
            "out": out}


@pytest.fixture(scope="module")
def audited(cohort: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One secure run per test with every party audited (messages and secure sums)."""
    # linear: 4 secure blocks (128 + 128 + 128 + 16 variants), the PCA's included.
    return {test: _audited_run(cohort["sites"], cohort, test,
                               cohort["dir"] / "secure" / test / "run",
                               chunk=128 if test == "linear" else None)
            for test in TESTS}


def _agreement(ours: pd.DataFrame, ref: pd.DataFrame, effect: str) -> dict[str, float]:
    a, b = -np.log10(ours.P.to_numpy(float)), -np.log10(ref.P.to_numpy(float))
    assert np.array_equal(np.isfinite(a), np.isfinite(b))
    ok = np.isfinite(a)
    x, y = ours[effect].to_numpy(float), ref[effect].to_numpy(float)
    assert np.array_equal(np.isfinite(x), np.isfinite(y))
    has = np.isfinite(y) & (y != 0)
    return {
        "r": float(np.corrcoef(a[ok], b[ok])[0, 1]),
        "max_dlog10p": float(np.max(np.abs(a[ok] - b[ok]))),
        "median_rel_effect": float(np.median(np.abs(x[has] - y[has]) / np.abs(y[has]))),
        "same_hits": set(np.flatnonzero(ours.P < 5e-8)) == set(np.flatnonzero(ref.P < 5e-8)),
    }


def _within_issue_bounds(m: dict[str, float]) -> None:
    assert m["r"] >= 0.9999, m
    assert m["max_dlog10p"] <= 0.01, m
    assert m["median_rel_effect"] <= 1e-3, m
    assert m["same_hits"], m


# ------------------------------------------------------------------ equals pooled analysis
@pytest.mark.reference
@pytest.mark.parametrize("test", TESTS)
def test_secure__equals_pooled_plaintext(audited, pooled, test: str) -> None:
    ours, ref = audited[test]["run"].results, pooled[test]
    pd.testing.assert_frame_equal(ours[list(S.VARIANT_COLUMNS)], ref[list(S.VARIANT_COLUMNS)])
    np.testing.assert_array_equal(ours.OBS_CT, ref.OBS_CT)
    np.testing.assert_array_equal(ours.ERRCODE, ref.ERRCODE)
    m = _agreement(ours, ref, EFFECT[test])
    _within_issue_bounds(m)
    # Far tighter in fact: exact for the counts, fixed-point/Newton tolerance for the rest.
    assert m["max_dlog10p"] <= (0.0 if test in ("allelic", "trend") else 1e-6), m


def test_code_blocks__equal_the_dosages_for_any_keep_samples_and_block(
        cohort, tmp_path: Path) -> None:
    """Blocks cut across stored chunks of 64 variants, subsets of variants and samples."""
    from secured_bio.genomics.ingest import ingest_vcf
    from secured_bio.genomics.store import genotype_dosage, open_genotypes

    ingest_vcf(next(iter(cohort["sites"].values())), tmp_path / "g.zarr", chunk_size=64,
               progress=False)
    rng = np.random.default_rng(5)
    with open_genotypes(tmp_path / "g.zarr") as store:
        v, n = store.n_variants, store.n_samples
        full = genotype_dosage(store.read_genotypes(slice(None)))
        assert np.isnan(full).any()  # missing calls are covered
        cases = [(np.arange(v), None, 100), (np.arange(v), np.ones(n, bool), 64),
                 (np.sort(rng.choice(v, 150, replace=False)), rng.random(n) < 0.8, 37)]
        for keep, samples, size in cases:
            ref = full[keep] if samples is None else full[keep][:, samples]
            blocks = list(sg._code_blocks(store, keep, size, samples))
            assert all(b.dtype == np.int8 for b in blocks)
            sizes = [b.shape[0] for b in blocks]
            assert sizes[:-1] == [size] * (len(sizes) - 1) and sum(sizes) == keep.size
            codes = np.concatenate(blocks)
            np.testing.assert_array_equal(np.where(codes < 0, np.nan, codes), ref)
            dosage = np.concatenate(list(sg._dosage_blocks(store, keep, size, samples)))
            np.testing.assert_array_equal(dosage, ref)


def test_secure__every_site_gets_the_same_results(audited) -> None:
    for test in TESTS:
        runs = [p["outcome"].run for p in audited[test]["parties"]]
        for other in runs[1:]:
            pd.testing.assert_frame_equal(runs[0].results, other.results)
        assert [bool(r.paths) for r in runs] == [True, False, False]  # rank 0 writes


@pytest.mark.reference
@needs_plink2
def test_secure__linear_with_pcs_equals_plink2(audited, cohort, tmp_path: Path) -> None:
    """plink2 2.00a3.5 --pca 2 meanimpute, then --glm omit-ref hide-covar (A1 = ALT).

    plink2 refuses this design unless the covariates are variance-standardised, which does
    not change the genotype's statistics.
    """

    def plink2(*args: str) -> None:
        proc = subprocess.run(["plink2", "--vcf", str(cohort["pooled"]), "--threads", "1",
                               *args], capture_output=True, text=True, cwd=tmp_path,
                              timeout=120)
        assert proc.returncode == 0, proc.stdout[-2000:]

    plink2("--pca", "2", "meanimpute", "--out", "pca")
    pcs = pd.read_csv(tmp_path / "pca.eigenvec", sep="\t")
    cov = pd.read_csv(cohort["covar"], sep="\t", dtype=str, keep_default_na=False)
    cov.merge(pcs, on="#IID").to_csv(tmp_path / "covar_pcs.tsv", sep="\t", index=False)
    plink2("--pheno", str(cohort["cohort"].pheno_path), "--pheno-name", "quant", "--covar",
           str(tmp_path / "covar_pcs.tsv"), "--covar-variance-standardize", "--glm", "omit-ref",
           "hide-covar", "--out", "ref")
    ref = pd.read_csv(tmp_path / "ref.quant.glm.linear", sep="\t", na_values=["NA"])
    ours = audited["linear"]["run"].results
    np.testing.assert_array_equal(ours.OBS_CT, ref.OBS_CT)
    assert (ours.A1.to_numpy() == ref.A1.to_numpy()).all()
    _within_issue_bounds(_agreement(ours, ref, "BETA"))


def test_secure__writes_the_outputs_of_gwas_run_and_a_protocol_section(audited) -> None:
    run, out = audited["logistic"]["run"], audited["logistic"]["out"]
    paths = S.output_paths(out, test="logistic")
    assert run.paths == paths and all(p.is_file() for p in paths.values())
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(
        p.name for p in paths.values())  # nothing else, no temporary files
    table = S.read_plink_table(paths["table"])
    assert list(table.columns) == list(S.PLINK_COLUMNS["logistic"])
    summary = json.loads(paths["summary"].read_text())
    assert 0.5 < summary["lambda_gc"] < 2.0 and summary["firth"] == "never"
    assert summary["n_samples_missing_phenotype"] > 0
    assert summary["n_samples_missing_covariates"] > 0
    protocol = summary["protocol"]
    assert protocol["sites"] == ["site1", "site2", "site3"]
    assert set(protocol["bytes_sent"]) == set(protocol["seconds"]) == set(protocol["sites"])
    assert all(b > 0 for b in protocol["bytes_sent"].values())
    assert protocol["reveal_set"] == sg.reveal_set("logistic", covariates=True)
    assert set(run.protocol) == set(protocol["sites"])
    assert run.protocol["site2"].bytes_sent == protocol["bytes_sent"]["site2"]


# ------------------------------------------------------------------------ the reveal set
@pytest.fixture(scope="module")
def fewer_variants(cohort: dict[str, Any]) -> tuple[Path, list[int]]:
    """site3's VCF without 7 of its variants (plain text: ingest reads it too)."""
    header, records = _read_vcf(cohort["sites"]["site3"])
    dropped = [0, 1, 50, 51, 52, 200, 399]
    kept = [r for i, r in enumerate(records) if i not in dropped]
    return _write_vcf(cohort["dir"] / "site3_fewer.vcf", header, kept), dropped


@pytest.fixture(scope="module")
def audited_intersect(cohort: dict[str, Any], fewer_variants: tuple[Path, list[int]]
                      ) -> dict[str, Any]:
    """An audited allelic run with --intersect: site3 lacks 7 variants and is rank 0."""
    sites = {"site3": fewer_variants[0], "site1": cohort["sites"]["site1"],
             "site2": cohort["sites"]["site2"]}  # site3 first: rank 0 holds the short list
    return _audited_run(sites, cohort, "allelic", cohort["dir"] / "secure" / "intersect" / "i",
                        intersect=True)


#: The audited runs of the reveal-set test: the four tests, and the variant intersection.
REVEAL_RUNS = (*TESTS, "intersect")
GATHERED = {"status", "site_name", "n_variants", "variant_digest", "options_digest",
            "protocol_stats", "candidate_digest", "ordered_digest"}


def _encoded(call: dict[str, Any]) -> np.ndarray:
    """This party's plaintext vector of a secure_sum_many call, as the protocol encodes it."""
    parts = []
    for key in sorted(call["inputs"]):
        v = call["inputs"][key]
        if v.dtype.kind in "biu":
            parts.append(v.astype(np.int64).ravel())
        else:
            parts.append(np.rint(np.ldexp(v.astype(np.float64), call["precision_bits"]))
                         .astype(np.int64).ravel())
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


@pytest.mark.parametrize("name", REVEAL_RUNS)
def test_secure__nothing_outside_the_reveal_set_leaves_a_site(request, cohort,
                                                              name: str) -> None:
    intersect = name == "intersect"
    test = "allelic" if intersect else name
    audit = (request.getfixturevalue("audited_intersect") if intersect
             else request.getfixturevalue("audited")[test])
    parties = audit["parties"]
    n = len(parties)
    documented = set(sg.reveal_set(test, covariates=test in ("linear", "logistic"),
                                   pcs=OPTIONS[test].get("pcs", 0), intersect=intersect))
    calls = [p["calls"] for p in parties]
    assert len({len(c) for c in calls}) == 1  # every party made the same calls
    used = set().union(*(c["inputs"] for c in calls[0]))
    if intersect:  # the intersection ran: bucket counts and candidate digests were summed
        assert {"bucket_sites", "candidate_digest", "ordered_digest"} <= used
    for i, call0 in enumerate(calls[0]):
        keys = set(call0["inputs"])
        assert keys <= documented, keys - documented
        for rank in range(n):
            call = calls[rank][i]
            assert set(call["inputs"]) == keys
            for key in keys & GATHERED:  # a public gather: a party fills only its own row
                others = np.delete(call["inputs"][key], rank, axis=0)
                assert not others.any()
        # What is revealed is exactly the sum of the parties' inputs (the pooled sums).
        for key in keys:
            total = sum(calls[r][i]["inputs"][key].astype(np.float64) for r in range(n))
            revealed = np.asarray(call0["outputs"][key], dtype=np.float64)
            tol = 0.0 if call0["inputs"][key].dtype.kind in "biu" else \
                n * 2.0 ** -(call0["precision_bits"] + 1)
            np.testing.assert_allclose(revealed, total, rtol=0, atol=tol)
            for r in range(1, n):
                np.testing.assert_array_equal(calls[r][i]["outputs"][key], revealed)

    # Every message a party sent, each on its own, is a protocol header or uniform 64-bit
    # words (its key-agreement value, masked vectors) that equal none of its plaintext
    # inputs (tests/privacy/smpc/_leak_check.py): one small unmasked vector among thousands
    # of masked ones fails, which a fraction of small words pooled over all messages missed.
    for rank, party in enumerate(parties):
        assert all(op == "isend" for op, _, _ in party["sent"])
        payloads = [payload for _, _, payload in party["sent"]]
        report = leak.check_sent(payloads, known=[_encoded(c) for c in party["calls"]])
        assert not report.problems, (rank, report.problems[:5])
        # one header per call and peer; masked data for every non-empty call; one key each
        assert report.count("header") == (n - 1) * len(party["calls"]), rank
        assert report.count("data") + report.count("key") >= (n - 1) * sum(
            _encoded(c).size > 0 for c in party["calls"]), rank
        assert all(np.asarray(p)[2] == 0 for p in payloads if leak.is_header(np.asarray(p)))

    # The revealed per-variant statistics equal the pooled plaintext sums.
    if test in ("allelic", "trend") and not intersect:
        from secured_bio.genomics import phenotypes as ph
        from secured_bio.genomics.store import open_genotypes

        with open_genotypes(cohort["pooled"]) as store:
            ids = [str(s) for s in store.sample_ids]
            trait = ph.load_phenotype(cohort["cohort"].pheno_path, ids, name="case")
            mask = np.isfinite(trait.values)
            dose = np.concatenate([d for _, d in store.iter_dosage(samples=mask)])
        want = assoc.case_control_sums(dose, is_case=trait.values[mask])
        got = {k: np.concatenate([c["outputs"][k] for c in calls[0] if k in c["outputs"]])
               for k in sg.reveal_set(test) if k.startswith("cc_")}
        for key, value in got.items():
            np.testing.assert_array_equal(value, getattr(want, key[3:]))


# ------------------------------------------------------------------ the rendezvous store
#: What may pass through the TCPStore that party rank 0 hosts: each party's joined/done
#: flag, and the process groups CrypTen builds on it (gloo's per-pair addresses).
STORE_KEYS = re.compile(r"secured_bio/(joined|done)/(\d+)|secured_bio/pg/.+")
STORE_VALUE_MAX = 512  # bytes; a gloo address is ~100


def test_secure__rendezvous_store_carries_flags_and_addresses_only(tmp_path: Path) -> None:
    """Record every store operation of every party (the Python calls and gloo's, in C++)."""
    import multiprocessing

    from secured_bio.testing import simulate_genotypes

    c = simulate_genotypes(tmp_path, n_sites=3, samples_per_site=40, n_variants=60,
                           n_causal=2, seed=5)
    ctx = multiprocessing.get_context("spawn")
    results, port = ctx.Queue(), free_port()
    options = {"pheno": str(c.pheno_path), "pheno_name": "case", "test": "trend",
               "timeout_s": 60}
    procs = [ctx.Process(target=fns.store_recorded_site,
                         args=(rank, 3, site, str(path), port, options, results))
             for rank, (site, path) in enumerate(zip(c.sites, c.vcf_paths, strict=True))]
    for proc in procs:
        proc.start()
    try:
        got = sorted(results.get(timeout=180) for _ in procs)
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    assert [(rank, status, n) for rank, status, _, n in got] == [(r, "ok", 60) for r in range(3)]

    ids = pd.read_csv(c.pheno_path, sep="\t", dtype=str)["#IID"].tolist()
    secrets = [s.encode() for s in ids + [str(p) for p in c.vcf_paths] + [str(c.pheno_path)]]
    for rank, _, log, _ in got:
        ops = {op for op, _, _ in log}
        assert ops <= {"set", "get", "wait", "check", "add", "compare_set", "append",
                       "delete_key"}, ops
        written = [(op, key, value) for op, key, value in log
                   if op in ("set", "add", "compare_set", "append")]
        assert written, rank
        for op, key, value in log:
            m = STORE_KEYS.fullmatch(key)
            assert m, (rank, op, key)
            if m.group(1):  # our own flags: a party writes its own, "1"
                assert op != "set" or (m.group(2) == str(rank) and value == b"1"), \
                    (rank, op, key, value)
            assert len(value) <= STORE_VALUE_MAX, (rank, op, key, len(value))
            assert not any(x in value or x in key.encode() for x in secrets), (rank, key)
        assert {key for op, key, _ in written if not key.startswith("secured_bio/pg/")} == {
            f"secured_bio/joined/{rank}", f"secured_bio/done/{rank}"}
        # a few kilobytes per party whatever the data: the store carries no statistics
        assert sum(len(v) for _, _, v in written) <= 4096, rank


# ------------------------------------------------------------------------ CLI and Firth
@pytest.mark.reference
def test_cli_secure__logistic_firth_equals_pooled(cohort, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    args = ["gwas", "secure"]
    for name, path in cohort["sites"].items():
        args += ["--site", f"{name}={path}"]
    args += ["--pheno", str(cohort["cohort"].pheno_path), "--pheno-name", "case", "--covar",
             str(cohort["covar"]), "--covar-name", "sex,age", "--test", "logistic",
             "--firth", "--out", str(tmp_path / "fx")]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "logistic (secure, 3 sites)" in err and "protocol: sent site1" in err
    ours = S.read_plink_table(tmp_path / "fx.logistic.tsv")
    ref = run_gwas(vcf=cohort["pooled"], pheno=cohort["cohort"].pheno_path, pheno_name="case",
                   covar=cohort["covar"], covar_names=["sex", "age"], test="logistic",
                   firth=True, out=tmp_path / "ref").results
    _within_issue_bounds(_agreement(ours, ref, "OR"))
    assert S.read_summary(tmp_path / "fx.logistic.summary.json")["firth"] == "always"


# -------------------------------------------------------------------------- failures
def _fails(args: list[str], out_dir: Path, capsys: pytest.CaptureFixture[str],
           patterns: tuple[str, ...], code: int = 1) -> str:
    assert main(args) == code
    err = capsys.readouterr().err
    for pattern in patterns:
        assert pattern in err, err
    assert not out_dir.exists() or list(out_dir.iterdir()) == []  # no partial output
    return err


def _secure_args(sites: dict[str, Path], cohort: dict[str, Any], out: Path, *extra: str,
                 test: str = "allelic") -> list[str]:
    args = ["gwas", "secure", "--timeout", "60"]
    for name, path in sites.items():
        args += ["--site", f"{name}={path}"]
    return args + ["--pheno", str(cohort["cohort"].pheno_path), "--pheno-name", "case",
                   "--test", test, "--out", str(out), *extra]




def test_secure__different_variant_sets_fail_naming_the_sites(
        cohort, fewer_variants, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sites = {**cohort["sites"], "site3": fewer_variants[0]}
    _fails(_secure_args(sites, cohort, tmp_path / "out" / "x"), tmp_path / "out", capsys,
           ("the sites hold different variant lists", "site 'site3' (party rank 2) differ",
            "site 'site1' (party rank 0)", "393 variants at site 'site3'", "--intersect"))


def test_secure__intersect_analyses_the_common_variants_and_reports_drops(
        audited_intersect, fewer_variants, pooled) -> None:
    _, dropped = fewer_variants
    run = audited_intersect["run"]
    assert run.dropped_variants == {"site3": 0, "site1": 7, "site2": 7}
    protocol = run.summary["protocol"]
    assert protocol["variants_analysed"] == 393 and protocol["intersect"] is True
    assert protocol["per_site"]["site1"]["variants_dropped"] == 7
    assert "bucket_sites" in protocol["reveal_set"]
    keep = np.setdiff1d(np.arange(400), dropped)
    ref = pooled["allelic"].iloc[keep].reset_index(drop=True)
    pd.testing.assert_frame_equal(run.results[["ID", "CHISQ", "P", "OR"]],
                                  ref[["ID", "CHISQ", "P", "OR"]])


@pytest.fixture(scope="module")
def bad_sites(cohort: dict[str, Any]) -> dict[str, Path]:
    """site2: truncated BGZF; site3: a malformed GT; site4: samples absent from the pheno."""
    d = cohort["dir"]
    raw = cohort["sites"]["site2"].read_bytes()
    (d / "trunc.vcf.gz").write_bytes(raw[: len(raw) // 2])
    header, records = _read_vcf(cohort["sites"]["site3"])
    records[10] = records[10][:10] + ["0/x"] + records[10][11:]
    _write_vcf(d / "bad_gt.vcf", header, records)
    header, records = _read_vcf(cohort["sites"]["site1"])
    header[-1] = header[-1].replace("site1_", "elsewhere_")
    _write_vcf(d / "strangers.vcf", header, records)
    return {"site1": cohort["sites"]["site1"], "site2": d / "trunc.vcf.gz",
            "site3": d / "bad_gt.vcf", "site4": d / "strangers.vcf"}


def test_secure__bad_input_at_several_sites_names_each_site_and_file(
        cohort, bad_sites, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails(
        _secure_args(bad_sites, cohort, tmp_path / "out" / "x"), tmp_path / "out", capsys,
        ("VCF file is truncated or corrupt", str(bad_sites["site2"]),
         "site 'site2' (party rank 1) failed while loading",
         "malformed GT", str(bad_sites["site3"]), "site 'site3' (party rank 2)",
         "no sample of site 'site4' is in the phenotype file",
         str(cohort["cohort"].pheno_path)))
    assert "elsewhere_" not in err and "site1_0" not in err  # no participant IDs


@pytest.mark.parametrize(("values", "pattern"), [
    (["1", "high"], "non-numeric value in column 'y'"),
    (["2", "2"], "constant phenotype"),
])
def test_secure__bad_phenotype_fails_at_every_site(
        cohort, tmp_path: Path, capsys: pytest.CaptureFixture[str], values: list[str],
        pattern: str) -> None:
    ids = pd.read_csv(cohort["cohort"].pheno_path, sep="\t", dtype=str)["#IID"].tolist()
    pheno = tmp_path / "p.tsv"
    pheno.write_text("#IID\ty\n" + "".join(f"{i}\t{values[k % 2]}\n"
                                            for k, i in enumerate(ids)))
    sites = {k: cohort["sites"][k] for k in ("site1", "site2")}
    args = _secure_args(sites, cohort, tmp_path / "out" / "x", "--allow-two-sites")
    args[args.index("--pheno") + 1] = str(pheno)
    args[args.index("--pheno-name") + 1] = "y"
    err = _fails(args, tmp_path / "out", capsys, (pattern, str(pheno)))
    assert "high" not in err and ids[0] not in err  # no data values, no participant IDs


def _party_cmd(rank: int, name: str, path: Path, port: int, pheno: Path, out: Path,
               timeout: str = "60") -> list[str]:
    return [str(BIN / "secured-bio"), "gwas", "party", "--unauthenticated-gloo", "--rank",
            str(rank), "--world-size", "3", "--site", f"{name}={path}", "--master-port",
            str(port), "--timeout", timeout,
            "--pheno", str(pheno), "--pheno-name", "case", "--test", "trend", "--out",
            str(out)]


def test_party__three_processes_give_the_results_of_secure(
        audited, cohort, tmp_path: Path, cli_env: dict[str, str]) -> None:
    port = free_port()
    procs = [subprocess.Popen(_party_cmd(rank, name, path, port, cohort["cohort"].pheno_path,
                                         tmp_path / "out" / f"r{rank}" / "x"),
                              env=cli_env, stderr=subprocess.PIPE, text=True)
             for rank, (name, path) in enumerate(cohort["sites"].items())]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errs
    assert all("trend (secure, 3 sites)" in e for e in errs)
    assert [d.name for d in (tmp_path / "out").iterdir()] == ["r0"]  # only rank 0 writes
    ours = S.read_plink_table(tmp_path / "out" / "r0" / "x.trend.tsv")
    ref = S.read_plink_table(audited["trend"]["out"].with_suffix(".trend.tsv"))
    pd.testing.assert_frame_equal(ours, ref)


# The timeout counts from process start and includes importing torch: 45 s leaves room
# for a loaded CI machine (6 s and then 20 s were flaky under heavy load) while still
# proving the run stops.
def test_party__a_site_that_never_connects_times_out(cohort, tmp_path: Path,
                                                     cli_env: dict[str, str]) -> None:
    port = free_port()
    procs = [subprocess.Popen(_party_cmd(rank, name, cohort["sites"][name], port,
                                         cohort["cohort"].pheno_path, tmp_path / "out" / "x",
                                         timeout="45"),
                              env=cli_env, stderr=subprocess.PIPE, text=True)
             for rank, name in ((0, "site1"), (1, "site2"))]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 1, err
        assert "party rank 2 never connected" in err, err
    assert not (tmp_path / "out").exists()


def test_run_site__bad_options_fail_before_connecting(cohort, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least two sites"):
        sg.run_site(0, 1, "a", cohort["sites"]["site1"], pheno=cohort["cohort"].pheno_path,
                    test="trend", master_port=free_port())
    with pytest.raises(ConfigError, match="the trend test does not use covariates"):
        sg.run_site(0, 3, "a", cohort["sites"]["site1"], pheno=cohort["cohort"].pheno_path,
                    test="trend", covar=cohort["covar"], master_port=free_port())
    with pytest.raises(InputFileNotFoundError, match="genotype input of site 'a' not found"):
        sg.secure_gwas({"a": tmp_path / "no.vcf", "b": tmp_path / "no2.vcf"},
                       pheno=cohort["cohort"].pheno_path, test="trend", out=None)
