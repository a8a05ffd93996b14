"""Database work that may outlive its request (a run finishing after its client left, a
shielded insert, the heartbeat): run it in a worker thread and give the connection back at
once (to the pool on PostgreSQL), so no such work keeps a connection it no longer uses."""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

T = TypeVar("T")


async def off_request(work: Callable[..., T], /, *args, **kwargs) -> T:
    """`work(*args, **kwargs)` in a worker thread, whose connections are closed after it."""

    def run() -> T:
        try:
            return work(*args, **kwargs)
        finally:
            connections.close_all()

    return await sync_to_async(run, thread_sensitive=False)()
