"""A small SSE reader over httpx for tests and benchmarks."""
from __future__ import annotations

import json
from collections.abc import Iterator

import httpx

LONG_BODY = {"prompt": "Write a long catalogue introduction for garden furniture:", "max_tokens": 600}


def iter_events(response: httpx.Response) -> Iterator[tuple[str, dict]]:
    """Yield (event, data) from a streaming response; keep-alive comments are skipped."""
    name, data = None, None
    for line in response.iter_lines():
        if not line:
            if name is not None:
                yield name, json.loads(data)
            name, data = None, None
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = line[6:]


def open_stream(client: httpx.Client, server, body: dict = LONG_BODY):
    """Start a generation and read until it is producing text. Returns the open response,
    its live event iterator (dropping it would close the connection) and the request id.
    The caller closes the response."""
    response = client.send(
        client.build_request("POST", f"{server.url}/api/v1/generations", json=body, headers=server.headers()),
        stream=True,
    )
    events = iter_events(response)
    request_id = next(data for name, data in events if name == "accepted")["request_id"]
    next(data for name, data in events if name == "delta")
    return response, events, request_id
