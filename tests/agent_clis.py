"""The real agent CLIs (Claude Code, OpenCode) that tests run, pinned in one place.

Why: the event streams, session files and error behaviour we translate change between CLI
releases, so tests run exactly these versions. Bump a version here; the next test run
reinstalls into ``<repo>/.cache/agent-clis`` (npm, no postinstall scripts needed: npm 11
skips them and both packages still work). A file lock keeps parallel pytest workers from
installing at the same time.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CLAUDE_CODE_VERSION = "2.1.332"
OPENCODE_VERSION = "1.18.33"

PACKAGES = {
    "@anthropic-ai/claude-code": CLAUDE_CODE_VERSION,
    "opencode-ai": OPENCODE_VERSION,
}
BINARIES = {"claude": "@anthropic-ai/claude-code", "opencode": "opencode-ai"}

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "agent-clis"
INSTALL_HINT = (
    "npm install --no-audit --no-fund --save-exact --prefix .cache/agent-clis "
    + " ".join(f"{name}@{version}" for name, version in PACKAGES.items())
)


class AgentCliInstallError(RuntimeError):
    """npm is missing or the install failed; the message says how to install by hand."""


def bin_dir(prefix: Path = CACHE) -> Path:
    return prefix / "node_modules" / ".bin"


def installed_version(package: str, prefix: Path = CACHE) -> str | None:
    """The version npm installed (from the package's package.json), or None."""
    manifest = prefix / "node_modules" / package / "package.json"
    try:
        return str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def is_current(prefix: Path = CACHE) -> bool:
    """True when both pinned versions are installed and their binaries exist."""
    if any(installed_version(pkg, prefix) != version for pkg, version in PACKAGES.items()):
        return False
    return all((bin_dir(prefix) / name).exists() for name in BINARIES)


@contextmanager
def _install_lock(prefix: Path) -> Iterator[None]:
    """An exclusive flock next to the install, held across check-and-install."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with open(prefix.parent / "agent-clis.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_agent_clis(prefix: Path = CACHE, timeout_s: float = 600.0) -> Path:
    """Install the pinned CLIs when missing or at another version; return their bin dir.

    Raises AgentCliInstallError when npm is missing or fails, so the caller decides
    whether that skips (developer machine) or fails (CI).
    """
    with _install_lock(prefix):
        if not is_current(prefix):
            _npm_install(prefix, timeout_s)
        make_world_usable(prefix)
    return bin_dir(prefix)


def _npm_install(prefix: Path, timeout_s: float) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise AgentCliInstallError(f"npm is not on PATH; install Node.js >= 18, then run: {INSTALL_HINT}")
    prefix.mkdir(parents=True, exist_ok=True)
    specs = [f"{name}@{version}" for name, version in PACKAGES.items()]
    command = [npm, "install", "--no-audit", "--no-fund", "--save-exact", "--prefix", str(prefix), *specs]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AgentCliInstallError(f"npm install timed out after {timeout_s:.0f}s; run by hand: {INSTALL_HINT}") from exc
    if done.returncode != 0 or not is_current(prefix):
        tail = (done.stderr or done.stdout)[-2000:]
        raise AgentCliInstallError(f"npm install failed (exit {done.returncode}); run by hand: {INSTALL_HINT}\n{tail}")


def make_world_usable(prefix: Path = CACHE) -> None:
    """Give others read (and execute where the owner has it) on the whole install.

    The agent runs as an unprivileged user (opendispatch-agent) while root installs, so
    a umask of 077 at install time would make the CLIs unusable for it.
    """
    for root, dirs, files in os.walk(prefix):
        for name in dirs:
            _add_mode(Path(root) / name, stat.S_IROTH | stat.S_IXOTH | stat.S_IRGRP | stat.S_IXGRP)
        for name in files:
            path = Path(root) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue
            extra = stat.S_IROTH | stat.S_IRGRP
            if mode & stat.S_IXUSR:
                extra |= stat.S_IXOTH | stat.S_IXGRP
            _add_mode(path, extra)
    _add_mode(prefix, stat.S_IROTH | stat.S_IXOTH | stat.S_IRGRP | stat.S_IXGRP)


def _add_mode(path: Path, bits: int) -> None:
    mode = path.lstat().st_mode
    if mode & bits != bits:
        path.chmod(stat.S_IMODE(mode) | bits)


def cli_versions(bin_path: Path) -> dict[str, str]:
    """``--version`` of each CLI, for the test log header."""
    versions = {}
    for name in BINARIES:
        try:
            done = subprocess.run([str(bin_path / name), "--version"], capture_output=True, text=True, timeout=60)
            versions[name] = (done.stdout or done.stderr).strip().splitlines()[0]
        except (OSError, subprocess.TimeoutExpired, IndexError) as exc:
            versions[name] = f"unavailable ({exc.__class__.__name__})"
    return versions


# ----------------------------------------------------------------------------- pytest glue

try:
    import pytest
except ImportError:  # a script (the real-agent demo) in a venv without the test extras
    pytest = None  # type: ignore[assignment]

_VERSIONS_SEEN: dict[str, str] = {}


def _agent_cli_bin() -> Path:
    """The bin dir holding ``claude`` and ``opencode`` at the pinned versions.

    Skips when they cannot be installed (no npm, offline), with the command to run;
    fails instead under CI=true, where a silently skipped suite would hide breakage.
    """
    try:
        path = ensure_agent_clis()
    except AgentCliInstallError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"agent CLIs unavailable under CI: {exc}", pytrace=False)
        pytest.skip(f"agent CLIs not installed ({exc}). Install them with: {INSTALL_HINT}")
    if not _VERSIONS_SEEN:
        _VERSIONS_SEEN.update(cli_versions(path))
        print(f"\nagent CLIs: {_VERSIONS_SEEN}")
    return path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name the CLI versions the run used, so CI logs show them."""
    if _VERSIONS_SEEN:
        line = ", ".join(f"{name} {version}" for name, version in _VERSIONS_SEEN.items())
        terminalreporter.write_line(f"agent CLIs used: {line} (pinned in tests/agent_clis.py)")


if pytest is not None:
    agent_cli_bin = pytest.fixture(scope="session", name="agent_cli_bin")(_agent_cli_bin)


if __name__ == "__main__":  # `python tests/agent_clis.py`: install if needed, print the bin dir
    print(ensure_agent_clis())
