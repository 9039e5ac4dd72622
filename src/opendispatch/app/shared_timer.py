"""One timer for the many tasks that wake at a chosen time: each live job's output flushes.

Why not `trio.sleep_until` in every task: a trio sleep is a cancel scope with a deadline, and
its expiry raises `Cancelled` through the sleeper. Measured here, that costs about 70 µs per
wake-up against about 20 µs for waking on an event, and a thousand streaming jobs flush four
times a second each (docs/performance.md, round 4). Times are rounded up to a tick of
`tick_s`, so the tasks due in one tick share one event and this task's one deadline.
"""

from __future__ import annotations

import heapq
import math

import trio

#: Rounding of wake-up times: live output may reach chat up to this much later.
DEFAULT_TICK_S = 0.01


class SharedTimer:
    """`sleep_until` for many tasks, run by one task (`run`, started in the service nursery).

    Until `run` has started (or after it stopped) `sleep_until` is trio's own, so a component
    built without the timer's task still works, only at trio's cost.
    """

    def __init__(self, tick_s: float = DEFAULT_TICK_S) -> None:
        if tick_s <= 0:
            raise ValueError("tick_s must be positive")
        self.tick_s = tick_s
        self._due: dict[int, trio.Event] = {}  # tick number -> the event its sleepers wait on
        self._ticks: list[int] = []  # heap of the tick numbers in `_due`
        self._earlier_tick = trio.Event()  # set when a tick before the awaited one appears
        self._running = False

    async def sleep_until(self, deadline: float) -> None:
        """Return at `deadline` or up to one tick after it (before it only if `run` stops)."""
        if not self._running:
            await trio.sleep_until(deadline)
            return
        tick = math.ceil(deadline / self.tick_s)
        event = self._due.get(tick)
        if event is None:
            event = self._due[tick] = trio.Event()
            heapq.heappush(self._ticks, tick)
            if self._ticks[0] == tick:
                self._earlier_tick.set()
        await event.wait()
        if self._running and trio.current_time() < deadline:  # a tick's float time may round a hair early
            await trio.sleep_until(deadline)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._running = True
        try:
            task_status.started()
            while True:
                self._wake_due(trio.current_time())
                next_at = self._ticks[0] * self.tick_s if self._ticks else math.inf
                with trio.move_on_at(next_at):
                    await self._earlier_tick.wait()
                self._earlier_tick = trio.Event()
        finally:
            self._running = False
            # Nobody will wake the sleepers now: let them return (early) rather than hang.
            for event in self._due.values():
                event.set()
            self._due.clear()
            self._ticks.clear()

    def _wake_due(self, now: float) -> None:
        while self._ticks and self._ticks[0] * self.tick_s <= now:
            self._due.pop(heapq.heappop(self._ticks)).set()
