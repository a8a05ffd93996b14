"""Selectors for the operational dashboard: every figure is computed in the database over
a time window, from the shape columns of Generation rows (there is no text to read)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Aggregate, Count, FloatField, Q, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from .models import Generation

WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
DEFAULT_WINDOW = "24h"
Status = Generation.Status


class PercentileCont(Aggregate):
    """PostgreSQL's percentile_cont(p) WITHIN GROUP (ORDER BY expression)."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, fraction: float, **extra):
        super().__init__(expression, fraction=float(fraction), **extra)


def percentiles(rows, field: str, fractions: tuple[float, ...]) -> dict[float, float | None]:
    """Nearest-rank percentiles of `field` over `rows` (a queryset), in the database."""
    rows = rows.filter(**{f"{field}__isnull": False}).order_by()
    if connection.vendor == "postgresql":
        result = rows.aggregate(**{str(p): PercentileCont(field, p) for p in fractions})
        return {p: result[str(p)] for p in fractions}
    count = rows.count()
    if not count:
        return {p: None for p in fractions}
    ordered = rows.order_by(field).values_list(field, flat=True)
    # Nearest rank: one indexed-window query per percentile with ORDER BY ... OFFSET.
    return {p: ordered[min(count - 1, max(0, int(p * count + 0.5) - 1))] for p in fractions}


def redactions_by_type(since: datetime) -> dict[str, int]:
    """Sum of redaction_counts per type, expanded with the database's JSON functions."""
    table = Generation._meta.db_table
    if connection.vendor == "postgresql":
        expand, value = "jsonb_each_text(g.redaction_counts)", "CAST(j.value AS integer)"
    else:
        expand, value = "json_each(g.redaction_counts)", "j.value"
    sql = (
        f"SELECT j.key, SUM({value}) FROM {table} g, {expand} j "  # noqa: S608 - names only, no input
        "WHERE g.created_at >= %s GROUP BY j.key ORDER BY j.key"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [since])
        return {key: int(total) for key, total in cursor.fetchall()}


@dataclass(frozen=True)
class Bar:
    hour: datetime
    requests: int
    cancellations: int


def hourly(rows) -> list[Bar]:
    series = (
        rows.annotate(hour=TruncHour("created_at"))
        .values("hour")
        .annotate(requests=Count("id"), cancellations=Count("id", filter=Q(status=Status.CANCELLED)))
        .order_by("hour")
    )
    return [Bar(item["hour"], item["requests"], item["cancellations"]) for item in series]


def dashboard_stats(window: str) -> dict:
    """Everything the dashboard shows for one window (a WINDOWS key)."""
    now = timezone.now()
    since = now - WINDOWS[window]
    rows = Generation.objects.filter(created_at__gte=since)
    by_status = dict(rows.order_by().values_list("status").annotate(n=Count("id")))
    total = sum(by_status.values())
    cancelled = rows.filter(status=Status.CANCELLED)
    ttft = percentiles(rows, "ttft_ms", (0.5, 0.95, 0.99))
    duration = percentiles(rows, "duration_ms", (0.5, 0.95))
    return {
        "window": window,
        "since": since,
        "now": now,
        "total": total,
        "by_status": by_status,
        "cancellation_pct": 100 * by_status.get(Status.CANCELLED, 0) / total if total else None,
        "cancel_reasons": dict(cancelled.order_by().values_list("cancel_reason").annotate(n=Count("id"))),
        "timeouts": dict(
            rows.filter(status=Status.TIMED_OUT).order_by().values_list("timeout_source").annotate(n=Count("id"))
        ),
        "latency": [
            ("Time to first token p50", ttft[0.5], "ms"),
            ("Time to first token p95", ttft[0.95], "ms"),
            ("Time to first token p99", ttft[0.99], "ms"),
            ("Duration p50", duration[0.5], "ms"),
            ("Duration p95", duration[0.95], "ms"),
            ("Tokens per second p50", percentiles(rows, "tokens_per_second", (0.5,))[0.5], "tok/s"),
            ("Queue wait p95", percentiles(rows, "queue_ms", (0.95,))[0.95], "ms"),
        ],
        "tokens_after_cancel": rows.aggregate(n=Sum("tokens_after_cancel"))["n"] or 0,
        "redactions": redactions_by_type(since),
        "hourly": hourly(rows),
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
    return {"width": width, "height": height, "peak": peak, "columns": columns}
