"""Turn a validated request into a PreparedRequest: tokenize off the event loop and
check that prompt plus max_tokens fit the model's context."""
from __future__ import annotations

import asyncio

from django.conf import settings

from redaction.requests import RequestRedaction, redact_fields, term_matchers

from . import services
from .backends.base import Backend
from .backends.registry import get_backend, loaded_backend
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


async def prepare_request(payload: GenerationInput, backend: Backend) -> PreparedRequest:
    """Redact the prompt by its field policy (422 on a rejected type), then tokenize and
    check the context. Short prompts are handled inline: cheaper than a thread hop."""
    inline = len(payload.prompt) <= INLINE_TOKENIZE_CHARS
    terms = term_matchers.cached() if not term_matchers.needs_check() else await asyncio.to_thread(term_matchers.current)
    fields = {"prompt": payload.prompt}
    redaction = redact_fields(fields, terms=terms) if inline else await asyncio.to_thread(redact_fields, fields, terms=terms)
    reject_if_needed(redaction)
    prompt = redaction.texts["prompt"]
    prompt_tokens = backend.tokenize(prompt) if inline else await asyncio.to_thread(backend.tokenize, prompt)
    check_context(len(prompt_tokens), payload.params.max_tokens, backend.info.context_length)
    shape = services.RequestShape(
        prompt_chars=len(payload.prompt),
        prompt_tokens=len(prompt_tokens),
        max_tokens=payload.params.max_tokens,
        validation_result=redaction.validation_result,
        redaction_counts=redaction.counts,
    )
    return PreparedRequest(prompt_tokens=prompt_tokens, params=payload.params, shape=shape, placeholders=redaction.mapping)


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


async def open_run(*, payload: GenerationInput, caller: services.Caller, channel: str) -> GenerationRun:
    """Prepare, queue and record a request. Raises RequestInvalid or QueueFull before any
    response has started."""
    backend = loaded_backend() or await asyncio.to_thread(get_backend)
    prepared = await prepare_request(payload, backend)
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
