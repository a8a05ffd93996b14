"""Bad input and auth: always a JSON 4xx, never an echo of the prompt, nothing recorded."""
import pytest

from generation.models import Generation
from tests.support.asgi import call

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/generations"
CANARY = "CANARY-7f3a-supplier-terms"


def ok(**extra):
    return {"prompt": f"Write copy {CANARY}", **extra}


BAD_BODIES = [
    (b"{not json", 400, "invalid_json", None),
    (b"[1, 2]", 400, "invalid_json", None),
    (b'{"prompt": "caf\xe9 ' + CANARY.encode() + b'"}', 400, "invalid_encoding", None),
    ({"max_tokens": 5}, 400, "invalid_request", "prompt"),
    ({"prompt": ""}, 400, "invalid_request", "prompt"),
    ({"prompt": "   \n\t "}, 400, "invalid_request", "prompt"),
    ({"prompt": 42}, 400, "invalid_request", "prompt"),
    ({"prompt": [CANARY]}, 400, "invalid_request", "prompt"),
    (ok(max_tokens=0), 400, "invalid_request", "max_tokens"),
    (ok(max_tokens=10_000_000), 400, "invalid_request", "max_tokens"),
    (ok(max_tokens=1.5), 400, "invalid_request", "max_tokens"),
    (ok(max_tokens="20"), 400, "invalid_request", "max_tokens"),
    (ok(max_tokens=True), 400, "invalid_request", "max_tokens"),
    (ok(temperature=-0.1), 400, "invalid_request", "temperature"),
    (ok(temperature=2.5), 400, "invalid_request", "temperature"),
    (ok(temperature="hot"), 400, "invalid_request", "temperature"),
    (ok(top_p=0), 400, "invalid_request", "top_p"),
    (ok(top_p=1.2), 400, "invalid_request", "top_p"),
    (ok(stop=[1]), 400, "invalid_request", "stop"),
    (ok(stop=["a", "b", "c", "d", "e"]), 400, "invalid_request", "stop"),
    (ok(stop=[""]), 400, "invalid_request", "stop"),
    (ok(seed=-1), 400, "invalid_request", "seed"),
    (ok(stream="yes"), 400, "invalid_request", "stream"),
    (ok(unknown_field=1), 400, "invalid_request", None),
    (ok(**{CANARY: 1}), 400, "invalid_request", None),
    (ok(messages=[]), 400, "invalid_request", "messages"),  # a known name, in the wrong API: named
    (b'{"prompt": "hello \\ud800 ' + CANARY.encode() + b'"}', 400, "invalid_encoding", None),
    (b'{"prompt": "hi", "\\udfff": 1}', 400, "invalid_encoding", None),
    (b'{"prompt": "hi", "stop": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "invalid_json", None),
    (b'{"prompt": "hi", "stop": ' + b"[" * 40 + b"]" * 40 + b"}", 400, "invalid_json", None),
    ({"prompt": CANARY * 2000}, 413, "prompt_too_large", "prompt"),
]


@pytest.mark.parametrize("body, status, code, param", BAD_BODIES)
async def test_bad_input_is_a_clear_json_error(scripted, auth_headers, body, status, code, param):
    result = await call(URL, body=body, headers=auth_headers)
    assert result.status == status
    assert result.headers["content-type"] == "application/json"
    error = result.json()["error"]
    assert error["code"] == code and error["message"]
    assert error.get("param") == param
    assert CANARY not in result.body.decode("utf-8", "replace")
    assert result.headers["x-should-retry"] == "false"  # the official SDKs would retry some 4xx
    assert await Generation.objects.acount() == 0


async def test_an_escaped_surrogate_pair_is_still_text(scripted, auth_headers):
    result = await call(URL, body=b'{"prompt": "smile \\ud83d\\ude00", "stream": false}', headers=auth_headers)
    assert result.status == 200, result.body


async def test_unknown_field_names_are_not_echoed(scripted, auth_headers):
    result = await call(URL, body=ok(**{f"note {CANARY}": 1}), headers=auth_headers)
    error = result.json()["error"]
    assert result.status == 400 and error["message"] == "The request has an unknown field."
    assert CANARY not in result.body.decode()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/generations/not-a-uuid/cancel",
        f"/api/v1/generations/{CANARY}/cancel",
        "/api/v1/nothing-here",
        "/api/v2/generations",
    ],
)
async def test_django_404s_under_the_api_are_json(scripted, auth_headers, path):
    result = await call(path, headers=auth_headers)
    assert result.status == 404 and result.headers["content-type"] == "application/json"
    assert result.json()["error"]["code"] == "not_found"
    assert CANARY not in result.body.decode()


