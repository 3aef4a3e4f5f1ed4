"""A hub served by a real ``secured-bio hub serve`` subprocess (tests and benchmarks only)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["HubProcess", "free_port", "start_hub"]


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class HubProcess:
    """A running hub: its process, URL and log file."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def kill(self) -> None:
        """SIGKILL, no clean-up (a crash)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def start_hub(db: str, data_dir: Path, *, port: int | None = None,
              env: dict[str, str] | None = None, timeout: float = 60) -> HubProcess:
    """Start ``secured-bio hub serve`` on ``db`` and wait until ``/api/v1/health`` answers.

    Raises
    ------
    RuntimeError
        If the hub exits or does not answer within ``timeout`` seconds (with its log).
    """
    import httpx

    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / f"hub-{port}.log"
    exe = Path(sys.executable).with_name("secured-bio")
    cmd = [str(exe), "hub", "serve", "--db", db, "--data-dir", str(data_dir),
           "--port", str(port)]
    env = dict(env if env is not None else os.environ)
    env.setdefault("SECURED_BIO_PROGRESS", "0")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the hub exited ({proc.returncode}): {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                return HubProcess(proc, url, log)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"the hub did not answer in {timeout:.0f} s: {log.read_text()[-3000:]}")
