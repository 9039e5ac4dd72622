"""What agents cost, summed per user and channel (`/od-usage`): pure sums over stored jobs."""

from __future__ import annotations

from collections.abc import Iterable

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
        summary = job.agent
        if summary is None:
            return attrs.evolve(self, jobs=self.jobs + 1)
        return attrs.evolve(
            self,
            jobs=self.jobs + 1,
            costed_jobs=self.costed_jobs + (summary.cost_usd is not None),
            cost_usd=self.cost_usd + (summary.cost_usd or 0.0),
            input_tokens=self.input_tokens + summary.input_tokens,
            output_tokens=self.output_tokens + summary.output_tokens,
        )


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
