"""A child in its own process group, ended as a whole (support/process_group.py)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
import trio

from opendispatch.support.process_group import signal_group, start_group_leader, terminate_group

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")

#: A leader that starts a child ignoring SIGTERM, writes both pids, then waits.
STUBBORN_CHILD = """
import os, signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ok', flush=True); time.sleep(600)"],
    stdout=subprocess.PIPE)
child.stdout.readline()
open("pids", "w").write(f"{os.getpid()} {child.pid}")
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


async def _pids(folder: Path) -> tuple[int, int]:
    with trio.fail_after(20):
        while not (folder / "pids").exists() or not (folder / "pids").read_text():
            await trio.sleep(0.02)
    leader, child = (folder / "pids").read_text().split()
    return int(leader), int(child)


async def _gone(pid: int) -> None:
    with trio.fail_after(10):
        while _alive(pid):
            await trio.sleep(0.02)


async def test_the_leader_heads_a_new_session_and_group(tmp_path: Path) -> None:
    log = (tmp_path / "out").open("wb")
    try:
        process = await start_group_leader(
            [sys.executable, "-c", "import os; print(os.getsid(0), os.getpgid(0), os.getpid(), os.environ['X'])"],
            cwd=tmp_path, env={"X": "given", "PATH": os.environ.get("PATH", "")}, output=log,
        )
    finally:
        log.close()
    assert await process.wait() == 0
    sid, pgid, pid, x = (tmp_path / "out").read_text().split()
    assert int(sid) == int(pgid) == int(pid) == process.pid and x == "given"
    assert os.getpgid(0) != process.pid


async def test_sigterm_is_enough_for_a_leader_that_obeys_it(tmp_path: Path) -> None:
    process = await start_group_leader([sys.executable, "-c", "import time; time.sleep(600)"], cwd=tmp_path, env={})
    with trio.fail_after(5):  # well before the grace period
        await terminate_group(process.pid, process.wait, grace_s=60)
    assert await process.wait() == -signal.SIGTERM


async def test_a_child_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    process = await start_group_leader([sys.executable, "-c", STUBBORN_CHILD], cwd=tmp_path, env={})
    leader, child = await _pids(tmp_path)
    assert leader == process.pid
    started = trio.current_time()
    await terminate_group(process.pid, process.wait, grace_s=0.3)
    assert await process.wait() == -signal.SIGTERM  # the leader obeyed; its child did not...
    assert trio.current_time() - started < 5
    await _gone(child)  # ...and was killed with the group


async def test_a_stopped_group_still_sees_its_sigterm(tmp_path: Path) -> None:
    process = await start_group_leader([sys.executable, "-c", "import time; time.sleep(600)"], cwd=tmp_path, env={})
    signal_group(process.pid, signal.SIGSTOP)
    with trio.fail_after(5):
        await terminate_group(process.pid, process.wait, grace_s=60)  # SIGCONT follows the SIGTERM
    assert await process.wait() == -signal.SIGTERM


async def test_the_caller_chooses_how_the_first_signals_are_sent(tmp_path: Path) -> None:
    process = await start_group_leader([sys.executable, "-c", "import time; time.sleep(600)"], cwd=tmp_path, env={})
    sent: list[signal.Signals] = []
    await terminate_group(process.pid, process.wait, grace_s=0.1, first=(signal.SIGUSR2,), send=sent.append)
    assert sent == [signal.SIGUSR2]  # given to `send`, not to the group
    assert await process.wait() == -signal.SIGKILL


async def test_the_group_is_killed_even_when_the_wait_is_cancelled(tmp_path: Path) -> None:
    process = await start_group_leader([sys.executable, "-c", "import time; time.sleep(600)"], cwd=tmp_path, env={})
    with trio.move_on_after(0.2):
        await terminate_group(process.pid, process.wait, grace_s=60, send=lambda sig: None)
    with trio.fail_after(5):
        assert await process.wait() == -signal.SIGKILL


async def test_signalling_a_group_with_nobody_left_is_fine(tmp_path: Path) -> None:
    process = await start_group_leader([sys.executable, "-c", "pass"], cwd=tmp_path, env={})
    assert await process.wait() == 0
    signal_group(process.pid, signal.SIGKILL)
    await terminate_group(process.pid, process.wait, grace_s=1)


async def test_a_program_that_cannot_start_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        await start_group_leader([str(tmp_path / "missing")], cwd=tmp_path, env={})
