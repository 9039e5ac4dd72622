"""Approvals, the sidecar's side (issue #22): the policy, the broker, Claude Code's hook, OpenCode's rules.

- the policy parser and matcher (`approval_policy.py`, standard library only) must agree
  with the dispatcher's (`opendispatch.domain.approvals`) on every example: both decide
  which calls wait;
- the broker (in this process) asks the recorder, which plays the dispatcher's two approval
  endpoints: at once, after a pending period, through failures, refusals and a timeout;
- the hook program runs as Claude Code runs it (a process, through sh), against the broker;
- OpenCode's permission rules deny what the policy names.
The real Claude Code and OpenCode CLIs run in tests/modelserver/test_agent_approvals.py.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

import harness  # noqa: F401  (puts sidecar/src on sys.path)
from opendispatch.domain import approvals as domain
from opendispatch.domain.errors import UsageError
from sprite_reporter.agents import agent_argv, session_agent_argv
from sprite_reporter.approval_policy import OPENCODE_EVERYTHING, PolicyError, opencode_permission, parse_policy
from sprite_reporter.approvals import (
    APPROVALS_ENV,
    MAX_SENT_CHARS,
    TIMEOUT_ENV,
    ApprovalBroker,
    Decision,
    load_approvals,
)
from sprite_reporter.config import ConfigError, Connection, load_connection
from sprite_reporter.privileges import AgentIdentity
from sprite_reporter.session import SessionLoop

from .conftest import SidecarLauncher
from .recorder import APPROVAL_PATH, Recorder

POLICY = "ask Bash(git push*) Bash(rm -rf*) WebFetch Write(/etc/*)"

# ---- the policy: the same answers as the dispatcher's ---------------------------------------

POLICIES = [
    "off",
    "OFF",
    "ask-all",
    "Ask-All",
    POLICY,
    "ask bash",
    "ask Bash(git push*),WebFetch",
    "ask  Bash( echo * )\tRead(*.env)",
    "ask mcp__github__create_issue Grep(*secret*)",
    "ask Bash(git push --force*) Bash(*--force*)",
    "ask Write Edit(/etc/*) NotebookEdit",
    "ask Bash([abc]*)",
]
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("Bash", {"command": "git push origin main", "description": "Push"}),
    ("bash", {"command": "git push"}),
    ("BASH", {"command": "git pull"}),
    ("Bash", {"command": "cd x && git push"}),
    ("Bash", {"command": "rm -rf /"}),
    ("Bash", {"command": "echo hi there"}),
    ("Bash", {"command": " echo hi"}),
    ("Bash", {"command": "a --force"}),
    ("Bash", {"command": "b"}),
    ("Bash", {}),
    ("Bash", {"command": ""}),
    ("Bash", {"command": 7}),
    ("WebFetch", {"url": "https://example.com", "prompt": "read it"}),
    ("Write", {"file_path": "/etc/passwd", "content": "x"}),
    ("Write", {"file_path": "/workspace/repo/a.py", "content": "x"}),
    ("Edit", {"file_path": "/etc/hosts", "old_string": "a", "new_string": "b"}),
    ("Read", {"file_path": "/workspace/repo/.env"}),
    ("Grep", {"pattern": "secret", "path": "/workspace/repo"}),
    ("Grep", {"pattern": "my-secret-key"}),
    ("NotebookEdit", {"notebook_path": "/w/n.ipynb"}),
    ("mcp__github__create_issue", {"title": "x"}),
    ("Glob", {"pattern": "**/*.py"}),
    ("", {"command": "git push"}),
]
BAD_POLICIES = [
    "nope",
    "ask",
    "ask ",
    "ask Bash(",
    "ask Bash(git push*)x",
    "ask Bash()",
    "ask Bash(   )",
    "ask 1bad",
    "ask Bash(a)(b)",
    "ask-all Bash",
    "off Bash",
    "ask " + " ".join(f"T{i}" for i in range(21)),
    "ask Bash(" + "x" * 201 + ")",
    "ask Bash(a\nb)",
]


@pytest.mark.parametrize("text", POLICIES)
def test_the_sidecar_and_the_dispatcher_read_a_policy_alike(text: str) -> None:
    ours, theirs = parse_policy(text), domain.parse_policy(text)
    assert (str(ours) if ours is not None else "off") == str(theirs)
    for tool, arguments in CALLS:
        mine = ours.needs_approval(tool, arguments) if ours is not None else None
        dispatcher = theirs.needs_approval(tool, arguments)
        assert (str(mine) if mine else None) == (str(dispatcher) if dispatcher else None), (text, tool, arguments)


@pytest.mark.parametrize("text", BAD_POLICIES)
def test_a_policy_the_dispatcher_refuses_the_sidecar_refuses_too(text: str) -> None:
    with pytest.raises(UsageError):
        domain.parse_policy(text)
    with pytest.raises(PolicyError):
        parse_policy(text)


def test_which_calls_the_example_policy_names() -> None:
    policy = parse_policy(POLICY)
    assert policy is not None
    named = {f"{tool} {arguments}": str(policy.needs_approval(tool, arguments)) for tool, arguments in CALLS}
    assert named["Bash {'command': 'git push origin main', 'description': 'Push'}"] == "Bash(git push*)"
    assert named["bash {'command': 'git push'}"] == "Bash(git push*)"  # tool names whatever their case
    assert named["Bash {'command': 'cd x && git push'}"] == "None"  # a pattern is on the whole command
    assert named["Bash {'command': 'rm -rf /'}"] == "Bash(rm -rf*)"
    assert named["Bash {}"] == "None"  # no main argument: a rule with a pattern does not match
    assert named["WebFetch {'url': 'https://example.com', 'prompt': 'read it'}"] == "WebFetch"
    assert named["Write {'file_path': '/etc/passwd', 'content': 'x'}"] == "Write(/etc/*)"
    assert named["Write {'file_path': '/workspace/repo/a.py', 'content': 'x'}"] == "None"
    assert parse_policy("") is None and parse_policy("  off ") is None


# ---- OpenCode: the policy as permission rules that deny ----------------------------------------


def test_opencode_denies_the_named_calls_in_keys_that_come_last() -> None:
    policy = parse_policy("ask Bash(git push*) Bash(rm -rf*) WebFetch Write(/etc/*) Edit(*.env) Read Grep(x*) mcp_tool")
    assert policy is not None
    assert opencode_permission(policy, "/workspace/repo") == {
        "bash*": {"git push*": "deny", "rm -rf*": "deny"},
        "webfetch*": "deny",
        "edit*": {"../../etc/*": "deny", "*.env": "deny"},  # paths relative to the clone, as OpenCode's
        "read*": "deny",
        "grep*": {"x*": "deny"},
        "mcp_tool*": "deny",
    }
    # A rule without a pattern denies the whole tool, whatever else names it.
    both = parse_policy("ask Bash(git push*) Bash Bash(rm*)")
    assert both is not None and opencode_permission(both, "/w") == {"bash*": "deny"}
    every = parse_policy("ask-all")
    assert every is not None and opencode_permission(every, "/w") == {OPENCODE_EVERYTHING: "deny"}


def test_opencode_gets_the_rules_its_project_config_off_and_the_line_says_so(tmp_path: Path) -> None:
    broker = load_approvals({APPROVALS_ENV: "ask Bash(git push*)"}, str(tmp_path), 5.0)
    assert broker is not None
    env = broker.opencode_env("/workspace/repo")
    assert json.loads(env["OPENCODE_PERMISSION"]) == {"bash*": {"git push*": "deny"}}
    assert env["OPENCODE_DISABLE_PROJECT_CONFIG"] == "1"
    assert broker.opencode_note() == (
        "[sidecar] OpenCode cannot ask for approval: calls matching the channel's rules are denied (ask Bash(git push*))"
    )


# ---- configuration and Claude Code's command line ---------------------------------------------


def test_approvals_off_absent_or_empty_change_nothing(tmp_path: Path) -> None:
    for env in ({}, {APPROVALS_ENV: ""}, {APPROVALS_ENV: " off "}, {APPROVALS_ENV: "off", TIMEOUT_ENV: "30"}):
        assert load_approvals(env, str(tmp_path), 5.0) is None


def test_a_bad_policy_or_timeout_is_a_configuration_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as bad:
        load_approvals({APPROVALS_ENV: "ask Bash("}, str(tmp_path), 5.0)
    assert bad.value.variable == APPROVALS_ENV and "Bash(" in str(bad.value)
    with pytest.raises(ConfigError) as late:
        load_approvals({APPROVALS_ENV: "ask-all", TIMEOUT_ENV: "soon"}, str(tmp_path), 5.0)
    assert late.value.variable == TIMEOUT_ENV
    broker = load_approvals({APPROVALS_ENV: "ask-all"}, str(tmp_path), 5.0)
    assert broker is not None and (broker.timeout_s, broker.give_up_s) == (600.0, 660.0)


def test_a_persistent_session_has_one_broker_for_its_messages_or_does_not_start(tmp_path: Path) -> None:
    env = {
        "SESSION_ID": "s-1", "SESSION_TOKEN": "t", "OPEN_DISPATCH_URL": "http://127.0.0.1:9",
        "AGENT": "claude", "OPENDISPATCH_WORKSPACE": str(tmp_path), "OPENDISPATCH_AGENT_USER": "root",
    }
    assert SessionLoop(env).approvals is None
    loop = SessionLoop({**env, APPROVALS_ENV: "ask WebFetch", TIMEOUT_ENV: "120"})
    assert loop.approvals is not None and (str(loop.approvals.policy), loop.approvals.timeout_s) == ("ask WebFetch", 120.0)
    with pytest.raises(ConfigError) as refused:
        SessionLoop({**env, APPROVALS_ENV: "ask-some"})
    assert refused.value.variable == APPROVALS_ENV


def test_claude_gets_our_hook_and_only_the_users_settings_before_the_task(tmp_path: Path) -> None:
    broker = ApprovalBroker(parse_policy("ask-all"), str(tmp_path), 600.0, 5.0)  # type: ignore[arg-type]
    broker.hook_command = "HOOK"
    one_shot = broker.claude_argv(agent_argv("claude", "--help me", model="claude-sonnet-4-5"))
    assert "--dangerously-skip-permissions" in one_shot  # the sprite stays the boundary for the rest
    at = one_shot.index("--setting-sources")
    assert one_shot[at : at + 3] == ["--setting-sources", "user", "--settings"]
    assert one_shot[-2:] == ["--", "--help me"] and one_shot.index("--") == at + 4
    settings = json.loads(one_shot[at + 3])
    assert settings["disableAllHooks"] is False
    [entry] = settings["hooks"]["PreToolUse"]
    assert entry["matcher"] == "*"
    assert entry["hooks"] == [{"type": "command", "command": "HOOK", "timeout": 750}]  # > 600 + 60 + the hook's 30
    resumed = broker.claude_argv(session_agent_argv("claude", "next", "sid", resume=True))
    assert resumed[-2:] == ["--", "next"] and resumed[resumed.index("--resume") + 1] == "sid"
    assert resumed[-6:-4] == ["--setting-sources", "user"] and resumed[-4] == "--settings"


# ---- the broker, against the recorder's approval endpoints -------------------------------------


@pytest.fixture
def brokers() -> Iterator[list[ApprovalBroker]]:
    started: list[ApprovalBroker] = []
    yield started
    for broker in started:
        broker.close()


def new_broker(
    brokers: list[ApprovalBroker], workspace: Path, policy: str = "ask Bash(echo*) WebFetch", **knobs: float
) -> ApprovalBroker:
    knobs = {"retry_max_s": 0.2, "poll_wait_s": 0.3, **knobs}
    timeout_s = knobs.pop("timeout_s", 30.0)
    broker = ApprovalBroker(parse_policy(policy), str(workspace), timeout_s, 5.0, **knobs)  # type: ignore[arg-type]
    broker.start(AgentIdentity())
    brokers.append(broker)
    return broker


def connection_for(receiver: Recorder, job_id: str, token: str) -> Connection:
    return load_connection({"JOB_ID": job_id, "JOB_TOKEN": token, "OPEN_DISPATCH_URL": receiver.url})


async def decide(broker: ApprovalBroker, tool: str, arguments: dict[str, Any], **kwargs: Any) -> Decision:
    return await trio.to_thread.run_sync(lambda: broker.decide(tool, arguments, **kwargs))


async def attached(receiver: Recorder, brokers: list[ApprovalBroker], workspace: Path, **knobs: Any) -> ApprovalBroker:
    job_id, token = receiver.new_job()
    broker = new_broker(brokers, workspace, **knobs)
    broker.attach(connection_for(receiver, job_id, token))
    return broker


async def test_a_call_the_policy_does_not_name_is_allowed_without_asking(
    receiver: Recorder, brokers: list[ApprovalBroker], tmp_path: Path
) -> None:
    broker = await attached(receiver, brokers, tmp_path)

    for tool, arguments in [("Bash", {"command": "ls"}), ("Read", {"file_path": "/x"}), ("Bash", {})]:
        decision = await decide(broker, tool, arguments)
        assert (decision.allow, decision.asked, decision.reason) == (True, False, "")
    assert receiver.approval_calls == 0


async def test_approved_and_denied_at_once_with_the_dispatchers_words(
    receiver: Recorder, brokers: list[ApprovalBroker], tmp_path: Path
) -> None:
    broker = await attached(receiver, brokers, tmp_path)

    receiver.answer_approvals("approve", by="alice")
    approved = await decide(broker, "Bash", {"command": "echo hi", "description": "Say hi"})
    receiver.answer_approvals("deny", "denied in chat by bob: not today", by="bob")
    denied = await decide(broker, "WebFetch", {"url": "https://example.com"})

    assert (approved.allow, approved.asked, approved.reason) == (True, True, "approved in chat by alice")
    assert (denied.allow, denied.asked, denied.reason) == (False, True, "denied in chat by bob: not today")
    first, second = receiver.approval_requests
    assert (first.tool, first.input) == ("Bash", {"command": "echo hi", "description": "Say hi"})
    assert (second.tool, second.input) == ("WebFetch", {"url": "https://example.com"})
    assert receiver.approval_polls == []  # decided at once: no poll


async def test_a_pending_request_is_polled_until_a_person_decides(
    receiver: Recorder, brokers: list[ApprovalBroker], tmp_path: Path
) -> None:
    broker = await attached(receiver, brokers, tmp_path)
    receiver.answer_approvals("pending")
    outcome: list[Decision] = []

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: _keep(outcome, decide(broker, "Bash", {"command": "echo deploy"})))
        with trio.fail_after(10):
            await receiver.wait_until(lambda: len(receiver.approval_polls) >= 3)  # 0.3 s long polls, pending
        assert outcome == []
        [request] = receiver.approval_requests
        receiver.decide(request.id, "approve", by="dave")

    [decision] = outcome
    assert (decision.allow, decision.reason) == (True, "approved in chat by dave")
    assert {request_id for request_id, _ in receiver.approval_polls} == {request.id}
    assert all(0 < wait_s <= 0.3 for _, wait_s in receiver.approval_polls)


async def test_a_dispatcher_answering_pending_at_once_is_not_asked_in_a_tight_loop(
    receiver: Recorder, brokers: list[ApprovalBroker], tmp_path: Path
) -> None:
    broker = await attached(receiver, brokers, tmp_path, poll_wait_s=5.0)
    receiver.answer_approvals("pending")
    receiver.approval_polls_wait = False
    outcome: list[Decision] = []

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: _keep(outcome, decide(broker, "Bash", {"command": "echo deploy"})))
        await trio.sleep(1.0)
        [request] = receiver.approval_requests
        receiver.decide(request.id, "deny", by="frank")

    assert outcome[0].reason == "denied in chat by frank"
    assert 2 <= len(receiver.approval_polls) <= 12  # backing off (0.2 s at most here), not hundreds


async def _keep(into: list[Decision], asking: Any) -> None:
    into.append(await asking)


async def test_failures_are_retried_and_refusals_deny_saying_why(
    receiver: Recorder, brokers: list[ApprovalBroker], tmp_path: Path
) -> None:
    broker = await attached(receiver, brokers, tmp_path)

    receiver.fail_next(3, 503, only=APPROVAL_PATH)
    through = await decide(broker, "Bash", {"command": "echo a"})
    assert (through.allow, receiver.approval_calls) == (True, 4)  # three 503s, then the answer
    # Every try of one ask carries one askId, so a dispatcher that stored the request but whose
    # answer was lost gives the same request back; the next ask has its own.
    [ask_id] = set(receiver.approval_ask_ids)
    assert isinstance(ask_id, str) and len(ask_id) == 32 and len(receiver.approval_ask_ids) == 4
    await decide(broker, "Bash", {"command": "echo a"})
    assert receiver.approval_ask_ids[-1] != ask_id

    for status, error, said in [
        (404, "There is no approval request a-1.", "There is no approval request a-1. (404)"),
        (409, "job already finished", "job already finished (409)"),
        (400, "the body must be {jobId, tool, input}", "refused the approval request (400: the body must be"),
    ]:
        receiver.refuse_approvals(status, error)
        refused = await decide(broker, "Bash", {"command": "echo b"})
        assert (refused.allow, refused.asked) == (False, True)
        assert said in refused.reason


async def test_a_wrong_token_no_job_and_a_finished_job_deny(
    receiver: Recorder, brokers: list[ApprovalBroker], tmp_path: Path
) -> None:
    first_id, first_token = receiver.new_job()
    _, second_token = receiver.new_job()
    broker = new_broker(brokers, tmp_path)

    idle = await decide(broker, "Bash", {"command": "echo x"})  # a persistent session between messages
    assert (idle.allow, receiver.approval_calls) == (False, 0)
    assert "no job is running" in idle.reason

    broker.attach(connection_for(receiver, first_id, second_token))
    wrong = await decide(broker, "Bash", {"command": "echo x"})
    assert not wrong.allow and "(401)" in wrong.reason

    broker.attach(connection_for(receiver, first_id, first_token))
    receiver.jobs[first_id].final.set()  # the dispatcher has its final status
    over = await decide(broker, "Bash", {"command": "echo x"})
    assert not over.allow and "job already finished (409)" in over.reason


async def test_no_decision_in_time_denies(receiver: Recorder, brokers: list[ApprovalBroker], tmp_path: Path) -> None:
    broker = await attached(receiver, brokers, tmp_path, timeout_s=0.6, grace_s=0.4)
    receiver.answer_approvals("pending")

    started = time.monotonic()
    decision = await decide(broker, "Bash", {"command": "echo late"})

    assert 0.9 <= time.monotonic() - started < 5
    assert not decision.allow
    assert decision.reason == "no approval decision arrived within 1 seconds, so the call was not run"


async def test_an_unreachable_dispatcher_is_retried_until_the_deadline(brokers: list[ApprovalBroker], tmp_path: Path) -> None:
    broker = new_broker(brokers, tmp_path, timeout_s=0.5, grace_s=0.5)
    broker.attach(load_connection({"JOB_ID": "j", "JOB_TOKEN": "t", "OPEN_DISPATCH_URL": "http://127.0.0.1:9"}))

    decision = await decide(broker, "Bash", {"command": "echo x"})

    assert not decision.allow and "no approval decision arrived" in decision.reason


async def test_a_hook_that_went_away_stops_the_polling(
    receiver: Recorder, brokers: list[ApprovalBroker], tmp_path: Path
) -> None:
    broker = await attached(receiver, brokers, tmp_path)
    receiver.answer_approvals("pending")
    hung_up = False

    async def hang_up_later() -> None:
        nonlocal hung_up
        await receiver.wait_until(lambda: len(receiver.approval_polls) >= 1)
        hung_up = True

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hang_up_later)
            decision = await decide(broker, "Bash", {"command": "echo x"}, gone=lambda: hung_up)
    polls = len(receiver.approval_polls)
    await trio.sleep(0.7)
    assert not decision.allow and len(receiver.approval_polls) == polls  # no one asks any more


async def test_what_the_dispatcher_is_sent_of_a_large_call(
    receiver: Recorder, brokers: list[ApprovalBroker], tmp_path: Path
) -> None:
    broker = await attached(receiver, brokers, tmp_path, policy="ask-all")
    content = "x" * (MAX_SENT_CHARS + 10)
    command = "echo " + "y" * 10_000

    await decide(broker, "Write", {"file_path": "/w/a.txt", "content": content, "edits": [{"old": content}]})
    await decide(broker, "Bash", {"command": command, "timeout": 5, "run_in_background": False})
    too_long = await decide(broker, "Bash", {"command": "z" * 300_000})

    write, bash = receiver.approval_requests
    assert write.input["file_path"] == "/w/a.txt"
    assert write.input["content"] == content[:MAX_SENT_CHARS] + f"… ({len(content)} characters)"
    assert write.input["edits"].endswith("characters of JSON, not sent)")
    assert bash.input == {"command": command, "timeout": 5, "run_in_background": False}  # the main argument whole
    assert not too_long.allow and "too long" in too_long.reason


# ---- the hook program, as Claude Code runs it ----------------------------------------------------


def hook_input(tool: str, arguments: dict[str, Any]) -> bytes:
    return json.dumps({
        "session_id": "s", "hook_event_name": "PreToolUse", "permission_mode": "bypassPermissions",
        "tool_name": tool, "tool_input": arguments, "tool_use_id": "toolu_1",
    }).encode()


async def run_hook(command: str, stdin: bytes) -> tuple[int, dict[str, Any] | None, str]:
    """The hook's command line through sh, as Claude Code runs it: (exit code, its JSON, stderr)."""
    done = await trio.run_process(["/bin/sh", "-c", command], stdin=stdin, capture_stdout=True, capture_stderr=True, check=False)
    out = done.stdout.decode().strip()
    return done.returncode, json.loads(out) if out else None, done.stderr.decode()


