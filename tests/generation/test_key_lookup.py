"""Requests that arrive together with an API key the process has not cached share one
lookup, which runs off the request's thread and hands its connection back at once."""
import asyncio

import pytest

from generation.records import api_keys

pytestmark = pytest.mark.django_db(transaction=True)


async def test_concurrent_requests_with_an_uncached_key_share_one_lookup(api_key, monkeypatch):
    row, raw = api_key
    api_keys._verified_keys.clear()
    lookups = []
    real = api_keys._verify_key

    def counted(**kwargs):
        lookups.append(kwargs["prefix"])
        return real(**kwargs)

    monkeypatch.setattr(api_keys, "_verify_key", counted)
    callers = await asyncio.gather(*(api_keys.api_key_authenticate(raw_key=raw) for _ in range(20)))
    assert {caller.api_key_id for caller in callers} == {row.pk}
    assert lookups == [row.prefix]
    assert await api_keys.api_key_authenticate(raw_key=raw) == callers[0] and len(lookups) == 1  # cached now
    wrong = raw[:-4] + ("aaaa" if not raw.endswith("aaaa") else "bbbb")
    assert await asyncio.gather(*(api_keys.api_key_authenticate(raw_key=wrong) for _ in range(5))) == [None] * 5
    assert len(lookups) == 2 and not api_keys._lookups
