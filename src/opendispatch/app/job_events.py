"""The one place where a saved change of a job is acted on (domain/job_events.py says what).

The ledger publishes the events of every change it saves; nothing else reassigns a live
job's cache, shows it running or wakes its task.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..domain.job_events import JobChanged, JobEnded, JobEvent, JobRunning
from .job_watch import JobWatch
from .live_jobs import LiveJobs


class JobEvents:
    def __init__(self, live: LiveJobs | None = None, watch: JobWatch | None = None) -> None:
        #: The jobs this process supervises.
        self.live = live if live is not None else LiveJobs()
        #: Whoever watches jobs from outside chat (the web view's live pages).
        self.watch = watch if watch is not None else JobWatch()

    def handle(self, events: Iterable[JobEvent]) -> None:
        for event in events:
            match event:
                case JobChanged(job=job):
                    self.live.refresh(job)
                    self.watch.changed(job.id)
                case JobRunning(job=job):
                    live = self.live.get(job.id)
                    if live is not None:
                        live.show_running()
                case JobEnded(job=job):
                    live = self.live.get(job.id)
                    if live is not None:
                        live.finished.set()  # its task posts the card and destroys the sprite
