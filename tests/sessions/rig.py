"""A dispatcher with local sprites running the real sidecar (and, given a model, the real agent CLIs)."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import trio

from opendispatch.adapters.local import LocalSprites
from opendispatch.adapters.memory.chat import MemoryChat
from opendispatch.app.job_runner import RunnerSettings
from opendispatch.app.session_commands import SessionCommands
from opendispatch.app.sessions import SessionSettings
from opendispatch.bootstrap import Running, open_dispatcher
from opendispatch.config import Config
from opendispatch.domain.job import Conversation, Job, User
from opendispatch.domain.job_spec import AgentKind
from opendispatch.domain.messages import Inbound, JobAccepted, JobCard, Notice
from opendispatch.domain.session import Session, SessionState
from opendispatch.ports.job_store import JobStore
from opendispatch.ports.sprites import SpritePort

ALICE = User("u1", "alice")
BOB = User("u2", "bob")
ROOM = Conversation("memory", "room")
CEILING_S = 30

FAST = RunnerSettings(exit_settle_s=0.5, unsequenced_settle_s=0.05, edit_interval_s=0.0, heartbeat_s=3600.0)


def search_path(agent_bin: Path | None = None) -> str:
    """The real agent CLIs first (when given), then the usual PATH (python3, git, sh)."""
    return os.pathsep.join([*([str(agent_bin)] if agent_bin else []), *os.get_exec_path()])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def local_sprites(root: Path, agent_bin: Path | None = None) -> LocalSprites:
    return LocalSprites(workspace_root=root, search_path=search_path(agent_bin), term_grace_s=2.0)


@attrs.define
class Rig:
    running: Running
    chat: MemoryChat

    @property
    def sessions(self) -> SessionCommands:
        assert self.running.dispatcher.sessions is not None
        return self.running.dispatcher.sessions

    async def say(self, text: str, user: User = ALICE, where: Conversation = ROOM) -> None:
        await self.running.dispatcher.handle(Inbound(where, user, text))

    async def message(self, text: str, user: User = ALICE, where: Conversation = ROOM) -> Job:
        """Send a plain message (or /od-send); the job it became, from its accepted reply."""
        before = len(self.chat.sent)
        await self.say(text, user, where)
        for sent in self.chat.sent[before:]:
            if isinstance(sent.message, JobAccepted):
                return sent.message.job
        raise AssertionError(f"no job for {text!r}: {self.notices()[-3:]}")

    async def card(self, job_id: str) -> JobCard:
        with trio.fail_after(CEILING_S):
            return await self.chat.wait_for_card(job_id)

    async def output(self, job_id: str) -> list[str]:
        await self.card(job_id)
        return await self.running.store.output(job_id)

    async def session_in(self, name: str, *states: SessionState) -> Session:
        with trio.fail_after(CEILING_S):
            await self.sessions.wait_until(lambda: (s := self.sessions.by_name(name)) is not None and s.state in states)
        found = self.sessions.by_name(name)
        assert found is not None
        return found

    def notices(self) -> list[str]:
        return [s.message.text for s in self.chat.sent if isinstance(s.message, Notice)]


@asynccontextmanager
async def open_rig(
    *,
    sprites: SpritePort,
    store: JobStore | None = None,
    allow_shell: bool = False,
    idle_suspend_s: float = 3600.0,
    max_idle_s: float = 7200.0,
    port: int = 0,
    passthrough: dict[str, str] | None = None,
) -> AsyncIterator[Rig]:
    chat = MemoryChat()
    config = attrs.evolve(Config.embedded(agent_type=AgentKind.CLAUDE), passthrough=passthrough or {})
    settings = SessionSettings(
        idle_suspend_s=idle_suspend_s, max_idle_s=max_idle_s, allow_shell=allow_shell, poll_wait_s=5.0
    )
    from opendispatch.adapters.memory.store import MemoryJobStore

    async with open_dispatcher(
        config,
        chat=chat,
        sprites=sprites,
        store=store if store is not None else MemoryJobStore(),
        bind=f"127.0.0.1:{port}",
        runner_settings=FAST,
        session_settings=settings,
    ) as running:
        yield Rig(running, chat)
