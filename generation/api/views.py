"""Native API views (`/api/v1/`): thin and async; the lifecycle does the work."""
from __future__ import annotations

import functools

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from generation.http.auth import authenticate
from generation.http.bodies import parse_json_body, read_body
from generation.http.errors import api_error, not_accepting, refusal, wrong_method
from generation.http.responses import LoggedStreamingResponse, RunStreamingResponse, collected_response
from generation.lifecycle.events import completion_body
from generation.lifecycle.intake import open_run
from generation.lifecycle.refusals import REFUSALS, RequestInvalid
from generation.lifecycle.relay import make_resumable, open_resume
from generation.models import Generation
from generation.ops.remote_cancel import generation_cancel_request

from .validation import validate_generation


@csrf_exempt
async def generation_create(request):
    """POST /api/v1/generations: SSE stream by default, one JSON object when asked."""
    if (refused := not_accepting(request)) is not None:
        return refused
    try:
        caller = await authenticate(request)
        payload = validate_generation(parse_json_body(read_body(request), request.content_type))
        channel = Generation.Channel.WEB if caller.api_key_id is None else Generation.Channel.API
        run = await open_run(
            caller=caller, channel=channel, fields={"prompt": payload.prompt}, params=payload.params,
            locale=payload.locale,
        )
    except REFUSALS as exc:
        return refusal(exc)
    if _wants_stream(request, payload.stream):
        if payload.resumable:
            held = make_resumable(run)
            return LoggedStreamingResponse(run.request_id, held.read_events(0, resume=False))
        return RunStreamingResponse(run)
    body = functools.partial(completion_body, request_id=run.request_id, model=run.backend.info.name)
    return await collected_response(run, body=body, shape=api_error)


def _wants_stream(request, stream_flag: bool | None) -> bool:
    if stream_flag is not None:
        return stream_flag
    accept = request.headers.get("Accept", "")
    return not ("application/json" in accept and "text/event-stream" not in accept)


CANCEL_ERRORS = {
    "not_found": "No generation with that id belongs to you.",
    "already_finished": "The generation already ended ({status}).",
    "cancel_unavailable": "The cancel could not reach the server running the generation. Retry shortly.",
}


@csrf_exempt
async def generation_cancel(request, request_id):
    """POST /api/v1/generations/<id>/cancel: stop a queued or running generation you own,
    whichever server process runs it."""
    if request.method != "POST":
        return wrong_method("POST")
    try:
        caller = await authenticate(request)
    except RequestInvalid as exc:
        return api_error(exc.status, exc.code, exc.message)
    answer = await generation_cancel_request(request_id=request_id, caller=caller)
    if answer.status != 202:
        message = CANCEL_ERRORS[answer.code].format(status=answer.generation_status)
        headers = {"Retry-After": "2"} if answer.status == 503 else None
        return api_error(answer.status, answer.code, message, headers=headers)
    return JsonResponse({"id": str(request_id), "cancel_requested": answer.cancel_requested}, status=202)


@csrf_exempt
async def generation_events(request, request_id):
    """GET /api/v1/generations/<id>/events: resume a resumable generation you own after the
    event id in `Last-Event-ID` (or `?last_event_id=`; 0 replays from the start)."""
    if request.method != "GET":
        return wrong_method("GET")
    try:
        caller = await authenticate(request)
        after = _last_event_id(request)
        events = await open_resume(request_id=request_id, caller=caller, after=after)
    except RequestInvalid as exc:
        return api_error(exc.status, exc.code, exc.message, param=exc.param)
    return LoggedStreamingResponse(request_id, events)


def _last_event_id(request) -> int:
    raw = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id") or "0"
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise RequestInvalid(400, "invalid_request", "'last_event_id' must be a whole number.", "last_event_id")
    return int(raw)
