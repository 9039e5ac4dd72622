"""`LocalSprites` in its sandbox: what it mounts, suspend and wake, recovery after a restart,
tidy folders, and what happens where no sandbox can be made.

Tests that run a sandbox skip where bubblewrap cannot sandbox (with the install command) and
fail instead under CI=true.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from opendispatch.adapters.local import LocalSprites
from opendispatch.adapters.local import sandbox as sandboxing
from opendispatch.adapters.local.sandbox import INSTALL_HINT, plan_mounts, sandbox_problem
from opendispatch.adapters.local.sprites import default_workspace_root
from opendispatch.domain.errors import SpawnFailed
from opendispatch.ports.sprites import SpriteRequest

CEILING_S = 30


def require_sandbox() -> None:
    problem = sandbox_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"local sprites cannot be sandboxed under CI: {problem}", pytrace=False)
    pytest.skip(f"no sandbox here ({problem}); {INSTALL_HINT}")


def sprite_processes(workspace: Path) -> dict[int, str]:
    """Host pid -> state of every process whose environment names the sprite's workspace."""
    marker = f"OPENDISPATCH_WORKSPACE={workspace}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = (entry / "stat").read_text().rsplit(") ", 1)[1].split()[0]
        except OSError:
            continue
    return {pid: state for pid, state in found.items() if state not in ("Z", "X")}


def shell(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


# --- what a sandbox mounts ---------------------------------------------------------------


def test_npm_links_and_version_manager_shims_bring_in_their_installation(tmp_path: Path) -> None:
    modules = tmp_path / "clis" / "node_modules"
    (modules / "pkg" / "bin").mkdir(parents=True)
    (modules / "pkg" / "bin" / "cli.js").write_text("#!/usr/bin/env node\n")
    (modules / ".bin").mkdir()
    (modules / ".bin" / "cli").symlink_to("../pkg/bin/cli.js")
    shims = tmp_path / "pyenv" / "shims"
    shims.mkdir(parents=True)
    plan = plan_mounts(search_path=f"{modules / '.bin'}:{shims}:/usr/bin", private=[], read_only=[], programs=())
    assert str(modules) in plan.read_only  # the package the link points into, beside .bin
    assert str(tmp_path / "pyenv") in plan.read_only


def test_folders_holding_private_files_are_never_mounted(tmp_path: Path) -> None:
    database_folder = tmp_path / "repo" / ".opendispatch"
    database_folder.mkdir(parents=True)
    tools = tmp_path / "repo" / ".venv" / "bin"
    tools.mkdir(parents=True)
    path = f"{tmp_path / 'repo'}:{database_folder}:{tools}:/:/tmp:{Path.home()}"
    plan = plan_mounts(search_path=path, private=[database_folder], read_only=[tmp_path], programs=())
    assert str(tools) in plan.read_only  # a tool folder inside the checkout is fine
    for never in (tmp_path / "repo", database_folder, tmp_path, Path("/"), Path("/tmp"), Path.home()):
        assert str(never) not in plan.read_only
    assert str(tmp_path / "repo") in plan.refused and str(tmp_path) in plan.refused


# --- without a sandbox -------------------------------------------------------------------


def test_sandbox_problem_says_how_to_install_bubblewrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandboxing, "bwrap_path", lambda: None)
    try:
        problem = sandbox_problem(refresh=True)
    finally:
        monkeypatch.undo()
        sandbox_problem(refresh=True)
    assert problem is not None and "apt-get install -y bubblewrap" in problem


async def test_by_default_sprites_run_unsandboxed_with_one_warning_where_no_sandbox_can_be_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sandboxing, "sandbox_problem", lambda **_: "bubblewrap (bwrap) is not installed")
    sprites = LocalSprites(program=shell("exit 0"), workspace_root=tmp_path / "w")
    with caplog.at_level(logging.WARNING), trio.fail_after(CEILING_S):
        for _ in range(2):
            sprite = await sprites.spawn(SpriteRequest("j-00000001", None, {}))
            assert not sprites.is_sandboxed(sprite.id)
            await sprites.destroy(sprite.id)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "WITHOUT a sandbox" in warnings[0] and "not installed" in warnings[0]


async def test_a_required_sandbox_that_cannot_be_made_fails_the_spawn_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandboxing, "sandbox_problem", lambda **_: "bubblewrap (bwrap) is not installed")
    sprites = LocalSprites(program=shell("exit 0"), workspace_root=tmp_path / "w", sandbox=True)
    with pytest.raises(SpawnFailed, match="must run in a sandbox here, but bubblewrap"):
        await sprites.spawn(SpriteRequest("j-00000001", None, {}))
    assert await sprites.list_sprites() == []


# --- sandboxed ---------------------------------------------------------------------------


