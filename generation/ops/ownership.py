"""Process ownership of runs: a heartbeat per process, reconciliation of rows that a dead
process left queued or running, and a sweep of what this live process lost track of
(both become `interrupted`, through records.generations)."""
from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections, transaction
from django.utils import timezone

from generation.lifecycle.runtime import active_runs
from generation.models import Generation, ServerProcess
from generation.records import rollups
from generation.records.generations import generations_interrupt
from generation.records.process import OWNER_ID

logger = logging.getLogger(__name__)
_heartbeat_started = threading.Event()
SEAL_HOURS_PER_BEAT = 24  # a month of unsealed hours (after an upgrade) is caught up in 30 beats
_caught_up_at: datetime | None = None  # the newest settled hour when a pass last left nothing to seal


def process_register() -> None:
    """Record this process as live (idempotent)."""
    ServerProcess.objects.update_or_create(
        owner=OWNER_ID,
        defaults={"hostname": socket.gethostname()[:100], "pid": os.getpid(), "heartbeat_at": timezone.now()},
    )


def process_heartbeat_start() -> None:
    """Register, then beat every SLUICE_OWNER_HEARTBEAT_SECONDS in a daemon thread (0: register
    only, as the test suite does: a thread outliving its test would touch a closed database)."""
    if _heartbeat_started.is_set():
        return
    _heartbeat_started.set()
    process_register()
    if settings.SLUICE_OWNER_HEARTBEAT_SECONDS <= 0:
        return
    threading.Thread(target=_beat_forever, name="sluice-heartbeat", daemon=True).start()


def _beat_forever() -> None:
    while True:
        threading.Event().wait(settings.SLUICE_OWNER_HEARTBEAT_SECONDS)
        try:
            close_old_connections()
            if not ServerProcess.objects.filter(owner=OWNER_ID).update(heartbeat_at=timezone.now()):
                process_register()  # our row was pruned while we were stalled: come back
            generations_reconcile()  # rows of peers that died since the last beat
            generations_sweep()  # runs of this process that lost their response
            seal_tallies()
        except Exception as exc:  # noqa: BLE001 - a missed beat must not kill the thread
            if isinstance(exc, DatabaseError):
                logger.warning("process heartbeat: database unavailable (%s)", type(exc).__name__)
            else:
                logger.exception("process heartbeat failed")
        finally:
            connections.close_all()  # hand the connection back while sleeping


def seal_tallies() -> int:
    """Seal the dashboard's settled hours: every beat while some are left, then again only
    once another hour has settled. A pass that finds nothing to seal still reads a month of
    markers, tens of milliseconds of Python holding the GIL in the middle of streams, every
    beat. An hour passed over because a run in it was unfinished is sealed an hour later at
    most; until then the dashboard sums it from its rows, as it does any unsealed hour."""
    global _caught_up_at
    newest = rollups.newest_settled_hour(timezone.now())
    if newest == _caught_up_at:
        return 0
    sealed = rollups.seal_settled_hours(limit=SEAL_HOURS_PER_BEAT)
    if sealed < SEAL_HOURS_PER_BEAT:
        _caught_up_at = newest
    return sealed


def process_unregister() -> None:
    ServerProcess.objects.filter(owner=OWNER_ID).delete()


def _dead_local_owners() -> list[str]:
    """Processes registered from this host whose pid is gone: dead without waiting for
    their heartbeat to go stale (a crashed server restarting at once)."""
    local = ServerProcess.objects.filter(hostname=socket.gethostname()[:100]).exclude(owner=OWNER_ID)
    return [process.owner for process in local.only("owner", "pid") if not _pid_alive(process.pid)]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def generations_reconcile() -> int:
    """Mark rows owned by no live process as interrupted; prune dead processes.

    A process is live while its heartbeat is younger than SLUICE_OWNER_TIMEOUT_SECONDS and,
    on this host, while its pid exists.
    Returns how many rows were interrupted; each gets its operational log line.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.SLUICE_OWNER_TIMEOUT_SECONDS)
    with transaction.atomic():
        ServerProcess.objects.filter(owner__in=_dead_local_owners()).delete()
        live = ServerProcess.objects.filter(heartbeat_at__gte=cutoff).values("owner")
        orphans = list(Generation.objects.filter(status__in=Generation.UNFINISHED_STATUSES).exclude(owner__in=live))
        ServerProcess.objects.filter(heartbeat_at__lt=cutoff).delete()
    return generations_interrupt(rows=orphans, error_code="process_died")


def generations_sweep() -> int:
    """Finish what this live process no longer serves, older than SLUICE_SWEEP_GRACE_SECONDS:
    runs whose response was never iterated are closed as client disconnects, and rows it owns
    with no run in memory become `interrupted / run_lost`. Returns how many rows it finished."""
    grace = settings.SLUICE_SWEEP_GRACE_SECONDS
    held = set()
    for run in active_runs.all():
        held.add(run.request_id)
        if run.orphaned(grace):
            run.close_soon()
    now = timezone.now()
    candidates = Generation.objects.filter(
        owner=OWNER_ID, status__in=Generation.UNFINISHED_STATUSES, created_at__lt=now - timedelta(seconds=grace)
    )
    lost = [row for row in candidates if row.request_id not in held]
    interrupted = generations_interrupt(rows=lost, error_code="run_lost")
    if interrupted:
        logger.warning("sweep finished %d generation row(s) this process no longer held", interrupted)
    return interrupted
