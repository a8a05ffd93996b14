"""ASGI entry point (daphne). At start-up: register this process (heartbeat), reconcile
rows that dead processes left running, and load the model in the background so the first
request does not pay for it."""
import os
import threading

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
application = get_asgi_application()

from django.conf import settings  # noqa: E402  (settings are ready only after the line above)

from generation.ownership import generations_reconcile, process_heartbeat_start  # noqa: E402

# This process owns the runs it serves; rows a dead process left behind become interrupted.
process_heartbeat_start()
generations_reconcile()

if settings.SLUICE_PRELOAD_MODEL:
    from generation.backends.registry import get_backend  # noqa: E402

    threading.Thread(target=get_backend, name="sluice-model-load", daemon=True).start()
