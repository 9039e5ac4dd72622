"""ChatMessage -> Discord message bodies: content within 2,000 characters, embeds, the Stop button.

One chat message may need several Discord messages ("parts"): long text is cut with
`split_message`, which never breaks a code block, and the parts are posted in order. Output
lines are shown in code blocks with mentions disabled, so agent output cannot ping anyone.
Pure functions: tested without Discord.
"""

from __future__ import annotations

from typing import Any

from ...domain.job import Job, JobState
from ...domain.job_spec import format_duration
from ...domain.messages import ChatMessage, JobCard, JobTable, LiveOutput, LogExcerpt, Notice
from ...domain.output_buffer import split_message
from ...domain.render import (
    STATE_ICONS,
    live_output_header,
    logs_hint,
    omitted_line,
    render_lines,
    render_text,
    state_word,
)

MAX_CONTENT = 2000
MAX_EMBED_DESCRIPTION = 4096
MAX_FIELD_VALUE = 1024
EPHEMERAL = 1 << 6
NO_MENTIONS: dict[str, Any] = {"parse": []}
STOP_PREFIX = "od_stop:"
BUTTON_STYLE_DANGER = 4

STATE_COLOURS: dict[JobState, int] = {
    JobState.QUEUED: 0x95A5A6,
    JobState.STARTING: 0x3498DB,
    JobState.RUNNING: 0x3498DB,
    JobState.SUCCEEDED: 0x2ECC71,
    JobState.FAILED: 0xE74C3C,
    JobState.CANCELLED: 0x95A5A6,
    JobState.TIMED_OUT: 0xE67E22,
    JobState.LOST: 0x9B59B6,
}

Payload = dict[str, Any]


def message_parts(message: ChatMessage) -> list[Payload]:
    """The Discord message bodies for one chat message, in posting order; never empty."""
    if isinstance(message, LiveOutput):
        return _live_parts(message)
    if isinstance(message, JobCard):
        return [_card_payload(message)]
    return _text_parts(_plain_text(message))


def is_ephemeral(message: ChatMessage) -> bool:
    return isinstance(message, Notice) and message.ephemeral


def stop_button_id(job_id: str) -> str:
    return STOP_PREFIX + job_id


def job_of_stop_button(custom_id: str) -> str | None:
    """The job id a Stop button was made for, or None for a button that is not ours."""
    if not custom_id.startswith(STOP_PREFIX):
        return None
    return custom_id[len(STOP_PREFIX) :] or None


def thread_name(message: ChatMessage) -> str:
    """A thread title (1-100 characters) for the job a message is about."""
    job = getattr(message, "job", None)
    if not isinstance(job, Job):
        return "Open-Dispatch"
    title = f"{job.id} · {job.spec.task}".replace("\n", " ").strip()
    return title if len(title) <= 100 else title[:99] + "…"


def code_safe(line: str) -> str:
    """A line that cannot close the code block it is shown in."""
    return line.replace("```", "`\u200b`\u200b`")


def code_block(lines: list[str] | tuple[str, ...]) -> str:
    return "```\n" + "\n".join(code_safe(line) for line in lines) + "\n```"


def _plain_text(message: ChatMessage) -> str:
    if isinstance(message, JobTable) and message.jobs:
        title, *rows = render_lines(message)
        return title + "\n" + code_block(rows)
    if isinstance(message, LogExcerpt):
        header, *lines = render_lines(message)
        return header + "\n" + code_block(lines) if message.lines else "\n".join([header, *lines])
    return render_text(message)


def _text_parts(text: str) -> list[Payload]:
    chunks = split_message(text, MAX_CONTENT) or ["\u200b"]
    return [{"content": chunk, "allowed_mentions": NO_MENTIONS} for chunk in chunks]


def _live_parts(message: LiveOutput) -> list[Payload]:
    lines = ([omitted_line(message.job.id, message.omitted)] if message.omitted else []) + list(message.lines)
    text = f"**{live_output_header(message)}**"
    if lines:
        text += "\n" + code_block(lines)
    parts = _text_parts(text)
    for part in parts:
        part["components"] = []
    if not message.sealed and not message.job.is_finished:
        parts[-1]["components"] = [_stop_row(message.job.id)]
    return parts


def _stop_row(job_id: str) -> Payload:
    button = {"type": 2, "style": BUTTON_STYLE_DANGER, "label": "Stop", "custom_id": stop_button_id(job_id)}
    return {"type": 1, "components": [button]}


def _card_payload(card: JobCard) -> Payload:
    job = card.job
    status_line = render_lines(card)[0]
    embed: Payload = {
        "title": f"{STATE_ICONS[job.state]} Job {job.id} {state_word(job.state)}",
        "description": _card_description(card),
        "color": STATE_COLOURS[job.state],
        "fields": [
            {"name": "Status", "value": state_word(job.state), "inline": True},
            {"name": "Exit code", "value": "—" if job.exit_code is None else str(job.exit_code), "inline": True},
            {"name": "Duration", "value": format_duration(card.duration_s), "inline": True},
        ],
    }
    if job.artifacts:
        links = "\n".join(f"[{_link_text(a.name)}]({a.url})" for a in job.artifacts)
        embed["fields"].append({"name": "Artifacts", "value": _fit(links, MAX_FIELD_VALUE)})
    if card.total_lines > len(card.tail):
        embed["footer"] = {"text": f"{card.total_lines} lines in total: {logs_hint(job.id)}"}
    return {"content": _fit(status_line, MAX_CONTENT), "embeds": [embed], "allowed_mentions": NO_MENTIONS, "components": []}


def _card_description(card: JobCard) -> str:
    """Where, why it ended, and as many of the last lines as fit (newest kept)."""
    job = card.job
    lines = render_lines(card)
    head = [lines[1]]  # "<summary> · requested by <name>"
    outcome = next((line for line in lines[2:3] if line.startswith(("Cancelled by", "Timed out", "Failed at", "Lost at"))), None)
    if outcome:
        head.append(outcome)
    text = "\n".join(head)
    if not card.tail:
        return text + "\nNo output."
    budget = MAX_EMBED_DESCRIPTION - len(text) - len("\nLast lines:\n```\n\n```") - 2
    tail: list[str] = []
    for line in reversed(card.tail):
        piece = code_safe(line)[:MAX_CONTENT]
        if len(piece) + 1 > budget:
            break
        tail.insert(0, piece)
        budget -= len(piece) + 1
    return text + "\nLast lines:\n```\n" + "\n".join(tail) + "\n```" if tail else text + f"\n({logs_hint(job.id)})"


def _link_text(name: str) -> str:
    return name.replace("[", "(").replace("]", ")")[:100] or "link"


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
