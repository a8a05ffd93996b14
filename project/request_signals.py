"""Django's request_started receivers, run on the event loop.

Django connects two sync receivers to request_started (reset_queries and
close_old_connections). Under ASGI, sync receivers go through sync_to_async in the
request's ThreadSensitiveContext, so every request started a thread of its own, and the
event loop waited in Thread.start until that thread was scheduled, before any view ran.
A request's context opens no connection before its view does (the loop thread may not
touch the database), so both receivers have nothing to do; the replacement does their
work only where there is some."""
from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core import signals
from django.db import close_old_connections, connections, reset_queries


async def request_started(**kwargs) -> None:
    """reset_queries and close_old_connections, with a thread only for open connections."""
    opened = connections.all(initialized_only=True)
    for connection in opened:
        connection.queries_log.clear()
    if opened:
        await sync_to_async(close_old_connections)()


def install() -> None:
    """Swap Django's sync request_started receivers for the one above (idempotent)."""
    signals.request_started.disconnect(reset_queries)
    signals.request_started.disconnect(close_old_connections)
    signals.request_started.connect(request_started, dispatch_uid="sluice.request_started")
