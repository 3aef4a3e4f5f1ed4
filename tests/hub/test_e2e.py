"""End to end through a real hub: agents in their own processes, jobs at the sites.

A secure GWAS run through the hub equals ``secured-bio gwas secure`` on the same cohorts;
single-site jobs release their tables with passports; the hub never holds a record or
sample ID of the cohorts; the audit chain verifies.  Both databases.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hub._demo import Api, grant, running_demo

from secured_bio.cli import main as cli_main

pytestmark = pytest.mark.slow


def _neglog10(path: Path) -> pd.Series:
    df = pd.read_csv(path, sep="\t")
    p = next(c for c in ("P", "p_value") if c in df.columns)
    key = df["ID"] if "ID" in df.columns else df.iloc[:, 2]
    return pd.Series(-np.log10(df[p].to_numpy(float)), index=key.to_numpy())


def test_hub__secure_gwas_equals_cli_and_no_ids_reach_the_hub(tmp_path: Path,
                                                               db_url: str) -> None:
    with running_demo(tmp_path, db_url) as demo:
        researcher, committee = Api(demo.url, "researcher"), Api(demo.url, "committee")
        catalogue = researcher.get("/api/v1/datasets")
        assert {d["kind"] for d in catalogue} == {"genotypes", "imaging", "vitals", "clinical"}
        geno = sorted((d for d in catalogue if d["kind"] == "genotypes"),
                      key=lambda d: d["site"])
        clinical = next(d for d in catalogue if d["kind"] == "clinical")
        rid = grant(researcher, committee, [d["id"] for d in geno] + [clinical["id"]],
                    ["gwas_secure", "anonymize"])

        job = researcher.post("/api/v1/jobs", {
            "access_request": rid, "kind": "gwas_secure",
            "datasets": [d["id"] for d in geno], "params": {"test": "linear"}})
        done = researcher.wait_job(job["id"])
        assert done["status"] == "succeeded", (done["error"], done["sites"])
        arts = {a["name"]: a["id"] for a in done["artifacts"]}
        tsv = next(n for n in arts if n.endswith(".linear.tsv"))
        hub_tsv = tmp_path / "hub.linear.tsv"
        r = researcher.http.get(f"/api/v1/artifacts/{arts[tsv]}/download")
        assert r.status_code == 200
        hub_tsv.write_bytes(r.content)
        passport = researcher.get(f"/api/v1/artifacts/{arts[tsv]}/passport")
        assert passport["classification"]["category"] == "aggregate"
        assert [i["id"] for i in passport["inputs"]] == [f"dataset:{d['id']}" for d in geno]
        assert "DUO:0000006" in passport["data_use"]["duo"]

        # the same analysis with the CLI on the sites' files (one pheno/covar for all sites)
        sites = demo.data_dir / "sites"
        for name in ("pheno", "covar"):
            parts = [(sites / d["site"] / "genomics" / f"{name}.tsv").read_text().splitlines()
                     for d in geno]
            lines = parts[0][:1] + [line for p in parts for line in p[1:]]
            (tmp_path / f"{name}.tsv").write_text("\n".join(lines) + "\n")
        args = ["gwas", "secure", "--pheno", str(tmp_path / "pheno.tsv"), "--covar",
                str(tmp_path / "covar.tsv"), "--test", "linear", "--out", str(tmp_path / "cli")]
        for d in geno:
            args += ["--site", f"{d['site']}={sites / d['site'] / 'genomics'}/{d['site']}.vcf.gz"]
        assert cli_main(args) == 0
        a, b = _neglog10(hub_tsv), _neglog10(tmp_path / "cli.linear.tsv")
        assert a.index.equals(b.index)
        assert float(np.nanmax(np.abs(a.to_numpy() - b.to_numpy()))) <= 1e-9

        anon = researcher.post("/api/v1/jobs", {
            "access_request": rid, "kind": "anonymize", "datasets": [clinical["id"]],
            "params": {"quasi_identifiers": ["age", "sex", "diagnosis"], "k": 3}})
        done = researcher.wait_job(anon["id"])
        assert done["status"] == "succeeded", (done["error"], done["sites"])

        # the hub never received a record or sample ID (database dump + artifact storage)
        ids = (sites / "ids.txt").read_text().split()
        assert len(ids) > 100
        blob = _dump(db_url) + b"".join(
            p.read_bytes() for p in (demo.data_dir / "hub").rglob("*") if p.is_file()
            and "hub.db" not in p.name)
        pattern = re.compile(b"|".join(re.escape(i.encode()) for i in ids))
        found = pattern.findall(blob)
        assert not found, f"{len(found)} IDs of the cohorts reached the hub"

        admin = Api(demo.url, "admin")
        audit = admin.get("/api/v1/audit")
        assert audit["chain_ok"], audit
        assert audit["events"] > 10
        for api in (admin, researcher, committee):
            api.close()


def _dump(db_url: str) -> bytes:
    """Every value of every table, as text."""
    from sqlalchemy import MetaData, create_engine

    engine = create_engine(db_url.replace("+psycopg", "+psycopg") if db_url else db_url)
    meta = MetaData()
    meta.reflect(engine)
    out = []
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(table.select()):
                out.append(repr(tuple(row)).encode())
    engine.dispose()
    return b"\n".join(out)
