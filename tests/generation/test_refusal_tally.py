"""Rate-limit refusals counted per clock hour and limit in RefusalTally (shared by every
process through the database) and shown on the admin dashboard; the count never changes
the 429 itself."""
import logging
import re
import threading
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import close_old_connections, connection
from django.test import Client
from django.utils import timezone

from generation.models import RefusalTally
from generation.records import rollups
from generation.records.dashboard import dashboard_stats
from generation.records.prune import generations_prune
from generation.records.usage import refusal_tally_add
from tests.support.asgi import call

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/generations"
BODY = {"prompt": "Copy for a cedar board", "stream": False}
DASHBOARD = "/admin/generation/generation/dashboard/"


def tallied() -> dict:
    return {(row.hour, row.limit_name): row.refused for row in RefusalTally.objects.all()}


async def test_each_refusal_adds_one_to_its_hour_and_limit(scripted, auth_headers, settings):
    settings.SLUICE_LIMIT_REQUESTS_PER_MINUTE = 1
    assert (await call(URL, body=BODY, headers=auth_headers)).status == 200
    assert (await call(URL, body=BODY, headers=auth_headers)).status == 429
    chat = {"model": "scripted", "messages": [{"role": "user", "content": "Hi"}]}
    assert (await call("/v1/chat/completions", body=chat, headers=auth_headers)).status == 429
    hour = rollups.floor_hour(timezone.now())
    rows = [row async for row in RefusalTally.objects.all()]
    assert [(row.hour, row.limit_name, row.refused) for row in rows] == [(hour, "requests_per_minute", 2)]


def test_concurrent_adds_from_many_threads_are_all_counted():
    """The first add of an hour races: every thread either updates or, losing the insert,
    updates after all; none is lost."""
    hour = rollups.floor_hour(timezone.now())
    start = threading.Barrier(6)
    errors = []

    def add_some():
        try:
            start.wait()
            for _ in range(5):
                refusal_tally_add(limit="concurrent_streams", hour=hour)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=add_some) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert tallied() == {(hour, "concurrent_streams"): 30}


def test_dashboard_shows_refusals_per_window_by_limit():
    now = timezone.now()
    this_hour = rollups.floor_hour(now)
    RefusalTally.objects.create(hour=this_hour, limit_name="requests_per_minute", refused=7)
    RefusalTally.objects.create(hour=this_hour, limit_name="tokens_per_day", refused=2)
    RefusalTally.objects.create(hour=this_hour - timedelta(hours=5), limit_name="concurrent_streams", refused=4)
    RefusalTally.objects.create(hour=this_hour - timedelta(days=40), limit_name="tokens_per_day", refused=100)

    assert dashboard_stats("1h")["refusals"]["by_limit"] == {
        "requests_per_minute": 7, "concurrent_streams": 0, "tokens_per_day": 2,
    }
    assert dashboard_stats("24h")["refusals"]["total"] == 13
    assert dashboard_stats("30d")["refusals"]["total"] == 13  # the 40-day-old hour is outside

    staff = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-for-tests")
    client = Client()
    client.force_login(staff)
    html = client.get(DASHBOARD, {"window": "24h"}).content.decode()
    section = html[html.index("Rate-limit refusals"):]
    section = section[: section.index("</table>")]
    cells = dict(re.findall(r"<tr><th>([a-z_A-Z]+)</th><td>(\d+)</td></tr>", section))
    assert cells == {"Total": "13", "requests_per_minute": "7", "concurrent_streams": "4", "tokens_per_day": "2"}


def test_prune_deletes_the_refusal_counts_of_the_pruned_days():
    now = timezone.now()
    RefusalTally.objects.create(hour=rollups.floor_hour(now), limit_name="requests_per_minute", refused=1)
    RefusalTally.objects.create(hour=rollups.floor_hour(now - timedelta(days=100)), limit_name="requests_per_minute",
                                refused=1)
    generations_prune(older_than=timedelta(days=90))
    assert list(RefusalTally.objects.values_list("refused", flat=True)) == [1]
    assert RefusalTally.objects.get().hour == rollups.floor_hour(now)


async def test_a_database_failure_while_counting_leaves_the_429_as_it_was(scripted, auth_headers, settings, caplog):
    settings.SLUICE_LIMIT_REQUESTS_PER_MINUTE = 1
    assert (await call(URL, body=BODY, headers=auth_headers)).status == 200
    counted = await call(URL, body=BODY, headers=auth_headers)
    table = RefusalTally._meta.db_table
    await _rename(table, f"{table}_away")  # the table is gone: every write to it fails in the database
    try:
        with caplog.at_level(logging.WARNING, logger="generation.records.usage"):
            uncounted = await call(URL, body=BODY, headers=auth_headers)
    finally:
        await _rename(f"{table}_away", table)
    assert uncounted.status == counted.status == 429
    assert uncounted.json() == counted.json()
    for header in ("retry-after", "ratelimit-limit", "ratelimit-remaining"):
        assert header in uncounted.headers
    assert [row.refused async for row in RefusalTally.objects.all()] == [1]  # only the refusal before the failure
    warnings = [record.getMessage() for record in caplog.records if "not tallied" in record.getMessage()]
    assert len(warnings) == 1 and re.fullmatch(r"rate-limit refusal not tallied \(\w+Error\)", warnings[0]), warnings


@sync_to_async
def _rename(old: str, new: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {old} RENAME TO {new}")
