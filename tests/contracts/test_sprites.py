"""One `SpritePort` contract, run against `FakeSprites`, `LocalSprites` and `FlySprites`.

(`FlySprites` talks to the Machines API emulator on loopback, which runs each machine's
program as a local subprocess.) `LocalSprites` runs twice: as plain subprocesses, and inside
its bubblewrap sandbox (skipped where bubblewrap cannot sandbox, failed instead under CI=true).

Each backend comes with a small driver: what differs is only how a test makes a sprite exit
(the fake is told to, a local program exits by itself) and how spawning is made to fail.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import attrs
import httpx
import pytest
import trio
import trio.testing

from opendispatch.adapters.fly import FlySettings, FlySprites, RetryPolicy
from opendispatch.adapters.local import LocalSprites, sidecar_path
from opendispatch.adapters.local.sandbox import INSTALL_HINT, sandbox_problem
from opendispatch.adapters.memory import FakeSprites
from opendispatch.domain.errors import SpawnFailed
from opendispatch.ports.sprites import Sprite, SpritePort, SpriteRequest
from opendispatch.testing.fly_emulator import MachinesEmulator, serve_emulator

CEILING_S = 10.0
POLL_S = 0.01

# The local sprites' stand-in for the sidecar: TEST_BEHAVIOUR says what to do.
CHILD_SCRIPT = r"""
import json, os, signal, subprocess, sys, time

behaviour = os.environ.get("TEST_BEHAVIOUR", "sleep")
workspace = os.environ["OPENDISPATCH_WORKSPACE"]

def publish(name, text):
    temporary = os.path.join(workspace, name + ".tmp")
    with open(temporary, "w") as f:
        f.write(text)
    os.replace(temporary, os.path.join(workspace, name))

if behaviour.startswith("exit:"):
    print("stdout says bye", flush=True)
    print("stderr says bye", file=sys.stderr, flush=True)
    sys.exit(int(behaviour.split(":", 1)[1]))
if behaviour == "env":
    publish("env.json", json.dumps({"env": dict(os.environ), "cwd": os.getcwd()}))
    sys.exit(0)
if behaviour == "spawn-child":
    child = subprocess.Popen(["sleep", "1000"])
    publish("child.pid", str(child.pid))
if behaviour == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    publish("ready", "")
while True:
    time.sleep(1000)
"""


def request(job_id: str, behaviour: str, **env: str) -> SpriteRequest:
    return SpriteRequest(job_id=job_id, image=None, env={"TEST_BEHAVIOUR": behaviour, **env})


class Driver(Protocol):
    @property
    def sprites(self) -> SpritePort: ...

    def finish(self, sprite: Sprite, code: int) -> None:
        """Make a sprite spawned with behaviour `exit:<code>` exit."""
        ...

    def failing(self) -> SpritePort:
        """A backend of the same kind whose spawns fail."""
        ...


@attrs.define
class FakeDriver:
    sprites: FakeSprites

    def finish(self, sprite: Sprite, code: int) -> None:
        self.sprites.exit(sprite.id, code)

    def failing(self) -> SpritePort:
        return FakeSprites(fail_spawn_with="Fly.io has no capacity in ams; try another region.")


@attrs.define
class LocalDriver:
    sprites: LocalSprites

    def finish(self, sprite: Sprite, code: int) -> None:
        """The program exits with `code` on its own."""

    def failing(self) -> SpritePort:
        return attrs.evolve(self.sprites, program=[str(self.sprites.workspace_root / "no-such-program")])


FLY_TOKEN = "fly-contract-token"
FLY_APP = "od-contract-sprites"
FLY_MISSING_IMAGE = "registry.fly.io/od-contract-sprites/missing:1"


@attrs.define
class FlyDriver:
    sprites: FlySprites
    emulator: MachinesEmulator

    def finish(self, sprite: Sprite, code: int) -> None:
        """The machine's program exits with `code` on its own."""

    def failing(self) -> SpritePort:
        """Same client, an image the emulated registry does not have: create answers 422."""
        return FlySprites(self.sprites.http, attrs.evolve(self.sprites.settings, image=FLY_MISSING_IMAGE))


def require_sandbox() -> None:
    """Skip where bubblewrap cannot sandbox; under CI=true, fail instead (never a silent skip)."""
    problem = sandbox_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"local sprites cannot be sandboxed under CI: {problem}", pytrace=False)
    pytest.skip(f"no sandbox here ({problem}); {INSTALL_HINT}")


