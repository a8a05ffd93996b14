"""Child processes of the stack: started in their own session (a terminal's Ctrl-C reaches
the stack, which then stops them in order) and killed with the stack if it dies first."""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


class StackError(RuntimeError):
    """The stack could not start (a message meant for the person running it)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(command: list[str], *, log_path: Path, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """Start `command` with stdout and stderr appended to `log_path`."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent,
        )


def stop(process: subprocess.Popen | None, *, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
    """Send `sig`, wait up to `timeout`, then SIGKILL. Returns the exit code."""
    if process is None or process.poll() is not None:
        return None if process is None else process.returncode
    process.send_signal(sig)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(timeout=10)


def wait_for(predicate, *, timeout: float, what: str, process: subprocess.Popen | None = None, log_path: Path | None = None):
    """Poll `predicate` until it returns a true value; fail early if `process` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:] if log_path else ""
            raise StackError(f"{what}: the process exited with {process.returncode}\n{tail}")
        time.sleep(0.1)
    tail = log_path.read_text(errors="replace")[-3000:] if log_path and log_path.exists() else ""
    raise StackError(f"{what}: not ready in {timeout:.0f}s\n{tail}")


def env_without(prefixes: tuple[str, ...]) -> dict:
    """This process's environment minus the variables the stack sets for its children."""
    return {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
