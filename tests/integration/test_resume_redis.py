"""Resume across processes: two daphne servers sharing a SQLite file and a Redis channel
layer (Redis on 127.0.0.1:6379). A stream started on A is cut at random points and
resumed on A or on B; the text is the uninterrupted text, with one terminal event."""
from __future__ import annotations

import json
import random
import time
from pathlib import Path

import httpx
import pytest

from tests.support.live import manage, server_env, start_server
from tests.support.sse import messages

pytestmark = [pytest.mark.integration, pytest.mark.services]
REDIS = "redis://127.0.0.1:6379/7"
SCRIPTED = "tests.browser.scripted.EnvScriptedBackend"
WORDS = "solid cedar board with oiled edges and a deep groove for juices".split()
SCRIPT = [f"{WORDS[index % len(WORDS)]} " for index in range(150)]
TEXT = "".join(SCRIPT)
GRACE = 1.0
TERMINAL = {"done", "cancelled", "error"}


def settings_for(**extra) -> dict:
    return dict(
        SLUICE_SLOTS=2, CHANNEL_LAYER_URL=REDIS, SLUICE_RESUME_GRACE_SECONDS=GRACE, SLUICE_BACKEND=SCRIPTED,
        SLUICE_TEST_SCRIPT=json.dumps(SCRIPT), SLUICE_TEST_TOKEN_DELAY="0.02", **extra,
    )


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("resume")
    started = [start_server(data_dir, **settings_for()) for _ in range(2)]
    yield started
    for server in started:
        server.process.terminate()
        server.process.wait(timeout=30)


def read(response: httpx.Response, stop=None) -> list[tuple[int | None, str, dict]]:
    """(id, event, data) until the stream ends or `stop(events)` says to hang up."""
    events = []
    for message in messages(response.iter_lines()):
        if "data" not in message:
            continue
        events.append((int(message["id"]) if "id" in message else None, message["event"], json.loads(message["data"])))
        if stop is not None and stop(events):
            break
    return events


def text_of(events) -> str:
    return "".join(data["text"] for _, name, data in events if name == "delta")


def cut_at(moment: str):
    deltas = random.randint(2, len(SCRIPT) - 5)
    return {
        "accepted": lambda events: events[-1][1] == "accepted",
        "mid-stream": lambda events: sum(name == "delta" for _, name, _ in events) >= deltas,
        "last delta": lambda events: sum(name == "delta" for _, name, _ in events) >= len(SCRIPT),
    }[moment]


def start_and_cut(server, moment: str, headers=None):
    body = {"prompt": "Copy for a cedar board", "max_tokens": 200, "resumable": True}
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", f"{server.url}/api/v1/generations", json=body, headers=headers or server.headers()) as response:
            assert response.headers["content-type"] == "text/event-stream"
            return read(response, cut_at(moment))


def resume(server, request_id: str, last_id: int, headers: dict) -> tuple[int, list | dict]:
    with httpx.Client(timeout=30) as client:
        url = f"{server.url}/api/v1/generations/{request_id}/events"
        with client.stream("GET", url, headers={**headers, "Last-Event-ID": str(last_id)}) as response:
            if response.status_code != 200:
                response.read()
                return response.status_code, response.json()
            return 200, read(response)


@pytest.mark.parametrize("where", ["same process", "other process"])
@pytest.mark.parametrize("moment", ["accepted", "mid-stream", "last delta"])
def test_a_cut_stream_resumed_anywhere_gives_the_same_text(servers, moment, where):
    owner, other = servers
    seen = start_and_cut(owner, moment)
    assert not any(name in TERMINAL for _, name, _ in seen)
    request_id = seen[0][2]["request_id"]
    time.sleep(random.uniform(0, GRACE / 2))
    target = owner if where == "same process" else other
    status, rest = resume(target, request_id, seen[-1][0], headers=owner.headers())  # the caller who started it
    assert status == 200, rest
    assert [event_id for event_id, _, _ in seen + rest] == list(range(1, len(seen) + len(rest) + 1))
    assert text_of(seen) + text_of(rest) == TEXT
    assert [name for _, name, _ in seen + rest if name in TERMINAL] == ["done"]
    row = owner.row(request_id)
    assert (row["status"], row["resumes"]) == ("completed", 1)
    # Cut after the last delta, the terminal event may already have been handed to the socket.
    assert row["disconnects"] == 1 or (moment == "last delta" and row["disconnects"] == 0)


def test_nobody_resumes_cancels_after_the_grace_period_and_the_process_idles(servers):
    owner, other = servers
    seen = start_and_cut(owner, "accepted")
    request_id = seen[0][2]["request_id"]
    row = owner.row(request_id, timeout=GRACE + 10)
    assert (row["status"], row["cancel_reason"], row["disconnects"], row["resumes"]) == (
        "cancelled", "client_disconnect", 1, 0,
    )
    assert row["output_tokens"] < len(SCRIPT)  # stopped after the grace period, not at the end
    time.sleep(GRACE + 0.5)  # the finished run's window ends too
    busy = cpu_seconds(owner.process.pid)
    time.sleep(2.0)
    assert cpu_seconds(owner.process.pid) - busy < 0.2  # idle: under a tenth of a core
    for server in servers:
        status, answer = resume(server, request_id, seen[-1][0], headers=owner.headers())
        assert status == 410 and answer["error"]["code"] == "resume_window_closed"


def test_another_caller_gets_404_on_any_process(servers):
    owner, other = servers
    stranger = manage(server_env(owner.data_dir), "create_api_key", "--name", "stranger").strip()  # before: it takes seconds
    seen = start_and_cut(owner, "mid-stream")
    request_id = seen[0][2]["request_id"]
    for server in servers:
        status, answer = resume(server, request_id, 1, headers={"Authorization": f"Bearer {stranger}"})
        assert status == 404 and answer["error"]["code"] == "not_found"
    status, rest = resume(other, request_id, seen[-1][0], headers=owner.headers())  # its caller still can
    assert status == 200 and rest[-1][1] == "done"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks
