"""``secured-bio hub``: serve the Innohub, run a site agent, the demo, audit checks, accounts."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from secured_bio.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from secured_bio.hub.settings import HubSettings

__all__ = ["hub"]

F = TypeVar("F", bound=Callable[..., Any])


@click.group()
def hub() -> None:
    """Return the Innohub: catalogue, access requests, jobs at the sites, privacy passports.

    \b
    secured-bio hub demo                  hub + 3 site agents + demo users, on :8400
    secured-bio hub serve --db URL        the hub alone (SQLite file by default)
    secured-bio hub add-site NAME         register a site; prints its agent token once
    secured-bio hub agent --hub URL ...   run a site's agent (outbound connections only)
    secured-bio hub verify-audit          check the audit log's hash chain
    """


def _db_option(fn: F) -> F:
    return click.option(
        "--db", default=None, metavar="URL",
        help="Database URL (default: sqlite:///DATA_DIR/hub.db). PostgreSQL: "
        "postgresql+psycopg://USER:PASSWORD@HOST:5432/DB.")(fn)


def _data_dir_option(fn: F) -> F:
    return click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("hub-data"),
        show_default=True,
        help="Folder for the SQLite database, released artifacts and the hub's secret.",
    )(fn)


def _settings(db: str | None, data_dir: Path, **extra: Any) -> HubSettings:
    from secured_bio.hub.settings import HubSettings

    kwargs: dict[str, Any] = {"data_dir": data_dir, **extra}
    if db:
        kwargs["db"] = db
    return HubSettings(**kwargs)


def _export(settings: HubSettings) -> None:
    """Put the settings into the environment so every uvicorn worker builds the same app."""
    os.environ["SECURED_BIO_HUB_DATA_DIR"] = str(settings.data_dir.resolve())
    if settings.db:
        os.environ["SECURED_BIO_HUB_DB"] = settings.db
    os.environ["SECURED_BIO_HUB_HOST"] = settings.host
    os.environ["SECURED_BIO_HUB_PORT"] = str(settings.port)
    os.environ["SECURED_BIO_HUB_WORKERS"] = str(settings.workers)


@hub.command("serve")
@_db_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on (0.0.0.0: all; then put TLS in front).")
@click.option("--port", type=click.IntRange(1, 65535), default=8400, show_default=True)
@_data_dir_option
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="uvicorn worker processes (the app keeps no state outside the database, "
                   "except the Beacon's queries in flight: the Beacon answers with 1 only).")
def serve(db: str | None, host: str, port: int, data_dir: Path, workers: int) -> None:
    """Serve the hub (web pages and REST API at /api/v1; OpenAPI at /api/v1/openapi.json)."""
    import uvicorn

    from secured_bio.hub.app import create_app
    from secured_bio.hub.db import make_engine, migrate

    settings = _settings(db, data_dir, host=host, port=port, workers=workers)
    migrate(make_engine(settings.db_url))
    _export(settings)
    click.echo(f"Innohub on http://{host}:{port} (database: "
               f"{'PostgreSQL' if db and db.startswith('postgres') else 'SQLite'})", err=True)
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", ws="none")
    else:
        uvicorn.run("secured_bio.hub.app:create_app", factory=True, host=host, port=port,
                    workers=workers, log_level="warning", ws="none")


@hub.command("demo")
@click.option("--port", type=click.IntRange(1, 65535), default=8400, show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("hub-demo"), show_default=True,
              help="Folder for the demo sites' cohorts, the hub's database and artifacts.")
@_db_option
@click.option("--no-agents", is_flag=True, help="Start the hub only (agents run elsewhere).")
def demo(port: int, data_dir: Path, db: str | None, no_agents: bool) -> None:
    """Start a demo hub with three site agents and demo users, until Ctrl-C.

    \b
    Sites site1..3 each hold the four pilots' demo cohorts (genotypes, imaging, vitals,
    clinical cases). Users: admin, researcher, committee, steward-site1..3; the password
    is SECURED_BIO_HUB_DEMO_PASSWORD or a new one printed at start.
    """
    import signal
    import threading

    from secured_bio.hub.demo import DEMO_USERS, start_demo

    running = start_demo(port=port, data_dir=data_dir, db=db, agents=not no_agents,
                         say=lambda m: click.echo(m, err=True))
    click.echo(f"""
