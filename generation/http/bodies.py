"""Request bodies, shared by the JSON transports: reading and parsing the body, and the
field checks and pydantic error wording that the native API, /v1 and the editor share.
Error messages name fields and limits, never the values sent."""
from __future__ import annotations

import json
import re

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from pydantic import ValidationError

from generation.lifecycle.refusals import RequestInvalid

_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list of strings",
    "int_from_float": "an integer",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}


def read_body(request) -> bytes:
    """The request body; RequestInvalid(413) past DATA_UPLOAD_MAX_MEMORY_SIZE."""
    try:
        return request.body
    except RequestDataTooBig:
        raise RequestInvalid(413, "request_too_large", "The request body is too large.") from None


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
    except RecursionError:
        raise _too_deep() from None
    except ValueError:
        raise RequestInvalid(400, "invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise RequestInvalid(400, "invalid_json", "The request body must be a JSON object.")
    check_json_values(data)
    return data


MAX_JSON_DEPTH = 16  # the deepest valid body (chat content parts) is four levels
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_json_values(data: dict) -> None:
    """Refuse what JSON allows but no field can use: nesting past MAX_JSON_DEPTH, and lone
    surrogate escapes ("\\ud800"), which are not text and cannot be encoded for the model.
    Iterative, so no body can exhaust the stack."""
    pending: list[tuple[object, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise RequestInvalid(
                    400, "invalid_encoding", "The request body contains a lone surrogate escape, which is not text."
                )
        elif isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise _too_deep()
            items = value.items() if isinstance(value, dict) else ((None, item) for item in value)
            for key, item in items:
                pending.append((item, depth + 1))
                if key is not None:
                    pending.append((key, depth + 1))


def _too_deep() -> RequestInvalid:
    return RequestInvalid(400, "invalid_json", f"The request body is nested more than {MAX_JSON_DEPTH} levels deep.")


def check_prompt_chars(chars: int, param: str, message: str) -> None:
    """413 when the prompt text is over SLUICE_MAX_PROMPT_CHARS."""
    if chars > settings.SLUICE_MAX_PROMPT_CHARS:
        raise RequestInvalid(413, "prompt_too_large", message, param)


def check_max_tokens(value: int | None, param: str = "max_tokens") -> int:
    """The requested max_tokens (the default when absent), at most SLUICE_MAX_TOKENS."""
    max_tokens = value or settings.SLUICE_DEFAULT_MAX_TOKENS
    if max_tokens > settings.SLUICE_MAX_TOKENS:
        raise RequestInvalid(400, "invalid_request", f"'{param}' must be at most {settings.SLUICE_MAX_TOKENS}.", param)
    return max_tokens


def check_stops(stop: str | list[str] | None) -> tuple[str, ...]:
    """Stop sequences: at most SLUICE_MAX_STOP_SEQUENCES, each 1 to 64 characters."""
    stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
    if len(stops) > settings.SLUICE_MAX_STOP_SEQUENCES or any(not item or len(item) > 64 for item in stops):
        raise RequestInvalid(
            400,
            "invalid_request",
            f"'stop' takes at most {settings.SLUICE_MAX_STOP_SEQUENCES} non-empty strings of up to 64 characters.",
            "stop",
        )
    return stops


# Field names an error may repeat back: those of any Sluice or OpenAI API body. Any other
# unknown name is input and is not echoed.
KNOWN_FIELD_NAMES = frozenset(
    """prompt messages model max_tokens max_completion_tokens temperature top_p top_k min_p stop seed
    stream stream_options include_usage include_obfuscation role content name type text n user
    metadata store logprobs top_logprobs tools tool_choice functions function_call response_format
    frequency_penalty presence_penalty logit_bias best_of echo suffix modalities audio prediction
    web_search_options reasoning_effort service_tier parallel_tool_calls refusal annotations
    tool_calls repeat_penalty grammar json_schema resumable fields policies redaction languages region""".split()
)

# Words for fields whose type is a union, where pydantic's own words would name one member.
FIELD_WORDS = {"stop": "a string or a list of strings"}
_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none"}


def validation_error(exc: ValidationError, field_words: dict[str, str] = FIELD_WORDS) -> RequestInvalid:
    """The first pydantic error as a 400 naming the field (e.g. `messages[1].role`), never the value."""
    error = exc.errors(include_input=False, include_url=False)[0]
    kind, context, loc = error["type"], error.get("ctx") or {}, error["loc"]
    if kind == "extra_forbidden":
        name = str(loc[-1])
        if name not in KNOWN_FIELD_NAMES:  # a name is input too, and may carry data: do not echo it
            parent = field_path(loc[:-1]) if len(loc) > 1 else None
            return RequestInvalid(400, "invalid_request", "The request has an unknown field.", parent)
        field = f"{field_path(loc[:-1])}.{name}" if len(loc) > 1 else name
        return RequestInvalid(400, "invalid_request", f"Unknown field '{field}'.", field)
    field = field_path(loc)
    if kind == "missing":
        return RequestInvalid(400, "invalid_request", f"'{field}' is required.", field)
    if kind in _BOUNDS:
        limit = next(iter(context.values()), "")
        return RequestInvalid(400, "invalid_request", f"'{field}' must be {_BOUNDS[kind]} {limit}.", field)
    if kind == "literal_error":
        expected = context.get("expected", "one of the documented values")
        return RequestInvalid(400, "invalid_request", f"'{field}' must be {expected}.", field)
    if kind == "too_short":
        return RequestInvalid(400, "invalid_request", f"'{field}' must not be empty.", field)
    words = field_words.get(field.rpartition(".")[2].partition("[")[0]) or _TYPE_WORDS.get(kind)
    return RequestInvalid(400, "invalid_request", f"'{field}' must be {words or 'of the documented type'}.", field)


def field_path(loc) -> str:
    """A pydantic location as a field path: ("messages", 1, "content") -> "messages[1].content".
    It stops at a union member's tag (e.g. "list[str]"), so the error names the field."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.isidentifier() and part.islower() and part not in _TYPE_TAGS:
            path += f".{part}" if path else part
        else:
            break
    return path or "body"