async def test_suspend_stops_every_process_of_the_sandbox_even_one_in_its_own_session(tmp_path: Path) -> None:
    require_sandbox()
    sprites = LocalSprites(
        program=shell("(setsid sleep 1000 &); touch started; exec sleep 1000"), workspace_root=tmp_path / "w",
        sandbox=True, term_grace_s=1.0,
    )
    with trio.fail_after(CEILING_S):
        sprite = await sprites.spawn(SpriteRequest("j-00000001", None, {}))
        workspace = sprites.workspace_of(sprite.id)
        while not (workspace / "started").exists() or len(sprite_processes(workspace)) < 5:
            await trio.sleep(0.02)  # bwrap, its init, the launcher, the shell's sleep, the setsid sleep
        await sprites.suspend(sprite.id)
        assert sprites.is_suspended(sprite.id)
        assert set(sprite_processes(workspace).values()) == {"T"}
        await sprites.wake(sprite.id)
        await trio.sleep(0.1)
        assert "T" not in set(sprite_processes(workspace).values())
        assert not sprites.is_suspended(sprite.id)
        await sprites.suspend(sprite.id)
        await sprites.destroy(sprite.id)  # a suspended sprite is destroyed too
    assert sprite_processes(workspace) == {}


PINGER = r"""
import os, socket, time, urllib.parse
port = urllib.parse.urlsplit(os.environ["OPEN_DISPATCH_URL"]).port
while True:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(b"ping")
            state = "ok" if conn.recv(10) == b"pong" else "bad"
    except OSError:
        state = "fail"
    with open("status.tmp", "w") as f:
        f.write(state)
    os.replace("status.tmp", "status")
    time.sleep(0.1)
"""


@pytest.fixture
def pong_server() -> Iterator[int]:
    """A TCP server on loopback answering `pong`, outliving any one trio run."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.recv(10)
                conn.sendall(b"pong")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


def wait_status(workspace: Path, wanted: str) -> None:
    deadline = time.monotonic() + CEILING_S
    while time.monotonic() < deadline:
        try:
            if (workspace / "status").read_text() == wanted:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the sprite never said {wanted!r}")


def test_a_restarted_dispatcher_serves_a_running_sandboxes_network_again(tmp_path: Path, pong_server: int) -> None:
    require_sandbox()
    root = tmp_path / "w"
    env = {"OPEN_DISPATCH_URL": f"http://127.0.0.1:{pong_server}"}

    def sprites() -> LocalSprites:
        return LocalSprites(program=[sys.executable, "-c", PINGER], workspace_root=root, sandbox=True, term_grace_s=1.0)

    async def first() -> tuple[str, Path]:
        own = sprites()
        sprite = await own.spawn(SpriteRequest("j-00000001", None, env))
        workspace = own.workspace_of(sprite.id)
        await trio.to_thread.run_sync(wait_status, workspace, "ok")  # the webhook port, through the sandbox
        return sprite.id, workspace

    sprite_id, workspace = trio.run(first)
    # That "dispatcher" is gone: its trio run ended, nobody serves the sandbox's sockets, but
    # the sprite runs on (it has its own session), failing to call back.
    wait_status(workspace, "fail")
    assert sprite_processes(workspace)

    async def second() -> None:
        later = sprites()
        assert [s.id for s in await later.list_sprites()] == [sprite_id]  # from the registry
        await trio.to_thread.run_sync(wait_status, workspace, "ok")  # served again
        await later.destroy(sprite_id)
        assert await later.list_sprites() == []

    trio.run(second)
    assert sprite_processes(workspace) == {}
    assert list(root.iterdir()) == []  # no workspace, registry file or socket folder left


@pytest.mark.parametrize("sandbox", [False, True], ids=["plain", "sandboxed"])
async def test_a_dispatchers_sprite_folder_goes_with_its_last_sprite(tmp_path: Path, sandbox: bool) -> None:
    """Each run of the demo (a dispatcher instance of its own) left an empty folder behind."""
    if sandbox:
        require_sandbox()
    instance = default_workspace_root() / f"test-{uuid.uuid4().hex[:16]}"
    chosen = tmp_path / "chosen"
    try:
        for root in (instance, chosen):
            sprites = LocalSprites(program=shell("exit 0"), workspace_root=root, sandbox=sandbox)
            with trio.fail_after(CEILING_S):
                first = await sprites.spawn(SpriteRequest("j-00000001", None, {}))
                second = await sprites.spawn(SpriteRequest("j-00000002", None, {}))
                await sprites.destroy(first.id)
                assert root.is_dir()  # the other sprite still lives there
                await sprites.destroy(second.id)
        assert not instance.exists()
        assert chosen.is_dir() and list(chosen.iterdir()) == []  # a folder the caller chose stays
    finally:
        if instance.exists():
            for leftover in sorted(instance.rglob("*"), reverse=True):
                leftover.rmdir() if leftover.is_dir() else leftover.unlink()
            instance.rmdir()
