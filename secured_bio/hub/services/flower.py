"""Federated training jobs (``fl_train``) on Flower's deployment engine, server half at the hub.

For each job the hub runs one ``flower-superlink`` (TLS with a throw-away CA made for the job;
its certificate names the address the sites use) and the pilot's ServerApp
(:func:`secured_bio.privacy.federated.run_federated` with
:class:`~secured_bio.privacy.federated.engines.RemoteSites`); each site's agent starts one
``flower-supernode`` that connects out to it (:func:`secured_bio.hub.agent.flower.run_fl_task`).
The coordination JSON the tasks receive holds the SuperLink's address and the CA certificate
(public; no private key leaves the hub, and the hub receives none).

Threat model and reveal set: the hub (server) learns the aggregated model of every round, the
sites' training/evaluation counts and metrics (the ``rounds`` and ``per_site`` of the
metrics) - with ``secagg`` only the sum of the sites' updates, with ``dp_epsilon`` a model
with site-level DP noise (Flower's fixed-clipping wrapper); never a row.  The sites learn each
round's global model.  No centralized baseline is trained: the hub never pools data, so the
``centralized`` and ``fairness`` keys of ``secured-bio fl run``'s metrics are None here.

When the run ends, the hub writes ``metrics.json`` (the keys of ``fl run``'s), the global
model ``federated_model.npz`` and the model's privacy passport, records both files as the
job's artifacts and marks the sites' tasks succeeded; a failed run fails the job.  The Flower
processes stop when the run ends, when the job is cancelled or fails, and when the hub exits
(:func:`stop_fl_jobs`).
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from secured_bio.errors import did_you_mean
from secured_bio.hub.errors import Conflict, Invalid
from secured_bio.hub.models import Job, Site

__all__ = ["FL_PARAMS", "PILOT_OF_KIND", "start_fl_job", "stop_fl_jobs", "store_hub_artifact",
           "federated_metrics"]

log = logging.getLogger(__name__)

#: ``fl_train`` params (named as ``secured-bio fl run`` options) -> (type, default)
FL_PARAMS: dict[str, tuple[type, Any]] = {
    "rounds": (int, 5),
    "local_epochs": (int, 1),
    "lr": (float, 0.01),
    "strategy": (str, "fedavg"),
    "proximal_mu": (float, 0.1),
    "secagg": (bool, False),
    "secagg_max_weight": (float, 1000.0),
    "dp_epsilon": (float, None),
    "dp_delta": (float, 1e-5),
    "dp_clip": (float, 1.0),
    "seed": (int, 0),
    "test_fraction": (float, 0.3),
    "hidden": (list, [32]),
    "n_rois": (int, None),  # atlas regions, when the catalogue does not list them
    "timeout_s": (float, 1800.0),
}
#: dataset kind -> pilot whose federated task an ``fl_train`` job trains
PILOT_OF_KIND = {"imaging": "tumor_classification"}
_READY_S = 60.0


class _Run:
    """One job's Flower run in this hub worker."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.stop = threading.Event()
        self.done = threading.Event()
        self.thread: threading.Thread | None = None


_RUNS: dict[int, _Run] = {}
_RUNS_LOCK = threading.Lock()
_ATEXIT = [False]


def _check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    opts = {k: d for k, (_, d) in FL_PARAMS.items()}
    for k, v in params.items():
        if k not in FL_PARAMS:
            raise Invalid(f"fl_train has no param {k!r}",
                          fix=did_you_mean(k, FL_PARAMS) or f"use {', '.join(FL_PARAMS)}")
        typ = FL_PARAMS[k][0]
        ok = (isinstance(v, bool) if typ is bool else
              isinstance(v, typ) and not isinstance(v, bool) if typ in (int, str, list) else
              isinstance(v, int | float) and not isinstance(v, bool))
        if not ok:
            raise Invalid(f"fl_train param {k!r} must be {typ.__name__}")
        opts[k] = typ(v) if typ is not list else list(v)
    if opts["rounds"] < 1 or opts["rounds"] > 100 or opts["local_epochs"] < 1:
        raise Invalid("fl_train needs 1 to 100 rounds and local_epochs >= 1")
    return opts


