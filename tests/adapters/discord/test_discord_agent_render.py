"""An agent's progress and its card facts in Discord: markdown-safe, mention-proof, within limits.

Sent through the real adapter to the loopback fake Discord (which enforces the content and
embed limits); the assertions read the message bodies it stored.
"""

from __future__ import annotations

import json
from typing import Any

from discord_stack import discord_settings
from fakes.discord import open_fake_discord
from opendispatch.adapters.discord import open_discord_chat
from opendispatch.adapters.discord.payloads import markdown_safe, neutralise_mentions
from opendispatch.domain.agent_events import (
    AgentStarted,
    AgentText,
    FileChange,
    PlanItem,
    PlanStatus,
    PlanUpdated,
    ToolFinished,
    UsageReported,
)
from opendispatch.domain.agent_progress import AgentProgress, AgentSummary, ProgressView
from opendispatch.domain.job import Conversation, FailureStage, Job, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.messages import ChatMessage, JobCard, LiveOutput

ANSWER = """# Summary
I fixed the **flaky test** in `tests/test_api.py`. @everyone <@123> see [the PR](https://github.com/acme/api/pull/7).

```python
print("@here")
```
"""


def job(channel: str) -> Job:
    spec = JobSpec(task="fix the tests", agent=AgentKind.OPENCODE, repo="acme/api")
    return Job.queued("j-0123abcd", spec, Conversation("discord", channel), User("U1", "alice"), at=0.0).starting(at=1.0).running()


def progress() -> ProgressView:
    """OpenCode reports tools only once finished: the view says "Last step"."""
    agent = AgentProgress()
    for event in (
        AgentStarted(agent="opencode", model="anthropic/claude-sonnet-4-5"),
        ToolFinished("t1", "bash", "npm test -- --grep *slow*", ok=False),
        ToolFinished("t2", "edit", "src/__init__.py"),
        UsageReported(input_tokens=2_000, output_tokens=300, cost_usd=0.0123),
        PlanUpdated((PlanItem("fix", PlanStatus.IN_PROGRESS),)),
        AgentText("Pinging @everyone <@123> with `code`"),
    ):
        agent.apply(event)
    return agent.view()


def summary(answer: str = ANSWER) -> AgentSummary:
    return AgentSummary(
        answer=answer, ok=True, cost_usd=0.42, input_tokens=12_300, output_tokens=1_200, turns=3,
        model="claude-sonnet-4-5", files=(FileChange("src/app.py", 10, 2),), files_summary="1 file changed",
    )


async def through_discord(make: Any) -> list[dict[str, Any]]:
    async with open_fake_discord() as fake:
        channel = fake.add_channel()
        async with open_discord_chat(discord_settings(fake)) as chat:
            await chat.send(Conversation("discord", channel), make(channel))
        return fake.in_channel(channel)


def assert_clean(message: dict[str, Any]) -> None:
    raw = json.dumps(message)
    assert "\\u001b" not in raw and "tool_start" not in raw and '"v": 1' not in raw
    assert "@everyone" not in raw and "@here" not in raw.replace('print(\\"@here\\")', "")
    assert "<@1" not in raw


async def test_the_live_page_carries_the_progress_as_an_embed_under_the_code_block() -> None:
    def page(channel: str) -> ChatMessage:
        return LiveOutput(job=job(channel), page=0, lines=("3 passed",), omitted=0, elapsed_s=7.0, sealed=False,
                          progress=progress())

    [message] = await through_discord(page)
    assert message["content"].endswith("```\n3 passed\n```")  # the output alone in the code block
    [embed] = message["embeds"]
    assert embed["footer"]["text"] == "── agent · 2k tokens in · 300 out · $0.012"
    assert embed["description"].split("\n") == [
        "Last step\\: ✓ edit\\: src/\\_\\_init\\_\\_.py",
        "✗ bash\\: npm test \\-\\- \\-\\-grep \\*slow\\*",
        "☰ Plan 0/1 done · now\\: fix",
        "💬 Pinging @\u200beveryone \\<\u200b@123\\> with \\`code\\`",
    ]
    assert message["components"][0]["components"][0]["label"] == "Stop"
    assert_clean(message)


