"""A throw-away PostgreSQL server for the hub's tests and benchmarks (not part of the API).

``initdb`` + ``pg_ctl`` from the system's PostgreSQL (Debian: package ``postgresql``, binaries
under ``/usr/lib/postgresql/<version>/bin``, not on PATH) in a fresh folder, listening on
127.0.0.1 at a free port, trust authentication for the user ``hub``.  As root the server runs
as the ``postgres`` user (PostgreSQL refuses to run as root).  Durability is switched off: the
data lives only as long as the test session.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PostgresServer", "find_pg_bin", "start_postgres", "INSTALL_HINT"]

INSTALL_HINT = ("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; "
                "run 'make sysdeps' (apt-get install postgresql)")


def find_pg_bin() -> Path | None:
    """Return the newest ``/usr/lib/postgresql/<version>/bin`` with ``initdb`` (or PATH's)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                   else 0)
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A running throw-away server (stop it with :meth:`stop`)."""

    bin_dir: Path
    root: Path
    port: int
    as_postgres: bool
    user: str = "hub"

    @property
    def data_dir(self) -> Path:
        """The cluster's folder (also holds the Unix socket and the log)."""
        return self.root / "data"

    def url(self, dbname: str) -> str:
        """SQLAlchemy URL of database ``dbname``."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, prefix: str = "t_") -> str:
        """Create a fresh, empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"{prefix}{secrets.token_hex(6)}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`create_database` (closing its connections)."""
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)

    def stop(self) -> None:
        """Stop the server at once and delete its folder."""
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "stop", "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_postgres(bin_dir: Path | None = None) -> PostgresServer:
    """Create and start a server in a new temporary folder.

    Raises
    ------
    FileNotFoundError
        If no PostgreSQL binaries are installed (message: :data:`INSTALL_HINT`).
    RuntimeError
        If ``initdb`` or ``pg_ctl start`` fails (with their output).
    """
    bin_dir = bin_dir or find_pg_bin()
    if bin_dir is None:
        raise FileNotFoundError(INSTALL_HINT)
    as_postgres = os.geteuid() == 0
    # not under pytest's tmp_path: that is 0700 root, and the server runs as postgres
    root = Path(tempfile.mkdtemp(prefix="secured-bio-pg-"))
    if as_postgres:
        shutil.chown(root, "postgres", "postgres")
    last_err = ""
    for _ in range(3):  # a free port can be taken between probing and binding
        server = PostgresServer(bin_dir, root, _free_port(), as_postgres)
        if not server.data_dir.exists():
            r = server._run("initdb", "-D", str(server.data_dir), "-A", "trust", "-U", "hub",
                            "--no-sync", "-E", "UTF8", "--locale", "C")
            if r.returncode != 0:
                shutil.rmtree(root, ignore_errors=True)
                raise RuntimeError(f"initdb failed: {r.stdout}{r.stderr}")
        opts = (f"-p {server.port} -k {server.data_dir} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=400")
        r = server._run("pg_ctl", "-D", str(server.data_dir), "-o", opts, "-l",
                        str(server.data_dir / "server.log"), "-w", "-t", "60", "start")
        if r.returncode == 0:
            return server
        last_err = r.stdout + r.stderr
        log = server.data_dir / "server.log"
        if log.is_file():
            last_err += log.read_text()[-2000:]
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"pg_ctl start failed: {last_err}")
