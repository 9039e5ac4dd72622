"""`LocalSprites`: a sprite is a process tree on this machine, sandboxed with bubblewrap on Linux.

This is the embedded default (demo, development, a single-host `serve`). Each sprite gets a
fresh workspace, a clean environment, and a process group we can kill as a whole. Where
bubblewrap can make a sandbox (`sandbox.py`), the sprite runs inside one: its own mount, PID,
network and IPC namespaces, seeing only what programs need, its workspace writable, and
reaching the network only through the dispatcher (`network.py`). Without it, the sprite is a
plain subprocess that can read whatever the dispatcher's user can (docs/security.md).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio

from ...domain.errors import SpawnFailed
from ...domain.job_spec import host_repo_path
from ...ports.sprites import Sprite, SpriteRequest
from ...support.process_group import signal_group, start_group_leader, terminate_group
from . import sandbox as sandboxing
from .network import NetworkPolicy, NetworkService, SpriteNetwork, choose_proxy_port, model_endpoints, remove_folder
from .network import forward_socket_name
from .sidecar import sidecar_path

log = logging.getLogger(__name__)

DEFAULT_TERM_GRACE_S = 5.0
SUSPEND_SETTLE_S = 2.0
READY_TIMEOUT_S = 30.0
INIT_EXIT_WAIT_S = 5.0
WORKSPACE_ENV = "OPENDISPATCH_WORKSPACE"
AGENT_USER_ENV = "OPENDISPATCH_AGENT_USER"
DEFAULT_AGENT_USER = "opendispatch-agent"
NO_PROXY = "localhost,127.0.0.1,::1"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes
INIT_FILE = Path(__file__).with_name("sandbox_init.py")


def default_workspace_root() -> Path:
    return Path(tempfile.gettempdir()) / "opendispatch-sprites"


def default_private_paths() -> tuple[Path, ...]:
    """The default database folder (`.opendispatch` in the working directory)."""
    return (Path.cwd() / ".opendispatch",)


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


def _policy(entries: Sequence[str]) -> NetworkPolicy:
    return NetworkPolicy.of(entries)


def _strings(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)


def _paths(paths: Sequence[Path | str]) -> tuple[Path, ...]:
    return tuple(Path(p) for p in paths)


@attrs.define
class _LocalSprite:
    sprite: Sprite
    process: trio.Process
    workspace: Path
    #: sandboxed: the host pid of the sprite's PID namespace's first process (bwrap's init)
    init_pid: int | None = None
    network: SpriteNetwork | None = None
    destroying: bool = False
    destroyed: trio.Event = attrs.Factory(trio.Event)


@attrs.define
class LocalSprites:
    """Runs each sprite as `program` (default: this Python running the sidecar).

    `search_path` is the PATH given to sprites (default: this process's PATH); `log_dir`, when
    set, receives one `<sprite id>.log` per sprite with its stdout and stderr. POSIX only: a
    sprite is killed through its process group.

    `sandbox`: True runs every sprite in a bubblewrap sandbox (a spawn fails, saying why, where
    none can be made); False never does; None (the default) sandboxes whenever
    `sandbox_problem()` finds nothing in the way, and otherwise logs one warning and runs
    sprites unsandboxed. Sandboxed sprites reach the webhook server, public addresses
    through an HTTP proxy, the model APIs named in their environment (`ANTHROPIC_BASE_URL`,
    OpenCode's `baseURL`; `allow_model_endpoints`) and the destinations in `allow_network`
    (`127.0.0.1:4000`, `10.0.0.0/8`, `git.internal:443`); they read the system folders, their
    PATH's folders and `read_only_paths`, never anything in or above `private_paths` (the
    database's folder) or the workspace root.
    """

    program: Sequence[str] | None = None
    workspace_root: Path = attrs.field(factory=default_workspace_root, converter=Path)
    log_dir: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    term_grace_s: float = DEFAULT_TERM_GRACE_S
    search_path: str = attrs.field(factory=lambda: os.pathsep.join(os.get_exec_path()))
    sandbox: bool | None = None
    allow_network: Sequence[str] = attrs.field(default=(), converter=_strings)
    read_only_paths: Sequence[Path] = attrs.field(default=(), converter=_paths)
    private_paths: Sequence[Path] = attrs.field(factory=default_private_paths, converter=_paths)
    allow_model_endpoints: bool = True
    _sprites: dict[str, _LocalSprite] = attrs.field(factory=dict, init=False)
    _counter: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    _network: NetworkService = attrs.field(factory=NetworkService, init=False)
    _policy: NetworkPolicy = attrs.field(init=False)
    _mounts: dict[tuple[str, ...], sandboxing.MountPlan] = attrs.field(factory=dict, init=False)
    _warned: bool = attrs.field(default=False, init=False)
    _agent_users: set[str] = attrs.field(factory=set, init=False)

    def __attrs_post_init__(self) -> None:
        self._policy = _policy(self.allow_network)  # a bad entry fails here, at configuration

    async def spawn(self, request: SpriteRequest) -> Sprite:
        sprite = Sprite(id=f"local-{request.job_id}-{next(self._counter)}", job_id=request.job_id)
        command = list(self.program) if self.program is not None else [sys.executable, str(sidecar_path())]
        sandboxed = await self._sandboxed()
        workspace = self._make_workspace(sprite)
        try:
            if sandboxed:
                local = await self._start_sandboxed(command, workspace, sprite, request.env)
            else:
                local = _LocalSprite(sprite, await self._start(command, workspace, sprite, request.env), workspace)
        except BaseException:
            shutil.rmtree(workspace, ignore_errors=True)
            self._tidy_root()
            raise
        self._sprites[sprite.id] = local
        self._register(local)
        return sprite

    async def _sandboxed(self) -> bool:
        if self.sandbox is False:
            return False
        problem = await trio.to_thread.run_sync(sandboxing.sandbox_problem)
        if problem is None:
            return True
        if self.sandbox:
            raise SpawnFailed(f"Local sprites must run in a sandbox here, but {problem}.")
        if not self._warned:
            self._warned = True
            log.warning("local sprites run WITHOUT a sandbox (they can read this machine's files): %s", problem)
        return False

    # Sprites outlive a dispatcher that is killed (each has its own session), so each one is
    # recorded in a small file beside the workspaces; a restarted dispatcher finds them there,
    # lets their jobs finish, and can still destroy them.

    def _registry_file(self, sprite_id: str) -> Path:
        return self.workspace_root / f"{sprite_id}.sprite.json"

    def _register(self, local: _LocalSprite) -> None:
        pid = local.process.pid
        record: dict[str, Any] = {
            "id": local.sprite.id, "job_id": local.sprite.job_id, "pid": pid, "started": _start_ticks(pid),
            "workspace": str(local.workspace),
        }
        if local.init_pid is not None:
            record.update(init=local.init_pid, init_started=_start_ticks(local.init_pid))
        if local.network is not None:
            record["network"] = local.network.as_record()
        try:
            self._registry_file(local.sprite.id).write_text(json.dumps(record))
        except OSError:
            pass  # only recovery after a crash needs it; the sprite itself is fine

    def _unregister(self, sprite_id: str) -> None:
        self._registry_file(sprite_id).unlink(missing_ok=True)

    def _orphan(self, sprite_id: str) -> dict[str, Any] | None:
        """A live sprite started by an earlier dispatcher process, if the registry has one.

        A sandboxed one is alive while bwrap or its namespace's first process is (processes
        that outlived the sidecar keep the namespace); this process serves its sockets again.
        """
        if sprite_id in self._sprites:
            return None
        try:
            record: dict[str, Any] = json.loads(self._registry_file(sprite_id).read_text())
        except (OSError, ValueError):
            return None
        alive = _same_process_alive(record["pid"], record.get("started"))
        init = record.get("init")
        if not alive and init is not None:
            alive = _same_process_alive(int(init), record.get("init_started"))
        if not alive:
            return None
        if record.get("network"):
            try:
                self._network.serve(sprite_id, SpriteNetwork.from_record(record["network"]))
            except (OSError, ValueError, KeyError) as exc:
                log.warning("cannot serve the network of sandboxed sprite %s again: %s", sprite_id, exc)
            except RuntimeError:
                pass  # outside a trio run: served by the next call from inside one
        return record

    def _orphan_ids(self) -> list[str]:
        try:
            names = [p.name[: -len(".sprite.json")] for p in self.workspace_root.glob("*.sprite.json")]
        except OSError:
            return []
        return [name for name in names if self._orphan(name) is not None]

    def workspace_of(self, sprite_id: str) -> Path:
        """The sprite's working directory (KeyError for an id this instance never spawned)."""
        return self._sprites[sprite_id].workspace

    def is_sandboxed(self, sprite_id: str) -> bool:
        """True when the sprite runs in a sandbox (KeyError for an id this instance never spawned)."""
        return self._sprites[sprite_id].init_pid is not None

    async def wait_exited(self, sprite_id: str) -> int | None:
        """The process's return code (negative: killed by that signal); None for unknown ids.

        A sandboxed sprite's code is its program's (128 + N when a signal N ended the program
        itself; -9 when `destroy` had to kill the sandbox).
        """
        local = self._sprites.get(sprite_id)
        if local is None:
            orphan = self._orphan(sprite_id)
            if orphan is not None:
                await _wait_pid_exit(orphan["pid"])
            return None
        return await local.process.wait()

    async def destroy(self, sprite_id: str) -> None:
        """SIGTERM the sprite's processes, SIGKILL them after `term_grace_s`, remove the workspace.

        Sandboxed, SIGTERM goes to every process in the sprite's PID namespace (those that left
        its process group too) and the final SIGKILL to its bwrap and the namespace's first
        process, whose end makes the kernel kill everything left in the namespace.
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
            pid = local.process.pid
            await terminate_group(
                pid, local.process.wait, grace_s=self.term_grace_s, send=partial(_signal_sprite, pid, local.init_pid)
            )
            await local.process.wait()
            if local.init_pid is not None:
                with trio.move_on_after(INIT_EXIT_WAIT_S):
                    await _wait_pid_exit(local.init_pid)
            await trio.to_thread.run_sync(shutil.rmtree, local.workspace, True)
            self._network.stop(sprite_id, local.network.directory if local.network else None)
            self._unregister(sprite_id)
            self._tidy_root()
        finally:
            local.destroyed.set()

    async def _destroy_orphan(self, sprite_id: str) -> None:
        orphan = self._orphan(sprite_id)
        if orphan is None:
            self._forget_orphan(sprite_id)
            return
        pid = int(orphan["pid"])
        init = int(orphan["init"]) if orphan.get("init") is not None else None
        await terminate_group(
            pid, partial(_wait_pid_exit, pid), grace_s=self.term_grace_s, send=partial(_signal_sprite, pid, init)
        )
        if init is not None:
            with trio.move_on_after(INIT_EXIT_WAIT_S):
                await _wait_pid_exit(init)
        await trio.to_thread.run_sync(shutil.rmtree, orphan["workspace"], True)
        self._forget_orphan(sprite_id, orphan)

    def _forget_orphan(self, sprite_id: str, record: Mapping[str, Any] | None = None) -> None:
        if record is None:
            try:
                record = json.loads(self._registry_file(sprite_id).read_text())
            except (OSError, ValueError):
                record = None
        network = (record or {}).get("network")
        self._network.stop(sprite_id, Path(network["directory"]) if network else None)
        self._unregister(sprite_id)
        self._tidy_root()

    # Suspend and wake (persistent sessions): SIGSTOP / SIGCONT to the sprite's process group
    # (and, sandboxed, to every process of its namespace). Memory, open files and the workspace
    # stay as they are, which is what Fly's suspend gives; the sidecar's long-poll may fail
    # after the wake and is simply asked again.

    async def suspend(self, sprite_id: str) -> None:
        self._signal_sprite(sprite_id, signal.SIGSTOP)
        with trio.move_on_after(SUSPEND_SETTLE_S):  # the kernel stops the group when it next runs
            while not self.is_suspended(sprite_id):
                await trio.sleep(0.01)
                self._signal_sprite(sprite_id, signal.SIGSTOP)  # processes started meanwhile

    async def wake(self, sprite_id: str) -> None:
        self._signal_sprite(sprite_id, signal.SIGCONT)
        await trio.lowlevel.checkpoint()

    def is_suspended(self, sprite_id: str) -> bool:
        """True when the sprite's processes are stopped by a signal (for tests and doctor)."""
        local = self._sprites.get(sprite_id)
        if local is not None:
            pid, init = local.process.pid, local.init_pid
        else:
            orphan = self._orphan(sprite_id)
            if orphan is None:
                return False
            pid, init = int(orphan["pid"]), orphan.get("init")
        if _process_state(pid) != "T":
            return False
        members = sandboxing.namespace_members(int(init)) if init is not None else []
        return all(_process_state(member) in ("T", "t", "Z", "X", None) for member in members)

    def _signal_sprite(self, sprite_id: str, sig: signal.Signals) -> None:
        local = self._sprites.get(sprite_id)
        if local is not None:
            if local.process.poll() is None:
                _signal_sprite(local.process.pid, local.init_pid, sig, group=True)
            return
        orphan = self._orphan(sprite_id)
        if orphan is None:
            raise SpawnFailed(f"Local sprite {sprite_id} is gone; a new one is started for the next message.")
        init = orphan.get("init")
        _signal_sprite(int(orphan["pid"]), int(init) if init is not None else None, sig, group=True)

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

    def _tidy_root(self) -> None:
        """Once no sprite is left, remove the socket folders and a dispatcher's workspace root.

        Each dispatcher instance has a root of its own under the default folder; left behind,
        every run of the demo added an empty folder there. A root the caller chose is kept.
        """
        for folder in (self._network_root(), self._fallback_network_root()):
            try:
                folder.rmdir()  # only when empty: another sprite's sockets keep it
            except OSError:
                pass
        if _inside(self.workspace_root, default_workspace_root()) and self.workspace_root != default_workspace_root():
            try:
                self.workspace_root.rmdir()
            except OSError:
                pass

    # --- unsandboxed -----------------------------------------------------------------------

    async def _start(
        self, command: list[str], workspace: Path, sprite: Sprite, env: Mapping[str, str]
    ) -> trio.Process:
        log_file = self._open_log(sprite)
        try:
            return await start_group_leader(
                command, cwd=workspace, env=sprite_environment(env, workspace, self.search_path), output=log_file
            )
        except OSError as exc:
            raise SpawnFailed(
                f"Cannot start local sprite program {command[0]!r}: {exc.strerror or exc}. "
                "Check that it exists and is executable."
            ) from exc
        finally:
            if log_file is not None:
                log_file.close()  # the child has its own copy of the descriptor

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

    # --- sandboxed -------------------------------------------------------------------------

    async def _start_sandboxed(
        self, command: list[str], workspace: Path, sprite: Sprite, env: Mapping[str, str]
    ) -> _LocalSprite:
        bwrap = sandboxing.bwrap_path()
        program = shutil.which(command[0], path=self.search_path) if os.sep not in command[0] else command[0]
        if bwrap is None or program is None or not os.access(program, os.X_OK):
            raise SpawnFailed(
                f"Cannot start local sprite program {command[0]!r}: it is not an executable file. "
                "Check that it exists and is executable."
            )
        inner = [os.path.realpath(program), *command[1:]]
        python = os.path.realpath(sys.executable)
        await self._ensure_agent_user(env)
        network = self._sprite_network(sprite, env)
        plan = self._mount_plan((inner[0], python))
        files = [(str(INIT_FILE), sandboxing.SANDBOX_INIT)]
        files += [(arg, arg) for arg in inner[1:] if os.path.isabs(arg) and os.path.isfile(arg)]
        extra = self._repo_mount(env, plan)
        try:
            self._network.serve(sprite.id, network)
        except OSError as exc:
            raise SpawnFailed(f"Cannot serve the network of local sprite {sprite.id} in {network.directory}: {exc}") from exc
        info_read, info_write = os.pipe()
        ready_write = os.dup(info_write)
        log_file = None
        try:
            log_file = self._open_log(sprite)
            argv = [
                bwrap,
                *sandboxing.bwrap_arguments(
                    plan, files=files, extra_read_only=extra, network_folder=str(network.directory),
                    workspace=str(workspace), info_fd=info_write,
                ),
                "--",
                python, sandboxing.SANDBOX_INIT, "--ready-fd", str(ready_write),
                *[arg for port in network.forwards for arg in ("--forward", f"{port}={sandboxing.SANDBOX_NET}/{forward_socket_name(port)}")],
                "--forward", f"{network.proxy_port}={sandboxing.SANDBOX_NET}/proxy.sock",
                "--",
                *inner,
            ]
            try:
                process = await start_group_leader(
                    argv,
                    cwd=workspace,
                    env=self._sandbox_environment(env, workspace, network),
                    output=log_file,
                    pass_fds=(info_write, ready_write),
                )
            except OSError as exc:
                raise SpawnFailed(f"Cannot start bubblewrap ({bwrap}): {exc.strerror or exc}.") from exc
        except BaseException:
            os.close(info_read)
            self._network.stop(sprite.id, network.directory)
            raise
        finally:
            os.close(info_write)
            os.close(ready_write)
            if log_file is not None:
                log_file.close()
        try:
            init_pid = await _wait_ready(info_read, process)
        except BaseException as exc:
            signal_group(process.pid, signal.SIGKILL)
            with trio.CancelScope(shield=True):
                await process.wait()
            self._network.stop(sprite.id, network.directory)
            if isinstance(exc, _NotReady):
                why = exc.reason or await trio.to_thread.run_sync(_diagnose, argv)
                raise SpawnFailed(
                    f"The sandbox of local sprite {sprite.id} did not start: {why}"
                ) from None
            raise
        return _LocalSprite(sprite, process, workspace, init_pid=init_pid, network=network)

    def _sandbox_environment(self, env: Mapping[str, str], workspace: Path, network: SpriteNetwork) -> dict[str, str]:
        result = sprite_environment(env, workspace, self.search_path)
        url = result.get("OPEN_DISPATCH_URL")
        target = _webhook_target(url)
        if url and target is not None:
            parts = urllib.parse.urlsplit(url)
            result["OPEN_DISPATCH_URL"] = urllib.parse.urlunsplit(
                ("http", f"127.0.0.1:{target[1]}", parts.path, parts.query, parts.fragment)
            )
        proxy = network.proxy_url()
        for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
            result[name] = proxy
        result["NO_PROXY"] = result["no_proxy"] = NO_PROXY
        return result

    def _sprite_network(self, sprite: Sprite, env: Mapping[str, str]) -> SpriteNetwork:
        forwards: dict[int, tuple[str, int]] = {}
        target = _webhook_target(env.get("OPEN_DISPATCH_URL"))
        if target is not None:
            forwards[target[1]] = target
        policy = self._policy
        if self.allow_model_endpoints:
            policy = policy.with_destinations(model_endpoints(env))
        for port, loopback in policy.loopback_ports().items():
            forwards.setdefault(port, loopback)
        folder = self._network_root() / sprite.id
        longest = str(folder / forward_socket_name(65535))
        if len(longest.encode()) > MAX_SOCKET_PATH:
            folder = self._fallback_network_root() / sprite.id
            longest = str(folder / forward_socket_name(65535))
            if len(longest.encode()) > MAX_SOCKET_PATH:
                raise SpawnFailed(
                    f"The socket path {longest} is too long for a Unix socket; use a shorter workspace root."
                )
        return SpriteNetwork(folder, forwards, policy, choose_proxy_port(forwards))

    def _network_root(self) -> Path:
        return self.workspace_root / ".net"

    def _fallback_network_root(self) -> Path:
        digest = hashlib.sha256(str(self.workspace_root.resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"od-net-{digest}"

    def _mount_plan(self, programs: tuple[str, ...]) -> sandboxing.MountPlan:
        plan = self._mounts.get(programs)
        if plan is None:
            private = [*self.private_paths, self.workspace_root, self._fallback_network_root()]
            plan = sandboxing.plan_mounts(
                search_path=self.search_path, private=private, read_only=self.read_only_paths, programs=programs
            )
            if plan.refused:
                log.info("local sprites' sandbox leaves out (too wide, or holds private files): %s", ", ".join(plan.refused))
            self._mounts[programs] = plan
        return plan

    def _repo_mount(self, env: Mapping[str, str], plan: sandboxing.MountPlan) -> list[tuple[str, str]]:
        """A repository on this machine's filesystem (the access policy allowed it), read-only,
        at the path the job names. Never one that holds, or lies in, a private folder."""
        path = host_repo_path(env.get("REPO", ""))
        if path is None or not os.path.isabs(path) or not os.path.isdir(path):
            return []
        real, inside = os.path.realpath(path), os.path.normpath(path)
        if not plan.allowed(real) or not plan.allowed(inside) or plan.covered(inside):
            return []
        return [(real, inside)]

    async def _ensure_agent_user(self, env: Mapping[str, str]) -> None:
        """As root, make the agent's user on the host: the sandbox's /etc/passwd is read-only.

        The sidecar (root in the sandbox) runs the agent as this user; it used to create it
        itself, which it cannot do through a read-only /etc.
        """
        name = env.get(AGENT_USER_ENV, "").strip() or DEFAULT_AGENT_USER
        if os.geteuid() != 0 or name in ("root", "-") or name in self._agent_users:
            return
        try:
            pwd.getpwnam(name)
        except KeyError:
            await trio.to_thread.run_sync(_create_user, name)
        self._agent_users.add(name)


class _NotReady(Exception):
    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


async def _wait_ready(fd: int, process: trio.Process) -> int:
    """The namespace's first process (from bwrap's info) once the launcher says `ready`."""
    stream = trio.lowlevel.FdStream(fd)
    received = b""
    outcome: list[int | _NotReady] = []

    async def read(cancel: trio.CancelScope) -> None:
        nonlocal received
        data = b""
        while b"ready\n" not in received and b"error:" not in received:
            data = await stream.receive_some(4096)
            if not data:
                break
            received += data
        if not data:
            outcome.append(_NotReady())  # every end closed: bwrap is gone (its log says why)
            cancel.cancel()
            return
        text = received.decode("utf-8", "replace")
        if "ready\n" in text:
            try:
                info = json.loads(text[: text.index("}") + 1])
                outcome.append(int(info["child-pid"]))
            except (ValueError, KeyError):
                outcome.append(_NotReady("bwrap did not say which process runs the sandbox"))
        elif "error:" in text:
            outcome.append(_NotReady(text[text.index("error:") + 6 :].strip()))
        cancel.cancel()

    async def exited(cancel: trio.CancelScope) -> None:
        code = await process.wait()
        await trio.sleep(0.05)  # what was written before the exit is read first
        if not outcome:
            outcome.append(_NotReady(f"bwrap exited with code {code}" if not received else ""))
        cancel.cancel()

    try:
        with trio.move_on_after(READY_TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read, nursery.cancel_scope)
                nursery.start_soon(exited, nursery.cancel_scope)
    finally:
        await stream.aclose()
    if not outcome:
        raise _NotReady(f"it was not ready within {READY_TIMEOUT_S:.0f} s")
    result = outcome[0]
    if isinstance(result, _NotReady):
        raise result
    return result


def _diagnose(argv: list[str]) -> str:
    """Why bwrap failed: the same sandbox again, running `true`, with its messages kept."""
    separator = argv.index("--")
    probe = [arg for arg in argv[:separator] if arg != "--info-fd"]
    if "--info-fd" in argv[:separator]:
        at = argv.index("--info-fd")
        probe = argv[:at] + argv[at + 2 : separator]
    try:
        done = subprocess.run(
            [*probe, "--", "/bin/sh", "-c", "exit 0"], stdin=subprocess.DEVNULL, capture_output=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap could not be run again to see why: {exc}"
    said = (done.stderr or done.stdout).decode("utf-8", "replace").strip().splitlines()
    if done.returncode == 0:
        return "bwrap exited before its program started (see the sprite's log, OPENDISPATCH_SPRITE_LOG_DIR)"
    return said[-1] if said else f"bwrap exited with code {done.returncode}"


def _create_user(name: str) -> None:
    home = f"/home/{name}"
    argv = ["useradd", "--system", "--create-home", "--home-dir", home, "--shell", "/bin/sh", name]
    try:
        subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("cannot create the agent's user %s (%s); sandboxed agents will run as root", name, exc)


def _webhook_target(url: str | None) -> tuple[str, int] | None:
    """Where the webhook server listens, from the sprite's OPEN_DISPATCH_URL (http only)."""
    if not url:
        return None
    parts = urllib.parse.urlsplit(url.strip())
    try:
        port = parts.port or 80
    except ValueError:
        return None
    if parts.scheme != "http" or not parts.hostname:
        return None
    host = "127.0.0.1" if parts.hostname.lower() == "localhost" else parts.hostname
    return host, port


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks (/proc), so a reused pid is not mistaken for it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _process_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0]
    except (OSError, IndexError):
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


def _signal_sprite(pid: int, init: int | None, sig: signal.Signals, *, group: bool = False) -> None:
    """An unsandboxed sprite: its process group. A sandboxed one: every process of its namespace,
    and (`group`) its process group too, bwrap included (SIGSTOP must stop bwrap as well).

    SIGTERM spares bwrap itself: it would die of it at once, while the sprite's programs are
    meant to get their grace period.
    """
    if init is None or group or sig == signal.SIGCONT:
        signal_group(pid, sig)  # the group id is the leader's pid (`start_group_leader`)
    if init is None:
        return
    for member in sandboxing.namespace_members(init):
        try:
            os.kill(member, sig)
        except (ProcessLookupError, PermissionError):
            pass
