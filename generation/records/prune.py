"""Retention: finished Generation rows (and their hourly tallies, and the hourly counts of
rate-limit refusals) older than a cutoff go."""
from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from generation.models import Generation, RefusalTally

from .rollups import floor_day, prune_tallies


def generations_prune(*, older_than: timedelta, batch_size: int = 5000) -> int:
    """Delete finished rows created before now - older_than; queued and running rows stay.
    Each batch is its own short transaction, so live writers never wait long. The hourly
    tallies of the same period go too, and the refusal counts with them."""
    cutoff = timezone.now() - older_than
    prune_tallies(before=cutoff)
    RefusalTally.objects.filter(hour__lt=floor_day(cutoff)).delete()
    stale = Generation.objects.filter(status__in=Generation.FINISHED_STATUSES, created_at__lt=cutoff).order_by()
    deleted = 0
    while ids := list(stale.values_list("pk", flat=True)[:batch_size]):
        count, _ = Generation.objects.filter(pk__in=ids).delete()
        deleted += count
    return deleted
