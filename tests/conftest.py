import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

# The pinned real agent CLIs (Claude Code, OpenCode) as a session fixture, for any test.
from agent_clis import agent_cli_bin, pytest_terminal_summary  # noqa: E402, F401
