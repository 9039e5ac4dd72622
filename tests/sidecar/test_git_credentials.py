"""The job's repository token, from the dispatcher to git through the sidecar's credential helper.

GitHub App mode (issue #24): the dispatcher mints a short-lived token per job, which the
sprite fetches from `POST /webhooks/credentials`. These tests use real processes and real
git: the recorder plays the dispatcher's endpoint on loopback, `git credential fill` and
`git clone`/`fetch`/`push` (against `git http-backend` behind Basic auth, git_http_server.py)
go through the helper the broker wrote. The broker runs in this process for the tests of
its parts, inside the real sidecar for the others.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

import harness  # noqa: F401  (puts sidecar/src on sys.path)
from sprite_reporter.config import ConfigError, Connection, load_connection
from sprite_reporter.credentials import CredentialBroker, load_git_credentials
from sprite_reporter.job import repo_url
from sprite_reporter.privileges import DEFAULT_AGENT_USER, AgentIdentity
from sprite_reporter.redact import REDACTED, Redactor

from .conftest import SidecarLauncher
from .git_http_server import GitHttpServer
from .recorder import Recorder

SERVER = "http://127.0.0.1:9"  # for the tests where git does not connect: fill asks the helper only
APP_NOT_INSTALLED = (
    "the GitHub App is not installed on acme/api: install it at https://github.com/apps/od/installations/new"
)


@pytest.fixture
def spaced_workspace() -> Iterator[Path]:
    """A workspace whose path has a space: the helper's config value must quote it for sh."""
    parent = Path(tempfile.mkdtemp(prefix="od cred "))
    try:
        yield parent
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def brokers() -> Iterator[list[CredentialBroker]]:
    started: list[CredentialBroker] = []
    yield started
    for broker in started:
        broker.close()


def start_broker(
    brokers: list[CredentialBroker], workspace: Path, server: str = SERVER, renew_s: float = 300.0
) -> CredentialBroker:
    broker = CredentialBroker(server, str(workspace), renew_s, timeout_s=5.0)
    broker.start(AgentIdentity())
    brokers.append(broker)
    return broker


def connection_for(receiver: Recorder, job_id: str, token: str) -> Connection:
    return load_connection({"JOB_ID": job_id, "JOB_TOKEN": token, "OPEN_DISPATCH_URL": receiver.url})


def git_env(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "LANG": "C.UTF-8",
    }


async def fill(broker: CredentialBroker, url: str, home: Path) -> tuple[int, dict[str, str], str]:
    """`git credential fill` for `url`, with the broker's helper as the sidecar configures it."""
    argv = ["git", "-c", "credential.helper="]
    for key, value in broker.git_config():
        argv += ["-c", f"{key}={value}"]
    done = await trio.run_process(
        [*argv, "credential", "fill"], stdin=f"url={url}\n\n".encode(), capture_stdout=True,
        capture_stderr=True, check=False, env=git_env(home),
    )
    fields = dict(line.split("=", 1) for line in done.stdout.decode().splitlines() if "=" in line)
    return done.returncode, fields, done.stderr.decode()


# ---- the broker and the helper, in this process --------------------------------------------


async def test_git_credential_fill_gets_the_dispatchers_token_through_the_helper(
    receiver: Recorder, brokers: list[CredentialBroker], spaced_workspace: Path, tmp_path: Path
) -> None:
    job_id, token = receiver.new_job()
    broker = start_broker(brokers, spaced_workspace)
    redactor = Redactor({})
    broker.attach(connection_for(receiver, job_id, token), redactor)

    code, fields, stderr = await fill(broker, f"{SERVER}/acme/api.git", tmp_path / "home")

    assert code == 0, stderr
    assert receiver.issued(job_id) == [fields["password"]]
    assert fields["username"] == "x-access-token"
    assert redactor(f"echo {fields['password']}") == f"echo {REDACTED}"  # said by the agent: never relayed
    # The helper is root's (ours), 0755, where nobody else may write; the socket is private.
    folder = spaced_workspace / ".od-git"
    helper = folder / "git-credential-opendispatch"
    assert broker.folder == str(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755 and folder.stat().st_uid == os.geteuid()
    assert stat.S_IMODE(helper.stat().st_mode) == 0o755 and helper.stat().st_uid == os.geteuid()
    assert helper.read_text().startswith("#!/")
    assert stat.S_IMODE((folder / "broker").stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "broker" / "socket").stat().st_mode) == 0o600
    assert fields["password"] not in broker.helper_config


