"""The editor pages: sign-in, rendering, CSRF, the streaming endpoint and history."""

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient, Client
from django.utils import timezone

from generation.editor.forms import TEXT_FIELDS
from generation.editor.views import policy_notes
from generation.models import Generation
from tests.support.asgi import finished_row
from tests.support.sse import parse_events

from .conftest import PASSWORD

GENERATE = "/compose/generate"
CARD = "4111 1111 1111 1111"


def fields(**overrides):
    body = {"product_name": "Cedar cutting board", "product_details": "Solid cedar, 40 by 25 cm.",
            "audience": "home cooks", "tone": "friendly", "length": "short",
            "internal_notes": "", "pricing_terms": ""}
    body.update(overrides)
    return body


def events(body: bytes) -> list[tuple[str, dict]]:
    return [(name, data) for _, name, data in parse_events(body)]


async def signed_in_client() -> tuple[AsyncClient, str]:
    """An AsyncClient that enforces CSRF, signed in as `editor`, with its CSRF token."""
    client = AsyncClient(enforce_csrf_checks=True)
    assert await sync_to_async(client.login)(username="editor", password=PASSWORD)
    page = await client.get("/")
    assert page.status_code == 200
    return client, client.cookies["csrftoken"].value


async def read(response) -> bytes:
    return b"".join([chunk async for chunk in response.streaming_content])


# --- sign-in --------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/history"])
def test_pages_redirect_to_login_when_signed_out(db, path):
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={path}"


def test_login_page_renders_and_signs_in(editor):
    client = Client(enforce_csrf_checks=True)
    page = client.get("/login/?next=/history")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<label for="id_username">' in html and '<label for="id_password">' in html
    assert "sluice.css" in html
    token = client.cookies["csrftoken"].value
    refused = client.post("/login/", {"username": "editor", "password": "wrong", "csrfmiddlewaretoken": token})
    assert refused.status_code == 200 and 'role="alert"' in refused.content.decode()
    done = client.post("/login/", {"username": "editor", "password": PASSWORD, "next": "/history",
                                   "csrfmiddlewaretoken": token})
    assert done.status_code == 302 and done["Location"] == "/history"
    assert client.get("/").status_code == 200


def test_logout_is_a_post_and_ends_the_session(editor):
    client = Client()
    client.force_login(editor)
    response = client.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert client.get("/").status_code == 302


# --- compose page ---------------------------------------------------------------------

def test_compose_page_renders_fields_policies_and_script(editor):
    client = Client()
    client.force_login(editor)
    response = client.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "csrftoken" in response.cookies
    for spec in TEXT_FIELDS:
        assert f'<label for="f-{spec.name}">' in html
        assert f'id="policy-{spec.name}"' in html and f'id="error-{spec.name}"' in html
    assert html.count('<span class="badge">Sensitive</span>') == 2
    assert '<select id="f-tone" name="tone">' in html and '<select id="f-length" name="length">' in html
    assert 'data-max-tokens="80"' in html
    assert 'id="output" class="output" aria-live="polite"' in html and 'role="status"' in html
    assert 'type="module"' in html and "js/compose.js" in html
    assert 'data-cancel-url="/api/v1/generations/00000000-0000-0000-0000-000000000000/cancel"' in html


def test_policy_notes_follow_field_policy(settings):
    details = dict(policy_notes("product_details"))
    assert "card numbers" in details["Refused (the request is stopped)"]
    assert "prices" in details["Sent as written"]
    settings.SLUICE_REDACTION_POLICIES = {"product_details": {"PRICE": "redact"}}
    details = dict(policy_notes("product_details"))
    assert "prices" not in details["Sent as written"]
    assert "prices" in details["Replaced by a placeholder before the model sees it"]


def test_static_files_are_served(editor):
    client = Client()
    for path in ("/static/sluice.css", "/static/js/compose.js", "/static/js/sse.js", "/static/js/output.js"):
        response = client.get(path)
        assert response.status_code == 200, path
        b"".join(response.streaming_content if response.streaming else [response.content])


# --- the streaming endpoint -----------------------------------------------------------

