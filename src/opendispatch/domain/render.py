"""The canonical plain-text form of every chat message.

The console prints exactly this, and every richer adapter (Block Kit, embeds, Adaptive Cards)
uses it as the notification/fallback text, so the facts a user needs (job id, state, where it
failed, who cancelled it, how to see more) must all be here. Pure: time arrives inside the
message values (`elapsed_s`, `duration_s`, `now`), never from a clock.
"""

from __future__ import annotations

import datetime
import shlex

import attrs

from typing import assert_never

from .agent_events import one_line
from .agent_progress import AgentSummary, ProgressView, Step
from .job import MAX_KEPT_ARTIFACT_BYTES, MAX_KEPT_ARTIFACT_FILES, Artifact, Job, JobState
from .job_spec import format_cost, format_duration, format_tokens
from .output_buffer import is_fence_line
from .approvals import ApprovalState
from .messages import (
    ApprovalPrompt,
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
    if isinstance(message, ApprovalPrompt):
        return approval_lines(message)
    assert_never(message)


def approval_lines(message: ApprovalPrompt) -> list[str]:
    """The prompt in words; adapters add their buttons (the same three commands)."""
    request = message.request
    lines = [f"✋ Job {message.job.id} asks to run {request.tool}" + (f": {request.detail}" if request.detail else "")]
    if request.reason:
        lines.append(f"Why: {request.reason}")
    if request.state is ApprovalState.PENDING:
        lines.append(
            f"Approve: /od-approve {request.id} · for the rest of the job: /od-approve {request.id} --job · "
            f"deny: /od-deny {request.id} (owner {message.job.requested_by.name} or an admin)"
        )
    else:
        who = f" by {request.decided_by}" if request.decided_by else ""
        scope = " for the rest of the job" if request.for_job else ""
        lines.append(f"{request.state.value.capitalize()}{who}{scope}.")
    return lines


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


#: What every rendering of a job's web link is called ("View live" on the first reply and the card).
VIEW_LIVE = "View live"


def view_live_line(web_url: str) -> str:
    """`View live: <url>`: the job's web page, as plain text shows it."""
    return f"{VIEW_LIVE}: {web_url}"


def _accepted_lines(message: JobAccepted) -> list[str]:
    job = message.job
    lines = [
        f"▶ Job {job.id} queued: {job.spec.summary()}",
        f"Requested by {job.requested_by.name} · timeout {format_duration(job.spec.timeout_s)}",
        f"/od-cancel {job.id} to stop it",
    ]
    if message.web_url:
        lines.append(view_live_line(message.web_url))
    return lines


#: What a live page says while the job runs but has printed nothing (the header has the time).
NO_OUTPUT_YET = "(running; no output yet)"


def _live_output_lines(message: LiveOutput) -> list[str]:
    lines = [live_output_header(message)]
    if message.omitted > 0:
        lines.append(omitted_line(message.job.id, message.omitted))
    lines.extend(message.lines)
    if not message.lines and not message.omitted and message.progress is None and not message.sealed:
        lines.append(NO_OUTPUT_YET)
    if message.progress is not None:
        lines.extend(progress_lines(message.progress))
    return lines


#: A card's last line is cut to this many characters: one 200 KB line (a minified bundle, a
#: JSON dump) must not become the card. The live view cuts long lines the same way.
CARD_LINE_CHARS = 500


def card_tail(lines: tuple[str, ...] | list[str], job_id: str) -> tuple[str, ...]:
    """The card's last lines, each cut to CARD_LINE_CHARS with a pointer to the whole line."""
    return tuple(
        line if len(line) <= CARD_LINE_CHARS
        else f"{line[:CARD_LINE_CHARS]}… ({len(line) - CARD_LINE_CHARS} more characters: {logs_hint(job_id)})"
        for line in lines
    )


#: How much of the agent's final answer a card shows before pointing to the full text.
ANSWER_CARD_CHARS = 1500
MAX_FILES_ON_CARD = 10


def step_text(step: Step) -> str:
    mark = "…" if step.ok is None else ("✓" if step.ok else "✗")
    return f"{mark} {step.label}"


def usage_text(input_tokens: int, output_tokens: int, cost_usd: float | None, *, estimate: bool = False) -> str:
    """`12.3k tokens in · 1.2k out · ~$0.04`: what the agent has used, the same on every card."""
    text = f"{format_tokens(input_tokens)} tokens in · {format_tokens(output_tokens)} out"
    if cost_usd is not None:
        text += f" · {'~' if estimate else ''}{format_cost(cost_usd)}"
    return text


#: A platform's status line ("is running the tests…") is short: Slack's assistant status and
#: Teams' informative updates show one line.
STATUS_CHARS = 80


def activity_status(view: ProgressView | None, *, state: str = "running") -> str:
    """One short line of what the job is doing now, for a platform's native status.

    From the current step when the agent reports one (`Bash: npm test` → "running Bash: npm
    test…"), else the last finished one, else what the agent last said, else the job's state.
    """
    if view is not None:
        if view.current is not None:
            text = f"running {view.current.label}"
        elif view.recent:
            text = f"done {view.recent[-1].label}" if view.recent[-1].ok is not False else f"failed {view.recent[-1].label}"
        elif view.latest_text:
            text = "thinking: " + view.latest_text
        else:
            text = state
    else:
        text = state
    text = " ".join(text.split())
    if len(text) > STATUS_CHARS - 1:
        text = text[: STATUS_CHARS - 1]
    return text + "…"


def progress_lines(view: ProgressView) -> list[str]:
    """The agent's work so far, as the live message shows it under the page's lines.

    An agent that reports tools only once they finished (OpenCode) gets "Last step", never a
    current step we cannot know.
    """
    lines = ["── agent · " + usage_text(view.input_tokens, view.output_tokens, view.cost_usd, estimate=view.cost_is_estimate)]
    recent = list(view.recent)
    if view.current is not None:
        lines.append(f"▶ Now: {view.current.label}")
    elif recent and not view.knows_current_step:
        lines.append(f"Last step: {step_text(recent.pop())}")
    lines.extend(step_text(step) for step in recent)
    if view.plan:
        done = sum(1 for item in view.plan if item.status.value == "completed")
        doing = next((item.text for item in view.plan if item.status.value == "in_progress"), None)
        lines.append(f"☰ Plan {done}/{len(view.plan)} done" + (f" · now: {doing}" if doing else ""))
    if view.latest_text:
        lines.append(f"💬 {view.latest_text}")
    return lines


def answer_excerpt(answer: str, job_id: str, limit: int = ANSWER_CARD_CHARS) -> str:
    """The agent's answer, cut at a line boundary near `limit` with a pointer to all of it.

    A cut inside a ``` block closes the block first, so the pointer is never shown as code.
    """
    text = answer.strip()
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit)
    cut = cut if cut > limit // 2 else limit
    kept = text[:cut].rstrip()
    if sum(1 for line in kept.split("\n") if is_fence_line(line)) % 2:
        kept += "\n```"
    return kept + f"\n… (the full answer: {logs_hint(job_id)})"


