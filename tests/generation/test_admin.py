"""The admin: a read-only Generation audit and API key creation/revocation."""
import base64
import re
import uuid
import zlib

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages

from generation.models import ApiKey, Generation
from generation.records.api_keys import api_key_authenticate, hash_api_key

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/generation/generation/"


def make_row(**fields) -> Generation:
    defaults = {"channel": "api", "model_name": "m", "model_version": "v1", "status": "completed"}
    return Generation.objects.create(**{**defaults, **fields})


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-for-tests")
    client.force_login(user)
    return client


def test_changelist_shows_shape_newest_first(staff_client):
    old = make_row(status="cancelled", cancel_reason="client_disconnect", ttft_ms=120, duration_ms=900)
    new = make_row(
        status="completed",
        output_tokens=42,
        tokens_per_second=31.25,
        redaction_counts={"EMAIL_ADDRESS": 2, "output:CREDIT_CARD": 1},
    )
    response = staff_client.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.index(f"/{new.pk}/change/") < html.index(f"/{old.pk}/change/")
    assert "client_disconnect" in html and "31.2" in html
    assert "EMAIL_ADDRESS×2, output:CREDIT_CARD×1" in html
    assert "Add generation" not in html
    # The one action is cancel (it needs its own permission); nothing deletes records.
    assert 'value="cancel_selected"' in html and 'value="delete_selected"' not in html


@pytest.mark.parametrize(
    "query",
    [
        "status__exact=cancelled",
        "cancel_reason__exact=client_disconnect",
        "timeout_source__exact=stall",
        "channel__exact=web",
        "model_version=v1",
        "created_at__year=2020",
    ],
)
def test_filters_work(staff_client, query):
    make_row(status="cancelled", cancel_reason="client_disconnect")
    assert staff_client.get(f"{CHANGELIST}?{query}").status_code == 200


def test_api_key_filter(staff_client, api_key):
    make_row(api_key=api_key[0])
    make_row()
    response = staff_client.get(f"{CHANGELIST}?api_key__id__exact={api_key[0].pk}")
    assert response.status_code == 200 and len(response.context["cl"].result_list) == 1


def test_user_filter(staff_client):
    editor = get_user_model().objects.create_user("editor", password="pw-for-tests")
    mine = make_row(user=editor, channel="web")
    make_row()
    response = staff_client.get(CHANGELIST, {"user__id__exact": editor.pk})
    assert [row.pk for row in response.context["cl"].result_list] == [mine.pk]
    assert "By user" in response.content.decode()


def test_search_is_an_exact_request_id_match(staff_client):
    wanted, other = make_row(), make_row()
    result = staff_client.get(CHANGELIST, {"q": str(wanted.request_id)}).context["cl"].result_list
    assert [row.pk for row in result] == [wanted.pk]
    partial = str(other.request_id)[:8]
    assert list(staff_client.get(CHANGELIST, {"q": partial}).context["cl"].result_list) == []


