"""The console's line editor on a terminal: prompt_toolkit, run in a Trio worker thread.

prompt_toolkit (not the stdlib `readline`) because jobs print while the user types: its
`run_in_terminal` hides the line being edited, prints, and redraws it, from any thread; and
because a prompt it runs can be told to end from outside, so the terminal is always given back
in its normal mode, whichever way the console stops (`quit`, Ctrl-C, SIGHUP, an error). A
thread blocked in `readline()` can be neither redrawn safely nor interrupted. docs/console.md
says more.

`prompt()` runs its own asyncio loop in the worker thread; nothing of asyncio reaches the Trio
side. Text for the terminal goes through `TerminalWriter`, which prints it directly between
prompts and above the prompt while one is open.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import TextIO

import trio
from prompt_toolkit import PromptSession
from prompt_toolkit.application import Application, run_in_terminal
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import create_input
from prompt_toolkit.output import ColorDepth, create_output

from .completion import completions

#: How long a cancelled console waits for the editor to give the terminal back.
RELEASE_TIMEOUT_S = 2.0


def open_history(path: Path | None, *, skip: Collection[str] = ()) -> tuple[History, str | None]:
    """A history kept in `path` (created readable by this user only: commands name repos and
    tasks), or one in memory and the reason why when the file cannot be written.

    Lines in `skip` (the quit words) are not kept: after a restart, arrow-up should bring back
    the last command, not the `quit` that ended the previous run.
    """
    if path is None:
        return _InMemoryHistory(skip), "there is no home directory to keep it in"
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    except OSError as exc:
        return _InMemoryHistory(skip), f"cannot write {path}: {exc.strerror or exc}"
    return _FileHistory(str(path), skip), None


class _FileHistory(FileHistory):
    def __init__(self, filename: str, skip: Collection[str]) -> None:
        super().__init__(filename)
        self._skip = frozenset(word.lower() for word in skip)

    def append_string(self, string: str) -> None:
        if string.strip().lower() not in self._skip:
            super().append_string(string)


class _InMemoryHistory(InMemoryHistory):
    def __init__(self, skip: Collection[str]) -> None:
        super().__init__()
        self._skip = frozenset(word.lower() for word in skip)

    def append_string(self, string: str) -> None:
        if string.strip().lower() not in self._skip:
            super().append_string(string)


class _ConsoleCompleter(Completer):
    """prompt_toolkit's side of `completions`: the word before the cursor is replaced."""

    def __init__(self, job_ids: Callable[[], Sequence[str]]) -> None:
        self._job_ids = job_ids

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        before = document.text_before_cursor
        typed = document.get_word_before_cursor(WORD=True)
        for word in completions(before, self._job_ids()):
            yield Completion(word, start_position=-len(typed))


class TerminalWriter:
    """Writes to the terminal from the Trio thread without breaking the line being edited.

    While a prompt is open, text is queued and printed by the editor's own loop inside
    `run_in_terminal` (which hides the prompt, prints, and redraws it); between prompts it is
    written at once. Whatever is still queued when a prompt closes is written then, so nothing
    is lost and the order is kept. A terminal that is gone (closed window: EIO) is ignored.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._app: Application[str] | None = None

    def write(self, text: str) -> None:
        with self._lock:
            app = self._app
            if app is None:
                self._write_now(text)
                return
            self._pending.append(text)  # behind anything queued before, even as the prompt ends
            loop = app.loop
            if len(self._pending) == 1 and loop is not None:
                try:
                    loop.call_soon_threadsafe(self._print_above, app)
                except RuntimeError:  # the loop has just closed: `detach` prints the queue
                    pass

    def attach(self, app: Application[str]) -> None:
        """Called in the editor's loop once its prompt runs."""
        with self._lock:
            self._app = app

    def detach(self) -> None:
        """Called in the editor's thread once its prompt has returned (or by a reader that
        gave up waiting for it): what is queued is printed, and from now on text goes out directly."""
        with self._lock:
            self._app = None
            text, self._pending = "".join(self._pending), []
            if text:
                self._write_now(text)

    def _print_above(self, app: Application[str]) -> None:
        def print_pending() -> None:
            with self._lock:
                text, self._pending = "".join(self._pending), []
                self._write_now(text)

        if app.is_running:
            run_in_terminal(print_pending, in_executor=False)
        else:
            print_pending()

    def _write_now(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # the terminal went away, or the stream is closed
            pass


class LineEditor:
    """Reads one line at a time on a terminal, with history and completion.

    `read_line` returns the line, or None at the end of input (Ctrl-D, or the terminal
    closed). Ctrl-C raises KeyboardInterrupt, which ends the console as Ctrl-C does anywhere.
    If the Trio task reading is cancelled, the prompt is told to end and given a moment to
    restore the terminal before the cancellation goes on.
    """

    def __init__(
        self,
        input_stream: TextIO,
        output: TextIO,
        *,
        prompt: str,
        bold_prompt: bool,  # False: no colour at all (NO_COLOR, or asked for)
        history: History,
        job_ids: Callable[[], Sequence[str]],
    ) -> None:
        self.writer = TerminalWriter(output)
        # The renderer leaves out blanks at the end of a line unless they have a colour, so the
        # prompt is given the terminal's default one: its trailing space is written, and "od> "
        # stays in the terminal's text as before the editor (what a transcript or test looks for).
        message = FormattedText([("bold fg:ansidefault" if bold_prompt else "fg:ansidefault", prompt)])
        self._session: PromptSession[str] = PromptSession(
            message,
            history=history,
            completer=_ConsoleCompleter(job_ids),
            complete_while_typing=False,
            input=create_input(input_stream),
            output=create_output(output),
            color_depth=None if bold_prompt else ColorDepth.DEPTH_1_BIT,
        )
        self._lock = threading.Lock()
        self._stop = False

    async def read_line(self) -> str | None:
        with self._lock:
            self._stop = False
        finished = threading.Event()

        def prompt() -> str | None:
            try:
                return self._session.prompt(pre_run=self._started)
            except EOFError:
                return None
            except OSError:  # the terminal is gone: as good as the end of input
                return None
            finally:
                self.writer.detach()
                finished.set()

        try:
            return await trio.to_thread.run_sync(prompt, abandon_on_cancel=True)
        except BaseException:
            # Cancelled, or Ctrl-C delivered by Trio while the terminal was briefly in its normal
            # mode (printing above the prompt); when the prompt itself raised, it has ended.
            self._end_prompt()
            with trio.CancelScope(shield=True):
                ended = await trio.to_thread.run_sync(finished.wait, RELEASE_TIMEOUT_S)
            if not ended:
                self.writer.detach()
            raise

    def _started(self) -> None:
        """In the editor's loop, as its prompt starts: let output through, or end at once."""
        app = self._session.app
        self.writer.attach(app)
        with self._lock:
            if self._stop:
                _exit(app)

    def _end_prompt(self) -> None:
        with self._lock:
            self._stop = True
            loop = self._session.app.loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(_exit, self._session.app)
            except RuntimeError:  # the loop closed meanwhile: the prompt has ended anyway
                pass


def _exit(app: Application[str]) -> None:
    if app.is_running and app.future is not None and not app.future.done():
        app.exit(exception=EOFError)
