"""`opendispatch serve` as a real child process, with its output collected, for end-to-end tests."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

OPENDISPATCH = Path(sys.executable).with_name("opendispatch")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServeProcess:
    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.stdout = bytearray()
        self.stderr = bytearray()
        self._grew = trio.Event()  # set (and replaced) whenever either pipe brings more

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace") + self.stderr.decode(errors="replace")

    async def _collect(self, stream: trio.abc.ReceiveStream, into: bytearray) -> None:
        async for chunk in stream:
            into.extend(chunk)
            self._grew.set()
            self._grew = trio.Event()

    async def wait_for(self, pattern: str, *, timeout: float = 30) -> re.Match[bytes]:
        """The first match in its output so far or to come (woken by each chunk read)."""
        with trio.fail_after(timeout):
            while True:
                grew = self._grew
                if (match := re.search(pattern.encode(), self.stdout + self.stderr)) is not None:
                    return match
                await grew.wait()

    async def count(self, needle: str, at_least: int, *, timeout: float = 30) -> None:
        with trio.fail_after(timeout):
            while True:
                grew = self._grew
                if self.stdout.count(needle.encode()) >= at_least:
                    return
                await grew.wait()

    async def say(self, line: str) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(line.encode() + b"\n")

    async def stop(self, signum: int, *, timeout: float = 20) -> int:
        self.process.send_signal(signum)
        with trio.fail_after(timeout):
            return await self.process.wait()


@asynccontextmanager
async def serve_process(env: dict[str, str], cwd: Path) -> AsyncIterator[ServeProcess]:
    """Start `opendispatch serve`; kill it on the way out if the test did not stop it."""
    process = await trio.lowlevel.open_process(
        [str(OPENDISPATCH), "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
    )
    serve = ServeProcess(process)
    assert process.stdout is not None and process.stderr is not None
    try:
        async with trio.open_nursery() as readers:
            readers.start_soon(serve._collect, process.stdout, serve.stdout)
            readers.start_soon(serve._collect, process.stderr, serve.stderr)
            yield serve
            readers.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
