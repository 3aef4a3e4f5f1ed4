"""Database engine, sessions and migrations (SQLite by default, PostgreSQL by URL).

SQLite runs in WAL mode with a busy timeout and ``BEGIN IMMEDIATE`` transactions, so several
hub workers writing at once wait for each other instead of failing; PostgreSQL needs nothing
special (row locks and ``UPDATE ... WHERE status = 'queued'`` claims).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from secured_bio.errors import ConfigError

__all__ = ["make_engine", "make_sessionmaker", "migrate", "session_scope", "is_sqlite"]


def is_sqlite(engine_or_url: Engine | str) -> bool:
    """Whether the URL/engine is SQLite."""
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def make_engine(url: str) -> Engine:
    """Create the engine for ``url`` (``sqlite:///PATH`` or ``postgresql+psycopg://...``).

    Raises
    ------
    ConfigError
        If the URL is not SQLite or PostgreSQL.
    """
    try:
        parsed = make_url(url)
    except Exception as e:  # noqa: BLE001 - sqlalchemy raises ArgumentError subclasses
        raise ConfigError("invalid database URL", where="--db",
                          expected="sqlite:///PATH or postgresql+psycopg://USER@HOST/DB") from e
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError("unsupported database", where="--db", got=backend,
                          expected="sqlite or postgresql (postgresql+psycopg://...)")
    if backend == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let us issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=20)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Session factory bound to ``engine`` (objects stay readable after commit)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Return a session that commits on success and rolls back on error."""
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def migrate(engine: Engine) -> None:
    """Bring the database schema to the newest Alembic revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location",
                        str(resources.files("secured_bio.hub") / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
