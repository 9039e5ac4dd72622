"""Approval prompts in Slack (issue #22): Block Kit with Approve / Approve for this job / Deny in
the job's thread; a click is the matching command by the clicking user, so the real dispatcher
decides (owner or admin only, the others told privately); the prompt is edited to the decision."""

from __future__ import annotations

from typing import Any

import attrs
import trio

from fakes.slack import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeMessage, unescape
from harness import FakeSidecar
from opendispatch.adapters.slack.render import SECTION_LIMIT, render
from opendispatch.config import Config
from opendispatch.domain.approvals import ApprovalRequest, ApprovalState
from opendispatch.domain.job import Conversation, Job, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.messages import ApprovalPrompt
from opendispatch.domain.ownership import Ownership
from slack_stack import Stack, open_stack

#: Only U0ROOT is an admin here: bob (U0BOB) is neither the owner nor an admin.
CONFIG = Config.embedded(
    secret_values=(BOT_TOKEN, APP_TOKEN, SIGNING_SECRET), ownership=Ownership(admins=frozenset({"U0ROOT"}))
)
APPROVAL_BUTTONS = ["od_approve", "od_approve_job", "od_deny"]

JOB = Job.queued(
    "j-0123abcd", JobSpec(task="t", agent=AgentKind.CLAUDE), Conversation("slack", "C1"), User("U1", "alice"), at=0.0
)
REQUEST = ApprovalRequest(
    id="a-1a2b3c4d", job_id=JOB.id, tool="Bash", detail="git push origin main", reason="Publish the fix",
    rule="*", asked_at=0.0,
)


async def job_asking(stack: Stack) -> tuple[FakeSidecar, FakeMessage]:
    """An admin sets ask-all, alice runs a job; returns its sidecar and its channel message."""
    await stack.fake.slash_command("/od-config", "set approvals ask-all", user_id="U0ROOT", user_name="root")
    await stack.wait_for(lambda: any("approvals is now ask-all" in m.text for m in stack.fake.channel_messages()))
    await stack.fake.slash_command("/od-run", '-a claude "tidy up"')
    started = await stack.wait_for(lambda: next((m for m in stack.fake.channel_messages() if "queued" in m.text), None))
    return await stack.sidecar(), started


