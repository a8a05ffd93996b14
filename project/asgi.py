"""ASGI entry point. Importing it builds the application and starts nothing: the serving
process's start-up (generation.ops.startup) runs at lifespan start-up, or from
`manage.py serve`, which runs daphne (daphne sends no lifespan events)."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_application = get_asgi_application()

from generation.ops.startup import serving  # noqa: E402  (after django.setup())

application = serving(django_application)
