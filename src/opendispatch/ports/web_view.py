"""What the web adapter asks of the application (inbound): pages a grant may read, and a
wake-up when a job changes. app/web_view.py implements it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import trio

from ..domain.job import Artifact, Job
from ..domain.web_grants import WebGrant
from ..domain.web_view import PAGE_LINES, JobFilters, JobPage, JobsPage, UsageReport


class WebPages(Protocol):
    wall_clock: Callable[[], float]

    def open(self, grant_text: object) -> WebGrant:
        """The grant a request carries, or `InvalidGrant`."""
        ...

    async def job(self, grant: WebGrant, job_id: str) -> Job:
        """The job when the grant may see it; `UnknownJob` otherwise (ids cannot be probed)."""
        ...

    async def job_page(self, grant: WebGrant, job_id: str) -> JobPage: ...

    async def lines_since(
        self, grant: WebGrant, job_id: str, start: int, limit: int = PAGE_LINES
    ) -> tuple[Job, list[str]]: ...

    async def output(self, grant: WebGrant, job_id: str) -> list[str]: ...

    async def transcript(self, grant: WebGrant, job_id: str) -> list[str]: ...

    async def artifact_file(self, grant: WebGrant, job_id: str, name: str) -> tuple[Artifact, bytes]: ...

    async def jobs_page(self, grant: WebGrant, filters: JobFilters) -> JobsPage: ...

    async def usage(self, grant: WebGrant, days: int) -> UsageReport: ...

    def next_change(self, job_id: str) -> trio.Event:
        """Set at the job's next change (state or output). Take it *before* reading the job,
        so a change between the read and the wait still wakes the caller."""
        ...

    def forget_change(self, job_id: str, event: trio.Event) -> None:
        """The caller stopped waiting on `event`."""
        ...
