"""A running dispatcher with in-memory chat, store and sprites, plus a scriptable sidecar.

Everything goes through the real composition root and the real webhook server on
127.0.0.1; only the three ports are fakes. `FakeSidecar` speaks the wire contract over HTTP
with the token the dispatcher handed to the sprite, as the real sidecar does.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import httpx
import trio
import trio.testing

from opendispatch.adapters.memory.chat import MemoryChat
from opendispatch.ports.repo_credentials import RepoTokenMinter
from opendispatch.adapters.memory.sprites import FakeSprites
from opendispatch.adapters.memory.store import MemoryJobStore
from opendispatch.app.job_runner import RunnerSettings
from opendispatch.bootstrap import Running, open_dispatcher
from opendispatch.config import Config
from opendispatch.domain.job import Conversation, Job, User
from opendispatch.domain.messages import Inbound, JobAccepted, JobCard, Notice
from opendispatch.ports.sprites import Sprite, SpriteRequest

ALICE = User("u1", "alice")
BOB = User("u2", "bob")
CHANNEL = Conversation("memory", "c1")
WALL_EPOCH = 1_800_000_000.0

SIDECAR = Path(__file__).resolve().parents[1] / "sidecar" / "sprite-reporter"
# The sidecar's sources: tests of its parts import `sprite_reporter.<module>` from here; tests
# that run it as a program run the built file above (what a sprite runs).
SIDECAR_SOURCES = Path(__file__).resolve().parents[1] / "sidecar" / "src"
if str(SIDECAR_SOURCES) not in sys.path:
    sys.path.insert(0, str(SIDECAR_SOURCES))


def sidecar_module() -> SimpleNamespace:
    """Every public name of the sidecar's modules in one namespace (prefer importing the module)."""
    import sprite_reporter

    names: dict[str, Any] = {}
    for info in sorted(pkgutil.iter_modules(sprite_reporter.__path__), key=lambda found: found.name):
        if info.name == "__main__":
            continue
        module = importlib.import_module(f"sprite_reporter.{info.name}")
        names.update({name: value for name, value in vars(module).items() if not name.startswith("_")})
    return SimpleNamespace(**names)


FAST = RunnerSettings(exit_settle_s=0.2, unsequenced_settle_s=0.05, edit_interval_s=0.0, heartbeat_s=3600.0)


def trio_wall_clock() -> float:
    """Wall time that follows trio's clock, so MockClock tests move job timestamps too."""
    return WALL_EPOCH + trio.current_time()


@attrs.define
class FakeSidecar:
    http: httpx.AsyncClient
    job_id: str
    token: str
    sprite: Sprite
    request: SpriteRequest

    def _headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    async def post(self, path: str, body: Any, *, token: str | None = None) -> httpx.Response:
        return await self.http.post(
            path, content=json.dumps(body), headers={**self._headers(token), "Content-Type": "application/json"}
        )

    async def logs(self, lines: list[str], seq: int | None = None) -> httpx.Response:
        body: dict[str, Any] = {"jobId": self.job_id, "lines": lines}
        if seq is not None:
            body["seq"] = seq
        return await self.post("/webhooks/logs", body)

    async def status(self, status: str, exit_code: int | None = None, error: str = "", **extra: Any) -> httpx.Response:
        return await self.post(
            "/webhooks/status", {"jobId": self.job_id, "status": status, "exitCode": exit_code, "error": error, **extra}
        )


@attrs.define
class Harness:
    running: Running
    chat: MemoryChat
    sprites: FakeSprites
    store: MemoryJobStore
    http: httpx.AsyncClient

    async def say(self, text: str, user: User = ALICE, conversation: Conversation = CHANNEL) -> None:
        await self.running.dispatcher.handle(Inbound(conversation, user, text))

    async def run(self, text: str, user: User = ALICE, conversation: Conversation = CHANNEL) -> Job:
        """Send a command that starts a job; return the job from its first reply."""
        before = len(self.chat.sent)
        await self.say(text, user, conversation)
        for sent in self.chat.sent[before:]:
            if isinstance(sent.message, JobAccepted):
                return sent.message.job
            if isinstance(sent.message, Notice):
                raise AssertionError(f"expected a job, got: {sent.message.text}")
        raise AssertionError("no reply")

    async def sidecar(self) -> FakeSidecar:
        sprite, request = await self.sprites.wait_for_spawn()
        await trio.testing.wait_all_tasks_blocked()  # let the runner record the sprite on the job
        return FakeSidecar(self.http, request.env["JOB_ID"], request.env["JOB_TOKEN"], sprite, request)

    async def card(self, job_id: str) -> JobCard:
        with trio.fail_after(10):
            return await self.chat.wait_for_card(job_id)

    def notices(self) -> list[str]:
        return [s.message.text for s in self.chat.sent if isinstance(s.message, Notice)]


@asynccontextmanager
async def open_harness(
    *,
    sprites: FakeSprites | None = None,
    store: MemoryJobStore | None = None,
    config: Config | None = None,
    settings: RunnerSettings = FAST,
    chat: MemoryChat | None = None,
    repo_token_minter: RepoTokenMinter | None = None,
) -> AsyncIterator[Harness]:
    chat, store = chat or MemoryChat(), store or MemoryJobStore()
    sprites = sprites or FakeSprites()
    config = config or Config.embedded(agent_type=Config().agent_type)
    async with open_dispatcher(
        config,
        chat=chat,
        sprites=sprites,
        store=store,
        bind="127.0.0.1:0",
        runner_settings=settings,
        wall_clock=trio_wall_clock,
        repo_token_minter=repo_token_minter,
    ) as running:
        async with httpx.AsyncClient(base_url=running.webhook_url, timeout=10) as http:
            yield Harness(running, chat, sprites, store, http)