def local_sprites(tmp_path: Path, term_grace_s: float = 5.0, *, sandbox: bool = False) -> LocalSprites:
    if sandbox:
        require_sandbox()
    return LocalSprites(
        program=[sys.executable, "-c", CHILD_SCRIPT],
        workspace_root=tmp_path / "workspaces",
        log_dir=tmp_path / "logs",
        term_grace_s=term_grace_s,
        sandbox=sandbox,
    )


@pytest.fixture(params=["fake", "local", "local-sandboxed", "fly"])
async def driver(request: pytest.FixtureRequest, tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Driver]:
    if request.param == "fake":
        yield FakeDriver(FakeSprites())
        return
    if request.param == "fly":
        emulator = MachinesEmulator(
            token=FLY_TOKEN,
            apps={FLY_APP},
            program=[sys.executable, "-c", CHILD_SCRIPT],
            missing_images={FLY_MISSING_IMAGE},
            workspace_root=tmp_path / "machines",
            kill_grace_s=0.5,
        )
        url = await nursery.start(serve_emulator, emulator)
        settings = FlySettings(
            app=FLY_APP, image="registry.fly.io/od-contract-sprites/agent:1", retry=RetryPolicy(base_delay_s=0.01)
        )
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {FLY_TOKEN}"}) as http:
            sprites = FlySprites(http, settings)
            try:
                yield FlyDriver(sprites, emulator)
            finally:
                with trio.fail_after(CEILING_S):
                    for sprite in await sprites.list_sprites():
                        await sprites.destroy(sprite.id)
        return
    sprites = local_sprites(tmp_path, sandbox=request.param == "local-sandboxed")
    try:
        yield LocalDriver(sprites)
    finally:
        with trio.fail_after(CEILING_S):
            for sprite in await sprites.list_sprites():
                await sprites.destroy(sprite.id)


@pytest.fixture(params=["plain", "sandboxed"])
async def local(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LocalSprites]:
    sprites = local_sprites(tmp_path, term_grace_s=0.2, sandbox=request.param == "sandboxed")
    try:
        yield sprites
    finally:
        with trio.fail_after(CEILING_S):
            for sprite in await sprites.list_sprites():
                await sprites.destroy(sprite.id)


async def test_a_sprite_runs_until_it_exits_with_its_code(driver: Driver) -> None:
    with trio.fail_after(CEILING_S):
        sprite = await driver.sprites.spawn(request("j-00000001", "exit:3"))
        assert sprite.job_id == "j-00000001"
        driver.finish(sprite, 3)
        assert await driver.sprites.wait_exited(sprite.id) == 3
        assert sprite not in await driver.sprites.list_sprites()
        await driver.sprites.destroy(sprite.id)


async def test_each_spawn_gets_its_own_id(driver: Driver) -> None:
    with trio.fail_after(CEILING_S):
        first = await driver.sprites.spawn(request("j-00000001", "sleep"))
        second = await driver.sprites.spawn(request("j-00000001", "sleep"))
        assert first.id != second.id
        listed = await driver.sprites.list_sprites()
        assert first in listed and second in listed


async def test_destroying_a_running_sprite_ends_its_wait(driver: Driver) -> None:
    with trio.fail_after(CEILING_S):
        sprite = await driver.sprites.spawn(request("j-00000001", "sleep"))
        assert sprite in await driver.sprites.list_sprites()
        waited: list[int | None] = []

        async def wait() -> None:
            waited.append(await driver.sprites.wait_exited(sprite.id))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait)
            await trio.testing.wait_all_tasks_blocked()
            await driver.sprites.destroy(sprite.id)
        assert len(waited) == 1
        assert waited[0] != 0
        assert sprite not in await driver.sprites.list_sprites()
        assert await driver.sprites.wait_exited(sprite.id) == waited[0]


async def test_destroy_twice_is_fine(driver: Driver) -> None:
    with trio.fail_after(CEILING_S):
        sprite = await driver.sprites.spawn(request("j-00000001", "sleep"))
        await driver.sprites.destroy(sprite.id)
        await driver.sprites.destroy(sprite.id)
        assert await driver.sprites.list_sprites() == []


