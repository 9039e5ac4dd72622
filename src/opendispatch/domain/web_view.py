"""The web view's rules: who sees which job, what the list's filters mean, steps and usage.

Pure: the application layer (app/web_view.py) reads the store and applies these; the web
adapter only renders what it is handed.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence

import attrs

from .errors import UsageError
from .job import Conversation, Job, JobState
from .job_spec import AgentKind
from .ownership import Ownership
from .session import Session
from .usage import UsageBar
from .web_grants import WebGrant

#: Jobs on one page of `/jobs`.
PAGE_SIZE = 50
#: Lines of output a job page renders itself; the rest is one click away (download), and
#: live lines arrive after these. A browser renders 2,000 lines at once without strain.
PAGE_LINES = 2000


def may_view(grant: WebGrant, job: Job, ownership: Ownership) -> bool:
    """A job link opens its own job; a list grant whatever chat would let its user read.

    Chat's rule (ownership.py) applies to both: the owner and admins, and channel members
    from the job's channel when the operator allows it.
    """
    if grant.job_id is not None and grant.job_id != job.id:
        return False
    return ownership.may_read(grant.user, job.requested_by, job.conversation, grant.asked_in)


def channel_key(conversation: Conversation) -> str:
    """How the web view names a channel: `platform/channel` (ids, not names)."""
    return f"{conversation.platform}/{conversation.channel}"


def parse_channel_key(text: str) -> Conversation:
    platform, sep, channel = text.partition("/")
    if not sep or not platform or not channel:
        raise UsageError(f"channel must be platform/channel (for example slack/C0123), not {text!r}")
    return Conversation(platform, channel)


def _date(text: str, what: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{what} must be a date such as 2026-12-03, not {text!r}") from None


def _start_of(day: datetime.date) -> float:
    """The first second of a UTC day, in wall-clock seconds."""
    return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.timezone.utc).timestamp()


@attrs.frozen
class JobFilters:
    """`/jobs?status=&user=&channel=&repo=&agent=&since=&until=&page=`, validated."""

    status: JobState | None = None
    user: str | None = None
    channel: Conversation | None = None
    repo: str | None = None
    agent: AgentKind | None = None
    #: UTC days, inclusive: `since` from its first second, `until` to its last.
    since: datetime.date | None = None
    until: datetime.date | None = None
    page: int = 1

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> JobFilters:
        """The filters of a query string; `UsageError` (a sentence for the page) when one is bad."""

        def given(name: str) -> str | None:
            value = args.get(name, "").strip()
            return value or None

        status = given("status")
        agent = given("agent")
        channel = given("channel")
        since, until = given("since"), given("until")
        page_text = given("page") or "1"
        if not page_text.isascii() or not page_text.isdigit() or not 1 <= int(page_text) <= 100_000:
            raise UsageError(f"page must be a whole number from 1, not {page_text!r}")
        try:
            state = JobState(status) if status else None
        except ValueError:
            raise UsageError(f"status must be one of {', '.join(s.value for s in JobState)}") from None
        try:
            kind = AgentKind(agent) if agent else None
        except ValueError:
            raise UsageError(f"agent must be one of {', '.join(k.value for k in AgentKind)}") from None
        filters = cls(
            status=state,
            user=given("user"),
            channel=parse_channel_key(channel) if channel else None,
            repo=given("repo"),
            agent=kind,
            since=_date(since, "since") if since else None,
            until=_date(until, "until") if until else None,
            page=int(page_text),
        )
        if filters.since and filters.until and filters.since > filters.until:
            raise UsageError("since must not be after until")
        return filters

    @property
    def created_after(self) -> float | None:
        return None if self.since is None else _start_of(self.since)

    @property
    def created_before(self) -> float | None:
        return None if self.until is None else _start_of(self.until) + 86400

    @property
    def offset(self) -> int:
        return (self.page - 1) * PAGE_SIZE

    def query(self, **changes: object) -> dict[str, str]:
        """These filters as query arguments (for links: the next page, a clicked channel)."""
        values = attrs.evolve(self, **changes)  # type: ignore[arg-type]
        out = {
            "status": values.status.value if values.status else "",
            "user": values.user or "",
            "channel": channel_key(values.channel) if values.channel else "",
            "repo": values.repo or "",
            "agent": values.agent.value if values.agent else "",
            "since": values.since.isoformat() if values.since else "",
            "until": values.until.isoformat() if values.until else "",
            "page": str(values.page) if values.page != 1 else "",
        }
        return {name: value for name, value in out.items() if value}


def merge_newest_first(groups: Iterable[Sequence[Job]], *, offset: int, limit: int) -> list[Job]:
    """Several newest-first lists (a user's jobs, their channel's) as one page, each job once."""
    seen: dict[str, Job] = {}
    for group in groups:
        for job in group:
            seen.setdefault(job.id, job)
    ordered = sorted(seen.values(), key=lambda job: (-job.created_at, job.id))
    return ordered[offset : offset + limit]


@attrs.frozen
class WebStep:
    """One agent step as the page lists it: its label and `running`, `ok` or `failed`."""

    label: str
    state: str


_STEP_MARKS = {"▶": "running", "✓": "ok", "✗": "failed"}


def step_of_line(line: str) -> WebStep | None:
    """The step a stored output line records (agent_events.describe wrote it), or None.

    A finished step's line may carry the failure's excerpt after ` — `; the label is before it.
    """
    state = _STEP_MARKS.get(line[:1])
    if state is None or line[1:2] != " ":
        return None
    label = line[2:]
    if state == "failed" and " — " in label:
        label = label.split(" — ", 1)[0]
    return WebStep(label=label, state=state)


def fold_steps(lines: Iterable[str]) -> list[WebStep]:
    """The steps of a job's output in order, each finished line settling its running one."""
    steps: list[WebStep] = []
    for line in lines:
        step = step_of_line(line)
        if step is None:
            continue
        if step.state != "running":
            for index in range(len(steps) - 1, -1, -1):
                if steps[index].label == step.label and steps[index].state == "running":
                    steps[index] = step
                    break
            else:
                steps.append(step)
            continue
        steps.append(step)
    return steps


def day_of(job: Job) -> str:
    return datetime.datetime.fromtimestamp(job.created_at, datetime.timezone.utc).date().isoformat()


def user_of(job: Job) -> str:
    return job.requested_by.name


def channel_of(job: Job) -> str:
    return channel_key(job.conversation)


@attrs.frozen
class JobsPage:
    jobs: tuple[Job, ...]
    filters: JobFilters
    has_next: bool
    sessions: tuple[Session, ...]
    everyone: bool


@attrs.frozen
class JobPage:
    job: Job
    #: The last `PAGE_LINES` stored lines, starting at line `first_line` (0-based).
    lines: tuple[str, ...]
    first_line: int
    total_lines: int
    steps: tuple[WebStep, ...]


@attrs.frozen
class UsageReport:
    days: int
    by_day: tuple[UsageBar, ...]
    by_channel: tuple[UsageBar, ...]
    by_user: tuple[UsageBar, ...]
    jobs: int
    cost_usd: float
    everyone: bool
    #: More jobs than `USAGE_MAX_JOBS` fell in the period: the sums cover the newest ones.
    capped: bool
