"""Secure GWAS across 'hosts': own keys per site, a relay, mutual TLS, sealed messages.

The multi-host-style run starts every site and the relay as separate `secured-bio` processes
on loopback (sites connect out only) and must equal today's gloo run to 1e-9 in -log10 P.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import BIN, run_cli

from secured_bio.errors import ConfigError
from secured_bio.genomics import secure_gwas as sg
from secured_bio.genomics import sumstats as S
from secured_bio.privacy.smpc import free_port


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from secured_bio.testing import simulate_genotypes

    d = tmp_path_factory.mktemp("secure_links")
    c = simulate_genotypes(d, n_sites=3, samples_per_site=120, n_variants=300, n_causal=4,
                           seed=5)
    return {"dir": d, "cohort": c, "sites": dict(zip(c.sites, c.vcf_paths, strict=True))}


def _analysis(cohort: dict[str, Any]) -> list[str]:
    c = cohort["cohort"]
    return ["--pheno", str(c.pheno_path), "--pheno-name", "quant", "--covar",
            str(c.covar_path), "--test", "linear", "--timeout", "90"]


def _secure(cohort: dict[str, Any], out: Path, env: dict[str, str], *extra: str) -> Any:
    args = ["gwas", "secure"]
    for name, path in cohort["sites"].items():
        args += ["--site", f"{name}={path}"]
    return run_cli(*args, *_analysis(cohort), "--out", str(out), *extra, env=env)


def _mlog10p(prefix: Path) -> np.ndarray:
    t = S.read_plink_table(prefix.with_name(prefix.name + ".linear.tsv"))
    return -np.log10(t["P"].to_numpy(dtype=float))


@pytest.fixture(scope="module")
def gloo_run(cohort: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = _env(tmp_path_factory.mktemp("env"))
    out = cohort["dir"] / "gloo" / "x"
    r = _secure(cohort, out, env)
    assert r.returncode == 0, r.stderr
    assert "links: gloo (unencrypted)" in r.stderr
    return out


def _env(home: Path) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["SECURED_BIO_PROGRESS"] = "0"
    env["HOME"] = str(home)
    return env


@pytest.mark.slow
def test_cli_secure__relay_links_equal_gloo(cohort, gloo_run, tmp_path: Path,
                                            cli_env: dict[str, str]) -> None:
    out = tmp_path / "relay" / "x"
    r = _secure(cohort, out, cli_env, "--links", "relay")
    assert r.returncode == 0, r.stderr
    assert "links: relay (mutual TLS + end-to-end sealed)" in r.stderr
    np.testing.assert_allclose(_mlog10p(out), _mlog10p(gloo_run), rtol=0, atol=1e-9)
    summary = json.loads(out.with_name("x.linear.summary.json").read_text())
    transport = summary["protocol"]["transport"]
    assert transport["kind"] == "relay" and transport["encrypted"] and transport["authenticated"]


def _keys(tmp: Path, env: dict[str, str], names: list[str]) -> dict[str, tuple[Path, Path]]:
    out = {}
    for name in names:
        r = run_cli("smpc", "keygen", "--name", name, "--out", str(tmp / name), env=env)
        assert r.returncode == 0, r.stderr
        out[name] = (tmp / name / f"{name}.key.pem", tmp / name / f"{name}.cert.pem")
    return out


def _party(cohort, name: str, path: Path, port: int, roster: Path, key: Path, cert: Path,
           out: Path | None) -> list[str]:
    return [str(BIN / "secured-bio"), "gwas", "party", "--site", f"{name}={path}",
            "--relay", f"127.0.0.1:{port}", "--roster", str(roster), "--key", str(key),
            "--cert", str(cert), *_analysis(cohort), *(["--out", str(out)] if out else [])]


@pytest.mark.slow
def test_party__three_hosts_with_own_keys_through_a_relay_equal_gloo(
        cohort, gloo_run, tmp_path: Path, cli_env: dict[str, str]) -> None:
    sites = list(cohort["sites"])
    keys = _keys(tmp_path, cli_env, [*sites, "relay", "intruder"])
    roster = tmp_path / "roster.json"
    r = run_cli("smpc", "roster", *[a for s in sites for a in ("--party", str(keys[s][1]))],
                "--relay", str(keys["relay"][1]), "--out", str(roster), env=cli_env)
    assert r.returncode == 0, r.stderr
    assert "0=site1, 1=site2, 2=site3" in r.stdout
    port = free_port()
    relay = subprocess.Popen(
        [str(BIN / "secured-bio"), "smpc", "relay", "--roster", str(roster), "--key",
         str(keys["relay"][0]), "--cert", str(keys["relay"][1]), "--listen",
         f"127.0.0.1:{port}"], env=cli_env, stderr=subprocess.PIPE, text=True)
    try:
        # An intruder with its own key pair (and a roster forged to name it) is refused by
        # the relay during the TLS handshake, before any message.
        forged = tmp_path / "forged.json"
        r = run_cli("smpc", "roster", "--party", str(keys[sites[0]][1]), "--party",
                    str(keys[sites[1]][1]), "--party", str(keys["intruder"][1]), "--relay",
                    str(keys["relay"][1]), "--out", str(forged), env=cli_env)
        assert r.returncode == 0, r.stderr
        bad = subprocess.run(
            _party(cohort, "x", cohort["sites"][sites[2]], port, forged, *keys["intruder"],
                   tmp_path / "intruder_out" / "x"),
            env=cli_env, capture_output=True, text=True, timeout=120)
        assert bad.returncode != 0
        assert "the relay refused this party" in bad.stderr and "Traceback" not in bad.stderr
        assert not (tmp_path / "intruder_out").exists()

        procs = [subprocess.Popen(
            _party(cohort, name, cohort["sites"][name], port, roster, *keys[name],
                   tmp_path / "out" / f"r{rank}" / "x"),
            env=cli_env, stderr=subprocess.PIPE, text=True)
            for rank, name in enumerate(sites)]
        errs = [p.communicate(timeout=240)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], errs
        assert all("links: relay (mutual TLS + end-to-end sealed)" in e for e in errs), errs
        assert [d.name for d in (tmp_path / "out").iterdir()] == ["r0"]  # only rank 0 writes
        np.testing.assert_allclose(_mlog10p(tmp_path / "out" / "r0" / "x"), _mlog10p(gloo_run),
                                   rtol=0, atol=1e-9)
        relay_err = relay.communicate(timeout=30)[1]  # it ends when every party has left
        assert relay.returncode == 0, relay_err
        assert "refused" in relay_err  # the intruder's handshake was logged
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.communicate()


def test_party__without_relay_options_is_refused(cohort, cli_env: dict[str, str]) -> None:
    name, path = next(iter(cohort["sites"].items()))
    r = run_cli("gwas", "party", "--site", f"{name}={path}", *_analysis(cohort), env=cli_env)
    assert r.returncode != 0
    assert "authenticated, encrypted relay" in r.stderr and "--unauthenticated-gloo" in r.stderr
    assert "Traceback" not in r.stderr


def test_secure__two_sites_are_refused_without_the_flag(cohort, tmp_path: Path,
                                                        cli_env: dict[str, str]) -> None:
    two = dict(list(cohort["sites"].items())[:2])
    r = run_cli("gwas", "secure", *[a for n, p in two.items() for a in ("--site", f"{n}={p}")],
                *_analysis(cohort), "--out", str(tmp_path / "o" / "x"), env=cli_env)
    assert r.returncode == 2, r.stderr  # a configuration (usage) error
    assert "two sites hides nothing" in r.stderr and "--allow-two-sites" in r.stderr
    assert not (tmp_path / "o").exists()
    with pytest.raises(ConfigError, match="two sites hides nothing"):
        sg.run_site(0, 2, "a", two["site1"], pheno=cohort["cohort"].pheno_path,
                    test="trend", master_port=free_port())


@pytest.mark.slow
def test_secure__two_sites_with_the_flag_say_what_each_learns(
        cohort, tmp_path: Path, cli_env: dict[str, str]) -> None:
    two = dict(list(cohort["sites"].items())[:2])
    out = tmp_path / "x"
    t0 = time.monotonic()
    r = run_cli("gwas", "secure", *[a for n, p in two.items() for a in ("--site", f"{n}={p}")],
                *_analysis(cohort), "--out", str(out), "--allow-two-sites", env=cli_env)
    assert r.returncode == 0, (r.stderr, time.monotonic() - t0)
    assert "learns the other site's sums" in r.stderr
    summary = json.loads(out.with_name("x.linear.summary.json").read_text())
    assert "learns the other site's sums" in summary["protocol"]["two_site_disclosure"]
