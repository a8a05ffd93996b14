"""Routing, cool-down and health rules of the upstream pool (no network: a scripted check)."""
import pytest

from generation.backends.remote_config import PoolConfig, parse_upstreams
from generation.backends.remote_http import UpstreamError
from generation.backends.remote_pool import Pool


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def make_pool(urls="http://a:1,http://b:2", slots="2", affinity=False, healthy=None):
    healthy = healthy if healthy is not None else {}
    clock = Clock()
    config = PoolConfig(upstreams=parse_upstreams(urls, slots=slots), affinity=affinity, cooldown=10.0)
    pool = Pool(config, clock=clock, check=lambda upstream: healthy.get(upstream.name, True))
    return pool, clock, healthy


def test_least_outstanding_requests_spreads_and_refills():
    pool, _, _ = make_pool()
    first, second = pool.acquire(), pool.acquire()
    assert {first.name, second.name} == {"u0", "u1"}
    pool.release(first)
    assert pool.acquire().name == first.name  # the one with nothing outstanding


def test_routing_weighs_outstanding_by_slots():
    pool, _, _ = make_pool(slots="1,3")
    names = [pool.acquire().name for _ in range(4)]
    assert names.count("u1") == 3 and names.count("u0") == 1


def test_excluded_upstream_is_not_chosen_and_none_when_nothing_is_left():
    pool, _, _ = make_pool()
    assert pool.acquire(exclude=frozenset({0})).name == "u1"
    assert pool.acquire(exclude=frozenset({0, 1})) is None


def test_affinity_keeps_a_caller_on_one_upstream_while_it_has_room():
    pool, _, _ = make_pool(affinity=True)
    chosen = {pool.acquire("key:alice").name for _ in range(2)}
    assert len(chosen) == 1  # both requests on alice's upstream (2 slots)
    overflow = pool.acquire("key:alice")
    assert overflow.name not in chosen  # full: least outstanding instead
    owners = {pool.upstreams[0].name: 0, pool.upstreams[1].name: 0}
    for index in range(40):
        owners[pool.acquire(f"key:{index}").name] += 1
    assert all(count > 0 for count in owners.values())  # callers are spread, not all pinned


def test_affinity_off_ignores_the_owner():
    pool, _, _ = make_pool()
    first = pool.acquire("key:alice")
    assert pool.acquire("key:alice").name != first.name


def test_connect_error_and_5xx_cool_down_and_remove_slots():
    pool, clock, healthy = make_pool()
    seen = []
    pool.add_capacity_listener(seen.append)
    upstream = pool.acquire()
    pool.failed(upstream, UpstreamError("connect"))
    assert seen == [4, 2]
    assert pool.report()[upstream.name]["up"] is False
    assert all(pool.acquire().name != upstream.name for _ in range(3))
    pool.check_once()  # healthy again, but still in its cool-down
    assert seen == [4, 2]
    clock.now += 10
    pool.check_once()
    assert seen == [4, 2, 4]
    assert pool.report()[upstream.name] == {
        "up": True, "slots": 2, "in_flight": 1, "cooldown_seconds": 0.0, "last_error": ""
    }


@pytest.mark.parametrize("status, down", [(503, True), (500, True), (429, False), (400, False)])
def test_only_server_errors_count_against_health(status, down):
    pool, _, _ = make_pool()
    upstream = pool.acquire()
    pool.failed(upstream, UpstreamError("status", status=status))
    assert pool.report()[upstream.name]["up"] is (not down)


def test_active_check_takes_a_down_upstream_out_and_back():
    pool, clock, healthy = make_pool()
    healthy["u1"] = False
    pool.check_once()
    assert pool.capacity() == 2 and pool.report()["u1"]["last_error"] == "health_check"
    healthy["u1"] = True
    clock.now += 5
    pool.check_once()
    assert pool.capacity() == 2  # cool-down not over
    clock.now += 5
    pool.check_once()
    assert pool.capacity() == 4


def test_upstream_settings_are_checked():
    assert [u.name for u in parse_upstreams("a=http://x:1, http://y:2")] == ["a", "u1"]
    assert [u.api_key for u in parse_upstreams("http://x:1,http://y:2", api_keys="k1,")] == ["k1", ""]
    for urls, slots in [("ftp://x", "1"), ("http://x:1,http://y:2", "1,2,3"), ("bad name=http://x", "1"),
                        ("http://x", "0"), ("a=http://x,a=http://y", "1")]:
        with pytest.raises(ValueError):
            parse_upstreams(urls, slots=slots)


def test_a_busy_upstream_answering_late_stays_in_service_an_idle_one_does_not():
    pool, _, healthy = make_pool()
    busy = pool.acquire()
    idle = next(u for u in pool.upstreams if u is not busy)
    healthy[busy.name] = healthy[idle.name] = None  # no answer in time
    pool.check_once()
    assert pool.report()[busy.name]["up"] is True and pool.report()[idle.name]["up"] is False
