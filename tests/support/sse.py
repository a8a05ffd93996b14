"""The tests' one SSE reader: whole bodies (native events or OpenAI's data-only stream) and
live httpx streams. Keep-alive comments are skipped, or reported to `on_comment`."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator

import httpx

LONG_BODY = {"prompt": "Write a long catalogue introduction for garden furniture:", "max_tokens": 600}


def messages(lines: Iterable[str], on_comment: Callable[[str], None] | None = None) -> Iterator[dict[str, str]]:
    """Each SSE message as its fields ({"id", "event", "data"} as present), from text lines;
    a comment line (a keep-alive) goes to `on_comment` when given."""
    fields: dict[str, str] = {}
    for line in lines:
        if not line:
            if fields:
                yield fields
            fields = {}
        elif line.startswith(":"):
            if on_comment is not None:
                on_comment(line)
        else:
            name, _, value = line.partition(": ")
            fields[name] = value
    if fields:
        yield fields


def parse_events(body: str | bytes) -> list[tuple[int, str, dict]]:
    """A whole native stream as (id, event, data)."""
    text = body.decode() if isinstance(body, bytes) else body
    return [(int(m["id"]), m["event"], json.loads(m["data"])) for m in messages(text.split("\n"))]


def parse_data(body: str | bytes) -> list:
    """A whole data-only stream (OpenAI's): each message's JSON, or the bare "[DONE]"."""
    text = body.decode() if isinstance(body, bytes) else body
    parsed = []
    for message in messages(text.split("\n")):
        assert set(message) == {"data"}, message
        parsed.append(message["data"] if message["data"] == "[DONE]" else json.loads(message["data"]))
    return parsed


def iter_events(response: httpx.Response) -> Iterator[tuple[str, dict]]:
    """Yield (event, data) from a live native stream as it arrives."""
    for message in messages(response.iter_lines()):
        yield message["event"], json.loads(message["data"])


def open_stream(client: httpx.Client, server, body: dict = LONG_BODY, headers: dict | None = None):
    """Start a generation (as the server's own key unless `headers` say otherwise) and read
    until it is producing text. Returns the open response, its live event iterator (dropping
    it would close the connection) and the request id. The caller closes the response."""
    response = client.send(
        client.build_request(
            "POST", f"{server.url}/api/v1/generations", json=body, headers=headers or server.headers()
        ),
        stream=True,
    )
    events = iter_events(response)
    request_id = next(data for name, data in events if name == "accepted")["request_id"]
    next(data for name, data in events if name == "delta")
    return response, events, request_id
