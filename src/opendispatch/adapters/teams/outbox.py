"""Outgoing activities, in order, within Teams' rate limits, and never silently lost.

The lanes are the shared outbox (`support/paced_lanes.py`): each conversation (thread) has a
FIFO lane drained by its own task, so what the application said first is shown first. Teams'
part is its `TeamsPacing`: before each call the lane waits for room in Teams' per-thread
windows (7/1 s, 8/2 s, 60/30 s, 1800/h) and the app-wide 30/s, and an update of the same
activity waits at least `edit_interval_s` after the previous one. A queued update of an
activity is replaced by a newer one (only the newest version is sent, which is what a reader
would see anyway). Posts are never merged or dropped. 429 (and 412/502/503/504, and network
errors) are retried after `Retry-After` when given, else with exponential backoff and jitter,
until `retry_deadline_s`; meanwhile the call waits at the head of its lane, where newer
versions of an update still replace it.

A streaming activity (`stream`, see streaming.py) is a POST in the same lane, so it keeps its
place among the conversation's other activities; its answer may carry no id (`202 {}`), and
it is retried only until its own, shorter deadline: a stream must end within Teams' time limit.
"""

from __future__ import annotations

import bisect
import logging
import random
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import attrs
import httpx
import trio

from ...support.paced_lanes import LanesClosed, PacedLanes, TryAgain, Write
from ...support.retry_after import backoff_s, retry_after_s
from .connector import BotConnector, ConnectorError, Target, activities_url, error_parts
from .settings import TeamsSettings

__all__ = ["Outbox", "OutboxClosed", "SlidingWindows", "StreamAnswer", "TeamsPacing", "retry_after_s"]

log = logging.getLogger(__name__)

THREAD_LIMITS: tuple[tuple[float, int], ...] = ((1.0, 7), (2.0, 8), (30.0, 60), (3600.0, 1800))
APP_LIMITS: tuple[tuple[float, int], ...] = ((1.0, 30),)
RETRYABLE = frozenset({412, 429, 502, 503, 504})
# Teams counts arrivals, we count departures; latency varies, so leave a little slack.
WINDOW_SLACK_S = 0.15

#: A queued activity abandoned because the adapter is shutting down.
OutboxClosed = LanesClosed

T = TypeVar("T")


class SlidingWindows:
    """Request times of one scope; `ready_at` is when one more request fits every window."""

    def __init__(self, limits: Sequence[tuple[float, int]], *, slack_s: float = 0.0) -> None:
        self._limits = tuple((window + slack_s, count) for window, count in limits)
        self._horizon = max(window for window, _ in self._limits)
        self._times: deque[float] = deque()

    def ready_at(self, now: float) -> float:
        while self._times and self._times[0] <= now - self._horizon:
            self._times.popleft()
        times = list(self._times)
        ready = now
        for window, count in self._limits:
            start = bisect.bisect_right(times, now - window)
            in_window = len(times) - start
            if in_window >= count:
                ready = max(ready, times[len(times) - count] + window)
        return ready

    def record(self, at: float) -> None:
        self._times.append(at)


class TeamsPacing:
    """Teams' limits per conversation thread and per app, an edit interval per activity, and
    the backoff for refusals that name no wait. An update's write key is its activity id."""

    def __init__(self, settings: TeamsSettings) -> None:
        self._settings = settings
        self.retry_for_s = settings.retry_deadline_s
        self._threads: dict[Target, SlidingWindows] = {}
        self._app = SlidingWindows(APP_LIMITS, slack_s=WINDOW_SLACK_S)
        self._last_update: dict[tuple[Target, str], float] = {}

    def ready_at(self, lane: Target, write: Write[Any], now: float) -> float:
        thread = self._threads.setdefault(lane, SlidingWindows(THREAD_LIMITS, slack_s=WINDOW_SLACK_S))
        ready = max(thread.ready_at(now), self._app.ready_at(now))
        if isinstance(write.key, str):
            last = self._last_update.get((lane, write.key))
            if last is not None:
                ready = max(ready, last + self._settings.edit_interval_s)
        return ready

    def tried(self, lane: Target, write: Write[Any], now: float) -> None:
        self._threads[lane].record(now)
        self._app.record(now)
        if isinstance(write.key, str):
            self._remember_update(lane, write.key, now)

    def finished(self, lane: Target, write: Write[Any], now: float) -> None:
        pass

    def backoff_s(self, tries: int) -> float:
        return backoff_s(tries, base_s=self._settings.retry_base_s, max_s=self._settings.retry_max_s, rng=random)

    def _remember_update(self, lane: Target, activity_id: str, now: float) -> None:
        self._last_update[(lane, activity_id)] = now
        if len(self._last_update) > 4096:  # forget activities nobody has edited lately
            horizon = now - self._settings.edit_interval_s
            self._last_update = {k: t for k, t in self._last_update.items() if t >= horizon}


