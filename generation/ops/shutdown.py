"""Graceful shutdown: stop accepting, let in-flight runs finish for a grace period, then
cancel the rest with reason `shutdown` so every stream still gets its terminal event and
every row its final status."""
from __future__ import annotations

import asyncio
import logging
import time

from generation.lifecycle.runner import runs_recorded
from generation.lifecycle.runtime import active_runs
from generation.models import Generation

logger = logging.getLogger(__name__)


async def drain(*, grace: float, settle_timeout: float = 10.0) -> int:
    """Refuse new work, wait up to `grace` seconds, then cancel what is left and wait for it
    to be recorded. Returns how many runs were cancelled."""
    active_runs.draining = True
    logger.info("shutting down: %d run(s) in flight, grace %.0f s", len(active_runs), grace)
    deadline = time.monotonic() + grace
    while len(active_runs) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    cancelled = sum(run.request_cancel(Generation.CancelReason.SHUTDOWN) for run in active_runs.all())
    deadline = time.monotonic() + settle_timeout
    while len(active_runs) and time.monotonic() < deadline:  # each run records itself as it ends
        await asyncio.sleep(0.05)
    await runs_recorded(max(deadline - time.monotonic(), 0))
    return cancelled
