"""Numbered records handed on in number order, each number once.

A sidecar numbers its batches (`seq`) and may send them over several connections, or again
after a lost answer; the live view must show each once and in order. Records past a gap wait
here until the gap is filled (the sidecar resends until acknowledged, so gaps close); at a
job's end nothing more will fill one, and what waits is released in order. Pure; one per job.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs

T = TypeVar("T")


@attrs.define
class InSeqOrder(Generic[T]):
    #: The number the next record handed on must have.
    next_seq: int = 0
    _held: dict[int, T] = attrs.field(factory=dict, repr=False)

    def accept(self, seq: int, item: T) -> list[T]:
        """The records that may go on now, in order: none when `seq` was handed on already or
        waits for an earlier one (a repeat of a waiting one replaces it)."""
        if seq < self.next_seq:
            return []
        self._held[seq] = item
        ready: list[T] = []
        while self.next_seq in self._held:
            ready.append(self._held.pop(self.next_seq))
            self.next_seq += 1
        return ready

    def release_all(self) -> list[T]:
        """Everything still waiting, in order (at the end: no gap will be filled any more)."""
        ready = [self._held.pop(seq) for seq in sorted(self._held)]
        return ready
