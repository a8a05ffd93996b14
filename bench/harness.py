"""What the benchmarks run against: a real `manage.py serve` with the real model, a reader
of its event stream, and llama-cpp-python's own `Llama` as the same-run baseline."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
    _wait_ready(server, f"{server.url}/readyz", data_dir / "server.log", "server")
    return server


def _wait_ready(server, url: str, log_path: Path, what: str) -> None:
    """Poll `url` until it answers 200 (up to 180 s); stop `server` and raise, with its log's
    tail, when its process exits or it never does."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{what} exited:\n" + log_path.read_text()[-3000:])
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{what} did not become ready:\n" + log_path.read_text()[-3000:])


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


# Helpers for bench/compare_bench.py: the machine, what a server really runs with,
# and llama-cpp-python's own OpenAI server as a side of the comparison.

def machine_info() -> dict:
    """What every result records: CPU model, usable cores, llama-cpp-python's version and
    llama.cpp's build (system info), memory, and the load when it was asked."""
    import platform

    import llama_cpp

    cpu_model = ""
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
        cpu_model = next((line.split(":", 1)[1].strip() for line in file if line.startswith("model name")), "unknown")
    mem_total_kib = next(
        (int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:")),
        0,
    )
    return {
        "cpu_model": cpu_model,
        "cores_usable": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "mem_total_gib": round(mem_total_kib / 1024 / 1024, 1),
        "llama_cpp_python": llama_cpp.__version__,
        "llama_cpp_system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a whole process so far, exited threads included
    (/proc/<pid>/stat; resolution one clock tick, 10 ms on Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a whole process so far (see cpu_times)."""
    return sum(cpu_times(pid))


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def process_environ(pid: int) -> dict:
    """The environment a process was started with."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


_SETTINGS_DUMP = """
import json, django
django.setup()
from django.conf import settings
found = {name: getattr(settings, name) for name in dir(settings) if name.startswith("SLUICE_")}
try:
    from generation.ops.workers import default_threads
    found["llama_threads_in_effect"] = default_threads()
except Exception as exc:  # noqa: BLE001
    found["llama_threads_in_effect"] = repr(exc)
print(json.dumps(found, default=str, sort_keys=True))
"""


def settings_in_effect(server: BenchServer) -> dict:
    """Every SLUICE_* setting as the running server computed it: Django's settings evaluated
    again in the environment (and working directory) the server process was started with,
    plus the llama.cpp thread count `serve` derives from them."""
    done = subprocess.run(
        [sys.executable, "-c", _SETTINGS_DUMP], check=False, cwd=ROOT, env=process_environ(server.process.pid),
        capture_output=True, text=True,
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def create_api_key(server: BenchServer, name: str) -> str:
    """Another API key on a running server (another caller: its own prefix cache)."""
    done = subprocess.run(
        [sys.executable, "manage.py", "create_api_key", "--name", name], check=False, cwd=ROOT,
        env=process_environ(server.process.pid), capture_output=True, text=True,
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return done.stdout.strip()


@dataclass
class LlamaCppServer:
    """llama-cpp-python's own OpenAI-compatible server (`python -m llama_cpp.server`)."""
    url: str
    process: subprocess.Popen
    argv: list
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


# `python -m llama_cpp.server` with the extra-buffer choice Sluice's backend makes (the first
# argument, 1 or 0): the server takes no such option, and llama.cpp's default (repacked
# weights, Intel AMX) is killed with SIGILL on virtual machines that advertise AMX.
_LLAMA_SERVER_MAIN = """
import sys
from llama_cpp import llama_cpp as bindings
from llama_cpp.server.__main__ import main
extra = sys.argv.pop(1) == "1"
default_params = bindings.llama_model_default_params
def params():
    model_params = default_params()
    model_params.use_extra_bufts = extra
    return model_params
bindings.llama_model_default_params = params
sys.argv[0] = "llama_cpp.server"
main()
"""


def start_llama_cpp_server(model_path: str, log_dir: Path, *, threads: int, n_ctx: int, n_batch: int,
                           extra_args: tuple = ()) -> LlamaCppServer:
    """llama_cpp.server on a free loopback port with the model, threads, context and batch
    given; returns once /v1/models answers. `--interrupt_requests false`: otherwise any other
    request ends the stream in progress with [DONE]."""
    from generation.backends.llamacpp import extra_buffers_safe

    port = _free_port()
    argv = [
        "--model", model_path, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
        "--n_batch", str(n_batch), "--n_ubatch", str(n_batch), "--n_threads", str(threads),
        "--n_threads_batch", str(threads), "--verbose", "false", "--interrupt_requests", "false", *extra_args,
    ]
    log_path = Path(log_dir) / f"llama-cpp-server-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-c", _LLAMA_SERVER_MAIN, "1" if extra_buffers_safe() else "0", *argv],
        cwd=ROOT, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
    )
    server = LlamaCppServer(f"http://127.0.0.1:{port}", process, argv, log_path)
    _wait_ready(server, f"{server.url}/v1/models", log_path, "llama_cpp.server")
    return server


class InstantEngine:
    """An OpenAI-compatible engine that answers every completion at once with `pieces` chunks:
    with no model time, direct vs through Sluice measures Sluice's own request path.
    `first_delay` seconds between its headers and its first chunk stand in for a real
    engine's prompt processing, which Sluice's work after sending the request overlaps; the
    other chunks then follow 5 ms after the first."""

    def __init__(self, pieces: int = 32, *, first_delay: float = 0.0) -> None:
        chunks = [{"choices": [{"text": f" w{index}", "finish_reason": None}]} for index in range(pieces - 1)]
        chunks.append({"choices": [{"text": " end", "finish_reason": "length"}]})
        events = [f"data: {json.dumps(chunk)}\n\n".encode() for chunk in chunks] + [b"data: [DONE]\n\n"]
        stream = b"".join(events)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # the body would otherwise wait for the ACK of the headers

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                body = json.dumps({"object": "list", "data": [{"id": "instant", "object": "model"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(stream)))
                self.end_headers()
                if not first_delay:
                    self.wfile.write(stream)
                    return
                time.sleep(first_delay)
                self.wfile.write(events[0])  # alone, as a real engine's first token comes
                time.sleep(0.005)
                self.wfile.write(b"".join(events[1:]))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
