"""`opendispatch console` on a real pseudo-terminal, as a user meets it: a line editor with
history and completion, `quit` and a closed window while a job runs, and the banner.

The tests play the terminal: they answer the editor's cursor-position question as a terminal
emulator does, type keys, and read until an expected text appears (each with a deadline).
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent / "opendispatch"
START_S = 60  # the first prompt: the console starts its webhook server and store first
STEP_S = 20


class Terminal:
    """A program on a pty, seen from the terminal's side."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: becomes the program
            os.chdir(cwd)
            os.execve(argv[0], argv, env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
        self.raw = b""
        self.pos = 0  # what `expect` has consumed
        self.answered = 0  # cursor-position questions answered
        self.open = True
        self.exit_code: int | None = None

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", "replace")

    def _read(self, timeout_s: float) -> bool:
        """Read what is there within `timeout_s`; False once the terminal has closed."""
        ready, _, _ = select.select([self.fd], [], [], timeout_s)
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # the program ended and the terminal closed
            chunk = b""
        if not chunk:
            self.open = False
            return False
        self.raw += chunk
        while self.answered < self.raw.count(b"\x1b[6n"):  # where is the cursor? row 1 is fine
            os.write(self.fd, b"\x1b[1;1R")
            self.answered += 1
        return True

    def expect(self, text: str, timeout_s: float = STEP_S) -> None:
        """Read until `text` appears after what was expected before; fail at the deadline."""
        wanted = text.encode()
        deadline = time.monotonic() + timeout_s
        while wanted not in self.raw[self.pos :]:
            left = deadline - time.monotonic()
            assert left > 0 and self.open, f"never saw {text!r} in:\n{self.text[-3000:]}"
            self._read(min(left, 0.5))
        self.pos = self.raw.index(wanted, self.pos) + len(wanted)

    def expect_re(self, pattern: str, timeout_s: float = STEP_S) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while (found := re.compile(pattern).search(self.text, self.pos)) is None:
            left = deadline - time.monotonic()
            assert left > 0 and self.open, f"never saw /{pattern}/ in:\n{self.text[-3000:]}"
            self._read(min(left, 0.5))
        self.pos = len(self.text[: found.end()].encode())
        return found

    def type(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def hang_up(self) -> None:
        """Close the terminal, as closing its window does: the program gets SIGHUP."""
        os.close(self.fd)
        self.open = False

    def wait_exit(self, timeout_s: float) -> int:
        """The exit code, once the program has ended (its pidfd becomes readable)."""
        pidfd = os.pidfd_open(self.pid)
        try:
            deadline = time.monotonic() + timeout_s
            while not select.select([pidfd], [], [], 0)[0]:
                left = deadline - time.monotonic()
                assert left > 0, f"still running after {timeout_s}s:\n{self.text[-3000:]}"
                if self.open:
                    self._read(min(left, 0.2))  # keep reading, or its output could block it
                else:
                    select.select([pidfd], [], [], left)
        finally:
            os.close(pidfd)
        _, status = os.waitpid(self.pid, 0)
        self.exit_code = os.waitstatus_to_exitcode(status)
        return self.exit_code

    def close(self) -> None:
        if self.exit_code is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            self.exit_code = -9
        if self.open:
            os.close(self.fd)
            self.open = False


@contextmanager
def console(tmp_path: Path) -> Iterator[Terminal]:
    """`opendispatch console` on a terminal, its history under `tmp_path`."""
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("NO_COLOR", None)
    terminal = Terminal([str(BIN), "console"], env, tmp_path)
    try:
        terminal.expect("od> ", START_S)
        yield terminal
    finally:
        terminal.close()
        found = re.search(r"project at (\S+)/project", terminal.text)
        if found is not None:  # left behind only when the console failed: not to pile up
            shutil.rmtree(found.group(1), ignore_errors=True)


def job_processes(job_id: str, marker: str) -> list[int]:
    """Live processes of a job: its sidecar (JOB_ID in its environment) or its agent (the marker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in argv or f"JOB_ID={job_id}".encode() in environ:
            found.append(int(entry.name))
    return found


@contextmanager
def no_leftovers_of(job: list[str], marker: str) -> Iterator[None]:
    """After the test, end what the job left running (only when the console failed to)."""
    try:
        yield
    finally:
        for pid in job_processes(job[0], marker) if job else ():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def demo_folder(terminal: Terminal) -> Path:
    found = re.search(r"project at (\S+)/project", terminal.text)
    assert found is not None, terminal.text
    return Path(found.group(1))


def test_arrow_up_recalls_the_last_command_and_tab_completes_commands_and_job_ids(tmp_path: Path) -> None:
    marker = f"logged-{uuid.uuid4().hex[:8]}"
    with console(tmp_path) as terminal:
        terminal.type("/od-help usage\r")
        terminal.expect("Example: /od-usage")
        terminal.expect("od> ")
        terminal.type("\x1b[A")  # arrow up
        terminal.expect("/od-help usage")
        terminal.type("\r")
        terminal.expect("Example: /od-usage")
        terminal.expect("od> ")
        terminal.type("/od-j\t")
        terminal.expect("obs")  # the rest of the word, written as Tab completes it
        terminal.type("\r")
        terminal.expect("Recent jobs of")
        terminal.expect("od> ")
        terminal.type(f'/od-run -a shell "echo {marker}"\r')
        job = terminal.expect_re(r"Job (j-[0-9a-f]{8}) queued").group(1)
        terminal.expect(f"Job {job} succeeded", 60)
        terminal.expect("od> ")
        terminal.type("/od-logs j-\t")
        terminal.expect(job[2:])
        terminal.type("\r")
        terminal.expect(f"Logs of {job}")
        terminal.expect(marker)
        terminal.type("quit\r")
        assert terminal.wait_exit(STEP_S) == 0
    assert "^[[A" not in terminal.text


def test_history_survives_a_restart_in_a_file_only_the_user_can_read(tmp_path: Path) -> None:
    with console(tmp_path) as terminal:
        terminal.type("/od-help usage\r")
        terminal.expect("Example: /od-usage")
        terminal.expect("od> ")
        terminal.type("quit\r")
        assert terminal.wait_exit(STEP_S) == 0
    history = tmp_path / "state" / "opendispatch" / "console_history"
    assert history.stat().st_mode & 0o777 == 0o600
    with console(tmp_path) as terminal:
        terminal.type("\x1b[A")  # the last command of the previous run (not its `quit`)
        terminal.expect("/od-help usage")
        terminal.type("\r")
        terminal.expect("Example: /od-usage")
        terminal.expect("od> ")
        terminal.type("quit\r")
        assert terminal.wait_exit(STEP_S) == 0


def test_quit_with_a_job_running_says_so_stops_it_and_leaves_nothing_behind(tmp_path: Path) -> None:
    marker = f"quit-{uuid.uuid4().hex[:8]}"
    job: list[str] = []
    with no_leftovers_of(job, marker), console(tmp_path) as terminal:
        terminal.type(f'/od-run -a shell "echo {marker}-started; sleep 30; echo {marker}-done"\r')
        job.append(terminal.expect_re(r"Job (j-[0-9a-f]{8}) queued").group(1))
        terminal.expect(f"{marker}-started", 60)
        terminal.type("quit\r")
        asked = time.monotonic()
        terminal.expect(f"Stopping 1 running job ({job[0]})…", 10)
        assert terminal.wait_exit(10) == 0
        took = time.monotonic() - asked
        terminal.expect("Cancelled by quitting the console")
        assert f"{marker}-done\r\n" not in terminal.text  # (the command line has it too)
        assert took < 10, f"quit took {took:.1f}s"
        assert job_processes(job[0], marker) == [], "the job's sidecar or agent outlived the console"
        assert not demo_folder(terminal).exists(), "the demo's throwaway folder was left behind"
        assert "Traceback" not in terminal.text


def test_closing_the_terminal_with_a_job_running_stops_it_and_removes_the_demo_folder(tmp_path: Path) -> None:
    marker = f"hup-{uuid.uuid4().hex[:8]}"
    job: list[str] = []
    with no_leftovers_of(job, marker), console(tmp_path) as terminal:
        terminal.type(f'/od-run -a shell "echo {marker}-started; sleep 30; echo {marker}-done"\r')
        job.append(terminal.expect_re(r"Job (j-[0-9a-f]{8}) queued").group(1))
        terminal.expect(f"{marker}-started", 60)
        folder = demo_folder(terminal)
        assert job_processes(job[0], marker), "the job should be running now"
        terminal.hang_up()
        assert terminal.wait_exit(STEP_S) == 128 + signal.SIGHUP
        assert job_processes(job[0], marker) == [], "the job's sidecar or agent outlived the terminal"
        assert not folder.exists(), "the demo's throwaway folder was left behind"


def test_the_console_calls_itself_console_and_piped_input_waits_for_its_jobs_saying_so(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    done = subprocess.run(
        [str(BIN), "console"], input='/od-run -a shell "sleep 1; echo piped-line"\n', capture_output=True,
        text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Open-Dispatch console: webhooks at ")
    assert re.search(r"Waiting for 1 running job \(j-[0-9a-f]{8}\) to finish… \(Ctrl-C stops it\)", done.stdout)
    assert "piped-line" in done.stdout and "succeeded" in done.stdout
    assert not (tmp_path / "state").exists(), "no history is kept for piped input"
