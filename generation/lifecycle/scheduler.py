"""Bounded FIFO queue in front of the model slots.

Slots are released from worker threads (when the model has really stopped) and waiters
live in event loops, so state is guarded by a lock and waiters are woken through their
own loop with call_soon_threadsafe. The slots in service can change while it runs (a
remote upstream leaving or rejoining): see set_capacity.
"""
from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor


class QueueFull(Exception):
    """The queue is at SLUICE_MAX_QUEUE; `retry_after` is a whole-second estimate."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("generation queue is full")
        self.retry_after = retry_after


class Ticket:
    """One request's place: `position` (1 = next) while waiting, `slot` once granted.

    A change is a flag and, while its run waits, one future and one timer: a run may wait
    here for minutes, a thousand at once, so no Event and no task per wait."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._changed = False
        self._waiter: asyncio.Future[bool] | None = None
        self.position = 0
        self.slot: int | None = None
        self.withdrawn = False

    def _notify(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._set_changed)
        except RuntimeError:  # loop closed: nobody is waiting any more
            pass

    def _set_changed(self) -> None:
        self._changed = True
        _resolve(self._waiter, True)

    async def wait_changed(self, timeout: float | None) -> bool:
        """Wait until the position or slot changes; False on timeout."""
        if not self._changed:
            self._waiter = waiter = self._loop.create_future()
            timer = self._loop.call_later(timeout, _resolve, waiter, False) if timeout is not None else None
            try:
                if not await waiter:
                    return False
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        self._changed = False
        return True

    def wake(self) -> None:
        """Wake the waiter without a change (e.g. it was asked to cancel)."""
        self._notify()


def _resolve(waiter: asyncio.Future[bool] | None, changed: bool) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(changed)


class Scheduler:
    """`slots` model slots shared in arrival order by at most `max_queue` waiters."""

    def __init__(self, *, slots: int, max_queue: int) -> None:
        self._lock = threading.Lock()
        self._free = deque(range(slots))
        self._waiting: deque[Ticket] = deque()
        self.slot_count = slots
        self.max_queue = max_queue
        self._mean_run_seconds = 5.0
        self._started: dict[int, float] = {}
        self._retired: list[int] = []  # free slots out of service
        self._to_retire = 0  # busy slots to take out of service when they are released
        self._threads = ThreadPoolExecutor(max_workers=max(1, slots), thread_name_prefix="sluice-slot")

    def run_in_slot(self, work: Callable[[], None]) -> None:
        """Run a granted slot's work on the scheduler's threads, one per slot and kept
        between runs: starting a thread per run would block the event loop until the new
        thread is scheduled and holds the GIL."""
        self._threads.submit(work)

    def close(self) -> None:
        """Let the slot threads exit once their runs end (tests replace the scheduler)."""
        self._threads.shutdown(wait=False)

    def enqueue(self, loop: asyncio.AbstractEventLoop | None = None) -> Ticket:
        """Take a slot now or a place in the queue; raise QueueFull when there is none."""
        ticket = Ticket(loop or asyncio.get_running_loop())
        with self._lock:
            if self._free and not self._waiting:
                self._grant(ticket, self._free.popleft())
            elif len(self._waiting) >= self.max_queue:
                raise QueueFull(self._retry_after_locked())
            else:
                self._waiting.append(ticket)
                ticket.position = len(self._waiting)
        return ticket

    def withdraw(self, ticket: Ticket) -> None:
        """Leave the queue, or give back a slot that was granted but never used."""
        with self._lock:
            if ticket.withdrawn:
                return
            ticket.withdrawn = True
            if ticket.slot is None:
                try:
                    self._waiting.remove(ticket)
                except ValueError:
                    return
                self._renumber_locked()
                return
        self.release(ticket.slot)

    def release(self, slot: int) -> None:
        """Called when the model has stopped using `slot`: hand it to the next waiter."""
        with self._lock:
            started = self._started.pop(slot, None)
            if started is not None:
                elapsed = time.monotonic() - started
                self._mean_run_seconds = 0.8 * self._mean_run_seconds + 0.2 * elapsed
            if self._to_retire:
                self._to_retire -= 1
                self._retired.append(slot)
            elif self._waiting:
                self._grant(self._waiting.popleft(), slot)
                self._renumber_locked()
            else:
                self._free.append(slot)

    def set_capacity(self, slots: int) -> None:
        """Keep `slots` of the `slot_count` slots in service. Free slots leave at once, busy
        ones when their run releases them (a run in progress is never cut short); slots that
        come back go to the waiters first."""
        with self._lock:
            change = max(0, min(slots, self.slot_count)) - self._in_service_locked()
            while change < 0 and self._free:
                self._retired.append(self._free.pop())
                change += 1
            if change < 0:
                self._to_retire -= change
                return
            back = min(change, self._to_retire)
            self._to_retire -= back
            change -= back
            self._retired.sort(reverse=True)
            for _ in range(min(change, len(self._retired))):
                slot = self._retired.pop()
                if self._waiting:
                    self._grant(self._waiting.popleft(), slot)
                else:
                    self._free.append(slot)
            self._renumber_locked()

    def _in_service_locked(self) -> int:
        return self.slot_count - len(self._retired) - self._to_retire

    def _grant(self, ticket: Ticket, slot: int) -> None:
        ticket.slot = slot
        ticket.position = 0
        self._started[slot] = time.monotonic()
        ticket._notify()

    def _renumber_locked(self) -> None:
        for index, waiting in enumerate(self._waiting, start=1):
            if waiting.position != index:
                waiting.position = index
                waiting._notify()

    def _retry_after_locked(self) -> int:
        rounds = (len(self._waiting) + 1) / max(self._in_service_locked(), 1)
        return max(1, math.ceil(rounds * self._mean_run_seconds))

    def snapshot(self) -> dict:
        """Slots in service and busy, and queue depth, for readiness and metrics."""
        with self._lock:
            return {
                "slots": self._in_service_locked(),
                "slots_busy": self.slot_count - len(self._free) - len(self._retired),
                "queue_depth": len(self._waiting),
                "max_queue": self.max_queue,
            }
