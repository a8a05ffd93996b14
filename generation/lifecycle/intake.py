"""The way into the lifecycle: redact a validated request's fields, build and tokenize its
prompt, check it fits the context, then queue and record it as a GenerationRun."""
from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping

from django.conf import settings

from generation.backends.base import Backend, SamplingParams
from generation.records.generations import Caller, RequestShape
from generation.records.usage import usage_admit
from redaction.fields import Locale, RequestRedaction, redact_fields, term_matchers

from .refusals import RequestInvalid
from .request_thread import release_request_thread
from .runner import GenerationRun, Limits, PreparedRequest
from .runtime import get_backend, get_scheduler, loaded_backend


def run_limits() -> Limits:
    return Limits(
        queue_timeout=settings.SLUICE_QUEUE_TIMEOUT_SECONDS,
        stall_timeout=settings.SLUICE_STALL_TIMEOUT_SECONDS,
        total_timeout=settings.SLUICE_TOTAL_TIMEOUT_SECONDS,
    )


# Below this many characters tokenizing takes tens of microseconds: cheaper than a thread hop.
INLINE_TOKENIZE_CHARS = 2000


def prompt_field(texts: Mapping[str, str]) -> str:
    """The native API's prompt builder: the prompt is its one field."""
    return texts["prompt"]


async def current_backend() -> Backend:
    """The process's backend, loaded in a thread on first use (BackendError if it cannot be)."""
    return loaded_backend() or await asyncio.to_thread(get_backend)


async def prepare_request(
    *,
    fields: Mapping[str, str],
    params: SamplingParams,
    backend: Backend,
    build_prompt: Callable[[Mapping[str, str]], str] = prompt_field,
    policies: Mapping[str, str] | None = None,
    locale: Locale | None = None,
) -> PreparedRequest:
    """Redact each field by its policy (422 on a rejected type; `policies` and `locale` as
    in redact_fields), build the model prompt from the redacted fields, then tokenize and
    check the context. Short inputs are handled inline: cheaper than a thread hop."""
    chars = sum(len(text) for text in fields.values())
    inline = chars <= INLINE_TOKENIZE_CHARS
    terms = term_matchers.cached() if not term_matchers.needs_check() else await asyncio.to_thread(term_matchers.current)
    redact = functools.partial(redact_fields, fields, terms=terms, policies=policies, locale=locale)
    redaction = redact() if inline else await asyncio.to_thread(redact)
    reject_if_needed(redaction)
    prompt = build_prompt(redaction.texts)
    prompt_tokens = backend.tokenize(prompt) if inline else await asyncio.to_thread(backend.tokenize, prompt)
    check_context(len(prompt_tokens), params.max_tokens, backend.info.context_length)
    shape = RequestShape(
        prompt_chars=chars,
        prompt_tokens=len(prompt_tokens),
        max_tokens=params.max_tokens,
        validation_result=redaction.validation_result,
        redaction_counts=redaction.counts,
    )
    return PreparedRequest(prompt_tokens=prompt_tokens, params=params, shape=shape, placeholders=redaction.mapping)


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


def reject_if_needed(redaction: RequestRedaction) -> None:
    """A field whose policy rejects a type it contains ends the request with a 422 naming
    the field and the types, never the value."""
    for field_name, types in redaction.rejected.items():
        raise RequestInvalid(
            422,
            "sensitive_data_rejected",
            f"'{field_name}' contains {', '.join(types)}, which this field does not accept. Remove it and retry.",
            field_name,
            types=list(types),
        )


async def open_run(
    *,
    caller: Caller,
    channel: str,
    fields: Mapping[str, str],
    params: SamplingParams,
    build_prompt: Callable[[Mapping[str, str]], str] = prompt_field,
    policies: Mapping[str, str] | None = None,
    locale: Locale | None = None,
) -> GenerationRun:
    """Prepare, queue and record a request whose redacted `fields` become the model prompt
    through `build_prompt` (the native API and /v1 completions: the one `prompt` field).
    Redaction uses the request's `locale` over its API key's. Raises one of REFUSALS before
    any response has started."""
    # The request's last sync call is done (admission reads off the request's thread): a
    # queued run must not hold that thread or its connection while it waits.
    release_request_thread()
    await usage_admit(api_key_id=caller.api_key_id, user_id=caller.user_id)  # 429 before any work
    backend = await current_backend()
    locale = locale.over(caller.locale) if locale is not None else caller.locale
    prepared = await prepare_request(
        fields=fields, params=params, backend=backend, build_prompt=build_prompt, policies=policies, locale=locale
    )
    run = GenerationRun(
        prepared=prepared,
        caller=caller,
        channel=channel,
        backend=backend,
        scheduler=get_scheduler(),
        limits=run_limits(),
    )
    await run.open()
    return run
