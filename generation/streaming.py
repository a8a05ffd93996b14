"""Transport for the native stream: SSE framing, keep-alives, and the thread->asyncio bridge.

This is the only module that writes SSE `data:` lines.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from .events import Event

KEEP_ALIVE = b": keep-alive\n\n"
SSE_HEADERS = {
    "Cache-Control": "no-cache, no-store",
    "X-Accel-Buffering": "no",
}


def sse_frame(sequence: int, event: Event) -> bytes:
    """One SSE event: id, event name and a single JSON data line."""
    data = json.dumps(event.data(), ensure_ascii=False, separators=(",", ":"))
    return f"id: {sequence}\nevent: {event.name}\ndata: {data}\n\n".encode()


async def sse_stream(events: AsyncIterator[Event], *, heartbeat: float) -> AsyncIterator[bytes]:
    """Render `events` as SSE, with a keep-alive comment after `heartbeat` idle seconds.

    The pending `anext` runs as a task so a keep-alive never cancels the producer; on
    exit (client gone, server stop) the producer is closed so its `finally` runs.
    """
    sequence = 0
    pending: asyncio.Task | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait((pending,), timeout=heartbeat)
            if not done:
                yield KEEP_ALIVE
                continue
            task, pending = pending, None
            try:
                event = task.result()
            except StopAsyncIteration:
                return
            sequence += 1
            yield sse_frame(sequence, event)
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            try:
                await pending
            except (asyncio.CancelledError, StopAsyncIteration):
                pass
        await events.aclose()


class ThreadBridge:
    """Carries items from one worker thread to one asyncio consumer, in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[Any] = asyncio.Queue()

    def put(self, item: Any) -> None:
        """Thread-safe; silently dropped if the consumer's loop has closed."""
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:
            pass

    async def get(self, timeout: float | None = None) -> Any:
        """The next item; raises TimeoutError after `timeout` seconds."""
        if not self._queue.empty():
            return self._queue.get_nowait()
        return await asyncio.wait_for(self._queue.get(), timeout)

    def get_nowait(self) -> Any | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