@pytest.mark.django_db(transaction=True)
async def test_generate_streams_the_native_events_and_records_a_web_row(scripted, editor):
    client, token = await signed_in_client()
    response = await client.post(GENERATE, fields(), content_type="application/json",
                                 headers={"X-CSRFToken": token, "Accept": "text/event-stream"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    parsed = events(await read(response))
    names = [name for name, _ in parsed]
    assert names[0] == "accepted" and names[-1] == "done"
    assert "".join(data["text"] for name, data in parsed if name == "delta") == "Hello, world."
    assert response["X-Request-ID"] == parsed[0][1]["request_id"]
    row = await finished_row(parsed[0][1]["request_id"])  # a resumable run records itself just after `done`
    assert row.channel == "web" and row.user_id == editor.pk and row.status == "completed"
    assert row.max_tokens == 80  # "short"
    assert scripted.calls[0]["params"].stop


@pytest.mark.django_db(transaction=True)
async def test_generate_builds_the_prompt_from_redacted_fields(scripted, editor):
    client, token = await signed_in_client()
    response = await client.post(
        GENERATE,
        fields(internal_notes="Ask jane.doe@example.com before launch", pricing_terms="Cost 12.50 USD, net 45"),
        content_type="application/json", headers={"X-CSRFToken": token},
    )
    await read(response)
    prompt = scripted.prompts[-1]
    assert "Product: Cedar cutting board" in prompt and "Tone: friendly and warm" in prompt
    assert prompt.endswith("Product description:\n")
    assert "jane.doe@example.com" not in prompt and "[EMAIL_1]" in prompt
    assert "12.50" not in prompt  # pricing_terms redacts prices too
    row = await Generation.objects.aget()
    assert row.validation_result == "redacted"


@pytest.mark.django_db(transaction=True)
async def test_generate_needs_a_csrf_token(scripted, editor):
    client, _ = await signed_in_client()
    response = await client.post(GENERATE, fields(), content_type="application/json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"
    assert await Generation.objects.acount() == 0


@pytest.mark.django_db(transaction=True)
async def test_generate_needs_a_signed_in_session(scripted):
    response = await AsyncClient().post(GENERATE, fields(), content_type="application/json")
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


@pytest.mark.django_db(transaction=True)
async def test_generate_refuses_an_api_key(scripted, editor):
    response = await AsyncClient().post(GENERATE, fields(), content_type="application/json",
                                        headers={"Authorization": "Bearer sluice_x_y"})
    assert response.status_code == 401


@pytest.mark.django_db(transaction=True)
async def test_rejected_card_number_names_the_field_and_type(scripted, editor):
    client, token = await signed_in_client()
    response = await client.post(GENERATE, fields(product_details=f"Pay with {CARD}"),
                                 content_type="application/json", headers={"X-CSRFToken": token})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "sensitive_data_rejected"
    assert error["param"] == "product_details" and error["types"] == ["CREDIT_CARD"]
    assert "4111" not in response.content.decode()
    assert await Generation.objects.acount() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("overrides", "param"), [
    ({"product_name": "  "}, "product_name"),
    ({"tone": "angry"}, "tone"),
    ({"length": "epic"}, "length"),
    ({"audience": 5}, "audience"),
    ({"audience": "x" * 301}, "audience"),
    ({"colour": "red"}, None),  # an unknown name is input: not echoed
])
async def test_invalid_fields_are_400_naming_the_field(scripted, editor, overrides, param):
    client, token = await signed_in_client()
    response = await client.post(GENERATE, fields(**overrides), content_type="application/json",
                                 headers={"X-CSRFToken": token})
    assert response.status_code == 400
    assert response.json()["error"].get("param") == param


@pytest.mark.django_db(transaction=True)
async def test_generate_is_post_only(scripted, editor):
    client, _ = await signed_in_client()
    assert (await client.get(GENERATE)).status_code == 405


# --- history --------------------------------------------------------------------------

def make_rows(user, count, **extra):
    now = timezone.now()
    Generation.objects.bulk_create([
        Generation(user=user, channel="web", status="completed", finish_reason="length", output_tokens=40 + i,
                   duration_ms=1200, tokens_per_second=30.5, model_name="m", model_version="v",
                   created_at=now - timezone.timedelta(minutes=i), **extra)
        for i in range(count)
    ])


def test_history_lists_only_my_generations_without_text(editor, django_user_model):
    other = django_user_model.objects.create_user("other", password=PASSWORD)
    make_rows(editor, 2)
    make_rows(other, 3, cancel_reason="client_cancel")
    Generation.objects.create(user=editor, channel="web", status="cancelled", cancel_reason="client_cancel",
                              model_name="m", model_version="v")
    client = Client()
    client.force_login(editor)
    html = client.get("/history").content.decode()
    assert html.count("<tr>") == 1 + 3  # header + my three rows
    assert "stopped by you" in html and "length limit" in html
    assert "30.5 tokens/s" in html and "1200 ms" in html


def test_history_is_paginated(editor):
    make_rows(editor, 45)
    client = Client()
    client.force_login(editor)
    first = client.get("/history").content.decode()
    assert first.count("<tr>") == 1 + 20 and "Page 1 of 3" in first and 'rel="next"' in first
    last = client.get("/history?page=3").content.decode()
    assert last.count("<tr>") == 1 + 5 and 'rel="prev"' in last
    assert client.get("/history?page=99").status_code == 200  # out of range: the last page


def test_history_empty_state(editor):
    client = Client()
    client.force_login(editor)
    assert "No generations yet" in client.get("/history").content.decode()
