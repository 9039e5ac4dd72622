"""ChatMessage -> Discord message bodies: content within 2,000 characters, embeds, the Stop button.

One chat message may need several Discord messages ("parts"): long text is cut with
`split_message`, which never breaks a code block, and the parts are posted in order. Output
lines are shown in code blocks with mentions disabled, so agent output cannot ping anyone.
An agent's progress rides on the live page as an embed (its steps as markdown-safe text, its
usage in the footer); the card shows its usage, files changed and its answer (markdown as
the agent wrote it, mentions neutralised, cut to the embed limits). An approval prompt is one
message: what the agent wants to run (the tool, its command/path/URL in a code block, its
reason; all from the agent, so shown as text) and an action row of Approve / Approve for this
job / Deny whose custom ids carry the action and the request id; decided, it is edited to the
decision with no components. The first reply and the final card of a job with a web link
carry a "View live" link button (style 5: it opens the URL and sends us no interaction).
Pure functions: tested without Discord.
"""

from __future__ import annotations

import re
from typing import Any

from ...domain.agent_progress import AgentSummary, ProgressView
from ...domain.approvals import ApprovalRequest, ApprovalState
from ...domain.ids import looks_like_job_id
from ...domain.job import Job, JobState
from ...domain.job_spec import format_duration
from ...domain.messages import ApprovalPrompt, ChatMessage, JobAccepted, JobCard, JobTable, LiveOutput, LogExcerpt, Notice
from ...domain.output_buffer import FENCE, is_fence_line, split_message
from ...domain.render import (
    truncated_output_line,
    NO_OUTPUT_YET,
    artifact_line,
    ANSWER_CARD_CHARS,
    STATE_ICONS,
    agent_usage_line,
    answer_excerpt,
    files_changed_lines,
    live_output_header,
    logs_hint,
    omitted_line,
    outcome_line,
    progress_lines,
    render_lines,
    render_text,
    state_word,
    view_live_line,
    VIEW_LIVE,
)

MAX_CONTENT = 2000
MAX_EMBED_DESCRIPTION = 4096
MAX_FIELD_VALUE = 1024
MAX_EMBED_TOTAL = 6000
MAX_FOOTER = 2048
PROGRESS_COLOUR = 0x3498DB
EPHEMERAL = 1 << 6
NO_MENTIONS: dict[str, Any] = {"parse": []}
STOP_PREFIX = "od_stop:"
BUTTON_STYLE_PRIMARY = 1
BUTTON_STYLE_SUCCESS = 3
BUTTON_STYLE_DANGER = 4
BUTTON_STYLE_LINK = 5
#: A link button's URL: Discord takes at most 512 characters; a longer one is shown as text.
MAX_BUTTON_URL = 512
MAX_ACTION_ROWS = 5
MAX_ROW_BUTTONS = 5
#: An approval prompt's buttons: custom id `<prefix><request id>` -> the command it means.
APPROVAL_BUTTONS = {
    "od_approve:": "/od-approve {}",
    "od_approve_job:": "/od-approve {} --job",
    "od_deny:": "/od-deny {}",
}
#: How much of a tool call's command/path/URL and reason a prompt shows (one message: 2,000).
APPROVAL_DETAIL_CHARS = 1000
APPROVAL_REASON_CHARS = 400
_REQUEST_ID = re.compile(r"a-[0-9a-f]{8}")
_NO_BACKTICK_RUNS = re.compile(r"`(?=`)")

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
    if isinstance(message, ApprovalPrompt):
        return [approval_payload(message)]
    if isinstance(message, JobAccepted) and message.web_url:
        return _accepted_parts(message, message.web_url)
    return _text_parts(_plain_text(message))


def is_ephemeral(message: ChatMessage) -> bool:
    """Shown to the asker only: an ephemeral notice, or a private one (it holds a credential)."""
    return isinstance(message, Notice) and (message.ephemeral or message.private)


