"""The per-channel queue: order kept, pace kept, queued edits of one message merged."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from opendispatch.adapters.slack.outbox import Outbox, OutboxClosed, Write


def recorder(done: list[tuple[str, float]], name: str, fail: bool = False) -> Any:
    async def action() -> dict[str, Any]:
        done.append((name, trio.current_time()))
        if fail:
            raise RuntimeError(name)
        return {"ok": True, "name": name}

    return action


async def test_writes_keep_their_order_and_pace_and_edits_of_one_message_merge(
    autojump_clock: trio.testing.MockClock,
) -> None:
    done: list[tuple[str, float]] = []
    async with trio.open_nursery() as nursery:
        outbox = Outbox(nursery, interval_s=1.0)
        post_a = outbox.put("C1", Write(recorder(done, "post A")))
        outbox.put("C1", Write(recorder(done, "edit m1 v1"), key="C1/m1"))
        edit_m2 = outbox.put("C1", Write(recorder(done, "edit m2 v1"), key="C1/m2"))
        outbox.put("C1", Write(recorder(done, "edit m1 v2"), key="C1/m1"))
        post_b = outbox.put("C1", Write(recorder(done, "post B")))
        edit_m1 = outbox.put("C1", Write(recorder(done, "edit m1 v3"), key="C1/m1"))
        other = outbox.put("C2", Write(recorder(done, "other channel")))
        for write in (post_a, edit_m1, edit_m2, post_b, other):
            await write.wait()
        assert outbox.pending("C1") == 0
    assert [name for name, _ in done if name != "other channel"] == ["post A", "edit m1 v3", "edit m2 v1", "post B"]
    c1_times = [at for name, at in done if name != "other channel"]
    assert all(b - a >= 1.0 for a, b in zip(c1_times, c1_times[1:]))
    assert dict(done)["other channel"] == 0.0  # channels do not wait for each other


async def test_a_failed_write_is_reported_to_its_caller_and_the_lane_goes_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    done: list[tuple[str, float]] = []
    async with trio.open_nursery() as nursery:
        outbox = Outbox(nursery, interval_s=0.1)
        bad = outbox.put("C1", Write(recorder(done, "bad", fail=True)))
        good = outbox.put("C1", Write(recorder(done, "good")))
        with pytest.raises(RuntimeError, match="bad"):
            await bad.wait()
        assert (await good.wait())["name"] == "good"


async def test_writes_left_at_shutdown_fail_instead_of_hanging(autojump_clock: trio.testing.MockClock) -> None:
    done: list[tuple[str, float]] = []
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            outbox = Outbox(nursery, interval_s=10.0)
            first = outbox.put("C1", Write(recorder(done, "first")))
            second = outbox.put("C1", Write(recorder(done, "second")))
            await first.wait()
            nursery.cancel_scope.cancel()  # shutdown while "second" waits for its turn
        with pytest.raises(OutboxClosed):
            await second.wait()
    assert [name for name, _ in done] == ["first"]
