"""Sluice over a pool of real engines: two llama-cpp-python servers (`llama_cpp.server`) with
the embedded model on loopback ports, and a scripted upstream for statuses and stalls."""
from __future__ import annotations

import socket
import time

import httpx
import pytest

from bench.harness import reference_llama
from generation.backends.model_files import embedded_model_file
from tests.support.engine import start_engine
from tests.support.fake_upstream import FakeUpstream, Script
from tests.support.live import start_server
from tests.support.sse import iter_events

pytestmark = pytest.mark.integration
PROMPT = "Write one sentence about cedar cutting boards:"


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    model = str(embedded_model_file().path)
    log_dir = tmp_path_factory.mktemp("engines")
    started = [start_engine(model, log_dir), start_engine(model, log_dir)]
    yield started
    for engine in started:
        engine.stop()


def pool_server(tmp_path_factory, upstreams: str, **overrides):
    return start_server(
        tmp_path_factory.mktemp("remote"),
        SLUICE_BACKEND="generation.backends.remote.RemoteBackend", SLUICE_UPSTREAMS=upstreams,
        SLUICE_UPSTREAM_SLOTS="1", SLUICE_UPSTREAM_HEALTH_SECONDS="0.5", SLUICE_UPSTREAM_COOLDOWN_SECONDS="1",
        SLUICE_MAX_QUEUE="4", SLUICE_STALL_TIMEOUT_SECONDS="2", **overrides,
    )


@pytest.fixture(scope="module")
def sluice(engines, tmp_path_factory):
    server = pool_server(tmp_path_factory, f"a={engines[0].url},b={engines[1].url}")
    yield server
    server.process.terminate()
    server.process.wait(timeout=20)


def stream(server, body, *, stop_after=None, during=None):
    """POST a native stream; `during(events)` runs after each event; `stop_after` hangs up."""
    events = []
    with httpx.Client(timeout=60) as client:
        with client.stream("POST", f"{server.url}/api/v1/generations", json=body, headers=server.headers()) as response:
            assert response.status_code == 200, response.read()
            for event in iter_events(response):
                events.append(event)
                if during:
                    during(events)
                if stop_after and stop_after(events):
                    break
    return events


def text_of(events) -> str:
    return "".join(data["text"] for name, data in events if name == "delta")


def readyz(server) -> dict:
    return httpx.get(f"{server.url}/readyz", timeout=10).json()


def wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def test_greedy_stream_through_sluice_equals_the_engine(sluice, engines):
    # llama.cpp's logits depend on how a prompt is split into batches, and a server's Llama
    # reuses whatever prefix it last evaluated. Engine a served the readiness request, so it
    # is restarted: the prompt then goes to a fresh engine (both idle: a is first), which
    # reads it whole, as a fresh in-process Llama does.
    engines[0].stop()
    wait_for(lambda: not readyz(sluice)["upstreams"]["a"]["up"])
    engines[0] = engines[0].restart()
    wait_for(lambda: readyz(sluice)["upstreams"]["a"]["up"])
    events = stream(sluice, {"prompt": PROMPT, "max_tokens": 24, "temperature": 0})
    assert events[-1][0] == "done"
    llama = reference_llama(model_path=str(embedded_model_file().path), n_ctx=2048, n_threads=1, verbose=False)
    try:
        reference = llama.create_completion(
            PROMPT, max_tokens=24, temperature=0, repeat_penalty=1.0, top_k=40, min_p=0.05
        )
    finally:
        llama.close()
    assert text_of(events) == reference["choices"][0]["text"]
    assert events[-1][1]["usage"]["completion_tokens"] == reference["usage"]["completion_tokens"]
    ready = readyz(sluice)
    assert ready["status"] == "ready" and set(ready["upstreams"]) == {"a", "b"}
    assert ready["scheduler"]["slots"] == 2


