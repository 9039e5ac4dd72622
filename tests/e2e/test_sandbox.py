"""The shell-job escape, tried from inside a sandboxed local sprite (issue #20, Critical).

Everything is real: the dispatcher with its SQLite database and webhook server on loopback,
`LocalSprites` in bubblewrap, the sidecar, and a `shell` job that tries to read what the
dispatcher has. Without the sandbox every attempt below succeeds (the job runs as a plain
subprocess of the dispatcher's user); with it, each one must fail.
Skipped where bubblewrap cannot sandbox (with the install command); failed under CI=true.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import attrs
import pytest
import trio

from opendispatch.adapters.local import LocalSprites
from opendispatch.adapters.local.sandbox import INSTALL_HINT, sandbox_problem
from opendispatch.adapters.memory.chat import MemoryChat
from opendispatch.adapters.sqlite import open_sqlite_store
from opendispatch.bootstrap import Running, open_dispatcher
from opendispatch.config import Config
from opendispatch.domain.access import AccessPolicy
from opendispatch.domain.job import Conversation, Job, JobState, User
from opendispatch.domain.messages import Inbound, JobAccepted, JobCard, Notice
from opendispatch.ports.job_store import JobStore

CEILING_S = 60
SECRET_NAME = "OPENDISPATCH_TEST_DISPATCHER_SECRET"
SECRET_VALUE = "dispatcher-secret-7f3a9c"
HOST_TEXT = "host-file-content-5d2e"
ALICE = User("u1", "alice")
ROOM = Conversation("memory", "room")


def require_sandbox() -> None:
    problem = sandbox_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"local sprites cannot be sandboxed under CI: {problem}", pytrace=False)
    pytest.skip(f"no sandbox here ({problem}); {INSTALL_HINT}")


@contextmanager
def open_folder() -> Iterator[Path]:
    """A folder the agent's user may enter, as a real deployment's would be (not pytest's 0700)."""
    path = Path(tempfile.mkdtemp(prefix="od-sandbox-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@attrs.define
class Stack:
    running: Running
    chat: MemoryChat
    store: JobStore
    sprites: LocalSprites
    root: Path

    @property
    def webhook_port(self) -> int:
        return int(self.running.webhook_url.rstrip("/").rsplit(":", 1)[1])

    async def run(self, task: str, options: str = "") -> Job:
        before = len(self.chat.sent)
        command = f"/od-run -a shell {options} -- {shlex.quote(task)}"
        await self.running.dispatcher.handle(Inbound(ROOM, ALICE, command))
        for sent in self.chat.sent[before:]:
            if isinstance(sent.message, JobAccepted):
                return sent.message.job
        raise AssertionError(f"no job accepted: {self.chat.transcript()}")

    async def finished(self, job: Job) -> tuple[Job, list[str]]:
        with trio.fail_after(CEILING_S):
            card = await self.chat.wait_for_card(job.id)
        assert isinstance(card, JobCard)
        return await self.store.get(job.id), await self.store.output(job.id)

    async def sprite_of(self, job: Job) -> str:
        async def has_sprite() -> bool:
            return (await self.store.get(job.id)).sprite_id is not None

        with trio.fail_after(CEILING_S):
            await self.running.until(job.id, has_sprite)
        sprite_id = (await self.store.get(job.id)).sprite_id
        assert sprite_id is not None
        return sprite_id


@asynccontextmanager
async def open_stack(monkeypatch: pytest.MonkeyPatch, access: AccessPolicy | None = None) -> AsyncIterator[Stack]:
    require_sandbox()
    monkeypatch.setenv(SECRET_NAME, SECRET_VALUE)  # the dispatcher's own environment
    with open_folder() as root:
        database = root / "jobs.db"
        config = Config.from_env({"OPENDISPATCH_DB": str(database)}, dotenv=None)
        if access is not None:
            config = attrs.evolve(config, access=access)
        sprites = LocalSprites(workspace_root=root / "sprites", sandbox=True, term_grace_s=2.0)
        chat = MemoryChat()
        async with open_sqlite_store(database) as store:
            async with open_dispatcher(config, chat=chat, sprites=sprites, store=store, bind="127.0.0.1:0") as running:
                yield Stack(running, chat, store, sprites, root)


def processes_mentioning(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                state = (entry / "stat").read_text().rsplit(") ", 1)[1].split()[0]
                if state not in ("Z", "X"):
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


async def test_a_shell_job_cannot_read_the_hosts_files_database_environment_or_other_sprites(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with open_stack(monkeypatch) as stack:
        host_file = stack.root / "host-secret.txt"
        host_file.write_text(HOST_TEXT + "\n")
        host_file.chmod(0o644)  # readable by anyone on the host: only the sandbox hides it
        database = stack.root / "jobs.db"
        assert database.is_file()

        # Another user's sprite, running meanwhile, with a file in its workspace.
        other = await stack.run("echo other-sprite-file > mine.txt && sleep 30")
        other_workspace = stack.sprites.workspace_of(await stack.sprite_of(other))
        with trio.fail_after(CEILING_S):
            while not (other_workspace / "mine.txt").exists():
                await trio.sleep(0.02)

        probe = f"""
cat {host_file} || echo "host file: unreadable"
head -c 15 {database} || echo "database: unreadable"
echo "dispatcher folder holds: $(ls -A {database.parent} | tr '\n' ' ')"
tr '\\0' '\\n' < /proc/{os.getpid()}/environ || echo "dispatcher environ: unreadable"
grep -l {SECRET_NAME} /proc/*/environ 2>/dev/null || echo "secret in no process"
echo "secret variable: ${{{SECRET_NAME}:-unset}}"
cat {other_workspace}/mine.txt || echo "other sprite: invisible"
echo "sprites folder holds: $(ls -A {stack.sprites.workspace_root} | tr '\n' ' ')"
echo "own workspace: $(basename "$OPENDISPATCH_WORKSPACE")"
echo "processes: $(ls /proc | grep -c '^[0-9]')"
"""
        job, output = await stack.finished(await stack.run(probe))
        await stack.running.dispatcher.handle(Inbound(ROOM, ALICE, f"/od-cancel {other.id}"))
        await stack.finished(other)

    text = "\n".join(output)
    assert job.state is JobState.SUCCEEDED, text
    assert HOST_TEXT not in text and "host file: unreadable" in output
    assert "SQLite format" not in text and "database: unreadable" in output
    # only the way down to its own workspace exists there (bwrap's empty mount points)
    assert "dispatcher folder holds: sprites " in output
    assert SECRET_VALUE not in text
    assert "dispatcher environ: unreadable" in output
    assert "secret in no process" in output and "secret variable: unset" in output
    assert "other-sprite-file" not in text and "other sprite: invisible" in output
    own = next(line for line in output if line.startswith("own workspace: ")).split(": ", 1)[1]
    assert f"sprites folder holds: {own} " in output  # no other workspace, no registry, no sockets
    processes = int(next(line for line in output if line.startswith("processes: ")).split()[1])
    assert processes < 12, text  # its own few (bwrap's init, the launcher, the sidecar, the shell...)


async def test_a_setsid_child_dies_with_its_sprite(monkeypatch: pytest.MonkeyPatch) -> None:
    marker = f"escapee-{uuid.uuid4().hex[:12]}"
    async with open_stack(monkeypatch) as stack:
        job = await stack.run(f"(setsid bash -c 'sleep 1000; : {marker}' &); sleep 3; echo left it running")
        with trio.fail_after(CEILING_S):
            while not processes_mentioning(marker):  # it did start, in its own session
                await trio.sleep(0.02)
        done, output = await stack.finished(job)
        assert done.state is JobState.SUCCEEDED and output[-1] == "left it running"
        with trio.fail_after(10):
            while processes_mentioning(marker):  # the sprite was destroyed with its card
                await trio.sleep(0.02)
        assert await stack.sprites.list_sprites() == []


async def test_only_the_webhook_port_is_reachable_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as listener:  # a service of the host on loopback, which must stay closed
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        closed_port = listener.getsockname()[1]
        async with open_stack(monkeypatch) as stack:
            probe = f"""
import socket, sys
for name, port in (("webhook", {stack.webhook_port}), ("other", {closed_port})):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
        print(name, "open")
    except OSError as exc:
        print(name, "closed:", exc.strerror)
# and through the sandbox's HTTP proxy, the sprite's only way out
proxy = socket.create_connection(("127.0.0.1", 3128), timeout=5)
proxy.sendall(b"CONNECT 127.0.0.1:{closed_port} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
print("proxy:", proxy.recv(200).split(b"\\r\\n")[0].decode())
"""
            job, output = await stack.finished(await stack.run(f"python3 -c {shlex.quote(probe)}"))
    assert job.state is JobState.SUCCEEDED, output
    assert "webhook open" in output
    assert any(line.startswith("other closed:") for line in output), output
    assert "proxy: HTTP/1.1 403 Forbidden" in output


def make_repo(parent: Path) -> Path:
    repo = parent / "project"
    repo.mkdir()
    (repo / "README.md").write_text("# the project\n")
    git = ["git", "-C", str(repo), "-c", "user.name=Test", "-c", "user.email=test@example.com"]
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "first"]):
        subprocess.run([*git, *args], check=True)
    return repo


async def test_an_allowed_host_repository_is_cloned_from_a_read_only_view(monkeypatch: pytest.MonkeyPatch) -> None:
    access = AccessPolicy(host_repos=frozenset({"/tmp/od-sandbox-*/project"}))
    async with open_stack(monkeypatch, access) as stack:
        repo = make_repo(stack.root)
        (stack.root / "beside-the-repo.txt").write_text("not for sprites\n")
        probe = f"""
cat README.md
touch {repo}/written 2>&1 || true
echo "beside: $(ls -A {stack.root} | tr '\\n' ' ')"
"""
        job, output = await stack.finished(await stack.run(probe, f"--repo {repo}"))
        assert job.state is JobState.SUCCEEDED, output
        assert "# the project" in output
        assert any("Read-only file system" in line for line in output), output
        assert not (repo / "written").exists()
        assert "beside: project sprites " in output  # not the file beside it, not jobs.db

        await stack.running.dispatcher.handle(
            Inbound(ROOM, ALICE, f'/od-run -a shell --repo {stack.root / "sprites"} "ls"')
        )
        refused = [s.message.text for s in stack.chat.sent if isinstance(s.message, Notice)][-1]
        assert "path on the dispatcher's own machine" in refused
