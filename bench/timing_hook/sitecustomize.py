"""Loaded by a server that bench/path_timing.py starts (PYTHONPATH points here): once the
request path's modules are imported, wraps a few of its functions to write a timestamp
(time.monotonic, comparable across processes) to $SLUICE_TIMING_LOG as each is entered
(and, for coroutines, left). A diagnostic for the benchmark only."""
import functools
import os
import sys
import threading
import time

_LOG_PATH = os.environ.get("SLUICE_TIMING_LOG")


def _install() -> None:
    log = open(_LOG_PATH, "a", buffering=1)  # noqa: SIM115 - open for the process's life

    def mark(name: str) -> None:
        log.write(f"{name} {time.monotonic():.6f}\n")

    def around_coroutine(owner, attr: str, name: str) -> None:
        original = getattr(owner, attr)

        @functools.wraps(original)
        async def wrapped(*args, **kwargs):
            mark(name + ">")
            try:
                return await original(*args, **kwargs)
            finally:
                mark(name + "<")

        setattr(owner, attr, wrapped)

    def around_call(owner, attr: str, name: str, *, leave: bool = False) -> None:
        original = getattr(owner, attr)

        @functools.wraps(original)
        def wrapped(*args, **kwargs):
            mark(name + ">")
            try:
                return original(*args, **kwargs)
            finally:
                if leave:
                    mark(name + "<")

        setattr(owner, attr, wrapped)

    while not {"generation.api.views", "generation.backends.remote_http"} <= sys.modules.keys():
        time.sleep(0.05)
    time.sleep(0.5)  # let the modules finish importing
    from daphne.http_protocol import WebRequest
    from twisted.internet.tcp import Connection
    from twisted.web.http import HTTPChannel
    from django.core.handlers import asgi

    import generation.api.views as views
    import generation.backends.remote as remote
    import generation.backends.remote_http as remote_http
    import generation.http.sse as sse
    import generation.lifecycle.events as events
    import generation.lifecycle.bridge as bridge
    import generation.lifecycle.intake as intake
    import generation.lifecycle.runner as runner

    around_coroutine(asgi.ASGIHandler, "__call__", "asgi")
    around_call(asgi.ASGIHandler, "create_request", "django_request")
    around_coroutine(views, "authenticate", "authenticate")
    around_coroutine(views, "open_run", "open_run")
    around_coroutine(intake, "prepare_request", "prepare")
    around_call(intake, "redact_fields", "redact", leave=True)
    around_call(remote.RemoteBackend, "tokenize", "tokenize", leave=True)
    around_call(runner.GenerationRun, "_start_worker", "start_worker")
    around_call(remote_http.CompletionStream, "open", "upstream_open")
    around_call(remote_http.CompletionStream, "pieces", "pieces")
    around_coroutine(asgi.ASGIHandler, "send_response", "send_response")
    around_call(sse.NativeFraming, "frames", "frame")
    delta = events.Delta.from_segments.__func__
    events.Delta.from_segments = classmethod(lambda cls, *args: (mark("delta_made"), delta(cls, *args))[1])
    around_call(WebRequest, "handle_reply", "daphne_reply")
    reply = WebRequest.handle_reply

    def handle_reply(self, message):
        if b"event: delta" in message.get("body", b""):
            mark("daphne_delta")
        return reply(self, message)

    WebRequest.handle_reply = handle_reply
    write = Connection.writeSomeData

    def write_some_data(self, data):
        if b"event: delta" in data:
            mark("socket_delta")
        return write(self, data)

    Connection.writeSomeData = write_some_data
    around_call(WebRequest, "process", "daphne_process")
    around_call(bridge.ThreadBridge, "put", "bridge_put")
    around_call(bridge.ThreadBridge, "_wake", "loop_woken")
    around_call(HTTPChannel, "dataReceived", "bytes_received")
    mark("installed")


if _LOG_PATH:
    threading.Thread(target=_install, name="timing-hook", daemon=True).start()
