"""The job's model (AGENT_MODEL) reaches the model API, through the real sidecar and the real CLIs.

The built `sidecar/sprite-reporter` runs the pinned Claude Code and OpenCode CLIs (the
`agent_cli_bin` fixture: under CI=true a missing CLI fails these tests, never skips them)
with the settings an operator passes to sprites (`cli_runs.agent_environment`), against a
`ScenarioServer`; it reports to the sidecar tests' loopback receiver. `AGENT_MODEL` becomes
`--model X` for Claude Code and `-m X` for OpenCode; what proves it is the model named in the
Messages requests the server received. The model chosen differs from the default those settings
give (`ANTHROPIC_MODEL`, OpenCode's config `model`: claude-sonnet-4-5), so only the flag can have
brought it; the runs without AGENT_MODEL show that default.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelserver.cli_runs import MODEL, agent_environment
from modelserver.server import ScenarioServer
from sidecar import conftest as sidecar_fixtures
from sidecar.conftest import SidecarLauncher, open_workspace, receiver, sidecar  # noqa: F401  (fixtures)
from sidecar.recorder import Recorder

#: Not the default of `agent_environment`; known to both CLIs (OpenCode's bundled model list
#: has it under its `anthropic` provider, the one `agent_environment` points at the server).
#: Not any model will do: Claude Code 2.1.332 sends its own default (claude-opus-5-5) for
#: `--model claude-opus-4-1`, and OpenCode 1.18.33 fails with "Unexpected server error" on
#: `-m anthropic/claude-opus-4-1`; claude-opus-4-5 goes through both unchanged.
CHOSEN = "claude-opus-4-5"
PROVIDER = "anthropic"

#: What AGENT_MODEL says for each CLI, and the model the request must then carry.
CASES = [
    pytest.param("claude", CHOSEN, CHOSEN, id="claude-model"),
    pytest.param("opencode", f"{PROVIDER}/{CHOSEN}", CHOSEN, id="opencode-model"),
    pytest.param("claude", None, MODEL, id="claude-default"),
    pytest.param("opencode", None, MODEL, id="opencode-default"),
]
#: A real CLI run through the sidecar takes seconds (OpenCode ~10 s); well within this.
RUN_CEILING_S = 120.0


@pytest.fixture
def model_server() -> Iterator[ScenarioServer]:
    server = ScenarioServer("hello").start()
    yield server
    server.stop()


def provider_of_agent_environment(server_url: str) -> list[str]:
    """The providers OpenCode's config (as sprites get it) defines."""
    config = json.loads(agent_environment(server_url)["OPENCODE_CONFIG_CONTENT"])
    return sorted(config["provider"])


@pytest.mark.parametrize(("cli", "agent_model", "sent"), CASES)
async def test_the_jobs_model_is_the_model_the_real_cli_asks_the_api_for(
    cli: str,
    agent_model: str | None,
    sent: str,
    agent_cli_bin: Path,
    model_server: ScenarioServer,
    receiver: Recorder,  # noqa: F811
    sidecar: SidecarLauncher,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert CHOSEN != MODEL and provider_of_agent_environment(model_server.url) == [PROVIDER]
    job_id, token = receiver.new_job()
    env = sidecar.env(
        receiver.url, job_id, token, AGENT=cli, TASK="Say hello.",
        PATH=os.pathsep.join([str(agent_cli_bin), os.environ.get("PATH", "/usr/bin:/bin")]),
        **agent_environment(model_server.url),
        **({"AGENT_MODEL": agent_model} if agent_model else {}),
    )

    monkeypatch.setattr(sidecar_fixtures, "RUN_CEILING_S", RUN_CEILING_S)
    result = await sidecar.run(env)

    output = "\n".join(receiver.lines(job_id))
    assert result.returncode == 0, f"{result.stderr[-3000:]}\n{output[-3000:]}"
    assert receiver.statuses(job_id)[-1]["status"] == "completed"
    main = model_server.main_requests()
    assert main, f"{cli} sent no Messages request: {[(r.method, r.path, r.kind) for r in model_server.requests]}"
    assert [request.body["model"] for request in main] == [sent] * len(main)
    assert all(request.path.startswith("/v1/messages") for request in main)

