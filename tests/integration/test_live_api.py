"""End to end over a real daphne server with the real Gemma 3 270M model."""
from __future__ import annotations

import time

import httpx
import pytest

from tests.support.live import assert_never_seen
from tests.support.sse import iter_events

pytestmark = pytest.mark.integration
CANARY = "ZX-CANARY-4471 supplier Veltrano net 45"
PROMPT = f"Internal note: {CANARY}.\nWrite a two sentence product description for a cedar cutting board:"


def stream(server, body, *, stop_after=None, timeout=120):
    """POST and read events; with `stop_after(events)` the client hangs up early."""
    events = []
    with httpx.Client(timeout=timeout) as client:
        with client.stream("POST", f"{server.url}/api/v1/generations", json=body, headers=server.headers()) as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"] == "text/event-stream"
            for event in iter_events(response):
                events.append(event)
                if stop_after and stop_after(events):
                    break  # leaving the block closes the connection
    server.outputs.append("".join(data["text"] for name, data in events if name == "delta"))
    return events


def test_full_stream_matches_in_process_llama(sluice_server):
    events = stream(sluice_server, {"prompt": PROMPT, "max_tokens": 40, "temperature": 0})
    names = [name for name, _ in events]
    assert names[:2] == ["accepted", "started"] and names[-1] == "done"
    assert names.count("done") == 1 and "error" not in names and "cancelled" not in names
    text = "".join(data["text"] for name, data in events if name == "delta")
    done = events[-1][1]
    assert done["usage"]["completion_tokens"] == 40 and done["finish_reason"] == "length"

    from bench.harness import reference_llama
    from generation.backends.model_files import embedded_model_file

    llm = reference_llama(model_path=str(embedded_model_file().path), n_ctx=1024, verbose=False)
    expected = llm.create_completion(PROMPT, max_tokens=40, temperature=0)["choices"][0]["text"]
    assert text == expected  # the server streams exactly what the model generates

    row = sluice_server.row(events[0][1]["request_id"])
    assert (row["status"], row["channel"], row["output_tokens"], row["finish_reason"]) == ("completed", "api", 40, "length")
    assert row["prompt_tokens"] == done["usage"]["prompt_tokens"] and row["prompt_chars"] == len(PROMPT)
    assert row["model_name"] == "gemma-3-270m-q4_k_m" and len(row["model_version"]) == 64


def test_json_mode(sluice_server):
    response = httpx.post(
        f"{sluice_server.url}/api/v1/generations",
        json={"prompt": PROMPT, "max_tokens": 12, "temperature": 0, "stream": False},
        headers=sluice_server.headers(), timeout=60,
    )
    body = response.json()
    assert response.status_code == 200 and body["status"] == "completed"
    assert body["usage"]["completion_tokens"] == 12 and body["text"]
    sluice_server.outputs.append(body["text"])
    assert sluice_server.row(body["id"])["status"] == "completed"


def test_disconnect_mid_stream_frees_the_model_within_a_token(sluice_server):
    events = stream(
        sluice_server,
        {"prompt": PROMPT, "max_tokens": 400, "temperature": 0.7, "seed": 3},
        stop_after=lambda evs: sum(name == "delta" for name, _ in evs) >= 5,
    )
    request_id = events[0][1]["request_id"]
    row = sluice_server.row(request_id)
    assert (row["status"], row["cancel_reason"]) == ("cancelled", "client_disconnect")
    assert row["tokens_after_cancel"] <= 1
    assert 5 <= row["output_tokens"] < 60
    # One slot, no queue: the next request is only accepted if the slot is free again.
    follow_up = stream(sluice_server, {"prompt": "Hi", "max_tokens": 3})
    assert follow_up[0][1]["queue_position"] == 0 and follow_up[-1][0] == "done"


def test_disconnect_during_prompt_processing_stops_between_batches(sluice_server):
    long_prompt = "Supplier terms and product notes. " * 440  # about 3,100 tokens: several batches
    started = time.monotonic()
    events = stream(sluice_server, {"prompt": long_prompt, "max_tokens": 50}, stop_after=lambda evs: evs[-1][0] == "started")
    hung_up = time.monotonic()
    row = sluice_server.row(events[0][1]["request_id"])
    assert (row["status"], row["cancel_reason"], row["output_tokens"]) == ("cancelled", "client_disconnect", 0)
    assert row["prompt_tokens"] > 2500
    follow_up = stream(sluice_server, {"prompt": "Hi", "max_tokens": 2})
    assert follow_up[-1][0] == "done"
    assert hung_up - started < 5


def test_bad_inputs_over_http(sluice_server):
    url = f"{sluice_server.url}/api/v1/generations"
    cases = [
        (dict(content=b"{oops", headers={"Content-Type": "application/json"}), 400, "invalid_json"),
        (dict(content=b'{"prompt": "\xff"}', headers={"Content-Type": "application/json"}), 400, "invalid_encoding"),
        (dict(json={"prompt": CANARY, "max_tokens": -1}), 400, "invalid_request"),
        (dict(json={"prompt": CANARY, "temperature": 9}), 400, "invalid_request"),
        (dict(json={"prompt": CANARY, "surprise": True}), 400, "invalid_request"),
        (dict(json={"prompt": CANARY * 600}), 413, "prompt_too_large"),
        (dict(json={"prompt": "word " * 3200, "max_tokens": 1024}), 400, "context_length_exceeded"),
        (dict(content=CANARY.encode(), headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type"),
    ]
    for kwargs, status, code in cases:
        headers = {**sluice_server.headers(), **kwargs.pop("headers", {})}
        response = httpx.post(url, headers=headers, timeout=30, **kwargs)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), kwargs
        assert CANARY not in response.text
    assert httpx.get(url, headers=sluice_server.headers()).status_code == 405


def test_api_key_is_required(sluice_server):
    url = f"{sluice_server.url}/api/v1/generations"
    for headers in ({}, {"Authorization": "Bearer sluice_00000000_nope"}, {"Authorization": sluice_server.api_key}):
        response = httpx.post(url, json={"prompt": CANARY}, headers=headers, timeout=30)
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
        assert CANARY not in response.text


def test_no_prompt_or_output_reaches_logs_or_database(sluice_server):
    """Runs last in this module: checks everything the earlier tests sent and received."""
    stream(sluice_server, {"prompt": PROMPT, "max_tokens": 30, "temperature": 0})
    time.sleep(0.3)
    log = sluice_server.log_path.read_text(errors="replace")
    dump = sluice_server.database_dump()
    assert "generation" in dump and '"request_id"' in log  # the records and log lines exist
    assert_never_seen(f"{log}\n{dump}", [CANARY, "Veltrano", "cedar cutting board"], sluice_server.outputs)
