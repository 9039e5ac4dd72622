"""Persistent sessions on Fly Machines (the emulator runs the real sidecar and Claude Code): suspend, wake, stop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import trio

from opendispatch.testing.fly_emulator import MachinesEmulator, serve_emulator
from opendispatch.adapters.fly.machines import FlySettings, FlySprites, RetryPolicy
from opendispatch.domain.session import SessionState
from modelserver.server import ScenarioServer
from opendispatch.domain.job import JobState
from real_agents import agent_environment, open_folder
from rig import Conversation, open_rig, search_path
from test_sessions_local import NOTES, notes_shown

TOKEN = "fly-secret-token-5e55"
APP = "od-session-sprites"
IMAGE = "registry.fly.io/od-session-sprites/agent:1"


@asynccontextmanager
async def fly_sprites(tmp_path: Path, agent_bin: Path | None = None) -> AsyncIterator[tuple[MachinesEmulator, FlySprites]]:
    emulator = MachinesEmulator(
        token=TOKEN, apps={APP}, workspace_root=tmp_path, kill_grace_s=1.0, search_path=search_path(agent_bin)
    )
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_emulator, emulator)
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=90) as http:
            settings = FlySettings(app=APP, image=IMAGE, retry=RetryPolicy(attempts=3, base_delay_s=0.01))
            yield emulator, FlySprites(http, settings)
        nursery.cancel_scope.cancel()


async def test_a_persistent_session_on_fly_suspends_when_idle_wakes_for_a_message_and_stops(agent_cli_bin: Path) -> None:
    with open_folder("od-fly-sessions-") as root, ScenarioServer(NOTES) as model:
        async with fly_sprites(root, agent_cli_bin) as (emulator, sprites):
            async with open_rig(sprites=sprites, idle_suspend_s=1.0, passthrough=agent_environment(model.url)) as rig:
                await rig.say("/od-start fly --persistent")
                session = await rig.session_in("fly", SessionState.IDLE)
                machine = emulator.machines[session.sprite_id or ""]
                assert machine.state == "started" and machine.metadata["od_job"] == session.id

                first = await rig.message("remember the plan")
                assert (await rig.card(first.id)).job.state is JobState.SUCCEEDED, await rig.output(first.id)

                await rig.session_in("fly", SessionState.SUSPENDED)
                assert machine.state == "suspended"  # through POST /suspend
                second = await rig.message("and carry it out")
                assert (await rig.card(second.id)).job.state is JobState.SUCCEEDED, await rig.output(second.id)
                assert machine.state == "started"  # woken through POST /start
                assert any("PELICAN" in text for text in model.main_requests()[-1].texts())  # the conversation
                assert notes_shown(model) == ["first", "second"]  # and the workspace, kept through the suspend
                assert ("POST", f"/v1/apps/{APP}/machines/{machine.id}/suspend") in emulator.requests
                assert ("POST", f"/v1/apps/{APP}/machines/{machine.id}/start") in emulator.requests

                await rig.say("/od-start other --persistent", where=Conversation("memory", "second"))
                await rig.session_in("other", SessionState.IDLE, SessionState.SUSPENDED)
                assert len(emulator.live_machines()) == 2
                await rig.say("/od-stop --all")
                assert "Session fly ended" in rig.notices()[-1] and "Session other ended" in rig.notices()[-1]
                assert emulator.live_machines() == []  # destroyed, never left stopped behind


async def test_the_max_idle_limit_destroys_the_fly_machine_and_tells_the_channel(tmp_path: Path) -> None:
    async with fly_sprites(tmp_path) as (emulator, sprites):
        async with open_rig(sprites=sprites, idle_suspend_s=0.5, max_idle_s=2.0) as rig:
            await rig.say("/od-start brief --persistent")
            await rig.session_in("brief", SessionState.SUSPENDED)
            assert [m.state for m in emulator.live_machines()] == ["suspended"]
            with trio.fail_after(20):
                await rig.chat.wait_for(lambda m: "Session brief ended (idle for 2s)" in getattr(m, "text", ""))
            assert emulator.live_machines() == []
