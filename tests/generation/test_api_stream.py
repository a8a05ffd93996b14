"""The native SSE contract, through the real ASGI stack, with the scripted backend."""
import asyncio

import pytest

from generation.models import Generation
from tests.support.asgi import call, finished_row, newest_row

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/generations"
TERMINAL = {"done", "cancelled", "error"}


async def test_full_stream_follows_the_event_contract(scripted, auth_headers):
    result = await call(URL, body={"prompt": "Describe a kettle", "max_tokens": 50}, headers=auth_headers)
    assert result.status == 200
    assert result.headers["content-type"] == "text/event-stream"
    assert result.headers["cache-control"] == "no-cache, no-store"
    assert result.headers["x-accel-buffering"] == "no"
    events = result.events()
    assert [event_id for event_id, _, _ in events] == list(range(1, len(events) + 1))
    names = [name for _, name, _ in events]
    assert names[:2] == ["accepted", "started"] and names[-1] == "done"
    assert sum(name in TERMINAL for name in names) == 1
    accepted = events[0][2]
    assert accepted["queue_position"] == 0 and accepted["model"] == "scripted"
    assert result.headers["x-request-id"] == accepted["request_id"]
    assert "".join(data["text"] for _, name, data in events if name == "delta") == "Hello, world."
    done = events[-1][2]
    assert done["finish_reason"] == "stop"
    assert done["usage"] == {"prompt_tokens": 3, "completion_tokens": 4}
    assert set(done["timings"]) == {"queue_ms", "ttft_ms", "generation_ms", "tokens_per_second"}
    row = await Generation.objects.aget(request_id=accepted["request_id"])
    assert (row.status, row.output_tokens, row.prompt_tokens, row.prompt_chars) == ("completed", 4, 3, 17)
    assert row.channel == "api" and row.finish_reason == "stop"
    assert row.started_at and row.first_token_at and row.finished_at and row.ttft_ms is not None


async def test_json_mode_returns_one_object(scripted, auth_headers):
    for extra in ({"stream": False}, {}):
        headers = {**auth_headers, "accept": "application/json"} if not extra else auth_headers
        result = await call(URL, body={"prompt": "Describe a kettle", **extra}, headers=headers)
        assert result.status == 200 and result.headers["content-type"] == "application/json"
        body = result.json()
        assert body["status"] == "completed" and body["text"] == "Hello, world."
        assert body["usage"]["completion_tokens"] == 4 and body["finish_reason"] == "stop"


async def test_keep_alive_comments_while_the_model_is_quiet(scripted, auth_headers, settings):
    settings.SLUICE_HEARTBEAT_SECONDS = 0.05
    scripted.token_delay = 0.12
    scripted.script = ["a", "b"]
    result = await call(URL, body={"prompt": "x"}, headers=auth_headers)
    assert b": keep-alive\n\n" in result.chunks
    assert result.events()[-1][1] == "done"


async def test_disconnect_mid_stream_stops_the_model_and_records_it(scripted, auth_headers):
    scripted.script = ["word "] * 200
    scripted.token_delay = 0.01
    result = await call(
        URL,
        body={"prompt": "a long one", "max_tokens": 500},
        headers=auth_headers,
        hang_up_when=lambda r: r.body.count(b"event: delta") >= 3,
    )
    events = result.events()
    assert not any(name in TERMINAL for _, name, _ in events)  # the stream was cut, not ended
    row = await Generation.objects.aget(request_id=events[0][2]["request_id"])
    assert (row.status, row.cancel_reason) == ("cancelled", "client_disconnect")
    assert 3 <= row.output_tokens < 20 and row.tokens_after_cancel <= 1
    from generation.lifecycle.runtime import get_backend, get_scheduler

    assert get_backend().busy_slots() == set()
    assert get_scheduler().snapshot()["slots_busy"] == 0


async def test_hanging_up_right_after_the_terminal_event_still_records_it(scripted, auth_headers):
    """The client may leave while the run is being recorded: the row is finished all the same."""
    for _ in range(5):
        result = await call(
            URL, body={"prompt": "x"}, headers=auth_headers, hang_up_when=lambda r: b"event: done" in r.body
        )
        row = await finished_row(result.events()[0][2]["request_id"])
        assert (row.status, row.finish_reason) == ("completed", "stop")