async def test_destroy_of_an_unknown_sprite_is_fine(driver: Driver) -> None:
    with trio.fail_after(CEILING_S):
        await driver.sprites.destroy("never-spawned")
        assert await driver.sprites.list_sprites() == []


async def test_waiting_on_an_unknown_sprite_says_it_is_gone(driver: Driver) -> None:
    with trio.fail_after(CEILING_S):
        assert await driver.sprites.wait_exited("never-spawned") is None


async def test_a_failed_spawn_raises_spawn_failed_with_advice(driver: Driver) -> None:
    failing = driver.failing()
    with trio.fail_after(CEILING_S):
        with pytest.raises(SpawnFailed) as caught:
            await failing.spawn(request("j-00000001", "exit:0"))
        assert await failing.list_sprites() == []
    assert str(caught.value)


# --- FakeSprites only --------------------------------------------------------------------


async def test_fake_hands_each_spawn_to_wait_for_spawn_once_in_order() -> None:
    fake = FakeSprites()
    with trio.fail_after(CEILING_S):
        first = await fake.spawn(request("j-00000001", "x"))
        second = await fake.spawn(request("j-00000002", "y"))
        assert await fake.wait_for_spawn() == (first, fake.spawned[0])
        assert await fake.wait_for_spawn() == (second, fake.spawned[1])
        await fake.destroy(first.id)
    assert fake.destroyed == [first.id]
    assert fake.live == {second.id}


