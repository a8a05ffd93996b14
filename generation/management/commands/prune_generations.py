"""Delete finished Generation rows older than the retention period, in small batches."""
from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from generation.records.prune import generations_prune

UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    """'12h', '90d', '2w' (a bare number means days) -> timedelta."""
    match = re.fullmatch(r"\s*(\d+)\s*([hdw]?)\s*", text.lower())
    if not match or int(match[1]) <= 0:
        raise ValueError(f"Expected a positive age such as 12h, 90d or 2w, got {text!r}.")
    return timedelta(**{UNITS[match[2] or "d"]: int(match[1])})


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
