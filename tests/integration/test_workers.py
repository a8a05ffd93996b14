"""`serve --workers 2`: two processes on one port, threads sized to share the cores, a worker
that dies is replaced, and SIGTERM drains both and exits 0."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from sqlite3 import connect

import httpx
import pytest

from tests.support.live import ROOT, free_port, manage, server_env

pytestmark = pytest.mark.integration


def generate(url: str, key: str) -> httpx.Response:
    return httpx.post(
        f"{url}/api/v1/generations", json={"prompt": "Hello", "max_tokens": 2, "stream": False},
        headers={"Authorization": f"Bearer {key}"}, timeout=60,
    )


def workers_of(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(child) for child in found]


def start_two_workers(tmp_path) -> tuple[subprocess.Popen, str, str]:
    """`serve --workers 2` on a fresh database: (the supervisor, its URL, an API key)."""
    env = server_env(tmp_path)
    env.pop("SLUICE_PROCESSES", None)
    manage(env, "migrate", "--no-input", "-v", "0")
    manage(env, "collectstatic", "--no-input", "-v", "0")
    key = manage(env, "create_api_key", "--name", "workers").strip()
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    supervisor = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port), "--workers", "2", "--no-access-log"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    return supervisor, url, key


def test_two_workers_share_the_port_restart_and_drain(tmp_path):
    supervisor, url, key = start_two_workers(tmp_path)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if generate(url, key).status_code == 200 and len(workers_of(supervisor.pid)) == 2:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        owners = set()
        for _ in range(30):
            response = generate(url, key)
            assert response.status_code == 200
        with connect(tmp_path / "sluice.sqlite3") as connection:
            owners = {row[0] for row in connection.execute("SELECT owner FROM generation_generation")}
        assert len(owners) == 2  # the kernel spread the connections over both processes
        text = (tmp_path / "serve.log").read_text()
        assert text.count("llama.cpp threads: 1 (2 process(es) share the cores)") == 2 or os.cpu_count() != 2

        victim = workers_of(supervisor.pid)[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # replaced, and serving meanwhile through the survivor
            assert generate(url, key).status_code == 200
            children = workers_of(supervisor.pid)
            if len(children) == 2 and victim not in children:
                break
            time.sleep(0.5)
        assert victim not in workers_of(supervisor.pid) and len(workers_of(supervisor.pid)) == 2
        while True:  # the replacement serves: a row written by an owner neither first worker was
            assert generate(url, key).status_code == 200
            with connect(tmp_path / "sluice.sqlite3") as connection:
                now = {row[0] for row in connection.execute("SELECT owner FROM generation_generation")}
            if now - owners:
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)

        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=60) == 0
        assert "Stopped (" in (tmp_path / "serve.log").read_text()
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()


def test_workers_stop_when_the_supervisor_is_killed(tmp_path):
    """SIGKILL gives the supervisor no chance to stop its workers: they must not keep serving
    on the shared socket with no one to replace or stop them."""
    supervisor, url, key = start_two_workers(tmp_path)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                workers = workers_of(supervisor.pid)
                if len(workers) == 2 and generate(url, key).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        assert len(workers) == 2
        supervisor.kill()
        supervisor.wait()
        deadline = time.monotonic() + 60
        while any(alive(pid) for pid in workers):  # each drains (SIGTERM) and exits
            assert time.monotonic() < deadline, "a worker outlived its supervisor"
            time.sleep(0.2)
        with pytest.raises(httpx.TransportError):
            generate(url, key)
    finally:
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
