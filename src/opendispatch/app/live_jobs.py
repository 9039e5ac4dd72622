"""The jobs this process supervises, by id: the one owner of what is live here.

`JobRunner` starts and ends entries; everyone else reads. A live job's cached `Job` is never
assigned by its readers: the ledger refreshes it with every change it saves (`refresh`), so
the cache is what the store holds, whichever path changed it.
"""

from __future__ import annotations

from collections.abc import Iterator, KeysView, ValuesView

from ..domain.job import Job
from .live_job import LiveJob


class LiveJobs:
    def __init__(self) -> None:
        self._jobs: dict[str, LiveJob] = {}
        #: The dict's own `get`: the relay asks once per request, so no wrapper call.
        self.get = self._jobs.get

    def start(self, live: LiveJob) -> None:
        self._jobs[live.job.id] = live

    def end(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)

    def refresh(self, job: Job) -> None:
        """The ledger saved a newer value of `job`: a live job's cache follows it."""
        live = self._jobs.get(job.id)
        if live is not None:
            live.job = job

    def keys(self) -> KeysView[str]:
        return self._jobs.keys()

    def values(self) -> ValuesView[LiveJob]:
        return self._jobs.values()

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def __iter__(self) -> Iterator[str]:
        return iter(self._jobs)

    def __len__(self) -> int:
        return len(self._jobs)