def agent_usage_line(summary: AgentSummary) -> str:
    """`Cost $0.04 · 12.3k tokens in · 1.2k out · 3 turns · claude-sonnet-4-5`."""
    parts = [usage_text(summary.input_tokens, summary.output_tokens, summary.cost_usd)]
    if summary.turns is not None:
        parts.append(f"{summary.turns} turn{'s' if summary.turns != 1 else ''}")
    if summary.model:
        parts.append(summary.model)
    return " · ".join(parts)


def files_changed_lines(summary: AgentSummary) -> list[str]:
    if not summary.files and not summary.files_summary:
        return []
    lines = [f"Files changed: {summary.files_summary or len(summary.files)}"]
    for change in summary.files[:MAX_FILES_ON_CARD]:
        lines.append(f"  {change.path} +{change.added} −{change.removed}")
    if len(summary.files) > MAX_FILES_ON_CARD:
        lines.append(f"  … and {len(summary.files) - MAX_FILES_ON_CARD} more")
    return lines


def truncated_output_line(job: Job) -> str | None:
    """The card's word on a job whose output outgrew its quota (the job itself went on)."""
    if not job.output_truncated:
        return None
    return f"Output truncated: the job printed more than it may keep; {logs_hint(job.id)} has what was kept."


def _card_lines(message: JobCard) -> list[str]:
    job = message.job
    lines = [_card_status_line(job, message.duration_s), _where_line(job)]
    if message.web_url:  # near the top: a long answer or tail must not push it out of a cut fallback
        lines.append(view_live_line(message.web_url))
    outcome = outcome_line(job)
    if outcome:
        lines.append(outcome)
    truncated = truncated_output_line(job)
    if truncated:
        lines.append(truncated)
    lines.extend(artifact_line(job, artifact) for artifact in job.artifacts)
    summary = job.agent
    if summary is not None:
        lines.append(agent_usage_line(summary))
        lines.extend(files_changed_lines(summary))
        if summary.answer:
            lines.append("Answer:")
            lines.extend(answer_excerpt(summary.answer, job.id).split("\n"))
    if summary is None or not summary.answer or job.state is not JobState.SUCCEEDED:
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


