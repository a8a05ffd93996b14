"""Per-caller limits (an API key, or a signed-in user): requests per minute, concurrent
streams and completion tokens per day. Counters live in SLUICE_LIMITS_URL (Redis shared by
every process; in-process memory for the embedded single process); concurrent streams are
counted from the Generation rows themselves, which every process shares. A refusal is
counted in metrics and in the hour's RefusalTally row (the admin dashboard's figure)."""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, fields
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from limits import RateLimitItemPerDay, RateLimitItemPerMinute
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from limits.storage import storage_from_string
from prometheus_client import Counter

from generation.models import CallerLimit, Generation, RefusalTally

from .db import off_request
from .rollups import floor_hour

logger = logging.getLogger(__name__)
REFUSED = Counter("sluice_rate_limited_total", "Requests refused by a per-caller limit.", ["limit"])


class RateLimited(Exception):
    """A caller over one of its limits: answered 429 with Retry-After and RateLimit-* headers."""

    def __init__(self, limit: str, allowed: int, retry_after: int) -> None:
        super().__init__(f"{limit} limit reached")
        self.limit, self.allowed, self.retry_after = limit, allowed, retry_after


@dataclass(frozen=True)
class Limits:
    requests_per_minute: int
    concurrent_streams: int
    tokens_per_day: int


LIMIT_NAMES = tuple(limit.name for limit in fields(Limits))
_storage = None


def _limiters():
    """The shared counters, built on first use (no connection at import)."""
    global _storage
    if _storage is None:
        url = settings.SLUICE_LIMITS_URL
        if url.startswith(("redis://", "rediss://")):
            _storage = storage_from_string(f"async+{url}", implementation="redispy")
        else:
            _storage = storage_from_string("async+memory://")
    return MovingWindowRateLimiter(_storage), FixedWindowRateLimiter(_storage)


def reset() -> None:
    """Forget the counters' storage and the cached limits (tests)."""
    global _storage
    _storage = None
    _cached_limits.clear()


@dataclass(frozen=True)
class Who:
    """The caller a limit applies to: an API key, else a signed-in user (the CLI is neither)."""

    api_key_id: int | None
    user_id: int | None

    @property
    def key(self) -> str | None:
        if self.api_key_id is not None:
            return f"key:{self.api_key_id}"
        return f"user:{self.user_id}" if self.user_id is not None else None


async def limits_for(who: Who) -> Limits:
    """The caller's limits: its CallerLimit row where it sets one, else the defaults. Read
    off the request's own thread (off_request): the async ORM would open a connection there
    that a streamed response keeps until its end (lifecycle/request_thread.py). Kept for
    SLUICE_LIMITS_CACHE_SECONDS, so a caller's requests skip the read and its thread hop; an
    edit in this process applies at once, in the others within that time."""
    cached = _cached_limits.get(who)
    if cached is not None and time.monotonic() - cached[1] < settings.SLUICE_LIMITS_CACHE_SECONDS:
        return cached[0]
    limits = _limits(await off_request(_limit_row(who).first))
    _cached_limits[who] = (limits, time.monotonic())
    return limits


_cached_limits: dict[Who, tuple[Limits, float]] = {}


@receiver([post_save, post_delete], sender=CallerLimit)
def _forget_cached_limits(**kwargs) -> None:
    _cached_limits.clear()


def _limit_row(who: Who):
    if who.api_key_id is not None:
        return CallerLimit.objects.filter(api_key_id=who.api_key_id)
    if who.user_id is not None:
        return CallerLimit.objects.filter(user_id=who.user_id)
    return CallerLimit.objects.none()


def _limits(row: CallerLimit | None) -> Limits:
    def pick(name: str, default: int) -> int:
        value = getattr(row, name, None) if row is not None else None
        return default if value is None else value

    return Limits(
        requests_per_minute=pick("requests_per_minute", settings.SLUICE_LIMIT_REQUESTS_PER_MINUTE),
        concurrent_streams=pick("concurrent_streams", settings.SLUICE_LIMIT_CONCURRENT_STREAMS),
        tokens_per_day=pick("tokens_per_day", settings.SLUICE_LIMIT_TOKENS_PER_DAY),
    )


