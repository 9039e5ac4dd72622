"""`ConsoleChat`: the ChatPort for a terminal (stdin/stdout), used by `opendispatch demo`.

A terminal cannot edit a line it printed long ago, so an "edit" of live output prints only
the lines that are new since the last print for that message, each tagged with the job id and
elapsed time (`j-1234abcd  0:03 │ line`). Several jobs can therefore stream at once and stay
readable. An agent's progress is printed the same way, as it changes, with a dotted gutter
(`j-1234abcd  0:07 ┆ ✓ Bash: npm test`): each finished step once, the current step when it
changes, the agent's latest words and its plan when they change. Every other message is
printed as `render_text` gives it, with a one-character mark for its kind; an edit of one of
those simply prints the new version.

An approval prompt (a tool call waiting for a person) is printed with a `?` mark and says
"answer y / a / n": while one waits, a bare `y` line means `/od-approve ID`, `a` means
`/od-approve ID --job` (approve it and later calls of the same rule, for the rest of the job)
and `n` means `/od-deny ID`, for the oldest request still waiting; the console says which one
it answered. Any other line, and these letters when nothing waits, are handled as always.
What the agent asked to run is printed with control characters made visible, so a command
cannot move the cursor or recolour the terminal.

On a terminal, lines are read with a line editor (history kept across runs, Tab completion of
commands and of the job ids shown here; see line_editor.py). Anything else (a pipe, a file, a
test's stream) is read line by line and echoed, so a transcript reads like a session.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import attrs
import trio

from ...domain.agent_events import one_line
from ...domain.agent_progress import ProgressView, Step
from ...domain.approvals import ApprovalState
from ...domain.job import Conversation, JobState, User
from ...domain.messages import (
    ApprovalPrompt,
    ChatMessage,
    Inbound,
    JobAccepted,
    JobCard,
    JobTable,
    LiveOutput,
    LogExcerpt,
    MessageRef,
    Notice,
)
from ...domain.render import progress_lines, render_lines, step_text
from ...ports.chat import ChatLimits, InboundHandler

if TYPE_CHECKING:
    from .line_editor import LineEditor

PROMPT = "od> "
#: How often a job that prints nothing gets a "still running" line (its live page is re-sent
#: at every heartbeat, ~10 s; a line that often would bury everything else).
QUIET_NOTE_S = 30.0
CONSOLE_CONVERSATION = Conversation("console", "console")
QUIT_WORDS = frozenset({"quit", "exit"})
#: How many job ids the console remembers for completion.
MAX_JOB_IDS = 200
#: A bare answer to the oldest waiting approval request -> the command it stands for.
APPROVAL_ANSWERS = {"y": "/od-approve {}", "a": "/od-approve {} --job", "n": "/od-deny {}"}
ANSWER_HINT = "answer y / a / n"
#: Control characters (C0 but tab, DEL, C1): shown as escapes, never sent to the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

_RESET = "\x1b[0m"
_DIM = "\x1b[2m"
_BOLD = "\x1b[1m"
_RED = "\x1b[31m"
_GREEN = "\x1b[32m"
_YELLOW = "\x1b[33m"
_BLUE = "\x1b[34m"
_CYAN = "\x1b[36m"
_CLEAR_LINE = "\r\x1b[K"

_KIND_MARKS: dict[type, tuple[str, str]] = {
    Notice: ("•", _CYAN),
    JobAccepted: ("»", _BLUE),
    JobTable: ("≡", _BOLD),
    LogExcerpt: ("¶", _BOLD),
    LiveOutput: ("│", _DIM),
    ApprovalPrompt: ("?", _YELLOW),
}
_CARD_COLORS = {JobState.SUCCEEDED: _GREEN, JobState.CANCELLED: _YELLOW}


def clock_format(seconds: float) -> str:
    """Elapsed time as a stopwatch shows it (`0:03`, `12:34`, `1:02:03`), right-aligned."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"
    return text.rjust(5)


@attrs.define
class _PrintedLive:
    """How far a live-output message has been printed: its page and absolute line count."""

    job_id: str
    page: int
    printed_end: int


@attrs.define
class _PrintedProgress:
    """What of a job's agent progress has been printed (across all its pages)."""

    steps_done: int = 0
    current: str | None = None
    plan: str | None = None
    said: str | None = None


