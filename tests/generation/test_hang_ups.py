"""A client may leave at any moment: every run still ends in a terminal status with its log
line, and the sweep finishes whatever its process no longer holds."""
import asyncio
import json
import random
import threading
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from generation.models import Generation
from generation.ops.ownership import generations_sweep
from generation.records import generations
from generation.records.process import OWNER_ID
from tests.support.asgi import call

pytestmark = pytest.mark.django_db(transaction=True)

ROUTES = [
    ("/api/v1/generations", {"prompt": "Copy for a cedar board", "max_tokens": 8}),
    ("/api/v1/generations", {"prompt": "Copy for a cedar board", "max_tokens": 8, "stream": False}),
    ("/v1/chat/completions", {"model": "scripted", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}),
    ("/v1/completions", {"model": "scripted", "prompt": "Copy for a cedar board"}),
]


async def all_finished(timeout: float = 5.0) -> list[Generation]:
    for _ in range(int(timeout / 0.02)):
        rows = [row async for row in Generation.objects.all()]
        if all(row.finished_at for row in rows):
            return rows
        await asyncio.sleep(0.02)
    raise AssertionError(f"rows left unfinished: {[(row.status, row.request_id) for row in rows]}")


@pytest.mark.parametrize("path, body", ROUTES)
async def test_a_hang_up_while_the_row_is_inserted_still_finishes_it(
    scripted, auth_headers, generation_log, monkeypatch, path, body
):
    insert, inserted = generations.generation_accept, asyncio.Event()

    async def slow_insert(**kwargs):
        row = await insert(**kwargs)
        inserted.set()  # the client leaves while the insert is still being awaited
        await asyncio.sleep(0.3)
        return row

    monkeypatch.setattr(generations, "generation_accept", slow_insert)
    result = await call(path, body=body, headers=auth_headers, hang_up_on=inserted)
    assert result.status == 0  # nothing was sent: the client was gone first
    (row,) = await all_finished()
    assert (row.status, row.cancel_reason) == ("cancelled", "client_disconnect")
    for _ in range(100):  # the log line follows the row's write
        if generation_log.records:
            break
        await asyncio.sleep(0.02)
    assert [json.loads(r.getMessage())["status"] for r in generation_log.records] == ["cancelled"]


@pytest.mark.parametrize("path, body", ROUTES)
async def test_hang_ups_at_random_moments_leave_no_row_unfinished(
    scripted, auth_headers, generation_log, settings, path, body
):
    settings.SLUICE_SLOTS = 2
    scripted.token_delay = 0.005
    scripted.script = ["word "] * 8
    rng = random.Random(7)
    for _ in range(20):
        await call(path, body=body, headers=auth_headers, hang_up_after=rng.uniform(0, 0.08))
    rows = await all_finished()
    assert rows
    for _ in range(100):  # each log line follows its row's write
        if len(generation_log.records) >= len(rows):
            break
        await asyncio.sleep(0.02)
    assert len(generation_log.records) == len(rows)
    assert {row.status for row in rows} <= {"completed", "cancelled"}


async def test_a_disconnect_after_tokens_were_made_records_the_first_token_time(scripted, auth_headers):
    scripted.token_delay = 0.05
    scripted.script = ["word "] * 40
    await call(
        "/api/v1/generations", body={"prompt": "Copy", "max_tokens": 40}, headers=auth_headers,
        hang_up_when=lambda result: b"event: delta" in result.body,
    )
    (row,) = await all_finished()
    assert row.status == "cancelled" and row.output_tokens > 0
    assert row.ttft_ms is not None and row.first_token_at is not None


async def test_tokens_made_before_a_hang_up_that_no_client_saw_still_have_their_first_token_time(
    scripted, auth_headers, monkeypatch
):
    """The client leaves before its first byte, after the model made a token: the row
    counts that token, so it has the time of it too."""
    scripted.stall_after = 1  # one token, then nothing until the cancel
    first_token, original = threading.Event(), scripted.generate

    def generate(self, **kwargs):
        for piece in original(self, **kwargs):
            first_token.set()
            yield piece

    monkeypatch.setattr(scripted, "generate", generate)
    insert, inserted = generations.generation_accept, asyncio.Event()

    async def slow_insert(**kwargs):
        row = await insert(**kwargs)
        await asyncio.to_thread(first_token.wait, 5)
        inserted.set()
        await asyncio.sleep(0.3)
        return row

    monkeypatch.setattr(generations, "generation_accept", slow_insert)
    await call("/api/v1/generations", body={"prompt": "Copy", "max_tokens": 8}, headers=auth_headers, hang_up_on=inserted)
    (row,) = await all_finished()
    assert (row.status, row.cancel_reason, row.output_tokens) == ("cancelled", "client_disconnect", 1)
    assert row.ttft_ms is not None and row.first_token_at is not None


async def test_the_sweep_finishes_rows_this_process_no_longer_holds(scripted, api_key, generation_log, settings):
    settings.SLUICE_SWEEP_GRACE_SECONDS = 30
    old = timezone.now() - timedelta(seconds=60)

    @sync_to_async
    def make(owner, created_at):
        return Generation.objects.create(
            status="running", owner=owner, created_at=created_at, started_at=created_at, channel="api",
            prompt_chars=1, prompt_tokens=1, max_tokens=1, model_name="scripted", model_version="scripted-1",
        )

    lost, fresh, peer = await make(OWNER_ID, old), await make(OWNER_ID, timezone.now()), await make("peer", old)
    assert await sync_to_async(generations_sweep)() == 1
    statuses = {row.pk: (row.status, row.error_code) async for row in Generation.objects.all()}
    assert statuses[lost.pk] == ("interrupted", "run_lost")
    assert statuses[fresh.pk][0] == statuses[peer.pk][0] == "running"  # too young; another process's
    assert [json.loads(r.getMessage())["status"] for r in generation_log.records] == ["interrupted"]


async def test_the_sweep_closes_a_run_whose_response_was_never_iterated(scripted, api_key, generation_log, settings):
    from generation.api.validation import validate_generation
    from generation.lifecycle.intake import open_run
    from generation.lifecycle.runtime import active_runs

    settings.SLUICE_SWEEP_GRACE_SECONDS = 0
    payload = validate_generation({"prompt": "Copy for a cedar board"})
    caller = generations.Caller(api_key_id=api_key[0].pk)
    run = await open_run(caller=caller, channel="api", fields={"prompt": payload.prompt}, params=payload.params)
    assert active_runs.get(str(run.request_id)) is run
    await sync_to_async(generations_sweep)()
    (row,) = await all_finished()
    assert (row.status, row.cancel_reason) == ("cancelled", "client_disconnect")
    for _ in range(200):  # the run leaves the registry just after its row is written, not before
        if active_runs.get(str(run.request_id)) is None:
            break
        await asyncio.sleep(0.01)
    assert active_runs.get(str(run.request_id)) is None
