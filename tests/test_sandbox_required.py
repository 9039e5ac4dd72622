"""Shared chat on local sprites needs the sandbox: without bubblewrap, `serve` and `doctor`
refuse it in the same words, unless the operator opts out loudly (issue #20)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from opendispatch.adapters.local import sandbox_problem
from opendispatch.validation import validate

OPENDISPATCH = Path(sys.executable).with_name("opendispatch")
SLACK = {"CHAT_PROVIDER": "slack", "SLACK_BOT_TOKEN": "xoxb-1-2-abc", "SLACK_APP_TOKEN": "xapp-1-abc"}


@pytest.fixture
def path_without_bwrap(tmp_path: Path) -> Iterator[str]:
    """A PATH with git and python but no bwrap, as on a machine without bubblewrap."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("git", "true"):
        found = subprocess.run(["which", program], capture_output=True, text=True, check=True).stdout.strip()
        (bin_dir / program).symlink_to(found)
    (bin_dir / "python3").symlink_to(sys.executable)
    old = os.environ["PATH"]
    os.environ["PATH"] = str(bin_dir)
    sandbox_problem(refresh=True)
    try:
        yield str(bin_dir)
    finally:
        os.environ["PATH"] = old
        sandbox_problem(refresh=True)


def test_shared_chat_on_local_sprites_without_a_sandbox_is_refused_unless_opted_out(path_without_bwrap: str) -> None:
    problems = [p.message for p in validate(SLACK)]
    assert len(problems) == 1 and problems[0].startswith("Local sprites cannot be sandboxed here (bubblewrap (bwrap) is not installed")
    assert "OPENDISPATCH_UNSANDBOXED_LOCAL_SPRITES=i-understand" in problems[0]
    assert validate({**SLACK, "OPENDISPATCH_UNSANDBOXED_LOCAL_SPRITES": "i-understand"}) == []
    assert validate({**SLACK, "OPENDISPATCH_UNSANDBOXED_LOCAL_SPRITES": "yes"}) != []  # only the spelled-out word
    assert validate({}) == []  # the console: the user is the operator
    assert validate({**SLACK, "OPENDISPATCH_SPRITES": "fly-emulator"}) == []


def test_serve_and_doctor_say_it_in_the_same_words(path_without_bwrap: str, tmp_path: Path) -> None:
    env = {**SLACK, "PATH": path_without_bwrap, "HOME": str(tmp_path), "WEBHOOK_PORT": "0",
           "OPENDISPATCH_DB": str(tmp_path / "jobs.db")}
    serve = subprocess.run([str(OPENDISPATCH), "serve"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    doctor = subprocess.run([str(OPENDISPATCH), "doctor"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert serve.returncode == 2 and doctor.returncode == 1, serve.stderr + doctor.stdout
    refusal = serve.stderr.strip().removeprefix("opendispatch: ")
    assert refusal.startswith("Local sprites cannot be sandboxed here") and "Traceback" not in serve.stderr
    assert refusal in doctor.stdout and "1 problem to fix before `serve`" in doctor.stdout


def test_shared_chat_clones_host_paths_only_where_the_allowlist_names_them() -> None:
    from opendispatch.config import Config

    shared = Config.from_env({**SLACK, "OPENDISPATCH_ALLOWED_REPOS": "acme/*,/srv/git/*"}, dotenv=None)
    assert shared.access.host_repos == frozenset({"/srv/git/*"})
    assert Config.from_env(SLACK, dotenv=None).access.host_repos == frozenset()  # no host path at all
    assert Config.from_env({}, dotenv=None).access.host_repos is None  # the console: the user's own disk