def hook_decision(printed: dict[str, Any] | None) -> tuple[str, str] | None:
    if printed is None:
        return None
    specific = printed["hookSpecificOutput"]
    assert specific["hookEventName"] == "PreToolUse"
    return specific["permissionDecision"], specific["permissionDecisionReason"]


async def test_the_hook_says_nothing_allows_or_denies_as_the_broker_answers(
    receiver: Recorder, brokers: list[ApprovalBroker], tmp_path: Path
) -> None:
    broker = await attached(receiver, brokers, tmp_path)

    code, printed, _ = await run_hook(broker.hook_command, hook_input("Bash", {"command": "ls"}))
    assert (code, printed) == (0, None)  # not named: Claude Code runs it as it would anyway

    receiver.answer_approvals("approve", by="alice")
    code, printed, _ = await run_hook(broker.hook_command, hook_input("Bash", {"command": "echo hi"}))
    assert (code, hook_decision(printed)) == (0, ("allow", "approved in chat by alice"))

    receiver.answer_approvals("deny", "denied in chat by bob", by="bob")
    code, printed, _ = await run_hook(broker.hook_command, hook_input("WebFetch", {"url": "https://x"}))
    assert (code, hook_decision(printed)) == (0, ("deny", "denied in chat by bob"))

    # Where it lives: root's helper, 0755, in a folder only root writes; the socket is private.
    folder = tmp_path / ".od-git"
    hook = folder / "claude-approval-hook"
    assert broker.folder == str(folder) and str(hook) in broker.hook_command
    assert stat.S_IMODE(hook.stat().st_mode) == 0o755 and hook.stat().st_uid == os.geteuid()
    assert stat.S_IMODE((folder / "approvals").stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "approvals" / "socket").stat().st_mode) == 0o600