secured_bio Innohub demo: {running.url}
  users:    {", ".join(DEMO_USERS)}
  password: {running.password}   (printed once; set SECURED_BIO_HUB_DEMO_PASSWORD to choose)
  sites:    site1, site2, site3 ({len(running.agents)} agents; logs in {running.data_dir}/logs)
  API:      {running.url}/api/v1/docs
Stop with Ctrl-C.""")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1):
            if not running.thread.is_alive():
                break
    except KeyboardInterrupt:
        pass
    finally:
        click.echo("stopping the demo ...", err=True)
        running.stop()


@hub.command("add-site")
@click.argument("name")
@_db_option
@_data_dir_option
@click.option("--title", default="", help="Display name (e.g. the hospital's name).")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the agent token here (mode 0600) instead of printing it.")
def add_site(name: str, db: str | None, data_dir: Path, title: str,
             token_file: Path | None) -> None:
    """Register site NAME and issue its agent token (shown once; stored hashed)."""
    from secured_bio.hub.services.accounts import create_site

    with _session(db, data_dir) as s:
        _, token = create_site(s, name, title=title, actor="cli")
    _emit_token(token, token_file, name)


def _emit_token(token: str, token_file: Path | None, name: str) -> None:
    if token_file is None:
        click.echo(token)
        return
    token_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    click.echo(f"agent token of site {name} written to {token_file}", err=True)


@hub.command("add-user")
@click.argument("username")
@click.option("--role", required=True,
              type=click.Choice(["admin", "researcher", "committee", "steward"]))
@click.option("--site", help="The steward's site.")
@_db_option
@_data_dir_option
@click.password_option(envvar="SECURED_BIO_HUB_NEW_PASSWORD",
                       help="Password (asked for; or SECURED_BIO_HUB_NEW_PASSWORD).")
def add_user(username: str, role: str, site: str | None, db: str | None, data_dir: Path,
             password: str) -> None:
    """Create a user account (argon2id-hashed password)."""
    from secured_bio.hub.services.accounts import create_user

    with _session(db, data_dir) as s:
        create_user(s, username, password, role, site=site, actor="cli")
    click.echo(f"user {username} ({role}) created", err=True)


@hub.command("verify-audit")
@_db_option
@_data_dir_option
def verify_audit(db: str | None, data_dir: Path) -> None:
    """Recompute the audit log's hash chain; exit 1 at the first changed event.

    Edited, missing or inserted events are found.  Keep the printed head hash elsewhere
    to detect a rewritten chain later.
    """
    from secured_bio.errors import ProtocolError
    from secured_bio.hub.services.audit import verify_chain

    with _session(db, data_dir, create=False) as s:
        report = verify_chain(s)
    if not report.ok:
        raise ProtocolError(f"the audit log does not verify: {report.reason}",
                            where=f"event {report.first_bad}",
                            fix="restore the database from a backup and investigate who "
                            "changed it")
    click.echo(f"audit log OK: {report.events} events, head {report.head_hash}")


def _session(db: str | None, data_dir: Path, *, create: bool = True
             ) -> AbstractContextManager[Session]:
    from secured_bio.hub.db import make_engine, make_sessionmaker, migrate, session_scope

    settings = _settings(db, data_dir)
    if not create and not db and not (data_dir / "hub.db").is_file():
        raise ConfigError("no hub database here", where=f"--data-dir {data_dir}",
                          fix="give the hub's --data-dir or --db URL")
    if not db:
        data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    migrate(engine)
    return _disposing(engine, session_scope(make_sessionmaker(engine)))


@contextlib.contextmanager
def _disposing(engine: Any, scope: AbstractContextManager[Session]) -> Iterator[Session]:
    """Yield the session of ``scope``, then close the engine's connections."""
    try:
        with scope as s:
            yield s
    finally:
        engine.dispose()


def _register_agent() -> None:
    try:
        from secured_bio.hub.agent.command import agent
    except ImportError:  # pragma: no cover - the agent package is part of the hub
        return
    hub.add_command(agent, "agent")


_register_agent()
