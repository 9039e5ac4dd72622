"""On local sprites `--image` cannot be honoured (they run this host's programs), so it is refused
with advice instead of being shown on the card and silently ignored (issue #27)."""

from __future__ import annotations

from pathlib import Path

import trio

from opendispatch.adapters.local import LocalSprites
from opendispatch.adapters.memory.chat import MemoryChat
from opendispatch.adapters.memory.store import MemoryJobStore
from opendispatch.bootstrap import open_dispatcher
from opendispatch.config import Config
from opendispatch.domain.job import Conversation, User
from opendispatch.domain.messages import Inbound, JobAccepted, Notice

CHANNEL = Conversation("memory", "c1")


async def test_image_on_local_sprites_is_refused_with_advice_and_no_sprite_starts(tmp_path: Path) -> None:
    chat = MemoryChat()
    sprites = LocalSprites(workspace_root=tmp_path / "sprites")
    with trio.fail_after(30):
        async with open_dispatcher(
            Config.embedded(), chat=chat, sprites=sprites, store=MemoryJobStore(), bind="127.0.0.1:0"
        ) as od:
            await od.dispatcher.handle(Inbound(CHANNEL, User("u1", "alice"), '/od-run -a shell -i python:3.12 "echo hi"'))
            answer = await chat.wait_for(lambda m: isinstance(m, (Notice, JobAccepted)))
            assert await sprites.list_sprites() == []
    assert isinstance(answer, Notice), answer
    assert answer.text.startswith("--image needs sprites that run images (OPENDISPATCH_SPRITES=fly)")
