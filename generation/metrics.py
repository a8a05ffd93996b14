"""Prometheus metrics, observed once per finished generation, and the /metrics view.

Labels hold only fixed vocabularies (status, reason codes, redaction types): never text
and never a request id. With PROMETHEUS_MULTIPROC_DIR set, counters and histograms are
merged across processes; the two live gauges describe the process answering the scrape.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
import secrets

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from .active import active_runs
from .models import Generation

logger = logging.getLogger(__name__)

# LLM streams range from a 10 ms first token to a 10-minute generation.
STREAM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1, 2.5, 5)
_CODE = re.compile(r"^[a-z_]{1,40}$")
_TYPE = re.compile(r"^[A-Za-z0-9_:]{1,64}$")

TTFT = Histogram("sluice_time_to_first_token_seconds", "Accept to first token.", buckets=STREAM_BUCKETS)
DURATION = Histogram("sluice_stream_duration_seconds", "Accept to terminal event.", buckets=STREAM_BUCKETS)
INTER_TOKEN = Histogram(
    "sluice_inter_token_latency_seconds", "Mean time between tokens of one generation.", buckets=TOKEN_BUCKETS
)
QUEUE_WAIT = Histogram("sluice_queue_wait_seconds", "Accept to model slot (or to giving up).", buckets=STREAM_BUCKETS)
GENERATIONS = Counter("sluice_generations_total", "Finished generations.", ["status", "reason"])
TOKENS = Counter("sluice_tokens_generated_total", "Tokens generated.")
TOKENS_AFTER_CANCEL = Counter("sluice_tokens_after_cancel_total", "Tokens generated after a cancel was asked.")
REDACTIONS = Counter("sluice_redactions_total", "Redacted or masked values, by type.", ["type"])


def observe_generation(generation: Generation) -> None:
    """Record one finished generation. Never raises: metrics must not break the lifecycle."""
    try:
        _observe(generation)
    except Exception as exc:  # noqa: BLE001
        logger.warning("metrics observation failed (%s)", type(exc).__name__)


def _observe(row: Generation) -> None:
    if not row.is_finished:
        return
    reason = row.cancel_reason or row.timeout_source or row.error_code
    GENERATIONS.labels(status=row.status, reason=_label(reason, _CODE, empty="none")).inc()
    TOKENS.inc(row.output_tokens)
    TOKENS_AFTER_CANCEL.inc(row.tokens_after_cancel)
    if row.ttft_ms is not None:
        TTFT.observe(row.ttft_ms / 1000)
    if row.duration_ms is not None:
        DURATION.observe(row.duration_ms / 1000)
    if (inter_token := _inter_token_seconds(row)) is not None:
        INTER_TOKEN.observe(inter_token)
    if row.queue_ms is not None:
        QUEUE_WAIT.observe(row.queue_ms / 1000)
    elif row.started_at is None and row.duration_ms is not None and row.status != Generation.Status.INTERRUPTED:
        QUEUE_WAIT.observe(row.duration_ms / 1000)  # it waited until it gave up
    for type_, count in (row.redaction_counts or {}).items():
        if isinstance(count, int) and count > 0:
            REDACTIONS.labels(type=_label(type_, _TYPE, empty="unknown")).inc(count)


def _inter_token_seconds(row: Generation) -> float | None:
    if row.tokens_per_second:
        return 1 / row.tokens_per_second
    if row.output_tokens > 1 and row.ttft_ms is not None and row.duration_ms is not None:
        return max(row.duration_ms - row.ttft_ms, 0) / 1000 / (row.output_tokens - 1)
    return None


def _label(value: str, pattern: re.Pattern, *, empty: str) -> str:
    if not value:
        return empty
    return value if pattern.match(value) else "other"


class LiveCollector:
    """Gauges read at scrape time from this process's runs and scheduler."""

    def collect(self):
        from .intake import get_scheduler  # intake imports the runner; keep this module light

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
