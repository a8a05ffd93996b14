"""Start llama-cpp-python's own OpenAI-compatible server (`python -m llama_cpp.server`) on a
loopback port with the embedded model, for the remote backend's integration tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.live import _die_with_parent, free_port


@dataclass
class Engine:
    url: str
    port: int
    model_path: str
    log_path: Path
    process: subprocess.Popen
    threads: int

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (/proc/<pid>/stat)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> "Engine":
        """The same server again on the same port (after kill or stop)."""
        return start_engine(self.model_path, self.log_path.parent, port=self.port, threads=self.threads)


def start_engine(model_path: str, log_dir: Path, *, port: int | None = None, threads: int = 1, n_ctx: int = 2048) -> Engine:
    port = port or free_port()
    log_path = Path(log_dir) / f"engine-{port}.log"
    process = subprocess.Popen(
        [
            sys.executable, str(Path(__file__).with_name("engine_main.py")), "--model", model_path, "--host", "127.0.0.1",
            "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads),
            "--n_threads_batch", str(threads), "--verbose", "false",
            # Otherwise any other request, even GET /v1/models (a health check), ends the
            # stream in progress with [DONE].
            "--interrupt_requests", "false",
        ],
        stdout=log_path.open("ab"), stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
    )
    engine = Engine(f"http://127.0.0.1:{port}", port, model_path, log_path, process, threads)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("engine exited:\n" + log_path.read_text()[-3000:])
        try:
            if httpx.get(f"{engine.url}/v1/models", timeout=2).status_code == 200:
                return engine
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    engine.kill()
    raise RuntimeError("engine did not start:\n" + log_path.read_text()[-3000:])
