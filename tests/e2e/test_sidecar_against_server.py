"""The real sidecar against the real webhook server while the server is away for a while.

The job and its token exist before the server starts (as after a dispatcher restart); the
sidecar runs its agent while nothing listens, spools, and delivers everything in order once
the server is up: every line stored exactly once, and the final status last.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
from pathlib import Path

import trio

from opendispatch.adapters.local import sidecar_path
from opendispatch.adapters.memory.chat import MemoryChat
from opendispatch.adapters.memory.sprites import FakeSprites
from opendispatch.adapters.memory.store import MemoryJobStore
from opendispatch.bootstrap import TOKEN_SECRET_NAME, open_dispatcher
from opendispatch.config import Config
from opendispatch.domain.job import Conversation, Job, JobState, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.sidecar import sprite_environment
from opendispatch.domain.tokens import TokenIssuer

LINES = 300


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_sidecar_spools_while_the_server_is_down_then_delivers_all_in_order(tmp_path: Path) -> None:
    store = MemoryJobStore()
    key = await store.secret(TOKEN_SECRET_NAME, lambda: secrets.token_bytes(32))
    spec = JobSpec(task=f'for i in $(seq 1 {LINES}); do echo "line $i"; done; echo "it\'s $HOME"', agent=AgentKind.SHELL)
    job = Job.queued("j-5e1f0001", spec, Conversation("memory", "c1"), User("u1", "alice"), at=0.0)
    await store.add(job.starting(at=0.0))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    token = TokenIssuer(key).issue(job.id, expires_at=2**36)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "OPENDISPATCH_WORKSPACE": str(tmp_path),
        "OPENDISPATCH_BATCH_MS": "20",
        "OPENDISPATCH_RETRY_MAX_S": "0.2",
        **sprite_environment(job, token=token, callback_url=url, passthrough={}),
    }
    process = await trio.lowlevel.open_process(
        [sys.executable, str(sidecar_path())], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert process.stdout is not None
    seen = bytearray()
    with trio.fail_after(30):
        while b"it's" not in seen:  # the agent finished while nothing listened on the port
            seen.extend(await process.stdout.receive_some())
        async with open_dispatcher(
            Config.embedded(), chat=MemoryChat(), sprites=FakeSprites(), store=store, bind=f"127.0.0.1:{port}"
        ):
            assert await process.wait() == 0
    stored = await store.output(job.id)
    assert stored == [f"line {i}" for i in range(1, LINES + 1)] + [f"it's {tmp_path}"]
    final = await store.get(job.id)
    assert final.state is JobState.SUCCEEDED and final.exit_code == 0