async def test_the_hook_fails_closed(receiver: Recorder, brokers: list[ApprovalBroker], tmp_path: Path) -> None:
    broker = await attached(receiver, brokers, tmp_path)
    command = broker.hook_command

    code, printed, _ = await run_hook(command, b"not json")
    assert code == 0 and hook_decision(printed) == ("deny", "the approval hook could not read the tool call it was given")

    broker.close()  # no broker answers
    code, printed, _ = await run_hook(command, hook_input("Bash", {"command": "ls"}))
    assert code == 0 and hook_decision(printed)[0] == "deny"  # type: ignore[index]
    assert "approval broker could not be asked" in hook_decision(printed)[1]  # type: ignore[index]

    # python itself cannot run: sh's exit code 2 blocks the call, stderr says why.
    missing = command.replace(command.split()[0], "/nonexistent/python3", 1)
    code, printed, stderr = await run_hook(missing, hook_input("Bash", {"command": "ls"}))
    assert (code, printed) == (2, None)
    assert "the approval hook could not run" in stderr


async def test_the_hook_gives_up_waiting_and_denies(tmp_path: Path) -> None:
    """A broker that never answers: the hook's own wait ends it (before Claude Code's timeout)."""
    import socket

    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.bind(str(path))
        silent.listen(1)
        hook = Path(harness.SIDECAR_SOURCES) / "sprite_reporter" / "approval_hook.py"
        started = time.monotonic()
        done = await trio.run_process(
            [sys.executable, "-I", str(hook), str(path), "0.5"], stdin=hook_input("Bash", {"command": "x"}),
            capture_stdout=True, check=False,
        )
    assert time.monotonic() - started < 5
    printed = json.loads(done.stdout)
    assert hook_decision(printed) == ("deny", "no approval decision arrived within 0.5 seconds, so the call was not run")


# ---- the real sidecar ----------------------------------------------------------------------------


async def test_a_policy_the_sidecar_cannot_read_fails_the_job_naming_the_variable(
    receiver: Recorder, sidecar: SidecarLauncher
) -> None:
    job_id, token = receiver.new_job()
    env = sidecar.env(receiver.url, job_id, token, AGENT="claude", TASK="x", OPENDISPATCH_APPROVALS="ask Bash(")

    result = await sidecar.run(env)

    assert result.returncode == 2
    final = receiver.statuses(job_id)[-1]
    assert (final["status"], final["stage"], final["exitCode"]) == ("failed", "sidecar", 2)
    assert APPROVALS_ENV in final["error"]


async def test_the_shell_agent_runs_as_before_under_a_policy(receiver: Recorder, sidecar: SidecarLauncher) -> None:
    job_id, token = receiver.new_job()
    env = sidecar.env(receiver.url, job_id, token, AGENT="shell", TASK="echo plain", OPENDISPATCH_APPROVALS="ask-all")

    result = await sidecar.run(env)

    assert result.returncode == 0, result.stderr
    assert receiver.lines(job_id) == ["plain"]
    assert not (sidecar.workspace / ".od-git" / "approvals").exists()  # no broker: nothing asks it
