"""Paced lanes: the one outbox the chat adapters share (Slack, Discord, Teams).

A chat platform takes our writes at its own pace and shows them in the order they arrive, so
every write to one place (a channel, a thread, a conversation: the lane's key) goes through
that place's lane:

- **Order.** Each lane is a FIFO worked by one task in the adapter's nursery, one write at a
  time; lanes do not wait for each other.
- **Coalesced edits.** An edit only says "this message should now look like X", so a write
  with a `key` (edits of one message share it) that finds a queued write with the same key
  replaces that write's action, keeping its place in the line: only the newest queued edit
  is ever sent. Writes without a key (posts) are never merged or dropped.
- **Pacing.** Before each try, the lane waits until the platform's `PacingPolicy` says the
  write may go (Slack: a second per channel; Teams: its per-conversation and app windows and
  an edit interval per message; Discord: its REST client's buckets, inside each call).
- **Waiting out refusals.** A write's action raises `TryAgain` for a refusal that passes (a
  429, a 503): the write goes back to the head of its lane, where newer edits still coalesce
  into it, and is tried again after the wait the platform asked for (else the policy's
  backoff), until its retry window ends.
- **Nothing hangs.** A write that fails tells its caller (`Write.wait` raises); the lane
  goes on. Writes left when the nursery is cancelled fail with `LanesClosed`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, Protocol, TypeVar, cast

import attrs
import trio

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)
R = TypeVar("R")


class LanesClosed(RuntimeError):
    """A queued write was abandoned because the adapter is shutting down."""


class TryAgain(Exception):
    """Raised by a write's action: the platform refused the call for now; make it again.

    `after_s` is the wait it asked for (`Retry-After`), None for the policy's backoff.
    `give_up(tries)` is the error the caller gets when the write's retry window ends first;
    `reason` is for the log ("HTTP 429").
    """

    def __init__(
        self, *, after_s: float | None, give_up: Callable[[int], Exception], reason: str = "refused"
    ) -> None:
        super().__init__(reason)
        self.after_s = after_s
        self.give_up = give_up
        self.reason = reason


@attrs.define(eq=False)
class Write(Generic[R]):
    """One queued call; `wait()` returns its action's answer or raises its error."""

    action: Callable[[], Awaitable[R]]
    #: Edits of one message share a key: a newer write with the same key replaces this one's
    #: action while this one waits in its lane. None: never merged (a post).
    key: Hashable | None = None
    describe: str = "write"
    #: Retries (`TryAgain`) end this long after the write reached the head of its lane;
    #: None: the policy's `retry_for_s`.
    retry_for_s: float | None = None
    #: False when nobody waits for the answer (an edit): a failure is then logged as a warning.
    awaited: bool = True
    tries: int = attrs.field(default=0, init=False)
    _retry_until: float | None = attrs.field(default=None, init=False)
    _done: trio.Event = attrs.field(factory=trio.Event, init=False)
    _result: R | None = attrs.field(default=None, init=False)
    _error: BaseException | None = attrs.field(default=None, init=False)

    async def wait(self) -> R:
        await self._done.wait()
        if self._error is not None:
            raise self._error
        return cast(R, self._result)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def finish(self, result: R | None, error: BaseException | None) -> None:
        """Settle the write (once: a later call changes nothing)."""
        if self._done.is_set():
            return
        self._result, self._error = result, error
        self._done.set()


class PacingPolicy(Protocol[K_contra]):
    """A platform's pace. The lanes ask it before each try and tell it about each try."""

    #: How long a write keeps being retried after `TryAgain`, unless it says otherwise.
    retry_for_s: float

    def ready_at(self, lane: K_contra, write: Write[Any], now: float) -> float:
        """The earliest time `write` (the head of `lane`) may be tried; `now` or later."""
        ...

    def tried(self, lane: K_contra, write: Write[Any], now: float) -> None:
        """A try of `write` starts now."""
        ...

    def finished(self, lane: K_contra, write: Write[Any], now: float) -> None:
        """The try of `write` ended now (answered, refused or failed)."""
        ...

    def backoff_s(self, tries: int) -> float:
        """The wait before another try when a refusal named none; `tries` made so far."""
        ...


@attrs.define
class Unpaced:
    """No pacing of the lanes' own: the platform's client paces each call (Discord's buckets)."""

    retry_for_s: float = 0.0

    def ready_at(self, lane: object, write: Write[Any], now: float) -> float:
        return now

    def tried(self, lane: object, write: Write[Any], now: float) -> None:
        pass

    def finished(self, lane: object, write: Write[Any], now: float) -> None:
        pass

    def backoff_s(self, tries: int) -> float:
        return 1.0