def is_private(message: ChatMessage) -> bool:
    """A notice that must never be posted where others can read it."""
    return isinstance(message, Notice) and message.private


def link_button(label: str, url: str) -> Payload | None:
    """A link button (style 5, a `url`, no custom id), or None when Discord would refuse the URL."""
    if not url.startswith(("https://", "http://")) or len(url) > MAX_BUTTON_URL or any(c.isspace() for c in url):
        return None
    return {"type": 2, "style": BUTTON_STYLE_LINK, "label": label[:80], "url": url}


def with_link_row(components: list[Payload], button: Payload) -> list[Payload]:
    """`components` plus `button`: in the last action row when it has room, else in a new row;
    unchanged when the message already has Discord's 5 full rows."""
    rows = [dict(row, components=list(row.get("components", []))) for row in components]
    if rows and rows[-1].get("type") == 1 and len(rows[-1]["components"]) < MAX_ROW_BUTTONS:
        rows[-1]["components"].append(button)
    elif len(rows) < MAX_ACTION_ROWS:
        rows.append({"type": 1, "components": [button]})
    return rows


def _accepted_parts(message: JobAccepted, web_url: str) -> list[Payload]:
    """The first reply with its "View live" button; the link as text only where no button can carry it."""
    button = link_button(VIEW_LIVE, web_url)
    if button is None:
        return _text_parts(render_text(message))
    parts = _text_parts(render_text(JobAccepted(message.job)))
    parts[-1]["components"] = with_link_row([], button)
    return parts


def stop_button_id(job_id: str) -> str:
    return STOP_PREFIX + job_id


def job_of_stop_button(custom_id: str) -> str | None:
    """The job id a Stop button was made for, or None for a button that is not ours."""
    if not custom_id.startswith(STOP_PREFIX):
        return None
    return custom_id[len(STOP_PREFIX) :] or None


def button_command(custom_id: str) -> str | None:
    """The command a press on one of our buttons means (`/od-cancel JOB`, `/od-approve ID`,
    `/od-approve ID --job`, `/od-deny ID`), or None for a button that is not ours or an id
    that does not look like one of ours (never handed on as text)."""
    job_id = job_of_stop_button(custom_id)
    if job_id is not None:
        return f"/od-cancel {job_id}" if looks_like_job_id(job_id) else None
    for prefix, command in APPROVAL_BUTTONS.items():
        if custom_id.startswith(prefix):
            request_id = custom_id[len(prefix) :]
            return command.format(request_id) if _REQUEST_ID.fullmatch(request_id) else None
    return None


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
    elif message.progress is None and not message.sealed:
        text += "\n" + NO_OUTPUT_YET
    parts = _text_parts(text)
    for part in parts:
        part["components"] = []
    if message.progress is not None:
        parts[-1]["embeds"] = [progress_embed(message.progress)]
    if not message.sealed and not message.job.is_finished:
        parts[-1]["components"] = [_stop_row(message.job.id)]
    return parts


def progress_embed(view: ProgressView) -> Payload:
    """The agent's work so far: steps (markdown-safe) as the description, usage as the footer."""
    usage, *steps = progress_lines(view)
    embed: Payload = {"color": PROGRESS_COLOUR, "footer": {"text": _fit(usage, MAX_FOOTER)}}
    if steps:
        embed["description"] = _fit("\n".join(markdown_safe(step) for step in steps), MAX_EMBED_DESCRIPTION)
    return embed


_MARKDOWN = re.compile(r"([\\*_~`|<>\[\]#:-])")


def markdown_safe(text: str) -> str:
    """Text shown as is: Discord markdown characters escaped, mentions unable to form."""
    return neutralise_mentions(_MARKDOWN.sub(r"\\\1", text))


def neutralise_mentions(text: str) -> str:
    """`@everyone`, `@here` and `<@id>` shown as text (allowed_mentions already stops pings)."""
    return re.sub(r"@(everyone|here)", "@\u200b\\1", text).replace("<@", "<\u200b@")


