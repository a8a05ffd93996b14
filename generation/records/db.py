"""Database work that may outlive its request (a run finishing after its client left, a
shielded insert, the heartbeat): run it in a worker thread and give the connection back at
once (to the pool on PostgreSQL), so no such work keeps a connection it no longer uses. A
SQLite connection (kept for SLUICE_SQLITE_CONN_MAX_AGE) stays with its worker thread: it is
a file handle, and opening one costs milliseconds."""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

T = TypeVar("T")


async def off_request(work: Callable[..., T], /, *args, **kwargs) -> T:
    """`work(*args, **kwargs)` in a worker thread, whose connections are closed after it
    unless CONN_MAX_AGE keeps them (SQLite only; the pool keeps PostgreSQL's)."""

    def run() -> T:
        try:
            return work(*args, **kwargs)
        finally:
            close_old_connections()

    return await sync_to_async(run, thread_sensitive=False)()
