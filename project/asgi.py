"""ASGI entry point (daphne). Loads the model in the background at start-up so the first
request does not pay for it."""
import os
import threading

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
application = get_asgi_application()

from django.conf import settings  # noqa: E402  (settings are ready only after the line above)

if settings.SLUICE_PRELOAD_MODEL:
    from generation.backends.registry import get_backend  # noqa: E402

    threading.Thread(target=get_backend, name="sluice-model-load", daemon=True).start()
