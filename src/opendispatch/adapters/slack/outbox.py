"""One ordered queue per channel, so Slack sees our writes at a pace it accepts.

Slack takes about one message per second per channel. Each channel has a queue worked by
one task: writes leave in the order they were made, at least `interval_s` apart, and a
write that hits a 429 is retried by `SlackWeb` after `Retry-After`, so none is lost.

Edits are the one thing we may merge: an edit only says "this message should now look
like X", so a queued edit of the same message is replaced by the newer one (keeping its
place in the queue). Posts are never merged or dropped.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

log = logging.getLogger(__name__)

Action = Callable[[], Awaitable[dict[str, Any]]]


class OutboxClosed(Exception):
    """A queued write was abandoned because the adapter is shutting down."""


@attrs.define(eq=False)
class Write:
    """One queued write; `wait()` returns Slack's answer or raises its error."""

    action: Action
    key: str | None = None  # edits of one message share a key
    describe: str = "write"
    _done: trio.Event = attrs.field(factory=trio.Event, init=False)
    _result: dict[str, Any] | None = attrs.field(default=None, init=False)
    _error: BaseException | None = attrs.field(default=None, init=False)

    async def wait(self) -> dict[str, Any]:
        await self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def finish(self, result: dict[str, Any] | None, error: BaseException | None) -> None:
        self._result, self._error = result, error
        self._done.set()


@attrs.define
class _Lane:
    queue: deque[Write] = attrs.Factory(deque)
    last_done: float = -float("inf")
    working: bool = False


class Outbox:
    """Per-channel lanes whose worker tasks run in the adapter's nursery."""

    def __init__(self, nursery: trio.Nursery, *, interval_s: float) -> None:
        self._nursery = nursery
        self._interval_s = interval_s
        self._lanes: dict[str, _Lane] = {}

    def put(self, channel: str, write: Write) -> Write:
        """Queue `write` on `channel`; returns the write that will carry it (maybe a merged one)."""
        lane = self._lanes.setdefault(channel, _Lane())
        if write.key is not None:
            for queued in lane.queue:
                if queued.key == write.key:
                    queued.action = write.action  # newest content, same place in line
                    return queued
        lane.queue.append(write)
        if not lane.working:
            lane.working = True
            self._nursery.start_soon(self._work, channel, lane)
        return write

    def pending(self, channel: str) -> int:
        lane = self._lanes.get(channel)
        return len(lane.queue) if lane else 0

    async def _work(self, channel: str, lane: _Lane) -> None:
        current: Write | None = None
        try:
            while lane.queue:
                # Measured from the end of the last write: a write may have waited out a 429
                # and been retried just now, and Slack counts the request it finally accepted.
                await trio.sleep_until(lane.last_done + self._interval_s)
                current = lane.queue.popleft()
                try:
                    result = await current.action()
                except Exception as exc:  # the caller (or the log) hears about it; the lane goes on
                    current.finish(None, exc)
                    log.debug("Slack %s in %s failed: %s", current.describe, channel, exc)
                else:
                    current.finish(result, None)
                finally:
                    lane.last_done = trio.current_time()
                current = None
        finally:
            lane.working = False
            # Shutting down: nobody may wait forever on a write that will not happen now.
            for write in [*([current] if current is not None else []), *lane.queue]:
                write.finish(None, OutboxClosed(f"Slack {write.describe} was not sent: shutting down"))
            lane.queue.clear()