async def usage_admit(*, api_key_id: int | None, user_id: int | None) -> None:
    """Admit one more request from this caller, or raise RateLimited naming the limit."""
    who = Who(api_key_id, user_id)
    if who.key is None:
        return
    limits = await limits_for(who)
    if not (limits.requests_per_minute or limits.concurrent_streams or limits.tokens_per_day):
        return
    try:
        await _admit(who, limits)
    except RateLimited as refused:
        REFUSED.labels(refused.limit).inc()
        await _tally_refusal(refused.limit)
        raise


async def _tally_refusal(limit: str) -> None:
    """Count one refusal in this hour's RefusalTally row. Never raises: a database that fails
    here must not turn the 429 into anything else (the metric has counted it already)."""
    try:
        await off_request(refusal_tally_add, limit=limit, hour=floor_hour(timezone.now()))
    except Exception as exc:  # noqa: BLE001
        logger.warning("rate-limit refusal not tallied (%s)", type(exc).__name__)


def refusal_tally_add(*, limit: str, hour: datetime) -> None:
    """Add one to the (hour, limit) row, atomically whichever process refuses at once."""
    counted = RefusalTally.objects.filter(hour=hour, limit_name=limit)
    if counted.update(refused=F("refused") + 1):
        return
    try:
        with transaction.atomic():
            RefusalTally.objects.create(hour=hour, limit_name=limit, refused=1)
    except IntegrityError:  # another process created the hour's row first
        counted.update(refused=F("refused") + 1)


async def _admit(who: Who, limits: Limits) -> None:
    moving, fixed = _limiters()
    key = who.key
    if limits.tokens_per_day:
        day = RateLimitItemPerDay(limits.tokens_per_day)
        if not await fixed.test(day, key, "tokens"):
            stats = await fixed.get_window_stats(day, key, "tokens")
            raise RateLimited("tokens_per_day", limits.tokens_per_day, _seconds_until(stats.reset_time))
    if limits.concurrent_streams:
        unfinished = Generation.objects.filter(status__in=Generation.UNFINISHED_STATUSES)
        if who.api_key_id is not None:
            mine = unfinished.filter(api_key_id=who.api_key_id)
        else:
            mine = unfinished.filter(user_id=who.user_id, api_key_id__isnull=True)
        if await off_request(mine.count) >= limits.concurrent_streams:
            raise RateLimited("concurrent_streams", limits.concurrent_streams, 1)
    if limits.requests_per_minute:
        minute = RateLimitItemPerMinute(limits.requests_per_minute)
        if not await moving.hit(minute, key, "requests"):
            stats = await moving.get_window_stats(minute, key, "requests")
            raise RateLimited("requests_per_minute", limits.requests_per_minute, _seconds_until(stats.reset_time))


async def usage_record_tokens(*, generation: Generation) -> None:
    """Count a finished run's completion tokens against its caller's day. Never raises:
    accounting must not break the lifecycle. The limits are read off the request
    (off_request): a resumable run finishes after its request has ended, where the async
    ORM would open a thread and a pooled connection of its own for every run and keep both."""
    who = Who(generation.api_key_id, generation.user_id)
    if who.key is None or not generation.output_tokens:
        return
    try:
        limits = await limits_for(who)
        if limits.tokens_per_day:
            _, fixed = _limiters()
            day = RateLimitItemPerDay(limits.tokens_per_day)
            await fixed.hit(day, who.key, "tokens", cost=generation.output_tokens)
    except Exception as exc:  # noqa: BLE001
        logger.warning("token usage not recorded (%s)", type(exc).__name__)


def _seconds_until(reset_time: float) -> int:
    return max(1, math.ceil(reset_time - time.time()))
