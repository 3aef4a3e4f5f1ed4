"""The site agent's main loop: register, then claim -> run -> upload -> complete, forever.

The agent only connects out to the hub.  A failing task is reported to the hub as failed
with its message (which names files, options and counts, never data values) and the loop
goes on; only an unusable configuration (no datasets, a refused token at registration)
stops it.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from secured_bio.errors import InputFileNotFoundError, SecuredBioError
from secured_bio.hub.agent.beacon import BeaconKey, serve_beacon
from secured_bio.hub.agent.client import HubClient, HubError
from secured_bio.hub.agent.discover import LocalDataset, discover_datasets
from secured_bio.hub.agent.runners import (
    Release,
    SiteIdentity,
    TaskCancelled,
    TaskFailed,
    run_task,
)

__all__ = ["default_state_dir", "read_token", "run_agent", "run_one_task"]

log = logging.getLogger(__name__)

#: Seconds between two progress calls to the hub (the runner reports more often).
PROGRESS_TO_HUB_S = 5.0


def default_state_dir(data_dir: str | os.PathLike[str]) -> Path:
    """Return the agent's state folder when none is given: ``DATA/.secured-bio-agent``."""
    return Path(data_dir) / ".secured-bio-agent"


def read_token(token_file: str | os.PathLike[str]) -> str:
    """Read the site token: the file's first line.

    Raises
    ------
    InputFileNotFoundError
        If the file does not exist.
    SecuredBioError
        If it is empty.
    """
    p = Path(token_file)
    if not p.is_file():
        raise InputFileNotFoundError("site token file not found", where=str(p),
                                     fix="ask the hub admin for the site token "
                                         "(secured-bio hub add-site) and save it there")
    lines = p.read_text(encoding="utf-8").strip().splitlines()
    if not lines or not lines[0].strip():
        raise SecuredBioError("the site token file is empty", where=str(p),
                              fix="write the token on its first line")
    return lines[0].strip()


def run_agent(hub_url: str, site: str, token_file: str | os.PathLike[str],
              data_dir: str | os.PathLike[str], *,
              state_dir: str | os.PathLike[str] | None = None, poll_s: float = 2.0,
              once: bool = False, stop: threading.Event | None = None,
              client: HubClient | None = None) -> int:
    """Run a site agent: discover and register the datasets, then serve the hub's tasks.

    Parameters
    ----------
    hub_url
        The hub's address (``https://hub.example.org``).
    site
        This site's name (also the common name of its SMPC certificate).
    token_file
        File whose first line is the site token.
    data_dir
        The site's data folder with ``datasets.yaml`` (see
        :mod:`secured_bio.hub.agent.discover`).
    state_dir
        Where the agent keeps its SMPC key pair (``smpc/``) and task work folders
        (``work/``); default ``DATA/.secured-bio-agent``.
    poll_s
        Seconds between two claims when the hub has no task.
    once
        Stop when the hub has no task (after serving those there are): tests, cron.
    stop
        Set it to stop the loop after the current task (another thread, a signal handler).
    client
        A ready :class:`HubClient` (tests); default one for ``hub_url`` and the token.

    Returns
    -------
    int
        The number of tasks served.

    Raises
    ------
    HubError
        If the hub refuses the registration (token, site) or stays unreachable.
    InputFileNotFoundError, ConfigError, SchemaError, FormatError
        If the data folder, its manifest or a dataset file is wrong.
    """
    stop = stop or threading.Event()
    state = Path(state_dir) if state_dir is not None else default_state_dir(data_dir)
    state.mkdir(parents=True, exist_ok=True)
    datasets = discover_datasets(data_dir)
    by_name = {d.name: d for d in datasets}
    identity = SiteIdentity.load_or_create(site, state)
    beacon_key = BeaconKey.load_or_create(state)
    own = client is None
    hub = client or HubClient(hub_url, read_token(token_file))
    beacon_stop = threading.Event()
    beacon_thread: threading.Thread | None = None
    try:
        answer = hub.register(datasets, smpc_cert=identity.cert_pem,
                              beacon_key=beacon_key.public)
        log.info("registered site %s with %d dataset(s): %s", answer.get("site", site),
                 len(datasets), ", ".join(by_name))
        if not once and any(d.kind == "genotypes" for d in datasets):
            # Beacon queries are answered beside the tasks (a long task does not hold them)
            beacon_thread = threading.Thread(
                target=serve_beacon, args=(hub, site, beacon_key, by_name, beacon_stop),
                name="beacon", daemon=True)
            beacon_thread.start()
        served = 0
        while not stop.is_set():
            try:
                task = hub.claim()
            except HubError as e:
                if e.status_code is not None:
                    raise
                log.warning("claiming a task failed: %s", e)
                stop.wait(poll_s)
                continue
            if task is None:
                if once:
                    break
                stop.wait(poll_s)
                continue
            run_one_task(hub, task, by_name, state / "work", identity=identity)
            served += 1
        return served
    finally:
        beacon_stop.set()
        if beacon_thread is not None:
            beacon_thread.join(15)
        if own:
            hub.close()


def run_one_task(hub: HubClient, task: dict[str, Any], datasets: dict[str, LocalDataset],
                 work_root: Path, *, identity: SiteIdentity) -> str:
    """Run one claimed task, upload its releases and report its end; never raises for it.

    Returns
    -------
    str
        ``succeeded``, ``failed`` or ``cancelled``.
    """
    task_id = task.get("id")
    kind = task.get("kind")
    work = work_root / f"task-{_safe(task_id)}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    log.info("task %s (%s, job %s): started", task_id, kind, task.get("job_id"))
    last = [0.0]

    def progress(fraction: float, message: str) -> bool:
        now = time.monotonic()
        if now - last[0] < PROGRESS_TO_HUB_S:
            return False
        last[0] = now
        try:
            return hub.progress(task_id, fraction, message)
        except HubError as e:  # the task goes on; the hub hears at the end
            log.warning("task %s: progress report failed: %s", task_id, e)
            return False

    status, error = "failed", None
    try:
        releases: list[Release] = run_task(task, datasets, work, identity=identity,
                                           progress=progress)
        for release in releases:
            hub.upload(task_id, release)
            log.info("task %s: uploaded %s (%s)", task_id, release.name, release.kind)
        status = "succeeded"
    except TaskCancelled as e:
        status, error = "cancelled", str(e)
    except (TaskFailed, SecuredBioError, NotImplementedError) as e:
        error = str(e)
    except Exception as e:  # never crash the agent on one task; no repr (it may hold data)
        error = f"internal error in the site agent: {type(e).__name__}"
        log.exception("task %s: internal error", task_id)
    log.info("task %s: %s%s", task_id, status, f": {error}" if error else "")
    try:
        if status != "cancelled":
            hub.complete(task_id, status, error)
    except HubError as e:
        log.error("task %s: could not report its end to the hub: %s", task_id, e)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return status


def _safe(value: Any) -> str:
    text = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(value))
    return text[:64] or "unknown"
