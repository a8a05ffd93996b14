"""Resumable streams on one process: `"resumable": true`, then GET .../events with
Last-Event-ID, through the real ASGI stack with the scripted backend."""
import asyncio
import json
import random

import pytest

from generation.lifecycle.resume import resumable_runs
from generation.lifecycle.runtime import get_scheduler, loaded_backend
from generation.models import Generation
from tests.support.asgi import AsgiResult, call, finished_row
from tests.support.sse import messages

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/generations"
TERMINAL = {"done", "cancelled", "error"}
WORDS = "solid cedar board with oiled edges and a deep groove for juices".split()
SCRIPT = [f"{WORDS[index % len(WORDS)]} " for index in range(40)]
TEXT = "".join(SCRIPT)


def parsed(result: AsgiResult) -> list[tuple[int | None, str, dict]]:
    """(id, event, data); a notice outside the run's sequence has no id."""
    return [
        (int(m["id"]) if "id" in m else None, m["event"], json.loads(m["data"]))
        for m in messages(result.body.decode().split("\n"))
    ]


def events_url(request_id) -> str:
    return f"{URL}/{request_id}/events"


def text_of(events) -> str:
    return "".join(data["text"] for _, name, data in events if name == "delta")


@pytest.fixture
def resumable(scripted, settings):
    settings.SLUICE_RESUME_GRACE_SECONDS = 2.0
    scripted.script = SCRIPT
    scripted.token_delay = 0.01
    return scripted


def body(**extra) -> dict:
    return {"prompt": "Copy for a cedar board", "max_tokens": 100, "resumable": True, **extra}


def hang_up_after(name: str, count: int = 1):
    """Hang up once `count` events called `name` have arrived."""
    return lambda result: sum(event == name for _, event, _ in result.events()) >= count


async def resume(request_id, last_id: int, headers: dict, **options):
    return await call(events_url(request_id), method="GET", headers={**headers, "Last-Event-ID": str(last_id)}, **options)


async def test_a_resumable_stream_numbers_its_events_and_says_when_to_retry(resumable, auth_headers):
    result = await call(URL, body=body(), headers=auth_headers)
    assert result.body.startswith(b"retry: 1000\nid: 1\nevent: accepted\n")
    events = result.events()
    assert [event_id for event_id, _, _ in events] == list(range(1, len(events) + 1))
    assert text_of(events) == TEXT and events[-1][1] == "done"
    row = await finished_row(events[0][2]["request_id"])
    assert (row.status, row.disconnects, row.resumes) == ("completed", 0, 0)


@pytest.mark.parametrize("moment", ["accepted", "started", "mid-stream", "last delta"])
async def test_resume_after_a_disconnect_gives_the_same_text_and_one_terminal(resumable, auth_headers, moment):
    hang_up = {
        "accepted": hang_up_after("accepted"),
        "started": hang_up_after("started"),
        "mid-stream": hang_up_after("delta", random.randint(1, 30)),
        "last delta": hang_up_after("delta", len(SCRIPT)),
    }[moment]
    first = await call(URL, body=body(), headers=auth_headers, hang_up_when=hang_up)
    seen = first.events()
    assert not any(name in TERMINAL for _, name, _ in seen)
    request_id = seen[0][2]["request_id"]
    await asyncio.sleep(random.uniform(0, 0.3))  # the run goes on meanwhile
    second = await resume(request_id, seen[-1][0], auth_headers)
    assert second.status == 200 and second.headers["x-request-id"] == request_id
    rest = second.events()
    assert rest[0][0] == seen[-1][0] + 1
    assert [event_id for event_id, _, _ in seen + rest] == list(range(1, len(seen) + len(rest) + 1))
    assert text_of(seen) + text_of(rest) == TEXT
    assert [name for _, name, _ in seen + rest if name in TERMINAL] == ["done"]
    row = await finished_row(request_id)
    for _ in range(100):  # a resume after the row was finished updates its counters just after
        if (row.disconnects, row.resumes) == (1, 1):
            break
        await asyncio.sleep(0.02)
        await row.arefresh_from_db()
    assert (row.status, row.disconnects, row.resumes) == ("completed", 1, 1)


async def test_nobody_resumes_within_the_grace_period_cancels_as_a_disconnect(resumable, auth_headers, settings):
    settings.SLUICE_RESUME_GRACE_SECONDS = 0.3
    resumable.script = ["word "] * 500
    resumable.context_length = 2048
    first = await call(URL, body=body(max_tokens=1000), headers=auth_headers, hang_up_when=hang_up_after("delta", 2))
    request_id = first.events()[0][2]["request_id"]
    row = await finished_row(request_id, timeout=3)
    assert (row.status, row.cancel_reason, row.disconnects, row.resumes) == ("cancelled", "client_disconnect", 1, 0)
    assert row.output_tokens < 400  # stopped after the grace period, not at the end
    await asyncio.sleep(0.1)
    assert loaded_backend().busy_slots() == set()  # the model stopped: nothing runs after the grace period
    assert get_scheduler().enqueue().slot is not None  # and its slot was given back


async def test_resume_after_the_terminal_event_replays_the_tail_then_gone(resumable, auth_headers, settings):
    settings.SLUICE_RESUME_GRACE_SECONDS = 0.5
    first = await call(URL, body=body(), headers=auth_headers, hang_up_when=hang_up_after("delta", 3))
    seen = first.events()
    request_id = seen[0][2]["request_id"]
    await finished_row(request_id)
    second = await resume(request_id, seen[-1][0], auth_headers)
    assert text_of(seen) + text_of(second.events()) == TEXT and second.events()[-1][1] == "done"
    await asyncio.sleep(0.7)
    gone = await resume(request_id, seen[-1][0], auth_headers)
    assert gone.status == 410 and gone.json()["error"]["code"] == "resume_window_closed"
    row = await Generation.objects.aget(request_id=request_id)
    assert (row.disconnects, row.resumes) == (1, 1)


