"""One timer for the many tasks that wake at a chosen time: each live job's output flushes.

Why not `trio.sleep_until` in every task: a trio sleep is a cancel scope with a deadline, and
its expiry raises `Cancelled` through the sleeper. Measured here, that costs about 70 µs per
wake-up against about 20 µs for waking on an event, and a thousand streaming jobs flush four
times a second each (docs/performance.md, round 4). Times are rounded up to a tick of
`tick_s`, so the tasks due in one tick share one event and this task's one deadline.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable

import attrs
import trio

#: Rounding of wake-up times: live output may reach chat up to this much later.
DEFAULT_TICK_S = 0.01


class _Tick:
    """What is due at one tick: the sleepers' shared event and the callbacks."""

    __slots__ = ("event", "calls")

    def __init__(self) -> None:
        self.event: trio.Event | None = None
        self.calls: dict[int, Callable[[], None]] = {}


class SharedTimer:
    """`sleep_until` and `call_at` for many tasks, run by one task (`run`, in the service nursery).

    Until `run` has started (or after it stopped) `sleep_until` is trio's own and `call_at`
    declines, so a component built without the timer's task still works, at trio's cost.
    """

    def __init__(self, tick_s: float = DEFAULT_TICK_S) -> None:
        if tick_s <= 0:
            raise ValueError("tick_s must be positive")
        self.tick_s = tick_s
        self._due: dict[int, _Tick] = {}  # tick number -> what is due then
        self._ticks: list[int] = []  # heap of the tick numbers in `_due`
        self._earlier_tick = trio.Event()  # set when a tick before the awaited one appears
        self._running = False
        self._call_ids = itertools.count()

    async def sleep_until(self, deadline: float) -> None:
        """Return at `deadline` or up to one tick after it (before it only if `run` stops)."""
        if not self._running:
            await trio.sleep_until(deadline)
            return
        _, tick = self._tick(deadline)
        if tick.event is None:
            tick.event = trio.Event()
        await tick.event.wait()
        if self._running and trio.current_time() < deadline:  # a tick's float time may round a hair early
            await trio.sleep_until(deadline)

    def call_at(self, deadline: float, callback: Callable[[], None]) -> TimerCall | None:
        """Call `callback` in the timer's task at `deadline` or up to a tick later.

        For a task that waits on something else and wants a wake-up by a time too (a job's
        output pump and its heartbeat): cheaper than a cancel scope with a deadline. The
        callback must be quick and must not raise. None when the timer is not running: then
        the caller needs its own deadline.
        """
        if not self._running:
            return None
        number, tick = self._tick(deadline)
        call_id = next(self._call_ids)
        tick.calls[call_id] = callback
        return TimerCall(number, call_id)

    def cancel(self, call: TimerCall) -> None:
        """The callback is not wanted any more (harmless if it already ran)."""
        tick = self._due.get(call.tick)
        if tick is not None:
            tick.calls.pop(call.call_id, None)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._running = True
        try:
            task_status.started()
            while True:
                self._run_due(trio.current_time())
                next_at = self._ticks[0] * self.tick_s if self._ticks else math.inf
                with trio.move_on_at(next_at):
                    await self._earlier_tick.wait()
                self._earlier_tick = trio.Event()
        finally:
            self._running = False
            # Nobody will wake the sleepers now: let them return (early) rather than hang.
            for tick in self._due.values():
                if tick.event is not None:
                    tick.event.set()
                for callback in tick.calls.values():
                    callback()
            self._due.clear()
            self._ticks.clear()

    def _tick(self, deadline: float) -> tuple[int, _Tick]:
        """The tick `deadline` rounds up to (its number and what is due then), made if new."""
        number = math.ceil(deadline / self.tick_s)
        tick = self._due.get(number)
        if tick is None:
            tick = self._due[number] = _Tick()
            heapq.heappush(self._ticks, number)
            if self._ticks[0] == number:
                self._earlier_tick.set()
        return number, tick

    def _run_due(self, now: float) -> None:
        while self._ticks and self._ticks[0] * self.tick_s <= now:
            tick = self._due.pop(heapq.heappop(self._ticks))
            if tick.event is not None:
                tick.event.set()
            for callback in tick.calls.values():
                callback()


@attrs.frozen
class TimerCall:
    """A pending `call_at`, to `cancel`."""

    tick: int
    call_id: int
