"""Seq-less output batches of one job are stored in the order their requests arrived.

Why: the seed's sidecar (`{jobId, text}`, no `seq`) posts a batch without waiting for the
previous one's answer, so two batches can be in flight on two connections. When both
requests are in the kernel before the server looks, the server's tasks for them run in an
order nobody chose (trio even randomises it on purpose), and the later batch was stored
first in half the runs (tests/adapters/test_unsequenced_order.py). The listener stamps each
request with when its bytes arrived (the kernel's receive timestamp where it gives one);
this rule lets a batch be stored only once `window_s` has passed since it arrived and no
batch that arrived before it is still waiting. A batch whose request took longer than the
window to be read and parsed cannot overtake one already stored: the window bounds the
guarantee, and it only delays seq-less batches (the sidecars this project ships number
theirs, and `LiveJob.accept` orders those by seq).
"""

from __future__ import annotations

import heapq

import attrs

#: Long enough for a server task that woke in the same round as another to have parsed
#: its request (a round is tens of milliseconds on a loaded server, docs/performance.md).
DEFAULT_ARRIVAL_WINDOW_S = 0.1


@attrs.frozen(order=True)
class ArrivalTicket:
    arrived_at: float
    #: Tie-break for equal stamps: the order the batches entered.
    number: int

    def due(self, window_s: float) -> float:
        return self.arrived_at + window_s


@attrs.define
class ArrivalOrder:
    """The seq-less batches of one job waiting for their turn, earliest arrival first."""

    window_s: float = DEFAULT_ARRIVAL_WINDOW_S
    _waiting: list[ArrivalTicket] = attrs.Factory(list)
    _entered: int = 0

    def enter(self, arrived_at: float) -> ArrivalTicket:
        ticket = ArrivalTicket(arrived_at, self._entered)
        self._entered += 1
        heapq.heappush(self._waiting, ticket)
        return ticket

    def may_go(self, ticket: ArrivalTicket, now: float) -> bool:
        """Its window has passed and nothing that arrived before it still waits."""
        return bool(self._waiting) and self._waiting[0] == ticket and now >= ticket.due(self.window_s)

    def leave(self, ticket: ArrivalTicket) -> None:
        """Stored, refused or abandoned: the next one may go."""
        if self._waiting and self._waiting[0] == ticket:
            heapq.heappop(self._waiting)
        else:
            self._waiting.remove(ticket)
            heapq.heapify(self._waiting)

    @property
    def is_empty(self) -> bool:
        return not self._waiting
