"""`opendispatch demo`: the production code path on one machine, with a throwaway project.

Console chat, local sprites (the real sidecar as a subprocess), the real webhook server on
loopback and SQLite in a temporary folder. Scripted when stdin is not a terminal, so
`opendispatch demo < /dev/null` is a smoke test; interactive otherwise.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import attrs
import trio

from .bootstrap import Running, open_dispatcher
from .config import Config
from .domain.errors import DispatchError
from .domain.job import Conversation, User
from .domain.messages import Inbound, Notice

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


#: Signals that end the console or demo the way Ctrl-C does (running jobs stopped, sprites
#: destroyed, the throwaway folder removed) instead of killing the process on the spot:
#: SIGHUP when the terminal window is closed, SIGTERM from `kill`.
STOP_SIGNALS = (signal.SIGHUP, signal.SIGTERM)
WHERE = Conversation("console", "console")
#: How long the way out may spend ending sessions (each destroy is itself bounded).
END_SESSIONS_TIMEOUT_S = 20.0
log = logging.getLogger(__name__)


async def run_demo(config: Config, *, interactive: bool, agent: str | None = None, name: str | None = None) -> int:
    """Run the demo; returns the exit code (128 + the signal's number when one stopped it).

    `name` is what the banner calls it: "console" by default when the user types the
    commands (`opendispatch console`, `demo --interactive`), "demo" when it is scripted.
    """
    stopped_by: list[int] = []
    with tempfile.TemporaryDirectory(prefix="opendispatch-demo-") as tmp:  # removed on every way out
        with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_stop_on_signal, signals, nursery.cancel_scope, stopped_by)
                await _run_in(Path(tmp), config, interactive=interactive, agent=agent, name=name)
                nursery.cancel_scope.cancel()
    return 128 + stopped_by[0] if stopped_by else 0


async def _stop_on_signal(
    signals: AsyncIterator[int], scope: trio.CancelScope, stopped_by: list[int]
) -> None:
    """The first stop signal cancels everything: job tasks destroy their sprites (shielded)."""
    async for signum in signals:
        stopped_by.append(signum)
        scope.cancel()
        return


async def _run_in(tmp: Path, config: Config, *, interactive: bool, agent: str | None, name: str | None) -> None:
    project = make_demo_project(tmp / "project")
    config = attrs.evolve(
        config,
        # A folder of its own: sandboxed sprites never see the database's folder, and the
        # project they clone sits beside it.
        database_path=str(tmp / "state" / "jobs.db"),
        open_dispatch_url=None,
        allow_shell_sessions=True,  # the demo's session runs shell commands (no agent CLI here)
        # One person at a terminal is the operator: `--all` and every job are theirs to see.
        ownership=attrs.evolve(config.ownership, admins=config.ownership.admins | {"console", "demo"}),
    )
    title = name or ("console" if interactive else "demo")
    async with open_dispatcher(config, bind="127.0.0.1:0") as running:
        try:
            _say(f"Open-Dispatch {title}: webhooks at {running.webhook_url}, project at {project}")
            if running.web_links is not None:
                # The operator at this terminal: every job, live, while the demo runs.
                viewer = User("console", "console") if interactive else User("demo", "demo")
                dashboard, _ = running.web_links.for_list(viewer, WHERE)
                _say(f"Dashboard (jobs, live output, usage; open while this runs): {dashboard}")
            _say("")
            if interactive:
                _say(f'Try: /od-run --repo {project} --agent shell "python3 run_tests.py"   (/od-help, quit)\n')
                await running.chat.listen(running.dispatcher.handle)
                await _leave(running)
                return
            who = User("demo", "demo")
            for text in demo_script(project) if agent is None else agent_demo_script(project, agent):
                _say(f"you> {text}")
                await running.dispatcher.handle(Inbound(WHERE, who, text))
                if running.dispatcher.sessions is not None:
                    await running.dispatcher.sessions.wait_idle()
                await running.dispatcher.wait_idle()
                _say("")
        finally:
            with trio.move_on_after(END_SESSIONS_TIMEOUT_S) as cleanup:
                cleanup.shield = True  # also on Ctrl-C and the stop signals
                await _end_sessions(running)


async def _end_sessions(running: Running) -> None:
    """End the sessions still open, as `/od-stop` does: their sprites are destroyed.

    A stopping dispatcher normally leaves persistent session sprites for the next one to
    reconnect to; the demo's database is thrown away with its folder, so there is no next one
    and they would run on with nobody to stop them.
    """
    sessions = running.dispatcher.sessions
    if sessions is None:
        return
    for session in sessions.live_sessions():
        try:
            await sessions.stop(session.name, session.owner, session.conversation)
        except DispatchError as exc:  # already ending: fine, nothing to tell
            log.info("demo: session %s: %s", session.name, exc)


async def _leave(running: Running) -> None:
    """After the prompt: `quit` stops running jobs now; the end of piped input waits for them.

    Either way the user is told what is happening. Quitting cancels each job as `/od-cancel`
    does: its task ends and destroys its sprite while the webhook server still takes the
    sidecar's last report, so the console is gone in well under a second (cancelling the whole
    nursery, as Ctrl-C does, would leave each sidecar retrying a server that is no longer there
    for a few seconds).
    """
    live = sorted(running.dispatcher.runner.live_jobs)
    if not live:
        return
    jobs = f"{len(live)} running job{'s' if len(live) != 1 else ''} ({', '.join(live)})"
    if getattr(running.chat, "quitting", False):
        await running.chat.send(WHERE, Notice(f"Stopping {jobs}…"))
        for job_id in live:
            await running.dispatcher.runner.cancel(job_id, by="quitting the console")
    else:
        them = "them" if len(live) != 1 else "it"
        await running.chat.send(WHERE, Notice(f"Waiting for {jobs} to finish… (Ctrl-C stops {them})"))
    await running.dispatcher.wait_idle()


def _say(text: str) -> None:
    """Print a line of the demo's own; a closed terminal (EIO) is not an error on the way out."""
    try:
        print(text, flush=True)
    except OSError:
        pass


def main(
    config: Config, *, interactive: bool | None = None, agent: str | None = None, name: str | None = None
) -> int:
    if interactive is None:
        interactive = sys.stdin.isatty()
    return trio.run(partial(run_demo, config, interactive=interactive, agent=agent, name=name))
