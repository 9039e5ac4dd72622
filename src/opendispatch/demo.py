"""`opendispatch demo`: the production code path on one machine, with a throwaway project.

Console chat, local sprites (the real sidecar as a subprocess), the real webhook server on
loopback and SQLite in a temporary folder. Scripted when stdin is not a terminal, so
`opendispatch demo < /dev/null` is a smoke test; interactive otherwise.
"""

from __future__ import annotations

import subprocess
from functools import partial
import sys
import tempfile
from pathlib import Path

import attrs
import trio

from .bootstrap import open_dispatcher
from .config import Config
from .domain.job import Conversation, User
from .domain.messages import Inbound

RUN_TESTS_PY = '''\
"""A stand-in test suite for the demo project: prints results, optionally fails."""
import os, sys, time

fail = "--fail" in sys.argv
names = ["test_parse_repo", "test_job_tokens", "test_output_buffer", "test_redaction"]
passed = 0
for index, name in enumerate(names):
    time.sleep(0.3)
    broken = fail and index == 2
    print(f"{name} ... {'FAILED' if broken else 'ok'}", flush=True)
    passed += not broken
print(f"{passed} passed, {len(names) - passed} failed")
if not fail:
    with open("test-report.txt", "w") as report:
        report.write(f"{passed} passed\\n")
    artifacts = os.environ.get("OPENDISPATCH_ARTIFACTS_FILE")
    if artifacts:
        with open(artifacts, "a") as listing:
            listing.write("test report\\t" + os.path.abspath("test-report.txt") + "\\n")
sys.exit(1 if fail else 0)
'''


def make_demo_project(folder: Path) -> Path:
    """A small git repository with a branch `main`, standing in for owner/project."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text("# demo project\n\nUsed by `opendispatch demo`.\n")
    (folder / "run_tests.py").write_text(RUN_TESTS_PY)
    git = ["git", "-c", "user.name=Open-Dispatch demo", "-c", "user.email=demo@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(folder)], check=True)
    subprocess.run([*git, "-C", str(folder), "add", "."], check=True)
    subprocess.run([*git, "-C", str(folder), "commit", "-q", "-m", "demo project"], check=True)
    return folder


def demo_script(project: Path) -> list[str]:
    return [
        f'/od-run --repo {project} --agent shell --timeout 2m "python3 run_tests.py"',
        f"/od-run --repo {project} --agent shell 'echo \"checking the build\" && python3 run_tests.py --fail'",
        # A persistent session: two plain messages, the second sees the first one's file.
        f"/od-start demo-session --repo {project} --agent shell --persistent",
        "python3 run_tests.py > last-run.txt; tail -n 1 last-run.txt",
        "echo 'the session kept last-run.txt:' && cat last-run.txt",
        "/od-list",
        "/od-stop demo-session",
        "/od-jobs",
    ]


def agent_demo_script(project: Path, agent: str) -> list[str]:
    """A real agent (Claude Code or OpenCode on PATH) works on the demo project, then the bill."""
    return [
        f'/od-run --repo {project} --agent {agent} "run the tests and write down what you find"',
        "/od-jobs",
        "/od-usage",
    ]


async def run_demo(config: Config, *, interactive: bool, agent: str | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="opendispatch-demo-") as tmp:
        project = make_demo_project(Path(tmp) / "project")
        config = attrs.evolve(
            config,
            database_path=str(Path(tmp) / "jobs.db"),
            open_dispatch_url=None,
            allow_shell_sessions=True,  # the demo's session runs shell commands (no agent CLI here)
        )
        async with open_dispatcher(config, bind="127.0.0.1:0") as running:
            print(f"Open-Dispatch demo: webhooks at {running.webhook_url}, project at {project}\n", flush=True)
            if interactive:
                print(f'Try: /od-run --repo {project} --agent shell "python3 run_tests.py"   (/od-help, quit)\n')
                await running.chat.listen(running.dispatcher.handle)
                await running.dispatcher.wait_idle()
                return 0
            where, who = Conversation("console", "console"), User("demo", "demo")
            for text in demo_script(project) if agent is None else agent_demo_script(project, agent):
                print(f"you> {text}", flush=True)
                await running.dispatcher.handle(Inbound(where, who, text))
                if running.dispatcher.sessions is not None:
                    await running.dispatcher.sessions.wait_idle()
                await running.dispatcher.wait_idle()
                print(flush=True)
    return 0


def main(config: Config, *, interactive: bool | None = None, agent: str | None = None) -> int:
    if interactive is None:
        interactive = sys.stdin.isatty()
    return trio.run(partial(run_demo, config, interactive=interactive, agent=agent))
