"""A child in a process group of its own, and the one way to end that group.

Local sprites (`adapters/local/sprites.py`) and the Fly emulator's machines
(`opendispatch.testing.fly_emulator`) run programs that start programs of their own (the
sidecar, git, the agent CLI and whatever it runs). Each is started as the leader of a new
session, so of a new process group whose id is its pid, and is ended as a whole:

1. the first signals (SIGTERM, then SIGCONT so that a stopped group sees it) go to the group,
   or through the caller's own `send` (a sandboxed sprite signals its PID namespace instead);
2. the caller's `exited()` is awaited for at most `grace_s`;
3. SIGKILL goes to the whole group, always: even when the leader is gone (children that
   ignored SIGTERM are still in the group) and even when the wait was cancelled (a plain
   system call in a `finally`, no await).

Signalling a group that has no members left is not an error: the kernel does not reuse a pid
as a process id while a group of that id still has members, so an empty group finds nobody.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

import trio

#: What a process group is sent first when it is asked to end: SIGCONT after SIGTERM, so a
#: suspended (SIGSTOP) group wakes to see its SIGTERM.
TERMINATE = (signal.SIGTERM, signal.SIGCONT)


async def start_group_leader(
    argv: Sequence[str],
    *,
    cwd: str | Path,
    env: Mapping[str, str],
    output: IO[bytes] | None = None,
    pass_fds: Sequence[int] = (),
) -> trio.Process:
    """Start `argv` as the leader of a new session and process group (its group id is its pid).

    Its stdin is /dev/null; stdout and stderr go to `output` (the caller may close its copy once
    this returns) or to /dev/null. Raises OSError when the program cannot be started.
    """
    sink = output if output is not None else subprocess.DEVNULL
    return await trio.lowlevel.open_process(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=sink,
        stderr=sink,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,
        pass_fds=tuple(pass_fds),
    )


def signal_group(pgid: int, sig: int) -> None:
    """Send `sig` to every process of the group `pgid`; a group with no members left is fine."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def terminate_group(
    pgid: int,
    exited: Callable[[], Awaitable[object]],
    *,
    grace_s: float,
    first: Sequence[signal.Signals] = TERMINATE,
    send: Callable[[signal.Signals], None] | None = None,
) -> None:
    """End the process group `pgid`: `first` signals, up to `grace_s` for `exited()`, then SIGKILL.

    `send` delivers the first signals (default: to the group). The SIGKILL always goes to the
    group, also when this is cancelled. This does not wait for the group after the SIGKILL:
    the caller does (`await process.wait()`), since only it knows whether it may reap.
    """
    deliver = send if send is not None else (lambda sig: signal_group(pgid, sig))
    try:
        for sig in first:
            deliver(sig)
        with trio.move_on_after(grace_s):
            await exited()
    finally:
        signal_group(pgid, signal.SIGKILL)
