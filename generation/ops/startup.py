"""What a serving process starts, once: its ownership (register, heartbeat, reconcile what
dead peers left), the model load in the background, and the cancel listener on its event
loop, and the freezing of start-up's objects out of the garbage collector's way. `serve`
calls `start_process()` before serving; `serving(app)` wraps the ASGI
application so that lifespan start-up does the same (for servers that speak lifespan;
daphne does not) and the listener runs on the loop that serves requests."""
from __future__ import annotations

import gc
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
    freeze_start_up()
    if settings.SLUICE_PRELOAD_MODEL:
        threading.Thread(target=_load_backend, name="sluice-model-load", daemon=True).start()


def _load_backend() -> None:
    get_backend()
    freeze_start_up()  # the model's own objects and what loading it imported


def freeze_start_up() -> None:
    """Move every object alive now (imports, settings, the model's wrappers) to the
    collector's permanent generation. A full collection otherwise walks them all, holding the
    GIL in the middle of streams (docs/architecture.md, "The garbage collector"); frozen
    objects are still freed by reference counting. Called before serving and once the model
    is loaded."""
    gc.collect()
    gc.freeze()


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
