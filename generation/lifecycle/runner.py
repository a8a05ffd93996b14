"""One generation's lifecycle on the event loop: queue, slot, worker thread, events, record.

`GenerationRun.open()` takes a queue place and creates the row (both can fail before any
response starts); `events()` then yields the native events and, in `finally`, always
stops the model and records how the run ended.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from generation.backends.base import Backend, CancelFlag, SamplingParams
from generation.models import Generation
from generation.records import generations
from generation.records.process import OWNER_ID
from redaction import OutputPipeline

from .bridge import ThreadBridge
from .events import Accepted, Cancelled, Delta, Done, Error, Event, Queued, Started, TimedOut
from .runtime import active_runs
from .scheduler import Scheduler, Ticket
from .worker import TokenText, WorkerResult, run_model

Reason = Generation.CancelReason
Source = Generation.TimeoutSource
Status = Generation.Status

TIMEOUT_MESSAGES = {
    Source.QUEUE_WAIT: "No model slot became free in time. Try again shortly.",
    Source.STALL: "The model stopped producing tokens; the generation was stopped.",
    Source.TOTAL: "The generation ran past its time limit and was stopped.",
}


# What an error event says for each error code a worker can end with; never payload text.
FAILURE_MESSAGES = {
    "upstream_failed": "The model server failed while generating; the text is incomplete. Nothing was kept.",
}
FAILURE_MESSAGE = "The model failed while generating. Nothing was kept."


def failure_event(error_code: str) -> Error:
    """The terminal error for a run the model failed: `upstream_failed` keeps its own code."""
    code = error_code if error_code in FAILURE_MESSAGES else "generation_failed"
    return Error(code, FAILURE_MESSAGES.get(code, FAILURE_MESSAGE))


_closing: set[asyncio.Future] = set()  # strong references to runs still being recorded


def _keep_until_done(future: asyncio.Future) -> asyncio.Future:
    _closing.add(future)
    future.add_done_callback(_closing.discard)
    return future


async def runs_recorded(timeout: float) -> None:
    """Wait up to `timeout` seconds for the runs of this loop still being recorded, those
    whose client left before they joined the active runs included."""
    loop = asyncio.get_running_loop()
    pending = [future for future in _closing if future.get_loop() is loop]
    if pending:
        await asyncio.wait(pending, timeout=timeout)


@dataclass(frozen=True)
class Limits:
    queue_timeout: float
    stall_timeout: float
    total_timeout: float


@dataclass(frozen=True)
class PreparedRequest:
    """A validated, redacted and tokenized request, ready to queue."""

    prompt_tokens: list[int]
    params: SamplingParams
    shape: generations.RequestShape
    placeholders: Mapping[str, str] = field(default_factory=dict)  # in memory only, for this request


class GenerationRun:
    """Drives one request from queue to terminal event; see module docstring."""

    def __init__(
        self,
        *,
        prepared: PreparedRequest,
        caller: generations.Caller,
        channel: str,
        backend: Backend,
        scheduler: Scheduler,
        limits: Limits,
    ) -> None:
        self.request_id = uuid.uuid4()
        self.prepared = prepared
        self.caller = caller
        self.channel = channel
        self.backend = backend
        self.scheduler = scheduler
        self.limits = limits
        self.cancel_flag = CancelFlag()
        self.cancel_reason = ""
        self.timeout_source = ""
        self.record: Generation | None = None
        self._ticket: Ticket | None = None
        self._worker: concurrent.futures.Future[WorkerResult] | None = None
        self._worker_started_at = 0.0
        self._bridge: ThreadBridge | None = None
        self._accepted_at = time.monotonic()
        self._finished = False
        self._close_task: asyncio.Future | None = None
        self._consumed = False  # events() has started: its finally will close the run
        self._loop: asyncio.AbstractEventLoop | None = None
        self._output_masked: dict[str, int] = {}
        # Resumable runs (lifecycle/resume.py) count their readers' departures and returns.
        self.disconnects = 0
        self.resumes = 0
        self.counts_recorded = (0, 0)

    async def open(self) -> None:
        """Take a queue place (QueueFull propagates) and create the row. With a free slot
        the model starts first, so the row insert overlaps prompt processing."""
        self._loop = asyncio.get_running_loop()
        self._ticket = self.scheduler.enqueue()
        if self._ticket.slot is not None:
            self._start_worker()
        # The insert is shielded: a client that hangs up while it runs cancels this coroutine
        # but not the insert, and the row it leaves must still be finished.
        accept = asyncio.ensure_future(
            generations.generation_accept(
                request_id=self.request_id,
                caller=self.caller,
                channel=self.channel,
                shape=self.prepared.shape,
                model_name=self.backend.info.name,
                model_version=self.backend.info.version,
                owner=OWNER_ID,
                accepted_at=self._wall_clock(self._accepted_at),
                started_at=self._wall_clock(self._worker_started_at) if self._worker is not None else None,
            )
        )
        try:
            self.record = await asyncio.shield(accept)
        except asyncio.CancelledError:
            self.request_cancel(Reason.CLIENT_DISCONNECT)
            _keep_until_done(asyncio.ensure_future(self._finish_after_insert(accept)))
            raise
        except BaseException:
            if self._worker is None:
                self.scheduler.withdraw(self._ticket)
            else:
                self.cancel_flag.set()  # the worker stops within a token and frees its slot
            raise
        active_runs.add(self)

    async def _finish_after_insert(self, accept: asyncio.Future) -> None:
        """The client left while the row was being inserted: record the disconnect on it."""
        try:
            self.record = await accept
        except Exception:  # noqa: BLE001 - no row was written, so there is nothing to finish
            if self._worker is None:
                self.scheduler.withdraw(self._ticket)
            return
        await self.close()

    def request_cancel(self, reason: str = "", *, timeout_source: str = "") -> bool:
        """Ask the run to stop (first reason wins). Safe from the loop that owns the run."""
        if self._finished or self.cancel_flag.is_set():
            return False
        self.cancel_reason = reason
        self.timeout_source = timeout_source
        self.cancel_flag.set()
        if self._ticket is not None:
            self._ticket.wake()
        return True

    async def events(self) -> AsyncIterator[Event]:
        """The native event sequence; exactly one terminal event unless the client leaves."""
        assert self.record is not None, "open() first"
        self._consumed = True
        outcome: generations.Outcome | None = None
        first_token_at: float | None = None
        tokens = 0
        try:
            yield Accepted(str(self.request_id), self.backend.info.name, self._ticket.position)
            if self._worker is None:
                async for event in self._wait_for_slot():
                    yield event
                if self._ticket.slot is None:  # cancelled or timed out while queued
                    outcome, terminal = self._stopped_outcome(None, None)
                    yield terminal
                    return
                self._start_worker()
            bridge = self._bridge
            output = OutputPipeline(
                self.prepared.placeholders, restore=settings.SLUICE_REDACTION_RESTORE, guard=settings.SLUICE_OUTPUT_GUARD
            )
            queue_ms = int((self._worker_started_at - self._accepted_at) * 1000)
            if self.record.status == Status.QUEUED:
                await generations.generation_start(generation=self.record, queue_ms=queue_ms)
            yield Started(queue_ms)
            started = time.monotonic()
            last_token = started
            while True:
                item = await self._next_item(bridge, started, last_token)
                texts = []
                while isinstance(item, TokenText):
                    texts.append(item.text)
                    tokens = item.tokens
                    last_token = item.at
                    first_token_at = first_token_at or item.at
                    item = bridge.get_nowait()  # coalesce what arrived while we were busy
                if texts and (delta := Delta.from_segments(output.feed("".join(texts)), tokens)):
                    yield delta
                if isinstance(item, WorkerResult):
                    if delta := Delta.from_segments(output.flush(), item.completion_tokens):
                        yield delta
                    self._output_masked = output.masked_counts
                    outcome, terminal = self._final_outcome(item, started, first_token_at, last_token)
                    yield terminal
                    return
        finally:
            # Shielded: a client that hangs up just after the terminal event cancels this task
            # while the row is being finished, and the record must still be written.
            await asyncio.shield(self.close(outcome, first_token_at))

    async def _wait_for_slot(self) -> AsyncIterator[Event]:
        deadline = self._accepted_at + self.limits.queue_timeout
        position = self._ticket.position
        while self._ticket.slot is None and not self.cancel_flag.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not await self._ticket.wait_changed(remaining):
                if self._ticket.slot is None:
                    self.request_cancel(timeout_source=Source.QUEUE_WAIT)
                break
            if self._ticket.slot is None and self._ticket.position != position:
                position = self._ticket.position
                yield Queued(position)
        if self.cancel_flag.is_set() and self._ticket.slot is not None and self._worker is None:
            self.scheduler.withdraw(self._ticket)  # granted just as it was cancelled
            self._ticket.slot = None

    def _start_worker(self) -> None:
        future: concurrent.futures.Future[WorkerResult] = concurrent.futures.Future()
        slot = self._ticket.slot
        # Made only now: a queued run (there may be a thousand) needs no queue of tokens yet.
        self._bridge = bridge = ThreadBridge(self._loop)

        def work() -> None:
            try:
                result = run_model(
                    backend=self.backend,
                    slot=slot,
                    prompt_tokens=self.prepared.prompt_tokens,
                    params=self.prepared.params,
                    cancel=self.cancel_flag,
                    emit=bridge.put,
                    cache_owner=self.caller.identity,
                )
            finally:
                self.scheduler.release(slot)  # only now is the model really done with it
            future.set_result(result)
            bridge.put(result)

        self._worker = future
        self._worker_started_at = time.monotonic()
        self.scheduler.run_in_slot(work)

    async def _next_item(self, bridge: ThreadBridge, started: float, last_token: float):
        """The next worker item; on a stall or total timeout ask the worker to stop."""
        while True:
            now = time.monotonic()
            deadline = min(last_token + self.limits.stall_timeout, started + self.limits.total_timeout)
            if self.cancel_flag.is_set():
                deadline = now + 60  # the worker stops within one token; wait for its result
            try:
                return await bridge.get(timeout=max(deadline - now, 0.001))
            except TimeoutError:
                if self.cancel_flag.is_set():
                    continue
                stalled = time.monotonic() - last_token >= self.limits.stall_timeout
                self.request_cancel(timeout_source=Source.STALL if stalled else Source.TOTAL)

    def _final_outcome(self, result: WorkerResult, started, first_token_at, last_token):
        if result.finish_reason in ("stop", "length"):
            generation_s = max(last_token - (first_token_at or last_token), 1e-9)
            tps = (result.completion_tokens - 1) / generation_s if result.completion_tokens > 1 else None
            outcome = self._outcome(
                Status.COMPLETED, result, first_token_at, finish_reason=result.finish_reason, tokens_per_second=tps
            )
            usage = {"prompt_tokens": self.prepared.shape.prompt_tokens, "completion_tokens": result.completion_tokens}
            timings = {
                "queue_ms": self.record.queue_ms,
                "ttft_ms": outcome.ttft_ms,
                "generation_ms": self._ms_since(started),
                "tokens_per_second": round(tps, 2) if tps else None,
            }
            return outcome, Done(result.finish_reason, usage, timings)
        if result.finish_reason == "error" and not self.cancel_flag.is_set():
            outcome = self._outcome(Status.FAILED, result, first_token_at, error_code=result.error_code)
            return outcome, failure_event(result.error_code)
        return self._stopped_outcome(result, first_token_at)

    def _stopped_outcome(self, result: WorkerResult | None, first_token_at):
        if self.timeout_source:
            outcome = self._outcome(Status.TIMED_OUT, result, first_token_at, timeout_source=self.timeout_source)
            message = TIMEOUT_MESSAGES[self.timeout_source]
            return outcome, TimedOut("timeout", message, timeout_source=self.timeout_source)
        reason = self.cancel_reason or Reason.CLIENT_CANCEL
        outcome = self._outcome(Status.CANCELLED, result, first_token_at, cancel_reason=reason)
        return outcome, Cancelled(reason)

    def _outcome(self, status, result, first_token_at, **fields) -> generations.Outcome:
        if first_token_at is None and result is not None:
            first_token_at = result.first_token_at  # produced, but the client left before seeing it
        ttft_ms = int((first_token_at - self._accepted_at) * 1000) if first_token_at else None
        return generations.Outcome(
            status=status,
            finished_at=timezone.now(),
            duration_ms=self._ms_since(self._accepted_at),
            output_tokens=result.completion_tokens if result else 0,
            tokens_after_cancel=result.tokens_after_cancel if result else 0,
            first_token_at=self._wall_clock(first_token_at) if first_token_at else None,
            ttft_ms=ttft_ms,
            output_masked=dict(self._output_masked),
            **fields,
        )

    def close(self, outcome: generations.Outcome | None = None, first_token_at: float | None = None) -> asyncio.Future:
        """Stop the model if it still runs, give back the slot, record the end (once).
        Without an outcome the client went away. Every caller gets the same task."""
        if self._close_task is None:
            self._close_task = _keep_until_done(asyncio.ensure_future(self._close(outcome, first_token_at)))
        return self._close_task

    async def _close(self, outcome: generations.Outcome | None, first_token_at: float | None) -> None:
        try:
            if self._worker is None and self._ticket is not None:
                # Never started (cancelled, timed out or gone while queued): leave the queue,
                # or a slot released later would be granted to this dead ticket and leak.
                self.scheduler.withdraw(self._ticket)
            if outcome is None:  # the consumer left before a terminal event: the client went away
                self.request_cancel(Reason.CLIENT_DISCONNECT)
                result = await asyncio.wrap_future(self._worker) if self._worker is not None else None
                if result is not None and result.finish_reason == "error" and not self.cancel_reason:
                    outcome = self._outcome(Status.FAILED, result, first_token_at, error_code=result.error_code)
                else:
                    outcome, _ = self._stopped_outcome(result, first_token_at)
            self._finished = True
            counts = (self.disconnects, self.resumes)
            if counts != (0, 0):
                outcome = replace(outcome, disconnects=counts[0], resumes=counts[1])
            await generations.generation_finish(generation=self.record, outcome=outcome)
            self.counts_recorded = counts
        finally:
            self._finished = True
            active_runs.discard(self)

    @property
    def close_started(self) -> bool:
        return self._close_task is not None

    def close_soon(self) -> None:
        """Thread-safe safety net for a run whose response will never be iterated (the client
        left before the first byte): schedule its close as a client disconnect."""
        if self.record is not None and not self._consumed and self._loop is not None and not self._loop.is_closed():
            # A fresh context: the caller's (a sync_to_async thread) would make the close's own
            # database calls think they are nested in it, and asgiref refuses that as a deadlock.
            self._loop.call_soon_threadsafe(self.close, context=contextvars.Context())

    def orphaned(self, grace: float) -> bool:
        """Open for over `grace` seconds, yet its response was never iterated."""
        return (
            self.record is not None
            and not self._consumed
            and self._close_task is None
            and time.monotonic() - self._accepted_at > grace
        )

    @staticmethod
    def _ms_since(start: float) -> int:
        return int((time.monotonic() - start) * 1000)

    @staticmethod
    def _wall_clock(monotonic_at: float):
        return timezone.now() - timedelta(seconds=time.monotonic() - monotonic_at)
