"""Resume a run wherever it runs. On this process the reader attaches to the run's log;
otherwise the request goes out on the channel layer (Redis with several processes), the
process that holds the run attaches a forwarder, and the events come back sealed
(lifecycle/sealing.py) to a channel of the process serving the resume.

Messages (all sealed; text only inside `events`):
  to the group:   attach {request_id, identity, after, reply}, detach {reply}
  to `reply`:     attached {holder}, refused {status, code, message}, events [[seq, name, data], ...], alive
  to `holder`:    reading {reply}, every READING_SECONDS while the reader's process lives

Either side notices the other's process dying without a word: the reader ends its stream
with `relay_lost` after SILENT_SECONDS without a message; the holder detaches a reader it
has not heard from in READER_SILENT_SECONDS, so the run's grace period starts.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import timedelta

from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from generation.models import Generation
from generation.records.generations import Caller
from generation.records.process import OWNER_ID

from .events import Error
from .replay import Logged
from .resume import ResumableRun, ResumeRefused, resumable_runs, window_closed
from .runner import GenerationRun
from .runtime import active_runs
from .sealing import Unsealable, seal, unseal

logger = logging.getLogger(__name__)
GROUP = "sluice.resume"
ANSWER_SECONDS = 3.0  # how long a resume waits for the process holding the run to answer
ALIVE_SECONDS = 5.0  # a forwarder with nothing to send says it is still there this often
SILENT_SECONDS = 20.0  # a relayed stream whose owner said nothing this long has lost it
READING_SECONDS = 5.0  # a relayed reader's process says it is still there this often
READER_SILENT_SECONDS = 20.0  # a reader not heard from this long is gone: detach it
_REJOIN_SECONDS = 3600  # group membership expires on some layers: rejoin now and then
_listener: tuple[asyncio.AbstractEventLoop, asyncio.Task] | None = None
_forwarders: dict[str, asyncio.Task] = {}  # by reply channel
_heard: dict[str, float] = {}  # by reply channel: when its reader's process last said it reads

RELAY_LOST = Error("relay_lost", "The server running this generation stopped answering. Resume again shortly.")


class RelayedEvent:
    """An event as the owning process relayed it: the same name, id and data."""

    def __init__(self, name: str, data: dict) -> None:
        self.name = name
        self.terminal = name in ("done", "cancelled", "error")
        self._data = data

    def data(self) -> dict:
        return self._data


# Serving a resume -------------------------------------------------------------------------


async def open_resume(*, request_id: str, caller: Caller, after: int) -> AsyncIterator[Logged]:
    """The events after id `after` of the caller's run `request_id`, wherever it runs, to
    its terminal event. Raises ResumeRefused (404 not the caller's or unknown, 409 not
    resumable, 410 window over, 400 bad id) before anything is streamed."""
    request_id = str(request_id)
    local = resumable_runs.get(request_id)
    if local is not None and caller.identity is not None and local.run.caller.identity == caller.identity:
        local.check_resume(after)
        return local.read_events(after)
    row = await Generation.objects.filter(
        request_id=request_id, user_id=caller.user_id, api_key_id=caller.api_key_id
    ).afirst()
    if row is None or caller.identity is None:
        raise ResumeRefused(404, "not_found", "No generation with that id belongs to you.")
    grace = timedelta(seconds=settings.SLUICE_RESUME_GRACE_SECONDS)
    if row.finished_at is not None and row.finished_at < timezone.now() - grace:
        raise window_closed()
    if row.owner == OWNER_ID:
        if active_runs.get(request_id) is not None:
            raise not_resumable()
        raise window_closed()
    return await _remote_events(request_id, caller.identity, after)


def not_resumable() -> ResumeRefused:
    return ResumeRefused(409, "not_resumable", "This generation was not started with \"resumable\": true.")


class _Inbox:
    """One channel's messages, received by a task of its own: cancelling a receive on the
    Redis pub/sub layer unsubscribes the channel, so timeouts wait on this queue instead."""

    def __init__(self, layer, channel: str) -> None:
        self.layer, self.channel = layer, channel
        self.queue: asyncio.Queue = asyncio.Queue()
        self._task = asyncio.ensure_future(self._receive())
        self._reading: asyncio.Task | None = None

    async def _receive(self) -> None:
        while True:
            await self.queue.put(await self.layer.receive(self.channel))

    async def get(self, timeout: float) -> dict:
        """The next message; TimeoutError after `timeout`. Not wait_for: on Python 3.11 it
        swallows a cancellation that arrives as the message does, and a listener cancelled at
        shutdown would then wait another hour."""
        getter = asyncio.ensure_future(self.queue.get())
        try:
            done, _ = await asyncio.wait((getter,), timeout=timeout)
        finally:
            getter.cancel()
        if not done:
            raise TimeoutError
        return getter.result()

    def tell_holder(self, holder: str) -> None:
        """Tell the holding process, until closed, that this reader's process still reads."""
        self._reading = asyncio.ensure_future(self._keep_reading(holder))

    async def _keep_reading(self, holder: str) -> None:
        while True:
            try:
                await self.layer.send(holder, {"type": "resume.reading", "sealed": seal({"reply": self.channel})})
            except Exception:  # noqa: BLE001 - a broken layer: the holder detaches this reader in time
                logger.warning("resume relay: could not tell the holder this reader still reads")
            await asyncio.sleep(READING_SECONDS)

    def close(self) -> None:
        self._task.cancel()
        if self._reading is not None:
            self._reading.cancel()


