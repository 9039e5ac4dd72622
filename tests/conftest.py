import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# The pinned real agent CLIs (Claude Code, OpenCode) as a session fixture, for any test.
from agent_clis import agent_cli_bin, pytest_terminal_summary  # noqa: E402, F401


@pytest.fixture(scope="session", autouse=True)
def bubblewrap() -> None:
    """Under CI=true, as root, install bubblewrap when missing: local sprites' sandbox tests run
    there (they fail, never skip, without it). Elsewhere they skip with the install command."""
    if os.environ.get("CI", "").lower() != "true" or shutil.which("bwrap") or os.geteuid() != 0:
        return
    if shutil.which("apt-get") is None:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "bubblewrap"]
    if subprocess.run(install, env=env, capture_output=True, timeout=600, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600, check=False)
        subprocess.run(install, env=env, capture_output=True, timeout=600, check=False)
    from opendispatch.adapters.local.sandbox import sandbox_problem

    sandbox_problem(refresh=True)
