"""A dispatcher whose sprites run the real sidecar and the real agent CLIs against the scripted model.

Everything is real but the model: local sprites (subprocesses) run `sidecar/sprite-reporter`,
which clones a local git repository, runs the pinned Claude Code or OpenCode CLI
(tests/agent_clis.py) as the unprivileged agent user, and streams to the real webhook server;
the CLIs talk to `modelserver.ScenarioServer` on 127.0.0.1. The settings that keep each CLI
offline are the ones tests/modelserver/README.md explains, passed through to the sprites as an
operator would (`OPENDISPATCH_PASSTHROUGH_ENV`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import attrs
import trio

from modelserver.cli_runs import agent_environment
from modelserver.server import ScenarioServer
from opendispatch.adapters.local import LocalSprites
from opendispatch.adapters.memory.chat import MemoryChat
from opendispatch.adapters.memory.store import MemoryJobStore
from opendispatch.app.job_runner import RunnerSettings
from opendispatch.app.sessions import SessionSettings
from opendispatch.bootstrap import open_dispatcher
from opendispatch.config import Config
from opendispatch.domain.job_spec import AgentKind
from opendispatch.domain.ownership import Ownership

#: A real CLI run takes seconds; cards come well within this.
CEILING_S = 90
FAST = RunnerSettings(exit_settle_s=0.5, unsequenced_settle_s=0.05, edit_interval_s=0.0, heartbeat_s=3600.0)


@contextmanager
def open_folder(prefix: str) -> Iterator[Path]:
    """A folder others may enter: the agent's user must reach the sprites' workspaces.

    pytest's own tmp_path sits under a folder only root may enter (0700), where the sidecar
    would fall back to running the agent as root.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def make_repo(parent: Path) -> Path:
    """A small git repository with one commit on `main`, cloned by path."""
    repo = parent / "project"
    repo.mkdir()
    (repo / "README.md").write_text("# project\n\nA repository for the real-agent tests.\n")
    (repo / "app.py").write_text("def add(a, b):\n    return a + b\n")
    git = ["git", "-C", str(repo), "-c", "user.name=Test", "-c", "user.email=test@example.com"]
    subprocess.run([*git[:3], "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], check=True)
    for path in [repo, *repo.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o055 if path.is_dir() else path.stat().st_mode | 0o044)
    return repo


@attrs.define
class RealAgents:
    running: object
    chat: MemoryChat
    store: MemoryJobStore
    model: ScenarioServer
    repo: Path
    sprites: LocalSprites


@asynccontextmanager
async def open_real_agents(
    bin_dir: Path,
    scenario: str,
    *,
    agent: AgentKind = AgentKind.CLAUDE,
    extra_env: dict[str, str] | None = None,
    admins: frozenset[str] = frozenset(),
) -> AsyncIterator[RealAgents]:
    """The whole stack with the real CLIs from `bin_dir` playing `scenario`."""
    model = ScenarioServer(scenario).start()
    try:
        with open_folder("od-real-agents-") as root:
            repo = make_repo(root)
            workspaces = root / "sprites"
            workspaces.mkdir(mode=0o755)
            search_path = os.pathsep.join([str(bin_dir), *os.get_exec_path()])
            sprites = LocalSprites(workspace_root=workspaces, search_path=search_path, term_grace_s=2.0)
            passthrough = {**agent_environment(model.url), **(extra_env or {})}
            config = attrs.evolve(
                Config.embedded(agent_type=agent), passthrough=passthrough, ownership=Ownership(admins=admins)
            )
            chat, store = MemoryChat(), MemoryJobStore()
            sessions = SessionSettings(idle_suspend_s=3600.0, max_idle_s=7200.0, allow_shell=False, poll_wait_s=5.0)
            async with open_dispatcher(
                config, chat=chat, sprites=sprites, store=store, bind="127.0.0.1:0",
                runner_settings=FAST, session_settings=sessions,
            ) as running:
                yield RealAgents(running, chat, store, model, repo, sprites)
    finally:
        model.stop()


def processes_mentioning(marker: str) -> list[str]:
    """Command lines of live processes whose argv contains `marker` (a task's unique word)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(marker.encode() in arg for arg in argv):
            found.append(" ".join(arg.decode("utf-8", "replace") for arg in argv))
    return found


async def wait_for(condition, timeout_s: float = CEILING_S) -> None:  # type: ignore[no-untyped-def]
    """Poll a condition of the outside world (a process table, a server's log), not of ours."""
    with trio.fail_after(timeout_s):
        while not condition():
            await trio.sleep(0.05)
