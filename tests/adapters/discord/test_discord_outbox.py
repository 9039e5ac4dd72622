"""The Discord outbox: posts in order through 429s, edits collapsed into the newest and paced by
the rate-limit headers, long messages kept as parts. On trio's autojump clock, against the fake
Discord's app in memory (`fakes/in_memory_http.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import pytest
import trio
import trio.testing

from fakes.discord import BOT_TOKEN, FakeDiscord
from fakes.in_memory_http import IN_MEMORY_URL, in_memory_client
from opendispatch.adapters.discord.outbox import Outbox
from opendispatch.adapters.discord.payloads import message_parts
from opendispatch.adapters.discord.rest import DiscordRest
from opendispatch.domain.messages import Notice
from opendispatch.support.paced_lanes import LanesClosed


@attrs.define
class Wire:
    fake: FakeDiscord
    rest: DiscordRest
    outbox: Outbox
    channel: str
    nursery: trio.Nursery


@asynccontextmanager
async def open_wire(**fake_options: float) -> AsyncIterator[Wire]:
    fake = FakeDiscord(**fake_options)  # type: ignore[arg-type]
    fake.base_url = IN_MEMORY_URL
    async with in_memory_client(fake.app, base_url=fake.api_url) as http, trio.open_nursery() as nursery:
        rest = DiscordRest(http, BOT_TOKEN)
        with trio.fail_after(60):
            yield Wire(fake, rest, Outbox(rest, nursery), fake.add_channel(), nursery)
        nursery.cancel_scope.cancel()


async def test_edits_follow_the_rate_limit_headers_and_collapse_into_the_newest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_wire(edits_per_window=2, window_s=0.4) as wire:
        key = await wire.outbox.post(wire.channel, Notice("v0"))
        for version in range(1, 21):
            await wire.outbox.edit(key, Notice(f"v{version}"))
        await wire.outbox.wait_idle()
        [message] = wire.fake.in_channel(wire.channel)
        assert message["content"] == "v20"
        contents = [v["content"] for v in wire.fake.versions[message["id"]]]
        assert contents == sorted(contents, key=lambda c: int(c[1:]))  # never an older version last
        statistics = wire.outbox.statistics()
        assert len(contents) - 1 < 20 and statistics.edits_coalesced > 0
        assert statistics.edits_applied + statistics.edits_coalesced == 20 and statistics.queued == 0
        assert [c for c in wire.fake.calls if c.status == 429] == []  # the headers were followed


async def test_a_429_delays_a_post_and_the_posts_after_it_keep_their_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_wire() as wire:
        wire.fake.force_429("POST", "/messages", times=1, retry_after=0.7)
        started = trio.current_time()
        async with trio.open_nursery() as callers:
            for n in range(3):  # three callers, each waiting for its own post
                callers.start_soon(wire.outbox.post, wire.channel, Notice(f"post {n}"))
                await trio.lowlevel.checkpoint()
        assert [m["content"] for m in wire.fake.in_channel(wire.channel)] == ["post 0", "post 1", "post 2"]
        assert trio.current_time() - started == pytest.approx(0.7)  # retry_after, then the rest at once
        assert wire.rest.statistics().rate_limited == 1


async def test_an_edit_grows_and_shrinks_a_long_message_by_its_parts(autojump_clock: trio.testing.MockClock) -> None:
    async with open_wire() as wire:
        key = await wire.outbox.post(wire.channel, Notice("short"))
        long = Notice("\n".join(f"line {n:04d} " + "x" * 40 for n in range(100)))  # past 2,000 characters
        await wire.outbox.edit(key, long)
        await wire.outbox.wait_idle()
        parts = [m["content"] for m in wire.fake.in_channel(wire.channel)]
        assert parts == [p["content"] for p in message_parts(long)] and len(parts) > 1
        await wire.outbox.edit(key, Notice("short again"))
        await wire.outbox.wait_idle()
        assert [m["content"] for m in wire.fake.in_channel(wire.channel)] == ["short again"]  # extra parts deleted


async def test_an_edit_of_a_message_it_never_posted_is_refused() -> None:
    async with open_wire() as wire:
        with pytest.raises(KeyError):
            await wire.outbox.edit("1:2", Notice("nope"))


async def test_posts_left_at_shutdown_fail_instead_of_hanging(autojump_clock: trio.testing.MockClock) -> None:
    async with open_wire() as wire:
        wire.fake.force_429("POST", "/messages", times=1, retry_after=30.0)
        outcomes: list[BaseException | str] = []

        async def post(n: int) -> None:
            try:
                outcomes.append(await wire.outbox.post(wire.channel, Notice(f"post {n}")))
            except LanesClosed as exc:
                outcomes.append(exc)

        async with trio.open_nursery() as callers:
            callers.start_soon(post, 0)
            callers.start_soon(post, 1)
            await trio.sleep(1.0)  # the first waits out its 30 s rate limit, the second its turn
            wire.nursery.cancel_scope.cancel()  # the adapter shuts down
        assert len(outcomes) == 2 and all(isinstance(o, LanesClosed) for o in outcomes)
        assert isinstance(outcomes[0], RuntimeError)  # as before: a RuntimeError to callers that catch it
