"""The tests' one live-server helper: a real daphne server with the real model on a free port
(bench/harness.py has the benchmarks' own)."""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LiveServer:
    url: str
    api_key: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen
    outputs: list[str] = field(default_factory=list)  # every text the model produced, for leak checks

    def headers(self, **extra) -> dict:
        return {"Authorization": f"Bearer {self.api_key}", **extra}

    def rows(self, where: str = "1=1", params=()) -> list[dict]:
        with sqlite3.connect(self.data_dir / "sluice.sqlite3", timeout=10) as connection:
            connection.row_factory = sqlite3.Row
            return [dict(row) for row in connection.execute(f"SELECT * FROM generation_generation WHERE {where}", params)]

    def row(self, request_id: str, *, finished: bool = True, timeout: float = 10.0) -> dict:
        """The row for `request_id`, waiting until it has finished when asked."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.rows("request_id = ?", (request_id.replace("-", ""),))
            if rows and (not finished or rows[0]["finished_at"]):
                return rows[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"row {request_id} not finished in {timeout}s: {rows}")
            time.sleep(0.05)

    def database_dump(self) -> str:
        with sqlite3.connect(self.data_dir / "sluice.sqlite3") as connection:
            return "\n".join(connection.iterdump())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(data_dir: Path, **overrides) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "SLUICE_DATA_DIR": str(data_dir),
        "SLUICE_MODEL_CACHE_DIR": str(ROOT / "var" / "models"),
        "SLUICE_BACKEND": "generation.backends.llamacpp.LlamaCppBackend",
        "SLUICE_PRELOAD_MODEL": "true",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("SLUICE_TESTING", None)
    env.update({key: str(value) for key, value in overrides.items()})
    return env


def manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def _die_with_parent() -> None:
    """In the server child (Linux): SIGTERM when the test process dies, even by a crash
    that skips fixture teardown, so no server outlives its run."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_server(data_dir: Path, **overrides) -> LiveServer:
    env = server_env(data_dir, **overrides)
    manage(env, "migrate", "--no-input", "-v", "0")
    manage(env, "collectstatic", "--no-input", "-v", "0")
    api_key = manage(env, "create_api_key", "--name", "integration").strip()
    port = free_port()
    log_path = data_dir / "server.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", api_key, data_dir, log_path, process)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # ready once a real generation completes
        assert process.poll() is None, log_path.read_text()
        try:
            response = httpx.post(
                f"{server.url}/api/v1/generations",
                json={"prompt": "Hello", "max_tokens": 1, "stream": False},
                headers=server.headers(), timeout=30,
            )
            if response.status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("live server did not become ready:\n" + log_path.read_text()[-3000:])


def assert_never_seen(seen: str, secrets: Iterable[str], outputs: Iterable[str]) -> None:
    """None of `secrets`, nor any 24-character piece of what the model wrote, is in `seen`."""
    for secret in secrets:
        assert secret not in seen
    for output in outputs:
        for start in range(0, max(len(output) - 24, 1), 12):
            fragment = output[start : start + 24]
            if len(fragment.strip()) >= 16:
                assert fragment not in seen


def admin_client(server: LiveServer, password: str, username: str = "ops") -> httpx.Client:
    """An httpx client logged in to the server's admin (the account made by ensure_admin)."""
    client = httpx.Client(base_url=server.url, timeout=60, follow_redirects=False)
    client.get("/admin/login/")
    response = client.post(
        "/admin/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": client.cookies["csrftoken"]},
        headers={"Referer": f"{server.url}/admin/login/"},
    )
    assert response.status_code == 302, response.text[:500]
    return client
