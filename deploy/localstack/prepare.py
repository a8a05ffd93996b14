"""Run once in the stack's Sluice environment before its processes start: migrate the fresh
database, collect static files, check the model, create an admin and an API key. Prints one
JSON object: {"api_key", "admin_username", "admin_password"}."""
from __future__ import annotations

import io
import json
import os
import secrets
import sys

import django
from django.core.management import call_command


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    django.setup()
    quiet = io.StringIO()
    call_command("migrate", interactive=False, verbosity=0, stdout=quiet)
    call_command("collectstatic", interactive=False, verbosity=0, stdout=quiet)
    call_command("prepare_model", stdout=quiet)
    username = "admin"
    password = secrets.token_urlsafe(12)
    os.environ["SLUICE_ADMIN_USERNAME"], os.environ["SLUICE_ADMIN_PASSWORD"] = username, password
    call_command("ensure_admin", stdout=quiet)
    key_out = io.StringIO()
    call_command("create_api_key", name="stack", stdout=key_out, stderr=io.StringIO())
    json.dump({"api_key": key_out.getvalue().strip(), "admin_username": username, "admin_password": password},
              sys.stdout)


if __name__ == "__main__":
    main()
