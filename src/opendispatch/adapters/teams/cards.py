"""Chat messages as Bot Framework activities: Adaptive Cards for jobs, markdown for the rest.

Rendered from the domain values, with `render_text` as each card's fallback text. A card
activity carries no `text`: Teams splits an activity with text *and* an attachment into two
messages and returns no usable id, and we must keep the id to update the live card.
"""

from __future__ import annotations

from typing import Any

from ...domain.job import Job, JobState
from ...domain.job_spec import format_duration
from ...domain.messages import ChatMessage, JobAccepted, JobCard, JobTable, LiveOutput, LogExcerpt, Notice
from ...domain.output_buffer import FENCE, is_fence_line, split_message
from ...domain.render import STATE_ICONS, live_output_header, omitted_line, render_text, state_word
from .activity import STOP_ACTION

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.5"
# Teams refuses messages over ~100 KB counted in UTF-16; stay well below it.
TEXT_LIMIT = 20_000
BLOCK_LIMIT = 8_000
MAX_LINK_ACTIONS = 5

Activity = dict[str, Any]

_STATE_COLORS = {
    JobState.SUCCEEDED: "good",
    JobState.FAILED: "attention",
    JobState.LOST: "attention",
    JobState.TIMED_OUT: "warning",
    JobState.CANCELLED: "warning",
}


def render_activities(message: ChatMessage) -> list[Activity]:
    """One activity per message; only long text is split into several."""
    if isinstance(message, JobAccepted):
        return [accepted_activity(message.job)]
    if isinstance(message, LiveOutput):
        return [live_activity(message)]
    if isinstance(message, JobCard):
        return [final_activity(message)]
    if isinstance(message, Notice):
        return text_activities(message.text, markdown=False)
    if isinstance(message, (JobTable, LogExcerpt)):
        title, *rows = render_text(message).split("\n")
        return text_activities(f"**{title}**\n\n{_code_block(rows)}", markdown=True)
    raise TypeError(f"cannot render {type(message).__name__}")


def stop_action(job: Job) -> dict[str, Any]:
    return {"type": "Action.Submit", "title": "Stop", "data": {"action": STOP_ACTION, "jobId": job.id}}


def accepted_activity(job: Job, *, ended: Job | None = None) -> Activity:
    """The first reply. While the job runs it offers Stop; `ended` turns it into a pointer
    to the final card (so a stale Stop button cannot linger)."""
    fallback = render_text(JobAccepted(job))
    title = f"▶ Job {job.id} queued"
    body: list[dict[str, Any]] = [
        _text(title, weight="bolder"),
        _facts(
            ("Job", job.spec.summary()),
            ("Requested by", job.requested_by.name),
            ("Timeout", format_duration(job.spec.timeout_s)),
        ),
    ]
    actions: list[dict[str, Any]] = []
    if ended is None:
        body.append(_text(f"Press Stop or send od-cancel {job.id} to stop it.", isSubtle=True))
        actions.append(stop_action(job))
    else:
        body.append(_text(f"{STATE_ICONS[ended.state]} Ended: {state_word(ended.state)}{_by(ended)} (see the final card)"))
    return card_activity(_card(body, actions, fallback), summary=title)


def live_activity(message: LiveOutput) -> Activity:
    job = message.job
    body: list[dict[str, Any]] = [_text(live_output_header(message), weight="bolder")]
    if job.cancelled_by:
        body.append(_text(f"🛑 Stopped by {job.cancelled_by}", color="warning"))
    if message.omitted > 0:
        body.append(_text(omitted_line(job.id, message.omitted), isSubtle=True))
    body.append(_monospace(message.lines) if message.lines else _text("(no output yet)", isSubtle=True))
    running = not message.sealed and not job.is_finished
    actions = [stop_action(job)] if running else []
    return card_activity(_card(body, actions, render_text(message)), summary=f"Output of {job.id}")


def final_activity(message: JobCard) -> Activity:
    job = message.job
    title = f"{STATE_ICONS[job.state]} Job {job.id} {state_word(job.state)}"
    facts = [
        ("Status", state_word(job.state)),
        ("Exit code", "—" if job.exit_code is None else str(job.exit_code)),
        ("Duration", format_duration(message.duration_s)),
        ("Job", job.spec.summary()),
        ("Requested by", job.requested_by.name),
    ]
    if job.state is JobState.CANCELLED:
        facts.append(("Stopped by", job.cancelled_by or "someone"))
    elif job.failure is not None:
        facts.append((f"Failed at {job.failure.stage.value}", job.failure.reason))
    body: list[dict[str, Any]] = [
        _text(title, weight="bolder", size="medium", color=_STATE_COLORS.get(job.state, "default")),
        _facts(*facts),
    ]
    links = [a for a in job.artifacts if a.url.startswith(("https://", "http://"))]
    if job.artifacts:
        body.append(_text("Artifacts", weight="bolder"))
        body.extend(
            _text(f"[{a.name}]({a.url})" if a in links else f"{a.name}: {a.url}") for a in job.artifacts
        )
    if message.tail:
        body.append(_text("Last lines", weight="bolder"))
        body.append(_monospace(message.tail))
    else:
        body.append(_text("No output.", isSubtle=True))
    if message.total_lines > len(message.tail):
        body.append(_text(f"{message.total_lines} lines in total: send od-logs {job.id}", isSubtle=True))
    actions = [{"type": "Action.OpenUrl", "title": a.name[:40], "url": a.url} for a in links[:MAX_LINK_ACTIONS]]
    return card_activity(_card(body, actions, render_text(message)), summary=title)


def card_activity(card: dict[str, Any], *, summary: str) -> Activity:
    return {
        "type": "message",
        "summary": summary[:200],
        "attachments": [{"contentType": ADAPTIVE_CARD, "content": card}],
    }


def text_activities(text: str, *, markdown: bool) -> list[Activity]:
    pieces = split_message(text, TEXT_LIMIT) or ["(empty)"]
    return [{"type": "message", "text": piece, "textFormat": "markdown" if markdown else "plain"} for piece in pieces]


def _card(body: list[dict[str, Any]], actions: list[dict[str, Any]], fallback: str) -> dict[str, Any]:
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": CARD_SCHEMA,
        "version": CARD_VERSION,
        "fallbackText": _clip(fallback),
        "body": body,
    }
    if actions:
        card["actions"] = actions
    return card


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": _clip(text), "wrap": True, **style}


def _facts(*facts: tuple[str, str]) -> dict[str, Any]:
    return {"type": "FactSet", "facts": [{"title": title, "value": _clip(value)} for title, value in facts]}


def _monospace(lines: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Output as a TextRun: unlike a TextBlock it is not read as markdown, so `*` stays `*`."""
    text = _clip("\n".join(lines), keep_end=True)
    return {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": text, "fontType": "Monospace"}]}


def _code_block(rows: list[str]) -> str:
    safe = [row.replace(FENCE, "`\u200b``") if is_fence_line(row) else row for row in rows]
    return "\n".join([FENCE, *safe, FENCE])


def _clip(text: str, *, keep_end: bool = False) -> str:
    if len(text) <= BLOCK_LIMIT:
        return text
    return "…" + text[-(BLOCK_LIMIT - 1) :] if keep_end else text[: BLOCK_LIMIT - 1] + "…"


def _by(job: Job) -> str:
    return f", stopped by {job.cancelled_by}" if job.state is JobState.CANCELLED and job.cancelled_by else ""
