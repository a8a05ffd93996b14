"""The native API's request body (`POST /api/v1/generations`): types, ranges and sizes.
Messages name fields and limits, never the values sent."""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from generation.backends.base import SamplingParams
from generation.http.bodies import check_max_tokens, check_prompt_chars, check_stops, validation_error
from generation.lifecycle.refusals import RequestInvalid
from redaction.fields import Locale, parse_locale


class RedactionOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    languages: list[str] | None = None
    region: str | None = None


class GenerationBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    stream: bool | None = None
    resumable: bool = False
    redaction: RedactionOptions | None = None


@dataclass(frozen=True)
class GenerationInput:
    prompt: str
    params: SamplingParams
    stream: bool | None
    resumable: bool = False
    locale: Locale | None = None  # the request's redaction locale, over its key's


def validate_generation(data: dict) -> GenerationInput:
    """Check types, ranges and sizes of a native generation request."""
    try:
        body = GenerationBody.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None
    if not body.prompt.strip():
        raise RequestInvalid(400, "invalid_request", "'prompt' must not be empty.", "prompt")
    too_long = f"'prompt' is longer than {settings.SLUICE_MAX_PROMPT_CHARS} characters."
    check_prompt_chars(len(body.prompt), "prompt", too_long)
    params = SamplingParams(
        max_tokens=check_max_tokens(body.max_tokens),
        temperature=body.temperature,
        top_p=body.top_p,
        stop=check_stops(body.stop),
        seed=body.seed,
    )
    return GenerationInput(
        prompt=body.prompt, params=params, stream=body.stream, resumable=body.resumable, locale=_locale(body.redaction)
    )


def _locale(options: RedactionOptions | None) -> Locale | None:
    if options is None:
        return None
    try:
        return parse_locale(languages=options.languages, region=options.region)
    except ValueError as exc:
        param = "redaction.languages" if "languages" in str(exc) else "redaction.region"
        raise RequestInvalid(400, "invalid_request", f"'{param}': {exc}", param) from None
