"""Native API views: thin, async; the lifecycle lives in runner/services."""
from __future__ import annotations

import functools
import weakref

from django.conf import settings
from django.http import JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from .active import active_runs
from .collect import collected_response
from .events import completion_body
from .http import REFUSALS, api_error, authenticate, not_accepting, read_body, refusal, wrong_method
from .intake import open_run
from .models import Generation
from .runner import GenerationRun
from .streaming import SSE_HEADERS, Framing, sse_stream
from .validation import RequestInvalid, parse_json_body, validate_generation


class RunStreamingResponse(StreamingHttpResponse):
    """An SSE response (native framing unless told) that gives its run back if it is
    closed without being iterated."""

    def __init__(self, run: GenerationRun, framing: Framing | None = None) -> None:
        super().__init__(
            sse_stream(run.events(), heartbeat=settings.SLUICE_HEARTBEAT_SECONDS, framing=framing),
            content_type="text/event-stream",
            headers={**SSE_HEADERS, "X-Request-ID": str(run.request_id)},
        )
        self._run = run
        # A response dropped unsent (the client left while middleware still held it) is
        # never closed by Django: its run is then closed when the response is collected.
        weakref.finalize(self, run.close_soon)

    def close(self) -> None:
        super().close()
        self._run.close_soon()


@csrf_exempt
async def generation_create(request):
    """POST /api/v1/generations: SSE stream by default, one JSON object when asked."""
    if (refused := not_accepting(request)) is not None:
        return refused
    try:
        caller = await authenticate(request)
        payload = validate_generation(parse_json_body(read_body(request), request.content_type))
        channel = Generation.Channel.WEB if caller.api_key_id is None else Generation.Channel.API
        run = await open_run(payload=payload, caller=caller, channel=channel)
    except REFUSALS as exc:
        return refusal(exc)
    if _wants_stream(request, payload.stream):
        return RunStreamingResponse(run)
    body = functools.partial(completion_body, request_id=run.request_id, model=run.backend.info.name)
    return await collected_response(run, body=body, shape=api_error)


def _wants_stream(request, stream_flag: bool | None) -> bool:
    if stream_flag is not None:
        return stream_flag
    accept = request.headers.get("Accept", "")
    return not ("application/json" in accept and "text/event-stream" not in accept)


@csrf_exempt
async def generation_cancel(request, request_id):
    """POST /api/v1/generations/<id>/cancel: stop a queued or running generation you own."""
    if request.method != "POST":
        return wrong_method("POST")
    try:
        caller = await authenticate(request)
    except RequestInvalid as exc:
        return api_error(exc.status, exc.code, exc.message)
    run = active_runs.get(str(request_id))
    if run is None or run.caller.identity != caller.identity:
        owned = await Generation.objects.filter(
            request_id=request_id, user_id=caller.user_id, api_key_id=caller.api_key_id
        ).afirst()
        if owned is None:
            return api_error(404, "not_found", "No generation with that id belongs to you.")
        if owned.is_finished:
            return api_error(409, "already_finished", f"The generation already ended ({owned.status}).")
        return api_error(409, "not_on_this_server", "The generation is running on another server process.")
    cancelled = run.request_cancel(Generation.CancelReason.CLIENT_CANCEL)
    return JsonResponse({"id": str(request_id), "cancel_requested": cancelled}, status=202)
