"""SIGTERM on a real server: 503 for new work, in-flight streams end cancelled/shutdown."""
from __future__ import annotations

import signal
from contextlib import closing

import httpx
import pytest

from tests.support.live import start_server
from tests.support.sse import LONG_BODY, open_stream

pytestmark = pytest.mark.integration


def test_sigterm_drains_then_exits(tmp_path):
    server = start_server(tmp_path, SLUICE_SLOTS=1, SLUICE_SHUTDOWN_GRACE_SECONDS=1)
    with httpx.Client(timeout=60) as client:
        response, events, request_id = open_stream(client, server)
        with closing(response):
            server.process.send_signal(signal.SIGTERM)
            refused = client.post(f"{server.url}/api/v1/generations", json=LONG_BODY, headers=server.headers())
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"
            rest = list(events)
    assert rest[-1] == ("cancelled", {"reason": "shutdown"})
    assert server.process.wait(timeout=30) == 0
    row = server.row(request_id)
    assert (row["status"], row["cancel_reason"]) == ("cancelled", "shutdown")
    assert "Stopped (1 generation(s) cancelled at shutdown)." in server.log_path.read_text()
