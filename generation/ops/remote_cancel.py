"""Cancel a run wherever it is served. An admin's request may land on another server
process than the stream, so the cancel goes out on the channel layer (in-memory by default,
Redis with several processes) and each process cancels the runs it holds."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from generation.lifecycle.runtime import active_runs
from generation.models import Generation

logger = logging.getLogger(__name__)
GROUP = "sluice.cancel"
_REJOIN_SECONDS = 3600  # group membership expires on some layers: rejoin now and then
_listener: tuple[asyncio.AbstractEventLoop, asyncio.Task] | None = None


def generations_cancel(*, request_ids: Iterable) -> int:
    """Ask every process to cancel these runs (reason admin_cancel). Sync: for admin actions."""
    layer = get_channel_layer()
    sent = 0
    for request_id in request_ids:
        async_to_sync(layer.group_send)(GROUP, {"type": "generation.cancel", "request_id": str(request_id)})
        sent += 1
    return sent


def ensure_listener() -> None:
    """Start this process's listener on the running loop, once (called as runs open)."""
    global _listener
    loop = asyncio.get_running_loop()
    if _listener is None or _listener[0] is not loop or _listener[1].done():
        _listener = (loop, loop.create_task(_listen(), name="sluice-cancel-listener"))


async def _listen() -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    while True:
        await layer.group_add(GROUP, channel)
        try:
            message = await asyncio.wait_for(layer.receive(channel), _REJOIN_SECONDS)
        except TimeoutError:
            continue
        except Exception:  # noqa: BLE001 - a broken layer must not end the listener silently
            logger.exception("cancel listener: channel layer failed; retrying")
            await asyncio.sleep(1)
            continue
        run = active_runs.get(message.get("request_id", ""))
        if run is not None:  # the reason is fixed: a message cannot choose it
            run.request_cancel(Generation.CancelReason.ADMIN_CANCEL)
