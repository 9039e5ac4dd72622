"""The sidecar as a real subprocess against a loopback receiver.

Each test starts `sidecar/sprite-reporter` with an environment built from scratch and checks
what the receiver stored: the lines in order and exactly once, the statuses, the artifacts.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio

from .conftest import SidecarLauncher
from .recorder import Recorder

CEILING_S = 25.0


def make_git_repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@e"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    for name, content in files.items():
        (path / name).write_text(content)
    subprocess.run(git + ["-C", str(path), "add", "."], check=True)
    subprocess.run(git + ["-C", str(path), "commit", "-q", "-m", "initial"], check=True)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def process_gone(pid: int) -> bool:
    """Gone, or a zombie nobody reaped yet (it runs no more code either way)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


# ---- configuration -------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["JOB_ID", "JOB_TOKEN", "OPEN_DISPATCH_URL"])
async def test_missing_connection_variable_exits_2_naming_it(
    missing: str, receiver: Recorder, sidecar: SidecarLauncher
) -> None:
    job_id, token = receiver.new_job()
    env = sidecar.env(receiver.url, job_id, token, AGENT="shell", TASK="echo hi")
    del env[missing]

    result = await sidecar.run(env)

    assert result.returncode == 2
    assert missing in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert receiver.raw_bodies == []  # nothing was sent anywhere
    assert token not in result.stderr + result.stdout


async def test_missing_command_exits_2_and_reports_a_sidecar_failure(
    receiver: Recorder, sidecar: SidecarLauncher
) -> None:
    job_id, token = receiver.new_job()

    result = await sidecar.run(sidecar.env(receiver.url, job_id, token))

    assert result.returncode == 2
    assert "AGENT" in result.stderr
    final = receiver.statuses(job_id)[-1]
    assert (final["status"], final["stage"], final["exitCode"]) == ("failed", "sidecar", 2)
    assert "AGENT" in final["error"]


async def test_invalid_knob_is_named(receiver: Recorder, sidecar: SidecarLauncher) -> None:
    job_id, token = receiver.new_job()
    env = sidecar.env(
        receiver.url, job_id, token, AGENT="shell", TASK="echo hi", OPENDISPATCH_BATCH_MS="soon"
    )

    result = await sidecar.run(env)

    assert result.returncode == 2
    assert "OPENDISPATCH_BATCH_MS" in result.stderr


# ---- the shell agent and exit codes ---------------------------------------------------

TRICKY_TASK = r"""echo first
echo
printf '%s\n' 'héllo wörld ✓ 🚀'
printf '%s\n' '$HOME and "double" quotes'
echo "  indented"
echo
printf 'no newline at the end'"""

TRICKY_LINES = [
    "first",
    "",
    "héllo wörld ✓ 🚀",
    '$HOME and "double" quotes',
    "  indented",
    "",
    "no newline at the end",
]


async def test_shell_agent_lines_arrive_in_order_exactly_once(
    receiver: Recorder, sidecar: SidecarLauncher
) -> None:
    job_id, token = receiver.new_job()

    result = await sidecar.run(sidecar.env(receiver.url, job_id, token, AGENT="shell", TASK=TRICKY_TASK))

    assert result.returncode == 0, result.stderr
    assert receiver.lines(job_id) == TRICKY_LINES
    assert receiver.seqs(job_id) == list(range(len(receiver.seqs(job_id))))
    statuses = receiver.statuses(job_id)
    assert [s["status"] for s in statuses] == ["running", "completed"]
    assert (statuses[-1]["exitCode"], statuses[-1]["error"]) == (0, "")
    assert receiver.timeline(job_id)[-1] == ("status", "completed")
    assert result.stdout.splitlines() == TRICKY_LINES  # echoed for `fly logs`


async def test_legacy_command_is_split_not_shelled(receiver: Recorder, sidecar: SidecarLauncher) -> None:
    job_id, token = receiver.new_job()
    env = sidecar.env(receiver.url, job_id, token, COMMAND="printf '%s|%s\\n' 'a b' '$HOME;x'")

    result = await sidecar.run(env)

    assert result.returncode == 0, result.stderr
    assert receiver.lines(job_id) == ["a b|$HOME;x"]


