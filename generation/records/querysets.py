"""A QuerySet that answers "which dates hold rows" and "first and last date" by index seeks."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db.models import F, Max, Min, QuerySet
from django.utils import timezone


def _period_start(moment: datetime, kind: str) -> datetime:
    hour = moment.replace(minute=0, second=0, microsecond=0)
    day = hour.replace(hour=0)
    return {"year": day.replace(month=1, day=1), "month": day.replace(day=1), "day": day, "hour": hour}[kind]


def _next_period(start: datetime, kind: str) -> datetime:
    if kind == "hour":  # in absolute time: a wall-clock hour can repeat when clocks go back
        return (start.astimezone(UTC) + timedelta(hours=1)).astimezone(start.tzinfo)
    if kind == "year":
        return start.replace(year=start.year + 1)
    if kind == "month":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start + timedelta(days=1)  # wall-clock arithmetic: the next local midnight


class SeekingDatesQuerySet(QuerySet):
    """The admin's date hierarchy asks for the first and last dates of the list and for its
    distinct years, months or days (the dashboard's sealing asks for hours). Written as the
    admin writes them (MIN and MAX in one query, SELECT DISTINCT over a truncated date), both
    read every row; here each is an index seek: the first row, then the first row after
    each period found.
    """

    def _seek(self, field_name: str, *, at_least=None, last: bool = False):
        rows = self.model._default_manager.all()
        if at_least is not None:
            # This bound goes first: SQLite ranges an index on the first bound of a column it
            # meets, and the list's own date range (a looser bound) is already in `self`.
            rows = rows.filter(**{f"{field_name}__gte": at_least})
        rows = (rows & self.filter(**{f"{field_name}__isnull": False})).order_by(("-" if last else "") + field_name)
        return rows.values_list(field_name, flat=True).first()

    def aggregate(self, *args, **kwargs):
        def plain_bound(aggregate) -> bool:
            source = aggregate.get_source_expressions()[0]
            return type(aggregate) in (Min, Max) and aggregate.filter is None and isinstance(source, F)

        if args or not kwargs or not all(plain_bound(aggregate) for aggregate in kwargs.values()):
            return super().aggregate(*args, **kwargs)
        return {
            alias: self._seek(aggregate.get_source_expressions()[0].name, last=isinstance(aggregate, Max))
            for alias, aggregate in kwargs.items()
        }

    def datetimes(self, field_name, kind, order="ASC", tzinfo=None):
        if kind not in ("year", "month", "day", "hour") or order != "ASC":
            return super().datetimes(field_name, kind, order, tzinfo)
        zone = tzinfo or timezone.get_current_timezone()
        found: list[datetime] = []
        cursor = None
        while (first := self._seek(field_name, at_least=cursor)) is not None:
            found.append(_period_start(first.astimezone(zone), kind))
            cursor = _next_period(found[-1], kind)
        return found
