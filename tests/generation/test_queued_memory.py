"""What a request waiting in the queue costs the server (issue 16: 1,000 queued streams under
100 KB of server memory each, keep-alives on time). Each held request used to keep a thread
of its own and the SQLite connection opened there (about 270 KiB of RSS per stream,
docs/benchmarks.md); tracemalloc sees neither, so the threads are counted as well."""
import asyncio
import gc
import threading
import tracemalloc

import pytest

from generation.lifecycle.scheduler import Scheduler
from generation.models import Generation
from tests.support.asgi import call

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/generations"
HELD = 200
KEEP_ALIVE = b": keep-alive\n\n"
# Measured: about 39 kB of Python objects per held stream in-process, the test client's own
# (~6 kB) included; 57 kB when each still held its thread and connection.
PYTHON_BYTES_PER_STREAM = 48_000


class Held:
    """One in-process client whose stream stays open until `leave` is set."""

    def __init__(self, body: dict, headers: dict) -> None:
        self.leave = asyncio.Event()
        self.accepted = self.kept_alive = False
        self.task = asyncio.ensure_future(
            call(URL, body=body, headers=headers, hang_up_on=self.leave, hang_up_when=self._seen, timeout=300)
        )

    def _seen(self, result) -> bool:
        body = b"".join(result.chunks)
        self.accepted = self.accepted or b"event: accepted" in body
        self.kept_alive = self.kept_alive or (self.accepted and body.endswith(KEEP_ALIVE))
        return False


async def until(predicate, timeout: float = 120.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


@pytest.fixture
def one_busy_slot(scripted, settings, auth_headers):
    """One slot, held by a run that stops producing (but not running) after its first token."""
    settings.SLUICE_HEARTBEAT_SECONDS = 0.2
    settings.SLUICE_MAX_QUEUE = HELD + 10
    settings.SLUICE_QUEUE_TIMEOUT_SECONDS = settings.SLUICE_STALL_TIMEOUT_SECONDS = 300
    scripted.script = ["word "] * 8
    scripted.stall_after = 1
    return scripted


def python_bytes(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> int:
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    diff = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "filename")
    return sum(stat.size_diff for stat in diff)


async def test_a_stream_held_in_the_queue_keeps_no_thread_and_little_memory(one_busy_slot, auth_headers):
    blocker = Held({"prompt": "Hold the slot", "max_tokens": 8}, auth_headers)
    await until(lambda: blocker.accepted)
    warm = Held({"prompt": "Copy for a cedar board", "max_tokens": 4}, auth_headers)
    await until(lambda: warm.kept_alive)  # whatever a first held stream starts once is counted before

    gc.collect()
    threads = threading.active_count()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        held = [Held({"prompt": f"Copy for cedar board {n}", "max_tokens": 4}, auth_headers) for n in range(HELD)]
        await until(lambda: all(h.kept_alive for h in held))
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = threading.active_count() - threads

    per_stream = python_bytes(before, after) / HELD
    assert per_stream < PYTHON_BYTES_PER_STREAM, f"{per_stream:.0f} bytes of Python objects per queued stream"
    # The off-request pool may grow (up to 32 threads on a large machine); one per stream may not.
    assert grown < HELD // 4, f"{grown} more threads with {HELD} streams queued"

    for h in [*held, warm, blocker]:
        h.leave.set()
    results = await asyncio.gather(*(h.task for h in held))
    await asyncio.gather(warm.task, blocker.task)
    assert all(result.events()[0][2]["queue_position"] >= 1 for result in results)
    ids = [result.events()[0][2]["request_id"] for result in results]
    for _ in range(250):  # each row is finished just after its client left
        rows = [row async for row in Generation.objects.filter(request_id__in=ids, finished_at__isnull=False)]
        if len(rows) == HELD:
            break
        await asyncio.sleep(0.02)
    assert {(row.status, row.cancel_reason) for row in rows} == {("cancelled", "client_disconnect")}
    assert len(rows) == HELD


async def test_a_queued_request_without_a_stream_keeps_no_thread_either(one_busy_slot, auth_headers):
    blocker = Held({"prompt": "Hold the slot", "max_tokens": 8}, auth_headers)
    await until(lambda: blocker.accepted)
    threads = threading.active_count()
    waiting = [
        asyncio.ensure_future(call(URL, body={"prompt": f"Board {n}", "max_tokens": 4, "stream": False},
                                   headers=auth_headers, hang_up_after=1.5, timeout=60))
        for n in range(40)
    ]
    await asyncio.sleep(1.0)
    assert threading.active_count() - threads < 10
    await asyncio.gather(*waiting)
    blocker.leave.set()
    await blocker.task
    for _ in range(250):
        if not await Generation.objects.filter(finished_at__isnull=True).aexists():
            break
        await asyncio.sleep(0.02)
    assert await Generation.objects.filter(status="cancelled", cancel_reason="client_disconnect").acount() == 41


async def test_a_queue_place_is_told_of_a_change_made_before_it_waits():
    scheduler = Scheduler(slots=1, max_queue=4)
    running, waiting = scheduler.enqueue(), scheduler.enqueue()
    assert not await waiting.wait_changed(0.01)  # nothing yet: a timeout
    scheduler.release(running.slot)
    await asyncio.sleep(0.01)  # the change lands before anyone waits
    assert await waiting.wait_changed(1.0)
    assert waiting.slot == 0
    assert not await waiting.wait_changed(0.01)  # told once
    waiting.wake()
    assert await waiting.wait_changed(1.0)


async def test_a_cancelled_wait_leaves_the_queue_place_usable():
    scheduler = Scheduler(slots=1, max_queue=4)
    running, waiting = scheduler.enqueue(), scheduler.enqueue()
    task = asyncio.ensure_future(waiting.wait_changed(30))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    scheduler.release(running.slot)
    assert await waiting.wait_changed(1.0) and waiting.slot == 0