async def _remote_events(request_id: str, identity: str, after: int) -> AsyncIterator[Logged]:
    layer = get_channel_layer()
    reply = await layer.new_channel()
    inbox = _Inbox(layer, reply)
    request = {"request_id": request_id, "identity": identity, "after": after, "reply": reply}
    try:
        await layer.group_send(GROUP, {"type": "resume.attach", "sealed": seal(request)})
        while True:  # answers from processes that do not hold the run are refusals only
            message = await inbox.get(ANSWER_SECONDS)
            if message.get("type") == "resume.attached" and (attached := _opened(message)) is not None:
                inbox.tell_holder(attached["holder"])
                break
            if message.get("type") == "resume.refused":
                answer = _opened(message)
                raise ResumeRefused(answer["status"], answer["code"], answer["message"])
    except TimeoutError:
        inbox.close()
        raise window_closed() from None
    except BaseException:
        inbox.close()
        raise
    return _relayed(layer, inbox, after)


def _opened(message: dict):
    try:
        return unseal(message.get("sealed", ""))
    except Unsealable:
        return None


async def _relayed(layer, inbox: _Inbox, after: int) -> AsyncIterator[Logged]:
    expected = after + 1
    try:
        while True:
            try:
                message = await inbox.get(SILENT_SECONDS)
            except TimeoutError:
                yield Logged(None, RELAY_LOST)
                return
            if message.get("type") != "resume.events":
                continue
            items = _opened(message)
            if items is None:  # never skip: a batch that cannot be read ends the stream
                yield Logged(None, RELAY_LOST)
                return
            for seq, name, data in items:
                if seq is not None and seq != expected:
                    yield Logged(None, RELAY_LOST)
                    return
                event = RelayedEvent(name, data)
                yield Logged(seq, event)
                if seq is None or event.terminal:
                    return
                expected += 1
    finally:
        inbox.close()
        try:  # the holder would otherwise keep this reader attached until the terminal event
            await layer.group_send(GROUP, {"type": "resume.detach", "sealed": seal({"reply": inbox.channel})})
        except Exception:  # noqa: BLE001 - a broken layer: the holder's forwarder fails on its next send
            logger.warning("resume relay: could not tell the holder this reader left")


# Holding the run -------------------------------------------------------------------------


