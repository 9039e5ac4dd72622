"""The shipped `sidecar/sprite-reporter` is the build of `sidecar/src/sprite_reporter`.

Sprites run the one built file; tests of the sidecar's parts import its sources. This test
keeps the two from drifting apart: edit the sources, then run `python3 sidecar/build.py`.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "sidecar" / "sprite-reporter"


def build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sidecar_build", ROOT / "sidecar" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_sidecar_is_the_build_of_its_sources(tmp_path: Path) -> None:
    built = build_script().build(tmp_path / "sprite-reporter")
    assert built.read_bytes() == SHIPPED.read_bytes(), (
        "sidecar/sprite-reporter is not the build of sidecar/src: run `python3 sidecar/build.py` and commit it"
    )


def test_the_build_is_deterministic_and_holds_only_the_package(tmp_path: Path) -> None:
    build = build_script()
    first = build.build(tmp_path / "a")
    (ROOT / "sidecar" / "src" / "sprite_reporter" / "__pycache__").mkdir(exist_ok=True)  # as an import leaves it
    second = build.build(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    assert first.stat().st_mode & stat.S_IXUSR and first.stat().st_mode & stat.S_IXOTH
    with zipfile.ZipFile(first) as archive:
        names = archive.namelist()
        assert names == sorted(names)
        assert names[0] == "__main__.py"
        assert all(name == "__main__.py" or name.startswith("sprite_reporter/") for name in names)
        assert all(name.endswith(".py") and "__pycache__" not in name for name in names)
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_the_shipped_file_runs_as_a_program_on_python3_alone(tmp_path: Path) -> None:
    """`python3 sprite-reporter` and `./sprite-reporter` both run it; without a job it exits 2."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    for argv in ([sys.executable, "-I", str(SHIPPED)], [str(SHIPPED)]):
        done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 2, done.stderr
        assert "sprite-reporter: JOB_ID is not set" in done.stderr
