"""ASGI entry point. Importing it builds the application and starts nothing: the serving
process's start-up (generation.ops.startup) runs at lifespan start-up, or from
`manage.py serve`, which runs daphne (daphne sends no lifespan events). HTTP and lifespan
go to Django, WebSockets to the channels routing of generation/ws/."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from generation.ops.startup import serving  # noqa: E402  (after django.setup())
from generation.ws.routing import websocket_application  # noqa: E402

http_application = serving(django_application)
application = ProtocolTypeRouter(
    {"http": http_application, "lifespan": http_application, "websocket": websocket_application()}
)
