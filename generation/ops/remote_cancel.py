"""Reach a run wherever it is served. A cancel (from the admin, or the cancel endpoint on
a process that does not hold the run) and a key revocation go out on the channel layer
(in-memory by default, Redis with several processes); each process acts on the runs it holds."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from generation.lifecycle.runtime import active_runs
from generation.models import ApiKey, Generation
from generation.records.api_keys import api_key_revoke, forget_verified_key
from generation.records.generations import Caller

logger = logging.getLogger(__name__)
GROUP = "sluice.cancel"
_REJOIN_SECONDS = 3600  # group membership expires on some layers: rejoin now and then
_RETRY_SECONDS = 1.0
# The reasons a message may carry; anything else is ignored (the layer is shared infrastructure).
_MESSAGE_REASONS = {Generation.CancelReason.ADMIN_CANCEL, Generation.CancelReason.CLIENT_CANCEL}
_listener: tuple[asyncio.AbstractEventLoop, asyncio.Task] | None = None


class BroadcastFailed(Exception):
    """The channel layer could not take the message (e.g. Redis is down)."""


def generations_cancel(*, request_ids: Iterable) -> int:
    """Ask every process to cancel these runs (reason admin_cancel). Sync: for admin actions."""
    sent = 0
    for request_id in request_ids:
        async_to_sync(_send)({"type": "generation.cancel", "request_id": str(request_id), "reason": "admin_cancel"})
        sent += 1
    return sent


def api_key_revoke_everywhere(*, api_key: ApiKey) -> None:
    """Revoke a key: every process stops accepting it at once and cancels its runs (admin_cancel)."""
    api_key_revoke(api_key=api_key)
    _cancel_runs_of_key(api_key.pk)
    try:
        async_to_sync(_send)({"type": "apikey.revoked", "api_key_id": api_key.pk, "key_hash": api_key.key_hash})
    except BroadcastFailed:
        pass  # logged by _send; other processes still refuse the key within SLUICE_API_KEY_CACHE_SECONDS


@dataclass(frozen=True)
class CancelAnswer:
    """What the cancel endpoint answers: 202 with whether a cancel was sent, or an error."""

    status: int
    code: str = ""
    generation_status: str = ""
    cancel_requested: bool = False


async def generation_cancel_request(*, request_id, caller: Caller) -> CancelAnswer:
    """Cancel the caller's own queued or running generation, on this process or any other."""
    run = active_runs.get(str(request_id))
    if run is not None and run.caller.identity == caller.identity:
        return CancelAnswer(202, cancel_requested=run.request_cancel(Generation.CancelReason.CLIENT_CANCEL))
    owned = await Generation.objects.filter(
        request_id=request_id, user_id=caller.user_id, api_key_id=caller.api_key_id
    ).afirst()
    if owned is None:
        return CancelAnswer(404, "not_found")
    if owned.is_finished:
        return CancelAnswer(409, "already_finished", generation_status=owned.status)
    try:
        await _send({"type": "generation.cancel", "request_id": str(request_id), "reason": "client_cancel"})
    except BroadcastFailed:
        return CancelAnswer(503, "cancel_unavailable")
    return CancelAnswer(202, cancel_requested=True)


async def _send(message: dict) -> None:
    try:
        await get_channel_layer().group_send(GROUP, message)
    except Exception as exc:  # noqa: BLE001 - any layer failure means the message did not go out
        logger.warning("cross-process message not sent: channel layer unavailable (%s)", type(exc).__name__)
        raise BroadcastFailed from None


def ensure_listener() -> None:
    """Start this process's listener on the running loop, once per loop."""
    global _listener
    loop = asyncio.get_running_loop()
    if _listener is None or _listener[0] is not loop or _listener[1].done():
        _listener = (loop, loop.create_task(_listen(), name="sluice-cancel-listener"))


async def _listen() -> None:
    """Receive forever; a failing layer is logged once per outage and retried until it returns."""
    layer = get_channel_layer()
    channel, failing = None, False
    while True:
        try:
            if channel is None:
                channel = await layer.new_channel()
            await layer.group_add(GROUP, channel)
            message = await asyncio.wait_for(layer.receive(channel), _REJOIN_SECONDS)
        except TimeoutError:
            continue
        except Exception as exc:  # noqa: BLE001 - a broken layer must not end the listener
            if not failing:
                logger.warning("cancel listener: channel layer unavailable (%s); retrying", type(exc).__name__)
            failing = True
            await asyncio.sleep(_RETRY_SECONDS)
            continue
        if failing:
            logger.warning("cancel listener: channel layer reachable again")
            failing = False
        await _handle(message)


async def _handle(message: dict) -> None:
    if message.get("type") == "generation.cancel" and message.get("reason") in _MESSAGE_REASONS:
        run = active_runs.get(str(message.get("request_id", "")))
        if run is not None:
            run.request_cancel(message["reason"])
    elif message.get("type") == "apikey.revoked" and isinstance(message.get("api_key_id"), int):
        forget_verified_key(str(message.get("key_hash", "")))
        _cancel_runs_of_key(message["api_key_id"])


def _cancel_runs_of_key(api_key_id: int) -> int:
    runs = [run for run in active_runs.all() if run.caller.api_key_id == api_key_id]
    return sum(run.request_cancel(Generation.CancelReason.ADMIN_CANCEL) for run in runs)
