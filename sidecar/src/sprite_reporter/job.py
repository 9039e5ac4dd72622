"""One job: clone the repository, run the agent, relay its output, report how it ended."""

import json
import os
import re
import shutil
import signal
import subprocess
import threading
from typing import IO, TYPE_CHECKING, Callable, Dict, List, Optional, Tuple, Union

from .agent_run import StructuredOutput, files_changed, head_commit, pump_json_lines
from .agents import STRUCTURED_AGENTS
from .approvals import ApprovalBroker
from .artifacts import Artifacts
from .config import Connection, RunPlan, Tuning, agent_model_env, max_cost_env
from .credentials import CredentialBroker
from .output import echo, say
from .privileges import AgentIdentity, not_to_give
from .process import (
    EXIT_CANCELLED,
    EXIT_INTERNAL,
    EXIT_NOT_EXECUTABLE,
    EXIT_NOT_INSTALLED,
    Cancellation,
    exit_code_of,
    pump_lines,
)
from .redact import Redactor
from .relay import Relay

if TYPE_CHECKING:  # session imports job; the type is only named in a comment
    from .session import AgentConversation

CANCEL_FLUSH_S = 4.0  # after a SIGTERM, how long the relay may still try to send
DRAIN_AFTER_EXIT_S = 3.0  # output still held open by the agent's children after it exited
POLL_S = 0.2
EXIT_NO_CREDENTIALS = 128  # what git exits with when it could not authenticate
GITHUB = "https://github.com"

# Credential helper for https GitHub clones: git runs it through sh, which reads GH_TOKEN
# from the environment, so the token itself is never in argv, a URL or a log line.
GH_CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || exit 0; echo username=x-access-token; echo "password=$GH_TOKEN"; }; f'
)

_GITHUB_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}")
_REMOTE_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:\S+")


def repo_url(repo: str, server: Optional[str] = None) -> Tuple[str, bool]:
    """(what git clones, whether it is remote): owner/repo means `server`, GitHub by default."""
    if repo.startswith(("/", "./", "../", "~/")) or os.path.exists(repo):
        return os.path.abspath(os.path.expanduser(repo)), False
    if _REMOTE_URL.fullmatch(repo):
        return repo, not repo.startswith("file://")
    if _GITHUB_SLUG.fullmatch(repo):
        slug = repo[:-4] if repo.endswith(".git") else repo
        return f"{(server or GITHUB).rstrip('/')}/{slug}.git", True
    return repo, False


def display_repo(repo: str) -> str:
    """The repository as given, without any credentials embedded in a URL."""
    return re.sub(r"(://)[^/@\s]*@", r"\1", repo)


class JobFailed(Exception):
    def __init__(self, stage: str, exit_code: int, error: str) -> None:
        super().__init__(error)
        self.stage = stage
        self.exit_code = exit_code
        self.error = error


class Cancelled(Exception):
    def __init__(self, exit_code: int) -> None:
        super().__init__("cancelled")
        self.exit_code = exit_code


