"""Admin cancel reaches the stream through the channel layer, not a shared in-process call."""
import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import AsyncClient

from generation.models import Generation
from generation.ops.remote_cancel import generations_cancel
from tests.support.asgi import call

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/generations"
CHANGELIST = "/admin/generation/generation/"


async def start_long_stream(scripted, auth_headers):
    scripted.script = ["word "] * 400
    scripted.token_delay = 0.01
    stream = asyncio.create_task(call(URL, body={"prompt": "p", "max_tokens": 400}, headers=auth_headers))
    for _ in range(100):
        await asyncio.sleep(0.02)
        row = await Generation.objects.filter(status="running").afirst()
        if row is not None:
            return stream, row
    raise AssertionError("the stream did not start")


async def test_broadcast_cancel_ends_the_stream_with_admin_cancel(scripted, auth_headers):
    stream, row = await start_long_stream(scripted, auth_headers)
    assert await sync_to_async(generations_cancel)(request_ids=[row.request_id]) == 1
    events = (await stream).events()
    assert events[-1][1:] == ("cancelled", {"reason": "admin_cancel"})
    await row.arefresh_from_db()
    assert (row.status, row.cancel_reason) == ("cancelled", "admin_cancel")


async def test_admin_action_needs_the_cancel_permission(scripted, auth_headers):
    stream, row = await start_long_stream(scripted, auth_headers)
    User = get_user_model()
    viewer = await sync_to_async(User.objects.create_user)("viewer", password="pw-long-enough-1", is_staff=True)
    view = await Permission.objects.aget(codename="view_generation")
    await sync_to_async(viewer.user_permissions.add)(view)
    client = AsyncClient()
    await sync_to_async(client.force_login)(viewer)
    page = await client.get(CHANGELIST)
    assert page.status_code == 200 and b"cancel_selected" not in page.content  # no action offered
    refused = await client.post(CHANGELIST, {"action": "cancel_selected", "_selected_action": [row.pk]})
    assert (await Generation.objects.aget(pk=row.pk)).status == "running"

    cancel = await Permission.objects.aget(codename="cancel_generation")
    await sync_to_async(viewer.user_permissions.add)(cancel)
    client = AsyncClient()
    await sync_to_async(client.force_login)(await User.objects.aget(pk=viewer.pk))
    done = await client.post(CHANGELIST, {"action": "cancel_selected", "_selected_action": [row.pk]})
    assert done.status_code == 302 and refused.status_code in (200, 302)
    assert (await stream).events()[-1][1:] == ("cancelled", {"reason": "admin_cancel"})
