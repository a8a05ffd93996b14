"""The worker thread -> event loop hand-off of a run's tokens."""
from __future__ import annotations

import asyncio
from typing import Any


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
