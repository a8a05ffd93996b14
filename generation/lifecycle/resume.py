"""Resumable runs: the generation keeps going while its client is away, for a grace period.

A `ResumableRun` drives its GenerationRun's events into an EventLog (after restoration and
the output guard, which therefore run once) from its own task, so the run no longer
depends on any connection. Readers attach with the last id they saw and detach when their
connection ends; one reader at a time (a new one supersedes the old, which is told so).
With no reader for `grace` seconds the run is cancelled as a client disconnect. After the
terminal event the log stays readable for `grace` seconds, then the run is forgotten.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import aclosing

from generation.models import Generation
from generation.records import generations

from .events import Error
from .refusals import RequestInvalid
from .replay import EventLog, Logged
from .runner import GenerationRun

logger = logging.getLogger(__name__)

SUPERSEDED = Error("superseded", "Another connection resumed this generation; this one is no longer served.")


class ResumeRefused(RequestInvalid):
    """A resume that cannot be served: 404 (unknown, or not the caller's), 409 (the run is
    not resumable), 410 (its resume window ended), 400 (a bad last event id)."""


def window_closed() -> ResumeRefused:
    return ResumeRefused(410, "resume_window_closed", "This generation can no longer be resumed.")


class _Reader:
    def __init__(self) -> None:
        self.superseded = False
        self.saw_terminal = False


class ResumableRun:
    """See module docstring. Create on the loop that owns `run`, after run.open()."""

    def __init__(self, run: GenerationRun, *, grace: float, max_events: int, max_bytes: int) -> None:
        self.run = run
        self.grace = grace
        self.log = EventLog(max_events=max_events, max_bytes=max_bytes)
        self._loop = asyncio.get_running_loop()
        self._reader: _Reader | None = None
        self._grace_timer: asyncio.TimerHandle | None = None
        self._counts_lock = asyncio.Lock()
        self.pump = asyncio.ensure_future(self._pump())
        self._arm_grace()  # nobody reads until the first response is iterated
        resumable_runs.add(self)

    @property
    def request_id(self) -> str:
        return str(self.run.request_id)

    async def _pump(self) -> None:
        try:
            async with aclosing(self.run.events()) as events:
                async for event in events:
                    self.log.append(event)
                    if self.log.overflowed and self._reader is None:
                        self.run.request_cancel(Generation.CancelReason.CLIENT_DISCONNECT)
        finally:
            self._cancel_grace()
            self.log.poke()
            # A finished run stays readable (its tail and terminal) for the grace period.
            self._loop.call_later(self.grace, resumable_runs.discard, self)

    # Readers ---------------------------------------------------------------------------

    def check_resume(self, after: int) -> None:
        """Raise ResumeRefused unless a reader may start after id `after`."""
        if after < 0 or after > self.log.last_seq:
            raise ResumeRefused(
                400, "invalid_request", "'last_event_id' is not an id this stream has sent.", "last_event_id"
            )
        if self.log.overflowed or after < self.log.first_seq - 1:
            raise window_closed()

    async def read(self, after: int, *, resume: bool = True) -> AsyncIterator[list[Logged]]:
        """Attach as the live reader and yield the events after id `after` in batches (what
        is available at once), to the terminal event or until superseded. `resume` is False
        for the request's own first response. A refused resume yields one error notice."""
        async with aclosing(self._follow(after, resume=resume, batches=True)) as batches:
            async for batch in batches:
                yield batch

    async def read_events(self, after: int, *, resume: bool = True) -> AsyncIterator[Logged]:
        """`read()` one event at a time."""
        async with aclosing(self._follow(after, resume=resume, batches=False)) as events:
            async for item in events:
                yield item

    async def _follow(self, after: int, *, resume: bool, batches: bool):
        try:
            self.check_resume(after)
        except ResumeRefused as refused:  # the window closed between the check and the first read
            notice = [Logged(None, Error(refused.code, refused.message))]
            yield notice if batches else notice[0]
            return
        reader = _Reader()
        previous, self._reader = self._reader, reader
        if previous is not None:
            previous.superseded = True
            self.log.poke()
        self._cancel_grace()
        if resume:
            self.run.resumes += 1
            if (written := self._counts_changed()) is not None:
                # The run had already ended: its record counts this resume before the reader sees the end.
                await asyncio.wait((written,))
        cursor = after
        try:
            while not reader.superseded:
                batch = self.log.after(cursor)
                if not batch:
                    await self.log.changed()
                    continue
                for item in [batch] if batches else batch:
                    yield item
                    # The consumer asked for more: what it was given has gone to its transport.
                    cursor = item[-1].seq if batches else item.seq
                    self.log.release_through(cursor)
                    if self.log.terminal is not None and cursor == self.log.terminal.seq:
                        reader.saw_terminal = True
                        return
                    if reader.superseded:
                        break
            notice = [Logged(None, SUPERSEDED)]
            yield notice if batches else notice[0]
        finally:
            self._detach(reader)

    def _detach(self, reader: _Reader) -> None:
        if self._reader is not reader:
            return  # superseded: the new reader owns the run now
        self._reader = None
        if reader.saw_terminal:
            return
        self.run.disconnects += 1
        self._counts_changed()
        if self.log.terminal is None:
            if self.log.overflowed:
                self.run.request_cancel(Generation.CancelReason.CLIENT_DISCONNECT)
            else:
                self._arm_grace()

    # Grace -----------------------------------------------------------------------------

    def _arm_grace(self) -> None:
        self._cancel_grace()
        self._grace_timer = self._loop.call_later(self.grace, self._grace_over)

    def _cancel_grace(self) -> None:
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None

    def _grace_over(self) -> None:
        self._grace_timer = None
        if self._reader is None and self.log.terminal is None:
            self.run.request_cancel(Generation.CancelReason.CLIENT_DISCONNECT)

    # Counters --------------------------------------------------------------------------

    def _counts_changed(self) -> asyncio.Future | None:
        """Counts that change after the row was finished are written on their own (the
        returned write); before that, the finish writes them."""
        if self.run.close_started:
            return asyncio.ensure_future(self._write_counts())
        return None

    async def _write_counts(self) -> None:
        async with self._counts_lock:
            await self.run.close()
            counts = (self.run.disconnects, self.run.resumes)
            if counts != self.run.counts_recorded and self.run.record is not None:
                try:
                    await generations.generation_connection_counts(
                        generation=self.run.record, disconnects=counts[0], resumes=counts[1]
                    )
                except Exception:  # noqa: BLE001 - the counts are operational detail; the stream goes on
                    logger.warning("resume: could not record the connection counts", exc_info=True)
                    return
                self.run.counts_recorded = counts


class ResumableRuns:
    """This process's resumable runs by request id, until their window ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, ResumableRun] = {}

    def add(self, run: ResumableRun) -> None:
        with self._lock:
            self._runs[run.request_id] = run

    def discard(self, run: ResumableRun) -> None:
        with self._lock:
            if self._runs.get(run.request_id) is run:
                del self._runs[run.request_id]

    def get(self, request_id: str) -> ResumableRun | None:
        with self._lock:
            return self._runs.get(str(request_id))

    def __len__(self) -> int:
        with self._lock:
            return len(self._runs)


resumable_runs = ResumableRuns()