class ConsoleChat:
    """A ChatPort that prints to one text stream and reads commands from another.

    `color=None` turns colours on only for a terminal that has not set `NO_COLOR`.
    `line_editor=None` uses the line editor only when both streams are terminals.
    `env` (default `os.environ`) is read once, here, for `NO_COLOR`, `USER`, and where the
    history is kept (`XDG_STATE_HOME`, `HOME`) unless `history_path` says.
    """

    #: Live output pages: a terminal has no limit; pages keep the card readable.
    limits = ChatLimits(page_chars=3000, edit_interval_s=0.25)

    def __init__(
        self,
        output: TextIO | None = None,
        input_stream: TextIO | None = None,
        *,
        color: bool | None = None,
        env: Mapping[str, str] | None = None,
        files_dir: Path | None = None,
        line_editor: bool | None = None,
        history_path: Path | None = None,
    ) -> None:
        environ = os.environ if env is None else env
        #: Where a raw transcript (`/od-logs JOB --raw`) is saved whole: a terminal's "file".
        self._files_dir = files_dir
        self._out = sys.stdout if output is None else output
        self._in = sys.stdin if input_stream is None else input_stream
        self._tty = _isatty(self._out)
        self._color = (self._tty and "NO_COLOR" not in environ) if color is None else color
        self._user = User("console", environ.get("USER") or "you")
        self._next_id = 0
        self._live: dict[MessageRef, _PrintedLive] = {}
        self._progress: dict[str, _PrintedProgress] = {}
        #: Jobs running without output yet: the elapsed time of the last "no output yet" note.
        self._quiet_noted: dict[str, float] = {}
        self._prompt_visible = False
        self._use_editor = (self._tty and _isatty(self._in)) if line_editor is None else line_editor
        self._history_path = history_path if history_path is not None else default_history_path(environ)
        self._editor: LineEditor | None = None
        #: The ids of the jobs this console has shown, newest first: what Tab offers for JOB.
        self._job_ids: tuple[str, ...] = ()
        #: Approval requests waiting for an answer, by id, in the order they were shown.
        self._waiting: dict[str, ApprovalPrompt] = {}
        #: Set when the user asked to leave (`quit`, `exit`, Ctrl-D on a terminal) rather than
        #: the input simply ending: the demo then stops running jobs instead of waiting for them.
        self.quitting = False

    @property
    def job_ids(self) -> tuple[str, ...]:
        """The ids of the jobs this console has shown, newest first (what Tab offers for JOB)."""
        return self._job_ids

    async def send(
        self, where: Conversation, message: ChatMessage, *, reply_to: MessageRef | None = None
    ) -> MessageRef:
        """Print the message; a terminal has no threads, so `reply_to` is ignored."""
        await trio.lowlevel.checkpoint()
        self._next_id += 1
        ref = MessageRef(where, str(self._next_id))
        self._show(ref, message)
        if isinstance(message, LogExcerpt) and message.file is not None and self._files_dir is not None:
            path = await trio.to_thread.run_sync(save_kept_file, self._files_dir, message)
            self._emit([f"  The file ({len(message.file.content)} bytes) is saved as {path}"])
        elif isinstance(message, LogExcerpt) and message.raw and message.lines and self._files_dir is not None:
            path = await trio.to_thread.run_sync(save_transcript, self._files_dir, message)
            self._emit([f"  The whole transcript ({len(message.lines)} lines) is in {path}"])
        return ref

    async def edit(self, ref: MessageRef, message: ChatMessage) -> None:
        """Print what changed: new live lines only, or the whole new version of anything else."""
        await trio.lowlevel.checkpoint()
        self._show(ref, message)

    async def listen(
        self,
        handler: InboundHandler,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Read commands line by line until end of input, `quit` or `exit`, or cancellation."""
        task_status.started()
        if self._use_editor:
            await self._listen_with_editor(handler)
            return
        while True:
            self._show_prompt()
            line = await trio.to_thread.run_sync(self._in.readline, abandon_on_cancel=True)
            self._after_input(line)
            if not line or not await self._take(line, handler):
                return

    async def _listen_with_editor(self, handler: InboundHandler) -> None:
        from .line_editor import LineEditor, open_history

        history, not_kept = await trio.to_thread.run_sync(partial(open_history, self._history_path, skip=QUIT_WORDS))
        self._editor = editor = LineEditor(
            self._in,
            self._out,
            prompt=PROMPT,
            bold_prompt=self._color,
            history=history,
            job_ids=lambda: self._job_ids,  # read in the editor's thread: a tuple, replaced whole
        )
        if not_kept is not None:
            self._emit(self._decorated(Notice(f"Command history is not kept: {not_kept}.")))
        while True:
            line = await editor.read_line()
            if line is None:  # Ctrl-D (the editor has ended its line), or the terminal closed
                self.quitting = True
                return
            if not await self._take(line, handler):
                return

    async def _take(self, line: str, handler: InboundHandler) -> bool:
        """Hand a typed line to the handler; False when it was `quit` or `exit`."""
        text = line.strip()
        if text.lower() in QUIT_WORDS:
            self.quitting = True
            return False
        text = self._bare_answer(text) or text
        if text:
            await handler(Inbound(CONSOLE_CONVERSATION, self._user, text))
        return True

    def _bare_answer(self, text: str) -> str | None:
        """`y`, `a` or `n` while an approval request waits: the command it means, for the
        oldest one (and a line saying which one that is); else None."""
        command = APPROVAL_ANSWERS.get(text.lower())
        if command is None or not self._waiting:
            return None
        prompt = min(self._waiting.values(), key=lambda waiting: waiting.request.asked_at)  # stable: first shown wins ties
        request = prompt.request
        answer = command.format(request.id)
        what = _printable(one_line(f"{request.tool}: {request.detail}" if request.detail else request.tool, 80))
        oldest = f"; the oldest of {len(self._waiting)} waiting" if len(self._waiting) > 1 else ""
        self._emit([f"{self._paint('•', _CYAN)} {text} → {answer} (job {prompt.job.id}, {what}{oldest})"])
        return answer

    def _track(self, message: ChatMessage) -> None:
        """Which approval requests still wait: a decided prompt no longer does, nor do those of
        a job that has ended (its sidecar no longer asks)."""
        if isinstance(message, ApprovalPrompt):
            if message.request.state is ApprovalState.PENDING:
                self._waiting[message.request.id] = message
            else:
                self._waiting.pop(message.request.id, None)
        elif isinstance(message, JobCard):
            for request_id in [i for i, waiting in self._waiting.items() if waiting.job.id == message.job.id]:
                del self._waiting[request_id]

    def _seen(self, message: ChatMessage) -> None:
        """Remember the job ids a message shows, for completion (a tuple: the editor's thread reads it)."""
        jobs = message.jobs if isinstance(message, JobTable) else (getattr(message, "job", None),)
        new = [job.id for job in jobs if job is not None and job.id not in self._job_ids]
        if new:
            self._job_ids = (*reversed(new), *self._job_ids)[:MAX_JOB_IDS]

    def _show(self, ref: MessageRef, message: ChatMessage) -> None:
        self._seen(message)
        self._track(message)
        if isinstance(message, LiveOutput):
            update = self._live_update(ref, message) + self._progress_update(message)
            self._emit(update or self._quiet_note(message))
            return
        if isinstance(message, JobCard):
            self._progress.pop(message.job.id, None)
            self._quiet_noted.pop(message.job.id, None)
        self._live.pop(ref, None)
        self._emit(self._decorated(message))

    def _live_update(self, ref: MessageRef, message: LiveOutput) -> list[str]:
        """Lines of `message` not yet printed for `ref`, plus a note for any dropped unseen."""
        job_id = message.job.id
        previous = self._live.get(ref)
        same_page = previous is not None and (previous.job_id, previous.page) == (
            job_id,
            message.page,
        )
        printed_end = previous.printed_end if previous is not None and same_page else 0
        unseen = message.omitted - printed_end
        start = max(0, -unseen)
        new_end = message.omitted + len(message.lines)
        self._live[ref] = _PrintedLive(job_id, message.page, max(printed_end, new_end))
        out: list[str] = []
        if unseen > 0:
            noun = "line" if unseen == 1 else "lines"
            gap = f"… {unseen} {noun} not shown (/od-logs {job_id} for all)"
            out.append(self._live_line(message, gap))
        out.extend(self._live_line(message, line) for line in message.lines[start:])
        return out

    def _quiet_note(self, message: LiveOutput) -> list[str]:
        """A job that runs but prints nothing: say so when it starts, then every QUIET_NOTE_S.

        A terminal cannot edit the line in place, so the elapsed time is a new line, and only
        while nothing else has been printed for the job (its lines carry the time themselves).
        """
        job_id = message.job.id
        if message.lines or message.omitted or message.progress is not None or message.sealed:
            self._quiet_noted[job_id] = float("inf")  # it spoke: no more notes
            return []
        last = self._quiet_noted.get(job_id)
        if last is None:
            self._quiet_noted[job_id] = message.elapsed_s
            return [self._live_line(message, "running; no output yet", bar="┆")]
        if message.elapsed_s - last >= QUIET_NOTE_S:
            self._quiet_noted[job_id] = message.elapsed_s
            return [self._live_line(message, "still running; no output yet", bar="┆")]
        return []

    def _live_line(self, message: LiveOutput, line: str, *, bar: str = "│") -> str:
        gutter = f"{message.job.id} {clock_format(message.elapsed_s)} {bar}"
        return f"{self._paint(gutter, _DIM)} {line}"

    def _progress_update(self, message: LiveOutput) -> list[str]:
        """What changed in the agent's progress since the last print for this job."""
        view = message.progress
        if view is None:
            return []
        printed = self._progress.setdefault(message.job.id, _PrintedProgress())
        out = [step_text(step) for step in _new_steps(view, printed.steps_done)]
        printed.steps_done = max(printed.steps_done, view.steps_done)
        current = view.current.label if view.current is not None else None
        if current is not None and current != printed.current:
            out.append(f"▶ {current}")
        printed.current = current
        for line in progress_lines(view)[1:]:
            if line.startswith("☰") and line != printed.plan:
                printed.plan = line
                out.append(line)
            elif line.startswith("💬") and line != printed.said:
                printed.said = line
                out.append(line)
        return [self._live_line(message, line, bar="┆") for line in out]

    def _decorated(self, message: ChatMessage) -> list[str]:
        """`render_text` with a kind mark on the first line and the rest indented under it."""
        mark, colour = _mark_for(message)
        first, *rest = _approval_lines(message) if isinstance(message, ApprovalPrompt) else render_lines(message)
        return [f"{self._paint(mark, colour)} {first}", *(f"  {line}" for line in rest)]

    def _paint(self, text: str, colour: str) -> str:
        return f"{colour}{text}{_RESET}" if self._color else text

    def _emit(self, lines: list[str]) -> None:
        """Write whole lines, keeping an open prompt from being mixed into them."""
        if not lines:
            return
        reprompt = self._prompt_visible and self._tty
        if self._prompt_visible:
            self._write(_CLEAR_LINE if self._tty else "\n")
            self._prompt_visible = False
        self._write("".join(f"{line}\n" for line in lines))
        if reprompt:
            self._show_prompt()

    def _show_prompt(self) -> None:
        self._write(self._paint(PROMPT, _BOLD))
        self._prompt_visible = True

    def _after_input(self, line: str) -> None:
        """End the prompt line; echo piped input, which a terminal would have echoed itself."""
        if self._prompt_visible and not _isatty(self._in):
            self._write(line if line.endswith("\n") else f"{line}\n")
        elif not line:
            self._write("\n")
        self._prompt_visible = False

    def _write(self, text: str) -> None:
        if self._editor is not None:
            self._editor.writer.write(text)
            return
        try:
            self._out.write(text)
            self._out.flush()
        except OSError:  # the terminal was closed (EIO): jobs are being stopped, nobody reads
            pass


def _approval_lines(message: ApprovalPrompt) -> list[str]:
    """The prompt as `render_lines` words it, what the agent wrote made printable, and while it
    waits the bare answers this console takes."""
    request = message.request
    shown = attrs.evolve(
        request, tool=_printable(request.tool), detail=_printable(request.detail), reason=_printable(request.reason)
    )
    first, *rest = render_lines(ApprovalPrompt(message.job, shown))
    if request.state is not ApprovalState.PENDING:
        return [first, *rest]
    return [
        f"{first} — {ANSWER_HINT}",
        *rest[:-1],
        f"y: approve · a: approve this and the same rule for the rest of the job · n: deny ({request.id})",
        rest[-1],
    ]


def _printable(text: str) -> str:
    """`text` on one line with control characters shown as escapes (`⏎` for a line break)."""
    text = text.replace("\r\n", "\n").replace("\n", " ⏎ ").replace("\t", " ")
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def _new_steps(view: ProgressView, printed: int) -> tuple[Step, ...]:
    """The finished steps of `view` not printed yet (the view keeps only the last few)."""
    new = view.steps_done - printed
    return view.recent[-new:] if new > 0 else ()


def _mark_for(message: ChatMessage) -> tuple[str, str]:
    if isinstance(message, JobCard):
        return "■", _CARD_COLORS.get(message.job.state, _RED)
    return _KIND_MARKS[type(message)]


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def default_history_path(env: Mapping[str, str]) -> Path | None:
    """`$XDG_STATE_HOME/opendispatch/console_history` (`~/.local/state/...` by default).

    Not next to the database: the console's database lives in a throwaway folder. The XDG
    "state" directory is where the base-directory spec puts history that should survive
    restarts. None when there is no home to put it in.
    """
    state = env.get("XDG_STATE_HOME")
    if state and os.path.isabs(state):
        return Path(state) / "opendispatch" / "console_history"
    home = env.get("HOME")
    if home and os.path.isabs(home):
        return Path(home) / ".local" / "state" / "opendispatch" / "console_history"
    return None


def save_kept_file(folder: Path, excerpt: LogExcerpt) -> Path:
    """A kept artifact as `<job>.<its file name>`, readable by this user only."""
    assert excerpt.file is not None
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{excerpt.job.id}.{excerpt.file.filename}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(excerpt.file.content)
    return path


def save_transcript(folder: Path, excerpt: LogExcerpt) -> Path:
    """The transcript as `<job>.transcript.jsonl`, readable by this user only (it is the agent's work)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{excerpt.job.id}.transcript.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(excerpt.lines) + "\n")
    return path
