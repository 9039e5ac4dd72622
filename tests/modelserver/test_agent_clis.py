"""The pinned-CLI installer's decisions, without running npm."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

import agent_clis


def fake_install(prefix: Path, versions: dict[str, str]) -> None:
    """Lay out package.json files and bin entries as npm would."""
    for package, version in versions.items():
        manifest = prefix / "node_modules" / package / "package.json"
        manifest.parent.mkdir(parents=True)
        manifest.write_text(json.dumps({"version": version}))
    (prefix / "node_modules" / ".bin").mkdir(parents=True)
    for name in agent_clis.BINARIES:
        (prefix / "node_modules" / ".bin" / name).write_text("#!/bin/sh\n")


def test_pinned_versions_are_current(tmp_path: Path) -> None:
    assert not agent_clis.is_current(tmp_path)
    fake_install(tmp_path, agent_clis.PACKAGES)
    assert agent_clis.is_current(tmp_path)


def test_another_version_is_not_current(tmp_path: Path) -> None:
    fake_install(tmp_path, dict(agent_clis.PACKAGES, **{"opencode-ai": "0.0.1"}))
    assert not agent_clis.is_current(tmp_path)


def test_missing_npm_raises_with_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent_clis.shutil, "which", lambda name: None)
    with pytest.raises(agent_clis.AgentCliInstallError, match="npm install .*claude-code@2"):
        agent_clis.ensure_agent_clis(tmp_path / "clis")


def test_install_makes_files_usable_by_other_users(tmp_path: Path) -> None:
    fake_install(tmp_path, agent_clis.PACKAGES)
    binary = tmp_path / "node_modules" / ".bin" / "claude"
    binary.chmod(0o700)
    (tmp_path / "node_modules").chmod(0o700)
    agent_clis.make_world_usable(tmp_path)
    assert stat.S_IMODE(binary.stat().st_mode) & 0o055 == 0o055
    assert stat.S_IMODE((tmp_path / "node_modules").stat().st_mode) & 0o055 == 0o055


def test_the_real_install_is_world_usable() -> None:
    """Checks the shared cache (when present) that the unprivileged agent user runs from."""
    if not agent_clis.is_current():
        pytest.skip("agent CLIs not installed yet")
    for root, dirs, files in os.walk(agent_clis.CACHE):
        for name in dirs + files:
            mode = (Path(root) / name).lstat().st_mode
            if not stat.S_ISLNK(mode):
                assert mode & stat.S_IROTH, Path(root) / name
