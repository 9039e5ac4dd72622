"""The whole path: a slash command over the socket, a real sidecar in a local sprite, the card."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendispatch.adapters.local import LocalSprites
from slack_stack import NATIVE_MODES, open_stack, shown_lines


@pytest.mark.parametrize("native", NATIVE_MODES)
async def test_a_shell_job_on_local_sprites_reports_into_the_slack_thread(tmp_path: Path, native: bool) -> None:
    sprites = LocalSprites(workspace_root=tmp_path / "sprites", log_dir=tmp_path / "logs", term_grace_s=1.0)
    async with open_stack(sprites=sprites, native=native) as stack:
        await stack.fake.slash_command("/od-run", "--agent shell -- 'for i in 1 2 3; do echo \"step $i <ok>\"; done'")
        started = await stack.started_message()
        (job,) = await stack.store.recent(limit=5)
        job_id = job.id
        card = await stack.settled(job_id, started)
        texts = "\n".join(card.block_texts())
        assert "✅ succeeded" in texts and "*Exit code*\n0" in texts, (texts, (tmp_path / "logs").glob("*"))
        assert [line for line in shown_lines(stack, started) if line.startswith("step")] == [
            "step 1 <ok>", "step 2 <ok>", "step 3 <ok>"
        ]
