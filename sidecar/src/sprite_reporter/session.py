"""Sessions: the agent's conversation across messages, and the persistent sprite's loop."""

import http.client
import os
import random
import signal
import tarfile
import threading
import time
import urllib.parse
import uuid
from typing import Callable, Dict, List, Optional, Set, Tuple

from .agent_state import agent_state_roots, has_conversation, pack_agent_state, restore_agent_state
from .agents import AGENTS, session_agent_argv
from .approvals import load_approvals
from .config import (
    DEFAULT_BRANCH,
    DEFAULT_HTTP_TIMEOUT_S,
    RETRY_INITIAL_S,
    ConfigError,
    Connection,
    RunPlan,
    agent_model_env,
    load_connection,
    load_tuning,
    required,
)
from .credentials import load_git_credentials
from .http import http_json
from .job import Job
from .output import say
from .privileges import AgentIdentity, agent_identity
from .process import EXIT_CANCELLED, EXIT_CONFIG

MAX_STATE_CHARS = 700 * 1024  # base64 of the packed conversation; the server takes 1 MiB bodies
POLL_WAIT_S = 25
STATE_TRIES = 3


class AgentConversation:
    """Continues one agent conversation across the messages of a session.

    `handover` (non-persistent sessions): the connection to fetch the saved conversation
    before the agent runs and to hand the new one back after it. `owner`: the agent's user,
    who must own what is restored under its HOME (the sidecar restores it as root).
    """

    def __init__(
        self,
        agent: str,
        task: str,
        conversation_id: str,
        home: str,
        handover: Optional[Connection] = None,
        owner: Optional[AgentIdentity] = None,
    ) -> None:
        self.agent = agent
        self.task = task
        self.conversation_id = conversation_id
        self.home = home
        self.handover = handover
        self.owner = owner or AgentIdentity()

    def argv(self, workdir: str, max_cost_usd: Optional[str] = None, model: Optional[str] = None) -> List[str]:
        resume = has_conversation(self.agent, self.home, self.conversation_id)
        return session_agent_argv(self.agent, self.task, self.conversation_id, resume, max_cost_usd, model)

    def _state_call(self, method: str, body: Optional[Dict[str, object]]) -> Optional[Dict[str, object]]:
        target = self.handover
        assert target is not None
        path = "/webhooks/session/state"
        if body is None:
            path += "?" + urllib.parse.urlencode({"jobId": target.job_id})
        delay = RETRY_INITIAL_S
        for attempt in range(STATE_TRIES):
            try:
                status, answer = http_json(target, method, path, DEFAULT_HTTP_TIMEOUT_S, body)
            except (OSError, http.client.HTTPException):
                status, answer = 0, {}
            if 200 <= status < 300:
                return answer
            if 400 <= status < 500 and status not in (408, 429):
                say(f"the server refused the agent's session state ({status})")
                return None
            time.sleep(delay)
            delay *= 2
        say("could not reach the server for the agent's session state")
        return None

    def restore(self, workdir: str, emit: Callable[[str], None]) -> None:
        if self.handover is None or not agent_state_roots(self.agent):
            return
        answer = self._state_call("GET", None)
        blob = answer.get("state") if answer else None
        if isinstance(blob, str) and blob:
            try:
                restore_agent_state(blob, self.agent, self.home, workdir, self.conversation_id)
                self.owner.give(self.home)
            except (OSError, ValueError, tarfile.TarError) as exc:
                emit(f"[session] could not restore the agent's conversation: {exc}; it starts afresh")

    def hand_back(self, emit: Callable[[str], None]) -> None:
        if self.handover is None or not agent_state_roots(self.agent):
            return
        try:
            blob = pack_agent_state(self.agent, self.home)
        except (OSError, tarfile.TarError) as exc:
            emit(f"[session] could not save the agent's conversation: {exc}")
            return
        if blob is None:
            return
        if len(blob) > MAX_STATE_CHARS:
            emit("[session] the agent's conversation is too large to carry to the next message's sprite")
            return
        self._state_call("POST", {"jobId": self.handover.job_id, "state": blob})


