"""Chat messages as Slack messages: Block Kit for the job messages, mrkdwn text for the rest.

Every message also carries `text`, the plain rendering from `domain.render`, which Slack
shows in notifications and screen readers. Two Slack rules shape this module:

- user and log text is escaped (`&`, `<`, `>`), otherwise `<!channel>` in a log line would
  ping a whole channel and `<http://x|y>` would become a link; inside code blocks too.
- size: a section holds at most 3,000 characters, a message at most 50 blocks and, in
  practice, about 12,000 characters of block text. Long code is split into several sections
  with `split_message`, which closes and reopens the ``` fence at each cut.

An agent's progress (live) and its answer, usage and files changed (card) are shown natively:
progress as escaped text under the code block, the answer converted from markdown to mrkdwn
by `markdown.to_mrkdwn`.

An approval prompt shows the tool, its command/path/URL in a code block and the agent's
reason (all three come from the agent, so all escaped), with Approve / Approve for this job /
Deny buttons whose value is the request id; once decided it is edited to say the decision,
without buttons (a stale button would only earn an "already approved" answer).

A job with a web link gets a "View live" link button (a Block Kit `button` with a `url`) on
its channel message, in every version, and on its final card. Slack still reports a click on
a link button to our interactivity endpoint; its action id (`VIEW_LIVE_ACTION_ID`) is none of
`inbound.BUTTONS`, so the click is acknowledged and ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, assert_never

import attrs

from ...domain.agent_progress import AgentSummary
from ...domain.approvals import ApprovalRequest, ApprovalState
from ...domain.job import Job, JobState
from ...domain.job_spec import format_duration
from ...domain.messages import ApprovalPrompt, ChatMessage, JobAccepted, JobCard, JobTable, LiveOutput, LogExcerpt, Notice
from ...domain.output_buffer import split_message
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
    progress_lines,
    render_lines,
    render_state,
    render_text,
    state_word,
    VIEW_LIVE,
)
from .markdown import code_line as code_line
from .markdown import escape as escape
from .markdown import to_mrkdwn

STOP_ACTION_ID = "od_stop"
APPROVE_ACTION_ID = "od_approve"
APPROVE_FOR_JOB_ACTION_ID = "od_approve_job"
DENY_ACTION_ID = "od_deny"
#: The "View live" link button: it opens the job's web page; the click Slack reports is ignored.
VIEW_LIVE_ACTION_ID = "od_view_live"
#: How much of an approval's command/path/URL the prompt shows (the desk keeps 500 today);
#: text full of &, < and > is cut further, so that the escaped code block fits its section.
APPROVAL_DETAIL_CHARS = 1500
APPROVAL_REASON_CHARS = 1000
_BACKTICK_RUN = re.compile(r"`(?=`)")
SECTION_LIMIT = 3000
MESSAGE_BLOCK_CHARS = 11_000  # users hit msg_blocks_too_long near 13,000
TEXT_LIMIT = 3500  # Slack recommends at most 4,000 characters of `text`
FALLBACK_LIMIT = 3000
HEADER_LIMIT = 150
FIELD_LIMIT = 2000
CARD_LINE_LIMIT = 500  # one very long log line must not crowd the card; the file has it whole
BUTTON_URL_LIMIT = 3000  # a button's `url` (slack_sdk ButtonElement.url_max_length)

Block = dict[str, Any]


@attrs.frozen
class SlackMessage:
    """What `chat.postMessage` / `chat.update` get: `text` always, `blocks` when rich."""

    text: str
    blocks: tuple[Block, ...] = ()

    def args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"text": self.text}
        if self.blocks:
            args["blocks"] = list(self.blocks)
        return args


def code_block(lines: Sequence[str]) -> str:
    return "```\n" + "\n".join(code_line(line) for line in lines) + "\n```"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fallback_text(message: ChatMessage) -> str:
    return _cut(escape(render_text(message)), FALLBACK_LIMIT)


def section(mrkdwn: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(mrkdwn, SECTION_LIMIT)}}


def context(mrkdwn: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(mrkdwn, FIELD_LIMIT)}]}


def header(plain: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": _cut(plain, HEADER_LIMIT), "emoji": True}}


def code_sections(lines: Sequence[str]) -> list[Block]:
    """`lines` as one code block, cut into sections that each fit and each render as code."""
    if not lines:
        return []
    return [section(chunk) for chunk in split_message(code_block(lines), SECTION_LIMIT)]


def view_live_element(web_url: str) -> dict[str, Any] | None:
    """The "View live" link button, or None for a URL Slack would refuse on a button."""
    if not web_url.startswith(("https://", "http://")) or len(web_url) > BUTTON_URL_LIMIT:
        return None
    if any(c.isspace() or c in "<>|" for c in web_url):
        return None
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": VIEW_LIVE, "emoji": True},
        "url": web_url,
        "action_id": VIEW_LIVE_ACTION_ID,
    }


def view_live_blocks(web_url: str | None, *, stop: Job | None = None) -> list[Block]:
    """One actions block: Stop (while `stop` runs) and "View live" (when there is a link);
    a link no button can carry is shown as text instead."""
    elements: list[dict[str, Any]] = list(stop_button(stop)["elements"]) if stop is not None else []
    blocks: list[Block] = []
    if web_url:
        button = view_live_element(web_url)
        if button is not None:
            elements.append(button)
        else:
            blocks.append(context(escape(f"{VIEW_LIVE}: {web_url}")))
    if elements:
        blocks.append({"type": "actions", "elements": elements})
    return blocks


def stop_button(job: Job) -> Block:
    return {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Stop", "emoji": True},
                "style": "danger",
                "action_id": STOP_ACTION_ID,
                "value": job.id,
                "confirm": {
                    "title": {"type": "plain_text", "text": "Stop this job?"},
                    "text": {"type": "mrkdwn", "text": f"Job {job.id} will be cancelled and its sprite destroyed."},
                    "confirm": {"type": "plain_text", "text": "Stop it"},
                    "deny": {"type": "plain_text", "text": "Keep running"},
                },
            }
        ],
    }


def approval_buttons(request: ApprovalRequest) -> Block:
    """Approve / Approve for this job / Deny: each its own action id, the request id as value."""

    def button(text: str, action_id: str, style: str | None = None) -> dict[str, Any]:
        element: dict[str, Any] = {
            "type": "button",
            "text": {"type": "plain_text", "text": text, "emoji": True},
            "action_id": action_id,
            "value": request.id,
        }
        if style is not None:
            element["style"] = style
        return element

    return {
        "type": "actions",
        "elements": [
            button("Approve", APPROVE_ACTION_ID, "primary"),
            button("Approve for this job", APPROVE_FOR_JOB_ACTION_ID),
            button("Deny", DENY_ACTION_ID, "danger"),
        ],
    }


def block_chars(blocks: Iterable[Block]) -> int:
    """Characters of text in `blocks`, as Slack counts them toward its message size limit."""
    total = 0
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict):
            total += len(text.get("text", ""))
        for item in [*block.get("fields", ()), *block.get("elements", ())]:
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                total += len(item["text"])
    return total


# --- the messages ----------------------------------------------------------------------------


def render(message: ChatMessage) -> list[SlackMessage]:
    """One or more Slack messages (text-only messages that are too long are split)."""
    if isinstance(message, Notice):
        return _text_messages(escape(message.text))
    if isinstance(message, JobAccepted):
        return [render_accepted(message.job, live=True, web_url=message.web_url)]
    if isinstance(message, LiveOutput):
        return [render_live(message)]
    if isinstance(message, JobCard):
        return [render_card(message)]
    if isinstance(message, JobTable):
        lines = render_lines(message)
        return _text_messages(f"*{escape(lines[0])}*\n" + code_block(lines[1:]))
    if isinstance(message, LogExcerpt):
        lines = render_lines(message)
        return _text_messages(f"*{escape(lines[0])}*\n" + code_block(lines[1:]))
    if isinstance(message, ApprovalPrompt):
        return [render_approval(message)]
    assert_never(message)


def _text_messages(mrkdwn: str) -> list[SlackMessage]:
    return [SlackMessage(text=chunk) for chunk in split_message(mrkdwn, TEXT_LIMIT)] or [SlackMessage(text=" ")]


def render_approval(message: ApprovalPrompt) -> SlackMessage:
    """The prompt: what the agent wants to run and why, then the buttons or the decision."""
    job, request = message.job, message.request
    blocks: list[Block] = [section(f"✋ Job *{job.id}* asks to run {code_span(request.tool)}")]
    if request.detail:
        blocks.append(section(detail_block(request.detail)))
    if request.reason:
        blocks.append(section(f"*Why:* {escape(_cut(request.reason, APPROVAL_REASON_CHARS))}"))
    if request.state is ApprovalState.PENDING:
        blocks.append(
            context(
                f"Only {escape(job.requested_by.name)} (who started the job) or an admin can answer · "
                f"`/od-approve {request.id}` · `/od-approve {request.id} --job` · `/od-deny {request.id}`"
            )
        )
        blocks.append(approval_buttons(request))
    else:
        blocks.append(section(decision_text(request)))
    return SlackMessage(text=fallback_text(message), blocks=tuple(blocks))


def decision_text(request: ApprovalRequest) -> str:
    """`✅ *Approved* by alice for the rest of the job`, `⛔ *Denied* by root`, `⏰ *Timed out* …`."""
    who = f" by {escape(request.decided_by)}" if request.decided_by else ""
    if request.state is ApprovalState.APPROVED:
        scope = " for the rest of the job" if request.for_job else ""
        return f"✅ *Approved*{who}{scope}"
    if request.state is ApprovalState.DENIED:
        return f"⛔ *Denied*{who}"
    return "⏰ *Timed out*: nobody answered in time, so it was denied"


def code_span(text: str) -> str:
    """`text` as inline code: escaped, on one line, and unable to end the span early."""
    flat = " ".join(text.split()) or "?"
    return "`" + escape(_cut(flat, 100)).replace("`", "'") + "`"


def detail_block(detail: str) -> str:
    """A command, path or URL as a code block that fits one section, cut with "…" when long.
    No two backticks stay side by side (a zero-width space between them), so no run of them,
    however long, can end the block early."""
    keep = APPROVAL_DETAIL_CHARS
    while True:
        shown = detail if len(detail) <= keep else detail[:keep] + "…"
        block = code_block([_BACKTICK_RUN.sub("`\u200b", line) for line in shown.split("\n")])
        if len(block) <= SECTION_LIMIT:
            return block
        keep = keep * 2 // 3


def render_accepted(job: Job, *, live: bool, web_url: str | None = None) -> SlackMessage:
    """The channel message of a job; `live` adds the Stop button, the final version shows the
    state; both carry the "View live" button when the job has a web link."""
    summary = escape(job.spec.summary())
    requested = f"Requested by {escape(job.requested_by.name)} · timeout {format_duration(job.spec.timeout_s)}"
    if live:
        first = f"▶ Job *{job.id}* queued: {summary}"
        blocks = [section(first), context(f"{requested} · output in the thread"), *view_live_blocks(web_url, stop=job)]
        return SlackMessage(text=fallback_text(JobAccepted(job, web_url=web_url)), blocks=tuple(blocks))
    first = f"{STATE_ICONS[job.state]} Job *{job.id}* {state_word(job.state)}: {summary}"
    blocks = [section(first), context(f"{requested} · details in the thread"), *view_live_blocks(web_url)]
    return SlackMessage(text=_cut(escape(f"Job {job.id} {state_word(job.state)}: {job.spec.summary()}"), FALLBACK_LIMIT), blocks=tuple(blocks))


def render_live(message: LiveOutput) -> SlackMessage:
    """One page of live output; while the job runs it carries the Stop button."""
    lines = list(message.lines)
    omitted = message.omitted
    top = [context(escape(live_output_header(message)))]
    progress = progress_blocks(message)
    bottom = [] if message.sealed or message.job.is_finished else [stop_button(message.job)]
    while True:
        note = [context(escape(omitted_line(message.job.id, omitted)))] if omitted else []
        quiet = [context(NO_OUTPUT_YET)] if not lines and not omitted and not progress and not message.sealed else []
        blocks = [*top, *note, *code_sections(lines), *quiet, *progress, *bottom]
        if block_chars(blocks) <= MESSAGE_BLOCK_CHARS or len(lines) <= 1:
            return SlackMessage(text=fallback_text(message), blocks=tuple(blocks))
        # Only output full of &, < and > grows this much when escaped: show its newest part.
        dropped = max(1, len(lines) // 10)
        lines = lines[dropped:]
        omitted += dropped


def progress_blocks(message: LiveOutput) -> list[Block]:
    """The agent's work so far, under the output: its usage as context, the steps as text."""
    if message.progress is None:
        return []
    usage, *steps = progress_lines(message.progress)
    blocks = [context(escape(usage))]
    if steps:
        blocks.append(section("\n".join(escape(_cut(step, CARD_LINE_LIMIT)) for step in steps)))
    return blocks


