"""A job's live output as one Slack stream: what to append next, and what Slack has confirmed.

The runner hands the adapter whole pages (`LiveOutput`: a page's lines so far, the agent's
progress), never deltas. `StreamState` turns those snapshots into what `chat.appendStream`
takes: the new lines of each page as a markdown code block, and the agent's steps as
`task_update` chunks whose ids stay the same from `in_progress` to `complete` / `error`
(`TaskTimeline`). It also keeps, per page, how many lines Slack confirmed, so that when a
stream breaks (Slack closed it, a method is refused) the adapter can post today's
edit-in-place messages for exactly the pages with lines Slack never showed: nothing is lost.

Pure: no I/O, no clock. The chunks are built with slack_sdk's own models
(`slack_sdk.models.messages.chunk`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import attrs
from slack_sdk.models.messages.chunk import MarkdownTextChunk, TaskUpdateChunk

from ...domain.agent_progress import ProgressView
from ...domain.messages import LiveOutput
from ...domain.render import logs_hint

#: `markdown_text` (and a markdown chunk) holds at most 12,000 characters (chat.*Stream reference).
MARKDOWN_LIMIT = 12_000
#: How much output text one job streams before pointing to `/od-logs` instead. Slack's limit on
#: a whole streamed message is not published (unconfirmed); today's messages show five pages.
STREAM_TEXT_BUDGET = 30_000
#: A task card's title; Slack's limit is not published (details and output take 256).
TASK_TITLE_CHARS = 256

IN_PROGRESS = "in_progress"
COMPLETE = "complete"
ERROR = "error"

_BACKTICK_RUN = re.compile(r"`(?=`)")
_MENTION_LIKE = re.compile(r"<(?=[@#!])")
Chunk = dict[str, Any]


def code_markdown(lines: Sequence[str]) -> str:
    """`lines` as one fenced code block of markdown, ending with a newline.

    Output is shown as it is: no run of backticks can close the block early (a zero-width
    space sits between two backticks) and nothing that looks like a Slack mention (`<!channel>`,
    `<@U1>`) stays one.
    """
    body = "\n".join(_MENTION_LIKE.sub("<\u200b", _BACKTICK_RUN.sub("`\u200b", line)) for line in lines)
    return "```\n" + body + "\n```\n"


def code_pieces(lines: Sequence[str], limit: int = MARKDOWN_LIMIT) -> list[str]:
    """`lines` as code blocks of at most `limit` characters each (a line is never cut: the
    output buffer already cut long lines to a page)."""
    pieces: list[str] = []
    batch: list[str] = []
    for line in lines:
        if batch and len(code_markdown([*batch, line])) > limit:
            pieces.append(code_markdown(batch))
            batch = []
        batch.append(line)
    if batch:
        pieces.append(code_markdown(batch))
    return pieces


def _title(label: str) -> str:
    flat = " ".join(label.split()) or "step"
    return flat if len(flat) <= TASK_TITLE_CHARS else flat[: TASK_TITLE_CHARS - 1] + "…"


@attrs.define
class TaskTimeline:
    """The agent's steps as task cards with stable ids.

    A `ProgressView` names the step running now and the last few finished ones (and how many
    finished in all), without ids; this gives each step an id when it is first seen and keeps
    it: a step seen running keeps its id when it finishes (matched by its label, oldest
    first). A step that ran and finished between two views is shown once, finished.
    """

    _running: dict[str, list[str]] = attrs.field(factory=dict)
    _titles: dict[str, str] = attrs.field(factory=dict)
    _finished_seen: int = 0
    _next: int = 1

    def update(self, view: ProgressView) -> list[Chunk]:
        """The task updates that `view` brings (finished steps first, then the running one)."""
        changes: list[Chunk] = []
        new = view.steps_done - self._finished_seen
        if new > 0:
            recent = list(view.recent)
            for step in recent[-new:] if new <= len(recent) else recent:
                waiting = self._running.get(step.label)
                task_id = waiting.pop(0) if waiting else self._new_id()
                changes.append(self._chunk(task_id, step.label, COMPLETE if step.ok is not False else ERROR))
            self._finished_seen = view.steps_done
        current = view.current
        if current is not None and not self._running.get(current.label):
            task_id = self._new_id()
            self._running.setdefault(current.label, []).append(task_id)
            changes.append(self._chunk(task_id, current.label, IN_PROGRESS))
        return changes

    def close(self, *, ok: bool) -> list[Chunk]:
        """Every step still shown running, now complete (`ok`) or in error: the job ended."""
        changes = [
            self._chunk(task_id, label, COMPLETE if ok else ERROR)
            for label, ids in self._running.items()
            for task_id in ids
        ]
        self._running.clear()
        return changes

    def _new_id(self) -> str:
        task_id = f"step-{self._next}"
        self._next += 1
        return task_id

    def _chunk(self, task_id: str, label: str, status: str) -> Chunk:
        chunk: Chunk = TaskUpdateChunk(id=task_id, title=_title(label), status=status).to_dict()
        return chunk


@attrs.define
class _Text:
    page: int
    upto: int  # the page's line count (omitted ones included) once this text is shown
    markdown: str


@attrs.define
class _Task:
    chunk: Chunk


@attrs.define
class Batch:
    """What one call sends: its chunks, and what Slack will have shown once it accepted them."""

    chunks: list[Chunk]
    shows: list[tuple[int, int]]  # (page, line count)

    def markdown_chars(self) -> int:
        return sum(len(str(chunk.get("text", ""))) for chunk in self.chunks if chunk.get("type") == "markdown_text")


@attrs.define
class StreamState:
    """One job's stream: pending chunks, pages seen, pages confirmed. See the module docstring."""

    job_id: str
    text_budget: int = STREAM_TEXT_BUDGET
    timeline: TaskTimeline = attrs.Factory(TaskTimeline)
    #: The newest snapshot of each page, for the edit-in-place fallback.
    pages: dict[int, LiveOutput] = attrs.field(factory=dict, repr=False)
    _queued: dict[int, int] = attrs.field(factory=dict)
    _confirmed: dict[int, int] = attrs.field(factory=dict)
    _pending: list[_Text | _Task] = attrs.field(factory=list, repr=False)
    _text_chars: int = 0
    _budget_noted: bool = False

    @staticmethod
    def line_count(page: LiveOutput) -> int:
        return page.omitted + len(page.lines)

    def note(self, message: LiveOutput) -> None:
        """Take the newest version of one page: its new lines and the agent's new steps."""
        self.pages[message.page] = message
        if message.progress is not None:
            for chunk in self.timeline.update(message.progress):
                self._add_task(chunk)
        total = self.line_count(message)
        already = self._queued.get(message.page, 0)
        if total <= already:
            return
        new = total - already
        shown = list(message.lines[-new:]) if new <= len(message.lines) else list(message.lines)
        parts: list[str] = []
        skipped = new - len(shown)
        if skipped:
            parts.append(f"_… {skipped} lines not shown here: {logs_hint(self.job_id)}_\n")
        room = self.text_budget - self._text_chars
        fitting: list[str] = []
        for line in shown:
            if len(line) + 1 > room:
                break
            fitting.append(line)
            room -= len(line) + 1
        if fitting:
            parts.extend(code_pieces(fitting))
            self._text_chars += sum(len(line) + 1 for line in fitting)
        if len(fitting) < len(shown) and not self._budget_noted:
            self._budget_noted = True
            parts.append(f"_The output goes on; {logs_hint(self.job_id)} has all of it._\n")
        self._queued[message.page] = total
        for index, part in enumerate(parts):
            upto = total if index == len(parts) - 1 else already
            self._pending.append(_Text(message.page, upto, part))

    def close_tasks(self, *, ok: bool) -> None:
        for chunk in self.timeline.close(ok=ok):
            self._add_task(chunk)

    def _add_task(self, chunk: Chunk) -> None:
        for item in self._pending:
            if not isinstance(item, _Task):
                continue
            if item.chunk.get("id") == chunk.get("id") and item.chunk.get("status") == chunk.get("status"):
                item.chunk = chunk  # not sent yet: the newest title
                return
        self._pending.append(_Task(chunk))  # a new status is shown in turn (running, then done)

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def take(self, limit: int = MARKDOWN_LIMIT) -> Batch:
        """The next call's chunks, in order, with at most `limit` characters of markdown."""
        chunks: list[Chunk] = []
        shows: list[tuple[int, int]] = []
        used = 0
        while self._pending:
            item = self._pending[0]
            if isinstance(item, _Text):
                if chunks and used + len(item.markdown) > limit:
                    break
                used += len(item.markdown)
                chunks.append(MarkdownTextChunk(text=item.markdown).to_dict())
                shows.append((item.page, item.upto))
            else:
                chunks.append(item.chunk)
            self._pending.pop(0)
        return Batch(chunks, shows)

    def confirm(self, batch: Batch) -> None:
        """Slack accepted `batch`: its lines are shown."""
        for page, upto in batch.shows:
            self._confirmed[page] = max(self._confirmed.get(page, 0), upto)

    def unshown_pages(self) -> list[LiveOutput]:
        """The pages with lines Slack never confirmed (in order), for the fallback messages."""
        return [
            page
            for number, page in sorted(self.pages.items())
            if self._confirmed.get(number, 0) < self.line_count(page)
        ]
