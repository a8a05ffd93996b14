"""`manage.py tune` measuring configurations as they are served: each one a real
`manage.py serve` process on loopback, its streams read through the native SSE API.

In-process figures leave out what serving costs per token: the output guard, SSE framing,
the socket writes and the wake-ups of the event loop, all on the cores the model's threads
use. On a small machine that cost decides between configurations (a batched engine whose
threads fill every core loses more to it than independent contexts do), so the grid and
the finalists are measured this way; only the n_batch pass, which prompt processing
decides, stays in-process.

Each served process has its own data folder (a copy of one migrated SQLite database with
one API key) and the static files already collected, ignores the tuning file and stops with
the tune process."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from django.conf import settings

from generation.ops.tuner import Streams
from generation.ops.tuning import Config
from generation.ops.workers import stop_with_parent

START_SECONDS = 180  # a server's start-up and model load, at most
_DATABASE = "sluice.sqlite3"
# Nothing of the deployment's shared state (database, Redis, limits, upstreams) and plain
# HTTP on loopback, whatever the environment or .env says.
ISOLATED = {
    "CHANNEL_LAYER_URL": "memory://", "SLUICE_LIMITS_URL": "memory://", "SLUICE_UPSTREAMS": "",
    "SLUICE_LIMIT_REQUESTS_PER_MINUTE": "0", "SLUICE_LIMIT_CONCURRENT_STREAMS": "0", "SLUICE_LIMIT_TOKENS_PER_DAY": "0",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "DJANGO_SECURE": "false", "DJANGO_SECURE_SSL_REDIRECT": "false",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "false", "SLUICE_TUNING": "false", "SLUICE_PRELOAD_MODEL": "true",
    "PYTHONUNBUFFERED": "1",
}


class ServedTuningError(RuntimeError):
    """A served configuration could not be set up, started or measured."""


class ServedTuning:
    """One migrated database and API key for every configuration of a tune; `start(config)`
    serves one configuration. Use as a context manager: the folder goes at the end."""

    def __init__(self, model_path: Path) -> None:
        self.model_path = model_path
        self.root = Path(tempfile.mkdtemp(prefix="sluice-tune-"))
        self._template = self.root / "template"
        self._template.mkdir()
        self._served = 0
        self._static = Path(settings.STATIC_ROOT)
        try:
            if not (self._static / "staticfiles.json").exists():  # serve wants collected static files
                self._static = self.root / "staticfiles"
                self._manage("collectstatic", "--no-input", "-v", "0")
            self._manage("migrate", "--no-input", "-v", "0")
            self.api_key = self._manage("create_api_key", "--name", "tune").strip()  # in the copied database only
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def __enter__(self) -> "ServedTuning":
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def env(self, data_dir: Path, config: Config | None = None) -> dict:
        return served_environment(os.environ, data_dir=data_dir, model_path=self.model_path,
                                  static_root=self._static, config=config)

    def _manage(self, *args: str) -> str:
        done = subprocess.run([sys.executable, str(settings.BASE_DIR / "manage.py"), *args], env=self.env(self._template),
                              capture_output=True, text=True, timeout=300)
        if done.returncode:
            raise ServedTuningError(f"manage.py {args[0]} failed for the served measurements: {done.stderr[-2000:]}")
        return done.stdout

    def start(self, config: Config) -> "ServedConfig":
        self._served += 1
        data_dir = self.root / f"served-{self._served}"
        data_dir.mkdir()
        shutil.copyfile(self._template / _DATABASE, data_dir / _DATABASE)
        return ServedConfig(self.env(data_dir, config), data_dir, self.api_key, threads=config.threads)


def served_environment(base: Mapping[str, str], *, data_dir: Path, model_path: Path, static_root: Path,
                       config: Config | None = None) -> dict:
    """The environment of a served configuration: this deployment's settings (its redaction
    and guard are part of what serving costs) with nothing of its state shared, set
    explicitly since .env fills in only what is unset; `config`'s values over all."""
    env = {**base, **ISOLATED, "DJANGO_SETTINGS_MODULE": "project.settings", "SLUICE_DATA_DIR": str(data_dir),
           "DATABASE_URL": f"sqlite:///{data_dir / _DATABASE}", "SLUICE_MODEL_PATH": str(model_path),
           "DJANGO_STATIC_ROOT": str(static_root)}
    env.pop("SLUICE_TESTING", None)
    env.pop("SLUICE_TUNING_FILE", None)
    if config is not None:
        env.update({name: str(value) for name, value in config.values().items()})
    return env


