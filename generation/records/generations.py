"""Generation records: the only code that writes Generation rows, and their log line.

Rows are written at accept, start and finish (or when a run is found dead), never on the
token path, and hold operational shape only: no prompt, output or redacted value ever
reaches them or the log.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.db import InterfaceError, OperationalError
from django.utils import timezone

from generation.models import Generation
from redaction.fields import Locale

from . import metrics
from .db import off_request
from .usage import usage_record_tokens

generation_log = logging.getLogger("sluice.generation")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    """Who asked: a signed-in user, an API key (and its owner), or nobody (CLI)."""

    user_id: int | None = None
    api_key_id: int | None = None
    locale: Locale | None = field(default=None, compare=False)  # the key's redaction locale, if it sets one

    @property
    def identity(self) -> str | None:
        if self.api_key_id is not None:
            return f"key:{self.api_key_id}"
        if self.user_id is not None:
            return f"user:{self.user_id}"
        return None


@dataclass(frozen=True)
class RequestShape:
    """The operational shape of an accepted request: sizes and validation, no text."""

    prompt_chars: int
    prompt_tokens: int
    max_tokens: int
    validation_result: str = "ok"
    redaction_counts: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """How a run ended, as recorded on its row and in its log line."""

    status: str
    finished_at: datetime
    duration_ms: int
    cancel_reason: str = ""
    timeout_source: str = ""
    error_code: str = ""
    finish_reason: str = ""
    output_tokens: int = 0
    tokens_after_cancel: int = 0
    first_token_at: datetime | None = None
    ttft_ms: int | None = None
    tokens_per_second: float | None = None
    output_masked: dict = field(default_factory=dict)  # types the output guard masked, with counts
    disconnects: int = 0  # resumable runs: readers that left before the terminal event
    resumes: int = 0  # resumable runs: readers that came back


async def generation_accept(
    *,
    request_id,
    caller: Caller,
    channel: str,
    shape: RequestShape,
    model_name: str,
    model_version: str,
    owner: str,
    accepted_at: datetime,
    started_at: datetime | None = None,
) -> Generation:
    """Create the row for a request that passed validation: queued, or already running
    when it took a free slot at once (one write instead of two before the first token)."""
    started = started_at is not None
    return await off_request(
        Generation.objects.create,
        created_at=accepted_at,
        status=Generation.Status.RUNNING if started else Generation.Status.QUEUED,
        started_at=started_at,
        queue_ms=int((started_at - accepted_at).total_seconds() * 1000) if started else None,
        request_id=request_id,
        user_id=caller.user_id,
        api_key_id=caller.api_key_id,
        channel=channel,
        validation_result=shape.validation_result,
        redaction_counts=shape.redaction_counts,
        prompt_chars=shape.prompt_chars,
        prompt_tokens=shape.prompt_tokens,
        max_tokens=shape.max_tokens,
        model_name=model_name,
        model_version=model_version,
        owner=owner,
    )


async def generation_start(*, generation: Generation, queue_ms: int) -> None:
    """Mark the row running once a slot was taken."""
    generation.status = Generation.Status.RUNNING
    generation.started_at = timezone.now()
    generation.queue_ms = queue_ms
    await off_request(
        Generation.objects.filter(pk=generation.pk).update,
        status=generation.status, started_at=generation.started_at, queue_ms=queue_ms,
    )


async def generation_finish(*, generation: Generation, outcome: Outcome) -> None:
    """Write the final state and emit the run's single operational log line."""
    fields = {
        "status": outcome.status,
        "cancel_reason": outcome.cancel_reason,
        "timeout_source": outcome.timeout_source,
        "error_code": outcome.error_code,
        "finish_reason": outcome.finish_reason,
        "output_tokens": outcome.output_tokens,
        "tokens_after_cancel": outcome.tokens_after_cancel,
        "first_token_at": outcome.first_token_at,
        "finished_at": outcome.finished_at,
        "ttft_ms": outcome.ttft_ms,
        "duration_ms": outcome.duration_ms,
        "tokens_per_second": outcome.tokens_per_second,
        "disconnects": outcome.disconnects,
        "resumes": outcome.resumes,
    }
    if outcome.output_masked:
        fields["redaction_counts"] = {
            **generation.redaction_counts,
            **{f"output:{type_}": count for type_, count in outcome.output_masked.items()},
        }
    for name, value in fields.items():
        setattr(generation, name, value)
    await _write_finish(generation.pk, fields)
    log_generation(generation)
    metrics.observe_generation(generation)
    await usage_record_tokens(generation=generation)


async def generation_connection_counts(*, generation: Generation, disconnects: int, resumes: int) -> None:
    """Update a finished resumable run's connection counters (a reader left or came back
    after the row was finished)."""
    generation.disconnects, generation.resumes = disconnects, resumes
    await off_request(Generation.objects.filter(pk=generation.pk).update, disconnects=disconnects, resumes=resumes)


# Waits before retrying a failed finish write: enough to ride out a database restart. If the
# database stays away, the row is left to the heartbeat's sweep (interrupted / run_lost).
FINISH_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)


async def _write_finish(pk: int, fields: dict) -> None:
    for delay in (*FINISH_RETRY_DELAYS, None):
        try:
            await off_request(Generation.objects.filter(pk=pk).update, **fields)
            return
        except (OperationalError, InterfaceError) as exc:
            if delay is None:
                raise
            logger.warning("finishing a generation row failed (%s); retrying in %.1f s", type(exc).__name__, delay)
            await asyncio.sleep(delay)


LOG_FIELDS = (
    "request_id",
    "status",
    "channel",
    "prompt_chars",
    "prompt_tokens",
    "output_tokens",
    "ttft_ms",
    "duration_ms",
    "cancel_reason",
    "timeout_source",
    "validation_result",
    "model_version",
    "redaction_counts",  # counts by type, never values
)


def log_generation(generation: Generation) -> None:
    """One JSON line with exactly LOG_FIELDS: shape only, never text."""
    record = {name: getattr(generation, name) for name in LOG_FIELDS}
    record["request_id"] = str(record["request_id"])
    generation_log.info(json.dumps(record, separators=(",", ":")))


def generations_interrupt(*, rows: list[Generation], error_code: str) -> int:
    """Mark unfinished rows whose run is gone as `interrupted` (`error_code` says how it was
    lost), each with its log line; a row finished meanwhile is left alone. Returns how many."""
    now = timezone.now()
    interrupted = 0
    for row in rows:
        row.status = Generation.Status.INTERRUPTED
        row.finished_at = now
        row.duration_ms = int((now - row.created_at).total_seconds() * 1000)
        row.error_code = error_code
        fields = {name: getattr(row, name) for name in ("status", "finished_at", "duration_ms", "error_code")}
        if Generation.objects.filter(pk=row.pk, status__in=Generation.UNFINISHED_STATUSES).update(**fields):
            interrupted += 1
            log_generation(row)
            metrics.observe_generation(row)
    return interrupted