async def test_a_token_due_for_renewal_is_fetched_again_and_a_fresh_one_is_reused(
    receiver: Recorder, brokers: list[CredentialBroker], spaced_workspace: Path, tmp_path: Path
) -> None:
    job_id, token = receiver.new_job()
    receiver.credential_ttl_s = 3.0
    broker = start_broker(brokers, spaced_workspace, renew_s=1.0)
    broker.attach(connection_for(receiver, job_id, token), Redactor({}))
    url = f"{SERVER}/acme/api.git"

    _, first, _ = await fill(broker, url, tmp_path / "home")
    _, again, _ = await fill(broker, url, tmp_path / "home")
    assert again["password"] == first["password"]
    assert receiver.credential_calls == [job_id]  # still fresh: no call to the dispatcher

    await trio.sleep(2.1)  # now it expires within the renewal margin
    _, renewed, _ = await fill(broker, url, tmp_path / "home")

    assert renewed["password"] != first["password"]
    assert receiver.issued(job_id) == [first["password"], renewed["password"]]

    receiver.credential_ttl_s = 0.5  # handed out already within the margin: every ask fetches anew
    next_id, next_token = receiver.new_job()
    broker.attach(connection_for(receiver, next_id, next_token), Redactor({}))
    _, short1, _ = await fill(broker, url, tmp_path / "home")
    _, short2, _ = await fill(broker, url, tmp_path / "home")
    assert short1["password"] != short2["password"]
    assert receiver.issued(next_id) == [short1["password"], short2["password"]]


async def test_a_502_from_the_dispatcher_gives_git_nothing_and_says_why(
    receiver: Recorder, brokers: list[CredentialBroker], spaced_workspace: Path, tmp_path: Path
) -> None:
    job_id, token = receiver.new_job()
    receiver.refuse_credentials(job_id, 502, APP_NOT_INSTALLED)
    broker = start_broker(brokers, spaced_workspace)
    broker.attach(connection_for(receiver, job_id, token), Redactor({}))

    code, fields, stderr = await fill(broker, f"{SERVER}/acme/api.git", tmp_path / "home")

    assert code != 0 and "password" not in fields
    assert f"opendispatch: {APP_NOT_INSTALLED}" in stderr  # the helper's stderr, which git shows
    assert "terminal prompts disabled" in stderr  # then git's own failure
    assert receiver.credential_calls == [job_id]  # a 502 with a message is the dispatcher's answer: no retry


