"""Approvals through the real sidecar and the real Claude Code CLI (issue #22).

The built `sidecar/sprite-reporter` runs the pinned Claude Code (the `agent_cli_bin` fixture:
under CI=true a missing CLI fails these tests, never skips them) against a `ScenarioServer`
playing `approvals`: the model runs `echo approval-demo-ran`, then `printf 'not-asked-ran\\n'`,
then answers. The channel's policy is `ask Bash(echo*)`: the first call waits for the
decision the sidecar fetches from the loopback receiver (the dispatcher's two approval
endpoints, deciding at once so each run takes seconds), the second is not asked.

What proves it: the receiver's recorded approval requests (the call, as the hook saw it), the
job's relayed output (the command's output, or not), and the model's next request (the tool
result Claude Code sent it: the denial's text).
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio

import harness  # noqa: F401  (puts sidecar/src on sys.path)
from modelserver.cli_runs import agent_environment
from modelserver.server import ScenarioServer, working_directory
from sidecar import conftest as sidecar_fixtures
from sidecar.conftest import SidecarLauncher, open_workspace, receiver, sidecar  # noqa: F401  (fixtures)
from sidecar.recorder import Recorder
from sprite_reporter.privileges import DEFAULT_AGENT_USER

POLICY = "ask Bash(echo*)"
ASKED = "echo approval-demo-ran"
NOT_ASKED = "printf 'not-asked-ran\\n'"
RUN_CEILING_S = 120.0  # a real CLI through the sidecar takes seconds


@pytest.fixture
def model_server() -> Any:
    server = ScenarioServer("approvals").start()
    yield server
    server.stop()


def job_env(
    sidecar: SidecarLauncher, receiver: Recorder, agent_cli_bin: Path, server: ScenarioServer,  # noqa: F811
    agent: str = "claude", **extra: str,
) -> tuple[str, dict[str, str]]:
    job_id, token = receiver.new_job()
    env = sidecar.env(
        receiver.url, job_id, token, AGENT=agent, TASK="Run the two commands.",
        PATH=os.pathsep.join([str(agent_cli_bin), os.environ.get("PATH", "/usr/bin:/bin")]),
        OPENDISPATCH_APPROVALS=POLICY, OPENDISPATCH_APPROVAL_TIMEOUT_S="60",
        **agent_environment(server.url), **extra,
    )
    return job_id, env


def tool_results(server: ScenarioServer) -> list[dict[str, Any]]:
    """Every tool_result block the CLI sent the model, in order."""
    found = []
    for request in server.main_requests():
        for message in request.body.get("messages", []):
            content = message.get("content")
            if message.get("role") == "user" and isinstance(content, list):
                found += [block for block in content if isinstance(block, dict) and block.get("type") == "tool_result"]
    unique: dict[str, dict[str, Any]] = {}
    for block in found:
        unique.setdefault(block["tool_use_id"], block)
    return list(unique.values())


def result_text(block: dict[str, Any]) -> str:
    """A tool result's text, without the reminder Claude Code appends to the last one."""
    content = block.get("content")
    if isinstance(content, list):
        content = "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content).split("<system-reminder>")[0].strip()


