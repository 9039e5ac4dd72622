"""An agent's progress and its card facts in Slack: mrkdwn converted, escaped, within limits.

The live page and the card are sent through the real adapter to the loopback fake Slack,
which checks Block Kit's limits; the assertions read the JSON it received.
"""

from __future__ import annotations

import json

from fakes.slack import BLOCKS_CHARS_LIMIT, SECTION_LIMIT, FakeMessage, block_text_chars, open_fake_slack
from opendispatch.adapters.slack import SlackMode, open_slack_chat
from opendispatch.adapters.slack.markdown import to_mrkdwn
from opendispatch.domain.agent_events import (
    AgentStarted,
    AgentText,
    FileChange,
    PlanItem,
    PlanStatus,
    PlanUpdated,
    ToolFinished,
    ToolStarted,
    UsageReported,
)
from opendispatch.domain.agent_progress import AgentProgress, AgentSummary, ProgressView
from opendispatch.domain.job import Conversation, FailureStage, Job, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.messages import ChatMessage, JobCard, LiveOutput
from slack_stack import settings_for

CHANNEL = "C0DEV"
JOB = Job.queued(
    "j-0123abcd", JobSpec(task="fix the tests", agent=AgentKind.CLAUDE, repo="acme/api"),
    Conversation("slack", CHANNEL), User("U1", "alice"), at=0.0,
).starting(at=1.0).running()

ANSWER = """# Summary
I fixed the **flaky test** in `tests/test_api.py` (it raced on *startup*).

- see [the PR](https://github.com/acme/api/pull/7?a=1&b=2)
- and [a file](file:///etc/passwd), not a link
- <!channel> & <http://evil|here> stay text

```python
if a < b:
    print("**not bold**")
```
"""


def progress() -> ProgressView:
    agent = AgentProgress()
    for event in (
        AgentStarted(agent="claude", model="claude-sonnet-4-5", session_id="s-1"),
        ToolStarted("t1", "Bash", "npm test <!channel>"),
        ToolFinished("t1", "Bash", "npm test <!channel>", ok=False, excerpt='{"type":"tool_result"}'),
        ToolStarted("t2", "Edit", "src/a&b.py"),
        ToolFinished("t2", "Edit", "src/a&b.py"),
        ToolStarted("t3", "Bash", "pytest -q"),
        UsageReported(input_tokens=12_300, output_tokens=1_200),
        PlanUpdated((PlanItem("fix", PlanStatus.COMPLETED), PlanItem("test it", PlanStatus.IN_PROGRESS))),
        AgentText("Running *pytest* now <@U123>"),
    ):
        agent.apply(event)
    return agent.view()


def summary(answer: str = ANSWER, **changes: object) -> AgentSummary:
    values: dict[str, object] = dict(
        answer=answer, ok=True, cost_usd=0.42, input_tokens=12_300, output_tokens=1_200, turns=3,
        model="claude-sonnet-4-5",
        files=(FileChange("src/app.py", 10, 2), FileChange("tests/test_api.py", 2, 1)),
        files_summary="2 files changed, 12 insertions(+), 3 deletions(-)",
    )
    values.update(changes)
    return AgentSummary(**values)  # type: ignore[arg-type]


async def through_slack(message: ChatMessage) -> FakeMessage:
    async with open_fake_slack() as fake:
        async with open_slack_chat(settings_for(fake, SlackMode.HTTP)) as chat:
            await chat.send(Conversation("slack", CHANNEL), message)
        [posted] = fake.channel_messages(CHANNEL)
        return posted


def assert_clean(posted: FakeMessage) -> None:
    raw = json.dumps({"text": posted.text, "blocks": posted.blocks})
    assert "\\u001b" not in raw and "\x1b" not in raw  # no terminal escapes
    assert '"tool_result"' not in raw and "tool_start" not in raw  # no raw agent JSON
    assert "<!channel>" not in raw and "<@U123>" not in raw and "<http://evil" not in raw
    assert len(posted.blocks) <= 50 and block_text_chars(posted.blocks) <= BLOCKS_CHARS_LIMIT


