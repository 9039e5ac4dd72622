"""Start-up reconciliation against the Fly emulator, and the stale-job reaper."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import httpx
import pytest
import trio
import trio.testing

from opendispatch.testing.fly_emulator import MachinesEmulator, serve_emulator
from opendispatch.adapters.fly.machines import FlySettings, FlySprites, RetryPolicy
from opendispatch.adapters.fly.wire import META_DISPATCHER, META_JOB
from opendispatch.adapters.memory.chat import MemoryChat
from opendispatch.adapters.memory.sprites import FakeSprites
from opendispatch.adapters.memory.store import MemoryJobStore
from opendispatch.app.ledger import JobLedger
from opendispatch.app.reconcile import LOST_AT_RESTART, StaleJobReaper
from opendispatch.bootstrap import open_dispatcher
from opendispatch.config import Config
from opendispatch.domain.job import Conversation, Job, JobState, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.messages import JobCard
from opendispatch.domain.render import render_text
from opendispatch.ports.sprites import SpriteRequest

TOKEN = "fly-reconcile-token"
APP = "od-reconcile-sprites"
ME, OTHER = "dispatcher-a", "dispatcher-b"
CHANNEL = Conversation("memory", "c1")
ALICE = User("u1", "alice")
SLEEPER = [sys.executable, "-c", "import time; time.sleep(1000)"]
CEILING_S = 15.0


def job(job_id: str, *, timeout_s: float = 600.0, at: float = 1000.0) -> Job:
    spec = JobSpec(task="make test", agent=AgentKind.SHELL, timeout_s=timeout_s)
    return Job.queued(job_id, spec, CHANNEL, ALICE, at=at)


@attrs.define
class Fly:
    emulator: MachinesEmulator
    sprites: FlySprites

    def orphan(self, job_id: str, instance: str = ME) -> str:
        """A machine a dead dispatcher left behind (no process: only its record)."""
        config = {"image": "registry.fly.io/x/agent:1", "auto_destroy": True,
                  "metadata": {META_DISPATCHER: instance, META_JOB: job_id}}
        return self.emulator.add_machine_record(APP, config).id


@pytest.fixture
async def fly(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Fly]:
    emulator = MachinesEmulator(token=TOKEN, apps={APP}, program=SLEEPER, workspace_root=tmp_path, kill_grace_s=0.2)
    url = await nursery.start(serve_emulator, emulator)
    settings = FlySettings(app=APP, image="registry.fly.io/x/agent:1", instance=ME, retry=RetryPolicy(base_delay_s=0.01))
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        yield Fly(emulator, FlySprites(http, settings))


async def test_restart_destroys_orphans_and_marks_jobs_without_a_machine_lost(fly: Fly) -> None:
    store, chat = MemoryJobStore(), MemoryChat()
    finished = job("j-00000001").starting(at=1000.0).running().succeeded(at=1100.0)
    await store.add(finished)
    running_here = job("j-00000003").starting(at=1000.0).running()
    await store.add(running_here)
    vanished = job("j-00000004").starting(at=1000.0).with_sprite("0123456789abcd").running()
    await store.add(vanished)
    await store.append_output(vanished.id, 0, ["cloning…", "running make test"])

    orphan_of_finished = fly.orphan(finished.id)
    orphan_of_unknown = fly.orphan("j-0000dead")
    other_dispatchers = fly.orphan("j-00000002", instance=OTHER)
    live = await fly.sprites.spawn(SpriteRequest(job_id=running_here.id, image=None, env={}))
    assert len(fly.emulator.live_machines()) == 4

    with trio.fail_after(CEILING_S):
        async with open_dispatcher(Config.embedded(), chat=chat, sprites=fly.sprites, store=store, bind="127.0.0.1:0"):
            pass

    remaining = {m.id for m in fly.emulator.live_machines()}
    assert remaining == {other_dispatchers, live.id}
    assert fly.emulator.machines[orphan_of_finished].state == "destroyed"
    assert fly.emulator.machines[orphan_of_unknown].state == "destroyed"
    lost = await store.get(vanished.id)
    assert lost.state is JobState.LOST
    assert (await store.get(running_here.id)).state is JobState.RUNNING
    assert (await store.get(finished.id)).state is JobState.SUCCEEDED
    cards = [s.message for s in chat.sent if isinstance(s.message, JobCard)]
    assert [card.job.id for card in cards] == [vanished.id]
    text = render_text(cards[0])
    assert LOST_AT_RESTART in text and "running make test" in text
    await fly.sprites.destroy(live.id)


# --- the reaper (ports only: fake sprites, memory store and chat) --------------------------


@attrs.define
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


async def reaper_with(store: MemoryJobStore, **overrides: object) -> tuple[StaleJobReaper, FakeSprites, MemoryChat, Clock]:
    sprites, chat, clock = FakeSprites(), MemoryChat(), Clock()
    reaper = StaleJobReaper(
        store=store, ledger=JobLedger(store), sprites=sprites, chat=chat, wall_clock=clock, **overrides  # type: ignore[arg-type]
    )
    return reaper, sprites, chat, clock


async def test_reaper_times_out_an_unsupervised_job_past_its_deadline() -> None:
    store = MemoryJobStore()
    reaper, sprites, chat, clock = await reaper_with(store, silence_s=None)
    sprite = await sprites.spawn(SpriteRequest(job_id="j-00000001", image=None, env={}))
    await store.add(job("j-00000001", timeout_s=60).starting(at=1000.0).with_sprite(sprite.id).running())
    clock.now = 1059.0
    assert await reaper.sweep() == []
    clock.now = 1060.0
    [ended] = await reaper.sweep()
    assert ended.state is JobState.TIMED_OUT
    assert sprites.destroyed == [sprite.id]
    assert [s.message.job.state for s in chat.sent if isinstance(s.message, JobCard)] == [JobState.TIMED_OUT]
    assert await reaper.sweep() == []  # once


async def test_reaper_leaves_the_deadline_of_supervised_jobs_to_their_runner() -> None:
    store = MemoryJobStore()
    reaper, _, chat, clock = await reaper_with(store, silence_s=None, supervised=lambda: {"j-00000001"})
    await store.add(job("j-00000001", timeout_s=60).starting(at=1000.0).running())
    clock.now = 5000.0
    assert await reaper.sweep() == []
    assert chat.sent == []


async def test_reaper_ends_a_job_whose_sidecar_went_silent_and_spares_a_chatty_one() -> None:
    store = MemoryJobStore()
    interrupted: list[str] = []

    async def interrupt(job_id: str) -> None:
        interrupted.append(job_id)

    reaper, _, _, clock = await reaper_with(
        store, silence_s=300.0, supervised=lambda: {"j-00000001", "j-00000002"}, interrupt=interrupt
    )
    await store.add(job("j-00000001").starting(at=1000.0).running())
    await store.add(job("j-00000002").starting(at=1000.0).running())
    assert await reaper.sweep() == []  # first sight starts the silence clock
    clock.now = 1200.0
    await store.append_output("j-00000002", 0, ["still working"])
    assert await reaper.sweep() == []
    clock.now = 1300.0
    [ended] = await reaper.sweep()
    assert ended.id == "j-00000001" and ended.state is JobState.LOST
    assert ended.failure is not None and "went silent" in ended.failure.reason
    assert interrupted == ["j-00000001"]
    assert (await store.get("j-00000002")).state is JobState.RUNNING


async def test_reaper_sweeps_every_period(autojump_clock: trio.testing.MockClock) -> None:
    store = MemoryJobStore()
    reaper, _, chat, _ = await reaper_with(store, period_s=60.0, silence_s=None)
    reaper.wall_clock = lambda: 1000.0 + trio.current_time()
    await store.add(job("j-00000001", timeout_s=100).starting(at=1000.0).running())
    async with trio.open_nursery() as nursery:
        await nursery.start(reaper.run)
        with trio.fail_after(1000):
            card = await chat.wait_for_card("j-00000001")
        nursery.cancel_scope.cancel()
    assert card.job.state is JobState.TIMED_OUT
    assert card.job.finished_at == 1120.0  # deadline 1100, noticed by the sweep at 120 s
