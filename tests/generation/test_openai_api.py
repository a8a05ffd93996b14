"""The OpenAI-compatible API (/v1) through the real ASGI stack, with the scripted backend:
models, chunk sequence and [DONE], usage, non-streaming bodies, ends other than done,
disconnects, overload and the records."""
import asyncio

import pytest

from generation.models import Generation
from tests.support.asgi import call, finished_row, newest_row

pytestmark = pytest.mark.django_db(transaction=True)
CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"
CANARY = "CANARY-88d2-cedar-margin"


def chat(content="Describe a kettle", **extra):
    return {"model": "scripted", "messages": [{"role": "user", "content": content}], **extra}


def text_of(payloads):
    chunks = [p for p in payloads if isinstance(p, dict) and p.get("choices")]
    return "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks)


async def latest_row():
    return await Generation.objects.alatest("created_at")


async def test_models_lists_the_loaded_model(scripted, auth_headers):
    result = await call("/v1/models", method="GET", headers=auth_headers)
    assert result.status == 200
    body = result.json()
    assert body["object"] == "list" and len(body["data"]) == 1
    model = body["data"][0]
    assert (model["id"], model["object"], model["owned_by"]) == ("scripted", "model", "sluice")
    assert isinstance(model["created"], int)
    detail = await call("/v1/models/scripted", method="GET", headers=auth_headers)
    assert detail.status == 200 and detail.json() == model
    missing = await call("/v1/models/gpt-4o", method="GET", headers=auth_headers)
    assert missing.status == 404 and missing.json()["error"]["code"] == "model_not_found"


async def test_chat_stream_follows_openai_chunks_then_done(scripted, auth_headers):
    result = await call(CHAT, body=chat(stream=True, max_tokens=50), headers=auth_headers)
    assert result.status == 200
    assert result.headers["content-type"] == "text/event-stream"
    assert result.headers["cache-control"] == "no-cache, no-store" and result.headers["x-accel-buffering"] == "no"
    request_id = result.headers["x-request-id"]
    payloads = result.data()
    assert payloads[-1] == "[DONE]" and payloads.count("[DONE]") == 1
    chunks = payloads[:-1]
    assert {c["id"] for c in chunks} == {f"chatcmpl-{request_id}"}
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and {c["model"] for c in chunks} == {"scripted"}
    assert len({c["created"] for c in chunks}) == 1 and all("usage" not in c for c in chunks)
    assert chunks[0]["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                     "finish_reason": None}]
    assert text_of(chunks) == "Hello, world."
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]
    row = await Generation.objects.aget(request_id=request_id)
    assert (row.channel, row.status, row.finish_reason, row.output_tokens) == ("openai", "completed", "stop", 4)
    assert row.api_key_id is not None and row.prompt_chars == len("Describe a kettle")
    assert scripted.prompts[-1] == "user: Describe a kettle\nassistant:"  # the chat template's prompt


async def test_include_usage_adds_a_usage_chunk_before_done(scripted, auth_headers):
    body = chat(stream=True, stream_options={"include_usage": True}, max_tokens=3)
    payloads = (await call(CHAT, body=body, headers=auth_headers)).data()
    assert payloads[-1] == "[DONE]"
    *chunks, usage_chunk, _ = payloads
    assert all(c["usage"] is None for c in chunks) and chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


async def test_chat_without_stream_is_one_chat_completion(scripted, auth_headers):
    result = await call(CHAT, body=chat(max_completion_tokens=2, user="u-1", metadata={"k": "v"}), headers=auth_headers)
    assert result.status == 200 and result.headers["content-type"] == "application/json"
    body = result.json()
    assert body["id"] == f"chatcmpl-{result.headers['x-request-id']}" and body["object"] == "chat.completion"
    assert body["model"] == "scripted" and body["system_fingerprint"].startswith("fp_")
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Hello,", "refusal": None},
                                "logprobs": None, "finish_reason": "length"}]
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


