"""A scripted OpenAI-compatible engine server on a loopback port (a thread per request),
for the remote backend's tests: it streams given pieces, answers a given status, stalls,
or drops the connection mid-stream, and records what it was sent."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Script:
    """What the next completion requests get. `die_after`: drop the connection after that
    many pieces; `status`: answer with it instead of streaming."""

    pieces: list[str] = field(default_factory=lambda: ["Hello", ",", " world"])
    status: int = 200
    delay: float = 0.0  # before each piece
    first_delay: float = 0.0  # before the response headers
    die_after: int | None = None
    health_status: int = 200
    keep_alive: bool = False  # chunked streams on a connection kept open for the next request
    drop_kept: bool = False  # with keep_alive: close it after the stream anyway, without saying so
    end_delay: float = 0.0  # between the finish reason and the rest of the response


class FakeUpstream:
    def __init__(self, script: Script | None = None) -> None:
        self.script = script or Script()
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.disconnects = 0  # streams the client left before their end
        self.connections = 0  # TCP connections accepted
        self.finished = threading.Event()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                upstream.connections += 1

            def do_GET(self) -> None:
                status = upstream.script.health_status
                body = json.dumps({"data": [{"id": "fake-model"}]} if self.path == "/v1/models" else {"status": "ok"})
                self._send(status, body.encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                upstream.requests.append(json.loads(self.rfile.read(length)))
                upstream.headers.append(dict(self.headers))
                script = upstream.script
                time.sleep(script.first_delay)
                if script.status != 200:
                    self._send(script.status, b'{"error": {"message": "busy"}}')
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                if script.keep_alive:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Connection", "close")
                self.end_headers()
                ended = False
                try:
                    for index, piece in enumerate(script.pieces):
                        if script.die_after is not None and index >= script.die_after:
                            self.connection.shutdown(2)
                            return
                        time.sleep(script.delay)
                        self._event({"choices": [{"text": piece, "index": 0, "finish_reason": None}]})
                    self._event({"choices": [{"text": "", "index": 0, "finish_reason": "stop"}]})
                    time.sleep(script.end_delay)
                    self._write(b"data: [DONE]\r\n\r\n")
                    if script.keep_alive:
                        self.wfile.write(b"0\r\n\r\n")
                        self.wfile.flush()
                    ended = True
                except OSError:
                    upstream.disconnects += 1
                finally:
                    upstream.finished.set()
                    self.close_connection = not (ended and script.keep_alive and not script.drop_kept)

            def _event(self, chunk: dict) -> None:
                self._write(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n")

            def _write(self, data: bytes) -> None:
                if upstream.script.keep_alive:
                    data = f"{len(data):x}\r\n".encode() + data + b"\r\n"
                self.wfile.write(data)
                self.wfile.flush()

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
