"""Fixtures of the hub's tests: the app on SQLite and on a throw-away PostgreSQL.

``db_url`` runs each test that uses it twice: on a fresh SQLite file and on a fresh database
of a PostgreSQL server started once per pytest(-xdist) worker process.  Missing PostgreSQL
binaries fail the PostgreSQL half with the install hint; nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from hub._hub import Seed, World, build_world, hub_settings, seed_app

from secured_bio.hub import security
from secured_bio.hub.app import create_app
from secured_bio.testing._postgres import INSTALL_HINT, PostgresServer, start_postgres


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server per test process, stopped (``-m immediate``) at the end."""
    try:
        server = start_postgres()
    except FileNotFoundError:
        pytest.fail(INSTALL_HINT, pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new database on the test server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/hub.db"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    url = server.create_database()
    yield url
    server.drop_database(url)


@pytest.fixture(autouse=True)
def _fast_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2id parameters in-process (the default costs ~0.1-0.4 s per hash)."""
    monkeypatch.setattr(security, "_HASHER",
                        PasswordHasher(time_cost=1, memory_cost=256, parallelism=1))


@pytest.fixture()
def hub_app(db_url: str, tmp_path: Path):  # noqa: ANN201 - FastAPI
    """The hub, migrated, on ``db_url`` (engine disposed afterwards)."""
    app = create_app(hub_settings(tmp_path, db_url))
    yield app
    app.state.engine.dispose()


@pytest.fixture()
def client(hub_app) -> Iterator[TestClient]:  # noqa: ANN001
    """HTTP client of ``hub_app`` (in-process)."""
    with TestClient(hub_app) as c:
        yield c


@pytest.fixture()
def seed(hub_app) -> Seed:  # noqa: ANN001
    """The seeded users and sites of ``hub_app``."""
    return seed_app(hub_app)


@pytest.fixture()
def world(client: TestClient, seed: Seed) -> World:
    """Datasets clin-site1..3, everyone logged in, the researcher's request approved."""
    return build_world(client, seed)