async def test_roles_reach_the_chat_template_and_neutral_fields_are_accepted(scripted, auth_headers):
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "name": "x", "content": [{"type": "text", "text": t} for t in ("Name a", "tree.")]},
        {"role": "assistant", "content": "Oak.", "refusal": None, "tool_calls": [], "annotations": []},
        {"role": "user", "content": "Another?"},
    ]
    neutral = {"n": 1, "frequency_penalty": 0, "presence_penalty": 0.0, "logprobs": False, "tool_choice": "none",
               "response_format": {"type": "text"}, "store": False, "parallel_tool_calls": True, "seed": 7}
    result = await call(CHAT, body={"model": "scripted", "messages": messages, **neutral}, headers=auth_headers)
    assert result.status == 200, result.body
    assert scripted.prompts[-1] == "system: Be brief.\nuser: Name a\ntree.\nassistant: Oak.\nuser: Another?\nassistant:"
    params = scripted.calls[-1]["params"]
    assert (params.temperature, params.top_p, params.seed, params.max_tokens) == (1.0, 1.0, 7, 256)


async def test_legacy_completions_stream_and_json(scripted, auth_headers):
    body = {"model": "scripted", "prompt": "Once upon", "stream": True, "stop": ["world"], "temperature": 0}
    result = await call(COMPLETIONS, body=body, headers=auth_headers)
    payloads = result.data()
    assert payloads[-1] == "[DONE]"
    chunks = payloads[:-1]
    assert {c["object"] for c in chunks} == {"text_completion"}
    assert {c["id"] for c in chunks} == {f"cmpl-{result.headers['x-request-id']}"}
    assert "".join(c["choices"][0]["text"] for c in chunks) == "Hello, "
    assert chunks[-1]["choices"][0] == {"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}
    assert scripted.prompts[-1] == "Once upon"  # the prompt as sent: no chat template
    whole = (await call(COMPLETIONS, body={"model": "scripted", "prompt": "Once upon"}, headers=auth_headers)).json()
    assert whole["object"] == "text_completion" and whole["choices"][0]["text"] == "Hello, world."
    assert whole["usage"]["completion_tokens"] == 4


async def test_a_prompt_list_of_one_string_is_one_completion(scripted, auth_headers):
    """langchain's OpenAI class always sends `prompt` as a list."""
    body = {"model": "scripted", "prompt": ["Once upon"], "max_tokens": 8}
    whole = (await call(COMPLETIONS, body=body, headers=auth_headers)).json()
    assert whole["choices"][0]["text"] == "Hello, world." and len(whole["choices"]) == 1
    assert scripted.prompts[-1] == "Once upon"
    two = await call(COMPLETIONS, body={**body, "prompt": ["Once upon", "A time"]}, headers=auth_headers)
    assert two.status == 400 and "exactly one string" in two.json()["error"]["message"]


async def test_keep_alive_comments_while_the_model_is_quiet(scripted, auth_headers, settings):
    settings.SLUICE_HEARTBEAT_SECONDS = 0.05
    scripted.token_delay = 0.12
    scripted.script = ["a", "b"]
    result = await call(CHAT, body=chat(stream=True), headers=auth_headers)
    assert b": keep-alive\n\n" in result.chunks
    assert result.data()[-1] == "[DONE]" and text_of(result.data()) == "ab"


def assert_ends_with_error_chunk(result, code, kind):
    payloads = result.data()
    assert "[DONE]" not in payloads
    error = payloads[-1]["error"]
    assert (error["code"], error["type"], error["param"]) == (code, kind, None) and error["message"]
    assert all("error" not in p for p in payloads[:-1])
    return error


async def test_a_cancelled_stream_ends_with_an_error_chunk_and_no_done(scripted, auth_headers):
    scripted.script = ["x"] * 300
    scripted.token_delay = 0.01
    stream = asyncio.create_task(call(CHAT, body=chat(stream=True, max_tokens=300), headers=auth_headers))
    row = await newest_row()
    cancel = await call(f"/api/v1/generations/{row.request_id}/cancel", headers=auth_headers)  # the native endpoint
    assert cancel.status == 202
    error = assert_ends_with_error_chunk(await stream, "cancelled", "invalid_request_error")
    assert "client_cancel" in error["message"]
    await row.arefresh_from_db()
    assert (row.status, row.cancel_reason, row.channel) == ("cancelled", "client_cancel", "openai")


async def test_a_stall_ends_with_a_timeout_error_chunk(scripted, auth_headers, settings):
    settings.SLUICE_STALL_TIMEOUT_SECONDS = 0.2
    scripted.stall_after = 1
    result = await call(CHAT, body=chat(stream=True), headers=auth_headers)
    error = assert_ends_with_error_chunk(result, "timeout", "server_error")
    assert error["timeout_source"] == "stall"
    assert text_of(result.data()) == "Hello"
    row = await latest_row()
    assert (row.status, row.timeout_source) == ("timed_out", "stall")


async def test_a_backend_failure_ends_with_an_error_chunk(scripted, auth_headers):
    scripted.fail_after = 1
    result = await call(COMPLETIONS, body={"model": "scripted", "prompt": "x", "stream": True}, headers=auth_headers)
    assert_ends_with_error_chunk(result, "generation_failed", "server_error")
    assert (await latest_row()).status == "failed"


async def test_non_streaming_failures_use_the_native_status_codes(scripted, auth_headers, settings):
    settings.SLUICE_STALL_TIMEOUT_SECONDS = 0.2
    scripted.stall_after = 1
    result = await call(CHAT, body=chat(), headers=auth_headers)
    error = result.json()["error"]
    assert result.status == 504
    assert (error["code"], error["type"], error["timeout_source"]) == ("timeout", "server_error", "stall")
    assert result.headers["x-request-id"]
    scripted.stall_after, scripted.fail_after = None, 1
    result = await call(CHAT, body=chat(), headers=auth_headers)
    assert result.status == 500 and result.json()["error"]["code"] == "generation_failed"


async def test_disconnect_mid_stream_cancels_the_run(scripted, auth_headers):
    scripted.script = ["word "] * 200
    scripted.token_delay = 0.01
    result = await call(
        CHAT, body=chat(stream=True, max_tokens=500), headers=auth_headers,
        hang_up_when=lambda r: r.body.count(b'"content":"word') >= 3,
    )
    assert b"[DONE]" not in result.body and b'"error"' not in result.body
    row = await Generation.objects.aget(request_id=result.headers["x-request-id"])
    assert (row.status, row.cancel_reason, row.channel) == ("cancelled", "client_disconnect", "openai")
    assert 3 <= row.output_tokens < 20 and row.tokens_after_cancel <= 1
    from generation.lifecycle.runtime import get_backend, get_scheduler

    assert get_backend().busy_slots() == set() and get_scheduler().snapshot()["slots_busy"] == 0


async def test_a_client_that_closes_at_done_leaves_a_completed_record(scripted, auth_headers):
    for _ in range(5):  # the openai client closes the connection as soon as it reads [DONE]
        result = await call(
            CHAT, body=chat(stream=True), headers=auth_headers, hang_up_when=lambda r: b"[DONE]" in r.body
        )
        row = await finished_row(result.headers["x-request-id"])
        assert (row.status, row.channel) == ("completed", "openai")


async def test_a_full_queue_answers_503_with_retry_after(scripted, auth_headers, settings, caplog):
    settings.SLUICE_MAX_QUEUE = 0
    scripted.script = ["x"] * 50
    scripted.token_delay = 0.02
    first = asyncio.create_task(call(CHAT, body=chat(stream=True), headers=auth_headers))
    await asyncio.sleep(0.1)
    result = await call(CHAT, body=chat(), headers=auth_headers)
    assert result.status == 503 and int(result.headers["retry-after"]) >= 1
    assert result.json()["error"]["code"] == "overloaded" and result.json()["error"]["type"] == "server_error"
    assert not [r for r in caplog.records if r.levelno >= 40]  # an expected refusal: WARNING, not ERROR
    assert (await first).data()[-1] == "[DONE]"
    assert await Generation.objects.acount() == 1


async def test_records_and_log_lines_hold_no_text(scripted, auth_headers, generation_log):
    scripted.script = [f"{CANARY} out"]
    await call(CHAT, body=chat(f"Internal {CANARY}", stream=True), headers=auth_headers)
    await call(COMPLETIONS, body={"model": "scripted", "prompt": f"Internal {CANARY}"}, headers=auth_headers)
    rows = [row async for row in Generation.objects.all()]
    assert [row.channel for row in rows] == ["openai", "openai"]
    assert all(CANARY not in repr(row.__dict__) for row in rows)
    assert generation_log.records and all(CANARY not in r.getMessage() for r in generation_log.records)
