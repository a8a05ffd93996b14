"""JSON errors for the web transports, in the native and OpenAI shapes: the shape of each
route, the refusals before a stream starts, and the headers clients act on."""
from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import JsonResponse

from generation.lifecycle.refusals import RequestInvalid
from generation.lifecycle.runtime import active_runs
from generation.lifecycle.scheduler import QueueFull
from generation.records.usage import RateLimited

logger = logging.getLogger(__name__)

LIMIT_MESSAGES = {
    "requests_per_minute": "This caller may start {allowed} generations a minute. Retry after the time given.",
    "concurrent_streams": "This caller may run {allowed} generations at once. Retry when one has finished.",
    "tokens_per_day": "This caller has used its {allowed} completion tokens for the day. Retry after the time given.",
}

ErrorShape = Callable[..., JsonResponse]

# Native codes that OpenAI clients know by another name.
OPENAI_CODES = {"unauthorized": "invalid_api_key"}


# Timeouts that a retry would only repeat: the same request stalls or runs as long again.
_FINAL_TIMEOUTS = ("stall", "total")


def error_response(status: int, error: dict, headers=None) -> JsonResponse:
    """A JSON error with the headers clients act on. `x-should-retry: false` (honoured by the
    official OpenAI SDKs, which otherwise retry 408, 409 and 5xx) marks an answer that a retry
    would only repeat or turn into a second generation. Expected answers (503 and 429
    refusals, 504 when a run hit one of its time limits) are logged here at WARNING
    instead of by Django at ERROR: they are load and limits, not faults."""
    response = JsonResponse({"error": error}, status=status, headers=headers)
    if (status < 500 and status not in (408, 429)) or error.get("timeout_source") in _FINAL_TIMEOUTS:
        response["x-should-retry"] = "false"
    if status in (429, 503, 504):
        logger.warning("request %s: %s (%s)", "timed out" if status == 504 else "refused", error.get("code"), status)
        response._has_been_logged = True  # noqa: SLF001 - Django's own flag: skip its ERROR line
    return response


def api_error(
    status: int, code: str, message: str, *, param: str | None = None, headers=None, **details
) -> JsonResponse:
    """The native error shape: {"error": {"code", "message"[, "param"][, details...]}}."""
    error = {"code": code, "message": message}
    if param:
        error["param"] = param
    error.update(details)
    return error_response(status, error, headers)


def openai_error(
    status: int, code: str, message: str, *, param: str | None = None, headers=None, **details
) -> JsonResponse:
    """The OpenAI error shape, for /v1: {"error": {"message", "type", "param", "code"[, details...]}}."""
    return error_response(status, openai_error_object(status, code, message, param=param, **details), headers)


def error_shape_for(path: str) -> ErrorShape | None:
    """The error shape of the API route `path` belongs to, or None outside the APIs."""
    if path == "/v1" or path.startswith("/v1/"):
        return openai_error
    if path.startswith("/api/"):
        return api_error
    return None


def openai_error_object(status: int, code: str, message: str, *, param: str | None = None, **details) -> dict:
    """The inner object of an OpenAI error, also sent as a stream's last chunk."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"message": message, "type": kind, "param": param, "code": OPENAI_CODES.get(code, code), **details}


def wrong_method(allowed: str, shape: ErrorShape = api_error) -> JsonResponse:
    """405 naming the method to use."""
    return shape(405, "method_not_allowed", f"Use {allowed}.", headers={"Allow": allowed})


def not_accepting(request, shape: ErrorShape = api_error) -> JsonResponse | None:
    """The error for a generation request this server will not take (wrong method,
    shutting down), or None."""
    if request.method != "POST":
        return wrong_method("POST", shape)
    if active_runs.draining:
        return shape(503, "shutting_down", "This server is shutting down. Retry shortly.", headers={"Retry-After": "5"})
    return None


def refusal(exc: Exception, shape: ErrorShape = api_error) -> JsonResponse:
    """The JSON error for a request refused before its stream started (one of lifecycle's REFUSALS)."""
    if isinstance(exc, RequestInvalid):
        logger.info("generation rejected: %s (%s)", exc.code, exc.status)
        return shape(exc.status, exc.code, exc.message, param=exc.param, **exc.details)
    if isinstance(exc, RateLimited):
        headers = {
            "Retry-After": str(exc.retry_after),
            "RateLimit-Limit": str(exc.allowed),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(exc.retry_after),
        }
        message = LIMIT_MESSAGES[exc.limit].format(allowed=exc.allowed)
        return shape(429, "rate_limited", message, headers=headers, limit=exc.limit)
    if isinstance(exc, QueueFull):
        return shape(
            503, "overloaded", "All model slots are busy and the queue is full. Retry later.",
            headers={"Retry-After": str(exc.retry_after)},
        )
    logger.error("model backend unavailable: %s", type(exc).__name__, exc_info=exc)
    return shape(503, "model_unavailable", "The model is not available right now.")