def test_detail_is_read_only_and_rows_cannot_be_added_changed_or_deleted(staff_client):
    row = make_row(status="failed", error_code="backend_error")
    response = staff_client.get(f"{CHANGELIST}{row.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert str(row.request_id) in html and "backend_error" in html
    assert 'name="_save"' not in html and 'name="status"' not in html  # view only: no inputs, no save
    assert staff_client.post(f"{CHANGELIST}{row.pk}/change/", {"status": "completed"}).status_code == 403
    assert staff_client.get(f"{CHANGELIST}add/").status_code == 403
    assert staff_client.post(f"{CHANGELIST}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    row.refresh_from_db()
    assert row.status == "failed"


def test_admin_is_refused_to_non_staff(client):
    user = get_user_model().objects.create_user("plain", password="pw-for-tests")
    client.force_login(user)
    row = make_row()
    for url in (CHANGELIST, f"{CHANGELIST}{row.pk}/change/", "/admin/generation/apikey/add/"):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_admin_is_refused_to_anonymous(client):
    response = client.get(CHANGELIST)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_create_api_key_shows_it_once_and_stores_a_hash(staff_client):
    owner = get_user_model().objects.create_user("owner")
    form = {"name": "billing-bot", "user": owner.pk}
    response = staff_client.post("/admin/generation/apikey/add/", form, follow=True)
    assert response.status_code == 200
    raw_keys = re.findall(r"sluice_[0-9a-f]{8}_[A-Za-z0-9_-]+", response.content.decode())
    assert len(raw_keys) == 1
    key = ApiKey.objects.get()
    assert (key.name, key.user, key.revoked_at) == ("billing-bot", owner, None)
    assert key.key_hash == hash_api_key(raw_keys[0]) and raw_keys[0] not in repr(ApiKey.objects.values())
    again = staff_client.get("/admin/generation/apikey/").content.decode()
    assert raw_keys[0] not in again  # shown once only
    detail = staff_client.get(f"/admin/generation/apikey/{key.pk}/change/").content.decode()
    assert raw_keys[0] not in detail and key.key_hash not in detail


RAW_KEY = re.compile(r"sluice_[0-9a-f]{8}_[A-Za-z0-9_-]+")


def cookie_texts(value: str) -> list[str]:
    """A cookie's value and, for each part of a Django-signed value (`payload:…:signature`),
    its base64 payload decoded, inflated when it is compressed (a leading ".")."""
    texts = [value]
    for part in value.strip('"').split(":"):
        data = part.lstrip(".")
        try:
            raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
            texts.append((zlib.decompress(raw) if part.startswith(".") else raw).decode("utf-8", "replace"))
        except (ValueError, zlib.error):
            pass
    return texts


def test_new_api_key_is_shown_in_the_response_never_in_a_cookie_or_the_session(staff_client):
    response = staff_client.post("/admin/generation/apikey/add/", {"name": "billing-bot"})
    key = ApiKey.objects.get()
    for morsel in response.cookies.values():
        for text in cookie_texts(morsel.value):
            assert not RAW_KEY.search(text) and f"{key.prefix}_" not in text, morsel.key
    assert response.status_code == 200  # the key page itself, not a redirect to the list
    assert "no-store" in response["Cache-Control"]
    body = response.content.decode()
    (raw_key,) = RAW_KEY.findall(body)
    assert body.count(raw_key) == 1
    prefix_and_secret = raw_key.removeprefix("sluice_")
    assert key.prefix == prefix_and_secret.split("_")[0] and key.key_hash == hash_api_key(raw_key)
    assert prefix_and_secret not in repr(list(ApiKey.objects.values()))
    session = staff_client.session
    assert prefix_and_secret not in repr({name: session[name] for name in session.keys()})
    assert not list(get_messages(response.wsgi_request))  # nothing queued for a later page
    assert 'href="/admin/generation/apikey/"' in body  # back to the list


def test_api_key_cannot_be_edited_or_deleted(staff_client, api_key):
    row = api_key[0]
    url = f"/admin/generation/apikey/{row.pk}/change/"
    assert staff_client.post(url, {"name": "renamed"}).status_code == 403
    assert staff_client.post(f"/admin/generation/apikey/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    row.refresh_from_db()
    assert row.name == "tests"


def test_api_key_list_columns(staff_client, api_key):
    html = staff_client.get("/admin/generation/apikey/").content.decode()
    for heading in ("Name", "Prefix", "User", "Created at", "Last used at", "Revoked"):
        assert heading in html
    assert api_key[0].prefix in html and api_key[0].key_hash not in html


@pytest.mark.django_db(transaction=True)  # the key lookup reads in a worker thread: it must see committed rows
def test_revoke_action_uses_the_service(staff_client, api_key):
    from asgiref.sync import async_to_sync

    row, raw = api_key
    assert async_to_sync(api_key_authenticate)(raw_key=raw) is not None  # now cached in this process
    response = staff_client.post(
        "/admin/generation/apikey/", {"action": "revoke_selected", "_selected_action": [row.pk]}, follow=True
    )
    assert "Revoked 1 key(s)." in response.content.decode()
    row.refresh_from_db()
    assert row.revoked_at is not None
    assert async_to_sync(api_key_authenticate)(raw_key=raw) is None  # the cache was cleared at once


def test_unknown_uuid_search_finds_nothing(staff_client):
    make_row()
    result = staff_client.get(CHANGELIST, {"q": str(uuid.uuid4())}).context["cl"].result_list
    assert list(result) == []


def test_model_version_filter_lists_each_version_once(staff_client):
    for version in ("b" * 64, "a" * 64, "b" * 64):
        make_row(model_version=version)
    response = staff_client.get(CHANGELIST)
    specs = response.context["cl"].filter_specs
    spec = next(spec for spec in specs if getattr(spec, "parameter_name", "") == "model_version")
    assert [value for value, _ in spec.lookup_choices] == ["a" * 64, "b" * 64]
    filtered = staff_client.get(CHANGELIST, {"model_version": "b" * 64}).context["cl"].result_list
    assert len(filtered) == 2


CANARY = "QX-CANARY-7731 Halvorsen rebate"


@pytest.mark.django_db(transaction=True)
async def test_no_operator_surface_ever_shows_prompt_or_output_text(scripted, auth_headers, settings):
    """Completed, failed, cancelled and timed-out runs whose prompt and output carry a
    canary; then every operator page and endpoint is fetched and searched for it."""
    from django.test import AsyncClient

    from tests.support.asgi import call

    url = "/api/v1/generations"
    body = {"prompt": f"Note {CANARY} mail jo@example.com. Write copy.", "max_tokens": 50}
    scripted.script = [f" {CANARY}", " and", " more"]
    assert (await call(url, body=body, headers=auth_headers)).events()[-1][1] == "done"
    scripted.fail_after = 1
    assert (await call(url, body=body, headers=auth_headers)).events()[-1][1] == "error"
    scripted.fail_after = None
    scripted.script = [f" {CANARY}"] * 100
    scripted.token_delay = 0.01
    cut = await call(url, body=body, headers=auth_headers, hang_up_when=lambda r: b"event: delta" in r.body)
    settings.SLUICE_STALL_TIMEOUT_SECONDS = 0.1
    scripted.stall_after = 1
    assert (await call(url, body=body, headers=auth_headers)).events()[-1][1] == "error"
    statuses = {row.status async for row in Generation.objects.all()}
    assert statuses == {"completed", "failed", "cancelled", "timed_out"}, statuses

    staff = await get_user_model().objects.acreate_superuser("auditor", "a@example.com", "pw-for-tests")
    client = AsyncClient()
    await client.aforce_login(staff)
    pages = [CHANGELIST, f"{CHANGELIST}?status__exact=cancelled", "/admin/generation/apikey/", "/admin/"]
    pages += [f"{CHANGELIST}dashboard/?window={window}" for window in ("1h", "30d")]
    pages += [f"{CHANGELIST}{row.pk}/change/" async for row in Generation.objects.all()]
    request_id = cut.events()[0][2]["request_id"]
    pages.append(f"{CHANGELIST}?q={request_id}")
    seen = []
    for page in pages:
        response = await client.get(page)
        assert response.status_code == 200, page
        seen.append(response.content.decode())
    assert "EMAIL_ADDRESS×1" in seen[0]  # the shape is there; the text is not
    for path in ("/metrics", "/readyz", "/healthz"):
        seen.append((await call(path, method="GET")).body.decode())
    everything = "\n".join(seen)
    for fragment in (CANARY, "Halvorsen", "jo@example.com", "Write copy"):
        assert fragment not in everything


DASHBOARD = "/admin/generation/generation/dashboard/"


def test_dashboard_figures_are_computed_over_the_window(staff_client):
    from datetime import timedelta

    from django.utils import timezone

    from generation.records.dashboard import dashboard_stats

    for ttft in range(1, 101):  # ttft 1..100 ms: nearest-rank p50 = 50, p95 = 95, p99 = 99
        make_row(ttft_ms=ttft, duration_ms=ttft * 10, queue_ms=ttft, tokens_per_second=float(ttft))
    make_row(
        status="cancelled", cancel_reason="client_disconnect", tokens_after_cancel=2, redaction_counts={"EMAIL_ADDRESS": 3}
    )
    make_row(status="cancelled", cancel_reason="admin_cancel", redaction_counts={"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 2})
    make_row(status="timed_out", timeout_source="stall")
    make_row(status="completed", created_at=timezone.now() - timedelta(days=3), ttft_ms=99999)  # outside 24h
    stats = dashboard_stats("24h")
    assert stats["total"] == 103 and stats["by_status"] == {"completed": 100, "cancelled": 2, "timed_out": 1}
    assert stats["cancel_reasons"] == {"client_disconnect": 1, "admin_cancel": 1}
    assert stats["timeouts"] == {"stall": 1}
    latency = {label: value for label, value, _ in stats["latency"]}
    within_2pct = lambda value: pytest.approx(value, rel=0.02)  # noqa: E731 - log buckets, see rollups.py
    assert latency["Time to first token p50"] == within_2pct(50)
    assert latency["Time to first token p95"] == within_2pct(95)
    assert latency["Time to first token p99"] == within_2pct(99) and latency["Duration p95"] == within_2pct(950)
    assert latency["Tokens per second p50"] == within_2pct(50) and latency["Queue wait p95"] == within_2pct(95)
    assert stats["tokens_after_cancel"] == 2
    assert stats["redactions"] == {"EMAIL_ADDRESS": 4, "PHONE_NUMBER": 2}
    assert sum(bar.requests for bar in stats["hourly"]) == 103
    assert dashboard_stats("7d")["total"] == 104

    response = staff_client.get(DASHBOARD, {"window": "24h"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "<svg" in html and "<rect" in html and "EMAIL_ADDRESS" in html and "1.9 %" in html


def test_dashboard_is_linked_from_the_index_and_handles_every_window(staff_client):
    assert DASHBOARD in staff_client.get("/admin/").content.decode()
    for window in ("1h", "24h", "7d", "30d", "bogus"):
        assert staff_client.get(DASHBOARD, {"window": window}).status_code == 200  # empty tables too


def test_dashboard_is_refused_to_non_staff(client):
    assert client.get(DASHBOARD).status_code == 302
    client.force_login(get_user_model().objects.create_user("plain2", password="pw-for-tests", is_staff=True))
    assert client.get(DASHBOARD).status_code == 403  # staff without view permission on generations


def test_date_hierarchy_seeks_give_what_distinct_dates_give():
    from datetime import datetime
    from datetime import timezone as dt_timezone

    from django.db.models import Max, Min, QuerySet

    from generation.records.querysets import SeekingDatesQuerySet

    for stamp in [(2025, 12, 31, 23, 59), (2026, 1, 1, 0, 0), (2026, 1, 1, 13, 5), (2026, 1, 20, 8, 0), (2026, 3, 2, 9, 0)]:
        make_row(created_at=datetime(*stamp, tzinfo=dt_timezone.utc), status="cancelled" if stamp[2] == 1 else "completed")
    make_row(created_at=datetime(2026, 2, 14, 12, 0, tzinfo=dt_timezone.utc), status="failed")
    seeking = SeekingDatesQuerySet(Generation)
    for rows, plain in (
        (seeking, Generation.objects.all()),
        (seeking.filter(status="completed"), QuerySet(Generation).filter(status="completed")),
        (seeking.filter(created_at__year=2026), QuerySet(Generation).filter(created_at__year=2026)),
    ):
        for kind in ("year", "month", "day", "hour"):
            assert rows.datetimes("created_at", kind) == list(plain.datetimes("created_at", kind)), kind
        bounds = {"first": Min("created_at"), "last": Max("created_at")}
        assert rows.aggregate(**bounds) == plain.aggregate(**bounds)
    assert seeking.aggregate(n=Min("ttft_ms")) == {"n": None}  # other fields behave as before
    assert SeekingDatesQuerySet(Generation).none().aggregate(first=Min("created_at")) == {"first": None}


def test_changelist_counts_at_most_the_cap(staff_client, monkeypatch):
    from generation.admin import CappedCountPaginator

    monkeypatch.setattr(CappedCountPaginator, "CAP", 5)
    for _ in range(7):
        make_row()
    html = staff_client.get(CHANGELIST).content.decode()
    assert "More than 5 generations" in html and "counting stops there" in html
    assert "More than 5 results" in html and "5 results" not in html.replace("More than 5 results", "")
    html = staff_client.get(CHANGELIST, {"status__exact": "cancelled"}).content.decode()
    assert "0 generations" in html and "More than" not in html
    make_row(status="cancelled")
    assert "1 generation\n" in staff_client.get(CHANGELIST, {"status__exact": "cancelled"}).content.decode()
