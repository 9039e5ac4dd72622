"""`opendispatch serve` as a real process, and `opendispatch doctor`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import trio

from opendispatch.doctor import report

OPENDISPATCH = Path(sys.executable).with_name("opendispatch")


async def test_serve_runs_a_job_from_console_input_and_sigterm_destroys_its_sprite(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "WEBHOOK_PORT": "0",
        "OPENDISPATCH_DB": str(tmp_path / "jobs.db"),
        "GH_TOKEN": "ghp_never_printed_123456",
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

    async def wait_for(pattern: str, buffer: bytearray) -> re.Match[bytes]:
        with trio.fail_after(20):
            while (match := re.search(pattern.encode(), buffer)) is None:
                await trio.sleep(0.02)  # output arrives from another process
        return match

    async with trio.open_nursery() as nursery:
        nursery.start_soon(collect, process.stdout, stdout)
        nursery.start_soon(collect, process.stderr, stderr)
        url = (await wait_for(r"webhooks at (http://127\.0\.0\.1:\d+)", stderr)).group(1).decode()
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{url}/health")).json()["ok"] is True
        await process.stdin.send_all(b'/od-run -a shell "echo started; sleep 617"\n')
        await wait_for(r"│ started", stdout)
        pid_line = await wait_for(r"(j-[0-9a-f]{8})", stdout)
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            code = await process.wait()
        nursery.cancel_scope.cancel()
    assert code == 0, stderr.decode()
    text = stdout.decode() + stderr.decode()
    assert "Cancelled by the dispatcher shutting down" in text
    assert "ghp_never_printed_123456" not in text
    assert "Traceback" not in text
    assert pid_line
    leftover = subprocess.run(["pgrep", "-f", "sleep 617"], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""


def test_doctor_names_what_is_missing_and_never_prints_secrets() -> None:
    lines, status = report({"CHAT_PROVIDER": "slack", "GH_TOKEN": "ghp_secret_value_987"})
    text = "\n".join(lines)
    assert status == 1
    assert re.search(r"✗ SLACK_BOT_TOKEN\s+missing", text)
    assert "ghp_secret_value_987" not in text and "GH_TOKEN" in text
    ok_lines, ok_status = report({})
    assert ok_status == 0 and "Nothing required is missing." in ok_lines[-1]
    bad_lines, bad_status = report({"WEBHOOK_PORT": "eighty"})
    assert bad_status == 1 and any("WEBHOOK_PORT" in line for line in bad_lines)
