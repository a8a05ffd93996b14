"""A canary sent in prompts through the real model never shows up in what operators see:
admin pages (changelist, every record, dashboard, API keys), /metrics, /healthz, /readyz,
the server log, the database. Requests end completed, cancelled (hang-up and explicit
cancel), timed out and rejected, on the native API and on /v1; the scripted-backend canary
test in tests/generation/test_admin.py adds a backend failure."""
from __future__ import annotations

import time
from contextlib import closing

import httpx
import pytest

from tests.support.live import admin_client, assert_never_seen, manage, server_env, start_server
from tests.support.sse import open_stream

pytestmark = pytest.mark.integration
CANARY = "QX-CANARY-9313 Ostrava Tooling rebate 7"
PROMPT = f"Internal note: {CANARY}. Write a short product description for a walnut desk organiser:"
PASSWORD = "ops-password-for-canary-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("canary")
    # One slot and a 1 s queue timeout: a request sent while a stream holds the slot times out.
    live = start_server(data_dir, SLUICE_SLOTS=1, SLUICE_QUEUE_TIMEOUT_SECONDS=1)
    manage(server_env(data_dir, SLUICE_ADMIN_USERNAME="ops", SLUICE_ADMIN_PASSWORD=PASSWORD), "ensure_admin")
    yield live
    live.process.terminate()
    live.process.wait(timeout=30)


def send_every_kind_of_request(server) -> dict[str, str]:
    """One request per outcome, each carrying the canary; returns {outcome: request id}."""
    url, ids = f"{server.url}/api/v1/generations", {}
    with httpx.Client(timeout=120, headers=server.headers()) as client:
        done = client.post(url, json={"prompt": PROMPT, "max_tokens": 24, "stream": False})
        assert done.status_code == 200, done.text
        ids["completed"] = done.json()["id"]
        server.outputs.append(done.json()["text"])

        long_body = {  # at temperature 0 this runs to max_tokens, well past the hang-ups below
            "prompt": f"Internal note: {CANARY}.\nWrite a long catalogue introduction for garden furniture:",
            "max_tokens": 600,
            "temperature": 0,
        }
        response, events, ids["client_disconnect"] = open_stream(client, server, long_body)
        with closing(response):  # holds the only slot while the next request waits
            timed_out = client.post(url, json={"prompt": PROMPT, "max_tokens": 8, "stream": False})
            assert timed_out.status_code == 504, timed_out.text
            assert CANARY not in timed_out.text
            ids["timed_out"] = timed_out.headers["X-Request-ID"]
        server.row(ids["client_disconnect"])  # leaving the block hung up; wait until the slot is free

        response, events, ids["client_cancel"] = open_stream(client, server, long_body)
        with closing(response):
            assert client.post(f"{url}/{ids['client_cancel']}/cancel").status_code in (200, 202)
            assert list(events)[-1][0] == "cancelled"

        for body in (
            {"prompt": f"{PROMPT} Card 4111 1111 1111 1111."},  # a card in an API prompt: rejected
            {"prompt": PROMPT, "max_tokens": 100_000},  # past the context window
        ):
            rejected = client.post(url, json=body)
            assert 400 <= rejected.status_code < 500 and CANARY not in rejected.text

        chat_url, model = f"{server.url}/v1/chat/completions", "gemma-3-270m-q4_k_m"
        message = {"role": "user", "content": PROMPT}
        chat = client.post(chat_url, json={"model": model, "max_tokens": 24, "messages": [message]})
        assert chat.status_code == 200, chat.text
        ids["openai"] = chat.headers["X-Request-ID"]
        server.outputs.append(chat.json()["choices"][0]["message"]["content"])
        card = {"role": "user", "content": f"{PROMPT} Card 4111 1111 1111 1111."}
        rejected = client.post(chat_url, json={"model": model, "messages": [card]})
        assert rejected.status_code == 422 and CANARY not in rejected.text
    return ids


def test_canary_never_reaches_admin_metrics_health_logs_or_database(server):
    ids = send_every_kind_of_request(server)
    rows = {outcome: server.row(request_id) for outcome, request_id in ids.items()}
    assert {outcome: row["status"] for outcome, row in rows.items()} == {
        "completed": "completed",
        "timed_out": "timed_out",
        "client_disconnect": "cancelled",
        "client_cancel": "cancelled",
        "openai": "completed",
    }
    assert rows["openai"]["channel"] == "openai"
    assert rows["client_disconnect"]["cancel_reason"] == "client_disconnect"
    manage(server_env(server.data_dir), "rollup_generations")

    admin = admin_client(server, PASSWORD)
    seen = []
    with closing(admin):
        pages = ["/admin/", "/admin/generation/generation/", "/admin/generation/apikey/"]
        pages += [f"/admin/generation/generation/?status__exact={status}" for status in ("cancelled", "timed_out")]
        pages += [f"/admin/generation/generation/dashboard/?window={window}" for window in ("1h", "24h", "7d", "30d")]
        pages += [f"/admin/generation/generation/{row['id']}/change/" for row in server.rows()]
        pages += [f"/admin/generation/generation/?q={request_id}" for request_id in ids.values()]
        for page in pages:
            response = admin.get(page)
            assert response.status_code == 200, page
            seen.append(response.text)
    changelist = seen[1]
    assert "timed_out" in changelist and "client_disconnect" in changelist and "client_cancel" in changelist
    for path in ("/metrics", "/healthz", "/readyz"):
        response = httpx.get(f"{server.url}{path}", timeout=30)
        assert response.status_code == 200, path
        seen.append(response.text)
    assert "sluice_generations_total" in seen[-3]
    time.sleep(0.3)  # the last log lines
    seen += [server.log_path.read_text(errors="replace"), server.database_dump()]

    assert_never_seen("\n".join(seen), [CANARY, "QX-CANARY", "Ostrava", "walnut desk", "4111 1111"], server.outputs)
