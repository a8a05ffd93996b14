"""Logs name routes, never URLs: a path or query string is client input (project/logs.py)."""
import io
import logging

from django.test import AsyncClient

from project.http_server import RouteAccessLog
from project.logs import RequestRouteFilter, route_of

CANARY = "CANARY-7f3a9c"


def test_a_route_replaces_ids_queries_and_unknown_paths():
    assert route_of(f"/api/v1/generations?note={CANARY}") == "/api/v1/generations"
    assert route_of("/api/v1/generations/6f1d3c2e-0000-4000-8000-000000000000/cancel") == (
        "/api/v1/generations/<uuid:request_id>/cancel"
    )
    assert route_of(f"/{CANARY}/x") == "-"
    assert CANARY not in route_of(f"/v1/models/{CANARY}")
    assert route_of(f"/static/editor.{CANARY}.js") == "static/..."
    assert route_of("/") == "/"


def test_the_access_log_writes_the_route_and_a_known_method():
    stream = io.StringIO()
    log = RouteAccessLog(stream)
    log("http", "complete", {"client": "127.0.0.1:5", "method": CANARY, "status": 404, "size": 10,
                             "path": f"/v1/models/{CANARY}?q={CANARY}"})
    log("websocket", "connected", {"client": "127.0.0.1:5", "path": f"/ws/generations?t={CANARY}"})
    written = stream.getvalue()
    assert CANARY not in written
    assert '"- /v1/models/<path:model_id>" 404' in written and "WSCONNECT /ws/generations" in written


async def test_djangos_not_found_warning_names_the_route(caplog):
    handler_filter = RequestRouteFilter()
    logger = logging.getLogger("django.request")
    logger.addFilter(handler_filter)
    try:
        with caplog.at_level(logging.WARNING, logger="django.request"):
            response = await AsyncClient().get(f"/{CANARY}?q={CANARY}")
    finally:
        logger.removeFilter(handler_filter)
    assert response.status_code == 404
    assert caplog.records and CANARY not in caplog.text