def _stop_row(job_id: str) -> Payload:
    button = {"type": 2, "style": BUTTON_STYLE_DANGER, "label": "Stop", "custom_id": stop_button_id(job_id)}
    return {"type": 1, "components": [button]}


def approval_payload(message: ApprovalPrompt) -> Payload:
    """The prompt as one message: the buttons while it waits, the decision (and no components) after."""
    job, request = message.job, message.request
    tool = markdown_safe(" ".join(request.tool.split())[:100] or "?")
    lines = [f"✋ Job **{job.id}** asks to run **{tool}**"]
    if request.detail:
        lines.append(detail_block(request.detail))
    if request.reason:
        lines.append(f"**Why:** {_fit(markdown_safe(' '.join(request.reason.split())), APPROVAL_REASON_CHARS)}")
    components: list[Payload] = []
    if request.state is ApprovalState.PENDING:
        lines.append(f"-# Only {markdown_safe(job.requested_by.name)} (who started the job) or an admin can answer.")
        components.append(_approval_row(request))
    else:
        lines.append(decision_text(request))
    return {"content": _fit("\n".join(lines), MAX_CONTENT), "allowed_mentions": NO_MENTIONS, "components": components}


def detail_block(detail: str) -> str:
    """A command, path or URL as a code block of at most about APPROVAL_DETAIL_CHARS, cut with
    "…" when longer. No two backticks stay side by side (a zero-width space between them), so
    no run of them, however long, can close the block; that makes such a detail grow, and
    then it is cut shorter."""
    keep = APPROVAL_DETAIL_CHARS
    while True:
        lines = [_NO_BACKTICK_RUNS.sub("`\u200b", line) for line in _fit(detail, keep).split("\n")]
        block = "```\n" + "\n".join(lines) + "\n```"
        if len(block) <= APPROVAL_DETAIL_CHARS + len("```\n\n```"):
            return block
        keep = keep * 2 // 3


def decision_text(request: ApprovalRequest) -> str:
    who = f" by {markdown_safe(request.decided_by)}" if request.decided_by else ""
    if request.state is ApprovalState.APPROVED:
        return f"✅ **Approved**{who}" + (" for the rest of the job" if request.for_job else "")
    if request.state is ApprovalState.DENIED:
        return f"⛔ **Denied**{who}"
    return "⏰ **Timed out**: nobody answered in time, so it was denied"


def _approval_row(request: ApprovalRequest) -> Payload:
    def button(label: str, style: int, prefix: str) -> Payload:
        return {"type": 2, "style": style, "label": label, "custom_id": prefix + request.id}

    return {
        "type": 1,
        "components": [
            button("Approve", BUTTON_STYLE_SUCCESS, "od_approve:"),
            button("Approve for this job", BUTTON_STYLE_PRIMARY, "od_approve_job:"),
            button("Deny", BUTTON_STYLE_DANGER, "od_deny:"),
        ],
    }


def _card_payload(card: JobCard) -> Payload:
    job = card.job
    status_line = render_lines(card)[0]
    embed: Payload = {
        "title": f"{STATE_ICONS[job.state]} Job {job.id} {state_word(job.state)}",
        "color": STATE_COLOURS[job.state],
        "fields": [
            {"name": "Status", "value": state_word(job.state), "inline": True},
            {"name": "Exit code", "value": "—" if job.exit_code is None else str(job.exit_code), "inline": True},
            {"name": "Duration", "value": format_duration(card.duration_s), "inline": True},
        ],
    }
    if job.artifacts:
        links = "\n".join(
            markdown_safe(artifact_line(job, a)) if a.is_file else f"[{_link_text(a.name)}]({a.url})"
            for a in job.artifacts
        )
        embed["fields"].append({"name": "Artifacts", "value": _fit(links, MAX_FIELD_VALUE)})
    if job.agent is not None:
        embed["fields"].extend(_agent_fields(job.agent))
    if card.total_lines > len(card.tail):
        embed["footer"] = {"text": f"{card.total_lines} lines in total: {logs_hint(job.id)}"}
    others = len(embed["title"]) + len(embed.get("footer", {}).get("text", ""))
    others += sum(len(field["name"]) + len(field["value"]) for field in embed["fields"])
    embed["description"] = _card_description(card, min(MAX_EMBED_DESCRIPTION, MAX_EMBED_TOTAL - others))
    content, components = status_line, []
    if card.web_url:
        button = link_button(VIEW_LIVE, card.web_url)
        if button is not None:
            components = with_link_row([], button)
        elif len(status_line) + 1 + len(view_live_line(card.web_url)) <= MAX_CONTENT:
            content = status_line + "\n" + view_live_line(card.web_url)  # shown whole, never cut
    return {"content": _fit(content, MAX_CONTENT), "embeds": [embed], "allowed_mentions": NO_MENTIONS, "components": components}