class Job:
    """One job of the sprite.

    With a credential broker (OPENDISPATCH_GIT_CREDENTIALS), the repository on its server is
    cloned with the dispatcher's short-lived token through git's credential helper, and the
    agent gets GH_TOKEN for `gh`: the token current when the agent starts, a snapshot. git
    keeps asking the broker, which renews the token; `gh` run more than the token's hour
    (GitHub's installation tokens) after the agent started is refused.
    """

    def __init__(self, connection: Connection, tuning: Tuning, plan: RunPlan, env: Dict[str, str]) -> None:
        self.connection = connection
        self.plan = plan
        self.env = env
        self.redact = Redactor(env)
        self.relay = Relay(connection, tuning, plan.spool_file)
        self.artifacts = Artifacts()
        self.cancel = Cancellation()
        self.relaying = True
        self.install_signals = True  # a persistent session's loop owns the signal handlers
        self.workdir = None  # type: Optional[str]  # set once cloned (a session clones once)
        self.conversation = None  # type: Optional[AgentConversation]
        self.identity = AgentIdentity()  # who the agent runs as (cli/session decide, once per sidecar)
        self.agent_uid = None  # type: Optional[int]  # the user this job's agent ran as, if not ours
        self.agent = env.get("AGENT", "").strip().lower()
        self.base_commit = None  # type: Optional[str]  # what was cloned: files changed are against it
        self.structured = None  # type: Optional[StructuredOutput]
        self.credentials = None  # type: Optional[CredentialBroker]  # one per sidecar (cli/session set it)
        self.approvals = None  # type: Optional[ApprovalBroker]  # one per sidecar, with a policy (cli/session)

    def emit_event(self, event: Dict[str, object]) -> None:
        """One agent event (already redacted): relayed, echoed for the machine's log, scanned for links."""
        echo(json.dumps(event, ensure_ascii=False))
        if self.relaying:
            for key in ("text", "answer"):
                value = event.get(key)
                if isinstance(value, str):
                    for line in value.splitlines():
                        self.artifacts.scan(line)
            self.relay.add_event(event)

    def emit(self, text: str) -> None:
        text = self.redact(text)
        echo(text)
        if self.relaying:
            self.artifacts.scan(text)
            self.relay.add_line(text)

    def status(self, status: str, **fields: object) -> Dict[str, object]:
        payload = {"jobId": self.connection.job_id, "status": status}  # type: Dict[str, object]
        payload.update(fields)
        return payload

    def run(self) -> int:
        """Run the job; the credential and approval brokers ask for it (its id and token) while it runs."""
        broker, approvals = self.credentials, self.approvals
        if broker is not None:
            broker.attach(self.connection, self.redact)
        if approvals is not None:
            approvals.attach(self.connection)
        try:
            return self._run()
        finally:
            if broker is not None:
                broker.attach(None, None)
            if approvals is not None:
                approvals.attach(None)

    def _run(self) -> int:
        if self.install_signals:
            self.cancel.install()
        self.relay.start(self.status("running", error=""))
        workdir = self.workdir or self.plan.workspace
        try:
            self.start_credentials()
            self.start_approvals()
            if self.plan.repo and self.workdir is None:
                workdir = self.clone(self.plan.repo)
                self.workdir = workdir
            self.check_cancelled(EXIT_CANCELLED)
            if self.conversation is not None:
                self.conversation.restore(workdir, self.emit)
                self.plan.argv = self.conversation.argv(workdir, max_cost_env(self.env), agent_model_env(self.env))
            exit_code = self.run_agent(workdir)
            if self.conversation is not None:
                self.conversation.hand_back(self.emit)
        except JobFailed as failure:
            say(failure.error)
            final = self.status(
                "failed", exitCode=failure.exit_code, error=failure.error, stage=failure.stage
            )
            return self.report(final, failure.exit_code, workdir)
        except Cancelled as cancelled:
            final = self.status("cancelled", exitCode=cancelled.exit_code, error="cancelled")
            return self.report(final, cancelled.exit_code, workdir)
        except Exception as exc:  # a bug of ours: still tell the server, never hang the job
            error = f"the sidecar failed: {type(exc).__name__}: {self.redact(str(exc))}"
            say(error)
            final = self.status("failed", exitCode=EXIT_INTERNAL, error=error, stage="sidecar")
            return self.report(final, EXIT_INTERNAL, workdir)
        if exit_code == 0:
            final = self.status("completed", exitCode=0, error="")
        else:
            error = f"agent exited with code {exit_code}"
            final = self.status("failed", exitCode=exit_code, error=error, stage="agent")
        return self.report(final, exit_code, workdir)

    def check_cancelled(self, exit_code: int) -> None:
        if self.cancel.requested:
            raise Cancelled(exit_code)

    def report(self, final: Dict[str, object], exit_code: int, workdir: str) -> int:
        self.relaying = False
        self.artifacts.read_file(self.plan.artifacts_file, workdir, self.redact, self.agent_uid)
        files = self.artifacts.copy_files(self.agent_uid)
        transcript = self.structured.transcript.parts() if self.structured is not None else None
        self.relay.finish(self.artifacts.collected(), final, transcript, files)
        hurried = False
        while not self.relay.wait_done(POLL_S):
            if self.cancel.requested and not hurried:
                hurried = True
                self.relay.hurry(CANCEL_FLUSH_S)
        return exit_code

    # ---- clone ----

    def child_env(self, extra: Dict[str, str]) -> Dict[str, str]:
        env = dict(self.env)
        env.pop("JOB_TOKEN", None)  # the agent never needs the job's webhook token
        env.pop("SESSION_TOKEN", None)
        env.update(extra)
        return env

    def start_credentials(self) -> None:
        """The credential broker's socket and helper, before anything needs them (once per sidecar)."""
        self._start_broker(self.credentials, "the git credential broker")

    def start_approvals(self) -> None:
        """The approval broker's socket and Claude Code's hook program (once per sidecar).

        Only Claude Code asks it; OpenCode is given permission rules instead (run_agent).
        """
        if self.agent == "claude":
            self._start_broker(self.approvals, "the approval broker")

    def _start_broker(self, broker: "Union[CredentialBroker, ApprovalBroker, None]", what: str) -> None:
        """Start a broker (credentials or approvals) unless absent or started; a failure ends the job."""
        if broker is None or broker.started:
            return
        try:
            broker.start(self.identity)
        except OSError as exc:
            raise JobFailed("sidecar", EXIT_INTERNAL, f"{what} could not start in {self.plan.workspace}: {exc}") from None

    def clone(self, repo: str) -> str:
        broker = self.credentials
        url, remote = repo_url(repo, broker.server if broker is not None else None)
        shown = display_repo(repo)
        dest = os.path.join(self.plan.workspace, "repo")
        through_broker = broker is not None and broker.serves(url)
        github_token = not through_broker and bool(self.env.get("GH_TOKEN")) and url.startswith(GITHUB + "/")
        argv = ["git"]
        if github_token:
            argv += ["-c", "credential.helper=", "-c", "credential.helper=" + GH_CREDENTIAL_HELPER]
        argv += ["clone", "--branch", self.plan.branch]
        if remote:
            argv += ["--depth", "1"]
        argv += ["--", url, dest]
        self.emit(f"$ git clone {shown} (branch {self.plan.branch})")
        if broker is not None and through_broker:
            held, why = broker.credential()  # fetched now: the dispatcher's refusal is the job's error
            if held is None:
                raise JobFailed("clone", EXIT_NO_CREDENTIALS, f"could not clone {shown}: {self.redact(why)}")
            settings = ["-c", "credential.helper="]  # no other helper answers, whatever the host
            for key, value in broker.git_config():
                settings += ["-c", f"{key}={value}"]
            argv[1:1] = settings
        output = []  # type: List[str]

        def keep(line: str) -> None:
            output.append(line)
            self.emit(line)

        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self.child_env({"GIT_TERMINAL_PROMPT": "0"}),
                cwd=self.plan.workspace,
                start_new_session=True,
            )
        except OSError:
            raise JobFailed("clone", EXIT_NOT_INSTALLED, "git is not installed " + _where_programs_come_from("git")) from None
        self.cancel.child_pgid = proc.pid
        if self.cancel.requested:
            self.cancel.signal_child(signal.SIGTERM)
        try:
            pump_lines(proc.stdout, keep)
            code = exit_code_of(proc.wait())
        finally:
            self.cancel.child_pgid = None
        self.check_cancelled(code if code else EXIT_CANCELLED)
        if code != 0:
            last = next((line.strip() for line in reversed(output) if line.strip()), "git said nothing")
            last = re.sub(r"^(fatal|error):\s*", "", self.redact(last))
            access = "the access the dispatcher's credentials give" if through_broker else "GH_TOKEN access"
            raise JobFailed(
                "clone",
                code,
                f"could not clone {shown} at branch {self.plan.branch}: {last}; "
                f"check the repository name, branch and {access}",
            )
        if broker is not None and through_broker:
            self.configure_push_credentials(dest, broker.git_config())
        elif github_token:
            self.configure_push_credentials(dest)
        self.base_commit = head_commit(dest)
        return dest

    def configure_push_credentials(self, dest: str, settings: Optional[List[Tuple[str, str]]] = None) -> None:
        """Let the agent fetch and push: the clone's config names a helper, never a token.

        By default the GH_TOKEN helper for github.com (it names the variable, not its value);
        `settings` are the credential broker's (its helper program and socket).
        """
        github = f"credential.{GITHUB}.helper"
        for key, value in settings or [(github, ""), (github, GH_CREDENTIAL_HELPER)]:
            subprocess.run(
                ["git", "-C", dest, "config", "--local", "--add", key, value],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=self.child_env({}),
                check=False,
            )

    # ---- agent ----

    def agent_identity_for(self, workdir: str) -> AgentIdentity:
        """The identity this job's agent runs as: the workspace is handed to it, or we fall back.

        The fallback (root) is said in the job's output, so whoever reads it knows the agent
        could read the sidecar's environment.
        """
        identity = self.identity
        if identity.dropped:
            closed_program = self.program_out_of_reach(identity)
            if closed_program is not None:
                say(f"running the agent as root: {closed_program} (its program is not where that user can go)")
                identity = AgentIdentity(fallback=closed_program, quiet=True)
        if identity.dropped:
            workspace = self.plan.workspace
            problem = not_to_give(workspace) or not_to_give(workdir)
            closed = identity.cannot_reach(os.path.dirname(os.path.realpath(workspace)))
            if closed is not None and problem is None:
                say(f"running the agent as root: {closed} (the workspace is not in a sprite's open folder)")
                identity = AgentIdentity(fallback=closed, quiet=True)
            elif problem is None:
                try:
                    identity.give_folder(workspace)  # the agent may write its artifacts file there
                    identity.give(workdir)
                    artifacts = os.path.abspath(self.plan.artifacts_file)
                    if not artifacts.startswith(os.path.abspath(workdir) + os.sep):
                        identity.give_file(artifacts)
                except OSError as exc:
                    problem = f"the workspace could not be handed to the user {identity.name}: {exc.strerror}"
            if problem is not None:
                identity = AgentIdentity(fallback=problem)
        note = identity.note()
        if note is not None:
            self.emit(note)
        return identity

    def program_out_of_reach(self, identity: AgentIdentity) -> Optional[str]:
        """Why the agent's user could not start its program (a folder on the way is closed).

        Only outside a sprite: agent CLIs installed under a private folder (a test's, a
        checkout under a 0700 temporary folder) that the sidecar, as root, finds on PATH. The
        user would get "not installed"; the agent runs as root instead, which stderr says.
        """
        program = shutil.which(self.plan.argv[0], path=self.env.get("PATH", os.defpath))
        if program is None:
            return None  # not installed at all: the start says so
        for folder in {os.path.dirname(os.path.abspath(program)), os.path.dirname(os.path.realpath(program))}:
            closed = identity.cannot_reach(folder)
            if closed is not None:
                return closed
        return None

    def run_agent(self, workdir: str) -> int:
        argv = self.plan.argv
        identity = self.agent_identity_for(workdir)
        self.agent_uid = identity.uid
        home = identity.home_in(self.env, self.plan.workspace)
        # PWD too: OpenCode takes its project folder from $PWD, not from its working directory.
        extra = {"OPENDISPATCH_ARTIFACTS_FILE": self.plan.artifacts_file, "PWD": workdir}
        if self.credentials is not None:
            token_env, why = self.credentials.agent_env()  # GH_TOKEN for gh: a snapshot, see Job
            if why:
                self.emit(f"[sidecar] the agent gets no GH_TOKEN from the dispatcher: {why}")
            extra.update(token_env)
        argv = self.with_approvals(argv, extra, workdir)
        env = identity.agent_env(self.child_env(extra), argv, home)
        if self.agent in STRUCTURED_AGENTS:
            self.structured = StructuredOutput(self.agent, workdir, self.redact, self.emit_event, self.emit)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if self.structured is not None else subprocess.STDOUT,
                env=env,
                cwd=workdir,
                start_new_session=True,
                user=identity.uid,  # None: the sidecar's own user (Python >= 3.9 for these three)
                group=identity.gid,
                extra_groups=identity.extra_groups(),
            )
        except FileNotFoundError:
            raise JobFailed(
                "agent_start",
                EXIT_NOT_INSTALLED,
                f"agent command {argv[0]!r} is not installed " + _where_programs_come_from(argv[0], agent=True),
            ) from None
        except (OSError, ValueError) as exc:
            reason = str(exc.strerror if isinstance(exc, OSError) else exc)
            if identity.dropped and isinstance(exc, PermissionError):
                reason += f" for the user {identity.name} (is it installed where that user can reach it?)"
            raise JobFailed(
                "agent_start",
                EXIT_NOT_EXECUTABLE,
                f"agent command {argv[0]!r} could not be started: {reason}; "
                "use --image with an image that has it, or --agent shell",
            ) from None
        self.cancel.child_pgid = proc.pid
        pumps = self.start_pumps(proc, workdir)
        forwarded = False
        while True:
            if self.cancel.requested and not forwarded:
                forwarded = True
                self.cancel.signal_child(signal.SIGTERM)  # in case the signal beat `child_pgid`
            self.cancel.escalate_if_due()
            try:
                returncode = proc.wait(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                continue
        code = exit_code_of(returncode)
        if self.cancel.requested:
            self.cancel.signal_child(signal.SIGKILL)  # whatever of the agent is left
        self.cancel.child_pgid = None
        for pump in pumps:
            pump.join(DRAIN_AFTER_EXIT_S)
        if any(pump.is_alive() for pump in pumps):
            say("the agent exited but something it started still holds its output open; not waiting for it")
        structured = self.structured
        if structured is not None:
            structured.finish(code)
            if self.conversation is not None and structured.session_id:
                self.conversation.conversation_id = structured.session_id  # what the next message resumes
        self.report_files_changed(workdir, identity, env)
        self.check_cancelled(code)
        return code

    def with_approvals(self, argv: List[str], extra: Dict[str, str], workdir: str) -> List[str]:
        """The channel's approvals, each agent its way: Claude Code's hook, OpenCode's denials."""
        approvals = self.approvals
        if approvals is None:
            return argv
        if self.agent == "claude":
            return approvals.claude_argv(argv)
        if self.agent == "opencode":
            extra.update(approvals.opencode_env(workdir))
            self.emit(approvals.opencode_note())
        return argv

    def start_pumps(self, proc: "subprocess.Popen[bytes]", workdir: str) -> List[threading.Thread]:
        """Threads reading the agent's output: its JSON events and its stderr, or its text."""
        structured = self.structured
        # (reader, stream, what each line goes to): plain lines, or the agent's JSON events.
        targets = []  # type: List[Tuple[Callable[..., None], Optional[IO[bytes]], Callable[[str], None]]]
        if structured is None:
            targets = [(pump_lines, proc.stdout, self.emit)]
        else:
            targets = [
                (pump_json_lines, proc.stdout, structured.stdout_line),
                (pump_lines, proc.stderr, structured.stderr_line),
            ]
        pumps = []
        for number, (pump, stream, on_line) in enumerate(targets):
            thread = threading.Thread(target=pump, args=(stream, on_line), name=f"pump-{number}", daemon=True)
            thread.start()
            pumps.append(thread)
        return pumps

    def report_files_changed(self, workdir: str, identity: AgentIdentity, env: Dict[str, str]) -> None:
        """`git diff --stat` of the workspace against the cloned commit, as an event and a line."""
        if self.base_commit is None:
            return
        event = files_changed(workdir, self.base_commit, identity, env)
        if event is None:
            return
        if self.structured is not None:
            self.emit_event(event)
        else:
            self.emit(f"[sidecar] files changed: {event['summary']}")


def _where_programs_come_from(program: str, agent: bool = False) -> str:
    """Advice for a missing program that fits where this sprite runs.

    A Fly Machine (Fly sets FLY_MACHINE_ID in every machine) runs an image, which `--image`
    chooses; a local sprite runs on the dispatcher's host with its PATH, where `--image`
    means nothing and the program must be installed on the host.
    """
    other = ", or --agent shell" if agent else ""
    if os.environ.get("FLY_MACHINE_ID"):
        return f"in this image; use --image with an image that has {program}{other}"
    return (
        f"on the dispatcher's host (local sprites run its programs, from its PATH); install {program} "
        f"there (docs/agents.md) and restart the dispatcher{other}"
    )