async def test_a_bad_host_header_is_a_json_400_and_its_value_is_not_logged(scripted, auth_headers, caplog):
    host = f"{CANARY.lower()}.example"
    result = await call(URL, body=ok(), headers={**auth_headers, "host": host})
    assert result.status == 400 and result.headers["content-type"] == "application/json"
    assert result.json()["error"]["code"] == "bad_request"
    assert not [r for r in caplog.records if r.levelno >= 40]
    assert CANARY.lower() not in caplog.text.lower()
    assert await Generation.objects.acount() == 0


async def test_overload_503_is_retryable_and_not_logged_as_an_error(scripted, auth_headers, caplog, settings):
    from generation.lifecycle.runtime import active_runs

    active_runs.draining = True
    try:
        result = await call(URL, body=ok(), headers=auth_headers)
    finally:
        active_runs.draining = False
    assert result.status == 503 and result.headers["retry-after"]
    assert "x-should-retry" not in result.headers
    assert not [r for r in caplog.records if r.levelno >= 40]


async def test_prompt_plus_max_tokens_over_the_context_is_rejected(scripted, auth_headers):
    scripted.context_length = 64
    result = await call(URL, body={"prompt": "word " * 40, "max_tokens": 30}, headers=auth_headers)
    assert result.status == 400
    error = result.json()["error"]
    assert error["code"] == "context_length_exceeded" and "40" in error["message"] and "64" in error["message"]
    assert await Generation.objects.acount() == 0


async def test_wrong_method_and_content_type(scripted, auth_headers):
    result = await call(URL, method="GET", headers=auth_headers)
    assert (result.status, result.json()["error"]["code"], result.headers["allow"]) == (405, "method_not_allowed", "POST")
    result = await call(URL, body=b"prompt=x", headers={**auth_headers, "content-type": "text/plain"})
    assert (result.status, result.json()["error"]["code"]) == (415, "unsupported_media_type")


async def test_oversized_body_is_413_json(scripted, auth_headers, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    result = await call(URL, body={"prompt": CANARY * 100}, headers=auth_headers)
    assert result.status == 413 and result.json()["error"]["code"] == "request_too_large"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Basic dXNlcjpwYXNz", "Bearer sluice_deadbeef_wrong", "Bearer not-a-sluice-key"],
)
async def test_missing_or_bad_api_key_is_401(scripted, db, authorization):
    headers = {"authorization": authorization} if authorization else {}
    result = await call(URL, body=ok(), headers=headers)
    assert result.status == 401 and result.json()["error"]["code"] == "unauthorized"
    assert CANARY not in result.body.decode()


async def test_revoked_key_is_401(scripted, api_key, auth_headers):
    from asgiref.sync import sync_to_async

    from generation.records.api_keys import api_key_revoke

    await sync_to_async(api_key_revoke)(api_key=api_key[0])
    result = await call(URL, body=ok(), headers=auth_headers)
    assert result.status == 401


async def test_signed_in_session_needs_a_csrf_token(scripted, db):
    from asgiref.sync import sync_to_async
    from django.contrib.auth import get_user_model
    from django.test import AsyncClient

    await sync_to_async(get_user_model().objects.create_user)("editor", password="pw-long-enough-1")
    client = AsyncClient(enforce_csrf_checks=True)
    assert await sync_to_async(client.login)(username="editor", password="pw-long-enough-1")
    refused = await client.post(URL, ok(stream=False), content_type="application/json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
    await client.get("/admin/login/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    accepted = await client.post(URL, ok(stream=False), content_type="application/json", headers={"X-CSRFToken": token})
    assert accepted.status_code == 200 and accepted.json()["status"] == "completed"
    row = await Generation.objects.aget()
    assert row.channel == "web" and row.user_id is not None and row.api_key_id is None
