"""`manage.py reconcile_generations`: mark rows of dead processes `interrupted` now."""
from django.core.management.base import BaseCommand

from generation.ops.ownership import generations_reconcile


class Command(BaseCommand):
    help = "Mark generations left queued or running by a dead server process as interrupted."

    def handle(self, *args, **options):
        count = generations_reconcile()
        self.stdout.write(f"Interrupted {count} generation(s) left by dead processes.")
