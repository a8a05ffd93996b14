"""A run as an HTTP response, for every web transport: streamed (SSE, native or data-only
framing) or collected into one JSON object, whose failures map to the HTTP error they
answer with."""
from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field

from django.conf import settings
from django.http import JsonResponse, StreamingHttpResponse

from generation.lifecycle.events import Cancelled, Delta, Done, Error, Event, TimedOut
from generation.lifecycle.replay import Logged
from generation.lifecycle.request_thread import release_request_thread
from generation.lifecycle.runner import GenerationRun
from generation.models import Generation

from .errors import ErrorShape
from .sse import SSE_HEADERS, Framing, LoggedFraming, sse_stream


async def _releasing(frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`frames`, once the request's own thread is given back (lifecycle/request_thread.py):
    the view and its middleware are done with it, and the stream may last for minutes."""
    release_request_thread()
    async with aclosing(frames):
        async for frame in frames:
            yield frame


class RunStreamingResponse(StreamingHttpResponse):
    """An SSE response (native framing unless told) that gives its run back if it is
    closed, or dropped, without being iterated."""

    def __init__(self, run: GenerationRun, framing: Framing | None = None) -> None:
        super().__init__(
            _releasing(sse_stream(run.events(), heartbeat=settings.SLUICE_HEARTBEAT_SECONDS, framing=framing)),
            content_type="text/event-stream",
            headers={**SSE_HEADERS, "X-Request-ID": str(run.request_id)},
        )
        self._run = run
        # A response dropped unsent (the client left while middleware still held it) is
        # never closed by Django: its run is then closed when the response is collected.
        weakref.finalize(self, run.close_soon)

    def close(self) -> None:
        super().close()
        self._run.close_soon()


class LoggedStreamingResponse(StreamingHttpResponse):
    """An SSE response reading a resumable run's log (`events`, from its first event or
    from a resume). Leaving only detaches the reader: the run's grace period decides."""

    def __init__(self, request_id, events: AsyncIterator[Logged]) -> None:
        super().__init__(
            _releasing(
                sse_stream(
                    events,
                    heartbeat=settings.SLUICE_HEARTBEAT_SECONDS,
                    framing=LoggedFraming(settings.SLUICE_RESUME_RETRY_MS),
                )
            ),
            content_type="text/event-stream",
            headers={**SSE_HEADERS, "X-Request-ID": str(request_id)},
        )


@dataclass(frozen=True)
class Failure:
    """How a run that did not complete is reported: status, code, safe message, extras."""

    status: int
    code: str
    message: str
    details: dict = field(default_factory=dict)


async def collect(run: GenerationRun) -> tuple[str, Event | None]:
    """The whole output text and the terminal event (None if there was none)."""
    parts: list[str] = []
    terminal = None
    async with aclosing(run.events()) as events:
        async for event in events:
            if isinstance(event, Delta):
                parts.append(event.text)
            elif event.terminal:
                terminal = event
    return "".join(parts), terminal


def failure(terminal: Event | None) -> Failure:
    """504 timeout, 409 cancelled (503 at shutdown), else 500 with the error's code."""
    if isinstance(terminal, TimedOut):
        return Failure(504, terminal.code, terminal.message, {"timeout_source": terminal.timeout_source})
    if isinstance(terminal, Cancelled):
        status = 503 if terminal.reason == Generation.CancelReason.SHUTDOWN else 409
        return Failure(status, "cancelled", f"The generation was cancelled ({terminal.reason}).")
    error = terminal if isinstance(terminal, Error) else Error("internal_error", "The generation did not finish.")
    return Failure(500, error.code, error.message)


async def collected_response(run: GenerationRun, *, body: Callable[..., dict], shape: ErrorShape) -> JsonResponse:
    """The non-streaming answer: `body(text=, done=)` on completion, else the failure in `shape`."""
    text, terminal = await collect(run)
    headers = {"X-Request-ID": str(run.request_id)}
    if isinstance(terminal, Done):
        return JsonResponse(body(text=text, done=terminal), headers=headers)
    failed = failure(terminal)
    return shape(failed.status, failed.code, failed.message, headers=headers, **failed.details)
