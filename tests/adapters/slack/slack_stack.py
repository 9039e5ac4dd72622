"""The real dispatcher wired to the real Slack adapter, talking to the loopback fake Slack."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import pytest
import trio

from fakes.slack import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeMessage, FakeSlack, RateLimit, open_fake_slack
from harness import FakeSidecar
from opendispatch.adapters.memory.sprites import FakeSprites
from opendispatch.adapters.memory.store import MemoryJobStore
from opendispatch.adapters.slack import Pacing, SlackChat, SlackMode, SlackSettings, open_slack_chat
from opendispatch.app.job_runner import RunnerSettings
from opendispatch.bootstrap import Running, open_dispatcher
from opendispatch.config import Config
from opendispatch.domain.ownership import Ownership

#: The Stop-button tests click as another user; they stop the job as an admin may
#: (owner-only stopping is tested once, in tests/app/test_job_lifecycle.py).
#: The users the tests click Stop as, by platform id (never by name: ownership.py).
STOPPERS_ARE_ADMINS = Ownership(admins=frozenset({"U0BOB", "U0CAROL"}))
from opendispatch.domain.messages import Inbound
from opendispatch.ports.sprites import SpritePort

CEILING_S = 15
CHANNEL_INTERVAL_S = 0.05

# Our pacing, scaled down 20x so tests are quick; the fake enforces a slightly looser limit,
# so any 429 that was not forced means our pacing is wrong.
TEST_PACING = Pacing(
    channel_interval_s=CHANNEL_INTERVAL_S,
    per_minute={"chat.update": 1000.0 * 60, "chat.postEphemeral": 1000.0 * 60},
    burst=5,
    transient_backoff_s=0.05,
)
FAKE_LIMITS = {
    "chat.postMessage": RateLimit(min_gap_s=CHANNEL_INTERVAL_S * 0.6, per_channel=True),
    "chat.update": RateLimit(min_gap_s=CHANNEL_INTERVAL_S * 0.6, per_channel=True),
}
RUNNER = RunnerSettings(
    exit_settle_s=0.2, unsequenced_settle_s=0.05, edit_interval_s=0.05, heartbeat_s=3600.0, cleanup_timeout_s=10.0
)


def settings_for(fake: FakeSlack, mode: SlackMode, **overrides: Any) -> SlackSettings:
    values: dict[str, Any] = dict(
        bot_token=BOT_TOKEN,
        mode=mode,
        app_token=APP_TOKEN if mode is SlackMode.SOCKET else None,
        signing_secret=SIGNING_SECRET if mode is SlackMode.HTTP else None,
        api_url=fake.base_url + "/api/",
        pacing=TEST_PACING,
        ping_interval_s=0.5,
        ping_timeout_s=2.0,
        reconnect_backoff_s=0.05,
        reconnect_backoff_max_s=0.2,
    )
    values.update(overrides)
    return SlackSettings(**values)


@attrs.define
class Stack:
    fake: FakeSlack
    chat: SlackChat
    running: Running
    store: MemoryJobStore
    sprites: Any
    http: httpx.AsyncClient
    inbounds: list[Inbound] = attrs.Factory(list)  # every command the adapter handed over
    hold: trio.Event | None = None  # when set by a test, commands wait for it: a slow dispatcher

    @property
    def events_url(self) -> str:
        return self.running.webhook_url + "/slack/events"

    async def sidecar(self) -> FakeSidecar:
        sprite, request = await self.sprites.wait_for_spawn()
        return FakeSidecar(self.http, request.env["JOB_ID"], request.env["JOB_TOKEN"], sprite, request)

    async def wait_for(self, predicate: Callable[[], Any]) -> Any:
        """Wait (bounded) until `predicate()` is truthy; return its value."""
        with trio.fail_after(CEILING_S):
            while True:
                value = predicate()
                if value:
                    return value
                await self.fake.wait_change()

    async def started_message(self) -> FakeMessage:
        return await self.wait_for(lambda: next(iter(self.fake.channel_messages()), None))

    def card(self, started: FakeMessage) -> FakeMessage | None:
        return next((m for m in self.fake.thread(started) if is_card(m)), None)

    def live_messages(self, started: FakeMessage) -> list[FakeMessage]:
        return [m for m in self.fake.thread(started) if is_live(m)]

    async def settled(self, job_id: str, started: FakeMessage) -> FakeMessage:
        """The job ended, its card is out and the channel message shows the outcome."""
        with trio.fail_after(CEILING_S):
            await self.running.dispatcher.wait_finished(job_id)
        card = await self.wait_for(lambda: self.card(started))
        await self.wait_for(lambda: "od_stop" not in started.action_ids() and self.chat.outbox.pending(started.channel) == 0)
        return card


def is_card(message: FakeMessage) -> bool:
    return bool(message.blocks) and message.blocks[0].get("type") == "header"


def is_live(message: FakeMessage) -> bool:
    return bool(message.blocks) and message.blocks[0].get("type") == "context" and "Output of" in message.block_texts()[0]


def shown_lines(stack: Stack, started: FakeMessage) -> list[str]:
    """Every log line in the final versions of the live messages (and the streamed message,
    with native surfaces on), in thread order."""
    lines: list[str] = []
    for message in stack.fake.thread(started):
        if message.stream is not None:
            lines.extend(message.stream.code_lines())
        elif is_live(message):
            lines.extend(message.code_lines())
    return lines


#: The native surfaces (agent sessions, streamed messages) off, then on: the same tests run both.
NATIVE_MODES = [pytest.param(False, id="classic"), pytest.param(True, id="native")]


@asynccontextmanager
async def open_stack(
    mode: SlackMode = SlackMode.SOCKET,
    *,
    sprites: SpritePort | None = None,
    runner: RunnerSettings = RUNNER,
    fake_limits: dict[str, RateLimit] | None = None,
    config: Config | None = None,
    native: bool = False,
    **setting_overrides: Any,
) -> AsyncIterator[Stack]:
    """`native`: Slack's agent sessions and streamed messages on (SLACK_AGENT_SESSIONS=1,
    SLACK_STREAMING=1); off, the adapter behaves as before they existed."""
    if native:
        setting_overrides = {"agent_sessions": True, "streaming": True, **setting_overrides}
    async with open_fake_slack(rate_limits=dict(FAKE_LIMITS if fake_limits is None else fake_limits)) as fake:
        store = MemoryJobStore()
        sprites = sprites if sprites is not None else FakeSprites()
        settings = settings_for(fake, mode, **setting_overrides)
        async with open_slack_chat(settings, fetch_log=store.output, wall_clock=time.time) as chat:
            async with open_dispatcher(
                config or Config.embedded(secret_values=(BOT_TOKEN, APP_TOKEN, SIGNING_SECRET), ownership=STOPPERS_ARE_ADMINS),
                chat=chat,
                sprites=sprites,
                store=store,
                bind="127.0.0.1:0",
                runner_settings=runner,
                wall_clock=time.time,
            ) as running:
                async with trio.open_nursery() as nursery, httpx.AsyncClient(base_url=running.webhook_url, timeout=10) as http:
                    stack = Stack(fake, chat, running, store, sprites, http)

                    async def handle(inbound: Inbound) -> None:
                        stack.inbounds.append(inbound)
                        if stack.hold is not None:
                            await stack.hold.wait()
                        await running.dispatcher.handle(inbound)

                    with trio.fail_after(CEILING_S):
                        await nursery.start(chat.listen, handle)
                    yield stack
                    nursery.cancel_scope.cancel()
