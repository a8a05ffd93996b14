"""Crash reconciliation with real processes: kill -9 one of two servers sharing a database."""
from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from tests.support.live import ROOT, server_env, start_server
from tests.support.sse import open_stream

pytestmark = pytest.mark.integration
def test_killed_process_rows_become_interrupted_and_live_rows_are_left_alone(tmp_path):
    # Long heartbeat timeout: only the dead-pid check can tell the killed server is gone.
    settings = dict(SLUICE_SLOTS=1, SLUICE_OWNER_TIMEOUT_SECONDS=3600, SLUICE_OWNER_HEARTBEAT_SECONDS=3600)
    doomed = start_server(tmp_path, **settings)
    survivor = start_server(tmp_path, **settings)
    with httpx.Client(timeout=60) as client:
        doomed_response, _, doomed_id = open_stream(client, doomed)
        survivor_response, survivor_events, survivor_id = open_stream(client, survivor)
        doomed.process.kill()  # SIGKILL: no chance to record anything
        doomed.process.wait()
        doomed_response.close()
        assert doomed.row(doomed_id, finished=False)["status"] == "running"  # left in limbo

        done = subprocess.run(
            [sys.executable, "manage.py", "reconcile_generations"],
            cwd=ROOT, env=server_env(tmp_path, **settings), capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0 and "Interrupted 1 generation(s)" in done.stdout
        row = doomed.row(doomed_id)
        assert (row["status"], row["error_code"]) == ("interrupted", "process_died")
        assert survivor.row(survivor_id, finished=False)["status"] == "running"  # a live process owns it

        # The survivor's run is still its own: it can still be cancelled through it, normally.
        cancel = client.post(f"{survivor.url}/api/v1/generations/{survivor_id}/cancel", headers=survivor.headers())
        assert cancel.status_code == 202
        assert list(survivor_events)[-1] == ("cancelled", {"reason": "client_cancel"})
        assert survivor.row(survivor_id)["status"] == "cancelled"
    survivor.process.terminate()
    survivor.process.wait(timeout=20)


def test_a_restarted_server_reconciles_at_start_up(tmp_path):
    first = start_server(tmp_path, SLUICE_SLOTS=1)
    with httpx.Client(timeout=60) as client:
        response, _, request_id = open_stream(client, first)
        first.process.kill()
        first.process.wait()
        response.close()
    second = start_server(tmp_path, SLUICE_SLOTS=1)  # start-up reconciles before serving
    try:
        assert second.row(request_id)["status"] == "interrupted"
    finally:
        second.process.terminate()
        second.process.wait(timeout=20)
