"""Liveness and readiness probes: JSON, no auth, never any request content."""
from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_safe

from generation.lifecycle.runtime import active_runs, get_scheduler, loaded_backend

logger = logging.getLogger(__name__)
DATABASE_TIMEOUT_SECONDS = 2.0
NO_STORE = {"Cache-Control": "no-store"}


@require_safe
async def healthz(request):
    """The process is up and serving requests."""
    return JsonResponse({"status": "ok"}, headers=NO_STORE)


@require_safe
async def readyz(request):
    """200 when the model is loaded (remote: an upstream is in service), the database answers
    and the server is not draining."""
    backend = loaded_backend()
    checks = {
        "model": backend is not None,
        "database": await database_reachable(),
        "draining": active_runs.draining,
    }
    upstreams = upstream_report(backend)
    if upstreams is not None:
        checks["upstreams"] = any(upstream["up"] for upstream in upstreams.values())
    ready = all(checks[name] for name in ("model", "database")) and not checks["draining"] and checks.get("upstreams", True)
    body = {"status": "ready" if ready else "not_ready", "checks": checks, "scheduler": get_scheduler().snapshot()}
    if upstreams is not None:
        body["upstreams"] = upstreams
    response = JsonResponse(body, status=200 if ready else 503, headers=NO_STORE)
    response._has_been_logged = True  # noqa: SLF001 - not ready is an answer, not a server error
    return response


def upstream_report(backend) -> dict | None:
    """Each remote upstream's state by its configured name (remote backend only)."""
    report = getattr(backend, "upstream_report", None)
    return report() if report is not None else None


async def database_reachable() -> bool:
    try:
        await asyncio.wait_for(_ping(), DATABASE_TIMEOUT_SECONDS)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        logger.warning("readiness: database unreachable (%s)", type(exc).__name__)
        return False
    return True


@sync_to_async
def _ping() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
