"""A dispatcher restart in the middle of a persistent session: stored, routed, the sprite reconnects."""

from __future__ import annotations

from pathlib import Path

from opendispatch.adapters.sqlite import open_sqlite_store
from opendispatch.domain.job import JobState
from opendispatch.domain.session import SessionState
from rig import free_port, local_sprites, open_rig


async def test_a_restart_keeps_a_persistent_session_usable(tmp_path: Path) -> None:
    port = free_port()  # the sprite calls back on the same address after the restart
    root = tmp_path / "sprites"
    async with open_sqlite_store(tmp_path / "jobs.db") as store:
        async with open_rig(sprites=local_sprites(root), store=store, allow_shell=True, port=port) as rig:
            await rig.say("/od-start keep --agent shell --persistent")
            before = await rig.session_in("keep", SessionState.IDLE)
            first = await rig.message("echo from-before > f.txt && echo done")
            assert await rig.output(first.id) == ["done"]
            await rig.session_in("keep", SessionState.IDLE)

        sprites = local_sprites(root)  # a new process would find the sprite in the registry
        assert [s.id for s in await sprites.list_sprites()] == [before.sprite_id]
        async with open_rig(sprites=sprites, store=store, allow_shell=True, port=port) as rig:
            await rig.say("/od-list")
            listing = rig.notices()[-1]
            assert "keep" in listing and "1 message" in listing and "persistent" in listing
            second = await rig.message("cat f.txt")  # plain chat is still routed to the session
            assert await rig.output(second.id) == ["from-before"]
            card = await rig.card(second.id)
            assert card.job.state is JobState.SUCCEEDED and card.job.sprite_id == before.sprite_id
            await rig.say("/od-stop keep")
        assert await sprites.list_sprites() == []
