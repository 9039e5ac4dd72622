"""`opendispatch serve` on Fly (the emulator): SIGTERM destroys every live machine before exiting 0."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import trio

from opendispatch.adapters.fly.emulator import MachinesEmulator, serve_emulator

OPENDISPATCH = Path(sys.executable).with_name("opendispatch")
TOKEN = "fly-teardown-token-5f1c2a"
APP = "od-teardown-sprites"
JOBS = 5
SLEEP = "sleep 613"  # a job that is mid-run when the signal arrives; unique, so pgrep finds only ours


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def started(emulator: MachinesEmulator) -> int:
    return sum(1 for machine in emulator.live_machines() if machine.state == "started")


async def test_sigterm_destroys_every_machine_and_exits_zero(tmp_path: Path, nursery: trio.Nursery) -> None:
    emulator = MachinesEmulator(token=TOKEN, apps={APP}, workspace_root=tmp_path / "machines", kill_grace_s=1.0)
    api_url = await nursery.start(serve_emulator, emulator)
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "OPENDISPATCH_SPRITES": "fly",
        "FLY_API_URL": api_url,
        "FLY_API_TOKEN": TOKEN,
        "FLY_SPRITE_APP": APP,
        "SPRITE_IMAGE": f"registry.fly.io/{APP}/agent:1",
        "WEBHOOK_PORT": str(port),
        "OPEN_DISPATCH_URL": f"http://127.0.0.1:{port}",
        "OPENDISPATCH_DB": str(tmp_path / "jobs.db"),
        "OPENDISPATCH_MAX_JOBS_PER_USER": "0",
    }
    process = await trio.lowlevel.open_process(
        [str(OPENDISPATCH), "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=env,
    )
    assert process.stdin and process.stdout and process.stderr
    stdout, stderr = bytearray(), bytearray()

    async def collect(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
        async for chunk in stream:
            into.extend(chunk)

    try:
        async with trio.open_nursery() as readers:
            readers.start_soon(collect, process.stdout, stdout)
            readers.start_soon(collect, process.stderr, stderr)
            with trio.fail_after(20):
                while b"webhooks at" not in stderr:
                    await trio.sleep(0.02)  # output arrives from another process
                for number in range(JOBS):
                    await process.stdin.send_all(f'/od-run -a shell "echo job {number}; {SLEEP}"\n'.encode())
                await emulator.wait_until(lambda e: started(e) == JOBS)
                while stdout.count(b"\xe2\x94\x82 job ") < JOBS:  # every sidecar relayed its first line
                    await trio.sleep(0.02)
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(20):
                code = await process.wait()
            readers.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
    text = stdout.decode() + stderr.decode()
    assert code == 0, text
    assert emulator.live_machines() == []
    assert len(emulator.machines) == JOBS
    assert all(machine.state == "destroyed" for machine in emulator.machines.values())
    assert len(re.findall(r"Cancelled by the dispatcher shutting down", text)) == JOBS, text
    assert TOKEN not in text and "Traceback" not in text
    leftover = subprocess.run(["pgrep", "-f", SLEEP], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""
