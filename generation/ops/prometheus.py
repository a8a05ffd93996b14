"""The /metrics view: the finished-generation series (records.metrics) merged across
processes in multiprocess mode, plus live gauges of the process answering the scrape."""
from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from generation.lifecycle.runtime import active_runs, get_scheduler


class LiveCollector:
    """Gauges read at scrape time from this process's runs and scheduler."""

    def collect(self):
        active = GaugeMetricFamily("sluice_active_streams", "Generations this process is serving.")
        active.add_metric([], len(active_runs))
        depth = GaugeMetricFamily("sluice_queue_depth", "Requests waiting for a model slot.")
        depth.add_metric([], get_scheduler().snapshot()["queue_depth"])
        return [active, depth]


def multiprocess_mode() -> bool:
    # prometheus_client picks its value storage from this variable itself; agree with it.
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def _scrape_registry() -> CollectorRegistry:
    if not multiprocess_mode():
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    registry.register(_live_collector)
    return registry


_live_collector = LiveCollector()
if not multiprocess_mode():
    REGISTRY.register(_live_collector)


FORWARDED_HEADERS = ("HTTP_FORWARDED", "HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "HTTP_X_FORWARDED_HOST")


@require_safe
async def metrics_view(request):
    """GET /metrics: `Authorization: Bearer SLUICE_METRICS_TOKEN`. Without a token set, only a
    direct loopback client of a loopback-bound server (or any local one with DEBUG) is served:
    a request that came through a proxy always needs the token."""
    token = settings.SLUICE_METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), token.encode()):
            return JsonResponse(
                {"error": {"code": "unauthorized", "message": "A valid metrics token is required."}},
                status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
    elif not _local_without_token(request):
        message = "Metrics need SLUICE_METRICS_TOKEN here; without it they are served to direct localhost clients only."
        return JsonResponse({"error": {"code": "forbidden", "message": message}}, status=403)
    body = await asyncio.to_thread(generate_latest, _scrape_registry())  # reads files in multiprocess mode
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


def _local_without_token(request) -> bool:
    """A direct loopback client, on a server bound to loopback unless DEBUG is on."""
    if any(request.META.get(header) for header in FORWARDED_HEADERS):
        return False  # a proxy on this host makes every client look local
    if not settings.DEBUG and not _is_loopback(settings.SLUICE_BIND_HOST):
        return False
    return _is_loopback(request.META.get("REMOTE_ADDR", ""))


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False
    return ip.is_loopback or bool(getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback)
