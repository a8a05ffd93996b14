"""Graceful drain: refuse new work, let runs finish within the grace, cancel the rest."""
import asyncio

import pytest

from generation.lifecycle.runtime import active_runs
from generation.models import Generation
from generation.ops.shutdown import drain
from tests.support.asgi import call

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/generations"


@pytest.fixture(autouse=True)
def not_draining():
    yield
    active_runs.draining = False


async def test_runs_that_finish_within_the_grace_complete(scripted, auth_headers):
    scripted.script = ["x"] * 10
    scripted.token_delay = 0.02
    stream = asyncio.create_task(call(URL, body={"prompt": "p"}, headers=auth_headers))
    for _ in range(500):  # admitted before the drain starts refusing
        if len(active_runs):
            break
        await asyncio.sleep(0.01)
    assert await drain(grace=5) == 0
    assert (await stream).events()[-1][1] == "done"


async def test_runs_past_the_grace_end_with_cancelled_shutdown_and_new_work_is_refused(scripted, auth_headers):
    scripted.script = ["x"] * 500
    scripted.token_delay = 0.01
    running = asyncio.create_task(call(URL, body={"prompt": "p", "max_tokens": 500}, headers=auth_headers))
    queued = asyncio.create_task(call(URL, body={"prompt": "q"}, headers=auth_headers))
    await asyncio.sleep(0.1)
    draining = asyncio.create_task(drain(grace=0.2))
    await asyncio.sleep(0.05)
    refused = await call(URL, body={"prompt": "late"}, headers=auth_headers)
    assert refused.status == 503 and refused.json()["error"]["code"] == "shutting_down" and refused.headers["retry-after"]
    assert await draining == 2
    for task in (running, queued):
        assert (await task).events()[-1][1:] == ("cancelled", {"reason": "shutdown"})
    rows = [row async for row in Generation.objects.values("status", "cancel_reason")]
    assert rows == [{"status": "cancelled", "cancel_reason": "shutdown"}] * 2
    assert len(active_runs) == 0


async def test_a_stop_waits_for_a_run_whose_client_left_while_its_row_was_inserted(
    scripted, auth_headers, monkeypatch
):
    """Such a run is no longer among the active runs, but its row is still being finished:
    a process that exits first leaves it running, for the next start to call a crash."""
    from generation.records import generations

    insert, inserted = generations.generation_accept, asyncio.Event()

    async def slow_insert(**kwargs):
        row = await insert(**kwargs)
        inserted.set()
        await asyncio.sleep(0.3)
        return row

    monkeypatch.setattr(generations, "generation_accept", slow_insert)
    await call(URL, body={"prompt": "p"}, headers=auth_headers, hang_up_on=inserted)
    assert len(active_runs) == 0
    await drain(grace=0)
    row = await Generation.objects.aget()  # at once: the process may exit as soon as drain returns
    assert (row.status, row.cancel_reason) == ("cancelled", "client_disconnect")
