import asyncio
import json

import pytest

from generation.http.sse import KEEP_ALIVE, sse_frame, sse_stream
from generation.lifecycle.bridge import ThreadBridge
from generation.lifecycle.events import Accepted, Delta, Done


def test_sse_frame_has_id_event_and_one_json_data_line():
    frame = sse_frame(7, Delta("line one\nline two"))
    lines = frame.decode().split("\n")
    assert lines[0] == "id: 7"
    assert lines[1] == "event: delta"
    assert lines[2].startswith("data: ")
    assert json.loads(lines[2][6:]) == {"text": "line one\nline two"}
    assert frame.endswith(b"\n\n") and frame.count(b"\ndata: ") == 1


async def test_sse_stream_numbers_events_and_sends_keep_alives_when_idle():
    async def events():
        yield Accepted("r1", "m", 0)
        await asyncio.sleep(0.25)
        yield Done("stop", {}, {})

    chunks = [chunk async for chunk in sse_stream(events(), heartbeat=0.05)]
    assert chunks[0].startswith(b"id: 1\nevent: accepted")
    assert chunks[-1].startswith(b"id: 2\nevent: done")
    keep_alives = chunks[1:-1]
    assert keep_alives and all(chunk == KEEP_ALIVE for chunk in keep_alives)


async def test_closing_the_sse_stream_runs_the_producers_finally():
    cleaned = asyncio.Event()

    async def events():
        try:
            yield Accepted("r1", "m", 0)
            await asyncio.sleep(10)
            yield Done("stop", {}, {})
        finally:
            cleaned.set()

    stream = sse_stream(events(), heartbeat=0.01)
    assert (await anext(stream)).startswith(b"id: 1")
    assert await anext(stream) == KEEP_ALIVE  # the producer is now suspended mid-await
    await stream.aclose()
    assert cleaned.is_set()


async def test_thread_bridge_delivers_in_order_from_another_thread():
    bridge = ThreadBridge(asyncio.get_running_loop())
    await asyncio.to_thread(lambda: [bridge.put(i) for i in range(100)])
    assert [await bridge.get(timeout=1) for _ in range(100)] == list(range(100))
    assert bridge.get_nowait() is None


async def test_thread_bridge_wakes_a_waiting_consumer_for_every_item_and_times_out_when_idle():
    import threading
    import time

    bridge = ThreadBridge(asyncio.get_running_loop())
    with pytest.raises(TimeoutError):
        await bridge.get(timeout=0.01)
    received = []

    def produce():  # bursts and pauses, so items arrive both while the consumer waits and while it is busy
        for burst in range(50):
            for k in range(burst % 4 + 1):
                bridge.put((burst, k))
            time.sleep(0.001 * (burst % 3))

    producer = threading.Thread(target=produce)
    producer.start()
    expected = [(burst, k) for burst in range(50) for k in range(burst % 4 + 1)]
    while len(received) < len(expected):
        received.append(await bridge.get(timeout=5))
    producer.join()
    assert received == expected
    with pytest.raises(TimeoutError):
        await bridge.get(timeout=0.01)


async def test_data_framing_writes_data_lines_only_and_keeps_alive_when_events_show_nothing():
    from generation.http.sse import DONE, DataFraming, sse_data

    async def events():
        yield Accepted("r1", "m", 0)  # shown as nothing by this framing
        await asyncio.sleep(0.25)
        yield Delta("hi")
        yield Done("stop", {}, {})

    def payloads(event):
        if isinstance(event, Delta):
            return [{"text": event.text}]
        return [DONE] if isinstance(event, Done) else []

    chunks = [chunk async for chunk in sse_stream(events(), heartbeat=0.05, framing=DataFraming(payloads))]
    assert chunks[-2:] == [b'data: {"text":"hi"}\n\n', b"data: [DONE]\n\n"]
    assert chunks[:-2] and all(chunk == KEEP_ALIVE for chunk in chunks[:-2])
    assert sse_data({"a": "é"}) == 'data: {"a":"é"}\n\n'.encode()
