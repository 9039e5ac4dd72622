"""`opendispatch demo --agent claude|opencode` with the real CLI against the scripted model, offline.

    .venv/bin/python tests/modelserver/run_demo.py [claude|opencode]

Installs the pinned CLIs when missing (npm, into .cache/agent-clis: the one network step),
starts the scripted model server on 127.0.0.1 playing `scenarios/demo.json`, and runs the
scripted demo with the CLI on PATH and its model settings passed through to the sprites, as
an operator would (`OPENDISPATCH_PASSTHROUGH_ENV`). Needs only the demo's venv (no test extras).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from agent_clis import ensure_agent_clis  # noqa: E402
from modelserver.cli_runs import agent_environment  # noqa: E402
from modelserver.server import ScenarioServer  # noqa: E402


def main(argv: list[str]) -> int:
    agent = argv[0] if argv else "claude"
    if agent not in ("claude", "opencode"):
        print("usage: run_demo.py [claude|opencode]", file=sys.stderr)
        return 2
    bin_dir = ensure_agent_clis()
    with ScenarioServer("demo") as model:
        settings = agent_environment(model.url)
        os.environ.update(settings)
        os.environ["OPENDISPATCH_PASSTHROUGH_ENV"] = ",".join(sorted(settings))
        os.environ["PATH"] = os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])
        print(f"Scripted model at {model.url}; {agent} from {bin_dir}\n", flush=True)
        from opendispatch.cli import main as opendispatch

        return opendispatch(["demo", "--script", "--agent", agent])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
