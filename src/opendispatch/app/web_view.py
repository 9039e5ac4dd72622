"""The web view's use cases: links with grants, and what a grant lets its holder read.

Uses only ports and domain rules; the web adapter renders the values returned here. Every
read checks the grant against chat's own rule (domain/web_view.may_view), so the page shows
nothing a chat command would not.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote, urlencode

import attrs
import trio

from ..domain.errors import NotAllowed, UnknownJob
from ..domain.job import Artifact, Conversation, Job, User
from ..domain.ownership import Ownership
from ..domain.redaction import Redactor
from ..domain.session import Session
from ..domain.web_grants import GrantIssuer, InvalidGrant, WebGrant
from ..domain.usage import usage_by
from ..domain.web_view import (
    PAGE_LINES,
    PAGE_SIZE,
    JobFilters,
    JobPage,
    JobsPage,
    UsageReport,
    channel_of,
    day_of,
    fold_steps,
    may_view,
    merge_newest_first,
    user_of,
)
from ..ports.job_store import JobStore
from ..ports.session_store import SessionStore
from .job_watch import JobWatch

#: How the application gets a job's web link for chat ("View live"); `no_link` when the web
#: view is off.
JobLink = Callable[[Job], "str | None"]


def no_link(job: Job) -> str | None:
    return None


#: `/usage` sums at most this many jobs (newest first) of the period it shows.
USAGE_MAX_JOBS = 20_000


@attrs.frozen
class WebLinks:
    """Links into the web view with a grant in them, for chat to hand out."""

    grants: GrantIssuer
    base_url: str
    wall_clock: Callable[[], float]
    #: How long a job's link works, and how long `/od-web`'s link to the list.
    job_link_s: float
    list_link_s: float

    def for_job(self, job: Job) -> str:
        """The job's page, for its owner (the card and first reply are posted for them)."""
        grant = WebGrant(
            user=job.requested_by,
            asked_in=job.conversation,
            expires_at=int(self.wall_clock() + self.job_link_s),
            job_id=job.id,
        )
        return f"{self.base_url}/jobs/{quote(job.id, safe='')}?" + urlencode({"grant": self.grants.issue(grant)})

    def for_list(self, user: User, asked_in: Conversation) -> tuple[str, int]:
        """The list of jobs `user` may read, and when the link expires (wall-clock seconds)."""
        expires_at = int(self.wall_clock() + self.list_link_s)
        grant = WebGrant(user=user, asked_in=Conversation(asked_in.platform, asked_in.channel), expires_at=expires_at)
        return f"{self.base_url}/jobs?" + urlencode({"grant": self.grants.issue(grant)}), expires_at


