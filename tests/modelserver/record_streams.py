"""Record the real CLIs' stdout for each scenario into tests/fixtures/agent_streams/.

Why: the translator of agent events is written and tested against what the real CLIs
print, without running them. Re-run after bumping a version in tests/agent_clis.py::

    .venv/bin/python tests/modelserver/record_streams.py [--cli claude] [scenario ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent_clis import ensure_agent_clis  # noqa: E402
from modelserver.cli_runs import CliRun, run_cli  # noqa: E402
from modelserver.server import ScenarioServer  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "fixtures" / "agent_streams"
SCENARIOS = ["hello", "tools", "todo", "auth_error", "overloaded", "rate_limited", "dropped", "session"]
PROMPTS = {
    "session": "Remember a secret word for me.",
    "tools": "Write a note and a hello.py, then check it.",
    "todo": "Plan the work as a todo list.",
}
SECOND_PROMPT = "What was the secret word?"
# Short retries for the error scenarios, so a recording takes seconds, not minutes.
RETRY_ENV = {"claude": {"CLAUDE_CODE_MAX_RETRIES": "2"}, "opencode": {}}
TIMEOUTS = {"overloaded": 90.0, "dropped": 90.0, "rate_limited": 90.0}


def save(name: str, run: CliRun) -> None:
    """Write stdout as <name>.jsonl and a non-empty stderr as <name>.stderr.txt."""
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.jsonl").write_text(run.stdout)
    stderr = OUT / f"{name}.stderr.txt"
    if run.stderr.strip():
        stderr.write_text(run.stderr)
    elif stderr.exists():
        stderr.unlink()
    print(f"{name}: exit {run.returncode}, {len(run.events)} events, {run.seconds:.1f}s", flush=True)


def record(cli: str, scenario: str, bin_dir: Path) -> None:
    with tempfile.TemporaryDirectory(prefix=f"rec-{cli}-{scenario}-") as tmp, ScenarioServer(scenario) as server:
        home, workspace = Path(tmp) / "home", Path(tmp) / "workspace"
        timeout = TIMEOUTS.get(scenario, 120.0)
        prompt = PROMPTS.get(scenario, "Say hello.")
        run = run_cli(cli, bin_dir, server.url, prompt, home, workspace, timeout_s=timeout, extra_env=RETRY_ENV[cli])
        save(f"{cli}-{scenario}", run)
        if scenario == "session":
            again = run_cli(
                cli, bin_dir, server.url, SECOND_PROMPT, home, workspace,
                session=run.session_id(), timeout_s=timeout, extra_env=RETRY_ENV[cli],
            )
            save(f"{cli}-session-resume", again)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cli", choices=["claude", "opencode"], action="append")
    parser.add_argument("scenarios", nargs="*", default=SCENARIOS)
    args = parser.parse_args(argv)
    bin_dir = ensure_agent_clis()
    for cli in args.cli or ["claude", "opencode"]:
        for scenario in args.scenarios:
            record(cli, scenario, bin_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
