"""One ordered lane per channel, so Slack sees our writes at a pace it accepts.

The lanes are the shared outbox (`support/paced_lanes.py`): writes to a channel leave in the
order they were made, one at a time; a queued edit of the same message is replaced by the newer
one (keeping its place in the line); posts are never merged or dropped. Slack's part is its
`SlackPacing`: about one message per second per channel, so each write waits `interval_s`
after the previous one in its channel ended. A write that hits a 429 is retried by `SlackWeb`
after `Retry-After` (each Web API method's tier is paced there, per method and workspace), so
none is lost.
"""

from __future__ import annotations

from typing import Any, cast

import attrs
import trio

from ...support import paced_lanes
from ...support.paced_lanes import LanesClosed, PacedLanes

__all__ = ["Outbox", "OutboxClosed", "SlackPacing", "Write"]

#: A queued write abandoned because the adapter is shutting down.
OutboxClosed = LanesClosed


class Write(paced_lanes.Write[dict[str, Any]]):
    """One queued Web API call; `wait()` returns Slack's answer or raises its error.

    `key`: edits of one message share it (only the newest queued one is sent)."""

    __slots__ = ()


@attrs.define
class SlackPacing:
    """At least `interval_s` between the end of one write in a channel and the next.

    Measured from the end: a write may have waited out a 429 and been retried just now, and
    Slack counts the request it finally accepted.
    """

    interval_s: float
    retry_for_s: float = 0.0  # SlackWeb waits out 429s itself; the lanes never retry
    _last_done: dict[str, float] = attrs.field(factory=dict, init=False)

    def ready_at(self, lane: str, write: paced_lanes.Write[Any], now: float) -> float:
        last = self._last_done.get(lane)
        return now if last is None else max(now, last + self.interval_s)

    def tried(self, lane: str, write: paced_lanes.Write[Any], now: float) -> None:
        pass

    def finished(self, lane: str, write: paced_lanes.Write[Any], now: float) -> None:
        self._last_done[lane] = now
        if len(self._last_done) > 4096:  # forget channels that are quiet again
            self._last_done = {k: t for k, t in self._last_done.items() if t > now - self.interval_s}

    def backoff_s(self, tries: int) -> float:
        return self.interval_s


class Outbox:
    """Per-channel lanes whose worker tasks run in the adapter's nursery."""

    def __init__(self, nursery: trio.Nursery, *, interval_s: float) -> None:
        self._lanes = PacedLanes[str](nursery, SlackPacing(interval_s), name="Slack")

    def put(self, channel: str, write: Write) -> Write:
        """Queue `write` on `channel`; returns the write that will carry it (maybe a merged one)."""
        return cast(Write, self._lanes.put(channel, write))  # every write in these lanes is a Write

    def pending(self, channel: str) -> int:
        """How many writes wait in `channel`'s lane (not counting one being sent)."""
        return self._lanes.pending(channel)

    async def drained(self) -> None:
        """Return once every channel's lane is empty."""
        await self._lanes.drained()
