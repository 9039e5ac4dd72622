"""Wake-ups for whoever watches a job from outside chat (the web view's live pages).

The ledger (every change of a job) and the relay (every stored batch) call `changed`; a
watcher awaits `wait`. Why not poll the store: a page open on a job would read it every
fraction of a second for nothing, and still show lines late. Why not reuse the live job's
own event: that one belongs to the chat pump, which consumes it.

Cheap when nobody watches: `changed` is one dictionary lookup.
"""

from __future__ import annotations

import trio


class JobWatch:
    def __init__(self) -> None:
        self._events: dict[str, trio.Event] = {}

    def changed(self, job_id: str) -> None:
        """The job or its output changed: wake everyone waiting on it."""
        event = self._events.pop(job_id, None)
        if event is not None:
            event.set()

    def event_for(self, job_id: str) -> trio.Event:
        """The event the next change of `job_id` sets. Take it *before* reading the job, so a
        change between the read and the wait is not missed."""
        event = self._events.get(job_id)
        if event is None:
            event = self._events[job_id] = trio.Event()
        return event

    def forget(self, job_id: str, event: trio.Event) -> None:
        """A watcher left: drop its event unless someone else still waits on it."""
        if self._events.get(job_id) is event and event.statistics().tasks_waiting == 0:
            del self._events[job_id]

    @property
    def watched(self) -> int:
        return len(self._events)
