"""The real Discord adapter wired into the real dispatcher, against the loopback fake Discord."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import trio

from fakes.discord import APPLICATION_ID, BOT_TOKEN, GUILD_ID, DiscordUser, FakeDiscord, open_fake_discord
from harness import FakeSidecar, trio_wall_clock
from opendispatch.adapters.discord import INTERACTIONS_PATH, DiscordChat, DiscordSettings, open_discord_chat
from opendispatch.adapters.memory.sprites import FakeSprites
from opendispatch.adapters.memory.store import MemoryJobStore
from opendispatch.app.job_runner import RunnerSettings
from opendispatch.bootstrap import Running, open_dispatcher
from opendispatch.config import Config
from opendispatch.domain.ownership import Ownership

#: The Stop-button tests click as another user; they stop the job as an admin may
#: (owner-only stopping is tested once, in tests/app/test_job_lifecycle.py).
#: The users the tests click Stop as, by platform id (never by name: ownership.py).
STOPPERS_ARE_ADMINS = Ownership(admins=frozenset({"530000000000000002"}))
from opendispatch.ports.sprites import SpritePort

DISCORD_RUNNER = RunnerSettings(
    exit_settle_s=0.2, unsequenced_settle_s=0.05, edit_interval_s=0.05, heartbeat_s=3600.0, page_chars=1800
)


@attrs.define
class DiscordStack:
    fake: FakeDiscord
    chat: DiscordChat
    running: Running
    user: DiscordUser
    http: httpx.AsyncClient
    channel: str
    sprites: Any

    async def command(self, name: str, options: dict[str, Any] | None = None, **who: Any) -> dict[str, Any]:
        """Post a signed slash command; returns the interaction payload once the POST is accepted."""
        payload = self.fake.interaction_payload(
            name, [{"name": k, "type": 3, "value": v} for k, v in (options or {}).items()], channel_id=self.channel, **who
        )
        response = await self.user.post(payload)
        assert response.status_code == 202, response.text
        return payload

    async def original(self, payload: dict[str, Any], *, settled: bool = True) -> dict[str, Any]:
        """The interaction's response message (once answered, and filled if it was deferred)."""

        def answered(fake: FakeDiscord) -> dict[str, Any] | None:
            record = fake.interactions[payload["id"]]
            if record.original_id is None:
                return None
            message = fake.messages[record.original_id]
            if settled and message["flags"] & (1 << 7):
                return None
            return message

        with trio.fail_after(10):
            return await self.fake.wait_for(answered)  # type: ignore[no-any-return]

    async def sidecar(self) -> FakeSidecar:
        sprite, request = await self.sprites.wait_for_spawn()
        return FakeSidecar(self.http, request.env["JOB_ID"], request.env["JOB_TOKEN"], sprite, request)


def discord_settings(fake: FakeDiscord, **overrides: Any) -> DiscordSettings:
    base = DiscordSettings(
        bot_token=BOT_TOKEN,
        application_id=APPLICATION_ID,
        public_key=fake.public_key,
        guild_id=GUILD_ID,
        mode="http",
        api_base_url=fake.api_url,
        gateway_url=fake.gateway_url,
        restart_initial_s=0.05,
    )
    return attrs.evolve(base, **overrides)


@asynccontextmanager
async def open_discord_stack(
    *,
    sprites: SpritePort | None = None,
    runner: RunnerSettings = DISCORD_RUNNER,
    fake_options: dict[str, Any] | None = None,
    config: Config | None = None,
    **settings: Any,
) -> AsyncIterator[DiscordStack]:
    sprites = sprites if sprites is not None else FakeSprites()
    async with open_fake_discord(**(fake_options or {})) as fake:
        channel = fake.add_channel()
        async with open_discord_chat(discord_settings(fake, **settings)) as chat:
            async with open_dispatcher(
                config if config is not None else Config.embedded(ownership=STOPPERS_ARE_ADMINS),
                chat=chat,
                sprites=sprites,
                store=MemoryJobStore(),
                bind="127.0.0.1:0",
                runner_settings=runner,
                wall_clock=trio_wall_clock,
            ) as running:
                async with trio.open_nursery() as nursery, httpx.AsyncClient(
                    base_url=running.webhook_url, timeout=10
                ) as http:
                    await nursery.start(chat.listen, running.dispatcher.handle)
                    user = DiscordUser(fake, http, INTERACTIONS_PATH)
                    yield DiscordStack(fake, chat, running, user, http, channel, sprites)
                    nursery.cancel_scope.cancel()
