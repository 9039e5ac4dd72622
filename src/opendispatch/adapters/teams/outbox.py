"""Outgoing activities, in order, within Teams' rate limits, and never silently lost.

Each conversation (thread) has a FIFO queue drained by its own task, so what the application
said first is shown first. Before each call the queue waits for room in Teams' per-thread
windows (7/1 s, 8/2 s, 60/30 s, 1800/h) and the app-wide 30/s, and an update of the same
activity waits at least `edit_interval_s` after the previous one. Consecutive updates of one
activity that are still waiting are coalesced: only the newest version is sent, which is
what a reader would see anyway. Posts are never merged or dropped. 429 (and 412/502/503/504,
and network errors) are retried after `Retry-After` when given, else with exponential
backoff and jitter, until `retry_deadline_s`.

A streaming activity (`stream`, see streaming.py) is a POST in the same queue, so it keeps its
place among the conversation's other activities; its answer may carry no id (`202 {}`), and
it is retried only until its own, shorter deadline: a stream must end within Teams' time limit.
"""

from __future__ import annotations

import bisect
import logging
import random
from collections import deque
from collections.abc import Sequence
from typing import Any

import attrs
import httpx
import trio

from ...support.retry_after import backoff_s, retry_after_s
from .connector import BotConnector, ConnectorError, Target, activities_url, error_parts
from .settings import TeamsSettings

log = logging.getLogger(__name__)

THREAD_LIMITS: tuple[tuple[float, int], ...] = ((1.0, 7), (2.0, 8), (30.0, 60), (3600.0, 1800))
APP_LIMITS: tuple[tuple[float, int], ...] = ((1.0, 30),)
RETRYABLE = frozenset({412, 429, 502, 503, 504})
# Teams counts arrivals, we count departures; latency varies, so leave a little slack.
WINDOW_SLACK_S = 0.15


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


@attrs.define(eq=False)
class _Op:
    method: str  # "POST" or "PUT"
    url: str
    activity: dict[str, Any]
    updates: str | None = None  # the activity id a PUT replaces
    stream: bool = False  # a streaming activity: 2xx without an id is success
    deadline_s: float | None = None  # retries end this long after the first try (else the setting)
    dropped: str | None = None  # a stream's 2xx answer said the update was dropped (its error code)
    done: trio.Event = attrs.Factory(trio.Event)
    result: str | None = None
    error: Exception | None = None
    merged: list[_Op] = attrs.Factory(list)

    def finish(self, result: str | None = None, error: Exception | None = None) -> None:
        for op in (self, *self.merged):
            op.result, op.error = result, error
            op.done.set()


class OutboxClosed(Exception):
    pass


@attrs.frozen
class StreamAnswer:
    """What the Connector said to a streaming activity: the stream's id (only the first answer
    has one) and, when Teams accepted the request but dropped it, the error code it gave."""

    id: str | None
    dropped: str | None = None


