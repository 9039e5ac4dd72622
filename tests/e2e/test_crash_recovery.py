"""`opendispatch serve` killed with SIGKILL in the middle of a job, then started again.

The sprite (its own session) keeps running and spools while nobody listens; the restarted
dispatcher finds it, adopts its job, still accepts its token, stores every line exactly once
and in order, and shows the final card.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import trio

from opendispatch.adapters.sqlite import open_sqlite_store
from opendispatch.domain.job import JobState

OPENDISPATCH = Path(sys.executable).with_name("opendispatch")
LINES = 40


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Serve:
    """One `opendispatch serve` process with its output collected."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.stdout = bytearray()
        self.stderr = bytearray()

    @classmethod
    async def start(cls, nursery: trio.Nursery, env: dict[str, str], cwd: Path) -> "Serve":
        process = await trio.lowlevel.open_process(
            [str(OPENDISPATCH), "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=cwd, env=env,
        )
        serve = cls(process)
        assert process.stdout is not None and process.stderr is not None
        nursery.start_soon(serve._collect, process.stdout, serve.stdout)
        nursery.start_soon(serve._collect, process.stderr, serve.stderr)
        return serve

    async def _collect(self, stream: trio.abc.ReceiveStream, into: bytearray) -> None:
        async for chunk in stream:
            into.extend(chunk)

    async def wait_for(self, pattern: str, *, timeout: float = 30) -> re.Match[bytes]:
        with trio.fail_after(timeout):
            while (match := re.search(pattern.encode(), self.stdout + self.stderr)) is None:
                await trio.sleep(0.02)  # output of another process; nothing to wait on but its pipe
        return match

    async def say(self, line: str) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(line.encode() + b"\n")


async def test_a_job_survives_sigkill_of_the_dispatcher(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "WEBHOOK_PORT": str(free_port()),
        "OPENDISPATCH_DB": str(tmp_path / "jobs.db"),
        "OPENDISPATCH_RETRY_MAX_S": "0.3",  # the sidecar retries quickly once the server is back
        "OPENDISPATCH_PASSTHROUGH_ENV": "OPENDISPATCH_RETRY_MAX_S",
    }
    task = f'for i in $(seq 1 {LINES}); do echo "line $i"; sleep 0.05; done'
    async with trio.open_nursery() as nursery:
        first = await Serve.start(nursery, env, tmp_path)
        await first.wait_for(r"webhooks at http")
        await first.say(f"/od-run -a shell '{task}'")
        job_id = (await first.wait_for(r"Job (j-[0-9a-f]{8}) queued")).group(1).decode()
        await first.wait_for(r"│ line 3\b")
        first.process.send_signal(signal.SIGKILL)
        await first.process.wait()

        second = await Serve.start(nursery, env, tmp_path)
        await second.wait_for(rf"✅ Job {job_id} succeeded · exit code 0", timeout=60)
        second.process.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            assert await second.process.wait() == 0
        nursery.cancel_scope.cancel()

    async with open_sqlite_store(tmp_path / "jobs.db") as store:
        assert await store.output(job_id) == [f"line {i}" for i in range(1, LINES + 1)]
        job = await store.get(job_id)
    assert job.state is JobState.SUCCEEDED
    assert "Traceback" not in (second.stdout + second.stderr).decode()