def _plan(session: Any, job_id: int, opts: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(pilot, task path, task params) of the job, from its datasets' catalogue entries."""
    from secured_bio.hub.models import Dataset

    job = session.get(Job, job_id)
    datasets = [session.get(Dataset, i) for i in (job.dataset_ids if job else [])]
    kinds = {d.kind for d in datasets if d is not None}
    if len(kinds) != 1 or next(iter(kinds)) not in PILOT_OF_KIND:
        raise Invalid(f"fl_train trains on {' or '.join(PILOT_OF_KIND)} datasets of one kind; "
                      f"the job has {', '.join(sorted(kinds)) or 'none'}")
    pilot = PILOT_OF_KIND[next(iter(kinds))]
    rois = {d.meta.get("n_rois") for d in datasets if d is not None} - {None}
    n_rois = opts["n_rois"] if opts["n_rois"] is not None else (
        rois.pop() if len(rois) == 1 else None)
    if not isinstance(n_rois, int) or n_rois < 2:
        raise Invalid("the model's size is unknown: the catalogue does not give the atlas' "
                      "regions of these datasets", fix="pass param n_rois (atlas regions)")
    from secured_bio.imaging.federated import TumorConnectivityTask
    from secured_bio.privacy.federated.task import task_path

    params = {"n_features": n_rois * (n_rois - 1) // 2, "test_fraction": opts["test_fraction"],
              "split_seed": opts["seed"], "hidden": opts["hidden"]}
    return pilot, task_path(TumorConnectivityTask), params


def start_fl_job(job_id: int, sites: Sequence[Site], params: Mapping[str, Any], *,
                 data_dir: Path, host: str, sessions: Any, listen: str = "127.0.0.1",
                 port: int = 0, artifacts_dir: Path | None = None,
                 max_bytes: int = 1 << 30) -> dict[str, Any]:
    """Start job ``job_id``'s SuperLink and ServerApp; return the coordination JSON.

    Parameters
    ----------
    job_id, sites, params
        The job (already flushed), its sites in rank order, its params (:data:`FL_PARAMS`).
    data_dir
        The hub's data folder (the run's files go to ``data_dir/runs/job-ID``).
    host, listen, port
        Address the sites reach the SuperLink at; interface and port it binds (0: free).
    sessions
        The hub's session factory (the run records its end from a thread).
    artifacts_dir, max_bytes
        Where artifacts are stored (default ``data_dir/artifacts``) and their size limit.

    Returns
    -------
    dict
        ``superlink`` (HOST:PORT), ``root_certificates`` (CA certificate, PEM), ``tls``,
        ``num_partitions``, ``pilot``, ``worker`` (this hub process).

    Raises
    ------
    Invalid
        If a param is unknown or malformed, or the datasets fit no pilot.
    Conflict
        If the SuperLink could not start.
    """
    from sqlalchemy.orm import object_session

    from secured_bio.hub.services.coordination import WORKER_ID
    from secured_bio.privacy.federated.engines import RemoteSites

    opts = _check_params(params)
    session = object_session(sites[0]) if sites else None
    pilot, task, task_params = _plan(session, job_id, opts)
    run_dir = Path(data_dir) / "runs" / f"job-{job_id}"
    run_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(job_id)
    got: dict[str, Any] = {}
    ready = threading.Event()

    def _ready(info: dict[str, Any]) -> None:
        got.update(info)
        ready.set()

    remote = RemoteSites(host=host, listen=listen, port=port, ready=_ready, stop=run.stop)
    site_names = [s.name for s in sites]
    run.thread = threading.Thread(
        target=_serve, name=f"flower-job-{job_id}", daemon=True,
        args=(run, sessions, task, task_params, opts, remote, run_dir, len(sites), pilot,
              site_names, Path(artifacts_dir or Path(data_dir) / "artifacts"), max_bytes,
              dict(params), ready))
    with _RUNS_LOCK:
        _RUNS[job_id] = run
        if not _ATEXIT[0]:
            atexit.register(stop_fl_jobs)
            _ATEXIT[0] = True
    run.thread.start()
    threading.Thread(target=_watch, args=(run, sessions), name=f"flower-watch-{job_id}",
                     daemon=True).start()
    if not ready.wait(_READY_S) or "superlink" not in got:
        run.stop.set()
        raise Conflict(f"the Flower SuperLink of job {job_id} could not start",
                       fix=f"see the logs in {run_dir / 'flower' / 'logs'}")
    return {"superlink": got["superlink"], "root_certificates": got["root_certificates"],
            "tls": got["root_certificates"] is not None, "num_partitions": len(sites),
            "pilot": pilot, "worker": WORKER_ID}


def stop_fl_jobs(timeout: float = 30.0) -> None:
    """Stop every Flower run of this hub worker (at shutdown); their processes end."""
    with _RUNS_LOCK:
        runs = list(_RUNS.values())
    for r in runs:
        r.stop.set()
    end = time.monotonic() + timeout
    for r in runs:
        if r.thread is not None:
            r.thread.join(max(0.0, end - time.monotonic()))


def _watch(run: _Run, sessions: Any) -> None:
    """Stop the run when its job is cancelled or fails (a site failed)."""
    from secured_bio.hub.db import session_scope

    while not run.done.wait(1.0):
        try:
            with session_scope(sessions) as s:
                job = s.get(Job, run.job_id)
                if job is not None and (job.status in ("cancelled", "failed")
                                        or job.cancel_requested):
                    run.stop.set()
                    return
        except Exception as e:  # noqa: BLE001 - a busy database: try again
            log.debug("job %d: status check failed: %s", run.job_id, e)


def _serve(run: _Run, sessions: Any, task: str, task_params: dict[str, Any],
           opts: dict[str, Any], remote: Any, run_dir: Path, n: int, pilot: str,
           site_names: list[str], artifacts_dir: Path, max_bytes: int,
           job_params: dict[str, Any], ready: threading.Event) -> None:
    from secured_bio.privacy.federated.engines import run_federated

    t0 = time.perf_counter()
    try:
        try:
            result = run_federated(
                task, task_params, num_sites=n, rounds=opts["rounds"],
                work_dir=run_dir / "flower", engine="deployment", strategy=opts["strategy"],
                proximal_mu=opts["proximal_mu"], local_epochs=opts["local_epochs"],
                lr=opts["lr"], secagg=opts["secagg"],
                secagg_max_weight=opts["secagg_max_weight"], dp_epsilon=opts["dp_epsilon"],
                dp_delta=opts["dp_delta"], dp_clip=opts["dp_clip"], seed=opts["seed"],
                timeout_s=opts["timeout_s"], tls=True, remote_sites=remote)
            doc = federated_metrics(result, pilot=pilot, opts=opts, sites=site_names,
                                    task=task, task_params=task_params, job_id=run.job_id,
                                    elapsed=time.perf_counter() - t0)
            files = _write_outputs(run_dir / "out", result, doc, job_params, run.job_id)
        except Exception as e:  # noqa: BLE001 - recorded as the job's error
            ready.set()
            if not run.stop.is_set():
                log.error("federated run of job %d failed: %s", run.job_id, e)
            _finish(sessions, run.job_id, error=_message(e))
            return
        _finish(sessions, run.job_id, files=files, artifacts_dir=artifacts_dir,
                max_bytes=max_bytes)
    finally:
        run.done.set()
        with _RUNS_LOCK:
            _RUNS.pop(run.job_id, None)


def _message(e: Exception) -> str:
    return f"the federated run failed: {type(e).__name__}: {e}"[:2000]


def federated_metrics(result: Any, *, pilot: str, opts: Mapping[str, Any],
                      sites: list[str], task: str, task_params: Mapping[str, Any],
                      job_id: int, elapsed: float) -> dict[str, Any]:
    """Build the metrics document of a hub run, with the top-level keys of ``fl run``'s.

    ``federated`` and ``per_site`` come from Flower's final evaluate round (each site scores
    the global model on its own held-out rows; ``federated`` is their row-weighted mean, not a
    pooled score); what needs pooled rows (``centralized``, ``fairness``,
    ``fairness_summary``, AUPRC) is None.
    """
    from secured_bio.pilots._registry import _metrics_doc, get_pilot

    last = result.rounds[-1] if result.rounds else {}
    n_test = sum(int(s.get("num_test") or 0) for s in result.per_site)
    fed = {"n": n_test, "n_positive": None, "auroc": last.get("eval_auroc"), "auprc": None,
           "accuracy": last.get("eval_accuracy"), "log_loss": last.get("eval_loss"),
           "pooled": False}
    per_site = [{"site": s.get("site"), "n": s.get("num_test"), "n_positive": None,
                 "auroc": s.get("auroc"), "auprc": None, "accuracy": s.get("accuracy"),
                 "log_loss": s.get("loss"), "centralized_auroc": None}
                for s in result.per_site]
    over = result.overhead()
    metrics = {
        "data": {"source": f"hub job {job_id}: the sites' registered datasets"},
        "centralized": None,
        "federated": fed,
        "gap": {"auroc": None},
        "per_site": per_site,
        "per_site_flower": result.per_site,
        "fairness": None,
        # needs the pooled held-out rows and their groups, which never reach the hub
        "fairness_summary": None,
        "rounds": result.rounds,
        "dp": result.dp,
        "secagg": result.secagg,
        "engine": result.engine,
        "timing": {"centralized_train_s": None, "federated_wall_s": round(elapsed, 4),
                   "rounds_wall_s": round(over["round_wall_s"], 4),
                   "local_train_s": round(over["local_train_s_total"], 4),
                   "round_overhead_s": round(over["overhead_s"], 4),
                   "round_overhead_share": (round(over["share"], 4)
                                            if over["share"] != float("inf") else None)},
        "split": {"sites": sites, "n_train": None, "n_test": n_test},
        "plan": {"task": task, "task_params": dict(task_params), "site_data_dirs": None,
                 "sites": sites, "options": dict(opts)},
    }
    cfg = {**{k: v for k, v in opts.items() if v is not None}, "engine": "deployment",
           "sites": len(sites), "tls": True, "node_auth": False}
    return _metrics_doc(get_pilot(pilot), cfg, metrics, elapsed)


def _write_outputs(out: Path, result: Any, doc: dict[str, Any], params: dict[str, Any],
                   job_id: int) -> list[tuple[Path, str, dict[str, Any]]]:
    """Write metrics, model and passports; return (file, artifact kind, passport)."""
    from secured_bio._atomic import atomic_write
    from secured_bio.privacy.federated.apps import _jsonable

    out.mkdir(parents=True, exist_ok=True)
    metrics = out / "metrics.json"
    with atomic_write(metrics) as fh:
        json.dump(_jsonable(doc), fh, indent=2, default=str)
    model = result.save(out / "federated_model.npz")
    from secured_bio.passport import build_passport

    command = "secured-bio hub job fl_train"
    passport = build_passport(model, kind="federated_model", report=doc, command=command,
                              parameters=params, job=str(job_id), companions=[metrics])
    report = build_passport(metrics, kind="report", report=doc, command=command,
                            parameters=params, job=str(job_id))
    return [(model, "federated_model", passport), (metrics, "report", report)]


def store_hub_artifact(session: Any, job: Job, path: Path, *, kind: str,
                       passport: dict[str, Any], root: Path, max_bytes: int) -> Any:
    """Record a file the hub produced for ``job`` as its artifact (as an upload is stored)."""
    from secured_bio.hub.services.artifacts import store_upload

    with open(path, "rb") as fh:
        return store_upload(session, None, job=job, name=path.name, kind=kind, stream=fh,
                            root=root, max_bytes=max_bytes, passport=passport, site_name="hub")


def _finish(sessions: Any, job_id: int, *, files: list[tuple[Path, str, dict[str, Any]]]
            | None = None, artifacts_dir: Path | None = None, max_bytes: int = 0,
            error: str | None = None) -> None:
    """Record the run's end: artifacts and succeeded tasks, or the job's failure."""
    from secured_bio.hub.db import session_scope
    from secured_bio.hub.models import utcnow
    from secured_bio.hub.services.audit import append_event
    from secured_bio.hub.services.jobs import refresh_status

    deadline = time.monotonic() + 30
    while True:  # the job's row is committed when the request that made it ends
        with session_scope(sessions) as s:
            job = s.get(Job, job_id)
            if job is not None or time.monotonic() > deadline:
                break
        time.sleep(0.2)
    with session_scope(sessions) as s:
        job = s.get(Job, job_id)
        if job is None or job.status in ("cancelled", "failed", "succeeded"):
            return  # cancelled, or a site failed: nothing is released
        if error is None and files:
            try:
                for path, kind, passport in files:
                    store_hub_artifact(s, job, path, kind=kind, passport=passport,
                                       root=artifacts_dir or Path("."), max_bytes=max_bytes)
            except Exception as e:  # noqa: BLE001 - recorded below
                error = f"the run's results could not be stored: {type(e).__name__}: {e}"
                s.rollback()
                job = s.get(Job, job_id)
                assert job is not None
        now = utcnow()
        if error is None:
            for t in job.tasks:
                if t.status in ("queued", "running"):
                    t.status, t.progress, t.finished_at = "succeeded", 1.0, now
                    t.message = "the federated run ended at the hub"
            refresh_status(s, job)
            append_event(s, actor="hub", action="job.succeeded", target=f"job:{job_id}",
                         details={"kind": job.kind})
        else:
            job.status, job.error, job.finished_at = "failed", error[:2000], now
            for t in job.tasks:
                if t.status in ("queued", "running"):
                    t.status, t.error = "cancelled", "the federated run failed at the hub"
            append_event(s, actor="hub", action="job.failed", target=f"job:{job_id}",
                         details={"reason": error[:500]})
