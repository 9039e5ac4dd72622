"""The console's line editor on a real pseudo-terminal, in-process: history, printing above
the line being typed, and the terminal given back in its normal mode however reading ends."""

from __future__ import annotations

import errno
import fcntl
import io
import os
import pty
import struct
import termios
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pytest
import trio

from opendispatch.adapters.console.chat import QUIT_WORDS, default_history_path
from opendispatch.adapters.console.line_editor import LineEditor, TerminalWriter, open_history

CEILING_S = 15


@attrs.define
class FakeTerminal:
    """The far side of a pty: what was printed on it, keys typed into it, CPR answered."""

    master: trio.lowlevel.FdStream
    seen: bytearray = attrs.Factory(bytearray)
    changed: trio.Event = attrs.Factory(trio.Event)
    #: The pump answers cursor queries while the test types: one writer at a time on the pty.
    sending: trio.Lock = attrs.Factory(trio.Lock)

    async def pump(self) -> None:
        while True:
            chunk = await self.master.receive_some(65536)
            if not chunk:
                return
            self.seen += chunk
            if b"\x1b[6n" in chunk:  # where is the cursor? (asked by the editor at each prompt)
                async with self.sending:
                    await self.master.send_all(b"\x1b[1;1R")
            self.changed.set()
            self.changed = trio.Event()

    async def wait_for(self, condition: Callable[[bytes], bool]) -> None:
        while not condition(bytes(self.seen)):
            await self.changed.wait()

    async def type(self, keys: str) -> None:
        async with self.sending:
            await self.master.send_all(keys.encode())


@asynccontextmanager
async def editor_on_a_pty(history_path: Path | None = None) -> AsyncIterator[tuple[LineEditor, FakeTerminal, int]]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    reader = os.fdopen(slave, "r", encoding="utf-8", closefd=False)
    writer = os.fdopen(os.dup(slave), "w", encoding="utf-8")
    history, _ = open_history(history_path, skip=QUIT_WORDS)
    editor = LineEditor(reader, writer, prompt="od> ", bold_prompt=False, history=history, job_ids=lambda: ("j-1234abcd",))
    terminal = FakeTerminal(trio.lowlevel.FdStream(master))
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(terminal.pump)
            yield editor, terminal, slave
            nursery.cancel_scope.cancel()
    finally:
        writer.close()
        reader.close()
        os.close(slave)
        await terminal.master.aclose()


def after(mark: bytes, *wanted: bytes) -> Callable[[bytes], bool]:
    """True once everything in `wanted` was printed after the last `mark`."""
    return lambda seen: mark in seen and all(w in seen[seen.rindex(mark):] for w in wanted)


async def test_a_line_typed_while_a_job_prints_comes_back_whole_and_the_print_lands_above_it() -> None:
    with trio.fail_after(CEILING_S):
        async with editor_on_a_pty() as (editor, terminal, _):
            async with trio.open_nursery() as nursery:
                lines: list[str | None] = []

                async def read() -> None:
                    lines.append(await editor.read_line())

                nursery.start_soon(read)
                await terminal.wait_for(lambda seen: b"od> " in seen)
                await terminal.type("/od-lo")
                await terminal.wait_for(after(b"od> ", b"/od-lo"))
                editor.writer.write("j-1234abcd  0:03 | a job's line\n")
                # printed, then the prompt and the half-typed line drawn again below it
                await terminal.wait_for(after(b"a job's line", b"od> ", b"/od-lo"))
                # The rest of the word, echoed, then Tab on its own. The completion is drawn as
                # its own update ("j-" then, after cursor codes, "1234abcd"), so the test looks
                # for what Tab added, not for the whole id in one piece: typed together, the
                # keys were drawn in one piece or two depending on the machine's load.
                await terminal.type("gs j-")
                await terminal.wait_for(after(b"a job's line", b"gs j-"))
                await terminal.type("\t")
                await terminal.wait_for(after(b"gs j-", b"1234abcd"))
                await terminal.type("\r")
    assert lines == ["/od-logs j-1234abcd"]