class ServedConfig:
    """One configuration served by its own process; `run_streams` measures streams through it."""

    def __init__(self, env: dict, data_dir: Path, api_key: str, *, threads: int) -> None:
        self.api_key, self.threads = api_key, threads
        self.port = _free_port()
        self.log_path = data_dir / "server.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(settings.BASE_DIR / "manage.py"), "serve", "--host", "127.0.0.1",
                 "--port", str(self.port), "--no-access-log"],
                env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=stop_with_parent(os.getpid()),
            )
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise ServedTuningError(f"the served configuration stopped while starting:\n{tail}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", "/readyz")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise ServedTuningError(f"the served configuration was not ready within {START_SECONDS} s")

    def run_streams(self, prompts: Sequence[str], max_tokens: int) -> Streams:
        """One stream per prompt at once, as run_streams does in-process, timing each delta
        as the client receives it (a delta carrying k tokens counts as k gaps of 1/k its gap)."""
        stamps: list[list[tuple[float, int]]] = [[] for _ in prompts]
        starts = [0.0] * len(prompts)
        errors: list[BaseException] = []
        barrier = threading.Barrier(len(prompts))

        def stream(index: int) -> None:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
                body = json.dumps({"prompt": prompts[index], "max_tokens": max_tokens, "temperature": 0})
                headers = {"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json",
                           "Accept": "text/event-stream"}
                barrier.wait()
                starts[index] = time.perf_counter()
                connection.request("POST", "/api/v1/generations", body=body, headers=headers)
                _read_stream(connection.getresponse(), stamps[index])
                connection.close()
            except BaseException as exc:  # re-raised below, in the measuring thread
                errors.append(exc)

        workers = [threading.Thread(target=stream, args=(index,), daemon=True) for index in range(len(prompts))]
        cpu, began = _cpu_seconds(self.process.pid), time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        cpu, elapsed = _cpu_seconds(self.process.pid) - cpu, time.perf_counter() - began
        if errors:
            if isinstance(errors[0], ServedTuningError):
                raise errors[0]
            raise ServedTuningError(f"a measured stream failed: {type(errors[0]).__name__}") from errors[0]
        ends = [times[-1][0] for times in stamps if times]
        gaps = []
        for times in stamps:
            for (before, _), (at, tokens) in zip(times, times[1:]):
                gaps += [(at - before) * 1000 / tokens] * tokens
        return Streams(
            wall_s=(max(ends) - min(starts)) if ends else 0.0,
            tokens=sum(tokens for times in stamps for _, tokens in times),
            first_token_ms=[(times[0][0] - start) * 1000 for times, start in zip(stamps, starts) if times],
            gaps_ms=gaps,
            cpu_s=cpu,
            elapsed_s=elapsed,
        )

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _read_stream(response: http.client.HTTPResponse, stamps: list[tuple[float, int]]) -> None:
    """Append (arrival, new tokens) for every delta of a native SSE stream; raise unless it ends done."""
    if response.status != 200:
        raise ServedTuningError(f"the served configuration answered {response.status}")
    event, produced = "", 0
    for line in iter(response.readline, b""):
        if line.startswith(b"event: "):
            event = line[7:].strip().decode()
        elif line.startswith(b"data: ") and event == "delta":
            at, data = time.perf_counter(), json.loads(line[6:])
            tokens = data.get("tokens", produced + 1)
            if tokens > produced:  # the guard's last words come with no new token
                stamps.append((at, tokens - produced))
                produced = tokens
        elif line.startswith(b"data: ") and event in ("done", "cancelled", "error"):
            if event != "done":
                raise ServedTuningError(f"a measured stream ended {event}: {json.loads(line[6:]).get('code', '')}")
            return
    raise ServedTuningError("a measured stream ended without its terminal event")


def _cpu_seconds(pid: int) -> float:
    """The CPU time of process `pid`, every thread (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