async def test_no_job_running_another_jobs_token_or_a_finished_job_gives_nothing(
    receiver: Recorder, brokers: list[CredentialBroker], spaced_workspace: Path, tmp_path: Path
) -> None:
    first_id, first_token = receiver.new_job()
    second_id, second_token = receiver.new_job()
    broker = start_broker(brokers, spaced_workspace)
    url = f"{SERVER}/acme/api.git"
    home = tmp_path / "home"

    code, fields, stderr = await fill(broker, url, home)  # a persistent session between messages
    assert (code, "password" in fields) == (128, False)
    assert "no job is running" in stderr
    assert receiver.credential_calls == []

    broker.attach(connection_for(receiver, first_id, second_token), Redactor({}))  # the wrong token
    code, fields, stderr = await fill(broker, url, home)
    assert (code, "password" in fields) == (128, False)
    assert "(401)" in stderr

    broker.attach(connection_for(receiver, first_id, first_token), Redactor({}))
    _, first, _ = await fill(broker, url, home)
    later = Redactor({})
    broker.attach(connection_for(receiver, second_id, second_token), later)  # the next message
    _, second, _ = await fill(broker, url, home)
    assert first["password"] == receiver.issued(first_id)[0]
    assert second["password"] == receiver.issued(second_id)[0] != first["password"]  # not the last job's
    assert later(first["password"]) == REDACTED  # a token handed out earlier stays redacted

    broker.attach(None, None)  # the message ended: what the broker held goes with it
    receiver.jobs[second_id].final.set()  # and the job is over (409)
    broker.attach(connection_for(receiver, second_id, second_token), Redactor({}))
    code, fields, _ = await fill(broker, url, home)
    assert (code, "password" in fields) == (128, False)


async def test_the_broker_answers_for_its_own_server_only(
    receiver: Recorder, brokers: list[CredentialBroker], spaced_workspace: Path
) -> None:
    """The helper run by hand for another host (the agent can reach the socket): nothing."""
    job_id, token = receiver.new_job()
    broker = start_broker(brokers, spaced_workspace)
    broker.attach(connection_for(receiver, job_id, token), Redactor({}))
    helper = str(spaced_workspace / ".od-git" / "git-credential-opendispatch")
    socket_path = str(spaced_workspace / ".od-git" / "broker" / "socket")

    asked = {}
    for host in ("127.0.0.1:9", "evil.example", "127.0.0.1:10"):
        done = await trio.run_process(
            [sys.executable, "-I", helper, socket_path, "get"], stdin=f"protocol=http\nhost={host}\n\n".encode(),
            capture_stdout=True, capture_stderr=True, check=False,
        )
        asked[host] = (done.returncode, done.stdout.decode())

    assert asked["127.0.0.1:9"][1].startswith("username=x-access-token\npassword=ghs_")
    assert asked["evil.example"] == asked["127.0.0.1:10"] == (0, "")
    assert len(receiver.issued(job_id)) == 1


def test_the_server_names_where_owner_repo_is_cloned_from(tmp_path: Path) -> None:
    assert repo_url("acme/api", "https://ghe.example.com") == ("https://ghe.example.com/acme/api.git", True)
    assert repo_url("acme/api.git", "http://127.0.0.1:8081/") == ("http://127.0.0.1:8081/acme/api.git", True)
    assert repo_url("acme/api") == ("https://github.com/acme/api.git", True)
    broker = load_git_credentials({"OPENDISPATCH_GIT_CREDENTIALS": "https://GitHub.com/"}, str(tmp_path), 5.0)
    assert broker is not None and broker.server == "https://GitHub.com"
    assert broker.serves("https://github.com/acme/api.git") and broker.serves("https://github.com:443/a/b")
    assert not broker.serves("http://github.com/acme/api.git") and not broker.serves("https://github.co/a/b")
    assert not broker.serves("git@github.com:acme/api.git")
    assert load_git_credentials({}, str(tmp_path), 5.0) is None
    for bad in ("github.com", "https://user:pw@github.com", "ftp://github.com", "https://github.com/?x=1"):
        with pytest.raises(ConfigError) as refused:
            load_git_credentials({"OPENDISPATCH_GIT_CREDENTIALS": bad}, str(tmp_path), 5.0)
        assert refused.value.variable == "OPENDISPATCH_GIT_CREDENTIALS"
    with pytest.raises(ConfigError):
        load_git_credentials(
            {"OPENDISPATCH_GIT_CREDENTIALS": "https://github.com", "OPENDISPATCH_CREDENTIAL_RENEW_S": "-1"},
            str(tmp_path), 5.0,
        )


# ---- the real sidecar: clone, fetch and push through the helper ------------------------------

