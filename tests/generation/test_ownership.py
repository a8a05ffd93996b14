"""Reconciliation only interrupts rows whose owning process is dead."""
from datetime import timedelta

import pytest
from django.utils import timezone

from generation.models import Generation, ServerProcess
from generation.ops.ownership import generations_reconcile, process_register
from generation.records.process import OWNER_ID

pytestmark = pytest.mark.django_db


def make_row(owner: str, status: str = "running") -> Generation:
    return Generation.objects.create(channel="api", model_name="m", model_version="v", owner=owner, status=status)


def test_rows_of_dead_processes_are_interrupted_and_live_ones_untouched(settings):
    settings.SLUICE_OWNER_TIMEOUT_SECONDS = 30
    process_register()
    ServerProcess.objects.create(owner="peer-live", hostname="other-host", pid=1, heartbeat_at=timezone.now())
    ServerProcess.objects.create(
        owner="peer-stale", hostname="other-host", pid=2, heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    mine, live, stale, unknown = make_row(OWNER_ID), make_row("peer-live"), make_row("peer-stale"), make_row("gone")
    queued_orphan = make_row("gone", status="queued")
    finished = make_row("gone", status="completed")
    assert generations_reconcile() == 3
    statuses = {row.pk: row.status for row in Generation.objects.all()}
    assert statuses[mine.pk] == statuses[live.pk] == "running"
    assert statuses[stale.pk] == statuses[unknown.pk] == statuses[queued_orphan.pk] == "interrupted"
    assert statuses[finished.pk] == "completed"
    interrupted = Generation.objects.get(pk=stale.pk)
    assert interrupted.finished_at and interrupted.error_code == "process_died"
    assert set(ServerProcess.objects.values_list("owner", flat=True)) == {OWNER_ID, "peer-live"}
    assert generations_reconcile() == 0  # idempotent


def test_a_local_process_whose_pid_is_gone_is_dead_at_once(settings):
    import socket
    import subprocess

    settings.SLUICE_OWNER_TIMEOUT_SECONDS = 3600
    child = subprocess.Popen(["true"])
    child.wait()  # its pid no longer exists
    ServerProcess.objects.create(owner="crashed", hostname=socket.gethostname()[:100], pid=child.pid)
    row = make_row("crashed")
    assert generations_reconcile() == 1
    row.refresh_from_db()
    assert row.status == "interrupted"


def test_reconcile_command(capsys):
    make_row("gone")
    from django.core.management import call_command

    call_command("reconcile_generations")
    assert "Interrupted 1 generation(s)" in capsys.readouterr().out
