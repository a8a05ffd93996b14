"""The WebSocket transport in-process (channels' WebsocketCommunicator over the real ASGI
application), with the scripted backend: messages, refusals and close codes, cancel, one
generation per socket, resume on a new socket."""
import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from generation.models import Generation
from project.asgi import application
from tests.support.asgi import finished_row

pytestmark = pytest.mark.django_db(transaction=True)
WORDS = "solid cedar board with oiled edges and a deep groove for juices".split()
SCRIPT = [f"{WORDS[index % len(WORDS)]} " for index in range(30)]
TERMINAL = {"done", "cancelled", "error"}


@pytest.fixture
def backend(scripted, settings):
    settings.SLUICE_RESUME_GRACE_SECONDS = 2.0
    scripted.script = SCRIPT
    scripted.token_delay = 0.01
    return scripted


async def connect(key: str | None = None, origin: str | None = None) -> WebsocketCommunicator:
    headers = []
    if key:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    if origin:
        headers.append((b"origin", origin.encode()))
    socket = WebsocketCommunicator(application, "/ws/generations", headers=headers)
    connected, _ = await socket.connect()
    assert connected
    return socket


async def until_terminal(socket, limit: int = 500) -> list[dict]:
    messages = []
    while len(messages) < limit:
        messages.append(await socket.receive_json_from(timeout=5))
        if messages[-1]["event"] in TERMINAL:
            return messages
    raise AssertionError("no terminal event")


def text_of(messages) -> str:
    return "".join(m["data"]["text"] for m in messages if m["event"] == "delta")


async def test_generate_streams_the_native_events_as_messages(backend, api_key):
    socket = await connect(api_key[1])
    await socket.send_json_to({"type": "generate", "prompt": "Copy for a cedar board", "max_tokens": 50})
    messages = await until_terminal(socket)
    assert [m["id"] for m in messages] == list(range(1, len(messages) + 1))
    assert [m["event"] for m in messages][:2] == ["accepted", "started"] and messages[-1]["event"] == "done"
    assert text_of(messages) == "".join(SCRIPT)
    row = await finished_row(messages[0]["data"]["request_id"])
    assert (row.status, row.channel) == ("completed", "api")
    await socket.send_json_to({"type": "generate", "prompt": "Again", "max_tokens": 5})  # the socket stays usable
    assert (await until_terminal(socket))[-1]["event"] == "done"
    await socket.disconnect()


@pytest.mark.parametrize(
    "message, status, code",
    [
        ({"type": "generate", "prompt": "x", "temperature": 5}, 400, "invalid_request"),
        ({"type": "generate", "prompt": "card 4111 1111 1111 1111"}, 422, "sensitive_data_rejected"),
        ({"type": "generate"}, 400, "invalid_request"),
        ({"type": "dance"}, 400, "invalid_request"),
        ({"type": "generate", "prompt": "x", "max_tokens": 2000}, 400, "invalid_request"),
        ({"type": "generate", "prompt": "x", "redaction": {"languages": ["qq"]}}, 400, "invalid_request"),
    ],
)
async def test_a_refused_request_gets_one_error_with_its_http_status_then_the_close(backend, api_key, message, status, code):
    socket = await connect(api_key[1])
    await socket.send_json_to(message)
    error = await socket.receive_json_from(timeout=5)
    assert error["event"] == "error" and error["id"] is None
    assert (error["data"]["status"], error["data"]["code"]) == (status, code)
    assert (await socket.receive_output(timeout=5)) == {"type": "websocket.close", "code": 4000 + status}
    assert await Generation.objects.acount() == 0


async def test_no_credentials_or_a_bad_key_is_refused_as_401(backend, db):
    for key in (None, "sluice_nope_nope"):
        socket = await connect(key, origin="http://127.0.0.1" if key is None else None)
        error = await socket.receive_json_from(timeout=5)
        assert (error["event"], error["data"]["status"], error["data"]["code"]) == ("error", 401, "unauthorized")
        assert (await socket.receive_output(timeout=5))["code"] == 4401


