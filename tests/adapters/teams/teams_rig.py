"""The real Teams adapter and the real dispatcher, wired to the loopback cloud of fakes/teams.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import trio

from fakes.teams import APP_ID, APP_PASSWORD, TENANT, Activity, Call, FakeTeamsCloud, card_text, serve_cloud
from harness import FAST, FakeSidecar, trio_wall_clock
from opendispatch.adapters.memory.sprites import FakeSprites
from opendispatch.adapters.memory.store import MemoryJobStore
from opendispatch.adapters.teams import TeamsChat, TeamsSettings, open_teams_chat
from opendispatch.app.job_runner import RunnerSettings
from opendispatch.bootstrap import Running, open_dispatcher
from opendispatch.config import Config
from opendispatch.domain.ownership import Ownership

#: The Stop-button tests click as another user; they stop the job as an admin may
#: (owner-only stopping is tested once, in tests/app/test_job_lifecycle.py).
#: The users the tests click Stop as, by platform id (never by name: ownership.py).
STOPPERS_ARE_ADMINS = Ownership(admins=frozenset({"0b0b0b0b-3d56-4244-b585-20c8a42ed2b8"}))  # aadObjectId
from opendispatch.ports.sprites import SpritePort

CEILING_S = 15
#: The rig's streams pace at this interval, and its cloud takes a little faster (Teams: 1 s).
STREAM_INTERVAL_S = 0.05


def settings_for(cloud: FakeTeamsCloud, **overrides: Any) -> TeamsSettings:
    base = TeamsSettings(
        app_id=APP_ID,
        app_password=APP_PASSWORD,
        tenant_id=TENANT,
        openid_metadata_url=cloud.openid_url,
        token_url_override=cloud.token_url,
        edit_interval_s=0.05,
        stream_interval_s=STREAM_INTERVAL_S,
        stream_retry_deadline_s=5.0,
        stream_max_s=60.0,
        retry_base_s=0.05,
        retry_max_s=0.2,
        retry_deadline_s=10.0,
        http_timeout_s=5.0,
    )
    return attrs.evolve(base, **overrides)


@attrs.define
class TeamsRig:
    cloud: FakeTeamsCloud
    chat: TeamsChat
    running: Running
    sprites: SpritePort
    store: MemoryJobStore
    http: httpx.AsyncClient

    async def deliver(self, activity: dict[str, Any], token: str | None = "default") -> httpx.Response:
        """POST an activity to our messaging endpoint as the Bot Connector would."""
        headers = {"Content-Type": "application/json"}
        if token == "default":
            token = self.cloud.sign()
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        import json

        with trio.fail_after(CEILING_S):
            return await self.http.post("/api/messages", content=json.dumps(activity), headers=headers)

    async def say(self, text: str, **options: Any) -> dict[str, Any]:
        activity = self.cloud.message_activity(text, **options)
        response = await self.deliver(activity)
        assert response.status_code == 202, response.text
        return activity

    async def wait_for_card(self, needle: str) -> Activity:
        """The first activity whose latest card mentions `needle`."""

        def find(cloud: FakeTeamsCloud) -> Activity | None:
            for activity_id in cloud.order:
                activity = cloud.activities[activity_id]
                if needle in card_text(activity.card):
                    return activity
            return None

        with trio.fail_after(CEILING_S):
            found: Activity = await self.cloud.wait_for(find)
            return found

    async def wait_for_text(self, needle: str) -> Activity:
        def find(cloud: FakeTeamsCloud) -> Activity | None:
            for activity_id in cloud.order:
                activity = cloud.activities[activity_id]
                if needle in (activity.latest.get("text") or ""):
                    return activity
            return None

        with trio.fail_after(CEILING_S):
            found: Activity = await self.cloud.wait_for(find)
            return found

    async def wait_for_stream_call(self, predicate: Callable[[Call], bool]) -> Call:
        """The first call of a stream that `predicate` accepts (waiting for it)."""

        def find(cloud: FakeTeamsCloud) -> Call | None:
            return next((call for call in cloud.stream_calls() if predicate(call)), None)

        with trio.fail_after(CEILING_S):
            found: Call = await self.cloud.wait_for(find)
            return found

    async def sidecar(self) -> FakeSidecar:
        assert isinstance(self.sprites, FakeSprites)
        with trio.fail_after(CEILING_S):
            sprite, request = await self.sprites.wait_for_spawn()
        return FakeSidecar(self.http, request.env["JOB_ID"], request.env["JOB_TOKEN"], sprite, request)


@asynccontextmanager
async def open_cloud() -> AsyncIterator[FakeTeamsCloud]:
    async with trio.open_nursery() as nursery:
        cloud: FakeTeamsCloud = await nursery.start(serve_cloud, FakeTeamsCloud())
        yield cloud
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_rig(
    *,
    sprites: SpritePort | None = None,
    runner_settings: RunnerSettings = FAST,
    config: Config | None = None,
    **settings: Any,
) -> AsyncIterator[TeamsRig]:
    sprites = sprites if sprites is not None else FakeSprites()
    store = MemoryJobStore()
    async with open_cloud() as cloud:
        cloud.stream_min_interval_s = STREAM_INTERVAL_S * 0.8
        async with open_teams_chat(settings_for(cloud, **settings)) as chat:
            async with open_dispatcher(
                config or Config.embedded(ownership=STOPPERS_ARE_ADMINS),
                chat=chat,
                sprites=sprites,
                store=store,
                bind="127.0.0.1:0",
                runner_settings=runner_settings,
                wall_clock=trio_wall_clock,
            ) as running:
                async with trio.open_nursery() as nursery:
                    await nursery.start(chat.listen, running.dispatcher.handle)
                    async with httpx.AsyncClient(base_url=running.webhook_url, timeout=10) as http:
                        yield TeamsRig(cloud, chat, running, sprites, store, http)
                    nursery.cancel_scope.cancel()
