"""The WebSocket transport over a real daphne server (`manage.py serve`) with a real
WebSocket client (websocket-client): generate, refusal and close code, resume on a new
socket, origin check at the handshake."""
from __future__ import annotations

import json

import pytest
import websocket

from tests.support.live import start_server

pytestmark = pytest.mark.integration
WORDS = "solid cedar board with oiled edges and a deep groove for juices".split()
SCRIPT = [f"{WORDS[index % len(WORDS)]} " for index in range(80)]
TERMINAL = {"done", "cancelled", "error"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = start_server(
        tmp_path_factory.mktemp("ws"), SLUICE_BACKEND="tests.browser.scripted.EnvScriptedBackend",
        SLUICE_TEST_SCRIPT=json.dumps(SCRIPT), SLUICE_TEST_TOKEN_DELAY="0.01", SLUICE_RESUME_GRACE_SECONDS="5",
    )
    yield live
    live.process.terminate()
    live.process.wait(timeout=30)


def socket_for(server, **options) -> websocket.WebSocket:
    url = server.url.replace("http://", "ws://") + "/ws/generations"
    return websocket.create_connection(url, timeout=10, header=[f"Authorization: Bearer {server.api_key}"], **options)


def receive(socket) -> dict:
    return json.loads(socket.recv())


def test_generate_then_resume_on_a_new_socket(server):
    socket = socket_for(server, suppress_origin=True)
    socket.send(json.dumps({"type": "generate", "prompt": "Copy for a cedar board", "max_tokens": 100, "resumable": True}))
    seen = [receive(socket) for _ in range(10)]
    socket.close()
    again = socket_for(server, suppress_origin=True)
    again.send(json.dumps({"type": "resume", "request_id": seen[0]["data"]["request_id"], "last_event_id": seen[-1]["id"]}))
    rest = [receive(again)]
    while rest[-1]["event"] not in TERMINAL:
        rest.append(receive(again))
    assert [m["id"] for m in seen + rest] == list(range(1, len(seen) + len(rest) + 1))
    assert "".join(m["data"]["text"] for m in seen + rest if m["event"] == "delta") == "".join(SCRIPT)
    row = server.row(seen[0]["data"]["request_id"])
    assert (row["status"], row["disconnects"], row["resumes"]) == ("completed", 1, 1)
    again.close()


def test_a_refusal_is_one_error_then_a_close_with_its_status(server):
    socket = socket_for(server, suppress_origin=True)
    socket.send(json.dumps({"type": "generate", "prompt": "x", "top_p": 0}))
    error = receive(socket)
    assert error["event"] == "error" and (error["data"]["status"], error["data"]["param"]) == (400, "top_p")
    opcode, frame = socket.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(frame[:2], "big") == 4400


def test_a_foreign_origin_is_refused_at_the_handshake(server):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        socket_for(server, origin="https://evil.example")
    assert refused.value.status_code == 403
    allowed = socket_for(server, origin=server.url)
    allowed.send(json.dumps({"type": "generate", "prompt": "x", "max_tokens": 3}))
    assert receive(allowed)["event"] == "accepted"
    allowed.close()
