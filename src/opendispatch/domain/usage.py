"""What agents cost, summed per user and channel (`/od-usage`): pure sums over stored jobs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

import attrs

from .job import Job
from .job_spec import format_cost, format_duration, format_tokens


@attrs.frozen
class UsageRow:
    user: str
    channel: str
    jobs: int = 0
    #: Jobs whose agent reported a cost (shell jobs and old sidecars report none).
    costed_jobs: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, job: Job) -> UsageRow:
        return with_job(self, job)


@attrs.frozen
class UsageBar:
    """One bar of the web view's usage charts: a day, a channel or a user."""

    label: str
    jobs: int = 0
    costed_jobs: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, job: Job) -> UsageBar:
        return with_job(self, job)


_Sums = TypeVar("_Sums", UsageRow, UsageBar)


def with_job(sums: _Sums, job: Job) -> _Sums:
    """`sums` with one more job counted: its cost and tokens when its agent reported them."""
    summary = job.agent
    if summary is None:
        return attrs.evolve(sums, jobs=sums.jobs + 1)
    return attrs.evolve(
        sums,
        jobs=sums.jobs + 1,
        costed_jobs=sums.costed_jobs + (summary.cost_usd is not None),
        cost_usd=sums.cost_usd + (summary.cost_usd or 0.0),
        input_tokens=sums.input_tokens + summary.input_tokens,
        output_tokens=sums.output_tokens + summary.output_tokens,
    )


def usage_by(jobs: Iterable[Job], key: Callable[[Job], str], *, order: str = "cost") -> list[UsageBar]:
    """Jobs summed per `key`: most expensive first (`cost`), or by label (`label`, for days)."""
    bars: dict[str, UsageBar] = {}
    for job in jobs:
        label = key(job)
        bars[label] = bars.get(label, UsageBar(label)).add(job)
    if order == "label":
        return sorted(bars.values(), key=lambda bar: bar.label)
    return sorted(bars.values(), key=lambda bar: (-bar.cost_usd, -bar.jobs, bar.label))


def summarize_usage(jobs: Iterable[Job]) -> list[UsageRow]:
    """One row per (user, channel), most expensive first; each job counted once."""
    rows: dict[tuple[str, str], UsageRow] = {}
    for job in jobs:
        key = (job.requested_by.name, job.conversation.channel)
        rows[key] = rows.get(key, UsageRow(user=key[0], channel=key[1])).add(job)
    return sorted(rows.values(), key=lambda row: (-row.cost_usd, -row.jobs, row.user, row.channel))


def _period(seconds: float) -> str:
    """`7 days`, `12 hours`: how `/od-usage` names the period it summed."""
    whole = int(seconds)
    if whole % 86400 == 0:
        days = whole // 86400
        return f"{days} day{'s' if days != 1 else ''}"
    return format_duration(seconds)


def render_usage(rows: list[UsageRow], *, since_s: float, everyone: bool, user_name: str) -> str:
    whose = "everyone" if everyone else user_name
    title = f"Agent usage of {whose}, last {_period(since_s)}"
    if not rows:
        return f"{title}\nNo jobs in that time."
    lines = [title]
    for row in rows:
        lines.append(
            f"{row.user} in {row.channel}: {row.jobs} job{'s' if row.jobs != 1 else ''} · "
            f"{format_cost(row.cost_usd)} · {format_tokens(row.input_tokens)} tokens in · "
            f"{format_tokens(row.output_tokens)} out"
        )
    total = sum(row.cost_usd for row in rows)
    jobs = sum(row.jobs for row in rows)
    lines.append(f"Total: {jobs} job{'s' if jobs != 1 else ''} · {format_cost(total)}")
    return "\n".join(lines)
