"""The worker thread -> event loop hand-off of a run's tokens."""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class ThreadBridge:
    """Carries items from one worker thread to one asyncio consumer, in order.

    Every token crosses here, so it is kept lean: items go straight into a deque (thread-safe
    for one producer and one consumer) and the loop is woken only when no wake-up is on its
    way already; a wait is one future and one timer, not a task per item as `wait_for` costs.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: deque[Any] = deque()
        self._waiter: asyncio.Future | None = None
        self._wake_pending = False

    def put(self, item: Any) -> None:
        """Thread-safe; silently dropped if the consumer's loop has closed."""
        self._items.append(item)
        if self._wake_pending:  # the wake-up on its way finds this item too
            return
        self._wake_pending = True
        try:
            self._loop.call_soon_threadsafe(self._wake)
        except RuntimeError:
            pass

    def _wake(self) -> None:
        self._wake_pending = False  # before the consumer looks: a later put wakes it again
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self, timeout: float | None = None) -> Any:
        """The next item; raises TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else self._loop.time() + timeout
        while not self._items:  # a wake-up may be stale: its item was taken without waiting
            if deadline is not None and self._loop.time() >= deadline:
                raise TimeoutError
            waiter = self._waiter = self._loop.create_future()
            timer = self._loop.call_at(deadline, _expire, waiter) if deadline is not None else None
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        return self._items.popleft()

    def get_nowait(self) -> Any | None:
        return self._items.popleft() if self._items else None


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)