async def run_job(sidecar: SidecarLauncher, env: dict[str, str], receiver: Recorder, job_id: str, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    monkeypatch.setattr(sidecar_fixtures, "RUN_CEILING_S", RUN_CEILING_S)
    result = await sidecar.run(env)
    output = "\n".join(receiver.lines(job_id) + [json.dumps(event) for event in receiver.events(job_id)])
    assert result.returncode == 0, f"{result.stderr[-3000:]}\n{output[-3000:]}"
    assert receiver.statuses(job_id)[-1]["status"] == "completed", output[-3000:]
    return output


async def test_a_named_call_runs_once_approved_and_another_is_not_asked(
    agent_cli_bin: Path, model_server: ScenarioServer, receiver: Recorder, sidecar: SidecarLauncher,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id, env = job_env(sidecar, receiver, agent_cli_bin, model_server)
    receiver.answer_approvals("approve", by="alice")

    output = await run_job(sidecar, env, receiver, job_id, monkeypatch)

    [asked] = receiver.approval_requests  # the printf call was not asked
    assert (asked.job_id, asked.tool, asked.input["command"]) == (job_id, "Bash", ASKED)
    assert asked.input.get("description") == "Print a marker"  # the call as the hook saw it
    results = tool_results(model_server)
    assert [result_text(block) for block in results] == ["approval-demo-ran", "not-asked-ran"]
    assert "approval-demo-ran" in output and "not-asked-ran" in output  # the commands' output was relayed
    assert receiver.approval_calls == 1
    if os.geteuid() == 0:  # the hook ran as the agent's user: the socket is its, the hook stays root's
        agent = pwd.getpwnam(DEFAULT_AGENT_USER)
        assert (sidecar.workspace / ".od-git" / "approvals" / "socket").stat().st_uid == agent.pw_uid
        assert (sidecar.workspace / ".od-git" / "claude-approval-hook").stat().st_uid == 0


async def test_a_denied_call_tells_the_model_why_and_the_job_goes_on(
    agent_cli_bin: Path, model_server: ScenarioServer, receiver: Recorder, sidecar: SidecarLauncher,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id, env = job_env(sidecar, receiver, agent_cli_bin, model_server)
    receiver.answer_approvals("deny", "denied in chat by bob: not on a Friday", by="bob")

    output = await run_job(sidecar, env, receiver, job_id, monkeypatch)

    assert [request.input["command"] for request in receiver.approval_requests] == [ASKED]
    denied, ran = tool_results(model_server)
    assert denied.get("is_error") is True
    assert "denied in chat by bob: not on a Friday" in result_text(denied)  # what the model was told
    assert result_text(ran) == "not-asked-ran"  # the model went on; the next call ran
    assert "not-asked-ran" in output
    assert "Done with both commands." in output  # the model's last answer: the job ended normally
    # the command never ran: its output is nowhere but in the call itself
    assert "approval-demo-ran" not in result_text(denied).replace(ASKED, "")


async def test_the_repositorys_claude_settings_cannot_switch_the_hook_off(
    agent_cli_bin: Path, model_server: ScenarioServer, receiver: Recorder, sidecar: SidecarLauncher,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    origin = make_repo(tmp_path / "origin", {
        ".claude/settings.json": json.dumps({"disableAllHooks": True}),
        ".claude/settings.local.json": json.dumps({"disableAllHooks": True}),
        "README.md": "a repository that would rather not be asked\n",
    })
    job_id, env = job_env(sidecar, receiver, agent_cli_bin, model_server, REPO=str(origin))
    receiver.answer_approvals("deny", "denied in chat by carol", by="carol")

    await run_job(sidecar, env, receiver, job_id, monkeypatch)

    assert [request.input["command"] for request in receiver.approval_requests] == [ASKED]  # still asked
    denied, _ = tool_results(model_server)
    assert "denied in chat by carol" in result_text(denied)
    # it ran in the clone, where those settings are
    assert (sidecar.workspace / "repo" / ".claude" / "settings.json").is_file()
    assert working_directory(model_server.main_requests()[0].body) == str(sidecar.workspace / "repo")


def make_repo(path: Path, files: dict[str, str]) -> Path:
    """A git repository on branch main holding `files`, committed."""
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    git = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    return path


async def test_opencode_denies_what_the_policy_names_and_runs_the_rest(
    agent_cli_bin: Path, model_server: ScenarioServer, receiver: Recorder, sidecar: SidecarLauncher,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """OpenCode cannot ask: the named call is denied without asking anyone, the other runs.

    The repository's own opencode.json tries to allow it again, twice over (a `bash` rule
    after `*`, and the build agent's own permission): it is not read.
    """
    origin = make_repo(tmp_path / "origin", {
        "opencode.json": json.dumps({
            "permission": {"bash": {"echo*": "allow", "*": "allow"}},
            "agent": {"build": {"permission": {"bash": "allow"}}},
        }),
    })
    job_id, env = job_env(sidecar, receiver, agent_cli_bin, model_server, agent="opencode", REPO=str(origin))

    output = await run_job(sidecar, env, receiver, job_id, monkeypatch)

    assert receiver.approval_calls == 0  # nobody is asked
    assert f"[sidecar] OpenCode cannot ask for approval: calls matching the channel's rules are denied ({POLICY})" in output
    denied, ran = tool_results(model_server)
    assert "prevents you from using this specific tool call" in result_text(denied)  # OpenCode's denial
    assert "approval-demo-ran" not in result_text(denied)
    assert result_text(ran) == "not-asked-ran"
    assert "not-asked-ran" in output


async def test_the_jobs_output_keeps_flowing_while_a_call_waits(
    agent_cli_bin: Path, model_server: ScenarioServer, receiver: Recorder, sidecar: SidecarLauncher,  # noqa: F811
) -> None:
    """The hook waits inside Claude Code's process tree; the sidecar's relay must not."""
    job_id, env = job_env(sidecar, receiver, agent_cli_bin, model_server)
    receiver.answer_approvals("pending")

    def relayed(kind: str) -> bool:
        return any(event.get("type") == kind for event in receiver.events(job_id))

    with trio.fail_after(RUN_CEILING_S):
        running = await sidecar.start(env)
        await receiver.wait_until(lambda: bool(receiver.approval_requests))
        await receiver.wait_until(lambda: relayed("tool_start"))  # relayed while the call waits
        assert not relayed("tool_end") and not receiver.jobs[job_id].finished
        await receiver.wait_until(lambda: len(receiver.approval_polls) >= 1)  # the sidecar long-polls
        receiver.decide(receiver.approval_requests[0].id, "approve", by="erin")
        result = await running.wait()

    assert result.returncode == 0, result.stderr
    assert receiver.statuses(job_id)[-1]["status"] == "completed"
    assert [result_text(block) for block in tool_results(model_server)] == ["approval-demo-ran", "not-asked-ran"]
