"""Streams through nginx (the shipped site config, and nginx's defaults as a front): text
arrives as it is made, keep-alives outlast the proxy's read timeout, a hang-up at nginx
cancels the run at Sluice."""
from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import httpx
import pytest

from tests.stack.helpers import body, row
from tests.support.timed_stream import read_stream

pytestmark = [pytest.mark.stack]
API = "/api/v1/generations"


def spread(stream) -> float:
    """Seconds between the first and the last delta reaching the client."""
    deltas = stream.named("delta")
    return deltas[-1][0] - deltas[0][0]


def generation_seconds(stream) -> float:
    return stream.first("done")[1]["timings"]["generation_ms"] / 1000


def first_delta_lag(stream) -> float:
    """When the first delta reached the client, less when the server says it was made
    (both counted from acceptance): the delay the transport added."""
    accepted_at, delta_at = stream.first("accepted")[0], stream.first("delta")[0]
    return (delta_at - accepted_at) - stream.first("done")[1]["timings"]["ttft_ms"] / 1000


def assert_streamed(stream) -> None:
    assert stream.status == 200 and [name for name, _ in stream.terminals] == ["done"], stream
    assert generation_seconds(stream) > 0.5, "too short a generation to tell streaming from buffering"
    assert len(stream.named("delta")) >= 5
    assert spread(stream) >= 0.8 * generation_seconds(stream) - 0.05, (spread(stream), generation_seconds(stream))


def test_deltas_arrive_through_nginx_as_they_are_made(full_stack):
    stack = full_stack
    via_nginx, direct = [], []
    with httpx.Client(timeout=60) as client:
        for _ in range(3):
            via_nginx.append(read_stream(client, stack.url + API, body(48, temperature=0), stack.headers()))
            direct.append(read_stream(client, stack.processes[0].url + API, body(48, temperature=0), stack.headers()))
    for stream in via_nginx + direct:
        assert_streamed(stream)
    assert via_nginx[0].headers["content-type"].startswith("text/event-stream")
    lag_nginx = statistics.median(first_delta_lag(s) for s in via_nginx)
    lag_direct = statistics.median(first_delta_lag(s) for s in direct)
    print(f"first-delta lag: nginx {lag_nginx * 1000:.1f} ms, direct {lag_direct * 1000:.1f} ms")
    assert abs(lag_nginx - lag_direct) < 0.03


def test_x_accel_buffering_streams_through_default_buffering(full_stack):
    stack = full_stack
    with httpx.Client(timeout=60) as client:
        honoured = read_stream(client, stack.nginx.front_url("bare") + API, body(48, temperature=0), stack.headers())
        ignored = read_stream(client, stack.nginx.front_url("buffered") + API, body(48, temperature=0), stack.headers())
    assert_streamed(honoured)
    # The control: the same nginx ignoring the header (its gzip buffer fills first) holds
    # every delta until the end.
    assert [name for name, _ in ignored.terminals] == ["done"]
    assert spread(ignored) < 0.1 * generation_seconds(ignored), (spread(ignored), generation_seconds(ignored))


def _busy(process) -> bool:
    scheduler = httpx.get(f"{process.url}/readyz", timeout=5).json()["scheduler"]
    return scheduler["slots_busy"] >= 1 and scheduler["queue_depth"] >= 1


def test_keepalives_hold_a_queued_stream_past_the_proxy_read_timeout(full_stack):
    stack = full_stack
    blockers = [(process, n) for process in stack.processes for n in range(2)]

    def block(target):
        with httpx.Client(timeout=120) as client:
            return read_stream(client, target[0].url + API, body(150, temperature=0), stack.headers())

    with ThreadPoolExecutor(len(blockers)) as pool:
        running = [pool.submit(block, target) for target in blockers]
        deadline = time.monotonic() + 30
        while not all(_busy(process) for process in stack.processes):
            assert time.monotonic() < deadline, "blockers did not occupy both processes"
            time.sleep(0.1)
        with httpx.Client(timeout=120) as client:
            probe = read_stream(client, stack.nginx.front_url("bare") + API, body(4, temperature=0), stack.headers())
        for future in running:
            assert [name for name, _ in future.result().terminals] == ["done"]
    assert [name for name, _ in probe.terminals] == ["done"], probe
    silent = probe.first("started")[0] - probe.first("accepted")[0]
    assert silent > 3.5, f"queued only {silent:.1f}s: not longer than the front's 3 s read timeout"
    arrivals = sorted([at for at, _, _ in probe.events] + probe.comments)
    assert max(b - a for a, b in zip(arrivals, arrivals[1:])) < 3.0
    assert len([at for at in probe.comments if at < probe.first("started")[0]]) >= 3


def test_client_disconnect_at_nginx_cancels_within_one_token(full_stack):
    stack = full_stack

    def enough(stream):
        return any(data["tokens"] >= 3 for _, data in stream.named("delta"))

    with httpx.Client(timeout=60) as client:
        stream = read_stream(client, stack.url + API, body(300, temperature=0), stack.headers(), until=enough)
    closed_at = datetime.now(timezone.utc)
    record = row(stack, stream.request_id)
    assert (record["status"], record["cancel_reason"]) == ("cancelled", "client_disconnect")
    assert record["tokens_after_cancel"] <= 1
    assert record["output_tokens"] < 300
    assert (record["finished_at"] - closed_at).total_seconds() < 2.0
