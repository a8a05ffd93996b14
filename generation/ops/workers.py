"""`serve --workers N`: N serving processes on one listening socket. The supervisor binds
the port once and hands the socket to each worker (the kernel spreads connections among
them), sizes their llama.cpp threads so N x threads fits the cores, forwards SIGTERM and
SIGINT for a graceful drain, and restarts a worker that dies while it is not stopping."""
from __future__ import annotations

import ctypes
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

from generation.backends.cpu import threads_per_process, usable_cores

logger = logging.getLogger(__name__)
RESTART_DELAY_SECONDS = 1.0


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening IPv4 TCP socket that child processes can inherit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # daphne adopts inherited IPv4 sockets
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def oversubscription_warning(*, processes: int, threads: int) -> str | None:
    """A warning when `processes` x `threads` llama.cpp threads exceed the usable cores."""
    cores = usable_cores()
    if processes * threads <= cores:
        return None
    return (
        f"{processes} process(es) x {threads} llama.cpp thread(s) exceed the {cores} usable core(s): "
        f"every stream will be slower. Leave SLUICE_N_THREADS unset (it becomes cores / SLUICE_PROCESSES) "
        f"or lower it."
    )


def raise_open_files_limit(ceiling: int = 1 << 20) -> int:
    """Raise this process's soft limit on open files to its hard limit (at most `ceiling`)
    and return the limit in effect. Every open stream holds a socket, so the soft limit (1,024
    by default outside a unit that sets LimitNOFILE) is the per-process ceiling on streams."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def open_files_warning(limit: int, *, streams: int) -> str | None:
    """A warning when `streams` admitted streams (slots + queue) could exhaust `limit` open
    files (one socket each, plus what the process itself keeps open)."""
    needed = streams + 256
    if limit >= needed:
        return None
    return (
        f"the open-files limit ({limit}) is below the {streams} streams SLUICE_SLOTS + SLUICE_MAX_QUEUE admit "
        f"(plus about 256 for the process): raise LimitNOFILE (ulimit -n) or lower SLUICE_MAX_QUEUE."
    )


def stop_with_parent(parent: int):
    """What a worker runs before it starts (Linux): SIGTERM, so a graceful drain, when the
    supervisor dies, even by SIGKILL, which gives it no chance to stop its workers; without
    it they would keep serving on the shared socket with no one to replace or stop them."""

    def arm() -> None:
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
            if os.getppid() != parent:  # it died before the line above
                os.kill(os.getpid(), signal.SIGTERM)

    return arm


class Supervisor:
    """Runs `workers` copies of `serve --fd` and keeps them running until told to stop."""

    def __init__(self, *, workers: int, host: str, port: int, extra_args: list[str], grace: float) -> None:
        self.workers = workers
        self.host, self.port = host, port
        self.extra_args = extra_args
        self.grace = grace
        self.stopping = False
        self._children: dict[int, subprocess.Popen] = {}

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the exit status (0 after a clean drain)."""
        sock = listening_socket(self.host, self.port)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for index in range(self.workers):
            self._children[index] = self._spawn(index, sock)
        while not self.stopping:
            for index, child in list(self._children.items()):
                if child.poll() is not None and not self.stopping:
                    logger.warning("worker %d exited with %s; restarting it", index, child.returncode)
                    time.sleep(RESTART_DELAY_SECONDS)
                    self._children[index] = self._spawn(index, sock)
            time.sleep(0.2)
        deadline = time.monotonic() + self.grace + 20
        codes = [self._wait(child, deadline) for child in self._children.values()]
        sock.close()
        # A worker still starting when the signal came dies of it before its handlers exist:
        # it held no runs, so that is a clean stop too.
        return 0 if all(code in (0, -signal.SIGTERM) for code in codes) else 1

    def _spawn(self, index: int, sock: socket.socket) -> subprocess.Popen:
        env = {**os.environ, "SLUICE_PROCESSES": os.environ.get("SLUICE_PROCESSES", str(self.workers))}
        command = [
            sys.executable, str(Path(sys.argv[0]).resolve()), "serve", "--fd", str(sock.fileno()),
            "--host", self.host, "--port", str(self.port), *self.extra_args,
        ]
        return subprocess.Popen(command, env=env, pass_fds=(sock.fileno(),), preexec_fn=stop_with_parent(os.getpid()))

    def _stop(self, signum, frame) -> None:
        if self.stopping:  # a second signal: stop now
            for child in self._children.values():
                child.kill()
            return
        self.stopping = True
        for child in self._children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    @staticmethod
    def _wait(child: subprocess.Popen, deadline: float) -> int:
        try:
            return child.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.kill()
            return child.wait()


def default_threads() -> int:
    """What a worker's llama.cpp threads default to under SLUICE_PROCESSES."""
    return settings.SLUICE_N_THREADS or threads_per_process(settings.SLUICE_PROCESSES)
