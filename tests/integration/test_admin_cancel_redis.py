"""Admin cancel across processes: the admin request lands on server B, the stream is on
server A, both share a Redis channel layer (Redis on 127.0.0.1:6379)."""
from __future__ import annotations

import re
from contextlib import closing

import httpx
import pytest

from tests.support.live import admin_client, manage, server_env, start_server
from tests.support.sse import open_stream

pytestmark = [pytest.mark.integration, pytest.mark.services]
REDIS = "redis://127.0.0.1:6379/7"


def test_admin_cancel_on_another_process_stops_the_stream(tmp_path):
    password = "ops-password-for-tests-1"
    settings = dict(SLUICE_SLOTS=1, CHANNEL_LAYER_URL=REDIS)
    serving = start_server(tmp_path, **settings)
    admin_side = start_server(tmp_path, **settings)
    manage(server_env(tmp_path, SLUICE_ADMIN_USERNAME="ops", SLUICE_ADMIN_PASSWORD=password), "ensure_admin")
    try:
        with httpx.Client(timeout=60) as client:
            response, events, request_id = open_stream(client, serving)
            with closing(response):
                row = serving.row(request_id, finished=False)
                admin = admin_client(admin_side, password)
                try:
                    page = admin.get("/admin/generation/generation/")
                    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
                    done = admin.post(
                        "/admin/generation/generation/",
                        data={"action": "cancel_selected", "_selected_action": [row["id"]], "csrfmiddlewaretoken": token},
                        headers={"Referer": f"{admin_side.url}/admin/generation/generation/"},
                    )
                    assert done.status_code == 302
                finally:
                    admin.close()
                rest = list(events)
        assert rest[-1] == ("cancelled", {"reason": "admin_cancel"})
        assert serving.row(request_id)["cancel_reason"] == "admin_cancel"
    finally:
        for server in (serving, admin_side):
            server.process.terminate()
            server.process.wait(timeout=30)
