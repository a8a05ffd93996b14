"""Faults on the stack: a process killed mid-stream, a rolling restart, Redis down, PostgreSQL restarted."""
from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.stack.helpers import SHORT, Background, body, log_text, owner_of, row
from tests.support.timed_stream import read_stream

pytestmark = [pytest.mark.stack]
API = "/api/v1/generations"


def test_kill_9_mid_stream(full_stack):
    stack = full_stack
    running = Background(stack.url + API, body(300, temperature=0), stack.headers())
    request_id = running.wait_delta()
    dead, survivor = owner_of(stack, request_id)
    dead.kill()
    killed_at = time.monotonic()
    cut = running.result()
    assert cut.terminals == [], "a killed process cannot have sent a terminal event"
    # New requests reach the survivor.
    with httpx.Client(timeout=60) as client:
        for _ in range(4):
            answer = client.post(stack.url + API, json={**SHORT, "stream": False}, headers=stack.headers())
            assert answer.status_code == 200, answer.text
            assert survivor.owns(row(stack, answer.json()["id"])["owner"])
    # The survivor's heartbeat marks the dead process's row, without a restart.
    record = row(stack, request_id, timeout=10)
    reconciled_after = time.monotonic() - killed_at
    assert (record["status"], record["error_code"]) == ("interrupted", "process_died")
    print(f"dead process's row interrupted {reconciled_after:.1f}s after kill -9")
    assert reconciled_after < 6  # SLUICE_OWNER_HEARTBEAT_SECONDS=1 in the stack's settings
    assert not dead.alive()


class Traffic:
    """Short streams through nginx, one after another, until stopped; each one's outcome."""

    def __init__(self, stack) -> None:
        self.stack, self.outcomes, self._stop = stack, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=120) as client:
            while not self._stop.is_set():
                try:
                    stream = read_stream(client, self.stack.url + API, SHORT, self.stack.headers())
                    self.outcomes.append((stream.status, stream.terminals, stream.cut,
                                          stream.request_id if stream.events else ""))
                except httpx.TransportError as exc:
                    self.outcomes.append((0, [], type(exc).__name__, ""))

    def stop(self) -> list:
        self._stop.set()
        self._thread.join(120)
        return self.outcomes


def test_rolling_restart(full_stack):
    stack = full_stack
    traffic = Traffic(stack)
    stopped_owners = set()
    try:
        for process in stack.processes:
            in_flight = Background(process.url + API, body(300, temperature=0), stack.headers())
            request_id = in_flight.wait_delta()
            owner = row(stack, request_id, finished=False)["owner"]
            assert process.terminate() == 0
            stopped_owners.add(owner)
            assert in_flight.result().terminals == [("cancelled", {"reason": "shutdown"})]
            assert row(stack, request_id)["cancel_reason"] == "shutdown"
            process.start()
    finally:
        outcomes = traffic.stop()
    assert len(outcomes) >= 4
    for status, terminals, cut, request_id in outcomes:
        assert status == 200 and not cut, (status, cut)
        if [name for name, _ in terminals] != ["done"]:
            # Only a request in flight on a stopping process may end otherwise, and then as a shutdown.
            assert terminals == [("cancelled", {"reason": "shutdown"})], terminals
            assert row(stack, request_id)["owner"] in stopped_owners
    print(f"rolling restart: {len(outcomes)} requests through nginx, "
          f"{sum(1 for o in outcomes if o[1] and o[1][0][0] == 'done')} done")


def test_redis_outage_degrades_cross_process_cancel_and_recovers(full_stack):
    stack = full_stack
    stack.redis.stop()
    try:
        with httpx.Client(timeout=60) as client:
            stream = read_stream(client, stack.url + API, SHORT, stack.headers())
        assert [name for name, _ in stream.terminals] == ["done"], "streams need no Redis"
        running = Background(stack.url + API, body(300, temperature=0), stack.headers())
        request_id = running.wait_delta()
        serving, other = owner_of(stack, request_id)
        refused = httpx.post(f"{other.url}{API}/{request_id}/cancel", headers=stack.headers(), timeout=30)
        assert refused.status_code == 503 and refused.headers.get("Retry-After"), refused.text
        assert "channel layer unavailable" in log_text(other)
        local = httpx.post(f"{serving.url}{API}/{request_id}/cancel", headers=stack.headers(), timeout=30)
        assert local.status_code == 202
        assert running.result().terminals == [("cancelled", {"reason": "client_cancel"})]
    finally:
        stack.redis.start()
    deadline = time.monotonic() + 20
    while True:  # the listeners reconnect on their own
        running = Background(stack.url + API, body(300, temperature=0), stack.headers())
        request_id = running.wait_delta()
        _, other = owner_of(stack, request_id)
        answer = httpx.post(f"{other.url}{API}/{request_id}/cancel", headers=stack.headers(), timeout=30)
        try:
            stream = running.result(timeout=15)
        except AssertionError:
            stream = None
        if answer.status_code == 202 and stream and stream.terminals == [("cancelled", {"reason": "client_cancel"})]:
            break
        if stream is None:  # not cancelled: stop it locally before trying again
            httpx.post(f"{owner_of(stack, request_id)[0].url}{API}/{request_id}/cancel", headers=stack.headers())
            running.result()
        assert time.monotonic() < deadline, "cross-process cancel did not recover after Redis came back"
        time.sleep(1)


def test_postgresql_restart(tmp_path):
    """PostgreSQL restarted under a stack of its own (a private cluster: the machine's shared
    server is never touched): while it is down requests fail fast with a JSON 503 and
    Retry-After, never a 500; when it is back, no row stays non-terminal and requests succeed."""
    from deploy.localstack import Stack

    from tests.stack.conftest import SETTINGS

    with Stack(processes=1, settings=SETTINGS, private_postgres=True) as stack:
        running = Background(stack.url + API, body(200, temperature=0), stack.headers())
        request_id = running.wait_delta()
        stack.postgres.stop()
        try:
            native, openai = (API, {**SHORT, "stream": False}), ("/v1/completions", {"prompt": "Cedar", "max_tokens": 2})
            with httpx.Client(timeout=30) as client:
                # The first learns it within the pool's timeout (SLUICE_DB_POOL_TIMEOUT_SECONDS, 5 s);
                # the ones after it are refused without waiting.
                for (route, payload), limit in zip((native, openai, native), (8.0, 1.0, 1.0)):
                    asked = time.monotonic()
                    answer = client.post(stack.url + route, json=payload, headers=stack.headers())
                    took = time.monotonic() - asked
                    assert answer.status_code == 503, (route, answer.status_code, answer.text[:200])
                    assert answer.headers.get("Retry-After") and answer.headers["content-type"].startswith("application/json")
                    assert took < limit, f"{route} took {took:.1f}s to refuse"
        finally:
            stack.postgres.start()
        stream = running.result()
        assert len(stream.terminals) == 1, stream.terminals  # the stream it was serving ended as usual
        record = row(stack, request_id, timeout=30)  # its finish write was retried once the database was back
        assert record["status"] in ("completed", "cancelled", "failed"), record["status"]
        deadline = time.monotonic() + 20
        with httpx.Client(timeout=60) as client:
            while True:  # as a client honouring Retry-After: the pool replaces its dead connections
                answer = client.post(stack.url + API, json={**SHORT, "stream": False}, headers=stack.headers())
                if answer.status_code != 503 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 30
        while stack.sql("SELECT count(*) AS n FROM generation_generation WHERE finished_at IS NULL")[0]["n"]:
            assert time.monotonic() < deadline, "rows left non-terminal after PostgreSQL came back"
            time.sleep(0.2)
