"""The resume relay in one process, over the in-memory channel layer: the same messages
the Redis layer carries between processes (tests/integration/test_resume_redis.py runs
two servers), sealed, in order, never with a gap."""
import asyncio
import json
import time

import pytest
from channels.layers import get_channel_layer

from generation.lifecycle import relay, sealing
from generation.lifecycle.resume import ResumeRefused
from generation.models import Generation
from tests.generation.test_resume import SCRIPT, TEXT, URL, body, hang_up_after, resumable, text_of  # noqa: F401
from tests.support.asgi import call, finished_row

pytestmark = pytest.mark.django_db(transaction=True)


async def started_elsewhere(auth_headers, hang_up):
    first = await call(URL, body=body(), headers=auth_headers, hang_up_when=hang_up)
    seen = first.events()
    row = await Generation.objects.aget(request_id=seen[0][2]["request_id"])
    return seen, row


def identity_of(row) -> str:
    return f"key:{row.api_key_id}"


async def test_a_relayed_resume_gives_the_same_text_and_one_terminal(resumable, auth_headers):
    seen, row = await started_elsewhere(auth_headers, hang_up_after("delta", 5))
    events = await relay._remote_events(str(row.request_id), identity_of(row), seen[-1][0])
    rest = [item async for item in events]
    assert [item.seq for item in rest] == list(range(seen[-1][0] + 1, seen[-1][0] + 1 + len(rest)))
    assert text_of(seen) + "".join(item.event.data()["text"] for item in rest if item.event.name == "delta") == TEXT
    assert [item.event.name for item in rest if item.event.terminal] == ["done"]
    row = await finished_row(row.request_id)
    assert (row.status, row.disconnects, row.resumes) == ("completed", 1, 1)


async def test_a_relayed_resume_checks_the_caller_and_the_id(resumable, auth_headers):
    seen, row = await started_elsewhere(auth_headers, hang_up_after("delta", 2))
    with pytest.raises(ResumeRefused) as refused:
        await relay._remote_events(str(row.request_id), "key:999999", 1)
    assert refused.value.status == 404
    with pytest.raises(ResumeRefused) as refused:
        await relay._remote_events(str(row.request_id), identity_of(row), 10_000)
    assert refused.value.status == 400


async def test_nobody_holding_the_run_answers_as_a_closed_window(resumable, monkeypatch):
    monkeypatch.setattr(relay, "ANSWER_SECONDS", 0.2)
    relay.ensure_listener()
    with pytest.raises(ResumeRefused) as refused:
        await relay._remote_events("6f1d3c2e-0000-4000-8000-000000000000", "key:1", 0)
    assert refused.value.status == 410


async def test_what_crosses_the_layer_is_sealed(resumable, auth_headers, monkeypatch):
    sent = []
    layer = get_channel_layer()
    real_send, real_group_send = layer.send, layer.group_send

    async def send(channel, message):
        sent.append(json.dumps(message))
        await real_send(channel, message)

    async def group_send(group, message):
        sent.append(json.dumps(message))
        await real_group_send(group, message)

    monkeypatch.setattr(layer, "send", send)
    monkeypatch.setattr(layer, "group_send", group_send)
    seen, row = await started_elsewhere(auth_headers, hang_up_after("delta", 3))
    events = await relay._remote_events(str(row.request_id), identity_of(row), seen[-1][0])
    _ = [item async for item in events]
    wire = "\n".join(sent)
    leaked = [word for word in set(TEXT.split()) if len(word) >= 5 and word in wire]  # shorter ones occur in base64
    leaked += [value for value in (str(row.request_id), identity_of(row)) if value in wire]
    assert len(sent) > 3 and leaked == []
    await finished_row(row.request_id)


async def test_forged_or_stale_messages_are_refused(settings):
    token = sealing.seal({"a": 1})
    assert sealing.unseal(token) == {"a": 1}
    with pytest.raises(sealing.Unsealable):
        sealing.unseal(token[:-4] + "AAAA")
    settings.SECRET_KEY = "another-deployment-entirely-0123456789"
    with pytest.raises(sealing.Unsealable):
        sealing.unseal(token)
    stale = sealing._fernet(settings.SECRET_KEY).encrypt_at_time(b"{}", int(time.time()) - 60).decode()
    with pytest.raises(sealing.Unsealable):
        sealing.unseal(stale)


async def test_a_relayed_reader_that_leaves_detaches_and_the_grace_period_runs(resumable, auth_headers, settings):
    settings.SLUICE_RESUME_GRACE_SECONDS = 0.3
    resumable.script = ["cedar "] * 400
    resumable.context_length = 2048
    seen, row = await started_elsewhere(auth_headers, hang_up_after("delta", 2))
    events = await relay._remote_events(str(row.request_id), identity_of(row), seen[-1][0])
    async for item in events:
        if item.seq >= seen[-1][0] + 3:
            break
    await events.aclose()
    row = await finished_row(row.request_id, timeout=3)
    assert (row.status, row.cancel_reason, row.disconnects, row.resumes) == ("cancelled", "client_disconnect", 2, 1)
    await asyncio.sleep(0)


async def test_a_relayed_reader_whose_process_goes_silent_is_detached(resumable, auth_headers, settings, monkeypatch):
    """The serving process dies without a word (kill -9): no detach message comes, and no
    sign of life either. The holder detaches it, so the grace period cancels the run."""
    settings.SLUICE_RESUME_GRACE_SECONDS = 0.3
    monkeypatch.setattr(relay, "READING_SECONDS", 3600)  # it said it reads once, at the start
    monkeypatch.setattr(relay, "READER_SILENT_SECONDS", 0.5)
    resumable.script = ["cedar "] * 400
    resumable.context_length = 2048
    resumable.token_delay = 0.02  # a run of 8 s: far longer than the silence it is detached after
    seen, row = await started_elsewhere(auth_headers, hang_up_after("delta", 2))
    events = await relay._remote_events(str(row.request_id), identity_of(row), seen[-1][0])
    first = await anext(events)
    assert first.seq == seen[-1][0] + 1
    row = await finished_row(row.request_id, timeout=5)  # the reader is never closed meanwhile
    assert (row.status, row.cancel_reason, row.resumes) == ("cancelled", "client_disconnect", 1)
    assert row.output_tokens < 200
    await events.aclose()


async def test_a_relayed_reader_that_keeps_reading_is_not_detached(resumable, auth_headers, settings, monkeypatch):
    settings.SLUICE_RESUME_GRACE_SECONDS = 0.3
    monkeypatch.setattr(relay, "READING_SECONDS", 0.1)
    monkeypatch.setattr(relay, "READER_SILENT_SECONDS", 0.5)
    resumable.token_delay = 0.05  # the run outlasts the silence limit several times over
    seen, row = await started_elsewhere(auth_headers, hang_up_after("delta", 2))
    events = await relay._remote_events(str(row.request_id), identity_of(row), seen[-1][0])
    rest = [item async for item in events]
    assert text_of(seen) + "".join(item.event.data()["text"] for item in rest if item.event.name == "delta") == TEXT
    row = await finished_row(row.request_id)
    assert (row.status, row.resumes) == ("completed", 1)
