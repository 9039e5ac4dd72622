"""SharedTimer: many sleepers, one trio deadline per tick; never early, never stuck."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from opendispatch.app.shared_timer import SharedTimer


async def test_sleepers_wake_at_their_deadline_rounded_up_to_a_tick(autojump_clock: trio.testing.MockClock) -> None:
    timer = SharedTimer(tick_s=0.1)
    woke: dict[float, float] = {}
    all_woke = trio.Event()
    offsets = (0.3, 0.25, 0.21, 1.0, 0.05)

    async def sleep(deadline: float) -> None:
        await timer.sleep_until(deadline)
        woke[deadline] = trio.current_time()
        if len(woke) == len(offsets):
            all_woke.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(timer.run)
        start = trio.current_time()
        for offset in offsets:
            nursery.start_soon(sleep, start + offset)
        with trio.fail_after(5):
            await all_woke.wait()
        nursery.cancel_scope.cancel()

    for deadline, at in woke.items():
        assert deadline <= at <= deadline + 0.1 + 1e-9
    # the three due within one tick woke together, at its end
    assert woke[start + 0.21] == woke[start + 0.25] == woke[start + 0.3]


async def test_a_deadline_earlier_than_the_awaited_tick_is_not_delayed(autojump_clock: trio.testing.MockClock) -> None:
    timer = SharedTimer(tick_s=0.01)
    woke: list[str] = []
    first_woke = trio.Event()

    async def sleep(name: str, deadline: float) -> None:
        await timer.sleep_until(deadline)
        woke.append(name)
        first_woke.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(timer.run)
        start = trio.current_time()
        nursery.start_soon(sleep, "late", start + 10.0)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(sleep, "early", start + 1.0)
        with trio.fail_after(2.0):  # would take 10 s if the timer kept waiting for "late"
            await first_woke.wait()
        assert woke == ["early"]
        nursery.cancel_scope.cancel()


async def test_without_its_task_it_sleeps_like_trio(autojump_clock: trio.testing.MockClock) -> None:
    timer = SharedTimer(tick_s=5.0)
    start = trio.current_time()
    await timer.sleep_until(start + 1.5)
    assert trio.current_time() == pytest.approx(start + 1.5)


async def test_sleepers_are_released_when_the_timer_stops() -> None:
    timer = SharedTimer()
    released = trio.Event()

    async def sleeper() -> None:
        await timer.sleep_until(trio.current_time() + 3600.0)
        released.set()

    async with trio.open_nursery() as outer:
        with trio.CancelScope() as timer_scope:
            async with trio.open_nursery() as nursery:
                await nursery.start(timer.run)
                outer.start_soon(sleeper)
                await trio.testing.wait_all_tasks_blocked()
                timer_scope.cancel()
        with trio.fail_after(5):
            await released.wait()
        outer.cancel_scope.cancel()


def test_the_tick_must_be_positive() -> None:
    with pytest.raises(ValueError, match="tick_s"):
        SharedTimer(tick_s=0.0)


async def test_a_call_runs_at_its_tick_unless_cancelled(autojump_clock: trio.testing.MockClock) -> None:
    timer = SharedTimer(tick_s=0.1)
    called: list[tuple[str, float]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(timer.run)
        start = trio.current_time()
        kept = timer.call_at(start + 0.25, lambda: called.append(("kept", trio.current_time())))
        dropped = timer.call_at(start + 0.25, lambda: called.append(("dropped", trio.current_time())))
        assert kept is not None and dropped is not None
        timer.cancel(dropped)
        await trio.sleep(1.0)
        timer.cancel(kept)  # after it ran: harmless
        nursery.cancel_scope.cancel()
    assert [name for name, _ in called] == ["kept"]
    assert start + 0.25 <= called[0][1] <= start + 0.3 + 1e-9


async def test_without_its_task_a_call_is_declined_so_the_caller_keeps_its_own_deadline() -> None:
    timer = SharedTimer()
    assert timer.call_at(trio.current_time() + 1.0, lambda: None) is None


async def test_pending_calls_run_when_the_timer_stops() -> None:
    timer = SharedTimer()
    woken = trio.Event()
    with trio.CancelScope() as timer_scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(timer.run)
            assert timer.call_at(trio.current_time() + 3600.0, woken.set) is not None
            timer_scope.cancel()
    assert woken.is_set()  # a waiter relying on it is not left hanging
