"""Drive the real ASGI application in-process, with a client that can hang up."""
from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass, field

from .sse import parse_data, parse_events


@dataclass
class AsgiResult:
    status: int = 0
    headers: dict = field(default_factory=dict)
    chunks: list = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def json(self):
        return json.loads(self.body)

    def events(self) -> list[tuple[int, str, dict]]:
        """Parsed SSE events as (id, name, data)."""
        return parse_events(self.body)

    def data(self) -> list:
        """A data-only SSE stream (OpenAI's): each message's JSON, or the bare "[DONE]"."""
        return parse_data(self.body)


async def call(
    path: str,
    *,
    method: str = "POST",
    body: bytes | dict | None = None,
    headers: dict | None = None,
    hang_up_when=None,
    hang_up_after: float | None = None,
    hang_up_on: asyncio.Event | None = None,
    timeout: float = 20.0,
) -> AsgiResult:
    """Send one request. `hang_up_when(result)` is checked after every body chunk; when it
    returns True the client disconnects (an ASGI http.disconnect). `hang_up_after` seconds
    disconnects whatever the response is doing by then; so does setting `hang_up_on`."""
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    headers = {"content-type": "application/json", **(headers or {})}
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    result = AsgiResult()
    hung_up = asyncio.Event()
    sent_body = False

    async def receive():
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body or b"", "more_body": False}
        await hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            result.status = message["status"]
            result.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            if message.get("body"):
                result.chunks.append(message["body"])
            if hang_up_when is not None and hang_up_when(result):
                hung_up.set()
                await asyncio.sleep(0)
            if not message.get("more_body"):
                hung_up.set()

    if hang_up_after is not None:
        asyncio.get_running_loop().call_later(hang_up_after, hung_up.set)
    if hang_up_on is not None:
        relay = asyncio.ensure_future(hang_up_on.wait())
        relay.add_done_callback(lambda _: hung_up.set())
    await asyncio.wait_for(application()(scope, receive, send), timeout)
    return result


async def finished_row(request_id, timeout: float = 2.0):
    """The Generation row once it is finished (it may be written just after the response ends)."""
    from generation.models import Generation

    for _ in range(int(timeout / 0.02)):
        row = await Generation.objects.aget(request_id=request_id)
        if row.finished_at:
            return row
        await asyncio.sleep(0.02)
    raise AssertionError(f"generation {request_id} still {row.status} after {timeout}s")


async def newest_row(timeout: float = 10.0):
    """The newest Generation row, once a request in flight has written it (under load that
    takes more than a moment)."""
    from generation.models import Generation

    for _ in range(int(timeout / 0.02)):
        row = await Generation.objects.order_by("-created_at").afirst()
        if row is not None:
            return row
        await asyncio.sleep(0.02)
    raise AssertionError(f"no generation row after {timeout}s")


@functools.cache
def application():
    """Built once: get_asgi_application() runs django.setup(), which re-applies LOGGING."""
    from django.core.handlers.asgi import ASGIHandler

    from generation.ops.startup import serving

    return serving(ASGIHandler())
