"""The whole path on a real sprite: Teams activity → local sprite running the real sidecar → cards."""

from __future__ import annotations

from pathlib import Path

from fakes.teams import card_text
from opendispatch.adapters.local import LocalSprites
from opendispatch.domain.job import JobState
from teams_rig import open_rig


async def test_a_shell_job_on_a_local_sprite_reports_back_to_teams(tmp_path: Path) -> None:
    sprites = LocalSprites(workspace_root=tmp_path / "sprites", log_dir=tmp_path / "logs", term_grace_s=1.0)
    async with open_rig(sprites=sprites) as rig:
        await rig.say('od-run --agent shell "echo hello from teams; echo second line; exit 3"')
        accepted = await rig.wait_for_card("queued")
        final = await rig.wait_for_card("failed")
        text = card_text(final.card)
        assert "Exit code\n3" in text
        assert "hello from teams\nsecond line" in text
        assert final.reply_to == accepted.id
        [job] = await rig.store.recent(limit=5)
        assert job.state is JobState.FAILED and job.exit_code == 3
        live = [a for a in rig.cloud.activities.values() if "Output of" in card_text(a.card)]
        assert live and "second line" in card_text(live[0].card)
    assert await sprites.list_sprites() == []
