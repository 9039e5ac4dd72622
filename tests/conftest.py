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


@pytest.fixture(scope="session")
def chromium() -> str:
    """Under CI=true, as root, install Debian's chromium and chromium-driver (about 150 MB) when
    /usr/bin/chromium or /usr/bin/chromedriver is missing. Not autouse: only the `browser`
    fixture (tests/browser/conftest.py) asks for it, and it fails there without them (skips
    elsewhere, naming the install command). Returns what apt-get said when it failed, else ""."""
    wanted = (Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver"))
    if os.environ.get("CI", "").lower() != "true" or all(path.is_file() for path in wanted):
        return ""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "not root, or no apt-get: not installed"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=900, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        return f"`{' '.join(install)}` exited {done.returncode}: {done.stderr.strip()[-2000:]}"
    return ""


# A throwaway PostgreSQL server for the store contracts (tests/postgres_server.py): `postgres_server`
# for the session, `postgres_url` (a fresh schema) per test.
from postgres_server import postgres_server, postgres_url  # noqa: E402, F401
