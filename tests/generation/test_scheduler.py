import asyncio

import pytest

from generation.lifecycle.scheduler import QueueFull, Scheduler


async def test_free_slot_is_granted_immediately():
    scheduler = Scheduler(slots=2, max_queue=4)
    first, second = scheduler.enqueue(), scheduler.enqueue()
    assert (first.slot, second.slot) == (0, 1)
    assert first.position == second.position == 0
    assert scheduler.snapshot()["slots_busy"] == 2


async def test_waiters_are_served_in_order_and_positions_move_up():
    scheduler = Scheduler(slots=1, max_queue=4)
    running = scheduler.enqueue()
    waiting = [scheduler.enqueue() for _ in range(3)]
    assert [ticket.position for ticket in waiting] == [1, 2, 3]
    scheduler.release(running.slot)
    assert waiting[0].slot == 0
    assert [ticket.position for ticket in waiting[1:]] == [1, 2]
    assert await waiting[1].wait_changed(0.1)  # told about its new position


async def test_full_queue_raises_with_retry_after():
    scheduler = Scheduler(slots=1, max_queue=1)
    scheduler.enqueue()
    scheduler.enqueue()
    with pytest.raises(QueueFull) as raised:
        scheduler.enqueue()
    assert raised.value.retry_after >= 1


async def test_withdrawing_renumbers_and_returns_an_unused_slot():
    scheduler = Scheduler(slots=1, max_queue=4)
    running = scheduler.enqueue()
    first, second = scheduler.enqueue(), scheduler.enqueue()
    scheduler.withdraw(first)
    assert second.position == 1
    scheduler.withdraw(running)  # granted but never used: the slot goes to the next waiter
    assert second.slot == 0
    scheduler.withdraw(running)  # idempotent
    assert scheduler.snapshot() == {"slots": 1, "slots_busy": 1, "queue_depth": 0, "max_queue": 4}


async def test_release_from_a_worker_thread_wakes_the_waiter():
    scheduler = Scheduler(slots=1, max_queue=4)
    running = scheduler.enqueue()
    waiter = scheduler.enqueue()
    await asyncio.to_thread(scheduler.release, running.slot)
    assert await waiter.wait_changed(1.0)
    assert waiter.slot == 0