def render_card(card: JobCard) -> SlackMessage:
    """The final card: status, exit code, duration, where it ran, artifacts, what the agent
    reported (usage, files changed, its answer) and the last lines, within Slack's limits.

    When it does not fit, the oldest last lines go first, then the answer is cut shorter
    (it always ends with where to read all of it).
    """
    tail = [_cut(line, CARD_LINE_LIMIT) for line in card.tail]
    answer_limit = ANSWER_CARD_CHARS
    while True:
        blocks = _card_blocks(card, tail, answer_limit)
        if block_chars(blocks) <= MESSAGE_BLOCK_CHARS and len(blocks) <= 50:
            return SlackMessage(text=fallback_text(card), blocks=tuple(blocks))
        if tail:
            tail = tail[max(1, len(tail) // 3) :]
        elif answer_limit > 200:
            answer_limit //= 2
        else:
            return SlackMessage(text=fallback_text(card), blocks=tuple(blocks[:50]))


def _card_blocks(card: JobCard, tail: list[str], answer_limit: int) -> list[Block]:
    job = card.job
    fields = [
        f"*Status*\n{render_state(job.state)}",
        f"*Exit code*\n{job.exit_code if job.exit_code is not None else '–'}",
        f"*Duration*\n{format_duration(card.duration_s)}",
        f"*Repository*\n{escape(job.spec.repo) if job.spec.repo else 'none'}",
        f"*Branch*\n{escape(job.spec.branch)}",
        f"*Agent*\n{job.spec.agent.value}",
        f"*Image*\n{escape(job.spec.image or 'default')}",
        f"*Requested by*\n{escape(job.requested_by.name)}",
    ]
    blocks: list[Block] = [
        header(f"{STATE_ICONS[job.state]} Job {job.id} {state_word(job.state)}"),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": _cut(f, FIELD_LIMIT)} for f in fields]},
        *view_live_blocks(card.web_url),  # near the top: trimming a long card never drops it
    ]
    outcome = _outcome(job)
    if outcome:
        blocks.append(section(escape(outcome)))
    truncated = truncated_output_line(job)
    if truncated:
        blocks.append(context(escape(truncated)))
    if job.artifacts:
        links = "\n".join(
            f"• {escape(artifact_line(job, a)) if a.is_file else artifact_link(a.name, a.url)}" for a in job.artifacts
        )
        blocks.append(section(f"*Artifacts*\n{links}"))
    summary = job.agent
    if summary is not None:
        blocks.extend(agent_blocks(summary, job.id, answer_limit))
    if summary is None or not summary.answer or job.state is not JobState.SUCCEEDED:
        if tail:
            blocks.append(context("Last lines:"))
            blocks.extend(code_sections(tail))
        else:
            blocks.append(context(escape(f"Last lines: {logs_hint(job.id)}") if card.tail else "No output."))
    if card.total_lines > len(card.tail):
        blocks.append(context(escape(f"{card.total_lines} lines in total: {logs_hint(job.id)}")))
    return blocks


def agent_blocks(summary: AgentSummary, job_id: str, answer_limit: int = ANSWER_CARD_CHARS) -> list[Block]:
    """Usage (cost, tokens, turns, model), files changed and the answer, as the card shows them."""
    blocks = [context(escape(agent_usage_line(summary)))]
    files = files_changed_lines(summary)
    if files:
        title, *rows = files
        listed = [escape(row.strip()) if row.strip().startswith("…") else "• " + escape(row.strip()) for row in rows]
        blocks.append(section("\n".join([f"*{escape(title)}*", *listed])))
    if summary.answer:
        body, pointer = split_excerpt(summary.answer, job_id, answer_limit)
        blocks.append(context("*Answer*"))
        blocks.extend(section(chunk) for chunk in split_message(to_mrkdwn(body), SECTION_LIMIT))
        if pointer:
            blocks.append(context(escape(pointer)))
    return blocks


def split_excerpt(answer: str, job_id: str, limit: int = ANSWER_CARD_CHARS) -> tuple[str, str | None]:
    """`answer_excerpt` as (the answer's text, the pointer to all of it or None when whole)."""
    excerpt = answer_excerpt(answer, job_id, limit)
    if excerpt == answer.strip():
        return excerpt, None
    body, _, pointer = excerpt.rpartition("\n")
    return body, pointer


def _outcome(job: Job) -> str | None:
    if job.state is JobState.CANCELLED:
        return f"🛑 Stopped by {job.cancelled_by or 'someone'}"
    if job.state is JobState.TIMED_OUT:
        return f"Timed out: it ran past its {format_duration(job.spec.timeout_s)} timeout"
    if job.failure is not None:
        verb = "Lost" if job.state is JobState.LOST else "Failed"
        return f"{verb} at {job.failure.stage.value}: {job.failure.reason}"
    return None


def artifact_link(name: str, url: str) -> str:
    """`<url|name>` for web links; anything else is shown as text, never as markup."""
    label = escape(name).replace("|", "¦") or "link"
    if url.startswith(("https://", "http://")) and not any(c in url for c in "<>| \t\n"):
        return f"<{url.replace('&', '&amp;')}|{label}>"
    return f"{label}: {escape(url)}"


def log_file_text(lines: Sequence[str]) -> str:
    """The attached full log: plain text, exactly the stored (already redacted) lines."""
    return "\n".join(lines) + "\n"
