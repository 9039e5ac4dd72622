"""Block Kit rendering: escaping, Slack's size limits, code blocks that always close."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fakes.slack import unescape
from opendispatch.adapters.slack.render import (
    MESSAGE_BLOCK_CHARS,
    SECTION_LIMIT,
    TEXT_LIMIT,
    artifact_link,
    block_chars,
    render,
    render_card,
    render_live,
)
from opendispatch.domain.job import Artifact, Conversation, Job, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.messages import JobCard, LiveOutput, LogExcerpt, Notice

JOB = Job.queued(
    "j-0123abcd", JobSpec(task="t", agent=AgentKind.SHELL, repo="acme/api"), Conversation("slack", "C1"), User("U1", "alice"), at=0.0
)


def sections(blocks: tuple[dict, ...]) -> list[str]:  # type: ignore[type-arg]
    return [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]


def code_lines(blocks: tuple[dict, ...]) -> list[str]:  # type: ignore[type-arg]
    lines: list[str] = []
    for text in sections(blocks):
        assert text.startswith("```\n") and text.endswith("\n```"), text[:40]
        lines.extend(unescape(text[4:-4]).split("\n"))
    return lines


def live(lines: list[str], sealed: bool = False) -> LiveOutput:
    return LiveOutput(job=JOB, page=0, lines=tuple(lines), omitted=0, elapsed_s=3.0, sealed=sealed)


def test_log_text_is_escaped_so_it_cannot_ping_or_link() -> None:
    message = render_live(live(["<!channel> deploy", "see <http://evil|here> & more", "```not the end"]))
    body = "\n".join(sections(message.blocks))
    assert "<!channel>" not in body and "<http" not in body and "&lt;!channel&gt;" in body
    assert body.count("```") == 2  # a fence in the log cannot close the block early
    assert code_lines(message.blocks) == ["<!channel> deploy", "see <http://evil|here> & more", "```not the end"]
    assert "<!channel>" not in message.text


def test_a_live_page_has_a_stop_button_until_it_is_sealed() -> None:
    running = render_live(live(["a"]))
    assert running.blocks[-1]["type"] == "actions"
    button = running.blocks[-1]["elements"][0]
    assert button["action_id"] == "od_stop" and button["value"] == JOB.id and "confirm" in button
    assert render_live(live(["a"], sealed=True)).blocks[-1]["type"] == "section"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="ab <>&`\n\t é", max_size=400), max_size=60))
def test_any_live_page_fits_slack_and_keeps_its_newest_lines(lines: list[str]) -> None:
    lines = [line.replace("\n", " ") for line in lines]  # the buffer hands us single lines
    message = render_live(live(lines))
    assert len(message.blocks) <= 50 and block_chars(message.blocks) <= MESSAGE_BLOCK_CHARS + 200
    assert all(len(text) <= SECTION_LIMIT for text in sections(message.blocks))
    shown = code_lines(message.blocks)
    if lines:
        assert shown == lines[len(lines) - len(shown):]  # a suffix: only the oldest may be left out


def test_a_page_of_worst_case_characters_still_fits() -> None:
    lines = ["&<>" * 100] * 10  # 3,000 characters that escape to 13,000
    message = render_live(live(lines))
    assert block_chars(message.blocks) <= MESSAGE_BLOCK_CHARS + 200
    assert "earlier line" in str(message.blocks[1])  # says that lines were left out


def test_the_card_shows_status_exit_code_duration_where_and_artifacts_as_links() -> None:
    job = JOB.starting(at=1.0).running().succeeded(at=64.0, exit_code=0)
    job = job.with_artifacts((Artifact("PR #7", "https://github.com/acme/api/pull/7", "pr"), Artifact("x<y", "javascript:x")))
    card = render_card(JobCard(job=job, tail=("ok",), total_lines=40, duration_s=63.0))
    texts = str(card.blocks)
    assert card.blocks[0]["type"] == "header" and "Job j-0123abcd" in card.blocks[0]["text"]["text"]
    for field in ("*Status*", "*Exit code*", "*Duration*\\n1m", "*Repository*\\nacme/api", "*Branch*\\nmain", "*Agent*\\nshell"):
        assert field in texts, field
    assert "<https://github.com/acme/api/pull/7|PR #7>" in texts and "x&lt;y: javascript:x" in texts
    assert "40 lines in total: /od-logs j-0123abcd" in texts


def test_artifact_links_are_only_made_for_web_urls() -> None:
    assert artifact_link("PR #7", "https://github.com/o/r/pull/7") == "<https://github.com/o/r/pull/7|PR #7>"
    assert artifact_link("a|b<c>", "https://x.test/?a=1&b=2") == "<https://x.test/?a=1&amp;b=2|a¦b&lt;c&gt;>"
    assert artifact_link("evil", "javascript:alert(1)") == "evil: javascript:alert(1)"
    assert artifact_link("sp", "https://x.test/a b") == "sp: https://x.test/a b"


def test_long_logs_and_notices_are_split_into_messages_that_each_render_as_code() -> None:
    excerpt = LogExcerpt(job=JOB, lines=tuple(f"line {i} <{i}>" for i in range(2000)), total_lines=2000)
    parts = render(excerpt)
    assert len(parts) > 5
    for part in parts:
        assert len(part.text) <= TEXT_LIMIT and part.text.count("```") % 2 == 0
    shown = [line for part in parts for line in part.text.split("\n") if line.startswith("line ")]
    assert [unescape(line) for line in shown] == list(excerpt.lines)
    assert render(Notice("use <this> & that"))[0].text == "use &lt;this&gt; &amp; that"
