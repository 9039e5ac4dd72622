"""`FakeSprites`: an in-memory `SpritePort` that records what it was asked and lets tests drive exits."""

from __future__ import annotations

import itertools
import math

import attrs
import trio

from ...domain.errors import SpawnFailed
from ...ports.sprites import Sprite, SpriteRequest


@attrs.define
class _FakeSprite:
    sprite: Sprite
    stopped: trio.Event = attrs.Factory(trio.Event)
    exit_code: int | None = None


@attrs.define
class FakeSprites:
    """Sprites that never run anything: a test decides when (and how) each one exits.

    `spawned` and `destroyed` record every successful spawn and every destroy call in order;
    `wait_for_spawn()` hands each new spawn to the test exactly once, so a test can wait for
    "the dispatcher started a sprite" instead of sleeping. With `fail_spawn_with`, every
    spawn raises `SpawnFailed` with that message (and records nothing).
    """

    fail_spawn_with: str | None = None
    spawned: list[SpriteRequest] = attrs.field(factory=list, init=False)
    destroyed: list[str] = attrs.field(factory=list, init=False)
    live: set[str] = attrs.field(factory=set, init=False)
    _sprites: dict[str, _FakeSprite] = attrs.field(factory=dict, init=False)
    _counter: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    _new_spawns: tuple[
        trio.MemorySendChannel[tuple[Sprite, SpriteRequest]],
        trio.MemoryReceiveChannel[tuple[Sprite, SpriteRequest]],
    ] = attrs.field(
        factory=lambda: trio.open_memory_channel[tuple[Sprite, SpriteRequest]](math.inf), init=False
    )

    async def spawn(self, request: SpriteRequest) -> Sprite:
        if self.fail_spawn_with is not None:
            raise SpawnFailed(self.fail_spawn_with)
        sprite = Sprite(id=f"fake-{request.job_id}-{next(self._counter)}", job_id=request.job_id)
        self._sprites[sprite.id] = _FakeSprite(sprite)
        self.live.add(sprite.id)
        self.spawned.append(request)
        self._new_spawns[0].send_nowait((sprite, request))
        return sprite

    async def wait_for_spawn(self) -> tuple[Sprite, SpriteRequest]:
        """The next spawn no earlier call has taken, waiting for one if there is none yet."""
        return await self._new_spawns[1].receive()

    def exit(self, sprite_id: str, code: int | None) -> None:
        """Make the sprite stop with `code`, as if its sidecar had finished (KeyError if unknown)."""
        self._stop(self._sprites[sprite_id], code)

    async def wait_exited(self, sprite_id: str) -> int | None:
        """Unknown ids count as already gone (None), as a real backend's would."""
        fake = self._sprites.get(sprite_id)
        if fake is None:
            return None
        await fake.stopped.wait()
        return fake.exit_code

    async def destroy(self, sprite_id: str) -> None:
        self.destroyed.append(sprite_id)
        fake = self._sprites.get(sprite_id)
        if fake is not None:
            self._stop(fake, None)

    async def list_sprites(self) -> list[Sprite]:
        return [fake.sprite for fake in self._sprites.values() if fake.sprite.id in self.live]

    def _stop(self, fake: _FakeSprite, code: int | None) -> None:
        """The first stop wins: a destroy after an exit keeps the exit code, and vice versa."""
        if fake.stopped.is_set():
            return
        fake.exit_code = code
        fake.stopped.set()
        self.live.discard(fake.sprite.id)