async def ask(sidecar: FakeSidecar, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    answer = await sidecar.post("/webhooks/approval", {"jobId": sidecar.job_id, "tool": tool, "input": arguments})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def prompt_for(stack: Stack, started: FakeMessage, request_id: str) -> FakeMessage:
    """The prompt of `request_id` in the job's thread, once posted."""
    found: FakeMessage = await stack.wait_for(
        lambda: next((m for m in stack.fake.thread(started) if request_id in m.text), None)
    )
    return found


async def click(stack: Stack, prompt: FakeMessage, action_id: str, user_id: str, username: str) -> None:
    envelope = await stack.fake.deliver("interactive", stack.fake.click_payload(prompt, action_id, user_id=user_id, username=username))
    with trio.fail_after(3):
        await envelope.acked.wait()


async def test_the_prompt_has_three_buttons_in_the_jobs_thread_and_only_the_owner_decides() -> None:
    async with open_stack(config=CONFIG) as stack:
        sidecar, started = await job_asking(stack)
        asked = await ask(sidecar, "Bash", {"command": "git push <!channel> && rm -rf *", "description": "Publish the fix"})
        request_id = asked["requestId"]
        prompt = await prompt_for(stack, started, request_id)

        assert prompt.thread_ts == started.ts  # in the job's thread
        section, detail, why, who, actions = prompt.blocks
        assert section["text"]["text"] == f"✋ Job *{sidecar.job_id}* asks to run `Bash`"
        assert detail["text"]["text"] == "```\ngit push &lt;!channel&gt; &amp;&amp; rm -rf *\n```"  # escaped: no ping
        assert why["text"]["text"] == "*Why:* Publish the fix"
        assert who["type"] == "context" and "Only alice" in who["elements"][0]["text"]
        buttons = actions["elements"]
        assert [(b["text"]["text"], b["action_id"], b["value"], b.get("style")) for b in buttons] == [
            ("Approve", "od_approve", request_id, "primary"),
            ("Approve for this job", "od_approve_job", request_id, None),
            ("Deny", "od_deny", request_id, "danger"),
        ]
        assert "<!channel>" not in prompt.text

        await click(stack, prompt, "od_approve", "U0BOB", "bob")  # neither the owner nor an admin
        (reply,) = await stack.wait_for(lambda: stack.fake.ephemerals)
        assert reply["via"] == "chat.postEphemeral" and reply["user"] == "U0BOB" and reply["thread_ts"] == started.ts
        assert reply["text"].startswith(f"Only alice, who started job {sidecar.job_id}")
        stored = await stack.store.approval(request_id)
        assert stored is not None and stored.state is ApprovalState.PENDING
        assert len(prompt.versions) == 1 and prompt.action_ids() == APPROVAL_BUTTONS

        await click(stack, prompt, "od_approve", "U0ALICE", "alice")
        await stack.wait_for(lambda: prompt.action_ids() == [])
        stored = await stack.store.approval(request_id)
        assert stored is not None and (stored.state, stored.decided_by, stored.for_job) == (ApprovalState.APPROVED, "alice", False)
        assert prompt.blocks[-1]["text"]["text"] == "✅ *Approved* by alice"
        assert [i.text for i in stack.inbounds][-2:] == [f"/od-approve {request_id}"] * 2
        answer = await stack.http.get(
            "/webhooks/approval",
            params={"jobId": sidecar.job_id, "requestId": request_id, "waitS": "0"},
            headers={"Authorization": f"Bearer {sidecar.token}"},
        )
        assert (answer.json()["decision"], answer.json()["by"]) == ("approve", "alice")
        # the answer to alice is hers alone too
        await stack.wait_for(lambda: any(e["user"] == "U0ALICE" for e in stack.fake.ephemerals))


async def test_deny_and_approve_for_this_job() -> None:
    async with open_stack(config=CONFIG) as stack:
        sidecar, started = await job_asking(stack)
        first = (await ask(sidecar, "Bash", {"command": "rm -rf build"}))["requestId"]
        prompt = await prompt_for(stack, started, first)
        await click(stack, prompt, "od_deny", "U0ROOT", "root")  # an admin may answer
        await stack.wait_for(lambda: prompt.action_ids() == [])
        stored = await stack.store.approval(first)
        assert stored is not None and (stored.state, stored.decided_by) == (ApprovalState.DENIED, "root")
        assert prompt.blocks[-1]["text"]["text"] == "⛔ *Denied* by root"

        second = (await ask(sidecar, "WebFetch", {"url": "https://example.com"}))["requestId"]
        prompt = await prompt_for(stack, started, second)
        await click(stack, prompt, "od_approve_job", "U0ALICE", "alice")
        await stack.wait_for(lambda: prompt.action_ids() == [])
        stored = await stack.store.approval(second)
        assert stored is not None and (stored.state, stored.for_job) == (ApprovalState.APPROVED, True)
        assert prompt.blocks[-1]["text"]["text"] == "✅ *Approved* by alice for the rest of the job"
        assert stack.inbounds[-1].text == f"/od-approve {second} --job"
        again = await ask(sidecar, "Read", {"file_path": "README.md"})  # ask-all: one rule, now approved
        assert again["decision"] == "approve" and again["requestId"] is None


def test_decided_and_timed_out_prompts_render_without_buttons_and_long_details_are_cut() -> None:
    for state, by, shown in (
        (ApprovalState.APPROVED, "alice", "✅ *Approved* by alice"),
        (ApprovalState.DENIED, "root", "⛔ *Denied* by root"),
        (ApprovalState.TIMED_OUT, None, "⏰ *Timed out*"),
    ):
        request = attrs.evolve(REQUEST.decided(state, by=by or "", at=1.0), decided_by=by)
        [message] = render(ApprovalPrompt(JOB, request))
        assert all(block["type"] != "actions" for block in message.blocks)
        assert message.blocks[-1]["text"]["text"].startswith(shown)

    long = attrs.evolve(REQUEST, detail="<&>" * 3000, tool="Bash`*`\nx", reason="<@U1> & " * 500)
    [message] = render(ApprovalPrompt(JOB, long))
    texts = [block["text"]["text"] for block in message.blocks if block["type"] == "section"]
    assert all(len(text) <= SECTION_LIMIT for text in texts)
    assert texts[0].endswith("`Bash'*' x`")  # one line, cannot close its code span
    detail = texts[1]
    assert detail.startswith("```\n") and detail.endswith("…\n```") and "<" not in detail
    assert unescape(detail[4:-4]).startswith("<&><&>")
    fenced = attrs.evolve(REQUEST, detail="echo `````; <!here>")
    [message] = render(ApprovalPrompt(JOB, fenced))
    assert message.blocks[1]["text"]["text"][4:-4].count("``") == 0  # no run of backticks can end the block
    assert "<@U1>" not in texts[2]

