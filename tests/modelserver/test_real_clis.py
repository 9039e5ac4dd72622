"""The real Claude Code and OpenCode CLIs run against the scripted server, offline.

Why: proves the server speaks enough of the Messages API for the pinned CLIs, and that
the settings in cli_runs.py keep them off the network and free to use tools as root.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelserver.cli_runs import MODEL, CliRun, run_cli
from modelserver.server import ScenarioServer

CLIS = ["claude", "opencode"]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return tmp_path / "workspace"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def server_for(request: pytest.FixtureRequest) -> Iterator[ScenarioServer]:
    """A server playing the scenario named by the test's ``scenario`` parameter."""
    server = ScenarioServer(request.param).start()
    yield server
    server.stop()


def final_text(run: CliRun) -> str:
    """The last answer text, from Claude's result event or OpenCode's last text part."""
    if run.cli == "claude":
        return str(run.of_type("result")[-1]["result"])
    return str(run.of_type("text")[-1]["part"]["text"])


def cost(run: CliRun) -> float:
    if run.cli == "claude":
        return float(run.of_type("result")[-1]["total_cost_usd"])
    return sum(float(e["part"].get("cost", 0)) for e in run.of_type("step_finish"))


def assert_succeeded(run: CliRun) -> None:
    assert run.returncode == 0, f"{run.cli} exited {run.returncode}\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
    if run.cli == "claude":
        result = run.of_type("result")[-1]
        assert result["subtype"] == "success" and not result["is_error"]
    else:
        assert not run.of_type("error")
        assert run.of_type("step_finish")[-1]["part"]["reason"] == "stop"


@pytest.mark.parametrize("cli", CLIS)
@pytest.mark.parametrize("server_for", ["hello"], indirect=True)
def test_hello(cli: str, agent_cli_bin: Path, server_for: ScenarioServer, home: Path, workspace: Path) -> None:
    run = run_cli(cli, agent_cli_bin, server_for.url, "Say hello.", home, workspace)
    assert_succeeded(run)
    assert final_text(run) == "Hello from the scripted model!"
    assert cost(run) > 0, "the CLI should price the scripted usage"
    main = server_for.main_requests()
    assert len(main) == 1 and main[0].body["model"] == MODEL
    assert run.session_id()


@pytest.mark.parametrize("cli", CLIS)
@pytest.mark.parametrize("server_for", ["tools"], indirect=True)
def test_tools(cli: str, agent_cli_bin: Path, server_for: ScenarioServer, home: Path, workspace: Path) -> None:
    run = run_cli(cli, agent_cli_bin, server_for.url, "Write a note and a hello.py.", home, workspace)
    assert_succeeded(run)
    assert (workspace / "notes.txt").read_text().strip() == "hi"
    assert (workspace / "hello.py").read_text() == "print('hello, world')\n"
    assert final_text(run) == "Done: notes.txt and hello.py are written."
    assert [r.turn for r in server_for.main_requests()] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("cli", CLIS)
@pytest.mark.parametrize("server_for", ["session"], indirect=True)
def test_resumed_session_sends_the_first_conversation(
    cli: str, agent_cli_bin: Path, server_for: ScenarioServer, home: Path, workspace: Path
) -> None:
    first = run_cli(cli, agent_cli_bin, server_for.url, "Remember a secret word.", home, workspace)
    assert_succeeded(first)
    second = run_cli(
        cli, agent_cli_bin, server_for.url, "What was it?", home, workspace, session=first.session_id()
    )
    assert_succeeded(second)
    assert second.session_id() == first.session_id()
    assert "PELICAN" in final_text(second)
    last = server_for.main_requests()[-1]
    assert last.turn == 1
    assert any("First answer: the secret word is PELICAN." in text for text in last.texts())
