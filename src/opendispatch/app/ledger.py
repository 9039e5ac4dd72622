"""One place where jobs change, one job at a time.

The job runner (timeouts, cancels, spawn results) and the webhook (sidecar reports) both
move jobs; a per-job lock around read-modify-write keeps either from overwriting the other.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from ..domain.job import Job
from ..ports.job_store import JobStore
from ..domain.job_events import events_between
from .job_events import JobEvents
from .job_watch import JobWatch
from .live_jobs import LiveJobs


class JobLedger:
    def __init__(self, store: JobStore, events: JobEvents | None = None) -> None:
        self.store = store
        #: Where the events of every change saved here are handled (app/job_events.py).
        self.events = events if events is not None else JobEvents()
        self._locks: dict[str, trio.Lock] = {}

    @property
    def live(self) -> LiveJobs:
        """The jobs this process supervises: their cached `Job` follows every change saved here."""
        return self.events.live

    @property
    def watch(self) -> JobWatch:
        return self.events.watch

    def _lock(self, job_id: str) -> trio.Lock:
        lock = self._locks.get(job_id)
        if lock is None:
            lock = self._locks[job_id] = trio.Lock()
        return lock

    async def change(self, job_id: str, update: Callable[[Job], Job]) -> Job:
        """Apply `update` to the stored job and save it; `update` may raise to refuse."""
        async with self._lock(job_id):
            job = await self.store.get(job_id)
            changed = update(job)
            if changed != job:
                await self._save(job, changed)
            return changed

    async def change_if_possible(self, job_id: str, update: Callable[[Job], Job | None]) -> Job:
        """Like `change`, but `update` returns None to leave the job as it is."""
        async with self._lock(job_id):
            job = await self.store.get(job_id)
            changed = update(job)
            if changed is None or changed == job:
                return job
            await self._save(job, changed)
            return changed

    async def _save(self, before: Job, changed: Job) -> None:
        await self.store.save(changed)
        self.events.handle(events_between(before, changed))

    def forget(self, job_id: str) -> None:
        lock = self._locks.get(job_id)
        if lock is not None and not lock.locked() and lock.statistics().tasks_waiting == 0:
            del self._locks[job_id]