async def test_another_caller_gets_404_and_cannot_tell_the_id_exists(resumable, auth_headers, db):
    from generation.records.api_keys import api_key_create

    _, other_key = await asyncio.to_thread(api_key_create, name="other")
    first = await call(URL, body=body(), headers=auth_headers, hang_up_when=hang_up_after("delta", 2))
    request_id = first.events()[0][2]["request_id"]
    other = await resume(request_id, 2, {"Authorization": f"Bearer {other_key}"})
    unknown = await resume("6f1d3c2e-0000-4000-8000-000000000000", 2, auth_headers)
    assert other.status == unknown.status == 404
    assert other.json() == unknown.json()
    assert (await resume(request_id, 0, auth_headers)).events()[-1][1] == "done"


async def test_a_second_reader_supersedes_the_first(resumable, auth_headers):
    resumable.token_delay = 0.03
    first = await call(URL, body=body(), headers=auth_headers, hang_up_when=hang_up_after("delta", 2))
    request_id = first.events()[0][2]["request_id"]
    reading = asyncio.ensure_future(resume(request_id, 0, auth_headers))
    await asyncio.sleep(0.2)
    taking_over = await resume(request_id, 3, auth_headers)
    replaced = parsed(await reading)
    assert replaced[-1][1:] == ("error", {"code": "superseded", "message": replaced[-1][2]["message"]})
    assert replaced[-1][0] is None  # no id of its own: a browser keeps its last one
    assert taking_over.events()[-1][1] == "done" and text_of(first.events()[:3] + taking_over.events()) == TEXT
    row = await finished_row(request_id)
    assert (row.status, row.resumes) == ("completed", 2)


async def test_past_the_memory_bound_the_live_reader_continues_but_resume_ends(resumable, auth_headers, settings):
    settings.SLUICE_RESUME_MAX_EVENTS = 10
    first = await call(URL, body=body(), headers=auth_headers)
    assert text_of(first.events()) == TEXT and first.events()[-1][1] == "done"  # never a gap
    request_id = first.events()[0][2]["request_id"]
    late = await resume(request_id, 5, auth_headers)
    assert late.status == 410 and late.json()["error"]["code"] == "resume_window_closed"


async def test_a_disconnect_past_the_memory_bound_cancels_at_once(resumable, auth_headers, settings):
    settings.SLUICE_RESUME_MAX_EVENTS = 10
    resumable.script = ["word "] * 500
    resumable.context_length = 2048
    first = await call(URL, body=body(max_tokens=1000), headers=auth_headers, hang_up_when=hang_up_after("delta", 20))
    row = await finished_row(first.events()[0][2]["request_id"])
    assert (row.status, row.cancel_reason) == ("cancelled", "client_disconnect")


async def test_bad_last_event_ids_are_refused(resumable, auth_headers):
    first = await call(URL, body=body(), headers=auth_headers, hang_up_when=hang_up_after("delta", 2))
    request_id = first.events()[0][2]["request_id"]
    for bad in ("-1", "x", "99999"):
        answer = await resume(request_id, bad, auth_headers)
        assert answer.status == 400 and answer.json()["error"]["param"] == "last_event_id"
    wrong = await call(events_url(request_id), method="POST", headers=auth_headers)
    assert wrong.status == 405


async def test_last_event_id_from_the_query_string(rf):
    from generation.api.views import _last_event_id

    assert _last_event_id(rf.get("/x?last_event_id=7")) == 7
    assert _last_event_id(rf.get("/x?last_event_id=1", HTTP_LAST_EVENT_ID="9")) == 9
    assert _last_event_id(rf.get("/x")) == 0


async def test_a_plain_run_is_not_resumable(scripted, auth_headers):
    scripted.script = ["word "] * 200
    scripted.token_delay = 0.01
    reading = asyncio.ensure_future(call(URL, body={"prompt": "x", "max_tokens": 300}, headers=auth_headers))
    for _ in range(100):
        rows = [row async for row in Generation.objects.all()]
        if rows:
            break
        await asyncio.sleep(0.02)
    answer = await resume(rows[0].request_id, 1, auth_headers)
    assert answer.status == 409 and answer.json()["error"]["code"] == "not_resumable"
    await reading


async def test_memory_per_buffered_run_is_bounded(resumable, auth_headers, settings):
    """The log of a run of 1000 one-token deltas stays under its byte bound (measured with
    tracemalloc: the Python objects it holds, not an estimate)."""
    import tracemalloc

    settings.SLUICE_RESUME_MAX_BYTES = 512 * 1024
    resumable.script = SCRIPT * 25
    resumable.context_length = 2048
    resumable.token_delay = 0.001  # one delta per token, the most events a run can hold
    tracemalloc.start()
    try:
        first = await call(URL, body=body(max_tokens=1000), headers=auth_headers, hang_up_when=hang_up_after("delta", 1))
        request_id = first.events()[0][2]["request_id"]
        await finished_row(request_id)
        held = resumable_runs.get(request_id)
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    assert held is not None and held.log.last_seq >= 500 and not held.log.overflowed
    measured = sum(
        stat.size
        for stat in snapshot.filter_traces([tracemalloc.Filter(True, "*lifecycle/*")]).statistics("filename")
    )
    assert measured < settings.SLUICE_RESUME_MAX_BYTES
    print(f"\nbuffered run: {held.log.last_seq} events, estimate {held.log.held_bytes} B, lifecycle allocations {measured} B")
