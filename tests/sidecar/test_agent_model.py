"""The job's model (AGENT_MODEL) reaches each agent its own way.

Claude Code gets `--model X`, OpenCode `-m X`, as two argv elements of their own, for a one-shot
job and for every message of a session; the shell agent gets no flag, only the variable in its
environment, unchanged. The sidecar checks the value again (the dispatcher's rule): anything
else is a configuration error naming AGENT_MODEL. The real CLIs sending that model to the model
API: tests/modelserver/test_agent_model_flag.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import harness  # noqa: F401  (puts sidecar/src on sys.path)
from sprite_reporter.agents import CLAUDE, OPENCODE, agent_argv, session_agent_argv
from sprite_reporter.config import ConfigError, agent_model_env, load_run
from sprite_reporter.session import AgentConversation, SessionLoop

from .conftest import SidecarLauncher
from .recorder import Recorder

UUID = "0b6f3c52-8a1e-4f5e-9b43-3f0e6c1d2a7b"
TASK = "fix it; $(whoami) --model evil"
MODEL = "claude-sonnet-4-5"
OPENCODE_MODEL = "anthropic/claude-sonnet-4-5"

VALID = [
    "claude-sonnet-4-5",
    "anthropic/claude-sonnet-4-5",
    "openrouter/anthropic/claude-3.5-sonnet:beta",
    "us.anthropic.claude-sonnet-4-5@20250929",
    "opus",
    "m" * 100,
]
INVALID = [
    "-p",
    "--dangerously-skip-permissions",
    "m" * 101,
    "claude sonnet",
    "claude;rm -rf /",
    "$(whoami)",
    "a\nb",
    "modèle",
    "a=b",
]


# ---- the argv rules ---------------------------------------------------------------------


def test_without_a_model_the_argv_is_unchanged() -> None:
    assert agent_argv("claude", TASK) == [*CLAUDE, "--", TASK]
    assert agent_argv("claude", TASK, None, None) == [*CLAUDE, "--", TASK]
    assert agent_argv("claude", TASK, None, "") == [*CLAUDE, "--", TASK]
    assert agent_argv("opencode", TASK, None, None) == [*OPENCODE, "--", TASK]
    assert session_agent_argv("claude", TASK, UUID, False) == [*CLAUDE, "--session-id", UUID, "--", TASK]
    assert session_agent_argv("opencode", TASK, "ses_1", True) == [*OPENCODE, "--session", "ses_1", "--", TASK]


def test_a_one_shot_job_names_the_model_as_two_argv_elements() -> None:
    assert agent_argv("claude", TASK, None, MODEL) == [*CLAUDE, "--model", MODEL, "--", TASK]
    assert agent_argv("claude", TASK, "2.5", MODEL) == [
        *CLAUDE, "--model", MODEL, "--max-budget-usd", "2.5", "--", TASK
    ]
    assert agent_argv("opencode", TASK, None, OPENCODE_MODEL) == [*OPENCODE, "-m", OPENCODE_MODEL, "--", TASK]
    # OpenCode wants provider/model; a bare name goes as given (OpenCode's own error, if any)
    assert agent_argv("opencode", TASK, "2.5", MODEL) == [*OPENCODE, "-m", MODEL, "--", TASK]


def test_the_shell_agent_gets_no_model_flag() -> None:
    assert agent_argv("shell", "echo hi", None, MODEL) == agent_argv("shell", "echo hi")
    assert session_agent_argv("shell", "echo hi", UUID, True, None, MODEL) == agent_argv("shell", "echo hi")
    assert MODEL not in agent_argv("shell", "echo hi", "2.5", MODEL)


@pytest.mark.parametrize("resume", [False, True])
def test_every_claude_session_message_names_the_model(resume: bool) -> None:
    flag = "--resume" if resume else "--session-id"
    assert session_agent_argv("claude", TASK, UUID, resume, None, MODEL) == [
        *CLAUDE, "--model", MODEL, flag, UUID, "--", TASK
    ]
    assert session_agent_argv("claude", TASK, UUID, resume, "1.5", MODEL) == [
        *CLAUDE, "--model", MODEL, "--max-budget-usd", "1.5", flag, UUID, "--", TASK
    ]


@pytest.mark.parametrize(
    ("conversation_id", "resume", "continuing"),
    [(UUID, False, []), ("ses_abc", True, ["--session", "ses_abc"]), (UUID, True, ["--continue"])],
)
def test_every_opencode_session_message_names_the_model(
    conversation_id: str, resume: bool, continuing: list[str]
) -> None:
    argv = session_agent_argv("opencode", TASK, conversation_id, resume, None, OPENCODE_MODEL)
    assert argv == [*OPENCODE, "-m", OPENCODE_MODEL, *continuing, "--", TASK]


def test_a_conversation_passes_the_model_for_a_new_and_a_resumed_claude_conversation(tmp_path: Path) -> None:
    home = tmp_path / "home"
    conversation = AgentConversation("claude", TASK, UUID, str(home))
    assert conversation.argv(str(tmp_path), None, MODEL) == [*CLAUDE, "--model", MODEL, "--session-id", UUID, "--", TASK]
    folder = home / ".claude" / "projects" / "-work-repo"
    folder.mkdir(parents=True)
    (folder / f"{UUID}.jsonl").write_text("{}\n")
    assert conversation.argv(str(tmp_path), None, MODEL) == [*CLAUDE, "--model", MODEL, "--resume", UUID, "--", TASK]
    assert conversation.argv(str(tmp_path)) == [*CLAUDE, "--resume", UUID, "--", TASK]


# ---- the value is checked again ---------------------------------------------------------


@pytest.mark.parametrize("model", VALID)
def test_a_valid_model_is_taken_as_given(model: str, tmp_path: Path) -> None:
    assert agent_model_env({"AGENT_MODEL": model}) == model
    plan = load_run({"AGENT": "claude", "TASK": "go", "AGENT_MODEL": model, "OPENDISPATCH_WORKSPACE": str(tmp_path)})
    assert plan.argv == [*CLAUDE, "--model", model, "--", "go"]


@pytest.mark.parametrize("value", ["", "   "])
def test_an_unset_or_empty_model_is_no_model(value: str, tmp_path: Path) -> None:
    assert agent_model_env({}) is None
    assert agent_model_env({"AGENT_MODEL": value}) is None
    plan = load_run({"AGENT": "opencode", "TASK": "go", "AGENT_MODEL": value, "OPENDISPATCH_WORKSPACE": str(tmp_path)})
    assert plan.argv == [*OPENCODE, "--", "go"]


@pytest.mark.parametrize("agent", ["claude", "opencode", "shell", ""])
@pytest.mark.parametrize("model", INVALID)
def test_an_invalid_model_is_a_configuration_error_naming_agent_model(agent: str, model: str, tmp_path: Path) -> None:
    env = {"AGENT_MODEL": model, "OPENDISPATCH_WORKSPACE": str(tmp_path)}
    env.update({"AGENT": agent, "TASK": "go"} if agent else {"COMMAND": "echo hi"})
    with pytest.raises(ConfigError) as refused:
        load_run(env)
    assert refused.value.variable == "AGENT_MODEL"
    assert "AGENT_MODEL" in str(refused.value)


def test_a_persistent_session_with_an_invalid_model_does_not_start(tmp_path: Path) -> None:
    env = {
        "SESSION_ID": "s-1", "SESSION_TOKEN": "t", "OPEN_DISPATCH_URL": "http://127.0.0.1:9",
        "AGENT": "claude", "AGENT_MODEL": "-x", "OPENDISPATCH_WORKSPACE": str(tmp_path),
        "OPENDISPATCH_AGENT_USER": "root",
    }
    with pytest.raises(ConfigError) as refused:
        SessionLoop(env)
    assert refused.value.variable == "AGENT_MODEL"


# ---- the real sidecar -------------------------------------------------------------------

ARGV_STUB = "#!/usr/bin/env python3\nimport json, sys\nprint('ARGV ' + json.dumps(sys.argv[1:]), flush=True)\n"


def stub_agents(sidecar: SidecarLauncher) -> str:
    """`claude` and `opencode` stubs that print their argv; a PATH that finds them first.

    In a folder the agent's user can reach (next to the workspace), as a sprite's CLIs are.
    """
    stubs = sidecar.workspace.parent / "stub-bin"
    stubs.mkdir(exist_ok=True)
    for name in ("claude", "opencode"):
        (stubs / name).write_text(ARGV_STUB)
        (stubs / name).chmod(0o755)
    return f"{stubs}:{os.environ.get('PATH', '/usr/bin:/bin')}"


def argv_seen(receiver: Recorder, job_id: str) -> list[str]:
    lines = [line for line in receiver.lines(job_id) if line.startswith("ARGV ")]
    assert len(lines) == 1, receiver.lines(job_id)
    argv: list[str] = json.loads(lines[0][len("ARGV "):])
    return argv


@pytest.mark.parametrize(
    ("agent", "model", "expected"),
    [
        ("claude", MODEL, ["--model", MODEL]),
        ("opencode", OPENCODE_MODEL, ["-m", OPENCODE_MODEL]),
        ("claude", None, []),
        ("opencode", None, []),
    ],
)
async def test_the_sidecar_runs_the_agent_with_the_jobs_model(
    receiver: Recorder, sidecar: SidecarLauncher, agent: str, model: str | None, expected: list[str]
) -> None:
    job_id, token = receiver.new_job()
    extra = {"AGENT_MODEL": model} if model else {}
    env = sidecar.env(receiver.url, job_id, token, AGENT=agent, TASK=TASK, PATH=stub_agents(sidecar), **extra)

    result = await sidecar.run(env)

    assert result.returncode == 0, result.stderr
    base = CLAUDE if agent == "claude" else OPENCODE
    assert argv_seen(receiver, job_id) == [*base[1:], *expected, "--", TASK]


@pytest.mark.parametrize("resume", [False, True])
async def test_a_session_message_runs_claude_with_the_jobs_model(
    receiver: Recorder, sidecar: SidecarLauncher, resume: bool
) -> None:
    """A message of a (handover) session: a new conversation and a resumed one both name it."""
    home = sidecar.workspace / "home"  # inside the workspace: the agent's HOME stays this one
    if resume:
        folder = home / ".claude" / "projects" / "-elsewhere"
        folder.mkdir(parents=True)
        (folder / f"{UUID}.jsonl").write_text("{}\n")
    job_id, token = receiver.new_job()
    env = sidecar.env(
        receiver.url, job_id, token, AGENT="claude", TASK=TASK, PATH=stub_agents(sidecar), HOME=str(home),
        AGENT_MODEL=MODEL, OPENDISPATCH_SESSION_MODE="handover", AGENT_SESSION_ID=UUID,
    )

    result = await sidecar.run(env)

    assert result.returncode == 0, result.stderr
    flag = "--resume" if resume else "--session-id"
    assert argv_seen(receiver, job_id) == [*CLAUDE[1:], "--model", MODEL, flag, UUID, "--", TASK]


async def test_the_shell_agent_has_the_model_in_its_environment_unchanged(
    receiver: Recorder, sidecar: SidecarLauncher
) -> None:
    job_id, token = receiver.new_job()
    model = "openrouter/anthropic/claude-3.5-sonnet:beta@v1"
    env = sidecar.env(
        receiver.url, job_id, token, AGENT="shell", TASK='printf "model=%s\\n" "$AGENT_MODEL"; echo "args=$#"',
        AGENT_MODEL=model,
    )

    result = await sidecar.run(env)

    assert result.returncode == 0, result.stderr
    assert receiver.lines(job_id) == [f"model={model}", "args=0"]  # the variable, and no argument


async def test_an_invalid_model_fails_the_job_at_the_sidecar_naming_agent_model(
    receiver: Recorder, sidecar: SidecarLauncher
) -> None:
    job_id, token = receiver.new_job()
    env = sidecar.env(
        receiver.url, job_id, token, AGENT="claude", TASK="hi", PATH=stub_agents(sidecar),
        AGENT_MODEL="--dangerously-skip-permissions",
    )

    result = await sidecar.run(env)

    assert result.returncode == 2
    assert "AGENT_MODEL" in result.stderr
    final = receiver.statuses(job_id)[-1]
    assert (final["status"], final["stage"], final["exitCode"]) == ("failed", "sidecar", 2)
    assert "AGENT_MODEL" in final["error"]
    assert not any(line.startswith("ARGV ") for line in receiver.lines(job_id))  # the agent never ran
