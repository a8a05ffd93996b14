"""API keys: creation (the raw key is shown once), revocation and verification. Only a
SHA-256 of each key is stored."""
from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from generation.models import ApiKey

from .db import off_request
from .generations import Caller

API_KEY_PREFIX = "sluice"
_LAST_USED_GRANULARITY = timedelta(minutes=1)


def api_key_create(
    *, name: str, user=None, redaction_languages: str = "", phone_region: str = ""
) -> tuple[ApiKey, str]:
    """Create a key; return the row and the raw key, which is shown once and never stored."""
    prefix = secrets.token_hex(4)
    raw_key = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        name=name, prefix=prefix, key_hash=hash_api_key(raw_key), user=user,
        redaction_languages=redaction_languages, phone_region=phone_region,
    )
    return api_key, raw_key


def api_key_revoke(*, api_key: ApiKey) -> None:
    """Revoke a key; this process stops accepting it at once (ops.remote_cancel tells the others)."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    forget_verified_key(api_key.key_hash)


def forget_verified_key(key_hash: str) -> None:
    """Drop a key from this process's verification cache: its next use reads the database."""
    _verified_keys.pop(key_hash, None)


def hash_api_key(raw_key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is safe; a slow password hash would add
    # latency to every request.
    return hashlib.sha256(raw_key.encode()).hexdigest()


@dataclass(frozen=True)
class _VerifiedKey:
    caller: Caller
    verified_at: float


# Hash -> verified key, so the hot path skips a database round trip (a thread hop and, under
# ASGI, a fresh connection per request). Revocation clears every process's entry through the
# channel layer; without it, other processes notice within API_KEY_CACHE_SECONDS.
_verified_keys: dict[str, _VerifiedKey] = {}


async def api_key_authenticate(*, raw_key: str) -> Caller | None:
    """The caller for an active key matching `raw_key`, or None. Requests that arrive
    together with the same uncached key share one database lookup, which runs off the
    request's thread: a burst of requests must not each hold a pooled connection while the
    rest of their admission asks the pool for another."""
    parts = raw_key.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        return None
    key_hash = hash_api_key(raw_key)
    cached = _verified_keys.get(key_hash)
    if cached is not None and time.monotonic() - cached.verified_at < settings.SLUICE_API_KEY_CACHE_SECONDS:
        return cached.caller
    loop = asyncio.get_running_loop()
    lookup = _lookups.get(key_hash)
    if lookup is None or lookup.get_loop() is not loop:
        lookup = loop.create_task(off_request(_verify_key, prefix=parts[1], key_hash=key_hash))
        _lookups[key_hash] = lookup
        lookup.add_done_callback(lambda done: _lookups.pop(key_hash, None) if _lookups.get(key_hash) is done else None)
    caller = await asyncio.shield(lookup)
    if caller is None:
        _verified_keys.pop(key_hash, None)
    else:
        _verified_keys[key_hash] = _VerifiedKey(caller, time.monotonic())
    return caller


def _verify_key(*, prefix: str, key_hash: str) -> Caller | None:
    api_key = ApiKey.objects.filter(prefix=prefix, revoked_at__isnull=True).first()
    if api_key is None or not secrets.compare_digest(api_key.key_hash, key_hash):
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > _LAST_USED_GRANULARITY:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return Caller(user_id=api_key.user_id, api_key_id=api_key.pk, locale=api_key.redaction_locale)


_lookups: dict[str, asyncio.Task] = {}  # key hash -> the lookup in progress
