"""A small SSE reader over httpx for tests and benchmarks."""
from __future__ import annotations

import json
from collections.abc import Iterator

import httpx


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
