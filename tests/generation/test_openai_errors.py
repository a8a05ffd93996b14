"""/v1 refusals: every error in OpenAI's shape, never a 500, never an echo of a value sent,
nothing recorded."""
import pytest

from generation.models import Generation
from tests.support.asgi import call

pytestmark = pytest.mark.django_db(transaction=True)
CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"
CANARY = "CANARY-41c9-supplier-terms"


def chat(*messages, **extra):
    return {"model": "scripted", "messages": list(messages) or [user(f"Write copy {CANARY}")], **extra}


def user(content):
    return {"role": "user", "content": content}


def assert_openai_error(result, status, code, param):
    assert result.status == status, result.body
    assert result.headers["content-type"] == "application/json"
    error = result.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"} and error["message"]
    assert (error["code"], error["param"]) == (code, param)
    assert error["type"] == ("server_error" if status >= 500 else "invalid_request_error")
    assert CANARY not in result.body.decode("utf-8", "replace")
    return error


BAD_CHATS = [
    (b"{not json", 400, "invalid_json", None),
    (b"[1, 2]", 400, "invalid_json", None),
    (b'{"model": "scripted", "messages": [{"role": "user", "content": "caf\xe9 ' + CANARY.encode() + b'"}]}',
     400, "invalid_encoding", None),
    ({"messages": [user(CANARY)]}, 400, "invalid_request", "model"),
    ({"model": "scripted"}, 400, "invalid_request", "messages"),
    (chat(messages=[]), 400, "invalid_request", "messages"),
    (chat(messages=CANARY), 400, "invalid_request", "messages"),
    (chat(messages=[CANARY]), 400, "invalid_request", "messages[0]"),
    (chat({"role": "bot", "content": CANARY}), 400, "invalid_request", "messages[0].role"),
    (chat({"role": "tool", "content": CANARY, "tool_call_id": "x"}), 400, "unsupported_value", "messages[0].role"),
    (chat({"role": "user"}), 400, "invalid_request", "messages[0].content"),
    (chat(user(42)), 400, "invalid_request", "messages[0].content"),
    (chat(user([{"type": "text"}])), 400, "invalid_request", "messages[0].content"),
    (chat(user([{"type": "text", "text": CANARY}, {"type": "image_url", "image_url": {"url": f"https://x/{CANARY}"}}])),
     400, "unsupported_value", "messages[0].content[1].type"),
    (chat(user([{"type": "input_audio", "input_audio": {"data": CANARY}}])),
     400, "unsupported_value", "messages[0].content[0].type"),
    (chat(user(CANARY), {"role": "assistant", "content": None, "tool_calls": [{"id": CANARY}]}),
     400, "unsupported_parameter", "messages[1].tool_calls"),
    (chat({"role": "user", "content": CANARY, "colour": CANARY}), 400, "invalid_request", "messages[0]"),
    (chat({"role": "user", "content": CANARY, CANARY: 1}), 400, "invalid_request", "messages[0]"),
    (chat({"role": "user", "content": CANARY, "prompt": "x"}), 400, "invalid_request", "messages[0].prompt"),
    (b'{"model": "scripted", "messages": [{"role": "user", "content": "hi \\ud800 ' + CANARY.encode() + b'"}]}',
     400, "invalid_encoding", None),
    (b'{"model": "scripted", "messages": [], "stop": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     400, "invalid_json", None),
    (chat(tools=[{"type": "function", "function": {"name": CANARY}}]), 400, "unsupported_parameter", "tools"),
    (chat(functions=[{"name": CANARY}]), 400, "unsupported_parameter", "functions"),
    (chat(tool_choice="required"), 400, "unsupported_parameter", "tool_choice"),
    (chat(n=2), 400, "unsupported_parameter", "n"),
    (chat(logprobs=True), 400, "unsupported_parameter", "logprobs"),
    (chat(top_logprobs=3), 400, "unsupported_parameter", "top_logprobs"),
    (chat(response_format={"type": "json_object"}), 400, "unsupported_parameter", "response_format"),
    (chat(frequency_penalty=0.5), 400, "unsupported_parameter", "frequency_penalty"),
    (chat(logit_bias={"42": 100}), 400, "unsupported_parameter", "logit_bias"),
    (chat(modalities=["text", "audio"]), 400, "unsupported_parameter", "modalities"),
    (chat(surprise=CANARY), 400, "invalid_request", None),
    (chat(**{CANARY: 1}), 400, "invalid_request", None),
    (chat(temperature=2.5), 400, "invalid_request", "temperature"),
    (chat(temperature="hot"), 400, "invalid_request", "temperature"),
    (chat(top_p=0), 400, "invalid_request", "top_p"),
    (chat(max_tokens=0), 400, "invalid_request", "max_tokens"),
    (chat(max_tokens=10_000_000), 400, "invalid_request", "max_tokens"),
    (chat(max_completion_tokens=10_000_000), 400, "invalid_request", "max_completion_tokens"),
    (chat(max_tokens=1.5), 400, "invalid_request", "max_tokens"),
    (chat(stop=["a", "b", "c", "d", "e"]), 400, "invalid_request", "stop"),
    (chat(stop=[1]), 400, "invalid_request", "stop"),
    (chat(seed=-1), 400, "invalid_request", "seed"),
    (chat(stream="yes"), 400, "invalid_request", "stream"),
    (chat(stream_options={"include_usage": True}), 400, "invalid_request", "stream_options"),
    (chat(stream=True, stream_options={"include_usage": 1}), 400, "invalid_request", "stream_options.include_usage"),
    (chat(user("   "), {"role": "assistant", "content": ""}, user("\n")), 400, "invalid_request", "messages"),
    (chat(user(CANARY * 700)), 413, "prompt_too_large", "messages"),
    (chat(user(CANARY * 350), user(CANARY * 350)), 413, "prompt_too_large", "messages"),
    (chat(model=CANARY), 404, "model_not_found", "model"),
    # Roles the template refuses or would drop: a clear 400, not a 500.
    (chat(user(CANARY), {"role": "system", "content": CANARY}), 400, "invalid_request", "messages"),
]


@pytest.mark.parametrize("body, status, code, param", BAD_CHATS)
async def test_bad_chat_requests_are_clear_openai_errors(scripted, auth_headers, body, status, code, param):
    result = await call(CHAT, body=body, headers=auth_headers)
    assert_openai_error(result, status, code, param)
    assert result.headers["x-should-retry"] == "false"
    assert await Generation.objects.acount() == 0 and scripted.calls == []


BAD_COMPLETIONS = [
    ({"model": "scripted"}, 400, "invalid_request", "prompt"),
    ({"model": "scripted", "prompt": [CANARY, CANARY]}, 400, "invalid_request", "prompt"),
    ({"model": "scripted", "prompt": [101, 102]}, 400, "invalid_request", "prompt"),
    ({"model": "scripted", "prompt": [101]}, 400, "invalid_request", "prompt"),
    ({"model": "scripted", "prompt": []}, 400, "invalid_request", "prompt"),
    ({"model": "scripted", "prompt": ["  "]}, 400, "invalid_request", "prompt"),
    (b'{"model": "scripted", "prompt": ["\\udc00 ' + CANARY.encode() + b'"]}', 400, "invalid_encoding", None),
    ({"model": "scripted", "prompt": " \n "}, 400, "invalid_request", "prompt"),
    ({"model": "scripted", "prompt": CANARY, "echo": True}, 400, "unsupported_parameter", "echo"),
    ({"model": "scripted", "prompt": CANARY, "suffix": CANARY}, 400, "unsupported_parameter", "suffix"),
    ({"model": "scripted", "prompt": CANARY, "best_of": 3}, 400, "unsupported_parameter", "best_of"),
    ({"model": "scripted", "prompt": CANARY, "logprobs": 2}, 400, "unsupported_parameter", "logprobs"),
    ({"model": "scripted", "prompt": CANARY, "messages": []}, 400, "invalid_request", "messages"),
    ({"model": "scripted", "prompt": CANARY * 700}, 413, "prompt_too_large", "prompt"),
    ({"model": "gpt-4o", "prompt": CANARY}, 404, "model_not_found", "model"),
]


@pytest.mark.parametrize("body, status, code, param", BAD_COMPLETIONS)
async def test_bad_completion_requests_are_clear_openai_errors(scripted, auth_headers, body, status, code, param):
    result = await call(COMPLETIONS, body=body, headers=auth_headers)
    assert_openai_error(result, status, code, param)
    assert await Generation.objects.acount() == 0


async def test_context_overflow_wrong_content_type_and_oversized_body(scripted, auth_headers, settings):
    scripted.context_length = 64
    result = await call(CHAT, body=chat(user("word " * 40), max_tokens=30), headers=auth_headers)
    assert "64" in assert_openai_error(result, 400, "context_length_exceeded", "prompt")["message"]
    result = await call(CHAT, body=CANARY.encode(), headers={**auth_headers, "content-type": "text/plain"})
    assert_openai_error(result, 415, "unsupported_media_type", None)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    result = await call(CHAT, body=chat(user(CANARY * 100)), headers=auth_headers)
    assert_openai_error(result, 413, "request_too_large", None)


ROUTES = [(CHAT, "POST"), (COMPLETIONS, "POST"), ("/v1/models", "GET"), ("/v1/models/scripted", "GET")]


@pytest.mark.parametrize("path, method", ROUTES)
@pytest.mark.parametrize("authorization", [None, "Bearer", "Basic dXNlcjpwYXNz", "Bearer sluice_dead_x", "Bearer nope"])
async def test_every_route_needs_an_api_key(scripted, db, path, method, authorization):
    headers = {"authorization": authorization} if authorization else {}
    result = await call(path, method=method, body=chat() if method == "POST" else None, headers=headers)
    assert_openai_error(result, 401, "invalid_api_key", None)


async def test_a_signed_in_session_is_not_an_api_key(scripted, db):
    from asgiref.sync import sync_to_async
    from django.contrib.auth import get_user_model
    from django.test import AsyncClient

    await sync_to_async(get_user_model().objects.create_user)("editor", password="pw-long-enough-1")
    client = AsyncClient()
    assert await sync_to_async(client.login)(username="editor", password="pw-long-enough-1")
    response = await client.post(CHAT, chat(), content_type="application/json")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


async def test_unknown_paths_and_wrong_methods_answer_json(scripted, auth_headers):
    for path in ("/v1", "/v1/", "/v1/embeddings", "/v1/chat/completions/", f"/v1/{CANARY}/x"):
        assert_openai_error(await call(path, body=chat(), headers=auth_headers), 404, "not_found", None)
    for path, allowed in ROUTES:
        result = await call(path, method="PUT" if allowed == "POST" else "POST", body=chat(), headers=auth_headers)
        assert_openai_error(result, 405, "method_not_allowed", None)
        assert result.headers["allow"] == allowed


async def test_a_draining_server_refuses_with_503_and_retry_after(scripted, auth_headers):
    from generation.lifecycle.runtime import active_runs

    active_runs.draining = True
    try:
        result = await call(CHAT, body=chat(), headers=auth_headers)
    finally:
        active_runs.draining = False
    assert_openai_error(result, 503, "shutting_down", None)
    assert result.headers["retry-after"]


async def test_an_unloadable_model_is_503(scripted, auth_headers, settings):
    settings.SLUICE_BACKEND = "generation.backends.llamacpp.LlamaCppBackend"
    settings.SLUICE_MODEL_PATH = "/nonexistent/model.gguf"
    result = await call(CHAT, body=chat(), headers=auth_headers)
    assert_openai_error(result, 503, "model_unavailable", None)
