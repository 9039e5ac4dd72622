"""The shared outbox: order per lane, coalesced edits, pacing by policy, refusals waited out."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio
import trio.testing

from opendispatch.support.paced_lanes import LanesClosed, PacedLanes, TryAgain, Unpaced, Write


@attrs.define
class EveryHalfSecond:
    """A policy for the tests: tries at least 0.5 s apart per lane, backoff of 0.25 s."""

    retry_for_s: float = 2.0
    tries: list[tuple[str, str, float]] = attrs.Factory(list)
    last: dict[str, float] = attrs.Factory(dict)

    def ready_at(self, lane: str, write: Write[Any], now: float) -> float:
        return max(now, self.last.get(lane, -1.0) + 0.5)

    def tried(self, lane: str, write: Write[Any], now: float) -> None:
        self.tries.append((lane, write.describe, now))
        self.last[lane] = now

    def finished(self, lane: str, write: Write[Any], now: float) -> None:
        pass

    def backoff_s(self, tries: int) -> float:
        return 0.25


def action(log: list[str], name: str, *, fail: Exception | None = None) -> Any:
    async def call() -> str:
        await trio.lowlevel.checkpoint()
        log.append(name)
        if fail is not None:
            raise fail
        return name

    return call


def refusing(log: list[str], name: str, times: int, after_s: float | None) -> Any:
    """An action refused `times` times (a 429), then accepted."""
    left = [times]

    async def call() -> str:
        await trio.lowlevel.checkpoint()
        log.append(name)
        if left[0] > 0:
            left[0] -= 1
            raise TryAgain(after_s=after_s, give_up=lambda tries: RuntimeError(f"gave up after {tries}"), reason="429")
        return name

    return call


async def test_lanes_keep_order_pace_by_policy_and_do_not_wait_for_each_other(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    policy = EveryHalfSecond()
    async with trio.open_nursery() as nursery:
        lanes = PacedLanes[str](nursery, policy, name="Test")
        writes = [lanes.put("A", Write(action(log, f"a{n}"), describe=f"a{n}")) for n in range(3)]
        other = lanes.put("B", Write(action(log, "b0"), describe="b0"))
        assert lanes.pending("A") == 3 and lanes.queued() == 4
        assert [await w.wait() for w in writes] == ["a0", "a1", "a2"]
        assert await other.wait() == "b0"
        await lanes.drained()
    assert [name for name in log if name.startswith("a")] == ["a0", "a1", "a2"]
    a_times = [at for lane, _, at in policy.tries if lane == "A"]
    assert a_times == [0.0, 0.5, 1.0]
    assert [at for lane, _, at in policy.tries if lane == "B"] == [0.0]


async def test_only_the_newest_queued_edit_is_sent_in_the_oldest_place_and_posts_never_merge(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    async with trio.open_nursery() as nursery:
        lanes = PacedLanes[str](nursery, EveryHalfSecond(), name="Test")
        lanes.put("A", Write(action(log, "post 1")))
        first_edit = lanes.put("A", Write(action(log, "edit m v1"), key="m"))
        lanes.put("A", Write(action(log, "post 2")))
        lanes.put("A", Write(action(log, "post 2")))  # an identical post is still a post
        carrier = lanes.put("A", Write(action(log, "edit m v2"), key="m"))
        assert carrier is first_edit  # merged: the caller waits on the write that carries it
        assert await carrier.wait() == "edit m v2"
        await lanes.drained()
    assert log == ["post 1", "edit m v2", "post 2", "post 2"]


async def test_a_refusal_is_waited_out_at_the_head_where_newer_edits_still_join_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    async with trio.open_nursery() as nursery:
        lanes = PacedLanes[str](nursery, Unpaced(retry_for_s=10.0), name="Test")
        edit = lanes.put("A", Write(refusing(log, "edit v1", times=2, after_s=1.0), key="m"))
        after = lanes.put("A", Write(action(log, "post")))
        await trio.sleep(0.5)  # v1 was refused once and waits its second
        assert lanes.put("A", Write(action(log, "edit v2"), key="m")) is edit
        started = trio.current_time()
        assert await edit.wait() == "edit v2"
        assert trio.current_time() - started == pytest.approx(0.5)  # the 1 s Retry-After, counted from the refusal
        assert await after.wait() == "post"
    assert log == ["edit v1", "edit v2", "post"]


async def test_without_a_wait_named_the_policy_backs_off_until_the_retry_window_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    policy = EveryHalfSecond(retry_for_s=1.0)
    async with trio.open_nursery() as nursery:
        lanes = PacedLanes[str](nursery, policy, name="Test")
        doomed = lanes.put("A", Write(refusing(log, "doomed", times=100, after_s=None)))
        short = lanes.put("A", Write(refusing(log, "short", times=100, after_s=0.1), retry_for_s=0.0))
        later = lanes.put("A", Write(action(log, "later")))
        with pytest.raises(RuntimeError, match="gave up after 3"):
            await doomed.wait()  # tried at 0, 0.5, 1.0 (backoff, then paced); one more would end past 1 s
        assert [at for _, name, at in policy.tries if name == "write"][:3] == [0.0, 0.5, 1.0]
        with pytest.raises(RuntimeError, match="gave up after 1"):
            await short.wait()  # its own window: no retry at all
        assert await later.wait() == "later"


async def test_a_failed_write_tells_its_caller_and_the_lane_goes_on(autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    async with trio.open_nursery() as nursery:
        lanes = PacedLanes[str](nursery, Unpaced(), name="Test")
        bad = lanes.put("A", Write(action(log, "bad", fail=ValueError("refused"))))
        unwatched = lanes.put("A", Write(action(log, "edit", fail=ValueError("gone")), key="m", awaited=False))
        good = lanes.put("A", Write(action(log, "good")))
        with pytest.raises(ValueError, match="refused"):
            await bad.wait()
        assert await good.wait() == "good"
        assert unwatched.done
    assert log == ["bad", "edit", "good"]


async def test_writes_left_at_shutdown_fail_instead_of_hanging(autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            lanes = PacedLanes[str](nursery, EveryHalfSecond(), name="Test")
            first = lanes.put("A", Write(action(log, "first")))
            second = lanes.put("A", Write(action(log, "second"), describe="second post"))
            await first.wait()
            nursery.cancel_scope.cancel()  # shutdown while "second" waits for its turn
        with pytest.raises(LanesClosed, match="Test second post was not sent"):
            await second.wait()
        late = lanes.put("A", Write(action(log, "late")))  # the nursery is closed now
        with pytest.raises(LanesClosed):
            await late.wait()
        await lanes.drained()
    assert log == ["first"]
