"""Who the agent runs as: the real sidecar, started as root, runs it as `opendispatch-agent`.

These run the built sidecar for real (this machine runs tests as root, as a sprite runs the
sidecar); the user is created by the sidecar when missing, with useradd. Not root: the tests
say why they cannot run, and under CI that is a failure rather than a skip.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

import harness  # noqa: F401  (puts sidecar/src on sys.path)
from sprite_reporter.artifacts import Artifacts
from sprite_reporter.privileges import DEFAULT_AGENT_USER, AgentIdentity, not_to_give

from .conftest import SidecarLauncher
from .recorder import Recorder

ROOT_REFUSAL = "--dangerously-skip-permissions cannot be used with root/sudo privileges"
WHO_AND_PEEK = "id -un; cat /proc/$PPID/environ; status=$?; echo; echo cat-exit=$status"


def need_root() -> None:
    if os.geteuid() == 0:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("the privilege tests need root (a sprite's sidecar is root); CI must run them as root")
    pytest.skip("the privilege tests need root")


async def test_as_root_the_agent_runs_as_its_own_user_and_cannot_read_the_sidecars_environment(
    receiver: Recorder, sidecar: SidecarLauncher
) -> None:
    need_root()
    job_id, token = receiver.new_job()
    env = sidecar.env(receiver.url, job_id, token, AGENT="shell", TASK=WHO_AND_PEEK, OPENDISPATCH_AGENT_USER="")

    result = await sidecar.run(env)

    lines = receiver.lines(job_id)
    assert result.returncode == 0, result.stderr
    assert lines[0] == DEFAULT_AGENT_USER
    assert any("Permission denied" in line for line in lines), lines
    assert lines[-1] == "cat-exit=1"
    assert not any("[sidecar] running the agent as root" in line for line in lines)
    assert token not in result.stdout + result.stderr + "".join(lines)
    owner = pwd.getpwnam(DEFAULT_AGENT_USER).pw_uid
    assert sidecar.workspace.stat().st_uid == owner  # the workspace is the agent's
    assert (sidecar.workspace / ".opendispatch-spool.jsonl").stat().st_uid == 0  # the sidecar's files stay


async def test_running_as_root_deliberately_is_said_in_the_jobs_output(
    receiver: Recorder, sidecar: SidecarLauncher
) -> None:
    need_root()
    job_id, token = receiver.new_job()
    env = sidecar.env(receiver.url, job_id, token, AGENT="shell", TASK=WHO_AND_PEEK, OPENDISPATCH_AGENT_USER="root")

    result = await sidecar.run(env)

    lines = receiver.lines(job_id)
    assert result.returncode == 0, result.stderr
    assert lines[0] == (
        "[sidecar] running the agent as root: OPENDISPATCH_AGENT_USER=root asks for it; "
        "it can read the sidecar's environment"
    )
    assert lines[1] == "root"
    assert any("OPEN_DISPATCH_URL=" in line for line in lines)  # it could read it...
    assert token not in "".join(lines)  # ...though the job token is redacted from what is relayed


@pytest.mark.parametrize("agent_user", ["", "root"])
async def test_the_real_claude_cli_accepts_the_permission_bypass_as_the_agent_user_and_as_a_sandboxed_root(
    receiver: Recorder, sidecar: SidecarLauncher, agent_user: str, agent_cli_bin: Path
) -> None:
    """Claude Code refuses --dangerously-skip-permissions as root unless IS_SANDBOX=1; it then
    goes on and fails for want of a login (no network or key here), which is past the check."""
    need_root()
    job_id, token = receiver.new_job()
    env = sidecar.env(
        receiver.url, job_id, token, AGENT="claude", TASK="hi", OPENDISPATCH_AGENT_USER=agent_user,
        PATH=f"{agent_cli_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    )

    await sidecar.run(env)

    output = "\n".join(receiver.lines(job_id))
    assert receiver.statuses(job_id)[-1].get("stage") == "agent", output  # it started, and ran
    assert ROOT_REFUSAL not in output
    if agent_user == "root":
        assert "running the agent as root" in output


async def test_an_agent_program_its_user_cannot_reach_runs_as_root_and_says_so(
    receiver: Recorder, sidecar: SidecarLauncher, tmp_path: Path
) -> None:
    """CLIs installed under a private folder (a checkout in a 0700 temporary folder): the agent's
    user got "not installed" for a program the sidecar had found (the CI clone's Fly test)."""
    need_root()
    private = tmp_path / "private"
    (private / "bin").mkdir(parents=True)
    private.chmod(0o700)
    stub = private / "bin" / "opencode"
    stub.write_text("#!/bin/sh\nid -un\n")
    stub.chmod(0o755)
    job_id, token = receiver.new_job()
    env = sidecar.env(
        receiver.url, job_id, token, AGENT="opencode", TASK="hi", OPENDISPATCH_AGENT_USER="",
        PATH=f"{private / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    )

    result = await sidecar.run(env)

    assert f"running the agent as root: the user {DEFAULT_AGENT_USER} cannot enter {private}" in result.stderr
    assert "not installed" not in "\n".join(receiver.lines(job_id)) + str(receiver.statuses(job_id))


# ---- the parts -------------------------------------------------------------------------


def test_the_agents_environment_names_its_user_or_marks_a_root_claude_as_sandboxed(tmp_path: Path) -> None:
    workspace = str(tmp_path / "ws")
    dropped = AgentIdentity(1234, 1234, "agent", "/home/agent")
    env = dropped.agent_env({"HOME": "/root", "PATH": "/bin"}, ["claude"], dropped.home_in({"HOME": "/root"}, workspace))
    assert (env["HOME"], env["USER"], env["LOGNAME"], "IS_SANDBOX" in env) == ("/home/agent", "agent", "agent", False)
    # A HOME inside the workspace (the local backend's) is the agent's already: it stays.
    assert dropped.home_in({"HOME": workspace}, workspace) == workspace
    root = AgentIdentity(fallback="no useradd")
    assert root.agent_env({}, ["/usr/bin/claude", "-p"], "/root")["IS_SANDBOX"] == "1"
    assert "IS_SANDBOX" not in root.agent_env({}, ["bash", "-c"], "/root")
    assert "IS_SANDBOX" not in AgentIdentity().agent_env({}, ["claude"], "/home/me")  # not root: nothing to say
    assert AgentIdentity().note() is None and root.note() is not None
    assert not_to_give("/") is not None and not_to_give(str(tmp_path)) is None


def test_handing_over_a_folder_keeps_the_sidecars_spool_and_follows_no_link(tmp_path: Path) -> None:
    need_root()
    (tmp_path / "repo" / "src").mkdir(parents=True)
    (tmp_path / "repo" / "src" / "a.py").write_text("")
    (tmp_path / "repo" / ".opendispatch-spool.jsonl").write_text("")
    outside = tmp_path / "outside"
    outside.write_text("")
    (tmp_path / "repo" / "link").symlink_to(outside)
    AgentIdentity(4321, 4321, "nobody-here", "/nonexistent").give(str(tmp_path / "repo"))
    assert (tmp_path / "repo" / "src" / "a.py").stat().st_uid == 4321
    assert (tmp_path / "repo" / ".opendispatch-spool.jsonl").stat().st_uid == 0
    assert outside.stat().st_uid == 0


def test_an_artifacts_file_the_agent_does_not_own_or_a_link_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("https://example.com/only-root-may-read-this\n")
    link = tmp_path / "link"
    link.symlink_to(secret)
    found = Artifacts()
    found.read_file(str(link), str(tmp_path), lambda text: text)
    found.read_file(str(secret), str(tmp_path), lambda text: text, writer_uid=os.geteuid() + 1)
    assert found.collected() == []
    found.read_file(str(secret), str(tmp_path), lambda text: text, writer_uid=os.geteuid())
    assert [a["url"] for a in found.collected()] == ["https://example.com/only-root-may-read-this"]
