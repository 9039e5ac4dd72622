"""`opendispatch serve` as a real process, and `opendispatch doctor`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx

from opendispatch.doctor import report
from serve_process import serve_process



async def test_serve_runs_a_job_from_console_input_and_sigterm_destroys_its_sprite(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "WEBHOOK_PORT": "0",
        "OPENDISPATCH_DB": str(tmp_path / "jobs.db"),
        "GH_TOKEN": "ghp_never_printed_123456",
    }
    async with serve_process(env, tmp_path) as serve:
        url = (await serve.wait_for(r"webhooks at (http://127\.0\.0\.1:\d+)")).group(1).decode()
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{url}/health")).json()["ok"] is True
        await serve.say('/od-run -a shell "echo started; sleep 617"')
        await serve.wait_for(r"│ started")
        code = await serve.stop(signal.SIGTERM)
    assert code == 0, serve.text
    assert "Cancelled by the dispatcher shutting down" in serve.text
    assert "ghp_never_printed_123456" not in serve.text
    assert "Traceback" not in serve.text
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