async def test_a_foreign_origin_is_refused_at_the_handshake(backend, api_key):
    socket = WebsocketCommunicator(application, "/ws/generations", headers=[(b"origin", b"https://evil.example")])
    connected, _ = await socket.connect()
    assert not connected


async def test_a_signed_in_session_streams_over_the_socket(backend, client, django_user_model):
    user = await sync_to_async(django_user_model.objects.create_user)("editor", password="pw-for-tests-991")
    await sync_to_async(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    socket = WebsocketCommunicator(
        application, "/ws/generations", headers=[(b"cookie", cookie.encode()), (b"origin", b"http://127.0.0.1:8000")]
    )
    assert (await socket.connect())[0]
    await socket.send_json_to({"type": "generate", "prompt": "Copy for a cedar board", "max_tokens": 50})
    messages = await until_terminal(socket)
    row = await finished_row(messages[0]["data"]["request_id"])
    assert (row.status, row.channel, row.user_id) == ("completed", "web", user.pk)
    await socket.disconnect()


async def test_cancel_and_one_generation_at_a_time(backend, api_key):
    backend.script = ["cedar "] * 300
    socket = await connect(api_key[1])
    await socket.send_json_to({"type": "generate", "prompt": "x", "max_tokens": 400})
    first = [await socket.receive_json_from(timeout=5) for _ in range(4)]
    await socket.send_json_to({"type": "generate", "prompt": "y"})
    busy = await socket.receive_json_from(timeout=5)
    while busy["event"] != "error":  # events of the run in flight may come first
        busy = await socket.receive_json_from(timeout=5)
    assert (busy["id"], busy["data"]["status"], busy["data"]["code"]) == (None, 409, "generation_in_progress")
    assert (await socket.receive_output(timeout=5))["code"] == 4409
    row = await finished_row(first[0]["data"]["request_id"], timeout=5)
    assert (row.status, row.cancel_reason) == ("cancelled", "client_disconnect")
    socket = await connect(api_key[1])
    await socket.send_json_to({"type": "generate", "prompt": "x", "max_tokens": 400})
    accepted = await socket.receive_json_from(timeout=5)
    await socket.send_json_to({"type": "cancel"})
    messages = await until_terminal(socket)
    assert messages[-1]["event"] == "cancelled" and messages[-1]["data"] == {"reason": "client_cancel"}
    row = await finished_row(accepted["data"]["request_id"])
    assert (row.status, row.cancel_reason) == ("cancelled", "client_cancel")
    await socket.disconnect()


async def test_a_dropped_socket_cancels_a_plain_run(backend, api_key):
    backend.script = ["cedar "] * 300
    socket = await connect(api_key[1])
    await socket.send_json_to({"type": "generate", "prompt": "x", "max_tokens": 400})
    accepted = await socket.receive_json_from(timeout=5)
    await socket.receive_json_from(timeout=5)
    await socket.disconnect()
    row = await finished_row(accepted["data"]["request_id"])
    assert (row.status, row.cancel_reason) == ("cancelled", "client_disconnect")


async def test_resume_on_a_new_socket_gives_the_same_text(backend, api_key):
    socket = await connect(api_key[1])
    await socket.send_json_to({"type": "generate", "prompt": "x", "max_tokens": 50, "resumable": True})
    seen = [await socket.receive_json_from(timeout=5) for _ in range(6)]
    await socket.disconnect()
    await asyncio.sleep(0.1)
    again = await connect(api_key[1])
    request_id = seen[0]["data"]["request_id"]
    await again.send_json_to({"type": "resume", "request_id": request_id, "last_event_id": seen[-1]["id"]})
    rest = await until_terminal(again)
    assert [m["id"] for m in seen + rest] == list(range(1, len(seen) + len(rest) + 1))
    assert text_of(seen + rest) == "".join(SCRIPT)
    row = await finished_row(request_id)
    assert (row.status, row.disconnects, row.resumes) == ("completed", 1, 1)
    await again.send_json_to({"type": "resume", "request_id": "not-an-id", "last_event_id": 0})
    error = await again.receive_json_from(timeout=5)
    assert (error["data"]["status"], error["data"]["code"]) == (404, "not_found")
    assert (await again.receive_output(timeout=5))["code"] == 4404