class WebView:
    def __init__(
        self,
        *,
        store: JobStore,
        sessions: SessionStore | None,
        grants: GrantIssuer,
        ownership: Ownership,
        redactor: Redactor,
        wall_clock: Callable[[], float],
        watch: JobWatch,
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.grants = grants
        self.ownership = ownership
        self.redactor = redactor
        self.wall_clock = wall_clock
        self.watch = watch

    def next_change(self, job_id: str) -> trio.Event:
        """Set at the job's next change (state or output); take it before reading the job."""
        return self.watch.event_for(job_id)

    def forget_change(self, job_id: str, event: trio.Event) -> None:
        self.watch.forget(job_id, event)

    def open(self, grant_text: object) -> WebGrant:
        """The grant a request carries, or `InvalidGrant`."""
        return self.grants.verify(grant_text, self.wall_clock())

    def _sees_everything(self, grant: WebGrant) -> bool:
        return grant.job_id is None and self.ownership.is_admin(grant.user)

    async def job(self, grant: WebGrant, job_id: str) -> Job:
        """The job, when the grant may see it; `UnknownJob` for a job it may not see either,
        so ids cannot be probed with a grant."""
        try:
            job = await self.store.get(job_id)
        except UnknownJob:
            raise UnknownJob(job_id) from None
        if not may_view(grant, job, self.ownership):
            raise UnknownJob(job_id)
        return job

    async def job_page(self, grant: WebGrant, job_id: str) -> JobPage:
        job = await self.job(grant, job_id)
        total = await self.store.output_line_count(job_id)
        first = max(0, total - PAGE_LINES)
        lines = await self.store.output_range(job_id, first)
        # Steps of the lines shown only: reading a 100,000-line job whole to fold its steps
        # tripled the page's time (bench/web_page); earlier steps are in the download.
        return JobPage(
            job=job,
            lines=tuple(self.redactor.redact(line) for line in lines),
            first_line=first,
            total_lines=first + len(lines),
            steps=tuple(fold_steps(lines)),
        )

    async def lines_since(self, grant: WebGrant, job_id: str, start: int, limit: int = PAGE_LINES) -> tuple[Job, list[str]]:
        """The job now and its lines from `start` (for the live stream)."""
        job = await self.job(grant, job_id)
        lines = await self.store.output_range(job_id, start, limit)
        return job, [self.redactor.redact(line) for line in lines]

    async def output(self, grant: WebGrant, job_id: str) -> list[str]:
        await self.job(grant, job_id)
        return [self.redactor.redact(line) for line in await self.store.output(job_id)]

    async def transcript(self, grant: WebGrant, job_id: str) -> list[str]:
        await self.job(grant, job_id)
        return [self.redactor.redact(line) for line in await self.store.transcript(job_id)]

    async def artifact_file(self, grant: WebGrant, job_id: str, name: str) -> tuple[Artifact, bytes]:
        job = await self.job(grant, job_id)
        artifact = job.artifact_named(name)
        content = await self.store.artifact_file(job_id, artifact.name) if artifact is not None else None
        if artifact is None or content is None:
            raise NotAllowed(f"{job_id} has no kept file named {name!r}.")
        return artifact, content

    async def jobs_page(self, grant: WebGrant, filters: JobFilters) -> JobsPage:
        """A page of the jobs the grant may read, newest first, with the filters applied."""
        if grant.job_id is not None:
            raise InvalidGrant()  # a job's link opens that job only
        want = PAGE_SIZE + 1  # one more tells whether there is a next page

        async def matching(*, user_id: str | None, channel: Conversation | None, offset: int, limit: int) -> list[Job]:
            return await self.store.recent(
                limit=limit,
                offset=offset,
                states=None if filters.status is None else {filters.status},
                user_id=user_id,
                channel=channel,
                created_after=filters.created_after,
                created_before=filters.created_before,
                repo=filters.repo,
                agent=None if filters.agent is None else filters.agent.value,
            )

        everyone = self._sees_everything(grant)
        if everyone:
            found = await matching(user_id=filters.user, channel=filters.channel, offset=filters.offset, limit=want)
        else:
            # Their own jobs, and their channel's when channel members may read (ownership.py).
            groups = []
            if filters.user in (None, grant.user.id):
                groups.append(await matching(user_id=grant.user.id, channel=filters.channel, offset=0, limit=filters.offset + want))
            own_channel = Conversation(grant.asked_in.platform, grant.asked_in.channel)
            if self.ownership.channel_members_may_read and filters.channel in (None, own_channel):
                groups.append(await matching(user_id=filters.user, channel=own_channel, offset=0, limit=filters.offset + want))
            found = merge_newest_first(groups, offset=filters.offset, limit=want)
        sessions: tuple[Session, ...] = ()
        if self.sessions is not None and filters.page == 1:
            live = await self.sessions.live_sessions()
            sessions = tuple(
                s
                for s in sorted(live, key=lambda s: -s.last_active_at)
                if everyone or self.ownership.may_read(grant.user, s.owner, s.conversation, grant.asked_in)
            )
        return JobsPage(
            jobs=tuple(found[:PAGE_SIZE]),
            filters=filters,
            has_next=len(found) > PAGE_SIZE,
            sessions=sessions,
            everyone=everyone,
        )

    async def usage(self, grant: WebGrant, days: int) -> UsageReport:
        """Cost and jobs per day, channel and user over the last `days` days."""
        if grant.job_id is not None:
            raise InvalidGrant()
        found = await self._jobs_since(grant, self.wall_clock() - days * 86400)
        jobs = found[:USAGE_MAX_JOBS]
        return UsageReport(
            days=days,
            by_day=tuple(usage_by(jobs, day_of, order="label")),
            by_channel=tuple(usage_by(jobs, channel_of)),
            by_user=tuple(usage_by(jobs, user_of)),
            jobs=len(jobs),
            cost_usd=sum((job.agent.cost_usd or 0.0) if job.agent else 0.0 for job in jobs),
            everyone=self._sees_everything(grant),
            capped=len(found) > USAGE_MAX_JOBS,
        )

    async def _jobs_since(self, grant: WebGrant, since: float) -> list[Job]:
        limit = USAGE_MAX_JOBS + 1
        if self._sees_everything(grant):
            return await self.store.recent(limit=limit, created_after=since)
        groups = [await self.store.recent(limit=limit, created_after=since, user_id=grant.user.id)]
        if self.ownership.channel_members_may_read:
            channel = Conversation(grant.asked_in.platform, grant.asked_in.channel)
            groups.append(await self.store.recent(limit=limit, created_after=since, channel=channel))
        return merge_newest_first(groups, offset=0, limit=limit)
