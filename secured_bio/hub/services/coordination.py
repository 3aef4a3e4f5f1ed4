"""What the hub sets up for multi-site jobs: the relay of a secure GWAS.

The hub holds the sites' SMPC certificates (sent by their agents at registration) and its own
relay key pair; for each secure GWAS it writes the run's roster (sites in rank order + the
relay), and runs the relay in a thread of the worker that created the job.  Sites connect out
to it over mutual TLS; messages are sealed end to end between sites, so the hub sees sizes
only (see SECURITY.md, "Relay links").
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

from secured_bio.hub.errors import Conflict
from secured_bio.hub.models import Site

__all__ = ["WORKER_ID", "start_gwas_relay", "worker_alive"]

log = logging.getLogger(__name__)

#: this hub process (host:pid): owner of the relays it started
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


def worker_alive(worker: str | None) -> bool:
    """Whether the hub process ``worker`` (host:pid) still runs (same host only)."""
    if not worker:
        return False
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another host: cannot tell, assume alive
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _relay_identity(keys_dir: Path) -> tuple[Path, Path]:
    from secured_bio.privacy.smpc import create_identity

    key, cert = keys_dir / "hub-relay.key.pem", keys_dir / "hub-relay.cert.pem"
    if not key.is_file():
        keys_dir.mkdir(parents=True, exist_ok=True)
        try:
            create_identity("hub-relay", keys_dir)
        except Exception:  # noqa: BLE001 - another worker made it first
            if not key.is_file():
                raise
    return key, cert


def start_gwas_relay(job_id: int, sites: list[Site], *, data_dir: Path, host: str,
                     listen: str, port: int = 0) -> dict[str, Any]:
    """Write the roster of job ``job_id`` and start its relay; returns the coordination JSON.

    Raises
    ------
    Conflict
        If a site's agent has not sent its SMPC certificate yet.
    """
    from secured_bio.privacy.smpc import run_relay, write_roster

    missing = [s.name for s in sites if not s.smpc_cert]
    if missing:
        raise Conflict(f"site {missing[0]} has no SMPC certificate yet",
                       fix="start the site's agent (secured-bio hub agent) and try again")
    run_dir = data_dir / "runs" / f"job-{job_id}"
    run_dir.mkdir(parents=True, exist_ok=True)
    certs = []
    for s in sites:
        p = run_dir / f"{s.name}.cert.pem"
        p.write_text(s.smpc_cert or "")
        certs.append(p)
    key, cert = _relay_identity(data_dir / "keys")
    roster = write_roster(run_dir / "roster.json", certs, cert, session=f"hub-job-{job_id}")
    bound: list[int] = []
    ready = threading.Event()

    def _ready(p: int) -> None:
        bound.append(p)
        ready.set()

    def _serve() -> None:
        try:
            run_relay(roster, key=key, cert=cert, host=listen, port=port, once=True,
                      ready=_ready)
        except Exception as e:  # noqa: BLE001 - logged; the sites see the failure
            log.error("relay of job %d stopped: %s", job_id, e)
            ready.set()

    threading.Thread(target=_serve, name=f"relay-job-{job_id}", daemon=True).start()
    if not ready.wait(30) or not bound:
        raise Conflict(f"the relay of job {job_id} could not start",
                       fix="check the hub's log and relay_port setting")
    return {"relay": f"{host}:{bound[0]}", "roster": roster.read_text(), "worker": WORKER_ID}
