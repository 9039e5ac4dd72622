"""Chat messages as Bot Framework activities: Adaptive Cards for jobs, markdown for the rest.

Rendered from the domain values, with `render_text` as each card's fallback text. An agent's
progress is a RichTextBlock under the live output (text runs are never read as markdown); its
answer on the final card uses what a TextBlock's markdown supports (bold, italic, lists,
links), headings become bold lines and code blocks monospace text runs. A card
activity carries no `text`: Teams splits an activity with text *and* an attachment into two
messages and returns no usable id, and we must keep the id to update the live card.

An approval prompt is a card: what the agent wants to run (tool, command/path/URL, reason:
text runs, so nothing the agent wrote is read as markdown) with Approve / Approve for this
job / Deny (`Action.Submit`, data `{"action": …, "requestId": …}`); once decided it is
updated to the decision, without actions.

A job with a web link gets an `Action.OpenUrl` "View live" on its first reply (in every
version) and on its final card; opening a URL sends us nothing.
"""

from __future__ import annotations

import re
from typing import Any

from ...domain.agent_progress import AgentSummary, ProgressView
from ...domain.approvals import ApprovalRequest, ApprovalState
from ...domain.job import Job, JobState
from ...domain.job_spec import format_duration
from ...domain.messages import ApprovalPrompt, ChatMessage, JobAccepted, JobCard, JobTable, LiveOutput, LogExcerpt, Notice
from ...domain.output_buffer import FENCE, is_fence_line, split_message
from ...domain.render import (
    truncated_output_line,
    NO_OUTPUT_YET,
    artifact_line,
    STATE_ICONS,
    agent_usage_line,
    answer_excerpt,
    files_changed_lines,
    live_output_header,
    omitted_line,
    progress_lines,
    render_text,
    state_word,
    VIEW_LIVE,
)
from .activity import APPROVE_ACTION, APPROVE_FOR_JOB_ACTION, DENY_ACTION, STOP_ACTION

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.5"
# Teams refuses messages over ~100 KB counted in UTF-16; stay well below it.
TEXT_LIMIT = 20_000
BLOCK_LIMIT = 8_000
MAX_LINK_ACTIONS = 5
#: How much of an approval's command/path/URL and reason a prompt shows.
APPROVAL_DETAIL_CHARS = 1500
APPROVAL_REASON_CHARS = 1000

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
        return [accepted_activity(message.job, web_url=message.web_url)]
    if isinstance(message, LiveOutput):
        return [live_activity(message)]
    if isinstance(message, JobCard):
        return [final_activity(message)]
    if isinstance(message, Notice):
        return text_activities(message.text, markdown=False)
    if isinstance(message, ApprovalPrompt):
        return [approval_activity(message)]
    if isinstance(message, (JobTable, LogExcerpt)):
        title, *rows = render_text(message).split("\n")
        return text_activities(f"**{title}**\n\n{_code_block(rows)}", markdown=True)
    raise TypeError(f"cannot render {type(message).__name__}")


def stop_action(job: Job) -> dict[str, Any]:
    return {"type": "Action.Submit", "title": "Stop", "data": {"action": STOP_ACTION, "jobId": job.id}}


def view_live_action(web_url: str | None) -> list[dict[str, Any]]:
    """`Action.OpenUrl` "View live" to the job's web page, when it has one (http(s) only)."""
    if not web_url or not web_url.startswith(("https://", "http://")):
        return []
    return [{"type": "Action.OpenUrl", "title": VIEW_LIVE, "url": web_url}]


def accepted_activity(job: Job, *, ended: Job | None = None, web_url: str | None = None) -> Activity:
    """The first reply. While the job runs it offers Stop; `ended` turns it into a pointer
    to the final card (so a stale Stop button cannot linger). "View live" stays on both."""
    fallback = render_text(JobAccepted(job, web_url=web_url))
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
    actions.extend(view_live_action(web_url))
    return card_activity(_card(body, actions, fallback), summary=title)


def approval_actions(request: ApprovalRequest) -> list[dict[str, Any]]:
    def submit(title: str, action: str, style: str | None = None) -> dict[str, Any]:
        button: dict[str, Any] = {"type": "Action.Submit", "title": title, "data": {"action": action, "requestId": request.id}}
        if style is not None:
            button["style"] = style
        return button

    return [
        submit("Approve", APPROVE_ACTION, "positive"),
        submit("Approve for this job", APPROVE_FOR_JOB_ACTION),
        submit("Deny", DENY_ACTION, "destructive"),
    ]