async def test_the_live_page_shows_progress_under_the_code_block_escaped() -> None:
    page = LiveOutput(job=JOB, page=0, lines=("collecting…", "3 passed"), omitted=0, elapsed_s=7.0, sealed=False,
                      progress=progress())
    posted = await through_slack(page)
    assert posted.code_lines() == ["collecting…", "3 passed"]  # progress is not in the code block
    kinds = [block["type"] for block in posted.blocks]
    assert kinds == ["context", "section", "context", "section", "actions"]
    assert posted.blocks[2]["elements"][0]["text"] == "── agent · 12.3k tokens in · 1.2k out · ~$0.055"
    steps = posted.blocks[3]["text"]["text"].split("\n")
    assert steps == [
        "▶ Now: Bash: pytest -q",
        "✗ Bash: npm test &lt;!channel&gt;",
        "✓ Edit: src/a&amp;b.py",
        "☰ Plan 1/2 done · now: test it",
        "💬 Running *pytest* now &lt;@U123&gt;",
    ]
    assert "Now: Bash: pytest -q" in posted.text  # the notification text has it too
    assert_clean(posted)


async def test_a_full_page_with_progress_still_fits() -> None:
    lines = tuple("&<>" * 100 for _ in range(10))  # escapes to 13,000 characters
    page = LiveOutput(job=JOB, page=0, lines=lines, omitted=0, elapsed_s=7.0, sealed=False, progress=progress())
    posted = await through_slack(page)
    assert_clean(posted)
    assert "earlier line" in json.dumps(posted.blocks) and "Now: Bash: pytest -q" in json.dumps(posted.blocks)


async def test_the_card_shows_usage_files_and_the_answer_as_mrkdwn_without_the_last_lines() -> None:
    job = JOB.succeeded(at=64.0).with_agent(summary())
    posted = await through_slack(JobCard(job=job, tail=("raw tail line",), total_lines=40, duration_s=63.0))
    texts = posted.block_texts()
    assert "12.3k tokens in · 1.2k out · $0.42 · 3 turns · claude-sonnet-4-5" in texts
    assert ("*Files changed: 2 files changed, 12 insertions(+), 3 deletions(-)*\n"
            "• src/app.py +10 −2\n• tests/test_api.py +2 −1") in texts
    answer = next(text for text in texts if text.startswith("*Summary*"))
    assert "I fixed the *flaky test* in `tests/test_api.py` (it raced on _startup_)." in answer
    assert "• see <https://github.com/acme/api/pull/7?a=1&amp;b=2|the PR>" in answer
    assert "• and a file (file:///etc/passwd), not a link" in answer
    assert "• &lt;!channel&gt; &amp; &lt;http://evil|here&gt; stay text" in answer
    assert '```\nif a &lt; b:\n    print("**not bold**")\n```' in answer
    assert "Last lines:" not in texts and "raw tail line" not in json.dumps(posted.blocks)
    assert "40 lines in total: /od-logs j-0123abcd" in texts
    assert_clean(posted)


async def test_a_failed_card_keeps_the_last_lines_and_names_the_cost_cap() -> None:
    reason = "stopped: cost cap $2.50 reached at $2.61"
    job = JOB.failed(FailureStage.COST_CAP, reason, at=64.0).with_agent(summary(answer="Half done.", ok=None))
    posted = await through_slack(JobCard(job=job, tail=("step 9",), total_lines=1, duration_s=63.0))
    texts = posted.block_texts()
    assert f"Failed at cost cap: {reason}" in texts
    assert "Half done." in texts and "Last lines:" in texts and posted.code_lines() == ["step 9"]


