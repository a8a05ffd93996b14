"""`manage.py ensure_admin`: create the first staff account when there is none (`make run`)."""
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create a superuser when none exists. Takes SLUICE_ADMIN_USERNAME / SLUICE_ADMIN_PASSWORD "
        "from the environment, else generates a password and prints it once."
    )

    def handle(self, *args, **options):
        import os

        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        username = os.environ.get("SLUICE_ADMIN_USERNAME", "admin")
        password = os.environ.get("SLUICE_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        if os.environ.get("SLUICE_ADMIN_PASSWORD"):
            self.stdout.write(f"Created admin user '{username}' with the password from SLUICE_ADMIN_PASSWORD.")
        else:
            self.stdout.write(
                f"Created admin user '{username}' with password: {password}\n"
                "This is shown once. Change it at /admin/password_change/."
            )