@attrs.define
class _Lane:
    queue: deque[Write[Any]] = attrs.Factory(deque)


class PacedLanes(Generic[K]):
    """Per-key ordered lanes whose worker tasks run in `nursery`, paced by `policy`.

    `name` (the platform) prefixes log lines and the `LanesClosed` messages.
    """

    def __init__(self, nursery: trio.Nursery, policy: PacingPolicy[K], *, name: str) -> None:
        self._nursery = nursery
        self._policy = policy
        self._name = name
        self._lanes: dict[K, _Lane] = {}
        self._idle = trio.Event()
        self._idle.set()

    def put(self, lane_key: K, write: Write[R]) -> Write[R]:
        """Queue `write` in `lane_key`'s lane; returns the write that will carry it: `write`
        itself, or the queued write with the same key that now carries its action."""
        lane = self._lanes.get(lane_key)
        if lane is not None:
            if write.key is not None:
                for queued in lane.queue:
                    if queued.key == write.key:
                        queued.action = write.action  # the newest content, in the older one's place
                        return cast(Write[R], queued)
            lane.queue.append(write)
            return write
        lane = self._lanes[lane_key] = _Lane(deque([write]))
        self._idle = trio.Event() if self._idle.is_set() else self._idle
        try:
            self._nursery.start_soon(self._work, lane_key, lane)
        except RuntimeError:  # the nursery is closed: the adapter is shutting down
            del self._lanes[lane_key]
            self._set_idle_if_empty()
            write.finish(None, self._closed(write))
        return write

    def pending(self, lane_key: K) -> int:
        """How many writes wait in `lane_key`'s lane (not counting one being sent)."""
        lane = self._lanes.get(lane_key)
        return len(lane.queue) if lane is not None else 0

    def queued(self) -> int:
        """How many writes wait in every lane."""
        return sum(len(lane.queue) for lane in self._lanes.values())

    async def drained(self) -> None:
        """Return once every lane is empty: each write was delivered or given up on."""
        await self._idle.wait()

    async def _work(self, lane_key: K, lane: _Lane) -> None:
        current: Write[Any] | None = None
        try:
            while lane.queue:
                await self._wait_turn(lane_key, lane.queue)
                current = lane.queue.popleft()
                retry_in = await self._try(lane_key, current)
                if retry_in is not None:
                    lane.queue.appendleft(current)  # keeps its place; newer edits may join it
                    current = None
                    await trio.sleep(retry_in)
                current = None
        finally:
            del self._lanes[lane_key]
            # Shutting down: nobody may wait forever on a write that will not happen now.
            for write in [*([current] if current is not None else []), *lane.queue]:
                write.finish(None, self._closed(write))
            lane.queue.clear()
            self._set_idle_if_empty()

    async def _wait_turn(self, lane_key: K, queue: deque[Write[Any]]) -> None:
        """Wait until the head of the lane may go. It stays queued meanwhile (open to coalescing)."""
        head = queue[0]
        if head._retry_until is None:
            retry_for_s = head.retry_for_s if head.retry_for_s is not None else self._policy.retry_for_s
            head._retry_until = trio.current_time() + retry_for_s
        while True:
            now = trio.current_time()
            ready = self._policy.ready_at(lane_key, head, now)
            if ready <= now:
                return
            await trio.sleep_until(ready)

    async def _try(self, lane_key: K, write: Write[Any]) -> float | None:
        """One try of `write`: settle it, or say how long to wait before the next."""
        write.tries += 1
        self._policy.tried(lane_key, write, trio.current_time())
        try:
            result = await write.action()
        except TryAgain as refused:
            delay = refused.after_s if refused.after_s is not None else self._policy.backoff_s(write.tries - 1)
            assert write._retry_until is not None
            if trio.current_time() + delay > write._retry_until:
                self._fail(lane_key, write, refused.give_up(write.tries))
                return None
            log.info("%s: retrying %s in %.1fs (%s)", self._name, write.describe, delay, refused.reason)
            return delay
        except Exception as exc:  # the caller (or the log) hears about it; the lane goes on
            self._fail(lane_key, write, exc)
        else:
            write.finish(result, None)
        finally:
            self._policy.finished(lane_key, write, trio.current_time())
        return None

    def _fail(self, lane_key: K, write: Write[Any], error: Exception) -> None:
        level = logging.DEBUG if write.awaited else logging.WARNING
        log.log(level, "%s: %s in %s failed: %s", self._name, write.describe, lane_key, error)
        write.finish(None, error)

    def _closed(self, write: Write[Any]) -> LanesClosed:
        return LanesClosed(f"{self._name} {write.describe} was not sent: shutting down")

    def _set_idle_if_empty(self) -> None:
        if not self._lanes:
            self._idle.set()
