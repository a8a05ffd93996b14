"""Reaching a run across processes: the request lands on server B, the stream is on server
A, both share a database and a Redis channel layer (Redis on 127.0.0.1:6379)."""
from __future__ import annotations

import re
from contextlib import closing

import httpx
import pytest

from tests.support.live import admin_client, manage, server_env, start_server
from tests.support.sse import open_stream

pytestmark = [pytest.mark.integration, pytest.mark.services]
REDIS = "redis://127.0.0.1:6379/7"
PASSWORD = "ops-password-for-tests-1"


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("two")
    settings = dict(SLUICE_SLOTS=1, CHANNEL_LAYER_URL=REDIS)
    serving = start_server(data_dir, **settings)
    other = start_server(data_dir, **settings)
    manage(server_env(data_dir, SLUICE_ADMIN_USERNAME="ops", SLUICE_ADMIN_PASSWORD=PASSWORD), "ensure_admin")
    yield serving, other
    for server in (serving, other):
        server.process.terminate()
        server.process.wait(timeout=30)


def admin_action(server, path: str, action: str, row_id: int) -> None:
    admin = admin_client(server, PASSWORD)
    try:
        page = admin.get(path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        done = admin.post(
            path, data={"action": action, "_selected_action": [row_id], "csrfmiddlewaretoken": token},
            headers={"Referer": f"{server.url}{path}"},
        )
        assert done.status_code == 302
    finally:
        admin.close()


def test_admin_cancel_on_another_process_stops_the_stream(two_servers):
    serving, other = two_servers
    with httpx.Client(timeout=60) as client:
        response, events, request_id = open_stream(client, serving)
        with closing(response):
            row = serving.row(request_id, finished=False)
            admin_action(other, "/admin/generation/generation/", "cancel_selected", row["id"])
            rest = list(events)
    assert rest[-1] == ("cancelled", {"reason": "admin_cancel"})
    assert serving.row(request_id)["cancel_reason"] == "admin_cancel"


def test_the_cancel_endpoint_on_another_process_answers_202_and_stops_the_stream(two_servers):
    serving, other = two_servers
    with httpx.Client(timeout=60) as client:
        response, events, request_id = open_stream(client, serving)
        with closing(response):
            answer = client.post(f"{other.url}/api/v1/generations/{request_id}/cancel", headers=serving.headers())
            assert answer.status_code == 202 and answer.json()["cancel_requested"] is True
            rest = list(events)
        assert rest[-1] == ("cancelled", {"reason": "client_cancel"})
        assert serving.row(request_id)["cancel_reason"] == "client_cancel"
        finished = client.post(f"{other.url}/api/v1/generations/{request_id}/cancel", headers=serving.headers())
        assert finished.status_code == 409 and finished.json()["error"]["code"] == "already_finished"


def test_a_key_revoked_on_another_process_stops_its_runs_and_is_refused_at_once(two_servers):
    serving, other = two_servers
    key = manage(server_env(serving.data_dir), "create_api_key", "--name", "revoke-me").strip()
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{serving.url}/v1/models", headers=headers).status_code == 200  # now cached as verified
    with httpx.Client(timeout=60) as client:
        response, events, request_id = open_stream(client, serving, headers=headers)
        with closing(response):
            key_id = serving.rows("request_id = ?", (request_id.replace("-", ""),))[0]["api_key_id"]
            admin_action(other, "/admin/generation/apikey/", "revoke_selected", key_id)
            rest = list(events)
    assert rest[-1] == ("cancelled", {"reason": "admin_cancel"})
    assert httpx.get(f"{serving.url}/v1/models", headers=headers).status_code == 401


def test_a_keys_limit_is_shared_by_both_processes(two_servers):
    import redis

    serving, other = two_servers
    redis.Redis.from_url(REDIS).flushdb()  # this module's own database: no counters from earlier runs
    env = server_env(serving.data_dir)
    key = manage(env, "create_api_key", "--name", "limited").strip()
    manage(env, "shell", "-c", (
        "from generation.models import ApiKey, CallerLimit; "
        "CallerLimit.objects.create(api_key=ApiKey.objects.get(name='limited'), requests_per_minute=2)"
    ))
    headers = {"Authorization": f"Bearer {key}"}
    body = {"prompt": "Hi", "max_tokens": 1, "stream": False}
    statuses = [
        httpx.post(f"{server.url}/api/v1/generations", json=body, headers=headers, timeout=60).status_code
        for server in (serving, other, serving, other)
    ]
    assert statuses == [200, 200, 429, 429]