class SessionLoop:
    """A persistent session's sprite: ask for a message, run it as a job, ask again."""

    def __init__(self, env: Dict[str, str]) -> None:
        self.env = env
        session_id = required(env, "SESSION_ID", "the dispatcher passes the session's id in SESSION_ID")
        token = required(env, "SESSION_TOKEN", "the dispatcher passes the session's token in SESSION_TOKEN")
        url_env = dict(env, JOB_ID=session_id, JOB_TOKEN=token)
        self.base = load_connection(url_env)
        self.tuning = load_tuning(env)
        self.agent = env.get("AGENT", "").strip().lower()
        if self.agent not in AGENTS:
            raise ConfigError("AGENT", f"AGENT must be one of {', '.join(AGENTS)}, not {self.agent!r}")
        agent_model_env(env)  # checked once for the session; each message's Job reads it again
        self.conversation_id = env.get("AGENT_SESSION_ID", "").strip() or str(uuid.uuid4())
        workspace = os.path.abspath(os.path.expanduser(env.get("OPENDISPATCH_WORKSPACE", "").strip() or "."))
        os.makedirs(workspace, exist_ok=True)
        self.workspace = workspace
        self.identity = agent_identity(env)
        self.home = self.identity.home_in(env, workspace)
        # One broker for the sprite; it answers for the message being run, and nothing between.
        self.credentials = load_git_credentials(env, workspace, self.tuning.http_timeout_s)
        self.approvals = load_approvals(env, workspace, self.tuning.http_timeout_s)  # one broker too
        self.repo = env.get("REPO", "").strip() or None
        self.branch = env.get("BRANCH", "").strip() or DEFAULT_BRANCH
        self.workdir = None  # type: Optional[str]
        self.current = None  # type: Optional[Job]
        self.stopping = False
        self.seen = set()  # type: Set[str]
        self._delay = RETRY_INITIAL_S

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True
        job = self.current
        if job is not None:
            job.cancel._on_signal(signum, frame)  # the message is cancelled; the loop ends after it
        else:
            raise SystemExit(EXIT_CANCELLED)

    def poll(self, running: Optional[str] = None, wait_s: int = POLL_WAIT_S) -> Tuple[str, Dict[str, object]]:
        """("message" | "cancel" | "none" | "gone" | "denied", body)."""
        query = {"sessionId": self.base.job_id, "waitS": str(wait_s)}
        if running:
            query["running"] = running
        path = "/webhooks/session/next?" + urllib.parse.urlencode(query)
        try:
            status, body = http_json(self.base, "GET", path, wait_s + self.tuning.http_timeout_s)
        except (OSError, http.client.HTTPException):
            status, body = 0, {}
        if status == 200:
            self._delay = RETRY_INITIAL_S
            return ("cancel" if body.get("cancel") else "message"), body
        if status == 204:
            self._delay = RETRY_INITIAL_S
            return "none", {}
        if status == 410:
            return "gone", {}
        if status == 401:
            return "denied", {}
        time.sleep(random.uniform(self._delay / 2.0, self._delay))  # the server is away: try again later
        self._delay = min(self._delay * 2.0, self.tuning.retry_max_s)
        return "none", {}

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        say(f"session {self.base.job_id}: waiting for messages")
        while not self.stopping:
            kind, body = self.poll()
            if kind == "gone":
                say("the session has ended; exiting")
                return 0
            if kind == "denied":
                say("the server rejected the session token (401); exiting")
                return EXIT_CONFIG
            if kind != "message":
                continue
            job_id, job_token, task = body.get("jobId"), body.get("jobToken"), body.get("task")
            if not (isinstance(job_id, str) and isinstance(job_token, str) and isinstance(task, str)):
                continue
            if job_id in self.seen:
                continue  # an offer repeated before our first report reached the server
            self.seen.add(job_id)
            self.run_message(job_id, job_token, task)
        return EXIT_CANCELLED

    def run_message(self, job_id: str, job_token: str, task: str) -> int:
        env = dict(self.env, JOB_ID=job_id, JOB_TOKEN=job_token, TASK=task)
        connection = Connection(job_id, job_token, self.base.scheme, self.base.host, self.base.port, self.base.prefix)
        artifacts = env.get("OPENDISPATCH_ARTIFACTS_FILE", "").strip() or f".opendispatch-artifacts-{job_id}"
        plan = RunPlan(
            argv=[],
            repo=self.repo if self.workdir is None else None,
            branch=self.branch,
            workspace=self.workspace,
            artifacts_file=os.path.join(self.workspace, artifacts),
            spool_file=os.path.join(self.workspace, f".opendispatch-spool-{job_id}.jsonl"),
        )
        job = Job(connection, self.tuning, plan, env)
        job.install_signals = False
        job.workdir = self.workdir
        job.identity = self.identity
        job.credentials = self.credentials
        job.approvals = self.approvals
        job.conversation = AgentConversation(self.agent, task, self.conversation_id, self.home, owner=self.identity)
        done = threading.Event()
        watcher = threading.Thread(target=self._watch_cancel, args=(job, done), name="cancel-watch", daemon=True)
        self.current = job
        watcher.start()
        try:
            code = job.run()
        finally:
            self.current = None
            done.set()
        self.workdir = job.workdir
        if job.conversation is not None:
            self.conversation_id = job.conversation.conversation_id  # the id the agent reported
        for leftover in (plan.spool_file, plan.artifacts_file):
            try:
                os.unlink(leftover)
            except OSError:
                pass
        return code

    def _watch_cancel(self, job: Job, done: threading.Event) -> None:
        """`/od-cancel`, a timeout or `/od-stop` end the message on the server: stop the agent."""
        while not done.is_set():
            kind, _ = self.poll(running=job.connection.job_id)
            if done.is_set():
                return
            if kind == "cancel":
                job.cancel._on_signal(signal.SIGTERM, None)
                return
            if kind in ("gone", "denied"):
                self.stopping = kind == "gone"
                job.cancel._on_signal(signal.SIGTERM, None)
                return
