"""Server-Sent Events: framing (native and OpenAI's data-only style) and keep-alives.

This is the only module that writes SSE `data:` lines.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Protocol

from generation.lifecycle.events import Event
from generation.lifecycle.replay import Logged

KEEP_ALIVE = b": keep-alive\n\n"
SSE_HEADERS = {
    "Cache-Control": "no-cache, no-store",
    "X-Accel-Buffering": "no",
}
DONE = "[DONE]"  # a data-only stream's last line after a successful end (OpenAI)


def _json(payload: dict) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def sse_frame(sequence: int | None, event: Event) -> bytes:
    """One SSE event: id (none for a notice outside the run's sequence, so a browser keeps
    its last id), event name and a single JSON data line."""
    head = f"id: {sequence}\n" if sequence is not None else ""
    return f"{head}event: {event.name}\ndata: {_json(event.data())}\n\n".encode()


def sse_data(payload: dict | str) -> bytes:
    """One data-only SSE message: a JSON object, or a bare marker such as DONE."""
    return f"data: {payload if isinstance(payload, str) else _json(payload)}\n\n".encode()


class Framing(Protocol):
    def frames(self, event: Event) -> Iterable[bytes]:
        """The bytes for one event (none for an event this framing does not show)."""


class NativeFraming:
    """The native stream: every event numbered and named (docs/api.md)."""

    def __init__(self) -> None:
        self._sequence = 0

    def frames(self, event: Event) -> Iterable[bytes]:
        self._sequence += 1
        return (sse_frame(self._sequence, event),)


class LoggedFraming:
    """A resumable stream: each event keeps its id in the run's log, and the first frame
    tells browsers how soon to reconnect (`retry:`, in milliseconds)."""

    def __init__(self, retry_ms: int) -> None:
        self._retry: bytes | None = f"retry: {retry_ms}\n".encode()

    def frames(self, item: Logged) -> Iterable[bytes]:
        frame = sse_frame(item.seq, item.event)
        if self._retry is not None:
            frame, self._retry = self._retry + frame, None
        return (frame,)


class DataFraming:
    """Data-only SSE, as OpenAI streams: `payloads(event)` gives each event's JSON objects
    (or DONE) in order."""

    def __init__(self, payloads: Callable[[Event], Iterable[dict | str]]) -> None:
        self._payloads = payloads

    def frames(self, event: Event) -> Iterable[bytes]:
        return [sse_data(payload) for payload in self._payloads(event)]


async def sse_stream(
    events: AsyncIterator[Event | Logged], *, heartbeat: float, framing: Framing | None = None
) -> AsyncIterator[bytes]:
    """Render `events` as SSE (native framing unless told), with a keep-alive comment after
    `heartbeat` seconds in which nothing was sent.

    The pending `anext` runs as a task so a keep-alive never cancels the producer; on
    exit (client gone, server stop) the producer is closed so its `finally` runs.
    """
    framing = framing or NativeFraming()
    pending: asyncio.Task | None = None
    sent_at = time.monotonic()
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait((pending,), timeout=max(sent_at + heartbeat - time.monotonic(), 0))
            if not done:
                sent_at = time.monotonic()
                yield KEEP_ALIVE
                continue
            task, pending = pending, None
            try:
                event = task.result()
            except StopAsyncIteration:
                return
            for frame in framing.frames(event):
                sent_at = time.monotonic()
                yield frame
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            try:
                await pending
            except (asyncio.CancelledError, StopAsyncIteration):
                pass
        await events.aclose()
