"""Delete finished Generation rows older than the retention period, in small batches."""
from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from generation.models import Generation
from generation.rollups import prune_tallies

UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    """'12h', '90d', '2w' (a bare number means days) -> timedelta."""
    match = re.fullmatch(r"\s*(\d+)\s*([hdw]?)\s*", text.lower())
    if not match or int(match[1]) <= 0:
        raise ValueError(f"Expected a positive age such as 12h, 90d or 2w, got {text!r}.")
    return timedelta(**{UNITS[match[2] or "d"]: int(match[1])})


def generations_prune(*, older_than: timedelta, batch_size: int = 5000) -> int:
    """Delete finished rows created before now - older_than; queued and running rows stay.
    Each batch is its own short transaction, so live writers never wait long. The hourly
    tallies of the same period go too."""
    cutoff = timezone.now() - older_than
    prune_tallies(before=cutoff)
    stale = Generation.objects.filter(status__in=Generation.FINISHED_STATUSES, created_at__lt=cutoff).order_by()
    deleted = 0
    while ids := list(stale.values_list("pk", flat=True)[:batch_size]):
        count, _ = Generation.objects.filter(pk__in=ids).delete()
        deleted += count
    return deleted


class Command(BaseCommand):
    help = "Delete finished generation records older than --older-than (default SLUICE_RETENTION_DAYS)."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", help="Age such as 12h, 90d or 2w (default: SLUICE_RETENTION_DAYS days).")
        parser.add_argument("--batch-size", type=int, default=5000, help="Rows per DELETE (default 5000).")

    def handle(self, *args, older_than=None, batch_size=5000, **options):
        if batch_size <= 0:
            raise CommandError("--batch-size must be positive.")
        if older_than is None:
            if settings.SLUICE_RETENTION_DAYS <= 0:
                self.stdout.write("Retention is off (SLUICE_RETENTION_DAYS <= 0); nothing deleted.")
                return
            age = timedelta(days=settings.SLUICE_RETENTION_DAYS)
        else:
            try:
                age = parse_age(older_than)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
        deleted = generations_prune(older_than=age, batch_size=batch_size)
        self.stdout.write(f"Deleted {deleted} finished generation(s) older than {age}.")
