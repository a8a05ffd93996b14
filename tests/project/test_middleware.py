"""The inline middleware keeps Django's behaviour: cookies, headers, session saves."""
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import OperationalError
from django.test import AsyncClient

pytestmark = pytest.mark.django_db(transaction=True)


async def test_login_saves_the_session_and_sets_security_headers():
    await sync_to_async(get_user_model().objects.create_superuser)("boss", password="pw-long-enough-1")
    client = AsyncClient(enforce_csrf_checks=True)
    page = await client.get("/admin/login/")
    assert page.status_code == 200
    assert page["X-Frame-Options"] == "DENY" and page["X-Content-Type-Options"] == "nosniff"
    token = client.cookies["csrftoken"].value
    refused = await client.post("/admin/login/", {"username": "boss", "password": "pw-long-enough-1"})
    assert refused.status_code == 403  # no CSRF token
    logged_in = await client.post(
        "/admin/login/", {"username": "boss", "password": "pw-long-enough-1", "csrfmiddlewaretoken": token}
    )
    assert logged_in.status_code == 302 and "sessionid" in client.cookies
    assert (await client.get("/admin/")).status_code == 200  # the session was written to the database


async def test_append_slash_redirect_still_works():
    response = await AsyncClient().get("/admin")
    assert response.status_code == 301 and response["Location"] == "/admin/"



async def test_a_database_found_down_refuses_at_once_then_lets_one_probe_through(monkeypatch, settings):
    """One request learns the database is down; the next are refused without trying it;
    after OPEN_SECONDS one probe goes through (the others still refused), and a probe that
    gets through closes the breaker."""
    import time

    from project import middleware
    from tests.support import outage_urls

    settings.ROOT_URLCONF = "tests.support.outage_urls"
    monkeypatch.setattr(middleware, "outage", middleware.DatabaseOutage())
    monkeypatch.setattr(middleware.DatabaseOutage, "OPEN_SECONDS", 0.3)
    monkeypatch.setitem(outage_urls.state, "down", True)
    monkeypatch.setitem(outage_urls.state, "calls", 0)
    client = AsyncClient()
    first, second = [await client.get("/api/v1/outage-probe") for _ in range(2)]
    assert (first.status_code, second.status_code) == (503, 503)
    assert first.json()["error"]["code"] == second.json()["error"]["code"] == "database_unavailable"
    assert second["Retry-After"] and outage_urls.state["calls"] == 1  # the second never tried the database
    time.sleep(0.35)
    probe = await client.get("/api/v1/outage-probe")
    assert probe.status_code == 503 and outage_urls.state["calls"] == 2  # one probe, still down: open again
    assert (await client.get("/api/v1/outage-probe")).status_code == 503 and outage_urls.state["calls"] == 2
    outage_urls.state["down"] = False
    time.sleep(0.35)
    assert (await client.get("/api/v1/outage-probe")).status_code == 200  # the probe got through
    assert (await client.get("/api/v1/outage-probe")).status_code == 200 and outage_urls.state["calls"] == 4


@pytest.mark.services
def test_a_full_pool_in_use_is_load_and_a_pool_that_cannot_connect_is_an_outage():
    """The middleware answers database_busy (no breaker) only when every connection of a
    full pool is checked out; a pool whose connections fail is the outage case."""
    from psycopg_pool import ConnectionPool, PoolTimeout

    from project.middleware import pool_exhausted

    def timeout_from(pool) -> PoolTimeout:
        with pytest.raises(PoolTimeout) as raised:
            pool.getconn(timeout=0.3)
        return raised.value

    with ConnectionPool("postgresql://postgres@127.0.0.1:5432/postgres", min_size=1, max_size=1, open=True) as busy:
        held = busy.getconn()
        try:
            exhausted = timeout_from(busy)
            assert pool_exhausted(exhausted, busy)
            wrapped = OperationalError("wrapped by Django")
            wrapped.__cause__ = exhausted
            assert pool_exhausted(wrapped, busy)
        finally:
            busy.putconn(held)
    with ConnectionPool("postgresql://postgres@127.0.0.1:1/postgres", min_size=0, max_size=2, open=True,
                        reconnect_timeout=1) as down:
        assert not pool_exhausted(timeout_from(down), down)
    assert not pool_exhausted(OperationalError("no pool"), None)
