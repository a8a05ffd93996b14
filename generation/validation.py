"""Validation of native API request bodies. Error messages name fields and limits, never
the values sent (a prompt must not come back in an error)."""
from __future__ import annotations

import json
from dataclasses import dataclass

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .backends.base import SamplingParams


class RequestInvalid(Exception):
    """A 4xx the client can fix. `message` is safe to show and to log."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None, **details) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.details = details  # extra safe fields for the error body (e.g. rejected types)


class GenerationBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    stream: bool | None = None


@dataclass(frozen=True)
class GenerationInput:
    prompt: str
    params: SamplingParams
    stream: bool | None


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list of strings",
    "int_from_float": "an integer",
}


def parse_json_body(body: bytes, content_type: str) -> dict:
    """Decode a JSON object body or raise RequestInvalid (415, 400)."""
    if content_type != "application/json":
        raise RequestInvalid(415, "unsupported_media_type", "Send the request body as application/json.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestInvalid(400, "invalid_encoding", "The request body is not valid UTF-8.") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise RequestInvalid(400, "invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise RequestInvalid(400, "invalid_json", "The request body must be a JSON object.")
    return data


def validate_generation(data: dict) -> GenerationInput:
    """Check types, ranges and sizes of a native generation request."""
    try:
        body = GenerationBody.model_validate(data)
    except ValidationError as exc:
        raise _first_error(exc) from None
    if not body.prompt.strip():
        raise RequestInvalid(400, "invalid_request", "'prompt' must not be empty.", "prompt")
    if len(body.prompt) > settings.SLUICE_MAX_PROMPT_CHARS:
        raise RequestInvalid(
            413,
            "prompt_too_large",
            f"'prompt' is longer than {settings.SLUICE_MAX_PROMPT_CHARS} characters.",
            "prompt",
        )
    max_tokens = body.max_tokens or settings.SLUICE_DEFAULT_MAX_TOKENS
    if max_tokens > settings.SLUICE_MAX_TOKENS:
        raise RequestInvalid(
            400, "invalid_request", f"'max_tokens' must be at most {settings.SLUICE_MAX_TOKENS}.", "max_tokens"
        )
    stops = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    if len(stops) > settings.SLUICE_MAX_STOP_SEQUENCES or any(not stop or len(stop) > 64 for stop in stops):
        raise RequestInvalid(
            400,
            "invalid_request",
            f"'stop' takes at most {settings.SLUICE_MAX_STOP_SEQUENCES} non-empty strings of up to 64 characters.",
            "stop",
        )
    params = SamplingParams(
        max_tokens=max_tokens, temperature=body.temperature, top_p=body.top_p, stop=stops, seed=body.seed
    )
    return GenerationInput(prompt=body.prompt, params=params, stream=body.stream)


def check_context(prompt_tokens: int, max_tokens: int, context_length: int) -> None:
    """Reject a request whose prompt plus max_tokens cannot fit the model's context."""
    if prompt_tokens + max_tokens > context_length:
        raise RequestInvalid(
            400,
            "context_length_exceeded",
            f"The prompt is {prompt_tokens} tokens and max_tokens is {max_tokens}; together they exceed "
            f"the model's context of {context_length} tokens.",
            "prompt",
        )


def _first_error(exc: ValidationError) -> RequestInvalid:
    error = exc.errors(include_input=False, include_url=False)[0]
    field = str(error["loc"][0]) if error["loc"] else "body"
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == "missing":
        return RequestInvalid(400, "invalid_request", f"'{field}' is required.", field)
    if kind == "extra_forbidden":
        return RequestInvalid(400, "invalid_request", f"Unknown field '{field[:40]}'.", field[:40])
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        limit = next(iter(context.values()), "")
        return RequestInvalid(400, "invalid_request", f"'{field}' must be {bound} {limit}.", field)
    words = "a string or a list of strings" if field == "stop" else _TYPE_WORDS.get(kind)
    return RequestInvalid(400, "invalid_request", f"'{field}' must be {words or 'of the documented type'}.", field)
