"""A site's part of a federated training job (``fl_train``): one Flower SuperNode.

The agent computes the site's model inputs locally (for the tumour pilot, the connectivity
features of its fMRI series, as ``secured-bio fl run`` does for each demo site), then starts
``flower-supernode`` connected out to the job's SuperLink at the hub, over TLS with the CA
certificate from the task's coordination, and naming its data folder in the node config.  Its
ClientApp trains and evaluates on that folder only; model parameters (masked under SecAgg+),
counts and metrics leave the site, never a row.  Nothing is released by the site: the model is
aggregated, written and released at the hub.

The SuperNode runs until the hub says stop: the run ended (the hub marks the task succeeded)
or the job was cancelled or failed.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["prepare_site_inputs", "run_fl_task"]

#: Seconds between two progress calls.
POLL_S = 1.0


def _site_name(data_dir: Path) -> str:
    table = data_dir / "participants.tsv"
    if table.is_file():
        with open(table, newline="", encoding="utf-8") as fh:
            sites = {row.get("site") for row in csv.DictReader(fh, delimiter="\t")} - {None, ""}
        if len(sites) == 1:
            return str(sites.pop())
    return data_dir.name


def prepare_site_inputs(pilot: str, data_dir: Path, workdir: Path) -> Path:
    """Return the folder the pilot's task reads at this site, computing it when needed.

    For ``tumor_classification``: ``data_dir`` holds ``connectivity_features.tsv`` already,
    or the site's imaging dataset (``sub-*/func/*.nii.gz``, ``atlas.nii.gz``,
    ``participants.tsv``), whose features are computed into ``workdir/features``.

    Raises
    ------
    ConfigError
        If the pilot has no site-side preparation here.
    """
    from secured_bio.errors import ConfigError

    if pilot != "tumor_classification":
        raise ConfigError("no federated site inputs for this pilot", where="fl_train",
                          expected="tumor_classification", got=repr(pilot),
                          fix="update the site agent")
    from secured_bio.imaging.features import connectivity_features, write_features
    from secured_bio.imaging.federated import FEATURES_FILE

    if (data_dir / FEATURES_FILE).is_file():
        return data_dir
    site = _site_name(data_dir)
    cohort = workdir / "cohort"
    cohort.mkdir(parents=True, exist_ok=True)
    # A read-only view in the cohort layout connectivity_features expects; inputs untouched.
    for name in ("atlas.nii.gz", "atlas.nii", "participants.tsv"):
        if (data_dir / name).is_file() and not (cohort / name).exists():
            os.symlink((data_dir / name).resolve(), cohort / name)
    if not (cohort / site).exists():
        os.symlink(data_dir.resolve(), cohort / site, target_is_directory=True)
    out = workdir / "features"
    write_features(connectivity_features(cohort, sites=[site]), out / FEATURES_FILE)
    return out


def run_fl_task(task: Mapping[str, Any], data_dir_of_dataset: Path, workdir: Path, *,
                progress: Callable[[float, str], bool]) -> list[Any]:
    """Run this site's SuperNode of an ``fl_train`` task until the hub says stop.

    Parameters
    ----------
    task
        The claim JSON: ``rank``, ``world_size`` and ``coordination`` (``superlink``
        HOST:PORT, ``root_certificates`` PEM or None, ``pilot``).
    data_dir_of_dataset
        The folder of this site's dataset of the job.
    workdir
        An empty folder for this task (features, Flower state, logs).
    progress
        Called about every second; returns True when the hub says stop.

    Returns
    -------
    list
        Empty: a site releases nothing (the model is aggregated at the hub).

    Raises
    ------
    TaskFailed
        If the coordination is incomplete or the SuperNode exits on its own.
    """
    from secured_bio.hub.agent.runners import TaskFailed
    from secured_bio.privacy.federated.engines import _BIN, _env, _free_port, _Processes

    coord = task.get("coordination") or {}
    link = coord.get("superlink")
    if not isinstance(link, str) or ":" not in link:
        raise TaskFailed("the task names no Flower SuperLink (coordination.superlink)")
    rank, n = int(task.get("rank", 0)), int(task.get("world_size", coord.get(
        "num_partitions", 0)))
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    progress(0.0, "preparing the site's model inputs")
    data = prepare_site_inputs(str(coord.get("pilot", "tumor_classification")),
                               Path(data_dir_of_dataset), work)
    tls = ["--insecure"]
    if coord.get("root_certificates"):
        ca = work / "ca.crt"
        ca.write_text(str(coord["root_certificates"]), encoding="utf-8")
        tls = ["--root-certificates", str(ca)]
    node_cfg = (f"partition-id={rank} num-partitions={n} "
                f"data-dir={json.dumps(str(data.resolve()))}")
    env = _env(work)
    Path(env["FLWR_HOME"]).mkdir(parents=True, exist_ok=True)
    log = work / "supernode.log"
    procs = _Processes()
    try:
        node = procs.start([str(_BIN / "flower-supernode"), *tls, "--superlink", link,
                            "--node-config", node_cfg, "--port", str(_free_port())], env, log)
        while True:
            procs.scan()
            if node.poll() is not None:
                raise TaskFailed(f"the Flower SuperNode stopped (exit code {node.returncode}); "
                                 f"see {log}")
            if progress(0.5, "SuperNode connected out to the hub's SuperLink; training"):
                return []
            time.sleep(POLL_S)
    finally:
        procs.stop()
