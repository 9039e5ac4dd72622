"""Cancelling the service destroys real sprite processes, not just their records.

The sprites are `LocalSprites`' default: sandboxed where bubblewrap can sandbox, else plain
subprocesses. Either way every process of each sprite (found by its environment, which names
the sprite's workspace) must be gone afterwards.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import trio

from opendispatch.adapters.local import LocalSprites
from opendispatch.adapters.memory.chat import MemoryChat
from opendispatch.adapters.memory.store import MemoryJobStore
from opendispatch.bootstrap import open_dispatcher
from opendispatch.config import Config
from opendispatch.domain.job import Conversation, JobState, User
from opendispatch.domain.messages import Inbound, JobAccepted

# A sprite that ignores SIGTERM-free shutdown hopes: it records its pid and sleeps.
SLEEPER = "import os, time; open(os.environ['OPENDISPATCH_WORKSPACE'] + '/pid', 'w').write(str(os.getpid())); time.sleep(600)"


def sprite_processes(workspace: Path) -> list[int]:
    """Host pids of the processes whose environment names `workspace` (every process of a sprite)."""
    marker = f"OPENDISPATCH_WORKSPACE={workspace}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return [pid for pid in found if not process_is_gone(pid)]


def process_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[-1].startswith("Z")


async def wait_for_file(path: Path) -> str:
    with trio.fail_after(10):
        while not path.exists() or not path.read_text():
            await trio.sleep(0.01)  # the child writes it; there is no event to wait on
    return path.read_text()


async def test_cancelling_the_nursery_while_three_jobs_run_kills_all_three_sprites(tmp_path: Path) -> None:
    sprites = LocalSprites(program=[sys.executable, "-c", SLEEPER], workspace_root=tmp_path, term_grace_s=1.0)
    chat, store = MemoryChat(), MemoryJobStore()
    pids: list[int] = []
    with trio.fail_after(30):
        async with open_dispatcher(Config.embedded(), chat=chat, sprites=sprites, store=store, bind="127.0.0.1:0") as od:
            for n in range(3):
                await od.dispatcher.handle(
                    Inbound(Conversation("memory", "c1"), User("u1", "alice"), f'/od-run -a shell "job {n}"')
                )
            jobs = [s.message.job for s in chat.sent if isinstance(s.message, JobAccepted)]
            assert len(jobs) == 3
            for job in jobs:

                async def has_sprite(job_id: str = job.id) -> bool:
                    return (await store.get(job_id)).sprite_id is not None

                with trio.fail_after(10):
                    await od.until(job.id, has_sprite)
                sprite_id = (await store.get(job.id)).sprite_id
                assert sprite_id is not None
                workspace = sprites.workspace_of(sprite_id)
                await wait_for_file(workspace / "pid")
                found = sprite_processes(workspace)
                assert found  # the sleeper, and (sandboxed) bwrap, its init and its launcher
                pids.extend(found)
            assert not any(process_is_gone(pid) for pid in pids)
        # leaving the block cancelled the nursery: every job task destroyed its sprite
    assert all(process_is_gone(pid) for pid in pids)
    assert await sprites.list_sprites() == []
    assert list(tmp_path.iterdir()) == []  # workspaces removed
    for job in jobs:
        assert (await store.get(job.id)).state is JobState.CANCELLED
