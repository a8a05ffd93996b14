"""Read a live SSE stream with the arrival time of every line, keep-alive comments included,
for tests that check how a stream travels (through a proxy, across timeouts). Only event
names and numbers are kept for assertions, never generated text."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from .sse import messages


@dataclass
class TimedStream:
    status: int
    headers: dict
    events: list[tuple[float, str, dict]] = field(default_factory=list)  # (seconds since sent, name, data)
    comments: list[float] = field(default_factory=list)
    cut: str = ""  # how the transport ended it, when it did not end cleanly

    def named(self, name: str) -> list[tuple[float, dict]]:
        return [(at, data) for at, event, data in self.events if event == name]

    def first(self, name: str) -> tuple[float, dict]:
        return self.named(name)[0]

    @property
    def terminals(self) -> list[tuple[str, dict]]:
        return [(event, data) for _, event, data in self.events if event in ("done", "cancelled", "error")]

    @property
    def request_id(self) -> str:
        return self.first("accepted")[1]["request_id"]


def read_stream(client: httpx.Client, url: str, body: dict, headers: dict, *,
                until: Callable[[TimedStream], bool] | None = None,
                on_event: Callable[[TimedStream], None] | None = None) -> TimedStream:
    """POST `body` to `url` and read the SSE stream to its end, or close it (a client
    disconnect) as soon as `until(stream)` is true. `on_event` runs after each event."""
    sent = time.monotonic()
    request = client.build_request("POST", url, json=body, headers=headers)
    response = client.send(request, stream=True)
    stream = TimedStream(response.status_code, dict(response.headers))

    def comment(_line: str) -> None:
        stream.comments.append(time.monotonic() - sent)

    try:
        if response.status_code != 200:
            response.read()
            return stream
        for message in messages(response.iter_lines(), on_comment=comment):
            stream.events.append((time.monotonic() - sent, message["event"], json.loads(message["data"])))
            if on_event:
                on_event(stream)
            if until and until(stream):
                break
    except httpx.TransportError as exc:
        stream.cut = type(exc).__name__
    finally:
        response.close()
    return stream
