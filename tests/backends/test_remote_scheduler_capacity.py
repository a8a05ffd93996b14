"""The scheduler's capacity changes (remote upstreams leaving and rejoining service)."""
from generation.lifecycle.scheduler import Scheduler


async def test_lower_capacity_takes_free_slots_out_at_once():
    scheduler = Scheduler(slots=4, max_queue=4)
    scheduler.set_capacity(2)
    granted = [scheduler.enqueue(), scheduler.enqueue()]
    third = scheduler.enqueue()
    assert all(ticket.slot is not None for ticket in granted)
    assert (third.slot, third.position) == (None, 1)
    assert scheduler.snapshot() == {"slots": 2, "slots_busy": 2, "queue_depth": 1, "max_queue": 4}


async def test_busy_slots_leave_when_released_and_never_reach_a_waiter():
    scheduler = Scheduler(slots=2, max_queue=4)
    first, second = scheduler.enqueue(), scheduler.enqueue()
    waiting = scheduler.enqueue()
    scheduler.set_capacity(1)
    scheduler.release(first.slot)  # retired, not handed on: capacity is 1 and one is busy
    assert waiting.slot is None
    assert scheduler.snapshot()["slots"] == 1
    scheduler.release(second.slot)  # the one slot in service goes to the waiter
    assert waiting.slot == second.slot


async def test_slots_coming_back_go_to_waiters_first():
    scheduler = Scheduler(slots=3, max_queue=4)
    scheduler.set_capacity(0)
    waiters = [scheduler.enqueue(), scheduler.enqueue()]
    assert [ticket.position for ticket in waiters] == [1, 2]
    scheduler.set_capacity(3)
    assert all(ticket.slot is not None for ticket in waiters)
    assert scheduler.snapshot() == {"slots": 3, "slots_busy": 2, "queue_depth": 0, "max_queue": 4}


async def test_capacity_back_before_busy_slots_were_released_keeps_them():
    scheduler = Scheduler(slots=2, max_queue=4)
    first, second = scheduler.enqueue(), scheduler.enqueue()
    scheduler.set_capacity(0)
    scheduler.set_capacity(2)  # pending retirements are cancelled, nothing is double counted
    scheduler.release(first.slot)
    scheduler.release(second.slot)
    assert scheduler.snapshot() == {"slots": 2, "slots_busy": 0, "queue_depth": 0, "max_queue": 4}
    assert {scheduler.enqueue().slot, scheduler.enqueue().slot} == {0, 1}


async def test_capacity_is_clamped_to_the_configured_slots():
    scheduler = Scheduler(slots=2, max_queue=1)
    scheduler.set_capacity(9)
    assert scheduler.snapshot()["slots"] == 2
    scheduler.set_capacity(-1)
    assert scheduler.snapshot()["slots"] == 0
