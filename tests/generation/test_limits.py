"""Per-caller limits: requests per minute, concurrent streams and tokens per day, per API
key or signed-in user, from settings or the caller's CallerLimit row; 429 with Retry-After
and RateLimit-* headers in the route's error shape, counted in metrics."""
import asyncio

import pytest
from asgiref.sync import sync_to_async
from prometheus_client import REGISTRY

from generation.models import CallerLimit, Generation
from generation.records.usage import Who, limits_for
from tests.support.asgi import call

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/generations"
BODY = {"prompt": "Copy for a cedar board", "stream": False}


def refused_count(limit: str) -> float:
    return REGISTRY.get_sample_value("sluice_rate_limited_total", {"limit": limit}) or 0


async def test_requests_per_minute_from_settings(scripted, auth_headers, settings):
    settings.SLUICE_LIMIT_REQUESTS_PER_MINUTE = 2
    before = refused_count("requests_per_minute")
    assert [(await call(URL, body=BODY, headers=auth_headers)).status for _ in range(2)] == [200, 200]
    refused = await call(URL, body=BODY, headers=auth_headers)
    assert refused.status == 429
    error = refused.json()["error"]
    assert (error["code"], error["limit"]) == ("rate_limited", "requests_per_minute")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit-limit"] == "2" and refused.headers["ratelimit-remaining"] == "0"
    assert "x-should-retry" not in refused.headers  # a 429 may be retried after Retry-After
    chat = {"model": "scripted", "messages": [{"role": "user", "content": "Hi"}]}
    openai_refused = await call("/v1/chat/completions", body=chat, headers=auth_headers)
    assert openai_refused.status == 429 and openai_refused.json()["error"]["type"] == "invalid_request_error"
    assert refused_count("requests_per_minute") == before + 2
    assert await Generation.objects.acount() == 2  # a refusal writes no row


async def test_concurrent_streams_from_the_keys_own_row(scripted, api_key, auth_headers):
    await CallerLimit.objects.acreate(api_key=api_key[0], concurrent_streams=1)
    scripted.token_delay = 0.02
    scripted.script = ["word "] * 40
    first = asyncio.ensure_future(call(URL, body={**BODY, "max_tokens": 40}, headers=auth_headers))
    for _ in range(200):
        if await Generation.objects.filter(status="running").aexists():
            break
        await asyncio.sleep(0.01)
    second = await call(URL, body=BODY, headers=auth_headers)
    assert second.status == 429 and second.json()["error"]["limit"] == "concurrent_streams"
    assert (await first).status == 200
    assert (await call(URL, body=BODY, headers=auth_headers)).status == 200  # one at a time again


async def test_tokens_per_day_counts_finished_output(scripted, api_key, auth_headers, settings):
    settings.SLUICE_LIMIT_TOKENS_PER_DAY = 1000
    await CallerLimit.objects.acreate(api_key=api_key[0], tokens_per_day=6)  # the row wins over settings
    assert (await call(URL, body=BODY, headers=auth_headers)).status == 200  # 4 tokens
    assert (await call(URL, body=BODY, headers=auth_headers)).status == 200  # 8 tokens: counted after
    refused = await call(URL, body=BODY, headers=auth_headers)
    assert refused.status == 429 and refused.json()["error"]["limit"] == "tokens_per_day"
    assert int(refused.headers["retry-after"]) > 60 * 60 * 23


async def test_a_signed_in_users_limit_and_unlimited_zero(scripted, settings):
    from django.contrib.auth import get_user_model
    from django.test import AsyncClient

    settings.SLUICE_LIMIT_REQUESTS_PER_MINUTE = 1
    user = await sync_to_async(get_user_model().objects.create_user)("editor", password="pw-long-enough-1")
    await CallerLimit.objects.acreate(user=user, requests_per_minute=0)  # 0: unlimited for this user
    client = AsyncClient()
    assert await sync_to_async(client.login)(username="editor", password="pw-long-enough-1")
    await client.get("/admin/login/")
    token = client.cookies["csrftoken"].value
    for _ in range(3):
        response = await client.post(URL, BODY, content_type="application/json", headers={"X-CSRFToken": token})
        assert response.status_code == 200


async def test_a_callers_limits_are_cached_and_an_edit_applies_at_once(api_key, settings):
    settings.SLUICE_LIMITS_CACHE_SECONDS = 60
    who = Who(api_key_id=api_key[0].pk, user_id=None)
    row = await CallerLimit.objects.acreate(api_key=api_key[0], requests_per_minute=5)
    assert (await limits_for(who)).requests_per_minute == 5
    await CallerLimit.objects.filter(pk=row.pk).aupdate(requests_per_minute=7)  # no save(): another process's edit
    assert (await limits_for(who)).requests_per_minute == 5  # read from this process's cache
    row.requests_per_minute = 9
    await row.asave()  # an edit in this process (the admin's save) drops the cache
    assert (await limits_for(who)).requests_per_minute == 9
    settings.SLUICE_LIMITS_CACHE_SECONDS = 0
    await CallerLimit.objects.filter(pk=row.pk).aupdate(requests_per_minute=11)
    assert (await limits_for(who)).requests_per_minute == 11  # read again once the time is up