async def test_nonzero_exit_is_a_failure_at_stage_agent(receiver: Recorder, sidecar: SidecarLauncher) -> None:
    job_id, token = receiver.new_job()

    env = sidecar.env(receiver.url, job_id, token, AGENT="shell", TASK="echo oops; exit 3")

    result = await sidecar.run(env)

    assert result.returncode == 3
    final = receiver.statuses(job_id)[-1]
    assert final == {
        "jobId": job_id,
        "status": "failed",
        "exitCode": 3,
        "error": "agent exited with code 3",
        "stage": "agent",
    }
    assert receiver.lines(job_id) == ["oops"]


@pytest.mark.parametrize(
    ("where", "advice"),
    [
        ({}, "is not installed on the dispatcher's host (local sprites run its programs, from its PATH); install claude there"),
        ({"FLY_MACHINE_ID": "e784079b449483"}, "is not installed in this image; use --image with an image that has claude"),
    ],
)
async def test_agent_not_installed_fails_at_agent_start_with_advice_for_where_the_sprite_runs(
    receiver: Recorder, sidecar: SidecarLauncher, tmp_path: Path, where: dict[str, str], advice: str
) -> None:
    job_id, token = receiver.new_job()
    empty_bin = sidecar.workspace.parent / "empty-bin"  # a folder the agent's user may search
    empty_bin.mkdir()
    env = sidecar.env(receiver.url, job_id, token, AGENT="claude", TASK="fix it", PATH=str(empty_bin), **where)

    result = await sidecar.run(env)

    assert result.returncode == 127
    final = receiver.statuses(job_id)[-1]
    assert (final["status"], final["stage"], final["exitCode"]) == ("failed", "agent_start", 127)
    assert "'claude' " + advice in final["error"], final["error"]
    assert "--agent shell" in final["error"]


# ---- cloning ------------------------------------------------------------------------------


async def test_clone_of_a_local_repo_then_the_task_sees_it(
    receiver: Recorder, sidecar: SidecarLauncher, tmp_path: Path
) -> None:
    origin = make_git_repo(tmp_path / "origin", {"hello.txt": "cloned content\n"})
    job_id, token = receiver.new_job()
    env = sidecar.env(receiver.url, job_id, token, AGENT="shell", TASK="cat hello.txt", REPO=str(origin))

    result = await sidecar.run(env)

    assert result.returncode == 0, result.stderr
    lines = receiver.lines(job_id)
    assert lines[0] == f"$ git clone {origin} (branch main)"
    assert lines[-1] == "cloned content"
    assert (sidecar.workspace / "repo" / "hello.txt").exists()
    assert receiver.statuses(job_id)[-1]["status"] == "completed"


async def test_clone_of_a_missing_branch_fails_with_an_actionable_message(
    receiver: Recorder, sidecar: SidecarLauncher, tmp_path: Path
) -> None:
    origin = make_git_repo(tmp_path / "origin", {"hello.txt": "x\n"})
    job_id, token = receiver.new_job()
    env = sidecar.env(
        receiver.url, job_id, token, AGENT="shell", TASK="echo must-not-run", REPO=str(origin), BRANCH="nope"
    )

    result = await sidecar.run(env)

    final = receiver.statuses(job_id)[-1]
    assert (final["status"], final["stage"]) == ("failed", "clone")
    assert result.returncode == final["exitCode"] != 0
    assert final["error"].startswith(f"could not clone {origin} at branch nope: ")
    assert "nope" in final["error"].split(": ", 1)[1]
    assert final["error"].endswith("check the repository name, branch and GH_TOKEN access")
    assert "must-not-run" not in receiver.lines(job_id)
    assert any("nope" in line for line in receiver.lines(job_id)[1:])  # git's own words relayed


