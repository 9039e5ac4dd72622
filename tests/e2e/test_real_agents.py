"""Real jobs with the real Claude Code and OpenCode CLIs, from chat command to final card.

The sidecar, the webhook server, the relay and the CLIs are the shipped ones; only the model
is scripted (tests/modelserver). Under CI=true a missing CLI fails these tests, never skips
them (the `agent_cli_bin` fixture).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from opendispatch.domain.agent_events import ErrorKind
from opendispatch.domain.job import FailureStage, JobState
from opendispatch.domain.job_spec import AgentKind
from opendispatch.domain.messages import Inbound, JobAccepted, JobCard, LiveOutput, LogExcerpt
from opendispatch.domain.render import render_text
from harness import ALICE, CHANNEL
from real_agents import CEILING_S, RealAgents, open_real_agents, processes_mentioning, wait_for

AGENTS = [AgentKind.CLAUDE, AgentKind.OPENCODE]


async def run(stack: RealAgents, text: str) -> JobAccepted:
    before = len(stack.chat.sent)
    await stack.running.dispatcher.handle(Inbound(CHANNEL, ALICE, text))  # type: ignore[attr-defined]
    for sent in stack.chat.sent[before:]:
        if isinstance(sent.message, JobAccepted):
            return sent.message
    raise AssertionError(f"no job: {[render_text(s.message) for s in stack.chat.sent[before:]]}")


async def card_of(stack: RealAgents, job_id: str) -> JobCard:
    with trio.fail_after(CEILING_S):
        return await stack.chat.wait_for_card(job_id)


def everything_shown(stack: RealAgents) -> str:
    """Every message and every version of every edited message, as a chat user saw them."""
    versions = [s.message for s in stack.chat.sent] + [message for _, message in stack.chat.edits]
    return "\n".join(render_text(m) for m in versions)


@pytest.mark.parametrize("agent", AGENTS, ids=lambda a: a.value)
async def test_a_real_agent_job_shows_its_steps_answer_cost_and_files_changed(agent_cli_bin: Path, agent: AgentKind) -> None:
    async with open_real_agents(agent_cli_bin, "tools", agent=agent) as stack:
        accepted = await run(stack, f'/od-run --repo {stack.repo} -a {agent.value} "write the notes"')
        card = await card_of(stack, accepted.job.id)
        job = card.job
        shown = everything_shown(stack)
        assert job.state is JobState.SUCCEEDED, shown
        summary = job.agent
        assert summary is not None, shown
        assert summary.answer == "Done: notes.txt and hello.py are written."
        assert summary.cost_usd is not None and summary.cost_usd > 0
        assert summary.input_tokens > 0 and summary.output_tokens > 0
        assert summary.session_id
        assert {change.path for change in summary.files} == {"notes.txt", "hello.py"}
        assert summary.tool_calls == 4
        card_text = render_text(card)
        assert "Done: notes.txt and hello.py are written." in card_text and "Files changed: 2 files changed" in card_text
        # the live message showed the agent's steps as they happened, never its raw JSON
        steps = [line for line in shown.splitlines() if line.startswith(("✓ ", "✗ ", "▶ Now: ", "Last step: "))]
        assert any("echo hi > notes.txt" in line for line in steps), shown
        assert any("hello.py" in line for line in steps), shown
        assert '{"type"' not in shown and '"sessionID"' not in shown and "\x1b" not in shown
        if agent is AgentKind.OPENCODE:
            assert "▶ Now:" not in shown  # OpenCode reports a tool only once it finished
        # the agent ran as the unprivileged user, in the clone
        assert "running the agent as root" not in shown
        # the raw transcript is kept
        await stack.running.dispatcher.handle(Inbound(CHANNEL, ALICE, f"/od-logs {job.id} --raw"))  # type: ignore[attr-defined]
        raw = stack.chat.sent[-1].message
        assert isinstance(raw, LogExcerpt) and raw.raw and raw.total_lines >= 5
        assert "test-key" not in "\n".join(raw.lines)


@pytest.mark.parametrize("agent", AGENTS, ids=lambda a: a.value)
async def test_a_model_api_that_refuses_the_key_fails_the_job_with_words_a_user_can_act_on(
    agent_cli_bin: Path, agent: AgentKind
) -> None:
    async with open_real_agents(agent_cli_bin, "auth_error", agent=agent) as stack:
        accepted = await run(stack, f'/od-run --repo {stack.repo} -a {agent.value} "anything"')
        card = await card_of(stack, accepted.job.id)
        job = card.job
        assert job.state is JobState.FAILED, everything_shown(stack)
        assert job.failure is not None and job.failure.stage is FailureStage.MODEL_API
        assert "could not authenticate to its model API" in job.failure.reason
        assert "check the API key" in job.failure.reason
        assert job.agent is not None and job.agent.error_kind is ErrorKind.AUTH


async def test_a_cancelled_job_leaves_no_cli_running(agent_cli_bin: Path) -> None:
    async with open_real_agents(agent_cli_bin, "slow") as stack:
        marker = "cancel-marker-7f3a"
        accepted = await run(stack, f'/od-run --repo {stack.repo} -a claude "think slowly {marker}"')
        await wait_for(lambda: stack.model.main_requests())  # the CLI is up and waiting on the model
        assert processes_mentioning(marker)
        await stack.running.dispatcher.handle(Inbound(CHANNEL, ALICE, f"/od-cancel {accepted.job.id}"))  # type: ignore[attr-defined]
        card = await card_of(stack, accepted.job.id)
        assert card.job.state is JobState.CANCELLED and card.job.cancelled_by == ALICE.name
        await wait_for(lambda: not processes_mentioning(marker), timeout_s=15)


async def test_a_job_past_its_timeout_is_stopped_with_its_cli(agent_cli_bin: Path) -> None:
    async with open_real_agents(agent_cli_bin, "slow") as stack:
        marker = "timeout-marker-2c9d"
        accepted = await run(stack, f'/od-run --repo {stack.repo} -a claude --timeout 8s "wait {marker}"')
        card = await card_of(stack, accepted.job.id)
        assert card.job.state is JobState.TIMED_OUT
        await wait_for(lambda: not processes_mentioning(marker), timeout_s=15)


def test_the_readme_real_agent_demo_shows_a_live_card_and_the_bill(agent_cli_bin: Path, tmp_path: Path) -> None:
    """The README's command, as a new user runs it (a subprocess, its own cwd)."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "modelserver" / "run_demo.py"
    done = subprocess.run(
        [sys.executable, str(script), "claude"], cwd=tmp_path, capture_output=True, text=True, timeout=240,
        stdin=subprocess.DEVNULL,
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "┆ ▶ Bash: python3 run_tests.py" in out and "┆ ✓ Write: TEST_NOTES.md" in out
    assert "✅ Job" in out and "succeeded" in out
    assert "4 turns · claude-sonnet-4-5" in out and "TEST_NOTES.md +3 −0" in out
    assert "All **4 tests pass**" in out
    assert "Total: 1 job · $" in out
    assert "Traceback" not in out + done.stderr


def test_the_example_images_install_the_cli_versions_the_tests_run() -> None:
    from agent_clis import CLAUDE_CODE_VERSION, OPENCODE_VERSION

    root = Path(__file__).resolve().parents[2]
    claude = (root / "examples" / "agents" / "claude-code" / "Dockerfile").read_text()
    opencode = (root / "examples" / "agents" / "opencode" / "Dockerfile").read_text()
    assert f"@anthropic-ai/claude-code@{CLAUDE_CODE_VERSION}" in claude
    assert f"opencode-ai@{OPENCODE_VERSION}" in opencode and '"permission": {"*": "allow"}' in opencode
    readme = (root / "README.md").read_text()
    assert ".venv/bin/python tests/modelserver/run_demo.py claude" in readme.split("\n## ")[0]


async def test_an_overloaded_model_api_is_named_after_the_clis_own_retries(agent_cli_bin: Path) -> None:
    async with open_real_agents(agent_cli_bin, "overloaded") as stack:  # CLAUDE_CODE_MAX_RETRIES=1
        accepted = await run(stack, f'/od-run --repo {stack.repo} -a claude "anything"')
        card = await card_of(stack, accepted.job.id)
        assert card.job.failure is not None and card.job.failure.stage is FailureStage.MODEL_API
        assert "overloaded" in card.job.failure.reason and "try again later" in card.job.failure.reason
        assert len(stack.model.main_requests()) == 2  # the first try and the CLI's one retry


async def test_the_cost_cap_stops_a_real_agent_and_its_sprite(agent_cli_bin: Path) -> None:
    async with open_real_agents(agent_cli_bin, "tools", agent=AgentKind.OPENCODE) as stack:
        marker = "cap-marker-51e0"
        accepted = await run(stack, f'/od-run --repo {stack.repo} -a opencode --max-cost 0.005 "write {marker}"')
        card = await card_of(stack, accepted.job.id)
        job = card.job
        assert job.state is JobState.FAILED and job.failure is not None, everything_shown(stack)
        assert job.failure.stage is FailureStage.COST_CAP
        assert job.failure.reason.startswith("stopped: cost cap $0.005 reached at $0.00")
        assert job.agent is not None and job.agent.cost_usd is not None and job.agent.cost_usd >= 0.005
        assert len(stack.model.main_requests()) < 5  # stopped before the scripted run's end
        await wait_for(lambda: not processes_mentioning(marker), timeout_s=15)
        assert await stack.sprites.list_sprites() == []
