"""The real Claude Code CLI through the Slack adapter, with agent sessions and streaming on.

Everything is the shipped code but Slack and the model: a slash command over the fake's
socket, the real dispatcher and Slack adapter, a local sprite running the real sidecar and
the pinned Claude Code CLI (tests/agent_clis.py) against the scripted model on 127.0.0.1
(tests/modelserver). The fake records every call Slack would get; the compact timeline of
both runs is written to `.ci/artifacts/slack-native-calls.txt` (git-ignored) to be quoted.
Under CI=true a missing CLI fails this test (the `agent_cli_bin` fixture), never skips it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

from fakes.slack import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, Call, FakeMessage
from modelserver.cli_runs import agent_environment
from modelserver.server import ScenarioServer, load_scenario
from opendispatch.adapters.local import LocalSprites
from opendispatch.config import Config
from opendispatch.domain.job import JobState
from opendispatch.domain.job_spec import AgentKind
from real_agents import make_repo, open_folder
from slack_stack import RUNNER, Stack, is_card, open_stack

CEILING_S = 120
ARTIFACT = Path(__file__).resolve().parents[3] / ".ci" / "artifacts" / "slack-native-calls.txt"


def tools_with_a_slow_step() -> dict[str, Any]:
    """The `tools` scenario, its shell step taking a second: long enough to be seen running."""
    scenario = load_scenario("tools")
    scenario["turns"][0]["tool_calls"][0]["command"] = "sleep 1 && echo hi > notes.txt"
    return scenario


@asynccontextmanager
async def open_real_slack(bin_dir: Path, scenario: str | dict[str, Any]) -> AsyncIterator[tuple[Stack, Path, ScenarioServer]]:
    model = ScenarioServer(scenario).start()
    try:
        with open_folder("od-real-slack-") as root:
            repo = make_repo(root)
            workspaces = root / "sprites"
            workspaces.mkdir(mode=0o755)
            search_path = os.pathsep.join([str(bin_dir), *os.get_exec_path()])
            sprites = LocalSprites(workspace_root=workspaces, search_path=search_path, term_grace_s=2.0)
            config = attrs.evolve(
                Config.embedded(secret_values=(BOT_TOKEN, APP_TOKEN, SIGNING_SECRET), agent_type=AgentKind.CLAUDE),
                passthrough=agent_environment(model.url),
            )
            runner = attrs.evolve(RUNNER, exit_settle_s=0.5)
            async with open_stack(sprites=sprites, config=config, runner=runner, native=True) as stack:
                yield stack, repo, model
    finally:
        model.stop()


async def wait(stack: Stack, predicate: Any) -> Any:
    with trio.fail_after(CEILING_S):
        while not (value := predicate()):
            await stack.fake.wait_change()
        return value


async def ended(stack: Stack, started: FakeMessage, job_id: str) -> FakeMessage:
    """The job's card, once the job ended and its session is closed."""
    with trio.fail_after(CEILING_S):
        await stack.running.dispatcher.wait_finished(job_id)
    card: FakeMessage = await wait(stack, lambda: stack.card(started))
    await wait(stack, lambda: [c.args["status"] for c in stack.fake.calls_of("agents.sessions.setStatus")][-1:] == ["closed"])
    await wait(stack, lambda: stack.chat.outbox.pending(started.channel) == 0)
    return card


def chunks_of(calls: list[Call], kind: str) -> list[dict[str, Any]]:
    return [c for call in calls for c in call.args.get("chunks") or [] if c.get("type") == kind]


async def test_a_real_claude_job_in_slack_streams_its_steps_and_slacks_stop_button_cancels_one(agent_cli_bin: Path) -> None:
    timelines: list[str] = []

    # 1. A job that runs to its end: processing, a stream of steps and output, the card, closed.
    async with open_real_slack(agent_cli_bin, tools_with_a_slow_step()) as (stack, repo, _):
        await stack.fake.slash_command("/od-run", f'--repo {repo} -a claude "write the notes"')
        started = await stack.started_message()
        (job,) = await stack.store.recent(limit=5)
        card = await ended(stack, started, job.id)
        timelines.append(f"# run 1: /od-run -a claude \"write the notes\" (job {job.id}), runs to its end\n"
                         + stack.fake.timeline())
        stored = await stack.store.get(job.id)
        texts = "\n".join(card.block_texts())
        assert stored.state is JobState.SUCCEEDED, texts
        assert "Done: notes.txt and hello.py are written." in texts

        fake = stack.fake
        methods = [c.method for c in fake.calls if c.method not in ("auth.test", "apps.connections.open")]
        assert methods[:3] == ["chat.postMessage", "agents.sessions.setStatus", "chat.startStream"]
        assert fake.calls_of("agents.sessions.setStatus")[0].args["status"] == "processing"
        native = [m for m in methods if m not in ("chat.postMessage", "chat.update")]
        assert native[-2:] == ["chat.stopStream", "agents.sessions.setStatus"], fake.timeline()
        assert fake.calls_of("agents.sessions.setStatus")[-1].args["status"] == "closed"
        (stream,) = fake.streams()
        assert stream is card and stream.thread_ts == started.ts and is_card(stream)
        stop = fake.calls_of("chat.stopStream")[0]
        assert stop.args["blocks"] == card.blocks and stop.error is None  # the card rode on the stop
        tasks = chunks_of(fake.calls_of("chat.appendStream") + fake.calls_of("chat.startStream"), "task_update")
        by_id: dict[str, list[str]] = {}
        for task in tasks:
            by_id.setdefault(str(task["id"]), []).append(str(task["status"]))
        assert any(statuses[:1] == ["in_progress"] and statuses[-1] == "complete" for statuses in by_id.values()), by_id
        assert all(statuses[-1] == "complete" for statuses in by_id.values()), by_id
        assert len(by_id) == 4  # shell, write, edit, read: each step its own card
        assert any("echo hi > notes.txt" in str(task["title"]) for task in tasks)
        assert [c for c in fake.calls if c.status == 429 or (c.error and c.method != "conversations.history")] == []

    # 2. Slack's stop button mid-job: the job is cancelled by its owner, with its card, closed.
    async with open_real_slack(agent_cli_bin, "slow") as (stack, repo, model):
        marker = "native-stop-marker-5e1b"
        await stack.fake.slash_command("/od-run", f'--repo {repo} -a claude "think slowly {marker}"')
        started = await stack.started_message()
        (job,) = await stack.store.recent(limit=5)
        await wait(stack, lambda: stack.fake.streams())  # the stream is up...
        with trio.fail_after(CEILING_S):
            while not model.main_requests():  # ...and the CLI waits on the model
                await trio.sleep(0.05)  # the model server is another thread: nothing to wait on
        stop = stack.fake.session_stopped_payload(started.channel, started.ts, user_id="U0ALICE")
        await stack.fake.deliver("events_api", stop)
        card = await ended(stack, started, job.id)
        timelines.append(f"# run 2: /od-run -a claude \"think slowly\" (job {job.id}), Slack's stop button pressed mid-job\n"
                         + stack.fake.timeline())
        stored = await stack.store.get(job.id)
        assert stored.state is JobState.CANCELLED and stored.cancelled_by == "alice"
        assert "🛑 Stopped by alice" in card.block_texts()
        assert stack.fake.sessions[(started.channel, started.ts)] == ["processing", "closed"]
        (stream,) = stack.fake.streams()
        assert stream.stream is not None and stream.stream.stopped_by == "U0ALICE"
        assert card is not stream  # Slack had stopped the stream: the card is a message of its own

    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text("\n".join(timelines))
