"""Answers a retry would only repeat carry `x-should-retry: false`, which the official
OpenAI SDKs honour: a cancelled request is not silently run a second time."""
import asyncio

import httpx
import openai
import pytest

from generation.models import Generation
from tests.support.asgi import application, call

pytestmark = pytest.mark.django_db(transaction=True)


def sdk_client(api_key: str) -> openai.AsyncOpenAI:
    transport = httpx.ASGITransport(app=application())
    return openai.AsyncOpenAI(
        base_url="http://127.0.0.1/v1", api_key=api_key, max_retries=2,
        http_client=httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1"),
    )


async def running_request_id() -> str:
    for _ in range(200):
        row = await Generation.objects.filter(status="running").afirst()
        if row is not None:
            return str(row.request_id)
        await asyncio.sleep(0.02)
    raise AssertionError("no generation started")


async def test_a_cancelled_completion_is_not_retried_by_the_openai_client(scripted, api_key, auth_headers):
    scripted.token_delay = 0.05
    scripted.script = ["word "] * 100
    client = sdk_client(api_key[1])
    completion = asyncio.ensure_future(client.completions.create(model="scripted", prompt="Copy", max_tokens=100))
    request_id = await running_request_id()
    cancel = await call(f"/api/v1/generations/{request_id}/cancel", headers=auth_headers)
    assert cancel.status == 202
    with pytest.raises(openai.ConflictError):
        await completion
    assert await Generation.objects.acount() == 1  # the SDK would retry a 409 without the header
    row = await Generation.objects.aget()
    assert (row.status, row.cancel_reason) == ("cancelled", "client_cancel")


async def test_a_validation_error_is_not_retried(scripted, api_key):
    client = sdk_client(api_key[1])
    with pytest.raises(openai.BadRequestError) as raised:
        await client.completions.create(model="scripted", prompt="Copy", max_tokens=10**7)
    assert raised.value.response.headers["x-should-retry"] == "false"


async def test_a_stalled_completion_is_not_retried_by_the_openai_client(scripted, api_key, settings, caplog):
    settings.SLUICE_STALL_TIMEOUT_SECONDS = 0.2
    scripted.stall_after = 1
    client = sdk_client(api_key[1])
    with pytest.raises(openai.InternalServerError) as raised:
        await client.completions.create(model="scripted", prompt="Copy", max_tokens=10)
    assert raised.value.status_code == 504 and raised.value.response.headers["x-should-retry"] == "false"
    assert await Generation.objects.acount() == 1  # the SDK retries a 504 without the header
    row = await Generation.objects.aget()
    assert (row.status, row.timeout_source) == ("timed_out", "stall")
    assert not [r for r in caplog.records if r.levelno >= 40]  # a limit at work, not a server fault
    assert any("timed out: timeout (504)" in r.getMessage() for r in caplog.records), caplog.text


async def test_a_queue_wait_timeout_may_be_retried(scripted, auth_headers, settings):
    """Another try may find a free slot, so this 504 leaves the SDK's retry in place."""
    settings.SLUICE_QUEUE_TIMEOUT_SECONDS = 0.1
    scripted.token_delay = 0.05
    scripted.script = ["word "] * 10
    running = asyncio.ensure_future(call("/api/v1/generations", body={"prompt": "Copy"}, headers=auth_headers))
    await running_request_id()
    waited = await call("/api/v1/generations", body={"prompt": "Copy", "stream": False}, headers=auth_headers)
    assert waited.status == 504 and waited.json()["error"]["timeout_source"] == "queue_wait"
    assert "x-should-retry" not in waited.headers
    await running


async def test_a_redaction_rejection_is_not_retried(scripted, api_key):
    client = sdk_client(api_key[1])
    with pytest.raises(openai.UnprocessableEntityError) as raised:
        await client.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "Charge card 4111 1111 1111 1111 for the samples"}]
        )
    assert raised.value.response.headers["x-should-retry"] == "false"
    assert await Generation.objects.acount() == 0
