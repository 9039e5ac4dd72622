"""`opendispatch serve` on Fly (the emulator): SIGTERM destroys every live machine before exiting 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import trio

from opendispatch.testing.fly_emulator import MachinesEmulator, serve_emulator
from serve_process import free_port, serve_process

TOKEN = "fly-teardown-token-5f1c2a"
APP = "od-teardown-sprites"
JOBS = 5
SLEEP = "sleep 613"  # a job that is mid-run when the signal arrives; unique, so pgrep finds only ours


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
    async with serve_process(env, tmp_path) as serve:
        await serve.wait_for("webhooks at")
        for number in range(JOBS):
            await serve.say(f'/od-run -a shell "echo job {number}; {SLEEP}"')
        with trio.fail_after(20):
            await emulator.wait_until(lambda e: started(e) == JOBS)
        await serve.count("│ job ", JOBS)  # every sidecar relayed its first line
        code = await serve.stop(signal.SIGTERM)
    text = serve.text
    assert code == 0, text
    assert emulator.live_machines() == []
    assert len(emulator.machines) == JOBS
    assert all(machine.state == "destroyed" for machine in emulator.machines.values())
    assert len(re.findall(r"Cancelled by the dispatcher shutting down", text)) == JOBS, text
    assert TOKEN not in text and "Traceback" not in text
    leftover = subprocess.run(["pgrep", "-f", SLEEP], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""
