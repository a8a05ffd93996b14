"""HTTP to one upstream engine server: a streamed /v1/completions read chunk by chunk that
another thread can abort at once, and the small GETs of the health checks.

The standard library's http.client is used rather than an HTTP client package: the
connection's socket is ours to shut down from the cancel path, which wakes a read blocked
on it immediately and makes the engine see the disconnect.

A stream read to its end leaves its connection open for the next request to that upstream
(`IdleConnections`), so a request pays no TCP or TLS handshake when one is idle. A stream
left early is never kept: closing its connection is how the engine learns to stop."""
from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

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


# What is left of a finished stream ("data: [DONE]" and the last chunk) is read with these
# bounds; an engine that sends more or takes longer loses the connection instead. Engines
# write it right after the finish reason, and the run's `done` waits for this read.
_DRAIN_TIMEOUT, _DRAIN_LIMIT = 0.1, 4096


def _connection(upstream: UpstreamConfig, timeout: float) -> http.client.HTTPConnection:
    if upstream.secure:
        return http.client.HTTPSConnection(upstream.host, upstream.port, timeout=timeout, context=ssl.create_default_context())
    return http.client.HTTPConnection(upstream.host, upstream.port, timeout=timeout)


def _headers(upstream: UpstreamConfig, **extra: str) -> dict:
    headers = {"Accept": "application/json", **extra}
    if upstream.api_key:
        headers["Authorization"] = f"Bearer {upstream.api_key}"
    return headers


class IdleConnections:
    """Open connections to one upstream between requests: at most `limit`, and none idle for
    longer than `max_idle` seconds (uvicorn, under llama_cpp.server and vLLM, and llama.cpp's
    llama-server close an idle keep-alive connection after 5 s by default)."""

    def __init__(self, limit: int, *, max_idle: float = 4.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._max_idle = max_idle
        self._clock = clock
        self._idle: deque[tuple[http.client.HTTPConnection, float]] = deque()
        self._lock = threading.Lock()

    def take(self) -> http.client.HTTPConnection | None:
        """The most recently used idle connection, or None."""
        now = self._clock()
        with self._lock:
            fresh = [(c, since) for c, since in self._idle if now - since <= self._max_idle]
            stale = [c for c, since in self._idle if now - since > self._max_idle]
            connection = fresh.pop()[0] if fresh else None
            self._idle = deque(fresh)
        for old in stale:
            old.close()
        return connection

    def give(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.append((connection, self._clock()))
            surplus = [self._idle.popleft()[0] for _ in range(len(self._idle) - self._limit)]
        for old in surplus:
            old.close()

    def clear(self) -> None:
        """Close them all (the upstream failed: they may be dead)."""
        with self._lock:
            idle, self._idle = self._idle, deque()
        for connection, _ in idle:
            connection.close()

    def __len__(self) -> int:
        return len(self._idle)


class _Stale(Exception):
    """A kept connection the engine had closed meanwhile."""


class CompletionStream:
    """One streamed completion request; `abort()` may be called from any thread."""

    def __init__(self, upstream: UpstreamConfig, body: dict, *, connect_timeout: float, read_timeout: float,
                 idle: IdleConnections | None = None) -> None:
        self.upstream = upstream
        self._body = json.dumps(body).encode()
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._idle = idle
        self._lock = threading.Lock()
        self._connection: http.client.HTTPConnection | None = None
        self._sock: socket.socket | None = None  # kept: http.client drops it once a response will close
        self._response: http.client.HTTPResponse | None = None
        self._finished = False  # read to its finish reason
        self.aborted = False

    def open(self) -> None:
        """Connect (or take an idle connection), send the request and read the status;
        UpstreamError unless it streams."""
        kept = self._idle.take() if self._idle is not None else None
        if kept is not None:
            if not self._adopt(kept):
                kept.close()
                return
            try:
                self._request(kept, reused=True)
                return
            except _Stale:
                kept.close()  # the engine closed it while it was idle: one fresh connection instead
        connection = _connection(self.upstream, self._connect_timeout)
        if not self._adopt(connection):
            return
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
        self._request(connection, reused=False)

    def _adopt(self, connection: http.client.HTTPConnection) -> bool:
        """Make `connection` the one abort() acts on; False if abort() came first."""
        with self._lock:
            if self.aborted:
                return False
            self._connection, self._sock = connection, connection.sock
            return True

    def _request(self, connection: http.client.HTTPConnection, *, reused: bool) -> None:
        try:
            connection.sock.settimeout(self._read_timeout)
            connection.request(
                "POST", f"{self.upstream.base_path}/v1/completions", body=self._body,
                headers=_headers(self.upstream, **{"Content-Type": "application/json", "Accept": "text/event-stream"}),
            )
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            # A kept connection the engine closed while idle fails at once, before any answer;
            # nothing reached the engine's model, so a fresh connection may send it again.
            if reused and not self.aborted and isinstance(exc, (ConnectionError, http.client.BadStatusLine)):
                raise _Stale from exc
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
                self._finished = True
                if text:
                    yield text
                return
            yield text

    def keep_or_close(self) -> None:
        """After the stream was read to its finish: read the rest of the response (the
        `[DONE]` line) and keep the connection for the next request when the engine keeps it
        open; in every other case close it."""
        with self._lock:
            keep = self._finished and not self.aborted and self._idle is not None
            connection, response = self._connection, self._response
            if keep:  # detached: a late abort() no longer reaches it
                self._connection = self._sock = self._response = None
        if not keep:
            self.close()
            return
        try:
            if response is None or response.will_close or connection.sock is None:
                raise OSError("the engine closes this connection")
            connection.sock.settimeout(_DRAIN_TIMEOUT)
            response.read(_DRAIN_LIMIT)
            if not response.isclosed():
                raise OSError("more than the end of a stream after its finish reason")
        except (OSError, http.client.HTTPException):
            if response is not None:
                response.close()
            connection.close()
            return
        self._idle.give(connection)

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
