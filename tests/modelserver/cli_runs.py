"""Run the real Claude Code / OpenCode CLIs against a ScenarioServer, offline.

Why: the env vars, config and flags that make each CLI talk only to the scripted server
(no telemetry, no auto-update, no models.dev, tools allowed without asking, root allowed)
were found by trial; they live here once, for the tests and the stream recorder.
README.md explains each of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL = "claude-sonnet-4-5"  # known to both CLIs' price tables; Claude Code offers TodoWrite for it
SMALL_MODEL = "claude-haiku-4-5"
TIMED_OUT = -999  # CliRun.returncode of a run killed at its timeout

# Kept from the caller's environment; everything else is dropped so that the host's
# settings (e.g. IS_SANDBOX=yes, a real ANTHROPIC_API_KEY) cannot leak into a run.
PASSTHROUGH = ("PATH", "LANG", "LC_ALL", "TERM", "TMPDIR", "SYSTEMROOT")


@dataclass
class CliRun:
    """One finished CLI process: its exit code, raw output and parsed JSON lines."""

    cli: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    events: list[dict[str, Any]] = field(default_factory=list)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    def session_id(self) -> str | None:
        """Claude Code's ``session_id`` or OpenCode's ``sessionID``, whichever appears first."""
        for event in self.events:
            found = event.get("session_id") or event.get("sessionID")
            if found:
                return str(found)
        return None


def base_env(home: Path) -> dict[str, str]:
    env = {key: os.environ[key] for key in PASSTHROUGH if key in os.environ}
    env["HOME"] = str(home)
    return env


# ----------------------------------------------------------------------------- Claude Code


def claude_env(server_url: str, home: Path, max_retries: int | None = None) -> dict[str, str]:
    """Env for ``claude`` talking only to the scripted server.

    IS_SANDBOX=1 (exactly "1") is what lets bypassPermissions run as root.
    """
    env = base_env(home)
    env.update(
        ANTHROPIC_BASE_URL=server_url,
        ANTHROPIC_API_KEY="test-key",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_AUTOUPDATER="1",
        DISABLE_TELEMETRY="1",
        DISABLE_ERROR_REPORTING="1",
        IS_SANDBOX="1",
    )
    if max_retries is not None:
        env["CLAUDE_CODE_MAX_RETRIES"] = str(max_retries)
    return env


def claude_command(bin_dir: Path, prompt: str, resume: str | None = None, model: str = MODEL) -> list[str]:
    command = [
        str(bin_dir / "claude"),
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--model",
        model,
        "--permission-mode",
        "bypassPermissions",
    ]
    if resume:
        command += ["--resume", resume]
    return [*command, prompt]


# ----------------------------------------------------------------------------- OpenCode


def opencode_config(server_url: str, model: str = MODEL) -> dict[str, Any]:
    """An opencode.json whose anthropic provider points at the scripted server."""
    return {
        "$schema": "https://opencode.ai/config.json",
        "model": f"anthropic/{model}",
        "small_model": f"anthropic/{SMALL_MODEL}",
        "provider": {"anthropic": {"options": {"baseURL": f"{server_url}/v1", "apiKey": "test-key"}}},
        "permission": {"*": "allow"},
        "autoupdate": False,
        "share": "disabled",
    }


def opencode_env(server_url: str, home: Path, workspace: Path, model: str = MODEL) -> dict[str, str]:
    """Env for ``opencode`` talking only to the scripted server.

    PWD matters: OpenCode takes its project directory from $PWD, not from getcwd().
    """
    env = base_env(home)
    env.update(
        PWD=str(workspace),
        OPENCODE_CONFIG_CONTENT=json.dumps(opencode_config(server_url, model)),
        OPENCODE_DISABLE_MODELS_FETCH="1",
        OPENCODE_DISABLE_AUTOUPDATE="1",
        OPENCODE_DISABLE_LSP_DOWNLOAD="1",
        OPENCODE_DISABLE_SHARE="1",
        OPENCODE_DISABLE_CLAUDE_CODE="1",
    )
    return env


def opencode_command(bin_dir: Path, prompt: str, session: str | None = None, model: str = MODEL) -> list[str]:
    command = [str(bin_dir / "opencode"), "run", "--format", "json", "-m", f"anthropic/{model}"]
    if session:
        command += ["--session", session]
    return [*command, prompt]


# ----------------------------------------------------------------------------- sprites


def agent_environment(server_url: str) -> dict[str, str]:
    """What an operator passes to sprites (`OPENDISPATCH_PASSTHROUGH_ENV`) so that both CLIs use
    the scripted server, offline: the settings above, as environment variables only."""
    return {
        "ANTHROPIC_BASE_URL": server_url,
        "ANTHROPIC_API_KEY": "test-key",
        "ANTHROPIC_MODEL": MODEL,
        "ANTHROPIC_SMALL_FAST_MODEL": SMALL_MODEL,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_MAX_RETRIES": "1",
        "OPENCODE_CONFIG_CONTENT": json.dumps(opencode_config(server_url)),
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
        "OPENCODE_DISABLE_SHARE": "1",
        "OPENCODE_DISABLE_CLAUDE_CODE": "1",
    }


# ----------------------------------------------------------------------------- running


def run_cli(
    cli: str,
    bin_dir: Path,
    server_url: str,
    prompt: str,
    home: Path,
    workspace: Path,
    session: str | None = None,
    timeout_s: float = 180.0,
    extra_env: dict[str, str] | None = None,
) -> CliRun:
    """Run one CLI turn to completion in ``workspace`` with ``home`` as HOME."""
    home.mkdir(parents=True, exist_ok=True)
    workspace.mkdir(parents=True, exist_ok=True)
    if cli == "claude":
        env, command = claude_env(server_url, home), claude_command(bin_dir, prompt, resume=session)
    elif cli == "opencode":
        env, command = opencode_env(server_url, home, workspace), opencode_command(bin_dir, prompt, session=session)
    else:
        raise ValueError(f"unknown CLI {cli!r}")
    env.update(extra_env or {})
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=workspace, env=env, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL
        )
        code, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:  # killed: keep what it printed, code TIMED_OUT
        code, out, err = TIMED_OUT, _text(exc.stdout), _text(exc.stderr)
    return CliRun(cli, code, out, err, time.monotonic() - started, parse_lines(out))


def _text(data: str | bytes | None) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data or ""


def parse_lines(stdout: str) -> list[dict[str, Any]]:
    """The JSON objects among stdout's lines (non-JSON lines are skipped)."""
    events = []
    for line in stdout.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            events.append(value)
    return events
