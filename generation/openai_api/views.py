"""The /v1 views: thin and async. Same lifecycle as the native API (open_run ->
RunStreamingResponse or collected_response); OpenAI shapes from validation/responses."""
from __future__ import annotations

from collections.abc import Callable

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from generation.backends.base import Backend
from generation.http.auth import authenticate
from generation.http.bodies import parse_json_body, read_body
from generation.http.errors import not_accepting, openai_error, refusal, wrong_method
from generation.http.responses import RunStreamingResponse, collected_response
from generation.http.sse import DataFraming
from generation.lifecycle.intake import current_backend, open_run
from generation.lifecycle.refusals import REFUSALS, RequestInvalid
from generation.models import Generation

from .responses import Reply, model_list, model_object
from .validation import OpenAIRequest, validate_chat, validate_completion


@csrf_exempt
async def models(request):
    """GET /v1/models: the one loaded model, in OpenAI's list shape."""
    return await _describe(request, model_list)


@csrf_exempt
async def model_detail(request, model_id: str):
    """GET /v1/models/<id>: the loaded model, or 404 model_not_found."""
    return await _describe(request, model_object, model_id=model_id)


@csrf_exempt
async def chat_completions(request):
    """POST /v1/chat/completions."""
    return await _generate(request, validate_chat, chat=True)


@csrf_exempt
async def completions(request):
    """POST /v1/completions (legacy)."""
    return await _generate(request, validate_completion, chat=False)


@csrf_exempt
async def not_found(request, *args, **kwargs):
    """Any other /v1 path: 404 in OpenAI's shape."""
    return openai_error(
        404, "not_found", "Unknown endpoint. This server has GET /v1/models, POST /v1/chat/completions and "
        "POST /v1/completions."
    )


async def _describe(request, shape: Callable, model_id: str | None = None) -> JsonResponse:
    if request.method != "GET":
        return wrong_method("GET", openai_error)
    try:
        await authenticate(request, allow_session=False)
        backend = await current_backend()
        if model_id is not None:
            check_model(model_id, backend)
    except REFUSALS as exc:
        return refusal(exc, openai_error)
    return JsonResponse(shape(backend.info))


async def _generate(request, validate: Callable[[dict], OpenAIRequest], *, chat: bool):
    if (refused := not_accepting(request, openai_error)) is not None:
        return refused
    try:
        caller = await authenticate(request, allow_session=False)
        body = validate(parse_json_body(read_body(request), request.content_type))
        backend = await current_backend()
        check_model(body.model, backend)
        run = await open_run(
            caller=caller,
            channel=Generation.Channel.OPENAI,
            fields=body.fields,
            params=body.params,
            policies=body.policies,
            build_prompt=body.prompt_builder(backend),
        )
    except REFUSALS as exc:
        return refusal(exc, openai_error)
    reply = Reply(chat=chat, request_id=run.request_id, info=backend.info, include_usage=body.include_usage)
    if body.stream:
        return RunStreamingResponse(run, DataFraming(reply.payloads))
    return await collected_response(run, body=reply.body, shape=openai_error)


def check_model(model_id: str, backend: Backend) -> None:
    """Only the loaded model is served; another id is OpenAI's 404 model_not_found."""
    if model_id != backend.info.name:
        message = f"This server serves only the model '{backend.info.name}' (see GET /v1/models)."
        raise RequestInvalid(404, "model_not_found", message, "model")
