"""Per-caller accounting at a run's finish leaves nothing behind when the run outlives its
request (a resumable run, whose finish runs after the response ended): the async ORM there
would open a thread and a database connection for every such run and keep both, which on
PostgreSQL exhausted a process's connection pool after SLUICE_DB_POOL_MAX - 1 runs (found by
tests/stack/test_leaks.py)."""
import asyncio
import threading

import pytest

from generation.models import Generation
from tests.support.asgi import call

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/generations"


async def finished(request_id: str) -> Generation:
    for _ in range(500):
        row = await Generation.objects.filter(request_id=request_id).afirst()
        if row is not None and row.finished_at is not None:
            return row
        await asyncio.sleep(0.01)
    raise AssertionError("the run did not finish")


async def test_resumable_runs_finishing_after_their_request_keep_no_threads(scripted, auth_headers, settings):
    settings.SLUICE_LIMIT_TOKENS_PER_DAY = 100_000  # the finish reads the caller's limits
    scripted.script = ["word "] * 20
    scripted.token_delay = 0.005
    body = {"prompt": "Copy for a cedar board", "max_tokens": 20, "resumable": True}
    # One run first: whatever a first run starts once (executors, listeners) is counted before.
    first = await call(URL, body=body, headers=auth_headers, hang_up_when=lambda result: bool(result.events()))
    await finished(first.events()[0][2]["request_id"])
    await asyncio.sleep(0.2)
    before = threading.active_count()
    for _ in range(4):  # hang up at once: each run finishes after its request has ended
        result = await call(URL, body=body, headers=auth_headers, hang_up_when=lambda result: bool(result.events()))
        row = await finished(result.events()[0][2]["request_id"])
        assert row.output_tokens == 20
    await asyncio.sleep(0.2)
    assert threading.active_count() - before <= 1, "a thread (and its connection) kept per run"
