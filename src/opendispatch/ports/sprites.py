"""Where jobs run: a Fly Machine in production, a local subprocess on the embedded default."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import attrs


@attrs.frozen
class SpriteRequest:
    job_id: str
    image: str | None
    env: Mapping[str, str] = attrs.field(repr=lambda _: "{...}")


@attrs.frozen
class Sprite:
    id: str
    job_id: str


class SpritePort(Protocol):
    async def spawn(self, request: SpriteRequest) -> Sprite:
        """Start a sprite running the sidecar with `request.env`; raise `SpawnFailed` with advice."""
        ...

    async def wait_exited(self, sprite_id: str) -> int | None:
        """Return once the sprite has stopped, with its exit code when the backend knows it."""
        ...

    async def destroy(self, sprite_id: str) -> None:
        """Stop and remove the sprite. Idempotent: an unknown or already gone sprite is fine."""
        ...

    async def list_sprites(self) -> list[Sprite]:
        """Sprites this dispatcher owns and that still exist (for reconciliation)."""
        ...


@runtime_checkable
class SuspendableSprites(Protocol):
    """A backend that can pause an idle sprite and resume it (persistent sessions).

    Suspend keeps memory and disk, so the sidecar, the workspace and the agent's conversation
    are all there after `wake`. Backends without it keep idle session sprites running.
    """

    async def suspend(self, sprite_id: str) -> None:
        """Pause the sprite; returns once it is paused."""
        ...

    async def wake(self, sprite_id: str) -> None:
        """Resume a paused sprite (a running one is fine); returns once it runs."""
        ...
