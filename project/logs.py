"""Access and request logs that name a route, never a URL: a query string, an id in a path or
a made-up path is client input and may carry a customer's text. A request is logged by the
URL pattern it matched (`api/v1/generations/<uuid:request_id>/cancel`), by `static/...` for
a static file, or by `-` when nothing matched; a method that is not HTTP's is `-` too."""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.urls import Resolver404, resolve

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


def route_of(path: str, patterns=None) -> str:
    """The URL pattern that `path` (query string or not) matches, as written in the URLconf,
    or among `patterns` when given (a WebSocket's routing)."""
    path = urlsplit(path).path or "/"
    if patterns is not None:
        pattern = next((p.pattern for p in patterns if p.pattern.match(path.lstrip("/"))), None)
        return f"/{pattern}" if pattern is not None else "-"
    static = settings.STATIC_URL if settings.STATIC_URL.startswith("/") else f"/{settings.STATIC_URL}"
    if path.startswith(static):
        return f"{static.strip('/')}/..."
    try:
        match = resolve(path)
    except Resolver404:
        return "-"
    return f"/{match.route}" if match.route else "/"


def method_of(method: str) -> str:
    return method if method in METHODS else "-"


class RequestRouteFilter(logging.Filter):
    """For Django's request loggers ("Not Found: <path>", "Bad Request: <path>"): the path in
    the message becomes its route."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        path = getattr(request, "path", None)
        if path and isinstance(record.args, tuple):
            record.args = tuple(route_of(path) if arg == path else arg for arg in record.args)
        return True
