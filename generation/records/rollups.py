"""Hourly and daily tallies of Generation rows, so the dashboard never reads a month of rows.

An hour is *sealed* once it has ended (plus SETTLE, for clock skew between servers) and none
of its rows is still queued or running: its counts, sums and latency histograms go to the
Tally table with a marker row, and a day whose 24 hours are sealed is summed into day rows.
Finished rows never change, so a sealed hour stays true. Every process's heartbeat seals
hours (`seal_settled_hours`), and so does `manage.py rollup_generations`. The dashboard adds
the tallies of sealed days and hours to figures aggregated from the rows of the rest: the
window's first, partial hour, the current hour and any hour not sealed yet
(`window_tally`). Either way every figure is computed by the database; Python only adds up
a few thousand summed tally rows.

Percentiles come from log-spaced buckets: bucket b holds the values in (γ^(b-1), γ^b] with
γ = 1.04, so a percentile read from buckets is within 2 % of the exact nearest-rank value,
and exact for whole numbers up to 25 (every such bucket holds one integer).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from generation.models import Generation
from generation.models import Tally as TallyRow

from .querysets import SeekingDatesQuerySet

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
SETTLE = timedelta(minutes=2)
LONGEST_WINDOW = timedelta(days=30)
GAMMA = 1.04
LATENCY_FIELDS = ("ttft_ms", "duration_ms", "queue_ms", "tokens_per_second")
INTEGER_FIELDS = frozenset({"ttft_ms", "duration_ms", "queue_ms"})
ZERO_BUCKET = "le0"  # values <= 0 (a request that never queued has queue_ms 0)
SEALED = "sealed"


@dataclass
class Summary:
    """Figures of some rows: `figures[name, label]` summed over the span, and the request
    counts per hour and status (`hourly[hour, status]`) for the chart."""

    figures: Counter = field(default_factory=Counter)
    hourly: Counter = field(default_factory=Counter)

    def add(self, other: Summary) -> None:
        self.figures.update(other.figures)
        self.hourly.update(other.hourly)


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def floor_day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def hours_between(first: datetime, last: datetime) -> list[datetime]:
    """Clock hours from `first` to `last` inclusive (both hour starts)."""
    return [first + i * HOUR for i in range(int((last - first) / HOUR) + 1)] if last >= first else []


def _bucket(column: str) -> str:
    """SQL for the bucket index of a column: ceil(ln(v) / ln γ), NULL for v <= 0."""
    return f"CASE WHEN {column} > 0 THEN CEILING(LN({column}) / {math.log(GAMMA)!r}) END"


# Plain SQL, built once: sealing a month of hours runs these a few thousand times, and the
# ORM spent more time compiling them than the database spent running them.
_ROWS = f"FROM {Generation._meta.db_table} WHERE created_at >= %s AND created_at < %s"
SHAPES_SQL = (
    f"SELECT status, cancel_reason, timeout_source, COUNT(*), SUM(tokens_after_cancel) {_ROWS} "
    "GROUP BY status, cancel_reason, timeout_source"
)
BUCKETS_SQL = " UNION ALL ".join(
    f"SELECT '{column}', {_bucket(column)}, COUNT(*) {_ROWS} AND {column} IS NOT NULL GROUP BY 2"
    for column in LATENCY_FIELDS
)
REDACTIONS_SQL = {
    "postgresql": "SELECT j.key, SUM(CAST(j.value AS integer)) FROM {table} g, jsonb_each_text(g.redaction_counts) j",
    "other": "SELECT j.key, SUM(j.value) FROM {table} g, json_each(g.redaction_counts) j",
}


def _query(sql: str, start: datetime, end: datetime, repeat: int = 1) -> list[tuple]:
    adapt = connection.ops.adapt_datetimefield_value  # the stored form (naive UTC text on SQLite)
    with connection.cursor() as cursor:
        cursor.execute(sql, [adapt(start), adapt(end)] * repeat)
        return cursor.fetchall()


def rows_tally(start: datetime, end: datetime) -> Summary:
    """The figures of the rows created in [start, end), charted under the hour of `start`.
    Three queries: the status breakdown, the redaction counts, the latency buckets."""
    hour = floor_hour(start)
    tally = Summary()
    figures = tally.figures
    for status, reason, source, count, after_cancel in _query(SHAPES_SQL, start, end):
        figures["status", status] += count
        tally.hourly[hour, status] += count
        if status == Generation.Status.CANCELLED:
            figures["cancel_reason", reason] += count
        if status == Generation.Status.TIMED_OUT:
            figures["timeout_source", source] += count
        figures["tokens_after_cancel", ""] += after_cancel or 0
    redactions = REDACTIONS_SQL.get(connection.vendor, REDACTIONS_SQL["other"]).format(table=Generation._meta.db_table)
    redactions += " WHERE g.created_at >= %s AND g.created_at < %s GROUP BY j.key"
    for type_, count in _query(redactions, start, end):
        figures["redaction", type_] += int(count)
    for name, bucket, count in _query(BUCKETS_SQL, start, end, repeat=len(LATENCY_FIELDS)):
        figures[name, ZERO_BUCKET if bucket is None else str(int(bucket))] += count
    tally.figures = +figures  # no zero sums (a window without tokens after cancel)
    return tally


def _unfinished_hours(first: datetime, last: datetime) -> set[datetime]:
    """Hours in [first, last] that still hold a queued or running row (few rows: indexed)."""
    rows = Generation.objects.filter(
        status__in=Generation.UNFINISHED_STATUSES, created_at__gte=first, created_at__lt=last + HOUR
    )
    return {floor_hour(created) for created in rows.values_list("created_at", flat=True)}


def _sealed(hours: int, first: datetime, last: datetime) -> set[datetime]:
    """Starts of the sealed hours (hours=1) or days (hours=24) in [first, last]."""
    markers = TallyRow.objects.filter(name=SEALED, hours=hours, start__gte=first, start__lte=last)
    return set(markers.values_list("start", flat=True))


def _settled_figures(hour: datetime) -> Counter:
    # With no unfinished row left, the hour's rows can no longer change: finished rows are
    # final and no row is created in a past hour. So any two processes sealing the same
    # hour compute the same figures, and the loser's insert may simply be ignored.
    figures = rows_tally(hour, hour + HOUR).figures
    figures[SEALED, ""] = 1
    return figures


def _store(sealed: dict[datetime, Counter]) -> None:
    table = TallyRow._meta.db_table
    adapt = connection.ops.adapt_datetimefield_value
    rows = [
        (stored_hour, name, label, value)
        for hour, figures in sealed.items()
        for stored_hour in [adapt(hour)]
        for (name, label), value in figures.items()
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} (start, hours, name, label, value) VALUES (%s, 1, %s, %s, %s) ON CONFLICT DO NOTHING",
            rows,
        )


def _seal_days(first: datetime, last: datetime) -> None:
    """Sum every day in [first, last] whose 24 hours are sealed into day rows: a month-long
    window then reads 30 days' rows instead of 720 hours'."""
    hours = Counter(floor_day(hour) for hour in _sealed(1, first, last + DAY - HOUR))
    todo = [day for day, count in hours.items() if count == 24 and day not in _sealed(24, first, last)]
    table = TallyRow._meta.db_table
    adapt = connection.ops.adapt_datetimefield_value
    sql = (
        f"INSERT INTO {table} (start, hours, name, label, value) "  # noqa: S608 - names only, no input
        f"SELECT %s, 24, name, label, SUM(value) FROM {table} WHERE hours = 1 AND start >= %s AND start < %s "
        "GROUP BY name, label ON CONFLICT DO NOTHING"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        for day in todo:
            cursor.execute(sql, [adapt(day), adapt(day), adapt(day + DAY)])


def _hours_with_rows(first: datetime, last: datetime) -> set[datetime]:
    """Hours in [first, last] holding any row: one index seek per such hour."""
    rows = SeekingDatesQuerySet(Generation).filter(created_at__gte=first, created_at__lt=last + HOUR)
    return set(rows.datetimes("created_at", "hour", tzinfo=UTC))


def newest_settled_hour(now: datetime) -> datetime:
    """The start of the newest hour that has ended and settled by `now`."""
    return floor_hour(now - SETTLE) - HOUR


def seal_settled_hours(*, now: datetime | None = None, limit: int | None = None) -> int:
    """Seal the settled hours of the longest dashboard window, newest first; returns how many."""
    now = now or timezone.now()
    newest = newest_settled_hour(now)
    oldest = floor_hour(now - LONGEST_WINDOW)
    skip = _sealed(1, oldest, newest) | _unfinished_hours(oldest, newest)
    todo = [hour for hour in reversed(hours_between(oldest, newest)) if hour not in skip][:limit]
    busy = _hours_with_rows(min(todo), max(todo)) if todo else set()
    sealed = {hour: Counter({(SEALED, ""): 1}) for hour in todo if hour not in busy}  # a marker is all
    for hour in todo:
        if hour in busy:
            sealed[hour] = _settled_figures(hour)
        if len(sealed) >= 48:  # one transaction per couple of days' hours
            _store(sealed)
            sealed.clear()
    _store(sealed)
    _seal_days(floor_day(oldest), floor_day(newest))
    return len(todo)


def prune_tallies(*, before: datetime) -> int:
    count, _ = TallyRow.objects.filter(start__lt=floor_day(before)).delete()
    return count


def _day_runs(days: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Consecutive days as [start, end) ranges."""
    runs: list[tuple[datetime, datetime]] = []
    for day in sorted(days):
        if runs and runs[-1][1] == day:
            runs[-1] = (runs[-1][0], day + DAY)
        else:
            runs.append((day, day + DAY))
    return runs


