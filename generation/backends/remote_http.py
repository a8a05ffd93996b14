"""HTTP to one upstream engine server: a streamed /v1/completions read chunk by chunk that
another thread can abort at once, and the small GETs of the health checks.

The standard library's http.client is used rather than an HTTP client package: the
connection's socket is ours to shut down from the cancel path, which wakes a read blocked
on it immediately and makes the engine see the disconnect."""
from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
from collections.abc import Iterator

from .remote_config import UpstreamConfig


class UpstreamError(Exception):
    """An upstream failure. `kind`: connect, status, broken (the stream ended or failed
    before its end), protocol (not an OpenAI stream). Messages never carry payload text."""

    def __init__(self, kind: str, *, status: int = 0) -> None:
        super().__init__(f"{kind}{f' {status}' if status else ''}")
        self.kind = kind
        self.status = status

    @property
    def unhealthy(self) -> bool:
        """Whether it counts against the upstream's health (passive check): not a 4xx."""
        return self.kind != "status" or self.status >= 500


def _connection(upstream: UpstreamConfig, timeout: float) -> http.client.HTTPConnection:
    if upstream.secure:
        return http.client.HTTPSConnection(upstream.host, upstream.port, timeout=timeout, context=ssl.create_default_context())
    return http.client.HTTPConnection(upstream.host, upstream.port, timeout=timeout)


def _headers(upstream: UpstreamConfig, **extra: str) -> dict:
    headers = {"Accept": "application/json", **extra}
    if upstream.api_key:
        headers["Authorization"] = f"Bearer {upstream.api_key}"
    return headers


class CompletionStream:
    """One streamed completion request; `abort()` may be called from any thread."""

    def __init__(self, upstream: UpstreamConfig, body: dict, *, connect_timeout: float, read_timeout: float) -> None:
        self.upstream = upstream
        self._body = json.dumps(body).encode()
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._lock = threading.Lock()
        self._connection: http.client.HTTPConnection | None = None
        self._sock: socket.socket | None = None  # kept: http.client drops it once a response will close
        self._response: http.client.HTTPResponse | None = None
        self.aborted = False

    def open(self) -> None:
        """Connect, send the request and read the status; UpstreamError unless it streams."""
        connection = _connection(self.upstream, self._connect_timeout)
        with self._lock:
            if self.aborted:
                return
            self._connection = connection
        try:
            connection.connect()
        except OSError as exc:
            raise UpstreamError("connect") from exc
        with self._lock:
            self._sock = connection.sock
            aborted = self.aborted
        if aborted:  # asked while connecting
            self.abort()
            return
        try:
            connection.sock.settimeout(self._read_timeout)
            connection.request(
                "POST", f"{self.upstream.base_path}/v1/completions", body=self._body,
                headers=_headers(self.upstream, **{"Content-Type": "application/json", "Accept": "text/event-stream"}),
            )
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            raise UpstreamError("broken") from exc
        self._response = response
        if response.status != 200:
            raise UpstreamError("status", status=response.status)

    def pieces(self) -> Iterator[str]:
        """The text of each chunk until the chunk with the finish reason."""
        response = self._response
        if response is None:
            return
        while True:
            try:
                line = response.readline()
            except (OSError, http.client.HTTPException) as exc:
                if self.aborted:
                    return
                raise UpstreamError("broken") from exc
            if not line:
                if self.aborted:
                    return
                raise UpstreamError("broken")  # closed before its end: the engine failed
            field, _, value = line.decode("utf-8", "replace").strip().partition(":")
            if field != "data":
                continue
            value = value.strip()
            if value == "[DONE]":
                # OpenAI streams end with a finish reason first; a bare [DONE] is an engine
                # cutting the request short (llama_cpp.server's interrupt_requests).
                raise UpstreamError("broken")
            try:
                chunk = json.loads(value)
                if "error" in chunk:
                    raise UpstreamError("broken")
                choice = chunk["choices"][0]
                text, finish = choice.get("text") or "", choice.get("finish_reason")
            except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
                raise UpstreamError("protocol") from exc
            if finish:
                if text:
                    yield text
                return
            yield text

    def abort(self) -> None:
        """Drop the connection now: a blocked read returns and the engine sees the client leave."""
        with self._lock:
            self.aborted = True
            sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
            sock, self._sock = self._sock, None
            response, self._response = self._response, None
        if response is not None:
            response.close()
        if connection is not None:
            connection.close()
        if sock is not None:
            sock.close()


def get_json(upstream: UpstreamConfig, path: str, *, timeout: float) -> tuple[int, object]:
    """(status, parsed JSON body or None) of a GET; OSError when it cannot connect."""
    connection = _connection(upstream, timeout)
    try:
        connection.request("GET", f"{upstream.base_path}{path}", headers=_headers(upstream))
        response = connection.getresponse()
        raw = response.read(1 << 20)
    except http.client.HTTPException as exc:
        raise OSError("bad response") from exc
    finally:
        connection.close()
    try:
        return response.status, json.loads(raw) if raw else None
    except ValueError:
        return response.status, None


def probe(upstream: UpstreamConfig, path: str, *, timeout: float) -> bool | None:
    """The active health check: `path` answers 200 (a server without it: /v1/models does).
    None when it did not answer in time, which a busy engine may do: llama_cpp.server
    serves /v1/models only between generations."""
    try:
        status, _ = get_json(upstream, path, timeout=timeout)
        if status == 404 and path != "/v1/models":
            status, _ = get_json(upstream, "/v1/models", timeout=timeout)
    except TimeoutError:
        return None
    except OSError:
        return False
    return status == 200


def model_ids(upstream: UpstreamConfig, *, timeout: float) -> list[str]:
    """The ids of the upstream's /v1/models list; empty when it does not answer."""
    try:
        status, body = get_json(upstream, "/v1/models", timeout=timeout)
    except OSError:
        return []
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("data"), list):
        return []
    return [item["id"] for item in body["data"] if isinstance(item, dict) and isinstance(item.get("id"), str)]