async def test_github_clone_uses_a_credential_helper_not_the_token(
    receiver: Recorder, sidecar: SidecarLauncher, tmp_path: Path
) -> None:
    """A fake `git` records its argv: no network, and we can see exactly what git was given."""
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    argv_file = tmp_path / "git-argv"
    fake_git = fake_bin / "git"
    fake_git.write_text(
        "#!/bin/sh\n"
        f"for a in \"$@\"; do printf '%s\\n' \"$a\"; done > {argv_file}\n"
        "echo 'fatal: repository not found' >&2\nexit 128\n"
    )
    fake_git.chmod(0o755)
    gh_token = "ghp_supersecretvalue0123456789"
    job_id, token = receiver.new_job()
    env = sidecar.env(
        receiver.url, job_id, token, AGENT="shell", TASK="true", REPO="owner/repo", GH_TOKEN=gh_token,
        PATH=f"{fake_bin}:{os.environ['PATH']}",
    )

    result = await sidecar.run(env)

    argv = argv_file.read_text().splitlines()
    assert result.returncode == 128
    assert gh_token not in argv_file.read_text()
    assert argv[-3:] == ["--", "https://github.com/owner/repo.git", str(sidecar.workspace / "repo")]
    assert ["--branch", "main", "--depth", "1"] == argv[argv.index("--branch") : argv.index("--branch") + 4]
    helper = next(a for a in argv if a.startswith("credential.helper=!"))[len("credential.helper=!") :]
    answer = subprocess.run(
        ["sh", "-c", helper + " get"], env={"GH_TOKEN": gh_token, "PATH": os.environ["PATH"]},
        capture_output=True, text=True, check=True,
    )
    assert f"password={gh_token}" in answer.stdout.splitlines()
    final = receiver.statuses(job_id)[-1]
    assert "could not clone owner/repo at branch main: repository not found;" in final["error"]


# ---- delivery under trouble ------------------------------------------------------------------

COUNT_TO_200 = 'for i in $(seq 1 200); do echo "line $i"; done'
LINES_200 = [f"line {i}" for i in range(1, 201)]


async def test_server_down_for_a_while_then_everything_arrives_in_order(
    sidecar: SidecarLauncher, start_receiver: Callable[[Recorder, str], Awaitable[str]]
) -> None:
    recorder = Recorder()
    job_id, token = recorder.new_job()
    port = free_port()
    env = sidecar.env(f"http://127.0.0.1:{port}", job_id, token, AGENT="shell", TASK=COUNT_TO_200)

    with trio.fail_after(CEILING_S):
        running = await sidecar.start(env)
        await running.wait_for_stdout("line 200\n")  # the agent ran while nothing listened
        await start_receiver(recorder, f"127.0.0.1:{port}")
        final = await recorder.wait_for_final_status(job_id)
        result = await running.wait()

    assert result.returncode == 0, result.stderr
    assert final["status"] == "completed"
    assert recorder.lines(job_id) == LINES_200
    timeline = recorder.timeline(job_id)
    assert timeline[0] == ("status", "running")
    assert timeline[-1] == ("status", "completed")
    assert [seq for kind, seq in timeline if kind == "logs"] == recorder.seqs(job_id)  # in order


async def test_a_503_burst_still_delivers_every_line_exactly_once(
    receiver: Recorder, sidecar: SidecarLauncher
) -> None:
    job_id, token = receiver.new_job()
    receiver.fail_next(6, status=503, only="/webhooks/logs")

    result = await sidecar.run(sidecar.env(receiver.url, job_id, token, AGENT="shell", TASK=COUNT_TO_200))

    assert result.returncode == 0, result.stderr
    assert receiver.injected == 6
    assert receiver.lines(job_id) == LINES_200
    assert [s["status"] for s in receiver.statuses(job_id)] == ["running", "completed"]


async def test_429_with_retry_after_is_honoured(receiver: Recorder, sidecar: SidecarLauncher) -> None:
    job_id, token = receiver.new_job()
    receiver.fail_next(2, status=429, retry_after="0")

    result = await sidecar.run(sidecar.env(receiver.url, job_id, token, AGENT="shell", TASK="echo a; echo b"))

    assert result.returncode == 0, result.stderr
    assert receiver.injected == 2
    assert receiver.lines(job_id) == ["a", "b"]


async def test_413_rebatches_smaller_under_the_same_seq(receiver: Recorder, sidecar: SidecarLauncher) -> None:
    receiver.max_body_bytes = 20_000
    job_id, token = receiver.new_job()
    task = 'for i in $(seq 1 100); do printf "%04d%0996d\\n" "$i" 0; done'
    env = sidecar.env(receiver.url, job_id, token, AGENT="shell", TASK=task, OPENDISPATCH_BATCH_MS="200")

    result = await sidecar.run(env)

    assert result.returncode == 0, result.stderr
    assert 413 in receiver.answered
    lines = receiver.lines(job_id)
    assert [int(line[:4]) for line in lines] == list(range(1, 101))
    assert all(len(line) == 1000 for line in lines)
    assert receiver.seqs(job_id) == list(range(len(receiver.seqs(job_id))))


