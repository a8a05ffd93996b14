"""A request that may wait for minutes gives back its own sync thread and connection.

Django runs each ASGI request in its own asgiref ThreadSensitiveContext: the first
thread-sensitive sync call (Django's request_started receivers, the async ORM: the
caller's limits, an uncached API key, a session) starts a thread for that request alone,
and the database connection the ORM opens there is that thread's. Left alone, both last
until the request ends: a stream waiting in the queue would hold a thread and an open
connection for as long as it waits (docs/benchmarks.md, Memory per queued stream). A run's
own writes go through records.db.off_request, so once the caller is admitted nothing on its
path needs that thread again.

This reads asgiref's own bookkeeping (SyncToAsync's context -> executor map, as pinned in
requirements.txt); tests/generation/test_queued_memory.py fails if it stops working.
"""
from __future__ import annotations

import logging

from asgiref.sync import AsyncToSync, SyncToAsync
from django.db import connections

logger = logging.getLogger(__name__)


def release_request_thread() -> None:
    """Close the current request's connections in the thread that holds them, then let that
    thread exit; returns at once. A later sync call in the request (the response's close)
    starts a new one, which Django's handler joins at the end as it would have this one.
    Outside a Django ASGI request (a WebSocket consumer, the CLI, a test) it does nothing."""
    if getattr(AsyncToSync.executors, "current", None) is not None:
        return  # under async_to_sync: thread-sensitive calls run in that caller's thread
    context = SyncToAsync.thread_sensitive_context.get(None)
    if context is None or getattr(context, "_executor", None) is not None:
        return  # no request context, or one whose executor its creator owns
    executor = SyncToAsync.context_to_thread_executor.pop(context, None)
    if executor is None:
        return  # no thread was started for this request
    # Connections are thread-local in a sync thread: this closes that thread's own, after
    # anything already queued there.
    executor.submit(_close_connections)
    executor.shutdown(wait=False)


def _close_connections() -> None:
    try:
        connections.close_all()
    except Exception as exc:  # noqa: BLE001 - the thread ends anyway, and its connection with it
        logger.warning("request connection not closed (%s)", type(exc).__name__)
