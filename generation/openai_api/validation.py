"""Validation of /v1 request bodies: what is supported, what is accepted and ignored, and
what is refused with a 400 naming the parameter. Messages name fields and limits, never values."""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from generation.backends.base import Backend, ChatTemplateError, SamplingParams
from generation.http.bodies import (
    FIELD_WORDS,
    check_max_tokens,
    check_prompt_chars,
    check_stops,
    validation_error,
)
from generation.lifecycle.intake import prompt_field
from generation.lifecycle.refusals import RequestInvalid

# Harmless metadata: accepted and ignored.
IGNORED = ("user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key", "parallel_tool_calls")
# Features this server does not have: accepted only when absent, null or at their neutral value.
NEUTRAL = {"n": (1,), "frequency_penalty": (0, 0.0), "presence_penalty": (0, 0.0), "logit_bias": ({},)}
CHAT_NEUTRAL = {
    **NEUTRAL, "logprobs": (False,), "top_logprobs": (0,), "tools": ([],), "functions": ([],),
    "tool_choice": ("none",), "function_call": ("none",), "response_format": ({"type": "text"},),
    "modalities": (["text"],), "audio": (), "prediction": (), "web_search_options": (), "reasoning_effort": (),
}
COMPLETION_NEUTRAL = {**NEUTRAL, "logprobs": (), "best_of": (1,), "echo": (False,), "suffix": ("",)}
# What an assistant message echoed back from an earlier response may carry besides its text.
MESSAGE_NEUTRAL = {"refusal": (), "annotations": ([],), "audio": (), "tool_calls": ([],), "function_call": ()}
WORDS = {
    **FIELD_WORDS, "messages": "a list of message objects",
    "content": 'a string or a list of {"type": "text", "text": ...} parts',
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class StreamOptions(_Strict):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None  # accepted, ignored: nothing here needs padding


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None  # accepted, ignored


class _Body(_Strict):
    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    stream: bool | None = None
    stream_options: StreamOptions | None = None


class ChatBody(_Body):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)


class CompletionBody(_Body):
    prompt: str


@dataclass(frozen=True)
class OpenAIRequest:
    """A validated /v1 request. `fields` are the texts to redact, by field name; `roles`
    (chat only) gives each field's role, in order."""

    model: str
    params: SamplingParams
    stream: bool
    include_usage: bool
    fields: dict[str, str]
    roles: tuple[str, ...] = ()

    @property
    def policies(self) -> dict[str, str]:
        """Every text is redacted with the API prompt's policy."""
        return dict.fromkeys(self.fields, "prompt")

    def prompt_builder(self, backend: Backend) -> Callable[[Mapping[str, str]], str]:
        """The model prompt from the redacted texts: for chat, the model's chat template."""
        if not self.roles:
            return prompt_field

        def build(texts: Mapping[str, str]) -> str:
            messages = [{"role": role, "content": texts[name]} for role, name in zip(self.roles, self.fields)]
            try:
                return backend.chat_prompt(messages)
            except ChatTemplateError as exc:
                raise RequestInvalid(400, "invalid_request", str(exc), "messages") from None

        return build


def validate_chat(data: dict) -> OpenAIRequest:
    """POST /v1/chat/completions."""
    _refuse_unsupported(data, CHAT_NEUTRAL)
    for index, message in enumerate(data.get("messages") if isinstance(data.get("messages"), list) else ()):
        if isinstance(message, dict):
            _refuse_unsupported_message(message, f"messages[{index}]")
    body = _parse(ChatBody, data)
    contents = [_text(message.content) for message in body.messages]
    limit = "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"
    check_prompt_chars(sum(map(len, contents)), "messages", _too_long("Together the messages are"))
    if not any(content.strip() for content in contents):
        raise RequestInvalid(400, "invalid_request", "'messages' must contain some text.", "messages")
    roles = tuple("system" if message.role == "developer" else message.role for message in body.messages)
    fields = {f"messages[{index}].content": content for index, content in enumerate(contents)}
    return _request(body, fields, check_max_tokens(body.max_completion_tokens or body.max_tokens, limit), roles)


def validate_completion(data: dict) -> OpenAIRequest:
    """POST /v1/completions (legacy): one prompt string."""
    _refuse_unsupported(data, COMPLETION_NEUTRAL)
    if isinstance(prompt := data.get("prompt"), list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise RequestInvalid(
                400, "invalid_request", "'prompt' must be a string or a list of exactly one string: this server "
                "makes one completion per request, and token arrays are not supported.", "prompt"
            )
        data = {**data, "prompt": prompt[0]}  # langchain's OpenAI class always sends a list
    body = _parse(CompletionBody, data)
    if not body.prompt.strip():
        raise RequestInvalid(400, "invalid_request", "'prompt' must not be empty.", "prompt")
    check_prompt_chars(len(body.prompt), "prompt", _too_long("'prompt' is"))
    return _request(body, {"prompt": body.prompt}, check_max_tokens(body.max_tokens))


def _request(body: _Body, fields: dict[str, str], max_tokens: int, roles: tuple[str, ...] = ()) -> OpenAIRequest:
    if body.stream_options is not None and not body.stream:
        message = "'stream_options' is only allowed when 'stream' is true."
        raise RequestInvalid(400, "invalid_request", message, "stream_options")
    params = SamplingParams(
        max_tokens=max_tokens,
        temperature=1.0 if body.temperature is None else body.temperature,  # OpenAI's defaults
        top_p=1.0 if body.top_p is None else body.top_p,
        stop=check_stops(body.stop),
        seed=body.seed,
    )
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return OpenAIRequest(body.model, params, bool(body.stream), include_usage, fields, roles)


def _parse(model: type[_Body], data: dict) -> _Body:
    try:
        return model.model_validate({key: value for key, value in data.items() if key not in IGNORED})
    except ValidationError as exc:
        raise validation_error(exc, WORDS) from None


def _refuse_unsupported(data: dict, neutral: Mapping[str, tuple], prefix: str = "") -> None:
    """400 for a feature this server does not have; its neutral values are dropped from `data`."""
    for name, allowed in neutral.items():
        if name in data:
            value = data.pop(name)
            if value is not None and not any(type(value) is type(ok) and value == ok for ok in allowed):
                param = f"{prefix}{name}"
                scalar = allowed and isinstance(allowed[0], (int, str))
                only = f"; only {json.dumps(allowed[0])} is accepted" if scalar else ""
                message = f"'{param}' is not supported by this server{only}."
                raise RequestInvalid(400, "unsupported_parameter", message, param)


def _refuse_unsupported_message(message: dict, path: str) -> None:
    if message.get("role") in ("tool", "function"):
        raise RequestInvalid(
            400, "unsupported_value", "Tool and function messages are not supported by this server.", f"{path}.role"
        )
    _refuse_unsupported(message, MESSAGE_NEUTRAL, f"{path}.")
    parts = message.get("content")
    for index, part in enumerate(parts if isinstance(parts, list) else ()):
        if isinstance(part, dict) and part.get("type") != "text":
            raise RequestInvalid(
                400, "unsupported_value",
                "Only text content parts are supported by this server (no images, audio or files).",
                f"{path}.content[{index}].type",
            )


def _text(content: str | list[TextPart]) -> str:
    return content if isinstance(content, str) else "\n".join(part.text for part in content)


def _too_long(subject: str) -> str:
    return f"{subject} longer than {settings.SLUICE_MAX_PROMPT_CHARS} characters."
