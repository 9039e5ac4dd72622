"""A file a job names as an artifact outlives the sprite: the real sidecar copies it out before
the workspace is deleted, the card says how to get it, and `/od-logs JOB --artifact NAME`
gives it back (redacted like every line), from the SQLite store."""

from __future__ import annotations

import shlex
from pathlib import Path

import attrs
import trio

from opendispatch.adapters.local import LocalSprites
from opendispatch.adapters.memory.chat import MemoryChat
from opendispatch.adapters.sqlite import open_sqlite_store
from opendispatch.bootstrap import open_dispatcher
from opendispatch.config import Config
from opendispatch.domain.job import Conversation, JobState, User
from opendispatch.domain.messages import Inbound, JobCard, LogExcerpt, Notice
from opendispatch.domain.render import render_text

SECRET = "ghp_ArtifactLeak0123456789abcdef"
CHANNEL = Conversation("memory", "c1")
ALICE = User("u1", "alice")
AGENT = (
    "printf '4 passed\\n' > test-report.txt\n"
    "echo \"token=$GH_TOKEN\" >> test-report.txt\n"
    "head -c 700000 /dev/zero > coverage.bin\n"
    "printf 'test report\\ttest-report.txt\\ncoverage.bin\\n' > \"$OPENDISPATCH_ARTIFACTS_FILE\"\n"
    "echo done"
)


async def test_a_small_artifact_file_is_kept_and_given_back_after_the_workspace_is_gone(tmp_path: Path) -> None:
    config = attrs.evolve(Config.embedded(), passthrough={"GH_TOKEN": SECRET}, secret_values=(SECRET,))
    chat = MemoryChat()
    sprites = LocalSprites(workspace_root=tmp_path / "sprites", term_grace_s=1.0)
    with trio.fail_after(60):
        async with open_sqlite_store(tmp_path / "jobs.db") as store:
            async with open_dispatcher(config, chat=chat, sprites=sprites, store=store, bind="127.0.0.1:0") as od:
                await od.dispatcher.handle(Inbound(CHANNEL, ALICE, f"/od-run -a shell -- {shlex.quote(AGENT)}"))
                card = await chat.wait_for(lambda m: isinstance(m, JobCard))
                assert isinstance(card, JobCard)
                job_id = card.job.id
                await od.dispatcher.handle(Inbound(CHANNEL, ALICE, f'/od-logs {job_id} --artifact "test report"'))
                excerpt = await chat.wait_for(lambda m: isinstance(m, LogExcerpt))
                await od.dispatcher.handle(Inbound(CHANNEL, ALICE, f"/od-logs {job_id} --artifact coverage.bin"))
                refused = await chat.wait_for(lambda m: isinstance(m, Notice) and "coverage.bin" in m.text)
            workspaces = [p for p in (tmp_path / "sprites").iterdir() if p.is_dir()]

    assert card.job.state is JobState.SUCCEEDED
    text = render_text(card)
    assert f"test report (19 B): /od-logs {job_id} --artifact 'test report'" in text, text
    assert "coverage.bin: not kept (683.6 KB is over the 512.0 KB limit)" in text, text
    assert workspaces == []  # the sprite's workspace is deleted: the copy is all there is
    assert isinstance(excerpt, LogExcerpt) and excerpt.file is not None
    assert excerpt.file.content == b"4 passed\ntoken=***\n"
    assert excerpt.file.filename == "test-report.txt"
    assert render_text(excerpt).splitlines() == [f"Artifact 'test report' of {job_id} · 19 B", "4 passed", "token=***"]
    assert isinstance(refused, Notice) and "over the 512.0 KB limit" in refused.text and "'test report'" in refused.text
    assert SECRET not in chat.transcript()
