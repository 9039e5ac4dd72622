"""Per-method pacing: Slack's tiers as token buckets, and Retry-After holds for every caller."""

from __future__ import annotations

import trio
import trio.testing

from opendispatch.adapters.slack.settings import Pacing
from opendispatch.adapters.slack.web import MethodLimiter, retry_after_s


async def test_a_method_gets_its_burst_then_its_steady_rate(autojump_clock: trio.testing.MockClock) -> None:
    limiter = MethodLimiter(Pacing(per_minute={"chat.update": 60.0}, burst=2))
    times = []
    for _ in range(5):
        await limiter.acquire("chat.update")
        times.append(trio.current_time())
    start = times[0]
    assert [round(t - start, 3) for t in times] == [0.0, 0.0, 1.0, 2.0, 3.0]


async def test_methods_without_a_tier_are_not_held_back(autojump_clock: trio.testing.MockClock) -> None:
    limiter = MethodLimiter(Pacing(per_minute={}, burst=1))
    start = trio.current_time()
    for _ in range(10):
        await limiter.acquire("chat.postMessage")
    assert trio.current_time() == start


async def test_retry_after_holds_the_method_for_everyone(autojump_clock: trio.testing.MockClock) -> None:
    limiter = MethodLimiter(Pacing(per_minute={}, burst=1))
    start = trio.current_time()
    limiter.hold("chat.update", 30.0)
    await limiter.acquire("chat.postMessage")
    assert trio.current_time() == start
    await limiter.acquire("chat.update")
    assert trio.current_time() - start == 30.0


def test_retry_after_values() -> None:
    assert retry_after_s({"retry-after": "30"}) == 30.0
    assert retry_after_s({}) == 1.0
    assert retry_after_s({"retry-after": "soon"}) == 1.0
    assert retry_after_s({"retry-after": "-5"}) == 1.0
