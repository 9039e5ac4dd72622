"""Fixtures for the sidecar tests: a receiver on loopback and a way to run the real sidecar.

`receiver` is the loopback recorder today; the same tests can later point at the real webhook
server by providing a fixture with the same methods (`url`, `new_job`, `lines`, `statuses`,
`artifacts`, `wait_for_final_status`, `wait_until`).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
import attrs
import pytest
import trio

from .recorder import Recorder, serve_recorder

SIDECAR = Path(__file__).resolve().parents[2] / "sidecar" / "sprite-reporter"
# The sidecar must run on python3 >= 3.9: point this at an old interpreter to check that.
SIDECAR_PYTHON = os.environ.get("OPENDISPATCH_SIDECAR_PYTHON", sys.executable)
RUN_CEILING_S = 25.0

# Small batching and backoff so the suite stays fast; production defaults are in the sidecar.
FAST_KNOBS = {
    "OPENDISPATCH_BATCH_MS": "20",
    "OPENDISPATCH_RETRY_MAX_S": "0.2",
    "OPENDISPATCH_GIVE_UP_S": "20",
    "OPENDISPATCH_HTTP_TIMEOUT_S": "5",
}


@pytest.fixture
async def receiver(nursery: trio.Nursery) -> Recorder:
    recorder = Recorder()
    await nursery.start(serve_recorder, recorder, "127.0.0.1:0")
    return recorder


@pytest.fixture
def start_receiver(nursery: trio.Nursery) -> Callable[[Recorder, str], Awaitable[str]]:
    """Start a recorder later, on a bind chosen by the test (for "server down" tests)."""

    async def start(recorder: Recorder, bind: str) -> str:
        url: str = await nursery.start(serve_recorder, recorder, bind)
        return url

    return start


def _text(data: bytes | bytearray) -> str:
    return bytes(data).decode("utf-8", "replace")


@attrs.frozen
class SidecarResult:
    returncode: int
    stdout: str
    stderr: str


@attrs.define
class RunningSidecar:
    """A sidecar started in the background; its output is collected as it comes."""

    process: trio.Process
    stdout: bytearray = attrs.field(factory=bytearray)
    stderr: bytearray = attrs.field(factory=bytearray)
    changed: trio.Event = attrs.field(factory=trio.Event)
    closed: int = 0

    async def collect(self, stream: trio.abc.ReceiveStream, into: bytearray) -> None:
        async for chunk in stream:
            into.extend(chunk)
            self.changed.set()
            self.changed = trio.Event()
        self.closed += 1
        self.changed.set()

    async def wait_for_stdout(self, text: str) -> None:
        while text.encode() not in self.stdout:
            await self.changed.wait()

    async def wait(self) -> SidecarResult:
        returncode = await self.process.wait()
        while self.closed < 2:
            await self.changed.wait()
        return SidecarResult(returncode, _text(self.stdout), _text(self.stderr))


@attrs.define
class SidecarLauncher:
    tmp_path: Path
    nursery: trio.Nursery
    # Outside pytest's tmp folders (closed to other users): a sidecar run as root hands the
    # workspace to its agent user, which must be able to reach it, as in a sprite's /workspace.
    workspace: Path

    def env(self, url: str | None, job_id: str | None, token: str | None, **extra: str) -> dict[str, str]:
        """An environment built from scratch: PATH, HOME in tmp, the fast knobs, then `extra`."""
        workspace = self.workspace
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.tmp_path / "home"),
            "LANG": "C.UTF-8",
            "OPENDISPATCH_WORKSPACE": str(workspace),
            **FAST_KNOBS,
        }
        for name, value in (("OPEN_DISPATCH_URL", url), ("JOB_ID", job_id), ("JOB_TOKEN", token)):
            if value is not None:
                env[name] = value
        env.update(extra)
        return env

    async def run(self, env: dict[str, str]) -> SidecarResult:
        with trio.fail_after(RUN_CEILING_S):
            done = await trio.run_process(
                [SIDECAR_PYTHON, str(SIDECAR)],
                env=env,
                cwd=str(self.tmp_path),
                stdin=b"",
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        return SidecarResult(done.returncode, _text(done.stdout), _text(done.stderr))

    async def start(self, env: dict[str, str]) -> RunningSidecar:
        import subprocess

        process = await trio.lowlevel.open_process(
            [SIDECAR_PYTHON, str(SIDECAR)],
            env=env,
            cwd=str(self.tmp_path),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        running = RunningSidecar(process)
        assert process.stdout is not None and process.stderr is not None
        self.nursery.start_soon(running.collect, process.stdout, running.stdout)
        self.nursery.start_soon(running.collect, process.stderr, running.stderr)
        return running


@pytest.fixture
def open_workspace() -> Iterator[Path]:
    """A workspace folder every user can reach (its parents are open), removed afterwards."""
    parent = Path(tempfile.mkdtemp(prefix="opendispatch-sidecar-test-"))
    parent.chmod(0o755)
    try:
        yield parent / "workspace"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def sidecar(tmp_path: Path, nursery: trio.Nursery, open_workspace: Path) -> SidecarLauncher:
    return SidecarLauncher(tmp_path, nursery, open_workspace)