def approval_activity(message: ApprovalPrompt) -> Activity:
    """The prompt: the agent's words as text runs, then the three buttons or the decision."""
    job, request = message.job, message.request
    tool = " ".join(request.tool.split())[:100] or "?"
    title = f"✋ Job {job.id} asks to run {tool}"
    body: list[dict[str, Any]] = [
        _runs(("✋ Job ", {"weight": "bolder"}), (job.id, {"weight": "bolder"}), (" asks to run ", {}), (tool, {"weight": "bolder"}))
    ]
    if request.detail:
        body.append(_runs((_cut(request.detail, APPROVAL_DETAIL_CHARS), {"fontType": "Monospace"})))
    if request.reason:
        body.append(_runs(("Why: ", {"weight": "bolder"}), (_cut(request.reason, APPROVAL_REASON_CHARS), {})))
    actions: list[dict[str, Any]] = []
    if request.state is ApprovalState.PENDING:
        body.append(
            _runs(
                (f"Only {job.requested_by.name} (who started the job) or an admin can answer; "
                 f"or send od-approve {request.id} [--job] / od-deny {request.id}", {"isSubtle": True})
            )
        )
        actions = approval_actions(request)
    else:
        text, color = decision(request)
        body.append(_runs((text, {"weight": "bolder", "color": color}), (f" ({request.id})", {"isSubtle": True})))
    return card_activity(_card(body, actions, render_text(message)), summary=title)


def decision(request: ApprovalRequest) -> tuple[str, str]:
    """The decision as the card says it, and its colour."""
    who = f" by {request.decided_by}" if request.decided_by else ""
    if request.state is ApprovalState.APPROVED:
        return f"✅ Approved{who}" + (" for the rest of the job" if request.for_job else ""), "good"
    if request.state is ApprovalState.DENIED:
        return f"⛔ Denied{who}", "attention"
    return "⏰ Timed out: nobody answered in time, so it was denied", "warning"


