"""Approval prompts in Discord (issue #22): a message in the job's thread with an action row of
Approve / Approve for this job / Deny; a press is the matching command by whoever pressed, so
the real dispatcher decides (owner or admin only; anyone else is answered privately, flags 64);
the prompt is edited to the decision without components."""

from __future__ import annotations

from typing import Any

import attrs
import trio

from discord_stack import DiscordStack, open_discord_stack
from fakes.discord import EPHEMERAL
from harness import FakeSidecar
from opendispatch.adapters.discord.interactions import parse_interaction
from opendispatch.adapters.discord.payloads import MAX_CONTENT, message_parts
from opendispatch.config import Config
from opendispatch.domain.approvals import ApprovalRequest, ApprovalState
from opendispatch.domain.job import Conversation, Job, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.messages import ApprovalPrompt
from opendispatch.domain.ownership import Ownership

ALICE_ID, BOB_ID, ROOT_ID = "530000000000000001", "530000000000000002", "530000000000000003"
#: Only root is an admin here: bob is neither the owner nor an admin.
CONFIG = Config.embedded(ownership=Ownership(admins=frozenset({ROOT_ID})))
CEILING_S = 20

JOB = Job.queued(
    "j-0123abcd", JobSpec(task="t", agent=AgentKind.CLAUDE), Conversation("discord", "1"), User("1", "alice"), at=0.0
)
REQUEST = ApprovalRequest(
    id="a-1a2b3c4d", job_id=JOB.id, tool="Bash", detail="git push", reason="Publish", rule="*", asked_at=0.0
)


async def job_asking(s: DiscordStack) -> tuple[FakeSidecar, str]:
    """An admin sets ask-all, alice runs a job; returns its sidecar and its thread's id."""
    config = await s.command("od-config", {"action": "set", "key": "approvals", "value": "ask-all"}, user_id=ROOT_ID, username="root")
    assert "approvals is now ask-all" in (await s.original(config))["content"]
    accepted = await s.original(await s.command("od-run", {"task": "tidy up", "agent": "claude"}))
    return await s.sidecar(), accepted["id"]  # the thread is opened on the "started" message


async def ask(sidecar: FakeSidecar, tool: str, arguments: dict[str, Any]) -> str:
    answer = await sidecar.post("/webhooks/approval", {"jobId": sidecar.job_id, "tool": tool, "input": arguments})
    assert answer.status_code == 200 and answer.json()["decision"] == "pending", answer.text
    return str(answer.json()["requestId"])


async def prompt_for(s: DiscordStack, thread: str, request_id: str) -> dict[str, Any]:
    found: dict[str, Any] = await s.fake.wait_for(
        lambda f: next((m for m in f.in_channel(thread) if request_id in str(m["components"])), None)
    )
    return found


async def press(s: DiscordStack, thread: str, custom_id: str, user_id: str, username: str) -> dict[str, Any]:
    """Press a button in the thread; returns the interaction's answer once it is there."""
    click = s.fake.interaction_payload("", channel_id=thread, custom_id=custom_id, user_id=user_id, username=username)
    assert (await s.user.post(click)).status_code == 202
    return await s.original(click)


async def decided(s: DiscordStack, prompt: dict[str, Any], request_id: str) -> ApprovalRequest:
    """Once the prompt has lost its buttons, the request as the dispatcher stored it."""
    await s.fake.wait_for(lambda f: f.messages[prompt["id"]]["components"] == [])
    desk = s.running.dispatcher.approvals
    assert desk is not None
    stored = await desk.store.approval(request_id)
    assert stored is not None
    return stored


