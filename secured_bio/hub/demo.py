"""``secured-bio hub demo``: the hub, three site agents and the demo users on one machine.

Each site's agent is its own process with its own data folder (the four pilots' demo cohorts,
split by site) and talks to the hub over HTTP only, exactly as at a hospital.  Demo users:
``admin``, ``researcher``, ``committee``, ``steward-site1..3``; one password for all, from
``SECURED_BIO_HUB_DEMO_PASSWORD`` or generated and printed once at start (each start resets
the demo users' passwords).
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

__all__ = ["DEMO_SITES", "DEMO_USERS", "DemoHub", "start_demo"]

log = logging.getLogger(__name__)

DEMO_SITES = ("site1", "site2", "site3")
#: user -> (role, site)
DEMO_USERS: dict[str, tuple[str, str | None]] = {
    "admin": ("admin", None),
    "researcher": ("researcher", None),
    "committee": ("committee", None),
    **{f"steward-{s}": ("steward", s) for s in DEMO_SITES},
}
_TITLES = {"site1": "University Hospital A", "site2": "Children's Hospital B",
           "site3": "National Genome Centre C"}


@dataclass
class DemoHub:
    """A running demo: its URL, password and processes (``stop()`` ends it)."""

    url: str
    password: str
    data_dir: Path
    server: object
    thread: threading.Thread
    agents: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self) -> None:
        """Stop the agents, then the hub."""
        for p in self.agents:
            p.terminate()
        for p in self.agents:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        self.server.should_exit = True  # type: ignore[attr-defined]
        self.thread.join(15)
        app = getattr(getattr(self.server, "config", None), "app", None)
        if app is not None:  # close the pooled database connections
            app.state.engine.dispose()


def _seed(app: object, data_dir: Path, password: str) -> dict[str, Path]:
    """Create (or refresh) the demo sites, their token files and the demo users."""
    from secured_bio.hub import security
    from secured_bio.hub.db import session_scope
    from secured_bio.hub.models import Site, User
    from secured_bio.hub.services.accounts import create_site, create_user, rotate_site_token

    tokens_dir = data_dir / "agents"
    tokens_dir.mkdir(parents=True, exist_ok=True)
    token_files = {}
    with session_scope(app.state.sessions) as s:  # type: ignore[attr-defined]
        for name in DEMO_SITES:
            site = s.scalar(select(Site).where(Site.name == name))
            if site is None:
                site, token = create_site(s, name, title=_TITLES[name], actor="demo")
            else:
                token = rotate_site_token(s, site, actor="demo")
            path = tokens_dir / f"{name}.token"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(token + "\n")
            token_files[name] = path
        for username, (role, site_name) in DEMO_USERS.items():
            user = s.scalar(select(User).where(User.username == username))
            if user is None:
                create_user(s, username, password, role, site=site_name, actor="demo")
            else:
                user.password_hash = security.hash_password(password)
    return token_files


def start_demo(*, port: int = 8400, data_dir: Path = Path("hub-demo"), host: str = "127.0.0.1",
               db: str | None = None, password: str | None = None, agents: bool = True,
               poll_s: float = 1.0, say: Callable[[str], None] = print) -> DemoHub:
    """Start the demo hub (in this process) and its three site agents (subprocesses).

    Returns once the hub answers and the agents have registered their datasets.
    """
    import uvicorn

    from secured_bio.hub.app import create_app
    from secured_bio.hub.demo_data import write_hub_demo_data
    from secured_bio.hub.settings import HubSettings

    data_dir = data_dir.resolve()
    sites_dir = data_dir / "sites"
    if not (sites_dir / "ids.txt").is_file():
        say("writing the demo cohorts of three sites (once) ...")
        write_hub_demo_data(sites_dir)
    password = password or os.environ.get("SECURED_BIO_HUB_DEMO_PASSWORD") or (
        secrets.token_urlsafe(12))
    settings = HubSettings(data_dir=data_dir / "hub", host=host, port=port, db=db)
    app = create_app(settings)
    token_files = _seed(app, data_dir, password)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off",
                            ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="hub-demo", daemon=True)
    thread.start()
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            from secured_bio.errors import ConfigError

            raise ConfigError("the demo hub could not start", where=f"{host}:{port}",
                              fix="is the port in use? try --port with another number")
        time.sleep(0.1)
    demo = DemoHub(url, password, data_dir, server, thread)
    if agents:
        env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0",
               "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}
        logs = data_dir / "logs"
        logs.mkdir(exist_ok=True)
        for name in DEMO_SITES:
            with open(logs / f"agent-{name}.log", "ab") as log_fh:
                demo.agents.append(subprocess.Popen(
                    [sys.executable, "-m", "secured_bio", "--log-file",
                     str(logs / f"agent-{name}.detail.log"), "hub", "agent", "--hub", url,
                     "--site", name, "--token-file", str(token_files[name]),
                     "--data", str(sites_dir / name), "--state",
                     str(data_dir / "agents" / name), "--poll", str(poll_s)],
                    stdout=log_fh, stderr=subprocess.STDOUT, env=env))
        _wait_registered(app, deadline=time.monotonic() + 120, agents=demo.agents, logs=logs)
    return demo


def _wait_registered(app: object, *, deadline: float, agents: list[subprocess.Popen[bytes]],
                     logs: Path) -> None:
    from secured_bio.errors import ProtocolError
    from secured_bio.hub.db import session_scope
    from secured_bio.hub.models import Site

    while time.monotonic() < deadline:
        with session_scope(app.state.sessions) as s:  # type: ignore[attr-defined]
            sites = list(s.scalars(select(Site).where(Site.name.in_(DEMO_SITES))))
            if all(site.datasets and site.smpc_cert for site in sites) and len(sites) == 3:
                return
        dead = [p for p in agents if p.poll() is not None]
        if dead:
            break
        time.sleep(0.5)
    raise ProtocolError("the demo site agents did not register", where=str(logs),
                        fix="read the agent logs there")