async def test_a_cancelled_prompt_gives_the_terminal_back_in_its_normal_mode() -> None:
    with trio.fail_after(CEILING_S):
        async with editor_on_a_pty() as (editor, terminal, slave):
            normal = termios.tcgetattr(slave)
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(editor.read_line)
                    await terminal.wait_for(lambda seen: b"od> " in seen)
                    assert termios.tcgetattr(slave) != normal  # the editor reads keys one by one
                    scope.cancel()
            assert termios.tcgetattr(slave) == normal
            editor.writer.write("printed after the prompt ended\n")
            await terminal.wait_for(lambda seen: b"printed after the prompt ended" in seen)


async def test_ctrl_d_ends_input_and_ctrl_c_interrupts() -> None:
    with trio.fail_after(CEILING_S):
        async with editor_on_a_pty() as (editor, terminal, slave):
            normal = termios.tcgetattr(slave)
            async with trio.open_nursery() as nursery:
                results: list[str | None] = []

                async def read() -> None:
                    results.append(await editor.read_line())

                nursery.start_soon(read)
                await terminal.wait_for(lambda seen: b"od> " in seen)
                await terminal.type("\x04")
            assert results == [None]
            start = len(terminal.seen)

            async def interrupt() -> None:
                await terminal.wait_for(lambda seen: b"od> " in seen[start:])
                await terminal.type("half a line\x03")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(interrupt)
                with pytest.raises(KeyboardInterrupt):
                    await editor.read_line()
            assert termios.tcgetattr(slave) == normal


async def test_history_is_kept_in_a_private_file_and_recalled_by_a_new_editor(tmp_path: Path) -> None:
    path = tmp_path / "state" / "opendispatch" / "console_history"
    with trio.fail_after(CEILING_S):
        for typed in ("/od-help usage\r", "quit\r"):
            async with editor_on_a_pty(path) as (editor, terminal, _):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(editor.read_line)
                    await terminal.wait_for(lambda seen: b"od> " in seen)
                    await terminal.type(typed)
        async with editor_on_a_pty(path) as (editor, terminal, _):
            recalled: list[str | None] = []

            async def read() -> None:
                recalled.append(await editor.read_line())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(read)
                await terminal.wait_for(lambda seen: b"od> " in seen)
                await terminal.type("\x1b[A")  # arrow up: the last command, not the `quit`
                await terminal.wait_for(after(b"od> ", b"/od-help usage"))
                await terminal.type("\r")
    assert recalled == ["/od-help usage"]
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_history_falls_back_to_memory_with_the_reason_when_its_file_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    history, reason = open_history(tmp_path / "a-file" / "console_history")
    assert reason is not None and "cannot write" in reason and str(tmp_path / "a-file") in reason
    history.append_string("/od-jobs")
    assert list(history.get_strings()) == ["/od-jobs"]
    _, no_home = open_history(None)
    assert no_home == "there is no home directory to keep it in"


def test_the_history_lives_in_the_xdg_state_directory() -> None:
    assert default_history_path({"XDG_STATE_HOME": "/s", "HOME": "/h"}) == Path("/s/opendispatch/console_history")
    assert default_history_path({"HOME": "/h"}) == Path("/h/.local/state/opendispatch/console_history")
    assert default_history_path({"XDG_STATE_HOME": "relative", "HOME": "/h"}) == Path(
        "/h/.local/state/opendispatch/console_history"
    )
    assert default_history_path({}) is None


class ClosedTerminal(io.StringIO):
    """What writing to a terminal whose window was closed does: EIO."""

    def write(self, text: str) -> int:
        raise OSError(errno.EIO, "Input/output error")


def test_the_writer_ignores_a_terminal_that_went_away() -> None:
    TerminalWriter(ClosedTerminal()).write("a card nobody will read\n")
