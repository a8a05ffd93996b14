"""prune_generations: finished rows past the retention period go, in batches; live rows stay."""
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from generation.management.commands.prune_generations import parse_age
from generation.models import Generation
from generation.records.prune import generations_prune

pytestmark = pytest.mark.django_db


def make_row(age: timedelta, status: str = "completed") -> Generation:
    return Generation.objects.create(
        channel="api", model_name="m", model_version="v", status=status, created_at=timezone.now() - age
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12h", timedelta(hours=12)), ("90d", timedelta(days=90)), ("2w", timedelta(weeks=2)), ("7", timedelta(days=7))],
)
def test_parse_age(text, expected):
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["", "0d", "-3d", "3m", "d", "1.5d"])
def test_parse_age_rejects_nonsense(text):
    with pytest.raises(ValueError):
        parse_age(text)


def test_prune_deletes_only_old_finished_rows(capsys):
    old_finished = [make_row(timedelta(days=100), status) for status in Generation.FINISHED_STATUSES]
    old_live = [make_row(timedelta(days=100), status) for status in ("queued", "running")]
    recent = make_row(timedelta(days=10))
    call_command("prune_generations", "--older-than", "90d")
    assert f"Deleted {len(old_finished)} finished generation(s)" in capsys.readouterr().out
    remaining = set(Generation.objects.values_list("pk", flat=True))
    assert remaining == {row.pk for row in old_live} | {recent.pk}


def test_prune_uses_the_retention_setting_by_default(settings, capsys):
    settings.SLUICE_RETENTION_DAYS = 30
    make_row(timedelta(days=31))
    keep = make_row(timedelta(days=29))
    call_command("prune_generations")
    assert "Deleted 1 finished generation(s)" in capsys.readouterr().out
    assert list(Generation.objects.values_list("pk", flat=True)) == [keep.pk]


def test_retention_off(settings, capsys):
    settings.SLUICE_RETENTION_DAYS = 0
    make_row(timedelta(days=1000))
    call_command("prune_generations")
    assert "Retention is off" in capsys.readouterr().out and Generation.objects.count() == 1


def test_prune_works_in_batches():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(7):
        make_row(timedelta(hours=5))
    with CaptureQueriesContext(connection) as queries:
        assert generations_prune(older_than=timedelta(hours=4), batch_size=3) == 7
    rows_delete = 'DELETE FROM "generation_generation"'
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith(rows_delete)]
    assert len(deletes) == 3
    assert not Generation.objects.exists()


def test_bad_arguments():
    with pytest.raises(CommandError):
        call_command("prune_generations", "--older-than", "soon")
    with pytest.raises(CommandError):
        call_command("prune_generations", "--batch-size", "0")
