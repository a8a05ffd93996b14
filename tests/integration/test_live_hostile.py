"""Hostile clients against the real server: hang-ups in the first 100 ms, malformed HTTP.
Every run still ends terminal with its log line; every refusal under the APIs is JSON."""
from __future__ import annotations

import json
import random
import socket
import time

import httpx
import pytest

from tests.support.live import start_server

pytestmark = pytest.mark.integration
CANARY = "ZX-CANARY-5120 supplier Veltrano"
MODEL = "gemma-3-270m-q4_k_m"


def raw_request(server, path: str, body: bytes, headers: dict | None = None) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
             f"Authorization: Bearer {server.api_key}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return sock


def read_all(sock: socket.socket) -> bytes:
    sock.settimeout(30)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture(scope="module")
def queueing_server(tmp_path_factory):
    """Two slots and a queue (the session's server has one slot and no queue), so a hang-up
    may also meet a queued row."""
    server = start_server(tmp_path_factory.mktemp("hang-ups"), SLUICE_SLOTS=2, SLUICE_N_CTX=2048, SLUICE_N_BATCH=256)
    yield server
    server.process.terminate()
    server.process.wait(timeout=20)


HANG_UPS = [
    *[("/api/v1/generations", {"prompt": "Copy for a cedar board:", "max_tokens": 30, "stream": stream})
      for stream in (True, False)] * 30,
    *[("/v1/chat/completions", {"model": MODEL, "stream": True, "max_tokens": 30,
                                "messages": [{"role": "user", "content": "Copy for a cedar board."}]}),
      ("/v1/completions", {"model": MODEL, "stream": True, "max_tokens": 30, "prompt": "Copy for a cedar board:"})] * 15,
]


def test_hang_ups_in_the_first_100ms_leave_no_row_unfinished(queueing_server):
    """60 native and 30 /v1 requests that each hang up after a random 0-100 ms: every row
    they left ends terminal, without the sweep's help, each with its one log line."""
    server, rng = queueing_server, random.Random(11)
    before = {row["request_id"] for row in server.rows()}
    for path, body in rng.sample(HANG_UPS, len(HANG_UPS)):
        sock = raw_request(server, path, json.dumps(body).encode())
        time.sleep(rng.uniform(0, 0.1))
        sock.close()
    deadline = time.monotonic() + 30  # well inside SLUICE_SWEEP_GRACE_SECONDS
    while True:
        rows = [row for row in server.rows() if row["request_id"] not in before]
        if all(row["finished_at"] for row in rows) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(rows) > len(HANG_UPS) // 2, "too few requests got as far as their row"
    assert [row["status"] for row in rows if not row["finished_at"]] == []
    assert {row["status"] for row in rows} <= {"completed", "cancelled"}

    def logged() -> list[str]:
        lines = server.log_path.read_text().splitlines()
        return [json.loads(line)["request_id"].replace("-", "") for line in lines if line.startswith('{"request_id"')]

    ids = {row["request_id"] for row in rows}
    while not ids <= set(logged()) and time.monotonic() < deadline + 5:
        time.sleep(0.1)  # each log line follows its row's write
    assert sorted(i for i in logged() if i in ids) == sorted(ids)  # each with exactly one log line


def test_a_malformed_chunked_body_is_a_json_400(sluice_server):
    host, port = sluice_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            f"POST /api/v1/generations HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Transfer-Encoding: chunked\r\n\r\nZZ-{CANARY}\r\n{{}}\r\n".encode()
        )
        answer = read_all(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head
    assert json.loads(body)["error"]["code"] == "bad_request"
    assert CANARY.encode() not in answer


MALFORMED_FORMS = [
    ("multipart/form-data; boundary=XX", f'--XX\r\nContent-Disposition: form-data; name="a"\r\n\r\n{CANARY}'),
    ("multipart/form-data", f"no boundary {CANARY}"),
    ("application/x-www-form-urlencoded", f"a=%ZZ&b={CANARY}"),
]


@pytest.mark.parametrize("content_type, body", MALFORMED_FORMS)
def test_a_malformed_form_body_is_a_4xx_that_does_not_echo_it(sluice_server, content_type, body):
    """Twisted does not read form bodies (project/http_server.RawBodyRequest): Django does,
    and a broken one is still a clean 4xx on the API routes and on the editor's forms."""
    host, port = sluice_server.url.removeprefix("http://").split(":")
    token = httpx.get(f"{sluice_server.url}/login/", timeout=30).cookies["csrftoken"]
    for path, extra in (("/api/v1/generations", f"Authorization: Bearer {sluice_server.api_key}"),
                        ("/v1/completions", f"Authorization: Bearer {sluice_server.api_key}"),
                        ("/login/", f"Cookie: csrftoken={token}\r\nX-CSRFToken: {token}\r\nOrigin: {sluice_server.url}")):
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n{extra}\r\n"
                f"Content-Length: {len(body.encode())}\r\nConnection: close\r\n\r\n{body}".encode()
            )
            answer = read_all(sock)
        head, _, payload = answer.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        assert 400 <= status < 500, (path, head)
        assert CANARY.encode() not in answer
        if path != "/login/":
            assert status == 415 and b"application/json" in head and json.loads(payload)["error"]["message"]
    assert "Traceback" not in sluice_server.log_path.read_text()


def test_a_bad_host_header_and_a_bad_id_are_json_and_the_host_is_not_logged(sluice_server):
    bad_host = f"{CANARY.lower().replace(' ', '-')}.example"
    response = httpx.post(
        f"{sluice_server.url}/api/v1/generations", json={"prompt": "Hi"},
        headers={**sluice_server.headers(), "Host": bad_host}, timeout=30,
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"
    response = httpx.post(
        f"{sluice_server.url}/v1/chat/completions", json={}, headers={**sluice_server.headers(), "Host": bad_host},
        timeout=30,
    )
    assert response.status_code == 400 and set(response.json()["error"]) >= {"message", "type", "param", "code"}
    response = httpx.post(
        f"{sluice_server.url}/api/v1/generations/not-a-uuid/cancel", headers=sluice_server.headers(), timeout=30
    )
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    log = sluice_server.log_path.read_text()
    assert bad_host not in log and "ERROR django.security" not in log