async def test_disconnect_while_queued_frees_the_queue_place(scripted, auth_headers):
    scripted.script = ["x"] * 100
    scripted.token_delay = 0.02
    first = asyncio.create_task(call(URL, body={"prompt": "first", "max_tokens": 100}, headers=auth_headers))
    await asyncio.sleep(0.1)
    queued = await call(
        URL, body={"prompt": "second"}, headers=auth_headers,
        hang_up_when=lambda r: b"event: accepted" in r.body,
    )
    accepted = queued.events()[0][2]
    assert accepted["queue_position"] == 1
    row = await Generation.objects.aget(request_id=accepted["request_id"])
    assert (row.status, row.cancel_reason, row.started_at) == ("cancelled", "client_disconnect", None)
    from generation.lifecycle.runtime import get_scheduler

    assert get_scheduler().snapshot()["queue_depth"] == 0
    assert (await first).events()[-1][1] == "done"


async def test_queued_clients_hear_their_position_then_start(scripted, auth_headers):
    scripted.script = ["x"] * 10
    scripted.token_delay = 0.02
    tasks = [asyncio.create_task(call(URL, body={"prompt": f"p{i}"}, headers=auth_headers)) for i in range(3)]
    results = await asyncio.gather(*tasks)
    last = max(results, key=lambda r: r.events()[0][2]["queue_position"])
    names = [name for _, name, _ in last.events()]
    assert last.events()[0][2]["queue_position"] == 2
    assert names[:3] == ["accepted", "queued", "started"]
    assert [data["position"] for _, name, data in last.events() if name == "queued"] == [1]
    assert all(r.events()[-1][1] == "done" for r in results)


async def test_full_queue_answers_503_with_retry_after(scripted, auth_headers, settings):
    settings.SLUICE_MAX_QUEUE = 0
    scripted.script = ["x"] * 50
    scripted.token_delay = 0.02
    first = asyncio.create_task(call(URL, body={"prompt": "first"}, headers=auth_headers))
    await asyncio.sleep(0.1)
    result = await call(URL, body={"prompt": "second"}, headers=auth_headers)
    assert result.status == 503 and int(result.headers["retry-after"]) >= 1
    assert result.json()["error"]["code"] == "overloaded"
    await first
    assert await Generation.objects.acount() == 1  # nothing recorded for the refused request


async def test_backend_failure_ends_with_an_error_event(scripted, auth_headers):
    scripted.fail_after = 1
    result = await call(URL, body={"prompt": "x"}, headers=auth_headers)
    events = result.events()
    assert events[-1][1] == "error" and events[-1][2]["code"] == "generation_failed"
    assert sum(name in TERMINAL for _, name, _ in events) == 1
    row = await Generation.objects.aget(request_id=events[0][2]["request_id"])
    assert (row.status, row.error_code) == ("failed", "backend_error")


async def test_stall_timeout_ends_the_stream_and_records_the_source(scripted, auth_headers, settings):
    settings.SLUICE_STALL_TIMEOUT_SECONDS = 0.2
    scripted.stall_after = 1
    result = await call(URL, body={"prompt": "x"}, headers=auth_headers)
    name, data = result.events()[-1][1:]
    assert name == "error" and data["code"] == "timeout" and data["timeout_source"] == "stall"
    row = await Generation.objects.aget(request_id=result.events()[0][2]["request_id"])
    assert (row.status, row.timeout_source, row.output_tokens) == ("timed_out", "stall", 1)


