"""The inline middleware keeps Django's behaviour: cookies, headers, session saves."""
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import AsyncClient

pytestmark = pytest.mark.django_db(transaction=True)


async def test_login_saves_the_session_and_sets_security_headers():
    await sync_to_async(get_user_model().objects.create_superuser)("boss", password="pw-long-enough-1")
    client = AsyncClient(enforce_csrf_checks=True)
    page = await client.get("/admin/login/")
    assert page.status_code == 200
    assert page["X-Frame-Options"] == "DENY" and page["X-Content-Type-Options"] == "nosniff"
    token = client.cookies["csrftoken"].value
    refused = await client.post("/admin/login/", {"username": "boss", "password": "pw-long-enough-1"})
    assert refused.status_code == 403  # no CSRF token
    logged_in = await client.post(
        "/admin/login/", {"username": "boss", "password": "pw-long-enough-1", "csrfmiddlewaretoken": token}
    )
    assert logged_in.status_code == 302 and "sessionid" in client.cookies
    assert (await client.get("/admin/")).status_code == 200  # the session was written to the database


async def test_append_slash_redirect_still_works():
    response = await AsyncClient().get("/admin")
    assert response.status_code == 301 and response["Location"] == "/admin/"
