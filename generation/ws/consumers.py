"""One WebSocket, one generation at a time: the client sends `generate` (the native API's
fields), `cancel` or `resume`; the server sends the native events as
{"event", "id", "data"} messages. A refused request gets one error message carrying the
HTTP status it would have had, then the socket closes with 4000 + that status
(docs/api.md lists the codes). Runs go through the same lifecycle as the SSE API."""
from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from generation.api.validation import validate_generation
from generation.http.bodies import parse_json_body
from generation.http.errors import refusal
from generation.lifecycle.events import Event
from generation.lifecycle.intake import open_run
from generation.lifecycle.refusals import REFUSALS, RequestInvalid
from generation.lifecycle.relay import make_resumable, open_resume
from generation.lifecycle.replay import Logged
from generation.lifecycle.runner import GenerationRun
from generation.lifecycle.runtime import active_runs
from generation.models import Generation
from generation.ops.startup import start_listeners
from generation.records.api_keys import api_key_authenticate
from generation.records.generations import Caller

CLOSE_BASE = 4000  # close code = 4000 + the HTTP status the refusal would have had


async def authenticate(scope) -> Caller:
    """`Authorization: Bearer <key>` on the handshake, else the session's signed-in user."""
    headers = dict(scope.get("headers", []))
    header = headers.get(b"authorization", b"").decode("latin-1")
    if header:
        scheme, _, raw_key = header.partition(" ")
        caller = await api_key_authenticate(raw_key=raw_key.strip()) if scheme.lower() == "bearer" else None
        if caller is None:
            raise RequestInvalid(401, "unauthorized", "The API key is not valid or has been revoked.")
        return caller
    user = scope.get("user")
    if user is not None and user.is_authenticated:
        return Caller(user_id=user.pk)
    raise RequestInvalid(401, "unauthorized", "Sign in, or send 'Authorization: Bearer <API key>' on the handshake.")


async def numbered(events: AsyncIterator[Event]) -> AsyncIterator[Logged]:
    """A plain run's events with their stream ids."""
    sequence = 0
    async with aclosing(events) as stream:
        async for event in stream:
            sequence += 1
            yield Logged(sequence, event)


class GenerationConsumer(AsyncJsonWebsocketConsumer):
    caller: Caller | None = None
    run: GenerationRun | None = None
    streaming: asyncio.Task | None = None

    async def connect(self) -> None:
        start_listeners()  # cross-process cancels reach the runs served on this loop
        await self.accept()
        try:
            self.caller = await authenticate(self.scope)
        except RequestInvalid as exc:
            await self.refuse(exc)

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        if self.caller is None:
            return
        try:
            if text_data is None:
                raise RequestInvalid(415, "unsupported_media_type", "Send JSON text messages.")
            if len(text_data) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
                raise RequestInvalid(413, "request_too_large", "The message is too large.")
            message = parse_json_body(text_data.encode("utf-8", "surrogatepass"), "application/json")
            await self.receive_json(message)
        except REFUSALS as exc:
            await self.refuse(exc)

    async def receive_json(self, content, **kwargs) -> None:
        kind = content.pop("type", None)
        if kind == "cancel":
            if self.run is not None:
                self.run.request_cancel(Generation.CancelReason.CLIENT_CANCEL)
            return
        if kind not in ("generate", "resume"):
            raise RequestInvalid(400, "invalid_request", "'type' must be generate, cancel or resume.", "type")
        if self.streaming is not None and not self.streaming.done():
            raise RequestInvalid(409, "generation_in_progress", "This socket is already streaming a generation.")
        if kind == "generate":
            events = await self.generate(content)
        else:
            events = await self.resume(content)
        self.streaming = asyncio.ensure_future(self.stream(events))

    async def generate(self, content: dict) -> AsyncIterator[Logged]:
        if active_runs.draining:
            raise RequestInvalid(503, "shutting_down", "This server is shutting down. Retry shortly.")
        payload = validate_generation(content)
        channel = Generation.Channel.WEB if self.caller.api_key_id is None else Generation.Channel.API
        self.run = await open_run(
            caller=self.caller, channel=channel, fields={"prompt": payload.prompt}, params=payload.params,
            locale=payload.locale,
        )
        if payload.resumable:
            return make_resumable(self.run).read_events(0, resume=False)
        return numbered(self.run.events())

    async def resume(self, content: dict) -> AsyncIterator[Logged]:
        request_id, after = content.get("request_id"), content.get("last_event_id", 0)
        try:
            request_id = uuid.UUID(request_id) if isinstance(request_id, str) and len(request_id) <= 64 else None
        except ValueError:
            request_id = None
        if request_id is None:  # as the HTTP route answers a malformed id
            raise RequestInvalid(404, "not_found", "No generation with that id belongs to you.")
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise RequestInvalid(400, "invalid_request", "'last_event_id' must be a whole number.", "last_event_id")
        return await open_resume(request_id=str(request_id), caller=self.caller, after=after)

    async def stream(self, events: AsyncIterator[Logged]) -> None:
        async with aclosing(events) as items:
            async for item in items:
                await self.send(text_data=json.dumps(
                    {"event": item.event.name, "id": item.seq, "data": item.event.data()},
                    ensure_ascii=False, separators=(",", ":"),
                ))
        self.run = None

    async def refuse(self, exc: Exception) -> None:
        """The error the HTTP API would have answered, as one message, then close."""
        response = refusal(exc)
        data = {"status": response.status_code, **json.loads(response.content)["error"]}
        if response.has_header("Retry-After"):
            data["retry_after"] = int(response["Retry-After"])
        await self.send_json({"event": "error", "id": None, "data": data})
        await self.close(code=CLOSE_BASE + response.status_code)
        await self.stop_streaming()  # the socket is closing: a run in flight lost its reader

    async def disconnect(self, code) -> None:
        await self.stop_streaming()

    async def stop_streaming(self) -> None:
        if self.streaming is not None and not self.streaming.done():
            self.streaming.cancel()  # a plain run is cancelled as a disconnect; a resumable one waits
            try:
                await self.streaming
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - the run records its own end
                pass
        if self.run is not None:
            self.run.close_soon()  # a run whose events were never read