async def test_explicit_cancel_ends_the_stream_with_cancelled(scripted, auth_headers, api_key):
    scripted.script = ["x"] * 300
    scripted.token_delay = 0.01
    stream = asyncio.create_task(call(URL, body={"prompt": "x", "max_tokens": 300}, headers=auth_headers))
    row = await newest_row()
    other_headers = {"Authorization": f"Bearer {(await _other_key())[1]}"}
    assert (await call(f"{URL}/{row.request_id}/cancel", headers=other_headers)).status == 404
    cancel = await call(f"{URL}/{row.request_id}/cancel", headers=auth_headers)
    assert cancel.status == 202 and cancel.json()["cancel_requested"] is True
    events = (await stream).events()
    assert events[-1][1:] == ("cancelled", {"reason": "client_cancel"})
    await row.arefresh_from_db()
    assert (row.status, row.cancel_reason) == ("cancelled", "client_cancel")
    again = await call(f"{URL}/{row.request_id}/cancel", headers=auth_headers)
    assert again.status == 409 and again.json()["error"]["code"] == "already_finished"


async def _other_key():
    from asgiref.sync import sync_to_async

    from generation.records.api_keys import api_key_create

    return await sync_to_async(api_key_create)(name="other")


async def test_queue_wait_timeout_ends_a_waiting_stream(scripted, auth_headers, settings):
    settings.SLUICE_QUEUE_TIMEOUT_SECONDS = 0.3
    scripted.script = ["x"] * 60
    scripted.token_delay = 0.02
    first = asyncio.create_task(call(URL, body={"prompt": "first", "max_tokens": 60}, headers=auth_headers))
    await asyncio.sleep(0.1)
    waiting = await call(URL, body={"prompt": "second"}, headers=auth_headers)
    names = [name for _, name, _ in waiting.events()]
    assert names == ["accepted", "error"] and waiting.events()[-1][2]["timeout_source"] == "queue_wait"
    row = await Generation.objects.aget(request_id=waiting.events()[0][2]["request_id"])
    assert (row.status, row.timeout_source, row.started_at) == ("timed_out", "queue_wait", None)
    assert (await first).events()[-1][1] == "done"
    await _slot_is_free_for_the_next_request(auth_headers)


async def test_total_timeout_stops_a_run_that_keeps_going(scripted, auth_headers, settings):
    settings.SLUICE_TOTAL_TIMEOUT_SECONDS = 0.3
    scripted.script = ["x"] * 200
    scripted.token_delay = 0.01
    result = await call(URL, body={"prompt": "x", "max_tokens": 200}, headers=auth_headers)
    name, data = result.events()[-1][1:]
    assert name == "error" and data["timeout_source"] == "total"
    row = await Generation.objects.aget(request_id=result.events()[0][2]["request_id"])
    assert row.status == "timed_out" and row.timeout_source == "total" and 5 < row.output_tokens < 200


async def test_cancel_a_queued_generation(scripted, auth_headers):
    scripted.script = ["x"] * 40
    scripted.token_delay = 0.02
    first = asyncio.create_task(call(URL, body={"prompt": "first", "max_tokens": 40}, headers=auth_headers))
    await asyncio.sleep(0.1)
    second = asyncio.create_task(call(URL, body={"prompt": "second"}, headers=auth_headers))
    await asyncio.sleep(0.1)
    queued_row = await Generation.objects.filter(status="queued").aget()
    response = await call(f"{URL}/{queued_row.request_id}/cancel", headers=auth_headers)
    assert response.status == 202
    events = (await second).events()
    assert [name for _, name, _ in events] == ["accepted", "cancelled"]
    assert events[-1][2] == {"reason": "client_cancel"}
    await queued_row.arefresh_from_db()
    assert (queued_row.status, queued_row.cancel_reason, queued_row.started_at) == ("cancelled", "client_cancel", None)
    assert (await first).events()[-1][1] == "done"
    await _slot_is_free_for_the_next_request(auth_headers)


async def _slot_is_free_for_the_next_request(auth_headers):
    """A waiter that gave up must leave the queue: the slot freed after it goes to the next
    request, not to the dead place (which would leak the slot for good)."""
    from generation.lifecycle.runtime import get_scheduler

    assert get_scheduler().snapshot()["slots_busy"] == 0 and get_scheduler().snapshot()["queue_depth"] == 0
    after = await call(URL, body={"prompt": "after", "max_tokens": 4}, headers=auth_headers)
    assert [name for _, name, _ in after.events()][-1] == "done"