def outcome_line(job: Job) -> str | None:
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


#: The task as a table shows it: its first line, cut to this many characters.
TABLE_TASK_CHARS = 40
TABLE_HEADING = f"{'JOB':<10}  {'STATE':<13} {'AGE':>7}  {'TOOK':>6}  {'COST':>7}  TASK · WHERE · WHO"


def _table_lines(message: JobTable) -> list[str]:
    if not message.jobs:
        return [message.title, message.empty_text]
    return [message.title, TABLE_HEADING, *(_table_row(job, message.now) for job in message.jobs)]


def _table_row(job: Job, now: float) -> str:
    """One job: how long ago it was asked for (AGE) and how long it ran (TOOK), kept apart."""
    age = format_duration(max(0.0, now - job.created_at))
    took = format_duration(job.duration_s(now)) if job.started_at is not None else "–"
    cost = job.agent.cost_usd if job.agent is not None else None
    spent = format_cost(cost) if cost is not None else "–"
    task = one_line(job.spec.task, TABLE_TASK_CHARS) if job.spec.task else "(session)"
    return (
        f"{job.id}  {render_state(job.state):<13} {age:>7}  {took:>6}  {spent:>7}  "
        f"\"{task}\" · {job.spec.summary()} · {job.requested_by.name}"
    )


#: A raw transcript shown as text (where chat takes no file) shows at most its newest lines.
RAW_TRANSCRIPT_TEXT_LINES = 200


#: An artifact file shown as text (where chat takes no file) shows at most its first lines.
ARTIFACT_TEXT_LINES = 200


def _log_lines(message: LogExcerpt) -> list[str]:
    if message.file is not None:
        return _kept_file_lines(message)
    if message.raw and len(message.lines) > RAW_TRANSCRIPT_TEXT_LINES:
        message = attrs.evolve(message, lines=message.lines[-RAW_TRANSCRIPT_TEXT_LINES:])
    shown = len(message.lines)
    what = "Raw agent transcript" if message.raw else "Logs"
    header = f"{what} of {message.job.id} · showing {shown} of {message.total_lines} lines"
    if not message.lines:
        return [header, "(no transcript stored: only Claude Code and OpenCode jobs have one)" if message.raw else "(no output stored)"]
    return [header, *message.lines]


def _kept_file_lines(message: LogExcerpt) -> list[str]:
    assert message.file is not None
    artifact = message.file.artifact
    header = f"Artifact {artifact.name!r} of {message.job.id} · {format_size(len(message.file.content))}"
    if message.file.text is None:
        return [header, "(a binary file: attached where chat takes files)"]
    shown = message.lines[:ARTIFACT_TEXT_LINES]
    lines = [header, *shown]
    if message.total_lines > len(shown):
        lines.append(f"(showing the first {len(shown)} of {message.total_lines} lines; the file is attached where chat takes files)")
    return lines


def format_size(size: int) -> str:
    """A file size as people read it: 812 B, 12.3 KB, 4.1 MB (powers of 1024)."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def artifact_line(job: Job, artifact: Artifact) -> str:
    """An artifact as the card lists it; a file says how to get the dispatcher's copy.

    The sprite's workspace is deleted with the job, so a file's path is no use to a reader:
    a kept file points at `/od-logs JOB --artifact NAME`, one that was not kept says why.
    """
    if not artifact.is_file:
        return f"{artifact.name}: {artifact.url}"
    if artifact.kept:
        size = f" ({format_size(artifact.size)})" if artifact.size is not None else ""
        return f"{artifact.name}{size}: {artifact_hint(job.id, artifact.name)}"
    return f"{artifact.name}: not kept ({why_not_kept(job, artifact)})"


def artifact_hint(job_id: str, name: str) -> str:
    return f"/od-logs {job_id} --artifact {shlex.quote(name)}"


def why_not_kept(job: Job, artifact: Artifact) -> str:
    if artifact.size is None:
        return "no such file when the job ended"
    if artifact.size > MAX_KEPT_ARTIFACT_BYTES:
        return f"{format_size(artifact.size)} is over the {format_size(MAX_KEPT_ARTIFACT_BYTES)} limit"
    if sum(1 for other in job.artifacts if other.kept) >= MAX_KEPT_ARTIFACT_FILES:
        return f"a job keeps at most {MAX_KEPT_ARTIFACT_FILES} files"
    return "its copy did not reach the dispatcher; see the sprite's log"
