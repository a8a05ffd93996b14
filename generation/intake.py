"""Turn a validated request into a PreparedRequest: tokenize off the event loop and
check that prompt plus max_tokens fit the model's context."""
from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping

from django.conf import settings

from redaction.requests import RequestRedaction, redact_fields, term_matchers

from . import services
from .backends.base import Backend, SamplingParams
from .backends.registry import get_backend, loaded_backend
from .remote_cancel import ensure_listener
from .runner import GenerationRun, Limits, PreparedRequest
from .scheduler import Scheduler
from .validation import GenerationInput, RequestInvalid, check_context

_scheduler: Scheduler | None = None


def get_scheduler() -> Scheduler:
    global _scheduler
    if _scheduler is None:
        _scheduler = Scheduler(slots=settings.SLUICE_SLOTS, max_queue=settings.SLUICE_MAX_QUEUE)
    return _scheduler


def reset_scheduler() -> None:
    global _scheduler
    _scheduler = None


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
) -> PreparedRequest:
    """Redact each field by its policy (422 on a rejected type; `policies` as in
    redact_fields), build the model prompt from the redacted fields, then tokenize and
    check the context. Short inputs are handled inline: cheaper than a thread hop."""
    chars = sum(len(text) for text in fields.values())
    inline = chars <= INLINE_TOKENIZE_CHARS
    terms = term_matchers.cached() if not term_matchers.needs_check() else await asyncio.to_thread(term_matchers.current)
    redact = functools.partial(redact_fields, fields, terms=terms, policies=policies)
    redaction = redact() if inline else await asyncio.to_thread(redact)
    reject_if_needed(redaction)
    prompt = build_prompt(redaction.texts)
    prompt_tokens = backend.tokenize(prompt) if inline else await asyncio.to_thread(backend.tokenize, prompt)
    check_context(len(prompt_tokens), params.max_tokens, backend.info.context_length)
    shape = services.RequestShape(
        prompt_chars=chars,
        prompt_tokens=len(prompt_tokens),
        max_tokens=params.max_tokens,
        validation_result=redaction.validation_result,
        redaction_counts=redaction.counts,
    )
    return PreparedRequest(prompt_tokens=prompt_tokens, params=params, shape=shape, placeholders=redaction.mapping)


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
    caller: services.Caller,
    channel: str,
    payload: GenerationInput | None = None,
    fields: Mapping[str, str] | None = None,
    params: SamplingParams | None = None,
    build_prompt: Callable[[Mapping[str, str]], str] = prompt_field,
    policies: Mapping[str, str] | None = None,
) -> GenerationRun:
    """Prepare, queue and record a request: either a native `payload` (one prompt) or
    several redacted `fields` turned into a prompt by `build_prompt` (the editor, chat).
    Raises RequestInvalid or QueueFull before any response has started."""
    if payload is not None:
        fields, params = {"prompt": payload.prompt}, payload.params
    ensure_listener()  # admin cancels from any process reach the runs this process serves
    backend = await current_backend()
    prepared = await prepare_request(
        fields=fields, params=params, backend=backend, build_prompt=build_prompt, policies=policies
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
