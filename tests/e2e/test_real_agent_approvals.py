"""Approvals end to end with the real Claude Code CLI (issue #22): the whole dispatcher, a local
sprite with the real sidecar, and the scripted model asking for `echo ...` (which the channel's
`ask Bash(echo*)` names) and `printf ...` (which it does not). A person answers with the
commands the prompt's buttons send.
"""

from __future__ import annotations

from pathlib import Path

import trio

from harness import ALICE, BOB, CHANNEL
from opendispatch.domain.approvals import ApprovalState
from opendispatch.domain.job import JobState, User
from opendispatch.domain.messages import ApprovalPrompt, Inbound, JobAccepted, JobCard, Notice
from real_agents import CEILING_S, RealAgents, open_real_agents

ADMIN = User("u-admin", "root")


async def say(stack: RealAgents, text: str, user: User = ALICE) -> None:
    await stack.running.dispatcher.handle(Inbound(CHANNEL, user, text))  # type: ignore[attr-defined]


async def start(stack: RealAgents, policy: str, timeout: str = "10m") -> str:
    await say(stack, f"/od-config set approvals {policy}", ADMIN)
    await say(stack, f"/od-config set approval-timeout {timeout}", ADMIN)
    await say(stack, f'/od-run --repo {stack.repo} -a claude "run the markers"')
    accepted = [m for m in stack.chat.messages() if isinstance(m, JobAccepted)]
    return accepted[-1].job.id


async def next_prompt(stack: RealAgents, seen: int = 0) -> ApprovalPrompt:
    with trio.fail_after(CEILING_S):
        prompt = await stack.chat.wait_for(
            lambda m: isinstance(m, ApprovalPrompt)
            and len([p for p in stack.chat.sent if isinstance(p.message, ApprovalPrompt)]) > seen
        )
    prompts = [s.message for s in stack.chat.sent if isinstance(s.message, ApprovalPrompt)]
    assert isinstance(prompt, ApprovalPrompt)
    return prompts[seen]


async def finished(stack: RealAgents, job_id: str) -> tuple[JobCard, list[str]]:
    with trio.fail_after(CEILING_S):
        card = await stack.chat.wait_for(lambda m: isinstance(m, JobCard) and m.job.id == job_id)
    assert isinstance(card, JobCard)
    return card, await stack.store.output(job_id)


def tool_results(stack: RealAgents) -> str:
    """What the model was told of its tool calls (the tool_result blocks of its requests)."""
    found = []
    for request in stack.model.main_requests():
        for message in request.body.get("messages", []):
            for block in message.get("content", []) if isinstance(message.get("content"), list) else []:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    found.append(str(block.get("content")))
    return "\n".join(found)


def notices(stack: RealAgents) -> list[str]:
    return [s.message.text for s in stack.chat.sent if isinstance(s.message, Notice)]


async def test_approved_by_its_owner_after_someone_else_was_refused(agent_cli_bin: Path) -> None:
    async with open_real_agents(agent_cli_bin, "approvals", admins=frozenset({ADMIN.id})) as stack:
        job_id = await start(stack, "ask Bash(echo*)")
        prompt = await next_prompt(stack)
        assert (prompt.request.tool, prompt.request.detail) == ("Bash", "echo approval-demo-ran")
        assert prompt.request.reason == "Print a marker"
        await say(stack, f"/od-approve {prompt.request.id}", BOB)
        assert notices(stack)[-1].startswith("Only alice, who started job")
        assert (await stack.store.approval(prompt.request.id)).state is ApprovalState.PENDING  # type: ignore[union-attr]
        await say(stack, f"/od-approve {prompt.request.id}")
        card, output = await finished(stack, job_id)
        assert card.job.state is JobState.SUCCEEDED, output
        assert "approval-demo-ran" in tool_results(stack) and "not-asked-ran" in tool_results(stack)
        assert any(line.endswith(f"approved by alice ({prompt.request.id})") for line in output)
        assert len([s for s in stack.chat.sent if isinstance(s.message, ApprovalPrompt)]) == 1  # printf: not asked


async def test_denied_the_model_is_told_and_the_job_ends_normally(agent_cli_bin: Path) -> None:
    async with open_real_agents(agent_cli_bin, "approvals", admins=frozenset({ADMIN.id})) as stack:
        job_id = await start(stack, "ask Bash(echo*)")
        prompt = await next_prompt(stack)
        await say(stack, f"/od-deny {prompt.request.id}", ADMIN)  # an admin may answer
        card, output = await finished(stack, job_id)
        assert card.job.state is JobState.SUCCEEDED, output
        told = tool_results(stack)
        assert "denied in chat by root" in told and "not-asked-ran" in told
        assert "approval-demo-ran\n" not in told.replace("echo approval-demo-ran", "")
        assert any(line.endswith(f"denied by root ({prompt.request.id})") for line in output)


async def test_no_answer_in_time_is_a_denial(agent_cli_bin: Path) -> None:
    async with open_real_agents(agent_cli_bin, "approvals", admins=frozenset({ADMIN.id})) as stack:
        job_id = await start(stack, "ask Bash(echo*)", timeout="2s")
        prompt = await next_prompt(stack)
        card, output = await finished(stack, job_id)
        assert card.job.state is JobState.SUCCEEDED, output
        told = tool_results(stack)
        assert "no one approved it in chat within 2s" in told and "not-asked-ran" in told
        assert any(line.endswith(f"timed out ({prompt.request.id})") for line in output)


async def test_approved_for_the_rest_of_the_job_the_next_matching_call_is_not_asked(agent_cli_bin: Path) -> None:
    async with open_real_agents(agent_cli_bin, "approvals_twice", admins=frozenset({ADMIN.id})) as stack:
        job_id = await start(stack, "ask Bash(echo*)")
        prompt = await next_prompt(stack)
        await say(stack, f"/od-approve {prompt.request.id} --job")
        card, output = await finished(stack, job_id)
        assert card.job.state is JobState.SUCCEEDED, output
        assert "first-ran" in tool_results(stack) and "second-ran" in tool_results(stack)
        assert len([s for s in stack.chat.sent if isinstance(s.message, ApprovalPrompt)]) == 1