async def test_the_card_shows_usage_files_and_the_answer_as_markdown() -> None:
    def card(channel: str) -> ChatMessage:
        ended = job(channel).succeeded(at=64.0).with_agent(summary())
        return JobCard(job=ended, tail=("raw tail line",), total_lines=40, duration_s=63.0)

    [message] = await through_discord(card)
    [embed] = message["embeds"]
    fields = {field["name"]: field["value"] for field in embed["fields"]}
    assert fields["Usage"] == "12.3k tokens in · 1.2k out · $0.42 · 3 turns · claude\\-sonnet\\-4\\-5"
    assert fields["Files changed"] == "1 file changed\nsrc/app.py +10 −2"
    description = embed["description"]
    assert "# Summary\nI fixed the **flaky test** in `tests/test_api.py`." in description
    assert "@\u200beveryone <\u200b@123> see [the PR](https://github.com/acme/api/pull/7)" in description
    assert '```python\nprint("@here")\n```' in description  # code is left exactly as written
    assert "Last lines" not in description and "raw tail line" not in description
    assert embed["footer"]["text"] == "40 lines in total: /od-logs j-0123abcd"
    assert_clean(message)


async def test_failures_at_the_new_stages_read_like_the_others() -> None:
    reason = "stopped: cost cap $2.50 reached at $2.61"

    def capped(channel: str) -> ChatMessage:
        ended = job(channel).failed(FailureStage.COST_CAP, reason, at=64.0).with_agent(summary("Half done."))
        return JobCard(job=ended, tail=("step 9",), total_lines=1, duration_s=63.0)

    def refused(channel: str) -> ChatMessage:
        ended = job(channel).failed(FailureStage.MODEL_API, "the model API was overloaded", at=9.0)
        return JobCard(job=ended, tail=(), total_lines=0, duration_s=8.0)

    [message] = await through_discord(capped)
    description = message["embeds"][0]["description"]
    assert f"Failed at cost cap: {reason}" in description
    assert "Half done." in description and "Last lines:\n```\nstep 9\n```" in description
    [message] = await through_discord(refused)
    assert "Failed at model API: the model API was overloaded" in message["embeds"][0]["description"]


async def test_a_very_long_answer_is_cut_with_a_pointer_within_the_embed_limits() -> None:
    long_answer = "Intro\n```\n" + "\n".join(f"line {n} " + "x" * 80 for n in range(500)) + "\n```\nthe end"

    def card(channel: str) -> ChatMessage:
        ended = job(channel).failed(FailureStage.AGENT, "exit 1", at=64.0, exit_code=1)
        ended = ended.with_artifacts(()).with_agent(summary(long_answer))
        return JobCard(job=ended, tail=tuple("y" * 1900 for _ in range(10)), total_lines=5000, duration_s=1.0)

    [message] = await through_discord(card)  # the fake refuses anything over Discord's limits
    description = message["embeds"][0]["description"]
    assert len(description) <= 4096
    assert "… (the full answer: /od-logs j-0123abcd)" in description
    answer_part = description.split("… (the full answer")[0]
    assert answer_part.count("```") % 2 == 0  # the code block cut short is closed
    assert "the end" not in description


def test_markdown_safe_text_and_mentions() -> None:
    assert markdown_safe("a*b_c~d`e|f") == "a\\*b\\_c\\~d\\`e\\|f"
    assert markdown_safe("[x](https://y)") == "\\[x\\](https\\://y)"
    assert neutralise_mentions("@everyone @here <@1> <@&2> a@b") == "@\u200beveryone @\u200bhere <\u200b@1> <\u200b@&2> a@b"