async def test_the_prompt_has_an_action_row_and_only_the_owner_decides() -> None:
    async with open_discord_stack(config=CONFIG) as s:
        with trio.fail_after(CEILING_S):
            sidecar, thread = await job_asking(s)
            request_id = await ask(sidecar, "Bash", {"command": "git push @everyone ```x", "description": "Publish **it**"})
            prompt = await prompt_for(s, thread, request_id)

            [row] = prompt["components"]
            assert row["type"] == 1
            assert [(b["type"], b["style"], b["label"], b["custom_id"]) for b in row["components"]] == [
                (2, 3, "Approve", f"od_approve:{request_id}"),
                (2, 1, "Approve for this job", f"od_approve_job:{request_id}"),
                (2, 4, "Deny", f"od_deny:{request_id}"),
            ]
            content = prompt["content"]
            assert content.startswith(f"✋ Job **{sidecar.job_id}** asks to run **Bash**\n```\ngit push @everyone ")
            assert content.count("```") == 2  # the detail cannot close its code block
            assert "**Why:** Publish \\*\\*it\\*\\*" in content and "Only Alice" in content

            refused = await press(s, thread, f"od_approve:{request_id}", BOB_ID, "bob")
            assert refused["flags"] & EPHEMERAL
            assert refused["content"].startswith(f"Only Alice, who started job {sidecar.job_id}")
            desk = s.running.dispatcher.approvals
            assert desk is not None
            stored = await desk.store.approval(request_id)
            assert stored is not None and stored.state is ApprovalState.PENDING
            assert len(s.fake.versions[prompt["id"]]) == 1  # not edited

            answer = await press(s, thread, f"od_approve:{request_id}", ALICE_ID, "alice")
            stored = await decided(s, prompt, request_id)

        assert answer["flags"] & EPHEMERAL and "approved by Alice" in answer["content"]
        assert (stored.state, stored.decided_by, stored.for_job) == (ApprovalState.APPROVED, "Alice", False)
        assert s.fake.messages[prompt["id"]]["content"].endswith("✅ **Approved** by Alice")
        assert s.fake.late_responses == [] and s.fake.double_responses == []


async def test_deny_and_approve_for_this_job() -> None:
    async with open_discord_stack(config=CONFIG) as s:
        with trio.fail_after(CEILING_S):
            sidecar, thread = await job_asking(s)
            first = await ask(sidecar, "Bash", {"command": "rm -rf build"})
            prompt = await prompt_for(s, thread, first)
            await press(s, thread, f"od_deny:{first}", ROOT_ID, "root")  # an admin may answer
            denied = await decided(s, prompt, first)
            assert (denied.state, denied.decided_by) == (ApprovalState.DENIED, "Root")
            assert s.fake.messages[prompt["id"]]["content"].endswith("⛔ **Denied** by Root")

            second = await ask(sidecar, "WebFetch", {"url": "https://example.com"})
            prompt = await prompt_for(s, thread, second)
            await press(s, thread, f"od_approve_job:{second}", ALICE_ID, "alice")
            approved = await decided(s, prompt, second)
            assert (approved.state, approved.for_job) == (ApprovalState.APPROVED, True)
            assert s.fake.messages[prompt["id"]]["content"].endswith("✅ **Approved** by Alice for the rest of the job")
            again = await sidecar.post("/webhooks/approval", {"jobId": sidecar.job_id, "tool": "Read", "input": {"file_path": "x"}})
            assert again.json()["decision"] == "approve" and again.json()["requestId"] is None


def test_presses_become_commands_and_foreign_ids_do_not() -> None:
    raw = {
        "id": "1", "token": "t", "application_id": "2", "type": 3, "channel_id": "3",
        "member": {"user": {"id": "4", "username": "bob"}},
    }

    def text(custom_id: str) -> str | None:
        return parse_interaction({**raw, "data": {"custom_id": custom_id, "component_type": 2}}).text

    assert text("od_approve:a-1a2b3c4d") == "/od-approve a-1a2b3c4d"
    assert text("od_approve_job:a-1a2b3c4d") == "/od-approve a-1a2b3c4d --job"
    assert text("od_deny:a-1a2b3c4d") == "/od-deny a-1a2b3c4d"
    assert text("od_stop:j-1a2b3c4d") == "/od-cancel j-1a2b3c4d"
    assert text("od_deny:a-1a2b3c4d --job") is None and text("od_approve:") is None and text("od_stop:x y") is None


def test_decided_prompts_have_no_components_and_long_details_fit() -> None:
    for state, by, ending in (
        (ApprovalState.APPROVED, "alice", "✅ **Approved** by alice"),
        (ApprovalState.DENIED, "root", "⛔ **Denied** by root"),
        (ApprovalState.TIMED_OUT, None, "⏰ **Timed out**: nobody answered in time, so it was denied"),
    ):
        request = attrs.evolve(REQUEST.decided(state, by=by or "", at=1.0), decided_by=by)
        [part] = message_parts(ApprovalPrompt(JOB, request))
        assert part["components"] == [] and part["content"].endswith(ending)

    huge = attrs.evolve(REQUEST, detail="```" * 2000, reason="<@1> *" * 1000, tool="x" * 500)
    [part] = message_parts(ApprovalPrompt(JOB, huge))
    assert len(part["content"]) <= MAX_CONTENT and part["content"].count("```") == 2
    assert "…\n```" in part["content"] and "<@1>" not in part["content"]
    assert len(part["components"][0]["components"]) == 3