class Outbox:
    def __init__(self, connector: BotConnector, nursery: trio.Nursery, settings: TeamsSettings) -> None:
        self._connector = connector
        self._nursery = nursery
        self._settings = settings
        self._queues: dict[Target, deque[_Op]] = {}
        self._threads: dict[Target, SlidingWindows] = {}
        self._app = SlidingWindows(APP_LIMITS, slack_s=WINDOW_SLACK_S)
        self._last_update: dict[tuple[Target, str], float] = {}
        self._idle = trio.Event()
        self._idle.set()

    async def post(self, target: Target, activity: dict[str, Any], *, reply_to: str | None = None) -> str:
        """Send a new activity (a reply when `reply_to` is set) and return its id."""
        op = _Op("POST", activities_url(target, reply_to), activity)
        self._enqueue(target, op)
        await op.done.wait()
        if op.error is not None:
            raise op.error
        assert op.result is not None
        return op.result

    async def stream(self, target: Target, activity: dict[str, Any], *, deadline_s: float) -> StreamAnswer:
        """Send one streaming activity (informative, streaming or final) and return the answer.

        Raises `ConnectorError` (with the answer's code and message) when Teams refuses it."""
        op = _Op("POST", activities_url(target), activity, stream=True, deadline_s=deadline_s)
        self._enqueue(target, op)
        await op.done.wait()
        if op.error is not None:
            raise op.error
        return StreamAnswer(op.result or None, op.dropped)

    def update(self, target: Target, activity_id: str, activity: dict[str, Any]) -> None:
        """Replace an activity we posted; returns at once (failures are logged)."""
        queue = self._queues.get(target)
        if queue and queue[-1].updates == activity_id:
            queue[-1].activity = activity  # still waiting: only the newest version matters
            return
        self._enqueue(target, _Op("PUT", activities_url(target, activity_id), activity, updates=activity_id))

    async def drained(self) -> None:
        """Return once every queued activity was delivered or given up on."""
        await self._idle.wait()

    def _enqueue(self, target: Target, op: _Op) -> None:
        queue = self._queues.get(target)
        if queue is not None:
            queue.append(op)
            return
        self._queues[target] = deque([op])
        if self._idle.is_set():
            self._idle = trio.Event()
        try:
            self._nursery.start_soon(self._drain, target)
        except RuntimeError:
            del self._queues[target]
            self._set_idle_if_empty()
            op.finish(error=OutboxClosed("the Teams adapter is shut down"))

    async def _drain(self, target: Target) -> None:
        queue = self._queues[target]
        try:
            while queue:
                head = queue[0]
                try:
                    await self._deliver(target, queue)
                except Exception as exc:  # a bug here must not take the whole adapter down
                    log.exception("Teams: delivery to %s failed unexpectedly", target.conversation_id)
                    if queue and queue[0] is head:
                        queue.popleft()
                    head.finish(error=exc)
        finally:
            for op in queue:
                op.finish(error=OutboxClosed("the Teams adapter is shut down"))
            del self._queues[target]
            self._set_idle_if_empty()

    def _set_idle_if_empty(self) -> None:
        if not self._queues:
            self._idle.set()

    async def _deliver(self, target: Target, queue: deque[_Op]) -> None:
        """Send the head of the queue; it stays there (open to coalescing) until its first try."""
        head = queue[0]
        deadline = trio.current_time() + (head.deadline_s if head.deadline_s is not None else self._settings.retry_deadline_s)
        attempt = 0
        while True:
            await self._wait_for_room(target, queue[0])
            op = queue.popleft()
            try:
                retry_in = await self._attempt(target, op, queue, attempt, deadline)
            finally:
                if not op.done.is_set() and op not in queue:  # cancelled mid-call: never leave a waiter hanging
                    op.finish(error=OutboxClosed("the Teams adapter is shut down"))
            if retry_in is None:
                return
            attempt += 1
            await trio.sleep(retry_in)

    async def _attempt(
        self, target: Target, op: _Op, queue: deque[_Op], attempt: int, deadline: float
    ) -> float | None:
        """One try of `op`: finish it, or put it back at the head and say when to retry."""
        self._absorb_newer_versions(op, queue)
        now = trio.current_time()
        self._threads[target].record(now)
        self._app.record(now)
        if op.updates is not None:
            self._remember_update(target, op.updates, now)
        try:
            response: httpx.Response | None = await self._connector.attempt(op.method, op.url, op.activity)
        except httpx.TransportError as exc:
            log.warning("Teams: %s %s failed: %s", op.method, target.conversation_id, type(exc).__name__)
            response = None
        except Exception as exc:  # the token endpoint refused us and the like: not retryable
            self._give_up(op, exc)
            return None
        if response is not None and response.status_code < 300 and op.stream:
            op.dropped = _dropped(response)
            op.finish(result=_optional_id(response))
            return None
        if response is not None and response.status_code < 300:
            try:
                op.finish(result=_activity_id(response, op))
            except ConnectorError as exc:
                self._give_up(op, exc)
            return None
        if response is not None and response.status_code not in RETRYABLE:
            self._give_up(op, ConnectorError.of(response))
            return None
        delay = self._retry_delay(response, attempt)
        status = response.status_code if response is not None else 0
        if trio.current_time() + delay > deadline:
            self._give_up(op, ConnectorError(status, f"still failing after {attempt + 1} tries"))
            return None
        log.info("Teams: retrying %s in %.1fs (HTTP %s)", op.method, delay, status or "-")
        queue.appendleft(op)  # keeps its place; newer versions of an update may join it
        return delay

    def _remember_update(self, target: Target, activity_id: str, now: float) -> None:
        self._last_update[(target, activity_id)] = now
        if len(self._last_update) > 4096:  # forget activities nobody has edited lately
            horizon = now - self._settings.edit_interval_s
            self._last_update = {k: t for k, t in self._last_update.items() if t >= horizon}

    async def _wait_for_room(self, target: Target, op: _Op) -> None:
        thread = self._threads.setdefault(target, SlidingWindows(THREAD_LIMITS, slack_s=WINDOW_SLACK_S))
        while True:
            now = trio.current_time()
            ready = max(thread.ready_at(now), self._app.ready_at(now))
            if op.updates is not None:
                last = self._last_update.get((target, op.updates))
                if last is not None:
                    ready = max(ready, last + self._settings.edit_interval_s)
            if ready <= now:
                return
            await trio.sleep_until(ready)

    @staticmethod
    def _absorb_newer_versions(op: _Op, queue: deque[_Op]) -> None:
        """An update about to be sent takes the payload of later updates right behind it."""
        while op.updates is not None and queue and queue[0].updates == op.updates:
            newer = queue.popleft()
            op.activity = newer.activity
            op.merged.append(newer)

    def _retry_delay(self, response: httpx.Response | None, attempt: int) -> float:
        hinted = retry_after_s(response.headers.get("retry-after")) if response is not None else None
        if hinted is not None:
            return hinted
        return backoff_s(attempt, base_s=self._settings.retry_base_s, max_s=self._settings.retry_max_s, rng=random)

    def _give_up(self, op: _Op, error: Exception) -> None:
        if op.method == "PUT":
            log.warning("Teams: could not update activity %s: %s", op.updates, error)
        op.finish(error=error)


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


def _activity_id(response: httpx.Response, op: _Op) -> str | None:
    if op.updates is not None:
        return op.updates
    try:
        value = response.json().get("id")
    except (ValueError, AttributeError):
        value = None
    if not isinstance(value, str) or not value:
        raise ConnectorError(response.status_code, "the answer carried no activity id")
    return value
