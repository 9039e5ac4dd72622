"""How the command line ends when a user stops it or the port is taken: one line, never a traceback.

Ctrl-C is typed into a real pseudo-terminal, as a user would, so the signal comes from the
terminal's line discipline to the whole foreground process group.
"""

from __future__ import annotations

import os
import pty
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

from real_agents import processes_mentioning

BIN = Path(sys.executable).parent / "opendispatch"


def run_in_terminal(argv: list[str], steps: list[tuple[bytes, bytes]], cwd: Path) -> tuple[str, int]:
    """Run `argv` on a pty; for each (marker, keys), wait for the marker, then type the keys."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes the program
        os.chdir(cwd)
        os.execv(argv[0], argv)
    output = b""

    def read_until(marker: bytes | None, timeout_s: float) -> bool:
        nonlocal output
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and (marker is None or marker not in output):
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # the program ended and the terminal closed
                    return marker is None
                if not chunk:
                    return marker is None
                output += chunk
        return marker is None or marker in output

    try:
        for marker, keys in steps:
            assert read_until(marker, 60), f"never saw {marker!r}:\n{output.decode(errors='replace')}"
            os.write(fd, keys)
        read_until(None, 30)  # to the end
    finally:
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped == 0:  # still running after its output ended, or a step failed: end it
            read_until(None, 10)
            reaped, status = os.waitpid(pid, os.WNOHANG)
            if reaped == 0:
                os.kill(pid, 9)
                _, status = os.waitpid(pid, 0)
        os.close(fd)
    return output.decode("utf-8", "replace"), os.waitstatus_to_exitcode(status)


def test_ctrl_c_in_the_console_with_a_job_running_stops_it_without_a_traceback(tmp_path: Path) -> None:
    marker = "ctrlc-marker-3b7e"
    text, code = run_in_terminal(
        [str(BIN), "console"],
        [
            (b"od> ", f'/od-run --agent shell "echo {marker}-started; sleep 60"\r'.encode()),
            (f"{marker}-started\r\n".encode(), b"\x03"),  # the job's first line is shown
        ],
        tmp_path,
    )
    assert code == 130, text
    assert "Traceback" not in text and "ExceptionGroup" not in text and "KeyboardInterrupt" not in text
    assert "opendispatch: stopped (Ctrl-C)." in text
    assert processes_mentioning(marker) == [], "the job's sprite outlived the console"


def test_ctrl_c_in_an_idle_console_ends_it_quietly(tmp_path: Path) -> None:
    text, code = run_in_terminal([str(BIN), "console"], [(b"od> ", b"\x03")], tmp_path)
    assert code == 130 and "Traceback" not in text and "opendispatch: stopped (Ctrl-C)." in text


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "WEBHOOK_PORT": str(port), "CHAT_PROVIDER": "console", "OPENDISPATCH_DB": str(tmp_path / "j.db")}
        done = subprocess.run(
            [str(BIN), "serve"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
            stdin=subprocess.DEVNULL,
        )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"cannot listen on 127.0.0.1:{port}: the address is already in use" in done.stderr
    assert "set WEBHOOK_PORT" in done.stderr
