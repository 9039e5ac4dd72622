"""`LocalSprites`: a sprite is a subprocess in its own temporary workspace and process group.

This is the embedded default (demo and development): no isolation beyond a fresh directory,
a clean environment and a process group we can kill as a whole.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from ...domain.errors import SpawnFailed
from ...ports.sprites import Sprite, SpriteRequest
from .sidecar import sidecar_path

DEFAULT_TERM_GRACE_S = 5.0
SUSPEND_SETTLE_S = 2.0
WORKSPACE_ENV = "OPENDISPATCH_WORKSPACE"


def default_workspace_root() -> Path:
    return Path(tempfile.gettempdir()) / "opendispatch-sprites"


def sprite_environment(request_env: Mapping[str, str], workspace: Path, search_path: str) -> dict[str, str]:
    """Only what the job was given plus what any program needs to start; never our own env.

    The dispatcher's environment holds its chat and cloud tokens, so nothing of it leaks in
    except the search path (so `git` and the agent CLIs can be found).
    """
    base = {
        "PATH": search_path,
        "HOME": str(workspace),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    return {**base, **request_env, WORKSPACE_ENV: str(workspace)}


@attrs.define
class _LocalSprite:
    sprite: Sprite
    process: trio.Process
    workspace: Path
    destroying: bool = False
    destroyed: trio.Event = attrs.Factory(trio.Event)


@attrs.define
class LocalSprites:
    """Runs each sprite as `program` (default: this Python running the sidecar).

    `search_path` is the PATH given to sprites (default: this process's PATH); `log_dir`, when
    set, receives one `<sprite id>.log` per sprite with its stdout and stderr. POSIX only: a
    sprite is killed through its process group.
    """

    program: Sequence[str] | None = None
    workspace_root: Path = attrs.field(factory=default_workspace_root, converter=Path)
    log_dir: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    term_grace_s: float = DEFAULT_TERM_GRACE_S
    search_path: str = attrs.field(factory=lambda: os.pathsep.join(os.get_exec_path()))
    _sprites: dict[str, _LocalSprite] = attrs.field(factory=dict, init=False)
    _counter: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), init=False)

    async def spawn(self, request: SpriteRequest) -> Sprite:
        sprite = Sprite(id=f"local-{request.job_id}-{next(self._counter)}", job_id=request.job_id)
        command = list(self.program) if self.program is not None else [sys.executable, str(sidecar_path())]
        workspace = self._make_workspace(sprite)
        try:
            process = await self._start(command, workspace, sprite, request.env)
        except BaseException:
            shutil.rmtree(workspace, ignore_errors=True)
            raise
        self._sprites[sprite.id] = _LocalSprite(sprite, process, workspace)
        self._register(sprite, process.pid, workspace)
        return sprite

    # Sprites outlive a dispatcher that is killed (each has its own session), so each one is
    # recorded in a small file beside the workspaces; a restarted dispatcher finds them there,
    # lets their jobs finish, and can still destroy them.

    def _registry_file(self, sprite_id: str) -> Path:
        return self.workspace_root / f"{sprite_id}.sprite.json"

    def _register(self, sprite: Sprite, pid: int, workspace: Path) -> None:
        record = {"id": sprite.id, "job_id": sprite.job_id, "pid": pid, "started": _start_ticks(pid),
                  "workspace": str(workspace)}
        try:
            self._registry_file(sprite.id).write_text(json.dumps(record))
        except OSError:
            pass  # only recovery after a crash needs it; the sprite itself is fine

    def _unregister(self, sprite_id: str) -> None:
        self._registry_file(sprite_id).unlink(missing_ok=True)

    def _orphan(self, sprite_id: str) -> dict[str, Any] | None:
        """A live sprite started by an earlier dispatcher process, if the registry has one."""
        if sprite_id in self._sprites:
            return None
        try:
            record: dict[str, Any] = json.loads(self._registry_file(sprite_id).read_text())
        except (OSError, ValueError):
            return None
        return record if _same_process_alive(record["pid"], record.get("started")) else None

    def _orphan_ids(self) -> list[str]:
        try:
            names = [p.name[: -len(".sprite.json")] for p in self.workspace_root.glob("*.sprite.json")]
        except OSError:
            return []
        return [name for name in names if self._orphan(name) is not None]

    def workspace_of(self, sprite_id: str) -> Path:
        """The sprite's working directory (KeyError for an id this instance never spawned)."""
        return self._sprites[sprite_id].workspace

    async def wait_exited(self, sprite_id: str) -> int | None:
        """The process's return code (negative: killed by that signal); None for unknown ids."""
        local = self._sprites.get(sprite_id)
        if local is None:
            orphan = self._orphan(sprite_id)
            if orphan is not None:
                await _wait_pid_exit(orphan["pid"])
            return None
        return await local.process.wait()

    async def destroy(self, sprite_id: str) -> None:
        """SIGTERM the group, SIGKILL it after `term_grace_s`, then remove the workspace.

        A second call (even a concurrent one) waits for the first to finish.
        """
        local = self._sprites.get(sprite_id)
        if local is None:
            await self._destroy_orphan(sprite_id)
            return
        if local.destroying:
            await local.destroyed.wait()
            return
        local.destroying = True
        try:
            try:
                _signal_group(local.process, signal.SIGTERM)
                _signal_group(local.process, signal.SIGCONT)  # a suspended sprite must see the SIGTERM
                with trio.move_on_after(self.term_grace_s):
                    await local.process.wait()
            finally:
                # Always, even when the leader has exited (children that ignored SIGTERM are still
                # in the group) and even when cancelled: a plain call needs no await.
                _signal_group(local.process, signal.SIGKILL)
            await local.process.wait()
            await trio.to_thread.run_sync(shutil.rmtree, local.workspace, True)
            self._unregister(sprite_id)
        finally:
            local.destroyed.set()

    async def _destroy_orphan(self, sprite_id: str) -> None:
        orphan = self._orphan(sprite_id)
        if orphan is None:
            self._unregister(sprite_id)
            return
        pid = int(orphan["pid"])
        try:
            _kill_group(pid, signal.SIGTERM)
            _kill_group(pid, signal.SIGCONT)
            with trio.move_on_after(self.term_grace_s):
                await _wait_pid_exit(pid)
        finally:
            _kill_group(pid, signal.SIGKILL)
        await trio.to_thread.run_sync(shutil.rmtree, orphan["workspace"], True)
        self._unregister(sprite_id)

    # Suspend and wake (persistent sessions): SIGSTOP / SIGCONT to the sprite's process group.
    # Memory, open files and the workspace stay as they are, which is what Fly's suspend gives;
    # the sidecar's long-poll may fail after the wake and is simply asked again.

    async def suspend(self, sprite_id: str) -> None:
        self._signal_sprite(sprite_id, signal.SIGSTOP)
        with trio.move_on_after(SUSPEND_SETTLE_S):  # the kernel stops the group when it next runs
            while not self.is_suspended(sprite_id):
                await trio.sleep(0.01)

    async def wake(self, sprite_id: str) -> None:
        self._signal_sprite(sprite_id, signal.SIGCONT)
        await trio.lowlevel.checkpoint()

    def is_suspended(self, sprite_id: str) -> bool:
        """True when the sprite's main process is stopped by a signal (for tests and doctor)."""
        local = self._sprites.get(sprite_id)
        pid = local.process.pid if local is not None else (self._orphan(sprite_id) or {}).get("pid")
        if pid is None:
            return False
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0] == "T"
        except (OSError, IndexError):
            return False

    def _signal_sprite(self, sprite_id: str, sig: signal.Signals) -> None:
        local = self._sprites.get(sprite_id)
        if local is not None:
            if local.process.poll() is None:
                _signal_group(local.process, sig)
            return
        orphan = self._orphan(sprite_id)
        if orphan is None:
            raise SpawnFailed(f"Local sprite {sprite_id} is gone; a new one is started for the next message.")
        _kill_group(int(orphan["pid"]), sig)

    async def list_sprites(self) -> list[Sprite]:
        """Sprites still running and not being destroyed, including an earlier process's."""
        own = [
            local.sprite
            for local in self._sprites.values()
            if not local.destroying and local.process.poll() is None
        ]
        orphans = []
        for sprite_id in self._orphan_ids():
            record = self._orphan(sprite_id)
            if record is not None:
                orphans.append(Sprite(id=sprite_id, job_id=record["job_id"]))
        return own + orphans

    def _make_workspace(self, sprite: Sprite) -> Path:
        try:
            self.workspace_root.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix=f"{sprite.id}-", dir=self.workspace_root))
        except OSError as exc:
            raise SpawnFailed(
                f"Cannot create a workspace for sprite {sprite.id} under {self.workspace_root}: "
                f"{exc.strerror or exc}. Check that the directory is writable, or set another one."
            ) from exc

    async def _start(
        self, command: list[str], workspace: Path, sprite: Sprite, env: Mapping[str, str]
    ) -> trio.Process:
        log = self._open_log(sprite)
        try:
            return await trio.lowlevel.open_process(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log if log is not None else subprocess.DEVNULL,
                stderr=log if log is not None else subprocess.DEVNULL,
                cwd=workspace,
                env=sprite_environment(env, workspace, self.search_path),
                start_new_session=True,
            )
        except OSError as exc:
            raise SpawnFailed(
                f"Cannot start local sprite program {command[0]!r}: {exc.strerror or exc}. "
                "Check that it exists and is executable."
            ) from exc
        finally:
            if log is not None:
                log.close()  # the child has its own copy of the descriptor

    def _open_log(self, sprite: Sprite) -> io.BufferedWriter | None:
        if self.log_dir is None:
            return None
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            return open(self.log_dir / f"{sprite.id}.log", "ab")
        except OSError as exc:
            raise SpawnFailed(
                f"Cannot open a log file for sprite {sprite.id} in {self.log_dir}: "
                f"{exc.strerror or exc}. Check that the directory is writable."
            ) from exc


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks (/proc), so a reused pid is not mistaken for it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _same_process_alive(pid: int, started: int | None) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return False
    if stat[0] in ("Z", "X"):
        return False
    return started is None or int(stat[19]) == started


async def _wait_pid_exit(pid: int) -> None:
    """Wait for a process that is not our child (pidfd: readable once it has exited)."""
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return
    try:
        await trio.lowlevel.wait_readable(fd)
    finally:
        os.close(fd)


def _kill_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_group(process: trio.Process, sig: signal.Signals) -> None:
    """Signal the sprite's whole process group; a group with no members left is fine.

    The group id is the leader's pid (`start_new_session`). The kernel does not reuse a pid
    while a group of that id still has members; once the group is empty the call finds nobody.
    """
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
