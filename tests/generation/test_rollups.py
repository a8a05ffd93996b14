"""Hourly tallies: sealed hours give the same dashboard figures as the rows they came from."""
import random
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from generation.models import Generation, Tally
from generation.records import rollups
from generation.records.dashboard import dashboard_stats
from generation.records.prune import generations_prune

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)


def make_row(created_at: datetime, **fields) -> Generation:
    defaults = {"channel": "api", "model_name": "m", "model_version": "v1", "status": "completed"}
    return Generation.objects.create(created_at=created_at, **{**defaults, **fields})


def nearest_rank(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, int(fraction * len(ordered) + 0.5))) - 1]


def seed_hours(rng: random.Random, hours: int = 6, per_hour: int = 40) -> list[Generation]:
    rows = []
    for back in range(1, hours + 1):
        for i in range(per_hour):
            status = rng.choice(["completed", "completed", "cancelled", "timed_out", "failed"])
            rows.append(make_row(
                NOW - back * rollups.HOUR + timedelta(seconds=rng.randint(0, 3599)),
                status=status,
                cancel_reason="client_disconnect" if status == "cancelled" else "",
                timeout_source="stall" if status == "timed_out" else "",
                tokens_after_cancel=rng.randint(0, 3) if status == "cancelled" else 0,
                redaction_counts=rng.choice([{}, {"EMAIL_ADDRESS": 1}, {"SUPPLIER": 2, "PRICE": 1}]),
                ttft_ms=rng.randint(1, 5000),
                duration_ms=rng.randint(100, 90000),
                queue_ms=rng.choice([0, 0, rng.randint(1, 3000)]),
                tokens_per_second=round(rng.uniform(5, 60), 2),
            ))
    return rows


def figures(since: datetime, now: datetime) -> dict:
    tally = rollups.window_tally(since, now)
    return {
        "status": rollups.totals(tally, "status"),
        "reasons": rollups.totals(tally, "cancel_reason"),
        "timeouts": rollups.totals(tally, "timeout_source"),
        "after_cancel": rollups.totals(tally, "tokens_after_cancel"),
        "redactions": rollups.totals(tally, "redaction"),
        "hourly": sorted(tally.hourly.items()),
        **{field: rollups.percentiles(tally, field, (0.5, 0.95, 0.99)) for field in rollups.LATENCY_FIELDS},
    }


def test_percentiles_from_buckets_are_within_two_percent_of_exact():
    rows = seed_hours(random.Random(3), hours=2, per_hour=150)
    tally = rollups.window_tally(NOW - timedelta(hours=3), NOW)
    for field in rollups.LATENCY_FIELDS:
        values = [getattr(row, field) for row in rows]
        for fraction, got in rollups.percentiles(tally, field, (0.5, 0.9, 0.95, 0.99)).items():
            exact = nearest_rank(values, fraction)
            assert got == pytest.approx(exact, rel=0.02, abs=1e-9), (field, fraction)


def test_small_whole_numbers_are_exact():
    for ttft in range(1, 26):
        make_row(NOW - timedelta(minutes=5), ttft_ms=ttft)
    tally = rollups.window_tally(NOW - timedelta(hours=1), NOW)
    assert rollups.percentiles(tally, "ttft_ms", (0.2, 0.5, 1.0)) == {0.2: 5.0, 0.5: 13.0, 1.0: 25.0}


def test_sealing_keeps_every_figure_and_is_done_once():
    seed_hours(random.Random(5))
    since = NOW - timedelta(hours=5, minutes=20)  # a partial first hour
    before = figures(since, NOW)
    assert rollups.seal_settled_hours(now=NOW) == 30 * 24  # every ended hour the 30-day window touches
    assert Tally.objects.filter(name=rollups.SEALED, hours=1).count() == 30 * 24
    assert figures(since, NOW) == before
    assert rollups.seal_settled_hours(now=NOW) == 0
    assert figures(since, NOW) == before


def test_the_window_edge_cuts_a_sealed_hour_exactly():
    edge = NOW - timedelta(hours=3)  # 09:30
    make_row(edge - timedelta(minutes=10), ttft_ms=10)  # same clock hour, before the window
    make_row(edge + timedelta(minutes=10), ttft_ms=20)
    rollups.seal_settled_hours(now=NOW)
    counted = figures(edge, NOW)
    assert counted["status"] == {"completed": 1} and counted["ttft_ms"][0.5] == 20


