"""What the dispatcher keeps in memory for a job while it runs in this process."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import trio

from ..domain.job import Job
from ..domain.messages import MessageRef
from ..domain.output_buffer import OutputBuffer
from ..domain.redaction import Redactor


@attrs.define(eq=False)
class LiveJob:
    job: Job
    buffer: OutputBuffer
    redactor: Redactor
    started_ref: MessageRef | None = None
    page_refs: dict[int, MessageRef] = attrs.Factory(dict)
    next_seq: int = 0
    held: dict[int, tuple[str, ...]] = attrs.Factory(dict)
    saw_unsequenced: bool = False
    finished: trio.Event = attrs.Factory(trio.Event)
    done: trio.Event = attrs.Factory(trio.Event)
    cancel_scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    _output_changed: trio.Event = attrs.Factory(trio.Event)
    #: trio time the oldest line not yet shown in chat arrived (for the relay latency metric)
    pending_since: float | None = None

    def accept(self, seq: int | None, lines: Sequence[str], now: float) -> None:
        """Feed a stored batch to the chat buffer in `seq` order.

        Batches may arrive out of order over several connections; later ones wait here
        until the gap is filled (the sidecar retries until acknowledged, so gaps close).
        """
        if seq is None:
            self.saw_unsequenced = True
            self._append(lines, now)
            return
        if seq < self.next_seq:
            return
        self.held[seq] = tuple(lines)
        while self.next_seq in self.held:
            self._append(self.held.pop(self.next_seq), now)
            self.next_seq += 1

    def release_held(self, now: float) -> None:
        """At the end nothing more will fill a gap: show what we have, in order."""
        for seq in sorted(self.held):
            self._append(self.held.pop(seq), now)

    def _append(self, lines: Sequence[str], now: float) -> None:
        if self.pending_since is None:
            self.pending_since = now
        self.buffer.append(lines, now)
        self._output_changed.set()

    async def wait_output_changed(self) -> None:
        await self._output_changed.wait()
        self._output_changed = trio.Event()

    def poke(self) -> None:
        """Wake `wait_output_changed` without new output (a heartbeat is due)."""
        self._output_changed.set()

    def output_seen(self) -> None:
        """What changed so far is in hand (a flush is about to take it): wait for newer."""
        if self._output_changed.is_set():
            self._output_changed = trio.Event()