async def test_a_model_api_failure_reads_like_any_other() -> None:
    job = JOB.failed(FailureStage.MODEL_API, "the model API was overloaded; try again later", at=9.0)
    posted = await through_slack(JobCard(job=job, tail=(), total_lines=0, duration_s=8.0))
    assert "Failed at model API: the model API was overloaded; try again later" in posted.block_texts()


async def test_a_very_long_answer_is_cut_with_a_pointer_and_the_card_fits() -> None:
    long_answer = "\n".join(f"- item {n} & <tag> **bold** `code`" for n in range(2000))
    job = JOB.succeeded(at=64.0).with_agent(summary(answer=long_answer))
    tail = tuple("&<>" * 160 for _ in range(10))
    failed = JOB.failed(FailureStage.AGENT, "exit 1", at=64.0, exit_code=1).with_agent(summary(answer=long_answer))
    for card in (JobCard(job=job, tail=tail, total_lines=5000, duration_s=1.0),
                 JobCard(job=failed, tail=tail, total_lines=5000, duration_s=1.0)):
        posted = await through_slack(card)
        assert_clean(posted)
        assert all(len(text) <= SECTION_LIMIT for text in posted.block_texts())
        assert "… (the full answer: /od-logs j-0123abcd)" in posted.block_texts()
        assert "• item 0 &amp; &lt;tag&gt; *bold* `code`" in json.dumps(posted.blocks, ensure_ascii=False)


# --- the markdown converter -------------------------------------------------------------------


def test_emphasis_headings_and_strikes_become_mrkdwn() -> None:
    assert to_mrkdwn("**bold** and __bold__ and *it* and _it_ and ~~gone~~") == "*bold* and *bold* and _it_ and _it_ and ~gone~"
    assert to_mrkdwn("# Title\n### Deeper **one** ###") == "*Title*\n*Deeper one*"
    assert to_mrkdwn("**bold with _italic_ inside**") == "*bold with _italic_ inside*"
    assert to_mrkdwn("2 * 3 * 4 and snake_case_name") == "2 * 3 * 4 and snake_case_name"


def test_only_web_links_become_slack_links() -> None:
    assert to_mrkdwn("[PR #7](https://github.com/o/r/pull/7)") == "<https://github.com/o/r/pull/7|PR #7>"
    assert to_mrkdwn("[a|b](http://x.test/?a=1&b=2)") == "<http://x.test/?a=1&amp;b=2|a¦b>"
    assert to_mrkdwn("[**x**](https://x.test)") == "<https://x.test|x>"
    assert to_mrkdwn("[evil](javascript:alert(1))") == "[evil](javascript:alert(1))"
    assert to_mrkdwn("[f](file:///etc/passwd)") == "f (file:///etc/passwd)"


def test_text_is_escaped_outside_what_we_generate() -> None:
    assert to_mrkdwn("<!channel> & <@U1> <http://x|y>") == "&lt;!channel&gt; &amp; &lt;@U1&gt; &lt;http://x|y&gt;"
    assert to_mrkdwn("`a <b> & **c**`") == "`a &lt;b&gt; &amp; **c**`"
    assert to_mrkdwn("**<!here>**") == "*&lt;!here&gt;*"


def test_lists_and_quotes() -> None:
    assert to_mrkdwn("- one\n* two\n  + three\n1. four") == "• one\n• two\n  • three\n1. four"
    assert to_mrkdwn("> quoted **x**") == "> quoted *x*"


def test_code_blocks_stay_code_escaped_and_cannot_close_early() -> None:
    assert to_mrkdwn("```python\nx = a < b  # **no**\n```\nafter **b**") == "```\nx = a &lt; b  # **no**\n```\nafter *b*"
    assert to_mrkdwn("~~~\nprint('```')\n~~~") == "```\nprint('`\u200b`\u200b`')\n```"
    assert to_mrkdwn("text\n```\nunclosed <x>") == "text\n```\nunclosed &lt;x&gt;\n```"
