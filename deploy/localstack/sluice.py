"""The stack's Sluice processes: `manage.py serve` on loopback ports, one log file each."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .children import free_port, spawn, stop, wait_for

ROOT = Path(__file__).resolve().parents[2]


class SluiceProcess:
    """One `manage.py serve`. start() waits until /readyz says ready (model loaded)."""

    def __init__(self, index: int, directory: Path, env: dict) -> None:
        self.index = index
        self.port = free_port()
        self.env = env
        self.log_path = directory / f"sluice-{index}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def owns(self, owner: str) -> bool:
        """Whether a Generation row's `owner` (host:pid:nonce) names this process."""
        return self.pid is not None and owner.split(":")[1:2] == [str(self.pid)]

    def start(self, *, timeout: float = 180.0) -> None:
        self.process = spawn(
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            log_path=self.log_path, env=self.env, cwd=ROOT,
        )
        wait_for(self.ready, timeout=timeout, what=f"Sluice process {self.index}", process=self.process,
                 log_path=self.log_path)

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def terminate(self, *, timeout: float = 60.0) -> int | None:
        """SIGTERM (graceful drain) and wait for the exit code."""
        return stop(self.process, sig=signal.SIGTERM, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_exit(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        return None if self.process is None else self.process.poll()