async def test_server_asked_batch_interval_is_respected(receiver: Recorder, sidecar: SidecarLauncher) -> None:
    """Asked for 300 ms between batches, the sidecar never sends two batches closer than that."""
    receiver.batch_interval_ms = 300
    job_id, token = receiver.new_job()
    task = "for i in $(seq 1 12); do echo $i; sleep 0.05; done"

    result = await sidecar.run(sidecar.env(receiver.url, job_id, token, AGENT="shell", TASK=task))

    assert result.returncode == 0, result.stderr
    assert receiver.lines(job_id) == [str(i) for i in range(1, 13)]
    arrivals = receiver.arrivals(job_id)
    assert len(arrivals) >= 2
    assert min(later - earlier for earlier, later in zip(arrivals, arrivals[1:])) >= 0.29


async def test_a_lost_answer_is_retried_under_the_same_seq(
    receiver: Recorder, sidecar: SidecarLauncher
) -> None:
    """The server stored the batch but its answer was lost: the retry must be the same batch."""
    job_id, token = receiver.new_job()
    receiver.fail_next(4, status=502, after_storing=True, only="/webhooks/logs")

    result = await sidecar.run(sidecar.env(receiver.url, job_id, token, AGENT="shell", TASK=COUNT_TO_200))

    assert result.returncode == 0, result.stderr
    assert receiver.injected == 4
    assert receiver.lines(job_id) == LINES_200
    assert [s["status"] for s in receiver.statuses(job_id)] == ["running", "completed"]


async def test_a_very_long_line_arrives_in_pieces_split_on_characters(
    receiver: Recorder, sidecar: SidecarLauncher
) -> None:
    job_id, token = receiver.new_job()
    # An odd prefix puts the two-byte "é" across the 32 KiB piece boundary; then a line of
    # exactly 32 KiB, whose newline comes alone in the next read and must not add a line.
    task = "printf 'x'; printf 'é%.0s' $(seq 1 40000); echo; printf 'a%.0s' $(seq 1 32768); echo; echo after"

    result = await sidecar.run(sidecar.env(receiver.url, job_id, token, AGENT="shell", TASK=task))

    assert result.returncode == 0, result.stderr
    *pieces, exact, last = receiver.lines(job_id)
    assert (exact, last) == ("a" * 32768, "after")
    assert len(pieces) > 1
    assert "".join(pieces) == "x" + "é" * 40000
    assert all(len(piece.encode()) <= 32 * 1024 for piece in pieces)


async def test_rejected_token_stops_sending_and_keeps_the_agent_exit_code(
    receiver: Recorder, sidecar: SidecarLauncher
) -> None:
    job_id, _ = receiver.new_job()
    _, other_token = receiver.new_job()

    env = sidecar.env(receiver.url, job_id, other_token, AGENT="shell", TASK="echo hi; exit 4")

    result = await sidecar.run(env)

    assert result.returncode == 4
    assert "401" in result.stderr
    assert other_token not in result.stderr + result.stdout
    assert receiver.statuses(job_id) == []
    assert len(receiver.raw_bodies) == 1  # one try, then it stopped


async def test_unreachable_server_is_given_up_on(sidecar: SidecarLauncher) -> None:
    env = sidecar.env(
        f"http://127.0.0.1:{free_port()}", "job-x", "tok-unused-123", AGENT="shell", TASK="echo hi",
        OPENDISPATCH_GIVE_UP_S="1",
    )

    result = await sidecar.run(env)

    assert result.returncode == 0
    assert "server unreachable for 1s" in result.stderr
    assert "fly logs" in result.stderr
    assert result.stdout.splitlines() == ["hi"]


# ---- artifacts -----------------------------------------------------------------------------