@attrs.frozen
class StreamAnswer:
    """What the Connector said to a streaming activity: the stream's id (only the first answer
    has one) and, when Teams accepted the request but dropped it, the error code it gave."""

    id: str | None
    dropped: str | None = None


class Outbox:
    def __init__(self, connector: BotConnector, nursery: trio.Nursery, settings: TeamsSettings) -> None:
        self._connector = connector
        self._lanes = PacedLanes[Target](nursery, TeamsPacing(settings), name="Teams")

    async def post(self, target: Target, activity: dict[str, Any], *, reply_to: str | None = None) -> str:
        """Send a new activity (a reply when `reply_to` is set) and return its id."""
        url = activities_url(target, reply_to)
        write = Write(lambda: self._call(target, "POST", url, activity, _activity_id), describe="POST")
        return await self._lanes.put(target, write).wait()

    async def stream(self, target: Target, activity: dict[str, Any], *, deadline_s: float) -> StreamAnswer:
        """Send one streaming activity (informative, streaming or final) and return the answer.

        Raises `ConnectorError` (with the answer's code and message) when Teams refuses it."""
        url = activities_url(target)
        write = Write(
            lambda: self._call(target, "POST", url, activity, _stream_answer), describe="stream", retry_for_s=deadline_s
        )
        return await self._lanes.put(target, write).wait()

    def update(self, target: Target, activity_id: str, activity: dict[str, Any]) -> None:
        """Replace an activity we posted; returns at once (failures are logged)."""
        url = activities_url(target, activity_id)
        write = Write(
            lambda: self._call(target, "PUT", url, activity, lambda _: activity_id),
            key=activity_id,  # while it waits, a newer version takes its place: only the newest matters
            describe=f"update of activity {activity_id}",
            awaited=False,
        )
        self._lanes.put(target, write)

    async def drained(self) -> None:
        """Return once every queued activity was delivered or given up on."""
        await self._lanes.drained()

    async def _call(
        self, target: Target, method: str, url: str, activity: dict[str, Any], read: Callable[[httpx.Response], T]
    ) -> T:
        """One try: what `read` finds in a 2xx answer; `TryAgain` for what passes; else the error."""
        try:
            response = await self._connector.attempt(method, url, activity)
        except httpx.TransportError as exc:
            log.warning("Teams: %s %s failed: %s", method, target.conversation_id, type(exc).__name__)
            raise TryAgain(after_s=None, give_up=_still_failing(0), reason="HTTP -") from None
        # Any other exception (the token endpoint refused us and the like) is not retryable.
        if response.status_code < 300:
            return read(response)
        if response.status_code not in RETRYABLE:
            raise ConnectorError.of(response)
        raise TryAgain(
            after_s=retry_after_s(response.headers.get("retry-after")),
            give_up=_still_failing(response.status_code),
            reason=f"HTTP {response.status_code}",
        )


def _still_failing(status: int) -> Callable[[int], Exception]:
    return lambda tries: ConnectorError(status, f"still failing after {tries} tries")


def _stream_answer(response: httpx.Response) -> StreamAnswer:
    return StreamAnswer(_optional_id(response) or None, _dropped(response))


def _optional_id(response: httpx.Response) -> str:
    try:
        value = response.json().get("id")
    except (ValueError, AttributeError):
        value = None
    return value if isinstance(value, str) else ""


def _dropped(response: httpx.Response) -> str | None:
    """A 2xx that still carries an error (Teams' `202 ContentStreamSequenceOrderPreConditionFailed`)."""
    code, _ = error_parts(response)
    return code or None


def _activity_id(response: httpx.Response) -> str:
    try:
        value = response.json().get("id")
    except (ValueError, AttributeError):
        value = None
    if not isinstance(value, str) or not value:
        raise ConnectorError(response.status_code, "the answer carried no activity id")
    return value
