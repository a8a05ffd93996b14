"""The local production stack (deploy/localstack, what `make stack` runs) for the whole
session: nginx in front of two Sluice processes on the real model, a fresh PostgreSQL
database, a private Redis. Settings are shortened so that faults show within seconds."""
from __future__ import annotations

import os
import shutil

import pytest

from deploy.localstack import Stack
from deploy.localstack.nginx import NGINX, front_bare

SETTINGS = {
    "SLUICE_SLOTS": 1,  # a second request queues: silence longer than a proxy timeout
    "SLUICE_MAX_QUEUE": 8,
    "SLUICE_N_THREADS": 1,  # 2 processes x 1 thread on 2 cores
    "SLUICE_HEARTBEAT_SECONDS": 1,  # keep-alive comments well inside the 3 s front's timeout
    "SLUICE_OWNER_HEARTBEAT_SECONDS": 1,  # a survivor reconciles a dead peer's rows within about 1 s
    "SLUICE_OWNER_TIMEOUT_SECONDS": 5,
    "SLUICE_SHUTDOWN_GRACE_SECONDS": 2,
    "SLUICE_QUEUE_TIMEOUT_SECONDS": 60,
}
FRONTS = {
    # nginx's defaults (response buffering on), gzip for event streams, a 3 s read timeout.
    "bare": front_bare(read_timeout="3s", gzip=True),
    # the same, ignoring X-Accel-Buffering: the control that shows what buffering does.
    "buffered": front_bare(read_timeout="60s", gzip=True, ignore_accel_buffering=True),
}


@pytest.fixture(scope="session")
def stack():
    missing = [name for name in ("redis-server",) if shutil.which(name) is None]
    if not os.access(NGINX, os.X_OK):
        missing.append("nginx")
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (`make test` installs nginx)")
    with Stack(processes=2, settings=SETTINGS, fronts=FRONTS) as running:
        yield running


@pytest.fixture
def full_stack(stack):
    """The stack with both Sluice processes running (a fault test may have stopped one)."""
    for process in stack.processes:
        if not process.alive():
            process.start()
    if not stack.redis.process or stack.redis.process.poll() is not None:
        stack.redis.start()
    return stack