def window_tally(since: datetime, now: datetime) -> Summary:
    """Every figure of the rows created in [since, now]: sealed days and hours summed by the
    database from their tallies, the rest aggregated from the rows themselves."""
    first_full = floor_hour(since) + (HOUR if since != floor_hour(since) else timedelta(0))
    current = floor_hour(now)
    first_day = floor_day(first_full) + (DAY if first_full != floor_day(first_full) else timedelta(0))
    days = _sealed(24, first_day, floor_day(current) - DAY)
    tally = Summary()
    hourly = TallyRow.objects.filter(name="status", hours=1, start__gte=first_full, start__lt=current)
    for status_hour, status, value in hourly.values_list("start", "label", "value"):
        tally.hourly[status_hour, status] += value
    spans = [TallyRow.objects.filter(hours=24, start__in=days)]
    edge = first_full
    for run_start, run_end in [*_day_runs(list(days)), (current, current)]:  # hours outside the sealed days
        if edge < run_start:
            spans.append(TallyRow.objects.filter(hours=1, start__gte=edge, start__lt=run_start))
        edge = run_end
    for rows in spans:
        summed = rows.exclude(name=SEALED).order_by().values_list("name", "label").annotate(Sum("value"))
        for name, label, value in summed:
            tally.figures[name, label] += value
    if since < first_full:
        tally.add(rows_tally(since, first_full))
    sealed = _sealed(1, first_full, current - HOUR)
    for hour in hours_between(first_full, current - HOUR):
        if hour not in sealed:
            tally.add(rows_tally(hour, hour + HOUR))
    tally.add(rows_tally(max(since, current), now + timedelta(microseconds=1)))
    return tally