def test_client_disconnect_stops_the_upstream(sluice, engines):
    stream(sluice, {"prompt": PROMPT, "max_tokens": 400}, stop_after=lambda events: events[-1][0] == "delta")
    left = time.monotonic()
    time.sleep(0.5)
    busy = [engine.cpu_seconds() for engine in engines]
    time.sleep(0.5)
    idle = [engine.cpu_seconds() - before for engine, before in zip(engines, busy)]
    assert max(idle) < 0.1, idle  # a generating engine (one thread) burns about 0.5 s here
    assert time.monotonic() - left < 2
    rows = sluice.rows("status = 'cancelled'")
    assert rows and rows[-1]["cancel_reason"] == "client_disconnect"


def test_killed_upstream_ends_its_stream_others_serve_and_it_is_taken_back(sluice, engines):
    killed = []

    def kill_on_first_delta(events):
        if events[-1][0] == "delta" and not killed:
            engines[0].kill()  # both idle before: least outstanding, then order, chose a
            killed.append(engines[0])

    events = stream(sluice, {"prompt": PROMPT, "max_tokens": 400}, during=kill_on_first_delta)
    name, data = events[-1]
    assert (name, data["code"]) == ("error", "upstream_failed")
    row = sluice.row(events[0][1]["request_id"])
    assert (row["status"], row["error_code"]) == ("failed", "upstream_failed")
    dead = "a"
    assert readyz(sluice)["upstreams"][dead]["up"] is False
    assert readyz(sluice)["scheduler"]["slots"] == 1
    again = stream(sluice, {"prompt": "Say hello:", "max_tokens": 4, "temperature": 0})
    assert again[-1][0] == "done"
    engines[0] = killed[0].restart()
    wait_for(lambda: readyz(sluice)["upstreams"][dead]["up"])
    assert readyz(sluice)["scheduler"]["slots"] == 2
    metrics = httpx.get(f"{sluice.url}/metrics", timeout=10).text
    assert f'sluice_upstream_errors_total{{kind="broken",upstream="{dead}"}}' in metrics


@pytest.fixture(scope="module")
def mixed(engines, tmp_path_factory):
    """Sluice over a closed port (down from the start), a scripted upstream and engine b."""
    fake = FakeUpstream()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    server = pool_server(tmp_path_factory, f"dead=http://127.0.0.1:{closed},fake={fake.url},live={engines[1].url}")
    yield server, fake
    server.process.terminate()
    server.process.wait(timeout=20)
    fake.close()


def test_an_upstream_down_at_start_up_is_out_of_service(mixed):
    server, _ = mixed
    ready = readyz(server)
    assert ready["status"] == "ready"
    assert ready["upstreams"]["dead"]["up"] is False and ready["upstreams"]["live"]["up"] is True
    assert ready["scheduler"]["slots"] == 2


@pytest.mark.parametrize("status", [503, 429])
def test_busy_or_failing_upstream_is_retried_elsewhere_before_the_first_token(mixed, status):
    server, fake = mixed
    wait_for(lambda: readyz(server)["upstreams"]["fake"]["up"])
    fake.script = Script(status=status)
    before = len(fake.requests)
    events = stream(server, {"prompt": "Say hello:", "max_tokens": 4, "temperature": 0})
    assert events[-1][0] == "done" and text_of(events)
    assert len(fake.requests) == before + 1  # tried first (idle, first in order), then engine b
    assert readyz(server)["upstreams"]["fake"]["up"] is (status == 429)


def test_stalled_upstream_hits_the_stall_timeout_and_is_closed(mixed):
    server, fake = mixed
    wait_for(lambda: readyz(server)["upstreams"]["fake"]["up"])
    fake.script = Script(pieces=["slow"] + ["x"] * 5, delay=4.0)
    fake.finished.clear()
    started = time.monotonic()
    events = stream(server, {"prompt": "Say hello:", "max_tokens": 8})
    name, data = events[-1]
    assert (name, data["code"], data["timeout_source"]) == ("error", "timeout", "stall")
    assert time.monotonic() - started < 8
    assert fake.finished.wait(10) and fake.disconnects >= 1
