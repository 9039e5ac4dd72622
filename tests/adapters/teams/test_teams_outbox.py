"""Outgoing activities: ordered, paced within Teams' limits, 429 honoured, nothing lost.

On trio's autojump clock, against the fake cloud's app in memory (`fakes/in_memory_http.py`):
waits that Teams asks for (Retry-After, its windows, the edit interval) take no wall time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.utils import format_datetime
import datetime

import attrs
import pytest
import trio
import trio.testing

from fakes.in_memory_http import IN_MEMORY_URL, in_memory_client
from fakes.teams import CHANNEL, FakeTeamsCloud
from opendispatch.adapters.teams.connector import BotConnector, ConnectorError, Target
from opendispatch.adapters.teams.credentials import ConnectorCredentials, TeamsAuthError
from opendispatch.adapters.teams.outbox import Outbox, SlidingWindows, THREAD_LIMITS, retry_after_s
from teams_rig import settings_for

CONVERSATION = f"{CHANNEL};messageid=1632474000000"


@attrs.define
class Wire:
    cloud: FakeTeamsCloud
    outbox: Outbox
    target: Target
    credentials: ConnectorCredentials

    def statuses(self) -> list[tuple[str, int]]:
        return [(call.method, call.status) for call in self.cloud.calls]


def in_memory_cloud() -> FakeTeamsCloud:
    cloud = FakeTeamsCloud()
    cloud.url = IN_MEMORY_URL
    return cloud


@asynccontextmanager
async def open_wire(**overrides: object) -> AsyncIterator[Wire]:
    cloud = in_memory_cloud()
    settings = settings_for(cloud, **overrides)
    async with in_memory_client(cloud.app(), timeout=5) as http, trio.open_nursery() as nursery:
        credentials = ConnectorCredentials(http, settings)
        outbox = Outbox(BotConnector(http, credentials), nursery, settings)
        with trio.fail_after(15):
            yield Wire(cloud, outbox, Target(cloud.service_url, CONVERSATION), credentials)
        nursery.cancel_scope.cancel()


def message(n: int) -> dict[str, object]:
    return {"type": "message", "text": f"message {n}", "textFormat": "plain"}


async def test_429_is_retried_after_the_retry_after_delay_and_the_post_still_lands(autojump_clock: trio.testing.MockClock) -> None:
    async with open_wire() as wire:
        wire.cloud.force(429, times=2, retry_after="0.2")
        started = trio.current_time()
        first = await wire.outbox.post(wire.target, message(1))
        assert trio.current_time() - started >= 0.4
        second = await wire.outbox.post(wire.target, message(2), reply_to=first)
        assert wire.statuses() == [("POST", 429), ("POST", 429), ("POST", 201), ("POST", 201)]
        assert [wire.cloud.activities[i].latest["text"] for i in wire.cloud.order] == ["message 1", "message 2"]
        assert wire.cloud.activities[second].reply_to == first


async def test_412_and_502_without_retry_after_are_retried_with_backoff(autojump_clock: trio.testing.MockClock) -> None:
    async with open_wire() as wire:
        wire.cloud.force(412, retry_after=None)
        wire.cloud.force(502, retry_after=None)
        await wire.outbox.post(wire.target, message(1))
        assert [s for _, s in wire.statuses()] == [412, 502, 201]


async def test_a_refusal_fails_that_post_only_and_later_ones_go_through(autojump_clock: trio.testing.MockClock) -> None:
    async with open_wire() as wire:
        wire.cloud.force(400, retry_after=None)
        with pytest.raises(ConnectorError, match="HTTP 400"):
            await wire.outbox.post(wire.target, message(1))
        await wire.outbox.post(wire.target, message(2))
        assert [wire.cloud.activities[i].latest["text"] for i in wire.cloud.order] == ["message 2"]


async def test_a_post_gives_up_only_at_the_retry_deadline(autojump_clock: trio.testing.MockClock) -> None:
    async with open_wire(retry_deadline_s=0.5) as wire:
        wire.cloud.force(503, times=100, retry_after="0.2")
        with pytest.raises(ConnectorError, match="still failing"):
            await wire.outbox.post(wire.target, message(1))
        assert 2 <= len(wire.cloud.calls) <= 4


async def test_edits_are_coalesced_paced_and_never_overtake_a_later_post(autojump_clock: trio.testing.MockClock) -> None:
    async with open_wire(edit_interval_s=0.2) as wire:
        live = await wire.outbox.post(wire.target, message(0))
        for n in range(1, 21):
            wire.outbox.update(wire.target, live, message(n))
            await trio.sleep(0.01)  # the runner edits at its own pace; 20 edits in ~0.2 s
        card = await wire.outbox.post(wire.target, message(99))
        puts = [call for call in wire.cloud.calls if call.method == "PUT"]
        assert 1 <= len(puts) < 10  # coalesced
        assert all(b.at - a.at >= 0.15 for a, b in zip(puts, puts[1:]))  # paced per activity
        assert wire.cloud.activities[live].latest["text"] == "message 20"  # nothing lost: the newest won
        assert wire.cloud.calls[-1].method == "POST" and wire.cloud.order[-1] == card  # after every edit


async def test_a_burst_stays_within_the_per_thread_limit_without_a_single_429(autojump_clock: trio.testing.MockClock) -> None:
    async with open_wire() as wire:
        started = trio.current_time()
        for n in range(8):
            await wire.outbox.post(wire.target, message(n))
        assert all(status == 201 for _, status in wire.statuses())
        assert trio.current_time() - started >= 1.0  # the 8th waited for the 7-per-second window
        assert [wire.cloud.activities[i].latest["text"] for i in wire.cloud.order] == [f"message {n}" for n in range(8)]


async def test_the_token_is_cached_refetched_on_401_and_refreshed_before_expiry(autojump_clock: trio.testing.MockClock) -> None:
    async with open_wire() as wire:
        await wire.outbox.post(wire.target, message(1))
        await wire.outbox.post(wire.target, message(2))
        assert wire.cloud.token_requests == 1
        wire.cloud._tokens.clear()  # the Connector no longer accepts it
        await wire.outbox.post(wire.target, message(3))
        assert wire.cloud.token_requests == 2 and len(wire.cloud.order) == 3
    cloud = in_memory_cloud()
    cloud.token_lifetime_s = 1
    async with in_memory_client(cloud.app()) as http:
        credentials = ConnectorCredentials(http, settings_for(cloud))
        first = await credentials.token()
        assert await credentials.token() == first
        await trio.sleep(0.6)  # past half of the 1 s lifetime: refreshed early
        assert await credentials.token() != first


async def test_refused_credentials_say_what_to_check_without_the_secret(autojump_clock: trio.testing.MockClock) -> None:
    cloud = in_memory_cloud()
    settings = settings_for(cloud, app_password="wrong-secret-value")
    async with in_memory_client(cloud.app()) as http:
        with pytest.raises(TeamsAuthError) as caught:
            await ConnectorCredentials(http, settings).token()
        assert "invalid_client" in str(caught.value) and "TEAMS_APP_PASSWORD" in str(caught.value)
        assert "wrong-secret-value" not in str(caught.value)


def test_sliding_windows_allow_seven_a_second_and_eight_in_two() -> None:
    windows = SlidingWindows(THREAD_LIMITS)
    for n in range(7):
        assert windows.ready_at(10.0 + n * 0.01) == 10.0 + n * 0.01
        windows.record(10.0 + n * 0.01)
    assert windows.ready_at(10.1) == pytest.approx(11.0)  # 7 in the last second
    windows.record(11.0)
    assert windows.ready_at(11.0) == pytest.approx(12.0)  # 8 in the last two seconds


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    assert retry_after_s("3") == 3.0
    assert retry_after_s("0.5") == 0.5
    assert retry_after_s(None) is None and retry_after_s("soon") is None
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=30)
    assert 25 <= (retry_after_s(format_datetime(later, usegmt=True)) or 0) <= 30