def make_resumable(run: GenerationRun) -> ResumableRun:
    """Keep `run` going without its connection, within the settings' grace and bounds, and
    answer resumes of it from other processes."""
    ensure_listener()
    return ResumableRun(
        run,
        grace=settings.SLUICE_RESUME_GRACE_SECONDS,
        max_events=settings.SLUICE_RESUME_MAX_EVENTS,
        max_bytes=settings.SLUICE_RESUME_MAX_BYTES,
    )


def ensure_listener() -> None:
    """Listen for resumes of this process's runs, on the running loop, once (called as a
    resumable run starts)."""
    global _listener
    loop = asyncio.get_running_loop()
    if _listener is None or _listener[0] is not loop or _listener[1].done():
        _listener = (loop, loop.create_task(_listen(), name="sluice-resume-listener"))


async def _listen() -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    inbox = _Inbox(layer, channel)
    await layer.group_add(GROUP, channel)
    while True:
        try:
            message = await inbox.get(_REJOIN_SECONDS)
        except TimeoutError:
            await layer.group_add(GROUP, channel)
            continue
        body = _opened(message)
        if body is None:
            continue
        kind = message.get("type")
        if kind == "resume.attach":
            await _attach(layer, body, holder=channel)
        elif kind == "resume.reading" and body.get("reply") in _heard:
            _heard[body["reply"]] = time.monotonic()
        elif kind == "resume.detach" and (task := _forwarders.pop(body.get("reply", ""), None)):
            task.cancel()


async def _attach(layer, body: dict, *, holder: str) -> None:
    request_id, reply, after = str(body.get("request_id")), body.get("reply", ""), body.get("after", 0)
    held = resumable_runs.get(request_id)
    run = held.run if held is not None else active_runs.get(request_id)
    if run is None:
        return  # not this process's: the one that holds it answers
    try:
        if run.caller.identity != body.get("identity") or run.caller.identity is None:
            raise ResumeRefused(404, "not_found", "No generation with that id belongs to you.")
        if held is None:
            raise not_resumable()
        held.check_resume(after)
    except ResumeRefused as refused:
        answer = {"status": refused.status, "code": refused.code, "message": refused.message}
        await layer.send(reply, {"type": "resume.refused", "sealed": seal(answer)})
        return
    await layer.send(reply, {"type": "resume.attached", "sealed": seal({"holder": holder})})
    _heard[reply] = time.monotonic()
    task = asyncio.ensure_future(_forward(layer, held, after, reply))
    _forwarders[reply] = task
    task.add_done_callback(lambda _: _forgotten(reply, task))


def _forgotten(reply: str, task: asyncio.Task) -> None:
    if _forwarders.get(reply) is task:
        del _forwarders[reply]
    if reply not in _forwarders:
        _heard.pop(reply, None)


async def _forward(layer, held: ResumableRun, after: int, reply: str) -> None:
    pending: asyncio.Future | None = None
    async with aclosing(held.read(after)) as batches:
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(batches))
                done, _ = await asyncio.wait((pending,), timeout=min(ALIVE_SECONDS, READER_SILENT_SECONDS))
                if time.monotonic() - _heard.get(reply, 0.0) > READER_SILENT_SECONDS:
                    logger.warning("resume relay: the reader's process stopped answering; it is detached")
                    return
                if not done:
                    await layer.send(reply, {"type": "resume.alive"})
                    continue
                try:
                    batch = pending.result()
                except StopAsyncIteration:
                    return
                pending = None
                items = [[item.seq, item.event.name, item.event.data()] for item in batch]
                await layer.send(reply, {"type": "resume.events", "sealed": seal(items)})
        except Exception:  # noqa: BLE001 - a broken layer ends this reader; the run's grace takes over
            logger.warning("resume relay: sending failed; the reader is detached")
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                try:
                    await pending
                except (asyncio.CancelledError, StopAsyncIteration):
                    pass
