"""An ``fl_train`` job of the tumour pilot through the hub: SuperLink at the hub, a SuperNode
per site agent (Flower deployment engine, real processes on loopback, TLS)."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import psutil
import pytest

from secured_bio.hub.agent.flower import run_fl_task
from secured_bio.hub.db import make_engine, make_sessionmaker, migrate, session_scope
from secured_bio.hub.models import AccessRequest, Artifact, Dataset, Job, Site, Task, User
from secured_bio.hub.services.flower import start_fl_job

PILOT = "tumor_classification"
DEMO = {"subjects_per_site": 8, "n_timepoints": 30}


def _site_dataset(cohort: Path, site: str, dest: Path) -> Path:
    """A site's imaging dataset as the hub demo lays it out: its series, rows, the atlas."""
    shutil.copytree(cohort / site, dest)
    shutil.copy2(cohort / "atlas.nii.gz", dest / "atlas.nii.gz")
    rows = (cohort / "participants.tsv").read_text().splitlines()
    col = rows[0].split("\t").index("site")
    keep = [rows[0]] + [r for r in rows[1:] if r.split("\t")[col] == site]
    (dest / "participants.tsv").write_text("\n".join(keep) + "\n")
    return dest


def _hub(tmp_path: Path, sites: list[str], params: dict) -> tuple[object, int, list[dict]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(engine)
    sessions = make_sessionmaker(engine)
    with session_scope(sessions) as s:
        user = User(username="res", password_hash="x", role="researcher")
        site_rows = [Site(name=n) for n in sites]
        s.add_all([user, *site_rows])
        s.flush()
        ds = [Dataset(site_id=r.id, name="tumor_fmri", kind="imaging", meta={"n_rois": 8})
              for r in site_rows]
        s.add_all(ds)
        s.flush()
        req = AccessRequest(researcher_id=user.id, purpose="test", status="approved",
                            allowed_kinds=["fl_train"], dp_budget=10.0)
        s.add(req)
        s.flush()
        job = Job(request_id=req.id, created_by=user.id, kind="fl_train", params=params,
                  dataset_ids=[d.id for d in ds], status="running")
        s.add(job)
        s.flush()
        tasks = [Task(job_id=job.id, site_id=r.id, rank=i, dataset_ids=[d.id],
                      status="running") for i, (r, d) in enumerate(zip(site_rows, ds, strict=True))]
        s.add_all(tasks)
        s.flush()
        # as create_job does: coordinate(job, sites) inside the creating session
        job.coordination = start_fl_job(job.id, site_rows, params, data_dir=tmp_path / "hub",
                                        host="127.0.0.1", sessions=sessions)
        claims = [{"id": t.id, "job_id": job.id, "kind": "fl_train", "params": params,
                   "rank": t.rank, "world_size": len(tasks), "coordination": job.coordination}
                  for t in tasks]
        job_id = job.id
    return sessions, job_id, claims


@pytest.mark.slow
# opacus warns while it searches the noise multiplier of a 1-round run (its accountant's
# largest order is optimal there); the reported epsilon is still checked below.
@pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha:UserWarning")
def test_fl_train_job__tumour_pilot_through_hub_matches_fl_run_keys_and_passport(tmp_path):
    from secured_bio.cli import main
    from secured_bio.testing import write_demo_cohort

    cohort = tmp_path / "cohort"
    write_demo_cohort(cohort, pilot=PILOT, n_sites=3, seed=1, **DEMO)
    sites = ["site1", "site2", "site3"]
    data = {s: _site_dataset(cohort, s, tmp_path / "sites" / s / "imaging") for s in sites}
    params = {"rounds": 1, "secagg": True, "dp_epsilon": 5.0, "secagg_max_weight": 100.0}
    sessions, job_id, claims = _hub(tmp_path, sites, params)
    assert claims[0]["coordination"]["superlink"].startswith("127.0.0.1:")
    assert "PRIVATE KEY" not in json.dumps(claims[0]["coordination"])
    assert "BEGIN CERTIFICATE" in claims[0]["coordination"]["root_certificates"]

    errors: list[BaseException] = []

    def site(claim: dict, folder: Path) -> None:
        def progress(fraction: float, message: str) -> bool:
            with session_scope(sessions) as s:
                t = s.get(Task, claim["id"])
                return t.status != "running" or t.job.status in ("failed", "cancelled")

        try:
            assert run_fl_task(claim, folder, tmp_path / f"work{claim['rank']}",
                               progress=progress) == []
        except BaseException as e:  # noqa: BLE001 - re-raised in the test thread
            errors.append(e)

    threads = [threading.Thread(target=site, args=(c, data[s]))
               for c, s in zip(claims, sites, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert not errors, errors
    with session_scope(sessions) as s:
        job = s.get(Job, job_id)
        assert job.status == "succeeded", job.error
        assert {t.status for t in job.tasks} == {"succeeded"}
        arts = {a.name: a for a in s.query(Artifact).filter_by(job_id=job_id)}
        assert set(arts) == {"federated_model.npz", "metrics.json"}
        assert all(a.task_id is None for a in arts.values())
        passport = json.dumps(arts["federated_model.npz"].passport).lower()
        metrics_sha = arts["metrics.json"].sha256
    assert "secagg" in passport and "epsilon" in passport
    hub_out = tmp_path / "hub" / "runs" / f"job-{job_id}" / "out"
    hub_metrics = json.loads((hub_out / "metrics.json").read_text())
    assert hub_metrics["secagg"] and hub_metrics["dp"]["epsilon"] > 0
    assert [r["num_clients"] for r in hub_metrics["rounds"]] == [3]
    assert len(metrics_sha) == 64

    # the same pilot through `fl run` (the metrics' keys do not depend on the engine)
    out = tmp_path / "fl"
    assert main(["fl", "run", "--pilot", PILOT, "--engine", "inprocess", "--data", str(cohort),
                 "--sites", "3", "--rounds", "1", "--secagg", "--dp-epsilon", "5",
                 "--secagg-max-weight", "100", "--out", str(out)]) == 0
    ref = json.loads((out / "metrics.json").read_text())
    assert set(hub_metrics) == set(ref)
    assert set(hub_metrics["federated"]) >= set(ref["federated"])
    assert set(hub_metrics["per_site"][0]) >= set(ref["per_site"][0])
    assert set(hub_metrics["rounds"][0]) == set(ref["rounds"][0])
    # every Flower process is gone
    left = [p for p in psutil.process_iter(["cmdline"])
            if any("flower-super" in str(c) for c in (p.info["cmdline"] or []))
            and str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert not left
