"""A resumable run's event log: the events it has produced, numbered by their place in the
stream, held in memory only and bounded per run by count and bytes.

The numbers are the stream's event ids, so a reader that resumes after id N and
concatenates deltas gets exactly the text of a reader that never left. Past either bound
the log stops serving resumes (it never skips events to stay in bounds): it then keeps only
what the one live reader has not read yet.
"""
from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from .events import Delta, Event

# A rough per-event cost besides its text (objects, dict and list slots), for the byte bound.
EVENT_OVERHEAD_BYTES = 256


@dataclass(frozen=True)
class Logged:
    """An event with its stream id; `seq` is None for a notice outside the run's sequence
    (a reader told it was superseded)."""

    seq: int | None
    event: Event


def event_bytes(event: Event) -> int:
    if isinstance(event, Delta):
        return EVENT_OVERHEAD_BYTES + len(event.text.encode("utf-8", "surrogatepass")) + 48 * len(event.marks)
    return EVENT_OVERHEAD_BYTES


class EventLog:
    """Append-only on the event loop; readers wait with `changed()` and read with `after()`."""

    def __init__(self, *, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._items: deque[Logged] = deque()
        self._bytes = 0
        self.last_seq = 0
        self.overflowed = False  # past a bound: no resume can be served without a gap
        self.terminal: Logged | None = None
        self._grew = asyncio.Event()

    @property
    def first_seq(self) -> int:
        """The oldest id still held (last_seq + 1 when empty)."""
        return self._items[0].seq if self._items else self.last_seq + 1

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def append(self, event: Event) -> Logged:
        self.last_seq += 1
        item = Logged(self.last_seq, event)
        self._items.append(item)
        self._bytes += event_bytes(event)
        if event.terminal:
            self.terminal = item
        if len(self._items) > self.max_events or self._bytes > self.max_bytes:
            self.overflowed = True
        self.poke()
        return item

    def poke(self) -> None:
        """Wake every waiting reader (new events, or a reader was replaced)."""
        grew, self._grew = self._grew, asyncio.Event()
        grew.set()

    async def changed(self) -> None:
        await self._grew.wait()

    def after(self, seq: int) -> list[Logged]:
        """Every held event with an id above `seq`, in order. The caller checks `seq` is not
        below first_seq - 1 (events it would need are gone)."""
        if not self._items or seq >= self.last_seq:
            return []
        start = max(seq - self._items[0].seq + 1, 0)
        return [self._items[index] for index in range(start, len(self._items))]

    def release_through(self, seq: int) -> None:
        """Once overflowed, forget what the live reader has read: nobody else may read it."""
        while self.overflowed and self._items and self._items[0].seq <= seq and self._items[0] is not self.terminal:
            self._bytes -= event_bytes(self._items.popleft().event)
