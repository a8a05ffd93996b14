"""/healthz and /readyz: JSON, no auth, shape only."""
import pytest

from generation.lifecycle import runtime
from generation.lifecycle.runtime import active_runs
from tests.support.asgi import call

pytestmark = pytest.mark.django_db(transaction=True)


async def test_healthz_is_ok_without_auth():
    result = await call("/healthz", method="GET")
    assert result.status == 200 and result.json() == {"status": "ok"}
    assert result.headers["cache-control"] == "no-store"


async def test_readyz_waits_for_the_model(scripted, caplog):
    result = await call("/readyz", method="GET")
    assert result.status == 503
    assert not [r for r in caplog.records if r.levelno >= 40]  # not ready is an answer, not a server error
    body = result.json()
    assert body["status"] == "not_ready" and body["checks"] == {"model": False, "database": True, "draining": False}
    runtime.get_backend()
    result = await call("/readyz", method="GET")
    assert result.status == 200
    assert result.json() == {
        "status": "ready",
        "checks": {"model": True, "database": True, "draining": False},
        "scheduler": {"slots": 1, "slots_busy": 0, "queue_depth": 0, "max_queue": 16},
    }


async def test_readyz_is_not_ready_while_draining(scripted):
    runtime.get_backend()
    active_runs.draining = True
    try:
        result = await call("/readyz", method="GET")
    finally:
        active_runs.draining = False
    assert result.status == 503 and result.json()["checks"]["draining"] is True


async def test_readyz_reports_an_unreachable_database(scripted, monkeypatch):
    from generation.ops import health

    async def broken():
        raise OSError("connection refused")

    runtime.get_backend()
    monkeypatch.setattr(health, "_ping", broken)
    result = await call("/readyz", method="GET")
    assert result.status == 503 and result.json()["checks"]["database"] is False


async def test_probes_refuse_writes():
    assert (await call("/healthz", method="POST")).status in (403, 405)  # CSRF answers first