async def test_fake_wait_for_spawn_waits_for_the_next_spawn() -> None:
    fake = FakeSprites()
    taken: list[tuple[Sprite, SpriteRequest]] = []

    async def take() -> None:
        taken.append(await fake.wait_for_spawn())

    with trio.fail_after(CEILING_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(take)
            await trio.testing.wait_all_tasks_blocked()
            assert taken == []
            sprite = await fake.spawn(request("j-00000001", "x", SECRET="s"))
    assert taken == [(sprite, SpriteRequest("j-00000001", None, {"TEST_BEHAVIOUR": "x", "SECRET": "s"}))]


async def test_fake_failing_spawn_records_nothing() -> None:
    fake = FakeSprites(fail_spawn_with="no capacity")
    with pytest.raises(SpawnFailed, match="no capacity"):
        await fake.spawn(request("j-00000001", "x"))
    assert fake.spawned == []


# --- LocalSprites only -------------------------------------------------------------------


async def wait_for_file(path: Path) -> str:
    """The child process has no way to signal us but the file itself, so poll briefly."""
    while not path.exists():
        await trio.sleep(POLL_S)
    return path.read_text()


async def test_local_sprite_sees_only_its_own_env_and_a_minimal_base(
    local: LocalSprites, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENDISPATCH_TEST_PARENT_SECRET", "must-not-leak")
    with trio.fail_after(CEILING_S):
        sprite = await local.spawn(request("j-00000001", "env", OPENDISPATCH_JOB_TOKEN="tok"))
        workspace = local.workspace_of(sprite.id)
        report = json.loads(await wait_for_file(workspace / "env.json"))
        assert await local.wait_exited(sprite.id) == 0
        await local.destroy(sprite.id)

    env = report["env"]
    assert "OPENDISPATCH_TEST_PARENT_SECRET" not in env
    assert env["OPENDISPATCH_JOB_TOKEN"] == "tok"
    assert env["OPENDISPATCH_WORKSPACE"] == str(workspace)  # the same path inside the sandbox
    assert env["HOME"] == str(workspace)
    assert env["LANG"] == env["LC_ALL"] == "C.UTF-8"
    # Python may add LC_CTYPE when it coerces the C locale; nothing else may appear.
    allowed = {"TEST_BEHAVIOUR", "OPENDISPATCH_JOB_TOKEN", "OPENDISPATCH_WORKSPACE", "PATH", "HOME",
               "LANG", "LC_ALL", "LC_CTYPE"}
    if local.is_sandboxed(sprite.id):
        # the sandbox's way out (its HTTP proxy, relayed to the dispatcher), and bwrap's PWD
        proxies = {"HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"}
        assert {env[name] for name in proxies} == {"http://127.0.0.1:3128"}
        assert env["NO_PROXY"] == env["no_proxy"] == "localhost,127.0.0.1,::1"
        allowed |= proxies | {"NO_PROXY", "no_proxy", "PWD"}
    assert set(env) <= allowed
    assert os.path.realpath(report["cwd"]) == os.path.realpath(workspace)
    assert workspace.parent == local.workspace_root
    assert sprite.id.startswith("local-j-00000001-")


async def test_local_destroy_kills_the_whole_process_group(local: LocalSprites) -> None:
    with trio.fail_after(CEILING_S):
        sprite = await local.spawn(request("j-00000001", "spawn-child"))
        workspace = local.workspace_of(sprite.id)
        grandchild = int(await wait_for_file(workspace / "child.pid"))
        if local.is_sandboxed(sprite.id):  # it wrote its pid in the sprite's PID namespace
            grandchild = host_pid(grandchild, workspace)
        assert process_is_running(grandchild)
        exited = open_exit_watch(grandchild)
        try:
            await local.destroy(sprite.id)
            await exited.wait()
        finally:
            exited.close()
    assert not process_is_running(grandchild)


async def test_local_destroy_escalates_to_sigkill_and_removes_the_workspace(local: LocalSprites) -> None:
    with trio.fail_after(CEILING_S):
        sprite = await local.spawn(request("j-00000001", "ignore-term"))
        workspace = local.workspace_of(sprite.id)
        await wait_for_file(workspace / "ready")
        await local.destroy(sprite.id)
        assert await local.wait_exited(sprite.id) == -9
    assert not workspace.exists()


async def test_local_workspace_is_removed_after_the_sprite_exited(local: LocalSprites) -> None:
    with trio.fail_after(CEILING_S):
        sprite = await local.spawn(request("j-00000001", "exit:3"))
        workspace = local.workspace_of(sprite.id)
        assert await local.wait_exited(sprite.id) == 3
        assert workspace.is_dir()
        await local.destroy(sprite.id)
    assert not workspace.exists()
    log = (local.log_dir or Path("unset")) / f"{sprite.id}.log"
    assert log.read_text().splitlines() == ["stdout says bye", "stderr says bye"]


async def test_local_concurrent_destroys_both_wait_for_the_end(local: LocalSprites) -> None:
    with trio.fail_after(CEILING_S):
        sprite = await local.spawn(request("j-00000001", "ignore-term"))
        workspace = local.workspace_of(sprite.id)
        await wait_for_file(workspace / "ready")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(local.destroy, sprite.id)
            nursery.start_soon(local.destroy, sprite.id)
    assert not workspace.exists()


def test_sidecar_path_finds_the_checkouts_sprite_reporter() -> None:
    path = sidecar_path()
    assert path.is_file()
    assert path.name == "sprite-reporter"


# --- helpers for watching a process that is not our child --------------------------------


def sprite_processes(workspace: Path) -> dict[int, int]:
    """Host pid -> pid inside its PID namespace, of every process of the sprite at `workspace`.

    Every process of a sprite has OPENDISPATCH_WORKSPACE in its environment (we run as the
    same user, or root, so /proc lets us read it).
    """
    found = {}
    marker = f"OPENDISPATCH_WORKSPACE={workspace}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            status = (entry / "status").read_text()
        except OSError:
            continue
        ns_pids = next(line for line in status.splitlines() if line.startswith("NSpid:")).split()[1:]
        found[int(entry.name)] = int(ns_pids[-1])
    return found


def host_pid(inner_pid: int, workspace: Path) -> int:
    matches = [pid for pid, inner in sprite_processes(workspace).items() if inner == inner_pid]
    assert len(matches) == 1, (inner_pid, sprite_processes(workspace))
    return matches[0]


def process_is_running(pid: int) -> bool:
    """Alive and not a zombie: the grandchild is reparented, and its new parent may reap late."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in {"Z", "X"}


@attrs.define
class ExitWatch:
    """Waits for a process's exit on a pidfd (an event), or by polling where there is none."""

    pid: int
    pidfd: int | None

    async def wait(self) -> None:
        if self.pidfd is not None:
            await trio.lowlevel.wait_readable(self.pidfd)
            return
        while process_is_running(self.pid):
            await trio.sleep(POLL_S)

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)


def open_exit_watch(pid: int) -> ExitWatch:
    try:
        return ExitWatch(pid, os.pidfd_open(pid))
    except (AttributeError, OSError):
        return ExitWatch(pid, None)