WAIT_FOR_GO = 'echo ready; while [ ! -e ../go ]; do sleep 0.05; done'


def process_tree(root: int) -> list[int]:
    """`root` and every process under it (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat_file:
                    parent = int(stat_file.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def proc_bytes(pid: int, name: str) -> bytes:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as source:
            return source.read()
    except OSError:
        return b""


async def test_a_job_clones_fetches_and_pushes_with_the_dispatchers_renewed_tokens_which_appear_nowhere(
    receiver: Recorder, sidecar: SidecarLauncher, tmp_path: Path
) -> None:
    """A token lives 3 s here (renewed 2 s before): the agent's fetch, 3 s after the clone, needs a new one."""
    receiver.credential_ttl_s = 3.0
    operator_token = "ghp_operators_broad_token_0123456789"  # passed too: the dispatcher's credentials win
    with GitHttpServer(tmp_path / "git", check=lambda user, password: (
        user == "x-access-token" and receiver.token_valid(password)
    )) as git_server:
        git_server.add_repo("acme/api", {"README.md": "hello from the server\n"})
        receiver.credential_server = git_server.url
        job_id, token = receiver.new_job()
        task = (
            "set -e; id -un; cat README.md; sleep 3.2\n"
            "git fetch -q origin\n"
            'echo "gh token: $GH_TOKEN"\n'
            "echo change > change.txt; git add change.txt\n"
            "git -c user.name=agent -c user.email=agent@example.com commit -q -m change\n"
            "git push -q origin HEAD:refs/heads/agent-change; echo pushed\n" + WAIT_FOR_GO
        )
        env = sidecar.env(
            receiver.url, job_id, token, AGENT="shell", TASK=task, REPO="acme/api", GH_TOKEN=operator_token,
            OPENDISPATCH_GIT_CREDENTIALS=git_server.url, OPENDISPATCH_CREDENTIAL_RENEW_S="2",
            OPENDISPATCH_AGENT_USER="",
        )

        with trio.fail_after(30):
            running = await sidecar.start(env)
            await running.wait_for_stdout("ready\n")
            tree = process_tree(running.process.pid)
            cmdlines = b"\n".join(proc_bytes(pid, "cmdline") for pid in tree)
            sidecar_environ = proc_bytes(running.process.pid, "environ")
            (sidecar.workspace / "go").touch()
            result = await running.wait()

        assert result.returncode == 0, result.stderr + "\n".join(receiver.lines(job_id))
        issued = receiver.issued(job_id)
        assert len(issued) >= 2  # renewed while the job ran
        used = git_server.allowed_passwords()
        assert len(used) >= 2 and set(used) <= set(issued)  # clone with one, fetch/push with a later one
        assert operator_token not in used
        assert git_server.branches("acme/api").keys() == {"main", "agent-change"}

    lines = receiver.lines(job_id)
    assert lines[:2] == ["$ git clone acme/api (branch main)", "Cloning into '" + str(sidecar.workspace / "repo") + "'..."]
    assert "hello from the server" in lines
    assert f"gh token: {REDACTED}" in lines and "pushed" in lines
    assert receiver.statuses(job_id)[-1]["status"] == "completed"
    repo = sidecar.workspace / "repo"
    config = (repo / ".git" / "config").read_text()
    assert f"[credential \"{git_server.url}\"]" in config and "git-credential-opendispatch" in config
    remote = subprocess.run(
        ["git", "-c", "safe.directory=*", "-C", str(repo), "remote", "get-url", "origin"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert remote == git_server.repo_url("acme/api")
    everything = (
        result.stdout + result.stderr + "\n".join(lines) + b"".join(receiver.raw_bodies).decode() + config + remote
    ).encode() + cmdlines + sidecar_environ
    for secret in issued:
        assert secret.encode() not in everything
    assert operator_token.encode() in sidecar_environ  # (what was checked is the sidecar's real environment)
    if os.geteuid() == 0:  # the agent ran as its own user: the socket is its, the helper stays root's
        assert lines[lines.index("hello from the server") - 1] == DEFAULT_AGENT_USER
        agent = pwd.getpwnam(DEFAULT_AGENT_USER)
        assert (sidecar.workspace / ".od-git" / "broker").stat().st_uid == agent.pw_uid
        assert (sidecar.workspace / ".od-git" / "broker" / "socket").stat().st_uid == agent.pw_uid
        assert (sidecar.workspace / ".od-git" / "git-credential-opendispatch").stat().st_uid == 0
        assert (sidecar.workspace / ".od-git").stat().st_uid == 0


async def test_a_clone_whose_token_the_dispatcher_cannot_mint_fails_with_its_message(
    receiver: Recorder, sidecar: SidecarLauncher, tmp_path: Path
) -> None:
    with GitHttpServer(tmp_path / "git", check=lambda user, password: receiver.token_valid(password)) as git_server:
        git_server.add_repo("acme/api", {"README.md": "x\n"})
        job_id, token = receiver.new_job()
        receiver.refuse_credentials(job_id, 502, APP_NOT_INSTALLED)
        env = sidecar.env(
            receiver.url, job_id, token, AGENT="shell", TASK="echo must-not-run", REPO="acme/api",
            OPENDISPATCH_GIT_CREDENTIALS=git_server.url,
        )

        result = await sidecar.run(env)

        assert git_server.requests == []  # git was not even started

    final = receiver.statuses(job_id)[-1]
    assert (final["status"], final["stage"], final["exitCode"]) == ("failed", "clone", 128)
    assert final["error"] == f"could not clone acme/api: {APP_NOT_INSTALLED}"
    assert result.returncode == 128
    assert "must-not-run" not in receiver.lines(job_id)


async def test_a_clone_the_server_refuses_with_a_token_for_another_repository_says_so(
    receiver: Recorder, sidecar: SidecarLauncher, tmp_path: Path
) -> None:
    """The token is good but not for this repository: git's own failure, and what to check."""
    with GitHttpServer(tmp_path / "git", check=lambda user, password: False) as git_server:
        git_server.add_repo("acme/api", {"README.md": "x\n"})
        job_id, token = receiver.new_job()
        env = sidecar.env(
            receiver.url, job_id, token, AGENT="shell", TASK="echo must-not-run",
            REPO=git_server.repo_url("acme/api"), OPENDISPATCH_GIT_CREDENTIALS=git_server.url,
        )

        result = await sidecar.run(env)

        asked = {request.password for request in git_server.requests if request.password}
    final = receiver.statuses(job_id)[-1]
    assert (final["status"], final["stage"]) == ("failed", "clone")
    assert result.returncode == final["exitCode"] == 128
    assert final["error"].startswith(f"could not clone {git_server.repo_url('acme/api')} at branch main: ")
    assert final["error"].endswith("check the repository name, branch and the access the dispatcher's credentials give")
    assert asked == set(receiver.issued(job_id))  # the helper did answer, with the dispatcher's token
    for secret in asked:
        assert secret not in final["error"] + result.stderr + "\n".join(receiver.lines(job_id))


def test_handing_the_workspace_to_the_agent_leaves_the_helpers_folder_roots(tmp_path: Path) -> None:
    """A job without a repository hands the whole workspace over: the helper must stay root's."""
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    (tmp_path / ".od-git" / "broker").mkdir(parents=True)
    (tmp_path / ".od-git" / "git-credential-opendispatch").write_text("")
    (tmp_path / "notes.txt").write_text("")
    AgentIdentity(4321, 4321, "nobody-here", "/nonexistent").give(str(tmp_path))
    assert (tmp_path / "notes.txt").stat().st_uid == 4321
    assert (tmp_path / ".od-git").stat().st_uid == 0
    assert (tmp_path / ".od-git" / "git-credential-opendispatch").stat().st_uid == 0
