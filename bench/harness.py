"""What the benchmarks run against: a real `manage.py serve` with the real model, a reader
of its event stream, and llama-cpp-python's own `Llama` as the same-run baseline."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class BenchServer:
    url: str
    api_key: str
    data_dir: Path
    process: subprocess.Popen

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.api_key}"}

    def row(self, request_id: str, timeout: float = 30.0) -> dict:
        """The finished Generation row of `request_id` (its operational record)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with sqlite3.connect(self.data_dir / "sluice.sqlite3", timeout=10) as connection:
                connection.row_factory = sqlite3.Row
                found = connection.execute(
                    "SELECT * FROM generation_generation WHERE request_id = ? AND finished_at IS NOT NULL",
                    (request_id.replace("-", ""),),
                ).fetchone()
            if found:
                return dict(found)
            time.sleep(0.05)
        raise TimeoutError(f"row {request_id} not finished in {timeout}s")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def start_server(data_dir: Path, **settings) -> BenchServer:
    """Migrate a fresh SQLite database in `data_dir`, make an API key, serve on a free port
    with the real model, and return once /readyz says the model is loaded."""
    env = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "project.settings", "SLUICE_DATA_DIR": str(data_dir),
        "SLUICE_MODEL_CACHE_DIR": str(ROOT / "var" / "models"), "PYTHONUNBUFFERED": "1",
        **{key: str(value) for key, value in settings.items()},
    }

    def manage(*args: str) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(done.stderr)
        return done.stdout.strip()

    manage("migrate", "--no-input", "-v", "0")
    manage("collectstatic", "--no-input", "-v", "0")
    api_key = manage("create_api_key", "--name", "bench")
    port = _free_port()
    log = (data_dir / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port), "--no-access-log"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    server = BenchServer(f"http://127.0.0.1:{port}", api_key, data_dir, process)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((data_dir / "server.log").read_text()[-3000:])
        try:
            if httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError("server did not become ready")


def iter_events(response: httpx.Response) -> Iterator[tuple[str, dict]]:
    """(event, data) of a native SSE stream as each message completes."""
    name = data = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif not line and name is not None:
            yield name, json.loads(data)
            name = data = None


def reference_llama(**kwargs):
    """llama-cpp-python's own `Llama`, loaded with the extra-buffer choice Sluice's backend
    makes (`Llama` takes no such argument, so the default model parameters are patched while
    it loads): the baseline the benchmarks measure against."""
    import llama_cpp
    from llama_cpp import llama_cpp as bindings

    from generation.backends.llamacpp import extra_buffers_safe

    default_params = bindings.llama_model_default_params

    def params():
        model_params = default_params()
        model_params.use_extra_bufts = extra_buffers_safe()
        return model_params

    bindings.llama_model_default_params = params
    try:
        return llama_cpp.Llama(**kwargs)
    finally:
        bindings.llama_model_default_params = default_params


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
