"""An agent's progress and its card facts in Teams: text runs for progress, the TextBlock
markdown subset for the answer, code as monospace runs, within the activity size limit.

The activities are posted to the loopback Bot Connector (which refuses oversized ones) the
way TeamsChat posts them; the assertions read the cards it received.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import trio

from fakes.teams import CHANNEL, card_text
from opendispatch.adapters.teams.cards import answer_blocks, render_activities
from opendispatch.adapters.teams.connector import BotConnector, Target
from opendispatch.adapters.teams.credentials import ConnectorCredentials
from opendispatch.adapters.teams.outbox import Outbox
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
from teams_rig import open_cloud, settings_for

CONVERSATION = f"{CHANNEL};messageid=1632474000000"
JOB = Job.queued(
    "j-1a2b3c4d", JobSpec(repo="acme/api", task="fix", agent=AgentKind.CLAUDE),
    Conversation("teams", CHANNEL), User("u", "Alice"), at=0.0,
).starting(at=1.0).running()

ANSWER = """## Summary
I fixed the **flaky test** (it raced on _startup_).

Changes:
- see [the PR](https://github.com/acme/api/pull/7)
* and [a file](file:///etc/passwd)
1. numbered

```python
print("**not bold**")
```
> a quote"""


def progress() -> ProgressView:
    agent = AgentProgress()
    for event in (
        AgentStarted(agent="claude", model="claude-sonnet-4-5"),
        ToolStarted("t1", "Bash", "npm test **all**"),
        ToolFinished("t1", "Bash", "npm test **all**"),
        ToolStarted("t2", "Bash", "pytest -q"),
        UsageReported(input_tokens=12_300, output_tokens=1_200),
        PlanUpdated((PlanItem("fix", PlanStatus.COMPLETED),)),
        AgentText("Running _pytest_ now"),
    ):
        agent.apply(event)
    return agent.view()


def summary(answer: str = ANSWER) -> AgentSummary:
    return AgentSummary(
        answer=answer, ok=True, cost_usd=0.42, input_tokens=12_300, output_tokens=1_200, turns=3,
        model="claude-sonnet-4-5", files=(FileChange("src/app.py", 10, 2), FileChange("README.md", 1, 0)),
        files_summary="2 files changed",
    )


async def through_teams(message: ChatMessage) -> dict[str, Any]:
    """The card of the activity the Bot Connector received for `message`."""
    async with open_cloud() as cloud:
        settings = settings_for(cloud)
        async with httpx.AsyncClient(timeout=5) as http, trio.open_nursery() as nursery:
            outbox = Outbox(BotConnector(http, ConnectorCredentials(http, settings)), nursery, settings)
            [activity] = render_activities(message)
            with trio.fail_after(15):
                activity_id = await outbox.post(Target(cloud.service_url, CONVERSATION), activity)
            nursery.cancel_scope.cancel()
        card = cloud.activities[activity_id].card
        assert card is not None
        raw = json.dumps(card)
        assert "\\u001b" not in raw and "tool_start" not in raw and '"v": 1' not in raw
        return card


async def test_the_live_card_shows_progress_as_text_runs_under_the_output() -> None:
    page = LiveOutput(job=JOB, page=0, lines=("3 passed",), omitted=0, elapsed_s=7.0, sealed=False, progress=progress())
    card = await through_teams(page)
    output, steps = card["body"][-2], card["body"][-1]
    assert output["inlines"][0] == {"type": "TextRun", "text": "3 passed", "fontType": "Monospace"}
    assert steps["type"] == "RichTextBlock"  # text runs: never read as markdown
    usage, rest = steps["inlines"]
    assert usage == {"type": "TextRun", "text": "── agent · 12.3k tokens in · 1.2k out · ~$0.055", "isSubtle": True}
    assert rest["text"].split("\n") == ["", "▶ Now: Bash: pytest -q", "✓ Bash: npm test **all**", "☰ Plan 1/1 done",
                                        "💬 Running _pytest_ now"]
    assert card["actions"][0]["title"] == "Stop"


async def test_the_final_card_shows_usage_files_and_the_answer_without_the_last_lines() -> None:
    ended = JOB.succeeded(at=62.0).with_agent(summary())
    card = await through_teams(JobCard(job=ended, tail=("raw tail line",), total_lines=1, duration_s=61))
    facts = {f["title"]: f["value"] for f in card["body"][1]["facts"]}
    assert facts["Usage"] == "12.3k tokens in · 1.2k out · $0.42 · 3 turns · claude-sonnet-4-5"
    texts = [(block["type"], block.get("text") or block["inlines"][0]["text"]) for block in card["body"][2:]]
    assert texts == [
        ("TextBlock", "Files changed: 2 files changed"),
        ("RichTextBlock", "src/app.py +10 −2\nREADME.md +1 −0"),
        ("TextBlock", "Answer"),
        ("TextBlock", "**Summary**\n\nI fixed the **flaky test** (it raced on _startup_)."),
        ("TextBlock", "Changes:\n\n- see [the PR](https://github.com/acme/api/pull/7)\r- and a file (file:///etc/passwd)\r1. numbered"),
        ("RichTextBlock", 'print("**not bold**")'),
        ("TextBlock", "a quote"),
    ]
    assert card["body"][7]["inlines"][0]["fontType"] == "Monospace"
    assert "raw tail line" not in card_text(card) and "Last lines" not in card_text(card)


async def test_failures_at_the_new_stages_read_like_the_others() -> None:
    reason = "stopped: cost cap $2.50 reached at $2.61"
    capped = JOB.failed(FailureStage.COST_CAP, reason, at=62.0).with_agent(summary("Half done."))
    card = await through_teams(JobCard(job=capped, tail=("step 9",), total_lines=1, duration_s=61))
    facts = {f["title"]: f["value"] for f in card["body"][1]["facts"]}
    assert facts["Failed at cost cap"] == reason
    assert "Half done." in card_text(card) and "Last lines" in card_text(card) and "step 9" in card_text(card)
    refused = JOB.failed(FailureStage.MODEL_API, "the model API was overloaded", at=9.0)
    card = await through_teams(JobCard(job=refused, tail=(), total_lines=0, duration_s=8))
    assert {f["title"]: f["value"] for f in card["body"][1]["facts"]}["Failed at model API"] == "the model API was overloaded"


async def test_a_very_long_answer_is_cut_with_a_pointer() -> None:
    long_answer = "Intro\n```\n" + "\n".join(f"line {n} " + "x" * 80 for n in range(3000)) + "\n```\nthe end"
    ended = JOB.succeeded(at=62.0).with_agent(summary(long_answer))
    card = await through_teams(JobCard(job=ended, tail=(), total_lines=3002, duration_s=61))
    text = card_text(card)
    assert "… (the full answer: /od-logs j-1a2b3c4d)" in text and "the end" not in text
    code = next(block for block in card["body"] if block.get("inlines", [{}])[0].get("text", "").startswith("line 0 "))
    assert len(code["inlines"][0]["text"]) < 1600
    assert card["body"][-2]["text"] == "… (the full answer: /od-logs j-1a2b3c4d)"  # after the code, not in it


def test_answer_blocks_keep_only_web_links_and_close_open_code() -> None:
    [block] = answer_blocks("[x](javascript:alert(1)) and [y](https://y.test)")
    assert block["text"] == "x (javascript:alert(1)) and [y](https://y.test)"
    prose, code = answer_blocks("# **Title**\n```\nunclosed")
    assert prose["text"] == "**Title**" and code["inlines"][0]["text"] == "unclosed"
