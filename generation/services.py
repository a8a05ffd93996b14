"""Lifecycle services: the only code that writes Generation and ApiKey rows.

Rows are written at accept, start and finish only, never on the token path, and hold
operational shape only: no prompt, output or redacted value ever reaches them or the log.
"""
from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from . import metrics
from .models import ApiKey, Generation

generation_log = logging.getLogger("sluice.generation")

API_KEY_PREFIX = "sluice"
_LAST_USED_GRANULARITY = timedelta(minutes=1)


@dataclass(frozen=True)
class Caller:
    """Who asked: a signed-in user, an API key (and its owner), or nobody (CLI)."""

    user_id: int | None = None
    api_key_id: int | None = None

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
    return await Generation.objects.acreate(
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
    await Generation.objects.filter(pk=generation.pk).aupdate(
        status=generation.status, started_at=generation.started_at, queue_ms=queue_ms
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
    }
    if outcome.output_masked:
        fields["redaction_counts"] = {
            **generation.redaction_counts,
            **{f"output:{type_}": count for type_, count in outcome.output_masked.items()},
        }
    for name, value in fields.items():
        setattr(generation, name, value)
    await Generation.objects.filter(pk=generation.pk).aupdate(**fields)
    log_generation(generation)
    metrics.observe_generation(generation)


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
    "redaction_counts",  # added by the redaction issue: counts by type, never values
)


def log_generation(generation: Generation) -> None:
    """One JSON line with exactly LOG_FIELDS: shape only, never text."""
    record = {name: getattr(generation, name) for name in LOG_FIELDS}
    record["request_id"] = str(record["request_id"])
    generation_log.info(json.dumps(record, separators=(",", ":")))


def api_key_create(*, name: str, user=None) -> tuple[ApiKey, str]:
    """Create a key; return the row and the raw key, which is shown once and never stored."""
    prefix = secrets.token_hex(4)
    raw_key = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(name=name, prefix=prefix, key_hash=hash_api_key(raw_key), user=user)
    return api_key, raw_key


def api_key_revoke(*, api_key: ApiKey) -> None:
    """Revoke a key; this process stops accepting it at once."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    _verified_keys.pop(api_key.key_hash, None)


def hash_api_key(raw_key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is safe; a slow password hash would add
    # latency to every request.
    return hashlib.sha256(raw_key.encode()).hexdigest()


@dataclass(frozen=True)
class _VerifiedKey:
    api_key_id: int
    user_id: int | None
    verified_at: float


# Hash -> verified key, so the hot path skips a database round trip (a thread hop and, under
# ASGI, a fresh connection per request). Revocation clears this process's entry at once;
# other processes notice within API_KEY_CACHE_SECONDS.
_verified_keys: dict[str, _VerifiedKey] = {}


async def api_key_authenticate(*, raw_key: str) -> Caller | None:
    """The caller for an active key matching `raw_key`, or None."""
    parts = raw_key.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        return None
    key_hash = hash_api_key(raw_key)
    cached = _verified_keys.get(key_hash)
    if cached is not None and time.monotonic() - cached.verified_at < settings.SLUICE_API_KEY_CACHE_SECONDS:
        return Caller(user_id=cached.user_id, api_key_id=cached.api_key_id)
    api_key = await ApiKey.objects.filter(prefix=parts[1], revoked_at__isnull=True).afirst()
    if api_key is None or not secrets.compare_digest(api_key.key_hash, key_hash):
        _verified_keys.pop(key_hash, None)
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > _LAST_USED_GRANULARITY:
        await ApiKey.objects.filter(pk=api_key.pk).aupdate(last_used_at=now)
    _verified_keys[key_hash] = _VerifiedKey(api_key.pk, api_key.user_id, time.monotonic())
    return Caller(user_id=api_key.user_id, api_key_id=api_key.pk)
