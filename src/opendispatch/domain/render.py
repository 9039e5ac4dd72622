"""The canonical plain-text form of every chat message.

The console prints exactly this, and every richer adapter (Block Kit, embeds, Adaptive Cards)
uses it as the notification/fallback text, so the facts a user needs (job id, state, where it
failed, who cancelled it, how to see more) must all be here. Pure: time arrives inside the
message values (`elapsed_s`, `duration_s`, `now`), never from a clock.
"""

from __future__ import annotations

import datetime

from typing import assert_never

from .job import Job, JobState
from .job_spec import format_duration
from .messages import (
    ChatMessage,
    JobAccepted,
    JobCard,
    JobTable,
    LiveOutput,
    LogExcerpt,
    Notice,
)

STATE_ICONS: dict[JobState, str] = {
    JobState.QUEUED: "⏳",
    JobState.STARTING: "🚀",
    JobState.RUNNING: "🏃",
    JobState.SUCCEEDED: "✅",
    JobState.FAILED: "❌",
    JobState.CANCELLED: "🛑",
    JobState.TIMED_OUT: "⏰",
    JobState.LOST: "❓",
}


def render_state(state: JobState) -> str:
    """Icon and word (`❌ failed`, `⏰ timed out`), shared so all platforms name states alike."""
    return f"{STATE_ICONS[state]} {state_word(state)}"


def state_word(state: JobState) -> str:
    """The state as a reader would say it: `timed out`, not `timed_out`."""
    return state.value.replace("_", " ")


def render_text(message: ChatMessage) -> str:
    """Render any chat message as plain text, lines joined by newlines."""
    return "\n".join(render_lines(message))


def render_lines(message: ChatMessage) -> list[str]:
    """The same rendering as a list of lines, for adapters that decorate line by line."""
    if isinstance(message, Notice):
        return message.text.split("\n")
    if isinstance(message, JobAccepted):
        return _accepted_lines(message)
    if isinstance(message, LiveOutput):
        return _live_output_lines(message)
    if isinstance(message, JobCard):
        return _card_lines(message)
    if isinstance(message, JobTable):
        return _table_lines(message)
    if isinstance(message, LogExcerpt):
        return _log_lines(message)
    assert_never(message)


def logs_hint(job_id: str) -> str:
    return f"/od-logs {job_id}"


def omitted_line(job_id: str, omitted: int) -> str:
    """The line standing in for output that did not fit, telling the reader where it is."""
    noun = "line" if omitted == 1 else "lines"
    return f"… {omitted} earlier {noun} not shown ({logs_hint(job_id)} for all)"


def live_output_header(message: LiveOutput) -> str:
    parts = [f"Output of {message.job.id}", f"⏱ {format_duration(message.elapsed_s)}"]
    if message.page > 0:
        parts.append(f"page {message.page + 1}")
    if message.sealed:
        parts.append("done")
    return " · ".join(parts)


def _accepted_lines(message: JobAccepted) -> list[str]:
    job = message.job
    return [
        f"▶ Job {job.id} queued: {job.spec.summary()}",
        f"Requested by {job.requested_by.name} · timeout {format_duration(job.spec.timeout_s)}",
        f"/od-cancel {job.id} to stop it",
    ]


def _live_output_lines(message: LiveOutput) -> list[str]:
    lines = [live_output_header(message)]
    if message.omitted > 0:
        lines.append(omitted_line(message.job.id, message.omitted))
    lines.extend(message.lines)
    return lines


def _card_lines(message: JobCard) -> list[str]:
    job = message.job
    lines = [_card_status_line(job, message.duration_s), _where_line(job)]
    outcome = _outcome_line(job)
    if outcome:
        lines.append(outcome)
    lines.extend(f"{artifact.name}: {artifact.url}" for artifact in job.artifacts)
    lines.append("Last lines:" if message.tail else "No output.")
    lines.extend(message.tail)
    if message.total_lines > len(message.tail):
        lines.append(f"({message.total_lines} lines in total: {logs_hint(job.id)})")
    return lines


def _card_status_line(job: Job, duration_s: float) -> str:
    parts = [f"{STATE_ICONS[job.state]} Job {job.id} {state_word(job.state)}"]
    if job.exit_code is not None:
        parts.append(f"exit code {job.exit_code}")
    parts.append(f"took {format_duration(duration_s)}")
    return " · ".join(parts)


def _where_line(job: Job) -> str:
    return f"{job.spec.summary()} · requested by {job.requested_by.name}"


def _at_utc(epoch: float | None) -> str:
    """` at 14:03:07 UTC` for a wall-clock timestamp; chat readers are in many time zones."""
    if epoch is None:
        return ""
    return " at " + datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc).strftime("%H:%M:%S UTC")


def _outcome_line(job: Job) -> str | None:
    """Why the job ended, when it did not simply succeed."""
    if job.state is JobState.CANCELLED:
        return f"Cancelled by {job.cancelled_by or 'someone'}{_at_utc(job.finished_at)}"
    if job.state is JobState.TIMED_OUT:
        return f"Timed out: it ran past its {format_duration(job.spec.timeout_s)} timeout"
    if job.failure is None:
        return None
    if job.state is JobState.LOST:
        return f"Lost at {job.failure.stage.value}: {job.failure.reason}"
    return f"Failed at {job.failure.stage.value}: {job.failure.reason}"


def _table_lines(message: JobTable) -> list[str]:
    if not message.jobs:
        return [message.title, message.empty_text]
    return [message.title, *(_table_row(job, message.now) for job in message.jobs)]


def _table_row(job: Job, now: float) -> str:
    age = format_duration(max(0.0, now - job.created_at))
    return (
        f"{job.id}  {render_state(job.state):<13} {age:>7}  "
        f"{job.spec.summary()}  ({job.requested_by.name})"
    )


def _log_lines(message: LogExcerpt) -> list[str]:
    shown = len(message.lines)
    header = f"Logs of {message.job.id} · showing {shown} of {message.total_lines} lines"
    if not message.lines:
        return [header, "(no output stored)"]
    return [header, *message.lines]
