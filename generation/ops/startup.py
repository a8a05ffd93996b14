"""What a serving process starts, once: its ownership (register, heartbeat, reconcile what
dead peers left), the model load in the background, and the cancel listener on its event
loop. `serve` calls `start_process()` before serving; `serving(app)` wraps the ASGI
application so that lifespan start-up does the same (for servers that speak lifespan;
daphne does not) and the listener runs on the loop that serves requests."""
from __future__ import annotations

import threading

from django.conf import settings
from django.db import connections

from generation.lifecycle.runtime import get_backend

from .ownership import generations_reconcile, process_heartbeat_start
from .remote_cancel import ensure_listener

_started = threading.Event()


def start_process() -> None:
    """Register this process, reconcile rows of dead ones, start loading the model. Idempotent."""
    if _started.is_set():
        return
    _started.set()
    try:
        process_heartbeat_start()
        generations_reconcile()
    finally:
        connections.close_all()  # this thread goes on to serve: it keeps no connection
    if settings.SLUICE_PRELOAD_MODEL:
        threading.Thread(target=get_backend, name="sluice-model-load", daemon=True).start()


def start_listeners() -> None:
    """Start the cross-process cancel listener on the running loop (once per loop)."""
    ensure_listener()


def serving(django_application):
    """The ASGI application: Django, plus the process's start-up at lifespan and its cancel
    listener on the serving loop."""

    async def application(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    start_process()
                    start_listeners()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        start_listeners()  # cheap once running: admin cancels from any process reach this one's runs
        await django_application(scope, receive, send)

    return application
