"""daphne as Sluice runs it: a request that Twisted refuses before Django sees it (a malformed
chunked body, a bad request line or header) is answered with a JSON error, like every other
error under /api/ and /v1/; the access log names routes, not URLs."""
from __future__ import annotations

import json

from daphne import server as daphne_server
from daphne.access import AccessLogGenerator
from daphne.http_protocol import HTTPFactory, WebRequest
from twisted.web.http import HTTPChannel, _GenericHTTPChannelProtocol

from generation.ws.routing import websocket_urlpatterns

from .logs import method_of, route_of

# The native and OpenAI error shapes in one body: both clients find what they read in it.
BAD_REQUEST_BODY = json.dumps(
    {
        "error": {
            "code": "bad_request",
            "message": "The request could not be parsed (check its framing and headers).",
            "type": "invalid_request_error",
            "param": None,
        }
    }
).encode()


class JsonBadRequestChannel(HTTPChannel):
    def _respondToBadRequestAndDisconnect(self) -> None:
        self.transport.write(
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nx-should-retry: false\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(BAD_REQUEST_BODY), BAD_REQUEST_BODY)
        )
        self.loseConnection()


def _json_bad_request_protocol(factory: HTTPFactory) -> _GenericHTTPChannelProtocol:
    return _GenericHTTPChannelProtocol(JsonBadRequestChannel())


class RawBodyRequest(WebRequest):
    """daphne's request without Twisted's reading of a POST's form fields: daphne gives the
    application the raw body and never looks at them, and reading the Content-Type through
    the email package alone cost about 0.1 ms on every POST before Django saw it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._parsePOSTFormSubmission = False


class JsonErrorHTTPFactory(HTTPFactory):
    protocol = _json_bad_request_protocol

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = RawBodyRequest
        return protocol


def Server(**kwargs) -> daphne_server.Server:
    """daphne's Server, building its HTTP channels with JsonBadRequestChannel and RawBodyRequest."""
    daphne_server.HTTPFactory = JsonErrorHTTPFactory  # Server.run() builds its factory from this name
    return daphne_server.Server(**kwargs)


class RouteAccessLog(AccessLogGenerator):
    """daphne's access log (NCSA-like lines on a stream) with the route instead of the URL
    (project/logs.py)."""

    def __call__(self, protocol, action, details):
        patterns = websocket_urlpatterns if protocol == "websocket" else None
        details = {**details, "path": route_of(details.get("path") or "/", patterns)}
        if "method" in details:
            details["method"] = method_of(str(details["method"]))
        super().__call__(protocol, action, details)
