"""`opendispatch serve` as a real process, and `opendispatch doctor`."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from opendispatch.doctor import report
from serve_process import free_port, serve_process


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


def test_doctor_names_what_is_missing_and_never_prints_secrets(tmp_path: Path) -> None:
    here = {"WEBHOOK_PORT": "0", "OPENDISPATCH_DB": str(tmp_path / "jobs.db")}  # the machine's checks pass
    lines, status = report({**here, "CHAT_PROVIDER": "slack", "GH_TOKEN": "ghp_secret_value_987"})
    text = "\n".join(lines)
    assert status == 1
    assert re.search(r"✗ SLACK_BOT_TOKEN\s+missing", text)
    assert "ghp_secret_value_987" not in text and "GH_TOKEN" in text
    ok_lines, ok_status = report(here)
    assert ok_status == 0 and "Nothing required is missing." in ok_lines[-1]
    bad_lines, bad_status = report({"WEBHOOK_PORT": "eighty"})
    assert bad_status == 1 and any("WEBHOOK_PORT" in line for line in bad_lines)


# --- doctor and serve share one validation (issue #27) ------------------------------------

BIN = Path(sys.executable).with_name("opendispatch")

#: Configurations `serve` refuses; before issue #27 `doctor` passed the first two and the last,
#: said "Configuration is valid" for Teams while listing its missing TEAMS_APP_ID, and counted
#: 4 problems for Fly's 3 missing variables. `expected` is how many problems there are.
REFUSED = {
    "slack-with-a-bot-token-only": ({"CHAT_PROVIDER": "slack", "SLACK_BOT_TOKEN": "xoxb-1-2-never-shown"}, 1),
    "discord-without-discord.py": (
        {"CHAT_PROVIDER": "discord", "DISCORD_BOT_TOKEN": "discord-never-shown", "DISCORD_CLIENT_ID": "123456"},
        1,
    ),
    "teams-with-nothing-set": ({"CHAT_PROVIDER": "teams"}, 2),
    "fly-with-nothing-set": ({"OPENDISPATCH_SPRITES": "fly"}, 3),
    "a-token-secret-too-short": ({"OPENDISPATCH_TOKEN_SECRET": "never-shown"}, 1),
}


def _run(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), command], env=env, cwd=cwd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_doctor_reports_exactly_what_serve_refuses(case: str, tmp_path: Path) -> None:
    settings, expected = REFUSED[case]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "WEBHOOK_PORT": str(free_port()),
        "OPENDISPATCH_DB": str(tmp_path / "jobs.db"),
        **settings,
    }
    if case == "discord-without-discord.py":  # stands in for the extra not being installed
        shim = tmp_path / "shim"
        shim.mkdir()
        (shim / "discord.py").write_text("raise ModuleNotFoundError(\"No module named 'discord'\", name='discord')\n")
        env["PYTHONPATH"] = str(shim)
    serve, doctor = _run("serve", env, tmp_path), _run("doctor", env, tmp_path)

    assert serve.returncode == 2 and "Traceback" not in serve.stderr, serve.stderr
    refusals = serve.stderr.splitlines()
    assert all(line.startswith("opendispatch: ") for line in refusals), refusals
    assert len(refusals) == expected, refusals  # every problem at once, one per line

    assert doctor.returncode == 1, doctor.stdout
    crosses = [line for line in doctor.stdout.splitlines() if line.startswith("✗")]
    assert len(crosses) == expected, doctor.stdout  # each problem listed once...
    for refusal in refusals:  # ...in the words serve uses
        assert sum(refusal.removeprefix("opendispatch: ") in line for line in crosses) == 1, (refusal, doctor.stdout)
    assert doctor.stdout.rstrip().endswith(f"{expected} problem{'s' if expected > 1 else ''} to fix before `serve`.")
    assert "valid" not in doctor.stdout.split("\n", 1)[0]
    for secret in ("never-shown",):
        assert secret not in doctor.stdout + serve.stderr


def test_doctor_finds_the_webhook_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        lines, status = report({"WEBHOOK_PORT": str(port), "OPENDISPATCH_DB": str(tmp_path / "jobs.db")})
    text = "\n".join(lines)
    assert status == 1, text
    crosses = [line for line in lines if line.startswith("✗")]
    assert len(crosses) == 1 and f"cannot listen on 127.0.0.1:{port}: the address is already in use" in crosses[0], text
    assert "set WEBHOOK_PORT" in crosses[0]
    assert lines[-1] == "1 problem to fix before `serve`."
    free_lines, free_status = report({"WEBHOOK_PORT": str(free_port()), "OPENDISPATCH_DB": str(tmp_path / "jobs.db")})
    assert free_status == 0 and any(line.startswith("✓ port") for line in free_lines), free_lines


def test_doctor_and_serve_refuse_a_database_that_cannot_be_written(tmp_path: Path) -> None:
    # Tests run as root, whom permissions do not stop: a folder below a regular file stops everyone.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file, not a folder\n")
    database = blocker / "sub" / "jobs.db"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "WEBHOOK_PORT": "0", "OPENDISPATCH_DB": str(database)}
    lines, status = report(env)
    crosses = [line for line in lines if line.startswith("✗")]
    assert status == 1 and len(crosses) == 1, lines
    assert f"cannot write the database {database}" in crosses[0] and "OPENDISPATCH_DB" in crosses[0], crosses
    serve = _run("serve", env, tmp_path)
    assert serve.returncode == 2 and "Traceback" not in serve.stderr, serve.stderr
    refusal = serve.stderr.splitlines()
    assert len(refusal) == 1 and refusal[0].startswith("opendispatch: cannot write the database"), serve.stderr
    assert refusal[0].removeprefix("opendispatch: ") in crosses[0]  # the same words in both
    assert not blocker.is_dir()
    ok_lines, ok_status = report({**env, "OPENDISPATCH_DB": str(tmp_path / "new" / "deeper" / "jobs.db")})
    assert ok_status == 0, ok_lines
    assert not (tmp_path / "new").exists()  # doctor looks; it creates nothing
