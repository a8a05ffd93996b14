"""The WebSocket application: origin check, session auth, and the one route.

Browsers always send `Origin`, and their cookies ride along on any socket they open, so a
socket with an Origin must come from an allowed host (AllowedHostsOriginValidator). A
client with an API key and no Origin is not a browser acting for a signed-in user: its
socket is allowed through, and the consumer authenticates the key.
"""
from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from .consumers import GenerationConsumer

websocket_urlpatterns = [path("ws/generations", GenerationConsumer.as_asgi())]


def websocket_application():
    inner = AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
    checked = AllowedHostsOriginValidator(inner)

    async def application(scope, receive, send):
        names = {name for name, _ in scope.get("headers", [])}
        if b"origin" not in names and b"authorization" in names:
            return await inner(scope, receive, send)
        return await checked(scope, receive, send)

    return application