async def test_pr_urls_and_the_artifacts_file_are_reported_once(
    receiver: Recorder, sidecar: SidecarLauncher, tmp_path: Path
) -> None:
    job_id, token = receiver.new_job()
    task = (
        'echo "Created https://github.com/octo/widgets/pull/42 for you"\n'
        'echo "again: https://github.com/octo/widgets/pull/42."\n'
        'echo "MR https://gitlab.com/grp/sub/proj/-/merge_requests/7"\n'
        'printf "report\\thttps://example.com/r/1\\nout/build.log\\n'
        'https://github.com/octo/widgets/pull/42\\n"'
        ' > "$OPENDISPATCH_ARTIFACTS_FILE"'
    )

    result = await sidecar.run(sidecar.env(receiver.url, job_id, token, AGENT="shell", TASK=task))

    assert result.returncode == 0, result.stderr
    workspace = sidecar.workspace
    got = {a["url"]: (a["name"], a["type"]) for a in receiver.artifacts(job_id)}
    assert len(got) == len(receiver.artifacts(job_id))  # reported once each
    assert got == {
        "https://github.com/octo/widgets/pull/42": ("octo/widgets#42", "pull_request"),
        "https://gitlab.com/grp/sub/proj/-/merge_requests/7": ("grp/sub/proj!7", "pull_request"),
        "https://example.com/r/1": ("report", "link"),
        str(workspace / "out" / "build.log"): ("build.log", "file"),
    }
    kinds = [kind for kind, _ in receiver.timeline(job_id)]
    assert kinds[-2:] == ["artifacts", "status"]  # artifacts before the final status


async def test_small_artifact_files_are_copied_out_before_the_end_and_big_ones_only_sized(
    receiver: Recorder, sidecar: SidecarLauncher
) -> None:
    """The workspace is deleted with the sprite: a file artifact's bytes must leave with the report."""
    job_id, token = receiver.new_job()
    task = (
        "printf 'all 4 passed\\n' > report.txt\n"
        "head -c 600000 /dev/zero > big.bin\n"
        "ln -s /etc/hostname link.txt\n"
        "printf 'test report\\treport.txt\\nbig.bin\\nlink.txt\\ngone.txt\\n' > \"$OPENDISPATCH_ARTIFACTS_FILE\""
    )

    result = await sidecar.run(sidecar.env(receiver.url, job_id, token, AGENT="shell", TASK=task))

    assert result.returncode == 0, result.stderr
    job = receiver.jobs[job_id]
    assert job.files == {"test report": b"all 4 passed\n"}
    sizes = {a["name"]: a.get("size") for a in receiver.artifacts(job_id)}
    assert sizes == {"test report": 13, "big.bin": 600000, "link.txt": None, "gone.txt": None}
    kinds = [kind for kind, _ in receiver.timeline(job_id)]
    assert kinds[-3:] == ["artifact-file", "artifacts", "status"]


# ---- cancellation --------------------------------------------------------------------------


async def test_sigterm_cancels_the_agent_and_reports_cancelled(
    receiver: Recorder, sidecar: SidecarLauncher
) -> None:
    job_id, token = receiver.new_job()
    task = 'echo "shell $$"; sleep 30 & echo "child $!"; wait'
    running = await sidecar.start(sidecar.env(receiver.url, job_id, token, AGENT="shell", TASK=task))

    with trio.fail_after(CEILING_S):
        await receiver.wait_until(lambda: any(line.startswith("child ") for line in receiver.lines(job_id)))
        running.process.send_signal(signal.SIGTERM)
        final = await receiver.wait_for_final_status(job_id)
        result = await running.wait()

    pids = [int(line.split()[1]) for line in receiver.lines(job_id)]
    assert (final["status"], final["error"]) == ("cancelled", "cancelled")
    assert result.returncode == final["exitCode"] == 143
    assert all(process_gone(pid) for pid in pids)


# ---- secrets -------------------------------------------------------------------------------


async def test_tokens_never_leak_and_the_agent_has_no_job_token(
    receiver: Recorder, sidecar: SidecarLauncher
) -> None:
    job_id, token = receiver.new_job()
    gh_token = "ghp_anothersecret9876543210"
    task = (
        'echo "job token: [$JOB_TOKEN]"; echo "gh: $GH_TOKEN"\n'
        'env | grep -c "^JOB_TOKEN="; echo "$GH_TOKEN" >&2'
    )
    env = sidecar.env(receiver.url, job_id, token, AGENT="shell", TASK=task, GH_TOKEN=gh_token)

    result = await sidecar.run(env)

    assert result.returncode == 0, result.stderr
    assert receiver.lines(job_id) == ["job token: []", "gh: [redacted]", "0", "[redacted]"]
    everything = result.stdout + result.stderr + b"".join(receiver.raw_bodies).decode()
    assert token not in everything
    assert gh_token not in everything