def _runs(*runs: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """Text runs in one block: shown as written (a TextRun is never read as markdown)."""
    return {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": _clip(text), **style} for text, style in runs]}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def live_activity(message: LiveOutput) -> Activity:
    job = message.job
    body: list[dict[str, Any]] = [_text(live_output_header(message), weight="bolder")]
    if job.cancelled_by:
        body.append(_text(f"🛑 Stopped by {job.cancelled_by}", color="warning"))
    if message.omitted > 0:
        body.append(_text(omitted_line(job.id, message.omitted), isSubtle=True))
    body.append(_monospace(message.lines) if message.lines else _text(NO_OUTPUT_YET, isSubtle=True))
    if message.progress is not None:
        body.append(progress_block(message.progress))
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
        verb = "Lost" if job.state is JobState.LOST else "Failed"
        facts.append((f"{verb} at {job.failure.stage.value}", job.failure.reason))
    if job.output_truncated:
        facts.append(("Output", truncated_output_line(job) or ""))
    summary = job.agent
    if summary is not None:
        facts.append(("Usage", agent_usage_line(summary)))
    body: list[dict[str, Any]] = [
        _text(title, weight="bolder", size="medium", color=_STATE_COLORS.get(job.state, "default")),
        _facts(*facts),
    ]
    links = [a for a in job.artifacts if not a.is_file and a.url.startswith(("https://", "http://"))]
    if job.artifacts:
        body.append(_text("Artifacts", weight="bolder"))
        body.extend(
            _text(f"[{a.name}]({a.url})" if a in links else artifact_line(job, a)) for a in job.artifacts
        )
    if summary is not None:
        body.extend(agent_blocks(summary, job.id))
    if summary is not None and summary.answer and job.state is JobState.SUCCEEDED:
        pass  # the answer says what happened; the last lines are in the log
    elif message.tail:
        body.append(_text("Last lines", weight="bolder"))
        body.append(_monospace(message.tail))
    else:
        body.append(_text("No output.", isSubtle=True))
    if message.total_lines > len(message.tail):
        body.append(_text(f"{message.total_lines} lines in total: send od-logs {job.id}", isSubtle=True))
    actions = view_live_action(message.web_url)  # first: the artifacts are linked in the body too
    actions += [{"type": "Action.OpenUrl", "title": a.name[:40], "url": a.url} for a in links[: MAX_LINK_ACTIONS - len(actions)]]
    return card_activity(_card(body, actions, render_text(message)), summary=title)


def progress_block(view: ProgressView) -> dict[str, Any]:
    """The agent's work so far as text runs: shown as written, never read as markdown."""
    usage, *steps = progress_lines(view)
    inlines: list[dict[str, Any]] = [{"type": "TextRun", "text": _clip(usage), "isSubtle": True}]
    if steps:
        inlines.append({"type": "TextRun", "text": "\n" + _clip("\n".join(steps))})
    return {"type": "RichTextBlock", "inlines": inlines}


def agent_blocks(summary: AgentSummary, job_id: str) -> list[dict[str, Any]]:
    """Files changed and the answer (the usage is one of the card's facts)."""
    body: list[dict[str, Any]] = []
    files = files_changed_lines(summary)
    if files:
        title, *rows = files
        body.append(_text(title, weight="bolder"))
        if rows:
            body.append(_monospace([row.strip() for row in rows]))
    if summary.answer:
        body.append(_text("Answer", weight="bolder"))
        excerpt = answer_excerpt(summary.answer, job_id)
        whole = excerpt == summary.answer.strip()
        text, pointer = (excerpt, "") if whole else excerpt.rsplit("\n", 1)
        body.extend(answer_blocks(text))
        if pointer:
            body.append(_text(pointer, isSubtle=True))
    return body


_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")
_LIST_ITEM = re.compile(r"^(\s*)(?:[-*+]|(\d{1,9}[.)]))\s+(.*)$")
_QUOTE = re.compile(r"^ {0,3}>\s?")
_NOT_WEB_LINK = re.compile(r"\[([^\[\]]*)\]\((?!https?://)")


def answer_blocks(markdown: str) -> list[dict[str, Any]]:
    """An agent's markdown as card elements: TextBlocks for prose (headings bold, lists as
    Teams writes them, links only to http(s)), monospace text runs for code blocks."""
    body: list[dict[str, Any]] = []
    prose: list[str] = []
    code: list[str] | None = None
    fence = ""

    def flush_prose() -> None:
        for paragraph in _paragraphs(prose):
            body.append(_text(paragraph))
        prose.clear()

    for line in markdown.split("\n"):
        if code is not None:
            stripped = line.strip()
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                body.append(_code(code))
                code = None
            else:
                code.append(line)
            continue
        opened = _FENCE_OPEN.match(line)
        if opened:
            flush_prose()
            code, fence = [], opened.group(1)
        else:
            prose.append(line)
    if code is not None:
        body.append(_code(code))
    flush_prose()
    return body


def _paragraphs(lines: list[str]) -> list[str]:
    """Blank-line separated paragraphs; list items joined with \r, other lines with \n\n
    (a TextBlock's own line break rules)."""
    paragraphs: list[str] = []
    current = ""
    previous_was_item = False
    for raw in [*lines, ""]:
        if not raw.strip():
            if current:
                paragraphs.append(current)
            current, previous_was_item = "", False
            continue
        line, is_item = _teams_line(raw)
        if current:
            current += "\r" if is_item and previous_was_item else "\n\n"
        current += line
        previous_was_item = is_item
    return paragraphs


def _teams_line(line: str) -> tuple[str, bool]:
    heading = _HEADING.match(line)
    if heading:
        text = heading.group(1).replace("**", "").strip()
        return (f"**{_links(text)}**" if text else ""), False
    item = _LIST_ITEM.match(line)
    if item:
        indent, number, text = item.groups()
        return f"{indent}{number or '-'} {_links(text)}", True
    return _links(_QUOTE.sub("", line).strip()), False


def _links(text: str) -> str:
    """Markdown links kept only to web addresses; any other link is shown as text."""
    return _NOT_WEB_LINK.sub(r"\1 (", text)


def _code(lines: list[str]) -> dict[str, Any]:
    text = _clip("\n".join(lines) or " ")
    return {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": text, "fontType": "Monospace"}]}


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