def _agent_fields(summary: AgentSummary) -> list[Payload]:
    fields: list[Payload] = [{"name": "Usage", "value": _fit(markdown_safe(agent_usage_line(summary)), MAX_FIELD_VALUE)}]
    files = files_changed_lines(summary)
    if files:
        title, *rows = files
        value = "\n".join([markdown_safe(title.removeprefix("Files changed: ")), *(markdown_safe(row.strip()) for row in rows)])
        fields.append({"name": "Files changed", "value": _fit(value, MAX_FIELD_VALUE)})
    return fields


def _card_description(card: JobCard, budget: int) -> str:
    """Where, why it ended, the agent's answer, and as many of the last lines as fit (newest kept)."""
    job = card.job
    lines = render_lines(card)
    head = [lines[1]]  # "<summary> · requested by <name>"
    outcome = outcome_line(job)
    if outcome:
        head.append(outcome)
    truncated = truncated_output_line(job)
    if truncated:
        head.append(truncated)
    text = neutralise_mentions("\n".join(head))
    summary = job.agent
    if summary is not None and summary.answer:
        text += "\n\n" + answer_markdown(summary.answer, job.id, budget - len(text) - 2)
    if summary is not None and summary.answer and job.state is JobState.SUCCEEDED:
        return _fit(text, budget)
    if not card.tail:
        return _fit(text + "\nNo output.", budget)
    room = budget - len(text) - len("\nLast lines:\n```\n\n```") - 2
    tail: list[str] = []
    for line in reversed(card.tail):
        piece = code_safe(line)[:MAX_CONTENT]
        if len(piece) + 1 > room:
            break
        tail.insert(0, piece)
        room -= len(piece) + 1
    return text + "\nLast lines:\n```\n" + "\n".join(tail) + "\n```" if tail else _fit(text + f"\n({logs_hint(job.id)})", budget)


def answer_markdown(answer: str, job_id: str, budget: int) -> str:
    """The agent's answer as Discord markdown within `budget` characters: cut near 1,500 with
    a pointer to all of it, code blocks closed, mentions neutralised outside code."""
    limit = ANSWER_CARD_CHARS
    while True:
        excerpt = answer_excerpt(answer, job_id, limit)
        whole = excerpt == answer.strip()
        body, pointer = (excerpt, "") if whole else excerpt.rsplit("\n", 1)
        text = _markdown_body(body) + ("" if whole else "\n" + pointer)
        if len(text) <= budget or limit <= 100:
            return _fit(text, max(budget, 1))
        limit = max(100, min(limit // 2, budget // 2))


def _markdown_body(markdown: str) -> str:
    out: list[str] = []
    in_code = False
    for line in markdown.split("\n"):
        if is_fence_line(line):
            in_code = not in_code
            out.append(line)
        else:
            out.append(line if in_code else neutralise_mentions(line))
    if in_code:
        out.append(FENCE)
    return "\n".join(out)


def _link_text(name: str) -> str:
    return name.replace("[", "(").replace("]", ")")[:100] or "link"


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
