"""Waits each job's seq-less batches into the order their requests arrived (arrival_order.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ..domain.arrival_order import DEFAULT_ARRIVAL_WINDOW_S, ArrivalOrder


class ArrivalTurns:
    def __init__(self, window_s: float = DEFAULT_ARRIVAL_WINDOW_S) -> None:
        self.window_s = window_s
        self._orders: dict[str, tuple[ArrivalOrder, trio.lowlevel.ParkingLot]] = {}

    @asynccontextmanager
    async def turn(self, job_id: str, arrived_at: float) -> AsyncIterator[None]:
        """Enter once the batch's turn came; the next one goes when this block ends.

        `arrived_at` is on trio's clock. Cancelled or failed, the batch still leaves the
        line, so one stuck request cannot hold the job's later batches.
        """
        order, lot = self._orders.get(job_id) or self._orders.setdefault(
            job_id, (ArrivalOrder(self.window_s), trio.lowlevel.ParkingLot())
        )
        ticket = order.enter(arrived_at)
        try:
            await trio.sleep_until(ticket.due(self.window_s))
            while not order.may_go(ticket, trio.current_time()):
                await lot.park()
            yield
        finally:
            order.leave(ticket)
            lot.unpark_all()
            if order.is_empty:
                del self._orders[job_id]
