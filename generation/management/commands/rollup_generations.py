"""Seal the settled hours of the last 30 days into hourly tallies (generation/records/rollups.py)."""
from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from generation.records.rollups import seal_settled_hours


class Command(BaseCommand):
    help = (
        "Seal every settled hour of the last 30 days into the dashboard's hourly tallies. "
        "Server heartbeats do this on their own; run it after loading or restoring records."
    )

    def handle(self, *args, verbosity=1, **options):
        started = time.monotonic()
        sealed = seal_settled_hours()
        if verbosity:
            self.stdout.write(f"Sealed {sealed} hour(s) in {time.monotonic() - started:.1f} s.")