def totals(tally: Summary, name: str) -> dict[str, int]:
    """{label: value} of one figure, largest first."""
    summed = Counter({label: value for (key, label), value in tally.figures.items() if key == name})
    return dict(summed.most_common())


def bucket_value(field: str, label: str) -> float:
    """The value that stands for a bucket: within (γ-1)/(γ+1) < 2 % of any value in it."""
    if label == ZERO_BUCKET:
        return 0.0
    upper = GAMMA ** int(label)
    lower = upper / GAMMA
    middle = 2 * upper / (1 + GAMMA)
    if field in INTEGER_FIELDS:
        first, last = math.floor(lower * (1 + 1e-12)) + 1, math.floor(upper * (1 + 1e-12))
        if first == last:
            return float(first)
        if first < last:
            return min(max(middle, float(first)), float(last))
    return middle


def percentiles(tally: Summary, field: str, fractions: tuple[float, ...]) -> dict[float, float | None]:
    """Nearest-rank percentiles of a latency field, read from its buckets."""
    counts = totals(tally, field)
    ordered = sorted(counts.items(), key=lambda item: -math.inf if item[0] == ZERO_BUCKET else int(item[0]))
    total = sum(counts.values())
    result: dict[float, float | None] = {}
    for fraction in fractions:
        if not total:
            result[fraction] = None
            continue
        rank, seen = min(total, max(1, int(fraction * total + 0.5))), 0
        for label, count in ordered:
            seen += count
            if seen >= rank:
                result[fraction] = bucket_value(field, label)
                break
    return result
