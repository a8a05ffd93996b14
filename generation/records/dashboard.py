"""Selectors for the operational dashboard: every figure is computed by the database over a
time window, from sealed hourly tallies and the rows of the hours not sealed yet
(records/rollups.py), and rate-limit refusals from their hourly RefusalTally rows. There
is no text to read: rows hold operational shape only."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Sum
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from generation.models import Generation, RefusalTally

from . import rollups
from .usage import LIMIT_NAMES

WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
DEFAULT_WINDOW = "24h"
Status = Generation.Status


@dataclass(frozen=True)
class Bar:
    hour: datetime
    requests: int
    cancellations: int


def hourly(tally: rollups.Summary) -> list[Bar]:
    requests: Counter = Counter()
    cancellations: Counter = Counter()
    for (hour, status), count in tally.hourly.items():
        requests[hour] += count
        if status == Status.CANCELLED:
            cancellations[hour] += count
    return [Bar(hour, requests[hour], cancellations[hour]) for hour in sorted(requests)]


def refusals(since: datetime, now: datetime) -> dict:
    """Rate-limit refusals (429) by limit in the clock hours from the one `since` falls in
    to now: counted per hour, so a window takes in the whole hour it starts in."""
    first = rollups.floor_hour(since)
    rows = RefusalTally.objects.filter(hour__gte=first, hour__lte=now).order_by()
    summed = dict(rows.values_list("limit_name").annotate(Sum("refused")))
    by_limit = {name: summed.pop(name, 0) for name in LIMIT_NAMES} | summed
    return {"since": first, "total": sum(by_limit.values()), "by_limit": by_limit}


def dashboard_stats(window: str) -> dict:
    """Everything the dashboard shows for one window (a WINDOWS key)."""
    now = timezone.now()
    since = now - WINDOWS[window]
    tally = rollups.window_tally(since, now)
    by_status = rollups.totals(tally, "status")
    total = sum(by_status.values())
    ttft = rollups.percentiles(tally, "ttft_ms", (0.5, 0.95, 0.99))
    duration = rollups.percentiles(tally, "duration_ms", (0.5, 0.95))
    return {
        "window": window,
        "since": since,
        "now": now,
        "total": total,
        "by_status": by_status,
        "cancellation_pct": 100 * by_status.get(Status.CANCELLED, 0) / total if total else None,
        "cancel_reasons": rollups.totals(tally, "cancel_reason"),
        "timeouts": rollups.totals(tally, "timeout_source"),
        "latency": [
            ("Time to first token p50", ttft[0.5], "ms"),
            ("Time to first token p95", ttft[0.95], "ms"),
            ("Time to first token p99", ttft[0.99], "ms"),
            ("Duration p50", duration[0.5], "ms"),
            ("Duration p95", duration[0.95], "ms"),
            ("Tokens per second p50", rollups.percentiles(tally, "tokens_per_second", (0.5,))[0.5], "tok/s"),
            ("Queue wait p95", rollups.percentiles(tally, "queue_ms", (0.95,))[0.95], "ms"),
        ],
        "tokens_after_cancel": rollups.totals(tally, "tokens_after_cancel").get("", 0),
        "redactions": dict(sorted(rollups.totals(tally, "redaction").items())),
        "hourly": hourly(tally),
        "refusals": refusals(since, now),
    }


def hourly_chart(bars: list[Bar], since: datetime, now: datetime, *, width=720, height=160) -> dict:
    """Geometry for the server-rendered SVG: one column per hour in the window."""
    start = since.replace(minute=0, second=0, microsecond=0)
    hours = max(1, int((now - start).total_seconds() // 3600) + 1)
    peak = max((bar.requests for bar in bars), default=0) or 1
    step = width / hours
    columns = []
    for bar in bars:
        index = int((bar.hour - start).total_seconds() // 3600)
        if not 0 <= index < hours:
            continue
        request_h = height * bar.requests / peak
        cancel_h = height * bar.cancellations / peak
        columns.append(
            {
                "x": round(index * step, 2),
                "w": round(max(step - 1, 1), 2),
                "y": round(height - request_h, 2),
                "h": round(request_h, 2),
                "cy": round(height - cancel_h, 2),
                "ch": round(cancel_h, 2),
                "label": f"{bar.hour:%Y-%m-%d %H:00}: {bar.requests} requests, {bar.cancellations} cancelled",
            }
        )
    # Joined here, not looped in the template: a 30-day window has 720 columns, and the
    # template language is far slower at that many than format_html_join.
    markup = format_html_join(
        "\n",
        '<g><title>{}</title><rect x="{}" y="{}" width="{}" height="{}" fill="#79aec8"/>{}</g>',
        ((c["label"], c["x"], c["y"], c["w"], c["h"], _cancel_bar(c)) for c in columns),
    )
    return {"width": width, "height": height, "peak": peak, "markup": markup}


def _cancel_bar(column: dict) -> str:
    if not column["ch"]:
        return ""
    rect = '<rect x="{}" y="{}" width="{}" height="{}" fill="#ba2121"/>'
    return format_html(rect, column["x"], column["cy"], column["w"], column["ch"])