def test_hours_with_unfinished_rows_or_not_yet_settled_stay_unsealed():
    running = make_row(NOW - timedelta(hours=3), status="running")
    make_row(NOW - timedelta(hours=2))
    just_ended = NOW.replace(minute=0) - timedelta(minutes=30)  # 11:30: its hour ended 30 min ago
    make_row(just_ended)
    sealed_at = NOW.replace(minute=1)  # 12:01: the 11:00 hour is inside the settle margin
    rollups.seal_settled_hours(now=sealed_at)
    sealed = set(Tally.objects.filter(name=rollups.SEALED, hours=1).values_list("start", flat=True))
    assert rollups.floor_hour(running.created_at) not in sealed
    assert NOW.replace(minute=0) - timedelta(hours=2) in sealed
    assert NOW.replace(minute=0) - timedelta(hours=1) not in sealed
    assert figures(NOW - timedelta(hours=4), sealed_at)["status"] == {"running": 1, "completed": 2}

    Generation.objects.filter(pk=running.pk).update(status="cancelled", cancel_reason="client_cancel")
    rollups.seal_settled_hours(now=NOW)
    assert rollups.floor_hour(running.created_at) in set(
        Tally.objects.filter(name=rollups.SEALED, hours=1).values_list("start", flat=True)
    )
    assert figures(NOW - timedelta(hours=4), NOW)["reasons"] == {"client_cancel": 1}


def test_two_processes_sealing_the_same_hour_store_it_once():
    hour = NOW.replace(minute=0) - timedelta(hours=2)
    make_row(hour + timedelta(minutes=1))
    # Both computed the hour before either stored it; the second insert is ignored.
    first, second = rollups._settled_figures(hour), rollups._settled_figures(hour)
    rollups._store({hour: first})
    rollups._store({hour: second})
    assert Tally.objects.filter(start=hour, hours=1, name="status").get().value == 1
    assert Tally.objects.filter(start=hour, hours=1, name=rollups.SEALED).count() == 1


def test_dashboard_reads_sealed_hours(django_assert_max_num_queries):
    rows = seed_hours(random.Random(9), hours=30, per_hour=5)
    rollups.seal_settled_hours()
    # the rows above were made relative to NOW; dashboard_stats uses the real clock
    stats = dashboard_stats("30d")
    assert stats["total"] == len([row for row in rows if row.created_at >= timezone.now() - timedelta(days=30)])
    with django_assert_max_num_queries(40):  # tallies + the two hours not sealed, never per sealed hour
        dashboard_stats("30d")


def test_prune_and_command(capsys):
    make_row(NOW - timedelta(days=100))
    for age in (100, 10):
        Tally.objects.create(start=timezone.now() - timedelta(days=age), hours=1, name="status", label="ok", value=1)
    generations_prune(older_than=timedelta(days=90))
    assert Tally.objects.count() == 1
    call_command("rollup_generations")
    sealed = Tally.objects.filter(name=rollups.SEALED, hours=1).count()
    assert sealed in (719, 720)  # the newest ended hour waits for the settle margin (2 min)
    assert f"Sealed {sealed} hour(s)" in capsys.readouterr().out


def test_full_days_are_summed_into_day_rows_with_the_same_figures():
    rng = random.Random(11)
    rows = seed_hours(rng, hours=80, per_hour=3)  # NOW is 12:30: three full UTC days and two partial ones
    since = NOW - timedelta(hours=79, minutes=10)
    before = figures(since, NOW)
    rollups.seal_settled_hours(now=NOW)
    days = set(Tally.objects.filter(name=rollups.SEALED, hours=24).values_list("start", flat=True))
    midnight = rollups.floor_day(NOW)
    assert {midnight - timedelta(days=n) for n in (1, 2, 3)} <= days and midnight not in days
    day = Tally.objects.get(hours=24, start=midnight - timedelta(days=1), name="status", label="completed")
    assert day.value == sum(
        1 for row in rows if row.status == "completed" and rollups.floor_day(row.created_at) == day.start
    )
    assert figures(since, NOW) == before
    in_window = [row for row in rows if row.created_at >= since]
    assert before["status"] == {status: sum(row.status == status for row in in_window) for status in before["status"]}


def test_the_heartbeat_seals_a_backlog_each_beat_then_only_when_another_hour_settles(monkeypatch, django_assert_num_queries):
    from generation.ops import ownership

    monkeypatch.setattr(ownership, "_caught_up_at", None)
    clock = {"now": NOW}
    monkeypatch.setattr(timezone, "now", lambda: clock["now"])
    seed_hours(random.Random(3), hours=2, per_hour=5)
    beats = []
    while not beats or beats[-1] == ownership.SEAL_HOURS_PER_BEAT:  # a month to catch up, a day a beat
        beats.append(ownership.seal_tallies())
    assert sum(beats) == 30 * 24 and len(beats) == 31
    with django_assert_num_queries(0):  # caught up: a beat in the same settled hour reads nothing
        assert ownership.seal_tallies() == 0
    make_row(NOW - timedelta(minutes=20))  # a run in the hour that settles next
    clock["now"] = NOW + timedelta(hours=1)
    assert ownership.seal_tallies() == 1  # the next hour, sealed with its row
    assert Tally.objects.filter(name=rollups.SEALED, hours=1, start=rollups.floor_hour(NOW)).exists()
    with django_assert_num_queries(0):
        assert ownership.seal_tallies() == 0
