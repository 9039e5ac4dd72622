"""When to touch chat with a job's output, and what each live message ("page") holds.

A sprite can print thousands of lines a second, while a chat platform accepts about one edit a
second per channel and a few thousand characters per message. `OutputBuffer` is the per-job
policy between the two: lines go in as they arrive, and `flush(now)` says which pages to post or
edit, at most once per `min_interval_s`. A page that fills is sealed with a final edit and the
next one starts; after `max_pages` pages the last page rolls, showing the newest lines that fit
and counting the ones it dropped (the full output stays in the job store for `/od-logs`).

The policy is pure: time is a parameter, so it is tested without clocks or chat. The Relay asks
`next_flush_at()` when to wake up next.

`split_message` is the one-shot cousin: it cuts a long text (a final card, `/od-logs`) into
messages that fit a platform's limit without breaking code blocks.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Collection, Iterable

import attrs

DEFAULT_MAX_CHARS = 3000
DEFAULT_MIN_INTERVAL_S = 1.0
DEFAULT_HEARTBEAT_S = 10.0
DEFAULT_MAX_PAGES = 5


@attrs.frozen
class PageUpdate:
    """What to do with one live message.

    The first update for a `page` index means "post a new message", later ones "edit it".
    `lines` is the full current content of the page, not a delta, so an update that is dropped
    or applied twice does no harm.
    """

    page: int
    lines: tuple[str, ...] = attrs.field(repr=lambda lines: f"<{len(lines)} lines>")
    omitted: int
    sealed: bool


def cut_line(line: str, max_chars: int) -> list[str]:
    """`line` in pieces of at most `max_chars` characters (one piece when it already fits)."""
    if len(line) <= max_chars:
        return [line]
    return [line[start : start + max_chars] for start in range(0, len(line), max_chars)]


# Validated once, at construction: its state changes on every batch of every job, and
# attrs' validate-on-assignment hook cost ~3 % of the server's CPU at 10,000 lines/s.
@attrs.define(on_setattr=attrs.setters.NO_OP)
class OutputBuffer:
    """The live-output policy for one job. See the module docstring for the why.

    Page size is `sum(len(line)) + (number of lines - 1)`: the lines joined by newlines.
    A line goes whole onto one page; only a line longer than `max_chars` is cut into pieces,
    and each piece then counts as a line.
    """

    max_chars: int = attrs.field(default=DEFAULT_MAX_CHARS, validator=attrs.validators.ge(1))
    min_interval_s: float = attrs.field(
        default=DEFAULT_MIN_INTERVAL_S, validator=attrs.validators.ge(0.0)
    )
    heartbeat_s: float = attrs.field(default=DEFAULT_HEARTBEAT_S, validator=attrs.validators.gt(0.0))
    max_pages: int = attrs.field(default=DEFAULT_MAX_PAGES, validator=attrs.validators.ge(1))

    # Output may be large and is the user's business: keep it out of reprs and logs.
    _open_lines: deque[str] = attrs.field(init=False, factory=deque, repr=False)
    _open_chars: int = attrs.field(init=False, default=0, repr=False)  # sum of line lengths
    _open_page: int = attrs.field(init=False, default=0)
    _omitted: int = attrs.field(init=False, default=0)
    _sealed_unsent: list[PageUpdate] = attrs.field(init=False, factory=list, repr=False)
    _changed_since: float | None = attrs.field(init=False, default=None)
    _last_flush_at: float | None = attrs.field(init=False, default=None)
    _total_lines: int = attrs.field(init=False, default=0)
    _finished: bool = attrs.field(init=False, default=False)
    #: Something shown beside the lines (the agent's progress) changed: the open page is
    #: sent at the next flush even when it holds no lines yet.
    _touched: bool = attrs.field(init=False, default=False)

    @property
    def total_lines(self) -> int:
        """Lines appended so far, counting each piece of a cut line."""
        return self._total_lines

    def append(self, lines: Iterable[str], now: float) -> None:
        """Take new output lines.

        After `flush_final` the pages are sealed, so late lines (a batch that raced the job's
        end) are ignored here rather than raised on: the job store still has them for the card
        and `/od-logs`, and a sidecar's request must not fail because of our timing.
        """
        if self._finished:
            return
        added = False
        for line in lines:
            for piece in cut_line(line, self.max_chars):
                self._place(piece)
                added = True
        if added and self._changed_since is None:
            self._changed_since = now

    def resume(self, lines: Iterable[str], now: float, *, shown_pages: Collection[int]) -> None:
        """Take the lines a job stored before this process took it over, as already shown.

        The pages are rebuilt exactly as the earlier process built them (same lines, same
        page size), so the next change edits the open page with all its lines: a line it
        showed but had not stored comes again from the sidecar (unacknowledged) and lands
        once, and nothing shown is lost. Pages in `shown_pages` (messages that exist) are not
        sent again until they change; any other page is sent at the next flush.
        """
        self.append(lines, now)
        self._sealed_unsent = [update for update in self._sealed_unsent if update.page not in shown_pages]
        if not self._sealed_unsent and (self._open_page in shown_pages or not self._open_lines):
            self._changed_since = None
        self._last_flush_at = now

    def touch(self, now: float) -> None:
        """The open page must be sent again (what is shown with it changed), as new lines would."""
        if self._finished:
            return
        self._touched = True
        if self._changed_since is None:
            self._changed_since = now

    @property
    def flush_scheduled(self) -> bool:
        """Lines wait for a flush whose time is set: more output cannot bring it forward.

        Lets the caller sleep until `next_flush_at()` instead of waking for every batch.
        """
        return self._changed_since is not None and not self._finished

    def next_flush_at(self) -> float | None:
        """The earliest time `flush` will return updates, or None when there is nothing to do."""
        if self._finished:
            return None
        not_before = -math.inf if self._last_flush_at is None else self._last_flush_at + self.min_interval_s
        if self._changed_since is not None:
            return max(self._changed_since, not_before)
        if self._last_flush_at is None:
            return None
        heartbeat_at = self._last_flush_at + max(self.heartbeat_s, self.min_interval_s)
        return heartbeat_at if math.isfinite(heartbeat_at) else None

    def flush(self, now: float) -> list[PageUpdate]:
        """The updates to apply now, in order; [] when it is not yet time."""
        due = self.next_flush_at()
        if due is None or now < due:
            return []
        return self._take_updates(now, final=False)

    def flush_final(self, now: float) -> list[PageUpdate]:
        """Everything pending, ignoring the rate limit, with the last page sealed.

        Later calls return [] and `next_flush_at()` is None from now on.
        """
        if self._finished:
            return []
        updates = self._take_updates(now, final=True)
        self._finished = True
        return updates

    def _take_updates(self, now: float, *, final: bool) -> list[PageUpdate]:
        # Every change places a line on the open page (sealing happens only to make room for
        # one), so the open page is in every flush: as a change, or as the heartbeat re-send.
        updates, self._sealed_unsent = self._sealed_unsent, []
        if self._open_lines or self._touched:
            updates.append(
                PageUpdate(
                    page=self._open_page,
                    lines=tuple(self._open_lines),
                    omitted=self._omitted,
                    sealed=final,
                )
            )
        self._last_flush_at = now
        self._changed_since = None
        return updates

    @property
    def open_page(self) -> int:
        """The page new lines go to (the one `touch` re-sends)."""
        return self._open_page

    @property
    def _open_page_is_rolling(self) -> bool:
        return self._open_page == self.max_pages - 1

    def _fits_on_open_page(self, piece: str) -> bool:
        count = len(self._open_lines)
        return count == 0 or self._open_chars + count + len(piece) <= self.max_chars

    def _place(self, piece: str) -> None:
        if not self._fits_on_open_page(piece):
            if self._open_page_is_rolling:
                self._drop_oldest_until_fits(piece)
            else:
                self._seal_open_page()
        self._open_lines.append(piece)
        self._open_chars += len(piece)
        self._total_lines += 1

    def _drop_oldest_until_fits(self, piece: str) -> None:
        while not self._fits_on_open_page(piece):
            self._open_chars -= len(self._open_lines.popleft())
            self._omitted += 1

    def _seal_open_page(self) -> None:
        self._sealed_unsent.append(
            PageUpdate(page=self._open_page, lines=tuple(self._open_lines), omitted=0, sealed=True)
        )
        self._open_lines.clear()
        self._open_chars = 0
        self._open_page += 1


# --- splitting one long message --------------------------------------------------------------

MIN_SPLIT_LIMIT = 32
"""Smallest limit `split_message` accepts: room for a reopened fence, some text and its close."""

FENCE = "```"
_CLOSE_FENCE = "\n" + FENCE
_MAX_REOPEN_FENCE = 20  # longer opening lines (odd info strings) are reopened as a bare ```
_FENCE_LINE = re.compile(r" {0,3}```")


def is_fence_line(line: str) -> bool:
    """True for a line that opens or closes a ``` code block (up to 3 spaces of indent)."""
    return _FENCE_LINE.match(line) is not None


def split_message(text: str, limit: int) -> list[str]:
    """Cut `text` into messages of at most `limit` characters, for a platform's size limit.

    Cuts fall between lines; only a line too long for any message is cut inside. When a cut
    falls inside a ``` code block, the message is closed with ``` and the next one reopens it
    (with the same language tag), so each message renders as code. Messages that would hold
    only blank lines are left out, so blank text gives [].
    """
    if limit < MIN_SPLIT_LIMIT:
        raise ValueError(f"a message limit must be at least {MIN_SPLIT_LIMIT} characters")
    if not text.strip():
        return []
    if len(text) <= limit:
        return [text]
    chunker = _Chunker(limit)
    for line in text.split("\n"):
        chunker.feed(line)
    return chunker.finish()


def _reopening_fence(opener: str) -> str:
    stripped = opener.strip()
    return stripped if len(stripped) <= _MAX_REOPEN_FENCE else FENCE


@attrs.define
class _Chunker:
    """Greedy line packer for `split_message`.

    Fence state follows the lines as they will be rendered, so a line cut in pieces is judged
    piece by piece, exactly as the platform will see it.
    """

    limit: int
    chunks: list[str] = attrs.field(factory=list)
    lines: list[str] = attrs.field(factory=list)
    size: int = 0  # len("\n".join(lines))
    opener: str | None = None  # the open fence line at the end of `lines`, if a block is open

    def feed(self, line: str) -> None:
        if self._fits(line):
            self._add(line)
        elif self._fits_fresh(line):
            self._break()
            self._add(line)
        else:
            self._cut(line)

    def finish(self) -> list[str]:
        self._emit("\n".join(self.lines))
        return self.chunks

    def _emit(self, chunk: str) -> None:
        # A chunk of nothing but blank lines cannot be posted (platforms refuse empty messages)
        # and shows nothing, so it is dropped: only a long run of blank lines can make one.
        if chunk.strip():
            self.chunks.append(chunk)

    def _opener_after(self, line: str) -> str | None:
        if not is_fence_line(line):
            return self.opener
        return None if self.opener is not None else line

    def _needed(self, base: int, separated: bool, line: str) -> int:
        close = len(_CLOSE_FENCE) if self._opener_after(line) is not None else 0
        return base + (1 if separated else 0) + len(line) + close

    def _fits(self, line: str) -> bool:
        return self._needed(self.size, bool(self.lines), line) <= self.limit

    def _fits_fresh(self, line: str) -> bool:
        base = 0 if self.opener is None else len(_reopening_fence(self.opener))
        return self._needed(base, self.opener is not None, line) <= self.limit

    def _cut(self, line: str) -> None:
        rest = line
        while not self._fits(rest):
            # Reserve room for a closing fence whatever the piece turns out to be: simpler, and
            # at worst a few characters short of full.
            room = self.limit - self.size - (1 if self.lines else 0) - len(_CLOSE_FENCE)
            if room >= 1:
                self._add(rest[:room])
                rest = rest[room:]
            self._break()
        self._add(rest)

    def _add(self, line: str) -> None:
        self.opener = self._opener_after(line)
        self.size += (1 if self.lines else 0) + len(line)
        self.lines.append(line)

    def _break(self) -> None:
        text = "\n".join(self.lines)
        if self.opener is not None:
            text += _CLOSE_FENCE
        self._emit(text)
        self.lines = []
        self.size = 0
        if self.opener is not None:
            reopen = _reopening_fence(self.opener)
            self.lines.append(reopen)
            self.size = len(reopen)
