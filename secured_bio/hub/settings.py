"""Hub settings: one pydantic settings object, from the environment and the command line.

Environment variables carry the prefix ``SECURED_BIO_HUB_`` (``SECURED_BIO_HUB_DB``,
``SECURED_BIO_HUB_DATA_DIR``...); flags of ``secured-bio hub serve`` override them.  Secrets
(the token-signing key) live in the data folder, created on first start with OS entropy, and
are never logged.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["HubSettings", "load_secret"]

_SECRET_FILE = "hub.secret"


def load_secret(data_dir: Path) -> str:
    """Return the hub's signing secret, creating it (0600, 256 bits) on first use."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / _SECRET_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{_SECRET_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    try:
        os.link(tmp, path)  # first writer wins when several workers start at once
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


class HubSettings(BaseSettings):
    """Everything the hub is configured with.

    Parameters
    ----------
    data_dir
        Folder for the SQLite database (default), released artifacts and the signing secret.
    db
        SQLAlchemy URL; default ``sqlite:///DATA_DIR/hub.db``.  PostgreSQL:
        ``postgresql+psycopg://user:password@host:5432/dbname``.
    host, port
        Where ``hub serve`` listens (loopback by default).
    """

    model_config = SettingsConfigDict(env_prefix="SECURED_BIO_HUB_", extra="ignore")

    data_dir: Path = Field(default=Path("hub-data"))
    db: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8400, ge=1, le=65535)
    #: public address agents and browsers use (default http://HOST:PORT)
    public_url: str | None = None
    secret_key: SecretStr | None = None
    token_minutes: int = Field(default=60, ge=1, le=24 * 60)
    session_minutes: int = Field(default=8 * 60, ge=1)
    #: "auto": Secure cookies unless the hub listens on loopback only (plain-http demo)
    cookie_secure: Literal["auto", "true", "false"] = "auto"
    login_attempts_per_minute: int = Field(default=10, ge=1)
    max_upload_mb: int = Field(default=512, ge=1)
    #: a site task whose agent has not reported for this long is failed
    task_stale_s: float = Field(default=600.0, gt=0)
    #: port of the relay of a secure GWAS job (0: a free one per job)
    relay_port: int = Field(default=0, ge=0, le=65535)
    #: interface relays listen on
    relay_listen: str = "127.0.0.1"
    #: address sites use to reach the relay (default: host, or 127.0.0.1 when host is 0.0.0.0)
    relay_host: str | None = None
    #: Beacon: counts below this are released as 0 to users without a grant
    beacon_min_count: int = Field(default=5, ge=1)
    #: Beacon: queries per user per 24 hours (0: unlimited)
    beacon_queries_per_day: int = Field(default=1000, ge=0)
    #: Beacon: epsilon of the discrete-Laplace noise on each count (unset: exact counts)
    beacon_noise_epsilon: float | None = Field(default=None, gt=0)
    #: Beacon: noise epsilon a user may spend per 24 hours (unset: unlimited)
    beacon_epsilon_per_day: float | None = Field(default=None, gt=0)
    #: Beacon: answer boolean queries without login
    beacon_anonymous: bool = False
    #: uvicorn worker processes of ``hub serve`` (the Beacon needs 1)
    workers: int = Field(default=1, ge=1)
    #: Beacon: seconds the sites have to answer a query
    beacon_timeout_s: float = Field(default=10.0, gt=0, le=120)

    @property
    def db_url(self) -> str:
        """The database URL (SQLite in the data folder unless ``db`` is set)."""
        return self.db or f"sqlite:///{(self.data_dir / 'hub.db').resolve()}"

    @property
    def artifacts_dir(self) -> Path:
        """Folder of released artifacts (content-addressed, never user-chosen names)."""
        return self.data_dir / "artifacts"

    @property
    def secure_cookies(self) -> bool:
        """Whether cookies carry the Secure flag."""
        if self.cookie_secure != "auto":
            return self.cookie_secure == "true"
        try:
            return not ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host != "localhost"

    def signing_key(self) -> str:
        """Return the token/cookie signing secret (from the settings or the data folder)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return load_secret(self.data_dir)

    @property
    def base_url(self) -> str:
        """URL of the hub as others reach it."""
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def relay_address(self) -> str:
        """Host name sites connect to for relays."""
        if self.relay_host:
            return self.relay_host
        return "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
