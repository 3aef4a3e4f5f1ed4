"""Benchmark: the hub under concurrent load, on SQLite and on PostgreSQL.

Starts the hub as a real ``secured-bio hub serve`` subprocess (one uvicorn worker) on each
database (a SQLite file; a throw-away PostgreSQL server), seeds sites, datasets, researchers
and jobs, then runs N client threads on loopback, each sending M mixed requests through its
own HTTP connection: catalogue list (35 %), catalogue search (20 %), job status (25 %),
access-request creation (15 %, writes), login (5 %, argon2id).  Prints one JSON object: per
database p50/p95/p99 latency, throughput, the number of 5xx answers (must be 0) and lost
writes (requests acknowledged with 201 minus rows found afterwards: must be 0).  Exits 1 when
either is not 0.

The login rate limit (10 a minute per name and per client address) is raised for the run:
every client shares 127.0.0.1.

    python benchmarks/hub_load.py [--clients 50] [--requests 40] [--db sqlite,postgresql]
    python benchmarks/hub_load.py --quick        # CI size: 8 clients x 10 requests
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

PASSWORD = "load-test password 1"
N_RESEARCHERS = 8
MIX = (("catalogue", 0.35), ("search", 0.20), ("job_status", 0.25), ("create_request", 0.15),
       ("login", 0.05))


def _seed(db: str, data_dir: Path) -> dict[str, Any]:
    """Sites, datasets, researchers with an approved request and a job each; their tokens."""
    from secured_bio.hub import security
    from secured_bio.hub.app import create_app
    from secured_bio.hub.db import session_scope
    from secured_bio.hub.services import access, accounts, catalogue, jobs
    from secured_bio.hub.settings import HubSettings

    app = create_app(HubSettings(data_dir=data_dir, db=db))
    out: dict[str, Any] = {"researchers": [], "datasets": []}
    with session_scope(app.state.sessions) as s:
        committee = accounts.create_user(s, "committee", PASSWORD, "committee")
        for i in range(1, 4):
            site, _ = accounts.create_site(s, f"site{i}")
            ds = catalogue.register_datasets(s, site, [
                {"name": f"cohort-{i}-{k}", "kind": "clinical", "duo": ["DUO:0000042"],
                 "description": ("asthma admissions" if k % 3 == 0 else "paediatric cohort"),
                 "metadata": {"n": 1000 + k, "variables": ["age", "sex", "diagnosis"]}}
                for k in range(10)], smpc_cert=None, agent_version="bench")
            out["datasets"] += [d.id for d in ds]
        for i in range(N_RESEARCHERS):
            user = accounts.create_user(s, f"researcher{i}", PASSWORD, "researcher")
            req = access.create_request(s, user, dataset_ids=[out["datasets"][i]],
                                        purpose="Load test: readmissions after asthma care",
                                        analyses=["anonymize"], purpose_terms=None)
            access.decide(s, committee, req, decision="approve", reason="benchmark")
            job = jobs.create_job(s, user, request_id=req.id, kind="anonymize",
                                  dataset_ids=[out["datasets"][i]],
                                  params={"k": 5, "quasi_identifiers": ["age", "sex"]})
            token, _ = security.issue_token(str(user.id), key=app.state.signing_key,
                                            minutes=120, claims={"role": "researcher"})
            out["researchers"].append({"name": user.username, "id": user.id, "job": job.id,
                                       "token": token})
    app.state.engine.dispose()
    return out


def _count_requests(db: str, data_dir: Path) -> int:
    from sqlalchemy import func, select

    from secured_bio.hub.app import create_app
    from secured_bio.hub.db import session_scope
    from secured_bio.hub.models import AccessRequest
    from secured_bio.hub.settings import HubSettings

    app = create_app(HubSettings(data_dir=data_dir, db=db), run_migrations=False)
    with session_scope(app.state.sessions) as s:
        n = int(s.scalar(select(func.count()).select_from(AccessRequest)) or 0)
    app.state.engine.dispose()
    return n


def _client(url: str, who: dict[str, Any], datasets: list[int], n: int, seed: int,
            results: list[tuple[str, float, int]], lock: threading.Lock) -> None:
    import httpx

    rng = random.Random(seed)
    kinds, weights = zip(*MIX, strict=True)
    auth = {"Authorization": f"Bearer {who['token']}"}
    mine: list[tuple[str, float, int]] = []
    with httpx.Client(base_url=url, timeout=120) as h:
        for _ in range(n):
            kind = rng.choices(kinds, weights)[0]
            t0 = time.perf_counter()
            try:
                if kind == "catalogue":
                    r = h.get("/api/v1/datasets", headers=auth)
                elif kind == "search":
                    r = h.get("/api/v1/datasets", params={"q": "asthma"}, headers=auth)
                elif kind == "job_status":
                    r = h.get(f"/api/v1/jobs/{who['job']}", headers=auth)
                elif kind == "create_request":
                    r = h.post("/api/v1/access-requests", headers=auth, json={
                        "datasets": [rng.choice(datasets)], "analyses": ["anonymize"],
                        "purpose": "Load test: a new request for one cohort"})
                else:
                    r = h.post("/api/v1/auth/token",
                               data={"username": who["name"], "password": PASSWORD})
                status = r.status_code
            except httpx.HTTPError:
                status = 599  # no answer at all counts as a server failure
            mine.append((kind, time.perf_counter() - t0, status))
    with lock:
        results.extend(mine)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * len(values) + 0.5) - 1))]


def run_one(backend: str, clients: int, requests: int, workdir: Path) -> dict[str, Any]:
    """Seed, serve, load and check one database."""
    from secured_bio.testing._hubserver import start_hub

    server = None
    data_dir = workdir / backend
    if backend == "postgresql":
        from secured_bio.testing._postgres import start_postgres

        server = start_postgres()
        db = server.create_database("bench_")
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        db = f"sqlite:///{data_dir / 'hub.db'}"
    try:
        seeded = _seed(db, data_dir)
        before = _count_requests(db, data_dir)
        env = dict(os.environ, SECURED_BIO_HUB_LOGIN_ATTEMPTS_PER_MINUTE="1000000")
        hub = start_hub(db, data_dir, env=env)
        results: list[tuple[str, float, int]] = []
        lock = threading.Lock()
        threads = [threading.Thread(target=_client, args=(
            hub.url, seeded["researchers"][i % N_RESEARCHERS], seeded["datasets"], requests,
            i, results, lock)) for i in range(clients)]
        t0 = time.perf_counter()
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            wall = time.perf_counter() - t0
            hub.stop()
        found = _count_requests(db, data_dir) - before
    finally:
        if server is not None:
            server.stop()
    lat = [r[1] * 1000 for r in results]
    acked = sum(1 for k, _, s in results if k == "create_request" and s == 201)
    per_kind = {}
    for kind, _ in MIX:
        ms = [r[1] * 1000 for r in results if r[0] == kind]
        per_kind[kind] = {"n": len(ms), "p50_ms": round(_pct(ms, 50), 1),
                          "p95_ms": round(_pct(ms, 95), 1)}
    statuses: dict[str, int] = {}
    for _, _, s in results:
        statuses[str(s)] = statuses.get(str(s), 0) + 1
    return {
        "database": backend, "requests": len(results), "wall_s": round(wall, 2),
        "throughput_rps": round(len(results) / wall, 1),
        "p50_ms": round(_pct(lat, 50), 1), "p95_ms": round(_pct(lat, 95), 1),
        "p99_ms": round(_pct(lat, 99), 1), "mean_ms": round(statistics.fmean(lat), 1),
        "server_errors_5xx": sum(1 for _, _, s in results if s >= 500),
        "status_counts": statuses, "writes_acknowledged": acked, "writes_found": found,
        "lost_writes": acked - found, "per_kind": per_kind,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the JSON report; exit 1 on a 5xx or a lost write."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=40, help="requests per client")
    ap.add_argument("--db", default="sqlite,postgresql",
                    help="comma-separated: sqlite, postgresql")
    ap.add_argument("--quick", action="store_true", help="8 clients x 10 requests (CI)")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args(argv)
    if args.quick:
        args.clients, args.requests = 8, 10
    backends = [b.strip() for b in args.db.split(",") if b.strip()]
    bad = [b for b in backends if b not in ("sqlite", "postgresql")]
    if bad:
        ap.error(f"unknown database {bad[0]!r}: use sqlite and/or postgresql")
    report: dict[str, Any] = {
        "benchmark": "hub_load", "clients": args.clients, "requests_per_client": args.requests,
        "mix": dict(MIX), "hub_workers": 1, "cpus": os.cpu_count(), "results": []}
    with tempfile.TemporaryDirectory(prefix="hub-load-") as tmp:
        for backend in backends:
            report["results"].append(run_one(backend, args.clients, args.requests, Path(tmp)))
    report["ok"] = all(r["server_errors_5xx"] == 0 and r["lost_writes"] == 0
                       for r in report["results"])
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
