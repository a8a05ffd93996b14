"""Turn a validated request into a PreparedRequest: tokenize off the event loop and
check that prompt plus max_tokens fit the model's context."""
from __future__ import annotations

import asyncio

from django.conf import settings

from . import services
from .backends.base import Backend
from .backends.registry import get_backend, loaded_backend
from .runner import GenerationRun, Limits, PreparedRequest
from .scheduler import Scheduler
from .validation import GenerationInput, check_context

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
    """Tokenize (long prompts in a thread: they take milliseconds) and check the context."""
    if len(payload.prompt) <= INLINE_TOKENIZE_CHARS:
        prompt_tokens = backend.tokenize(payload.prompt)
    else:
        prompt_tokens = await asyncio.to_thread(backend.tokenize, payload.prompt)
    check_context(len(prompt_tokens), payload.params.max_tokens, backend.info.context_length)
    shape = services.RequestShape(
        prompt_chars=len(payload.prompt), prompt_tokens=len(prompt_tokens), max_tokens=payload.params.max_tokens
    )
    return PreparedRequest(prompt_tokens=prompt_tokens, params=payload.params, shape=shape)


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
