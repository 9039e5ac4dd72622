"""Approvals: tool calls the channel's policy names wait for a person's decision.

With OPENDISPATCH_APPROVALS (approval_policy.py) set to `ask-all` or `ask RULE...`:

Claude Code runs as before (`--dangerously-skip-permissions`: the sprite stays the boundary
for every call the policy does not name), plus a PreToolUse hook for every tool call, given in
`--settings` (`approval_hook.py`, copied to `.od-git/claude-approval-hook`, run as the agent's
user). The hook asks this broker, a thread of the sidecar on a Unix socket in
`.od-git/approvals/` (sockets.py), which answers at once for a call the policy does not name
(the hook then says nothing: the call runs), and for the others asks the dispatcher with the
running job's id and token:
- `POST /webhooks/approval {"jobId", "tool", "input", "askId"}` (askId: the same for every
  try of one ask) -> 200 `{"requestId", "decision",
  "message"}`, `decision` approve, deny or pending;
- while pending, `GET /webhooks/approval?jobId=J&requestId=R&waitS=25` (a long poll, again
  and again) -> the same, with `by` once a person decided;
- network errors and 5xx are retried with backoff; 401, 404, 409 (and any other refusal)
  deny, saying why; no decision within OPENDISPATCH_APPROVAL_TIMEOUT_S (600) + 60 s denies.
Approved, the hook allows the call; denied, it denies it with the dispatcher's message, which
Claude Code hands to the model as the tool's result, and the model goes on.

`--setting-sources user` keeps the repository's own `.claude/settings.json` and
`settings.local.json` from being read (the repository is not trusted: its hooks could rewrite
a call after ours allowed it, or `disableAllHooks` switch ours off); it also leaves out the
repository's CLAUDE.md. `"disableAllHooks": false` in our settings wins over the agent user's own.

OpenCode cannot ask (`opencode run` rejects what it would ask about): the calls the policy
names are denied through OPENCODE_PERMISSION (merged last into its configuration), and
OPENCODE_DISABLE_PROJECT_CONFIG keeps the repository's opencode.json and .opencode/ (which
could allow them again) from being read; it also leaves out the repository's AGENTS.md. The
job's output says so in one line. The shell agent makes no tool calls: nothing changes.
"""

import http.client
import json
import select
import shlex
import socket
import time
import urllib.parse
import uuid
from typing import Callable, Dict, List, Optional

from .approval_policy import Policy, PolicyError, main_argument_key, opencode_permission, parse_policy
from .config import ConfigError, Connection, _number
from .http import http_json
from .privileges import AgentIdentity
from .sockets import SocketService, open_broker

APPROVALS_ENV = "OPENDISPATCH_APPROVALS"
TIMEOUT_ENV = "OPENDISPATCH_APPROVAL_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 600.0
GIVE_UP_AFTER_S = 60.0  # past the person's time: the dispatcher has denied by then
HOOK_WAITS_LONGER_S = 30.0  # the hook waits for the broker's answer this much longer than it asks
CLAUDE_WAITS_LONGER_S = 90.0  # Claude Code's timeout for the hook (a hook timed out lets the call run)
APPROVAL_PATH = "/webhooks/approval"
POLL_WAIT_S = 25.0
RETRY_INITIAL_S = 0.2
RETRY_MAX_S = 5.0
HOOK_NAME = "claude-approval-hook"
SOCKETS = "approvals"  # the socket's folder, in .od-git/
MAX_ANSWERING = 32  # calls waiting at once (Claude Code runs some tools in parallel)
MAX_REQUEST_BYTES = 64 * 1024 * 1024  # a Write's content travels with its call
REQUEST_TIMEOUT_S = 10.0
MAX_SENT_CHARS = 4000  # an input's other values, as sent to the dispatcher (it shows the main one)
MAX_MAIN_CHARS = 256 * 1024  # a longer command or path is not sent: it is denied here
OPENCODE_NOTE = "[sidecar] OpenCode cannot ask for approval: calls matching the channel's rules are denied ({policy})"


def load_approvals(env: Dict[str, str], workspace: str, http_timeout_s: float) -> "Optional[ApprovalBroker]":
    """The broker the channel's policy asks for (not started yet), or None when it is off."""
    try:
        policy = parse_policy(env.get(APPROVALS_ENV, ""))
    except PolicyError as exc:
        raise ConfigError(APPROVALS_ENV, f"{APPROVALS_ENV} is not a policy the sidecar knows: {exc}") from None
    timeout_s = _number(env, TIMEOUT_ENV, DEFAULT_TIMEOUT_S, 1)
    if policy is None:
        return None
    return ApprovalBroker(policy, workspace, timeout_s, http_timeout_s)


def hook_command(python: str, hook: str, socket_path: str, wait_s: float) -> str:
    """The hook's command line; Claude Code runs it through sh, so every word is quoted.

    A hook that fails lets the call run, so one whose python cannot start exits 2 (block).
    """
    words = " ".join(shlex.quote(word) for word in (python, "-I", hook, socket_path, f"{wait_s:g}"))
    return words + " || { echo 'the approval hook could not run, so the call was not run' >&2; exit 2; }"


class Decision:
    def __init__(self, allow: bool, reason: str, asked: bool) -> None:
        self.allow = allow
        self.reason = reason
        self.asked = asked  # False: the policy does not name the call

    def wire(self) -> Dict[str, object]:
        return {"decision": "allow" if self.allow else "deny", "reason": self.reason, "asked": self.asked}

    def __repr__(self) -> str:
        return f"Decision(allow={self.allow}, asked={self.asked}, reason={self.reason!r})"


def _deny(reason: str) -> Decision:
    return Decision(False, reason, True)


class ApprovalBroker:
    """Asks the dispatcher about the running job's tool calls that the policy names."""

    def __init__(
        self,
        policy: Policy,
        workspace: str,
        timeout_s: float,
        http_timeout_s: float,
        retry_max_s: float = RETRY_MAX_S,
        poll_wait_s: float = POLL_WAIT_S,
        grace_s: float = GIVE_UP_AFTER_S,
    ) -> None:
        self.policy = policy
        self.workspace = workspace
        self.timeout_s = timeout_s
        self.give_up_s = timeout_s + grace_s  # then no decision will come: the dispatcher denied already
        self.http_timeout_s = http_timeout_s
        self.retry_max_s = retry_max_s
        self.poll_wait_s = poll_wait_s
        self.folder = ""
        self.hook_command = ""  # once started
        self._connection = None  # type: Optional[Connection]
        self._service = SocketService("approvals", MAX_ANSWERING)

    # ---- the job it asks for ----

    def attach(self, connection: Optional[Connection]) -> None:
        """The job to ask for from now on (None: none is running, every named call is denied)."""
        self._connection = connection

    # ---- what each agent is given ----

    def claude_settings(self) -> str:
        hook = {"type": "command", "command": self.hook_command, "timeout": int(self.give_up_s + CLAUDE_WAITS_LONGER_S)}
        settings = {"disableAllHooks": False, "hooks": {"PreToolUse": [{"matcher": "*", "hooks": [hook]}]}}
        return json.dumps(settings, separators=(",", ":"))

    def claude_argv(self, argv: List[str]) -> List[str]:
        """Claude Code's command line with our hook, before the `--` that precedes the task."""
        flags = ["--setting-sources", "user", "--settings", self.claude_settings()]
        at = argv.index("--") if "--" in argv else len(argv)
        return argv[:at] + flags + argv[at:]

    def opencode_env(self, workdir: str) -> Dict[str, str]:
        return {
            "OPENCODE_PERMISSION": json.dumps(opencode_permission(self.policy, workdir), separators=(",", ":")),
            "OPENCODE_DISABLE_PROJECT_CONFIG": "1",
        }

    def opencode_note(self) -> str:
        return OPENCODE_NOTE.format(policy=self.policy)

    # ---- the socket and the hook ----

    @property
    def started(self) -> bool:
        return self._service.started

    def start(self, owner: AgentIdentity) -> None:
        """Write the hook, open the socket for the sidecar and `owner`, answer in threads (once)."""
        if self._service.started:
            return
        opened = open_broker(self.workspace, SOCKETS, owner, HOOK_NAME, "approval_hook.py")
        self.folder = opened.folder
        self.hook_command = hook_command(
            opened.python, opened.program, opened.socket_path, self.give_up_s + HOOK_WAITS_LONGER_S
        )
        self._service.start(opened.listener, self._answer_one)

    def close(self) -> None:
        self._service.close()

    def _answer_one(self, conn: socket.socket) -> None:
        conn.settimeout(REQUEST_TIMEOUT_S)
        request = b""
        while b"\n" not in request:
            if len(request) > MAX_REQUEST_BYTES:
                conn.sendall(_line(_deny("the tool call is too large to ask a person about")))
                return
            chunk = conn.recv(65536)
            if not chunk:
                break
            request += chunk
        try:
            call = json.loads(request.decode("utf-8", "replace"))
        except ValueError:
            call = None
        tool = call.get("tool") if isinstance(call, dict) else None
        arguments = call.get("input") if isinstance(call, dict) else None
        if not isinstance(tool, str) or not tool:
            conn.sendall(_line(_deny("the approval hook sent no tool call")))
            return
        conn.settimeout(None)
        answer = self.decide(tool, arguments if isinstance(arguments, dict) else {}, gone=lambda: _hung_up(conn))
        conn.sendall(_line(answer))

    # ---- deciding ----

    def decide(self, tool: str, arguments: Dict[str, object], gone: Callable[[], bool] = lambda: False) -> Decision:
        """Allowed at once when the policy does not name the call; otherwise what a person decided.

        `gone`: whether whoever asked went away (the hook was killed): then nobody is asked any more.
        """
        rule = self.policy.needs_approval(tool, arguments)
        if rule is None:
            return Decision(True, "", False)
        connection = self._connection
        if connection is None:
            return _deny("no job is running in this sprite, so no one can approve the call")
        sent = _sendable(arguments)
        if sent is None:
            return _deny("the call's command or path is too long to ask a person about")
        deadline = time.monotonic() + self.give_up_s
        asking = _Asking(self, connection, deadline, gone)
        # askId: the same when the POST is sent again (its answer lost to a dispatcher's crash),
        # so the dispatcher finds the request this ask made instead of making a second one.
        body = {
            "jobId": connection.job_id,
            "tool": tool,
            "input": sent,
            "askId": uuid.uuid4().hex,
        }  # type: Dict[str, object]
        outcome = asking.call("POST", APPROVAL_PATH, body, self.http_timeout_s)
        while isinstance(outcome, str):  # a request id: pending
            wait_s = min(self.poll_wait_s, deadline - time.monotonic())
            if wait_s <= 0:
                break
            query = urllib.parse.urlencode({"jobId": connection.job_id, "requestId": outcome, "waitS": f"{wait_s:.3g}"})
            asked_at = time.monotonic()
            outcome = asking.call("GET", f"{APPROVAL_PATH}?{query}", None, wait_s + self.http_timeout_s, outcome)
            if isinstance(outcome, str) and time.monotonic() - asked_at < wait_s / 2:
                asking.pause()  # "pending" long before the wait it was asked for: do not ask in a tight loop
            else:
                asking.delay = RETRY_INITIAL_S
        if isinstance(outcome, Decision):
            return outcome
        return _deny(f"no approval decision arrived within {self.give_up_s:g} seconds, so the call was not run")


class _Asking:
    """One call's requests to the dispatcher, retried until its deadline."""

    def __init__(self, broker: ApprovalBroker, connection: Connection, deadline: float, gone: Callable[[], bool]) -> None:
        self.broker = broker
        self.connection = connection
        self.deadline = deadline
        self.gone = gone
        self.delay = RETRY_INITIAL_S

    def over(self) -> bool:
        """The deadline passed, the hook went away or the job ended: stop asking."""
        return time.monotonic() >= self.deadline or self.broker._connection is not self.connection or self.gone()

    def call(
        self, method: str, path: str, body: Optional[Dict[str, object]], timeout_s: float, request_id: Optional[str] = None
    ) -> "Optional[object]":
        """A Decision, a request id (pending), or None (gave up)."""
        while not self.over():
            try:
                status, answer = http_json(self.connection, method, path, timeout_s, body)
            except (OSError, http.client.HTTPException):
                status, answer = 0, {}
            outcome = _outcome(status, answer, request_id)
            if outcome is not None:
                return outcome
            self.pause()
        return None

    def pause(self) -> None:
        """Back off before trying again (a little at a time: the hook may go away meanwhile)."""
        until = min(time.monotonic() + self.delay, self.deadline)
        self.delay = min(self.delay * 2.0, self.broker.retry_max_s)
        while time.monotonic() < until and not self.over():
            time.sleep(min(0.2, max(0.0, until - time.monotonic())))


def _outcome(status: int, answer: Dict[str, object], request_id: Optional[str]) -> "Optional[object]":
    """What one answer of the dispatcher means: a Decision, a request id (pending), or None (retry)."""
    said = answer.get("error") or answer.get("message")
    said = " ".join(said.split()) if isinstance(said, str) else ""
    if status == 200:
        decision = answer.get("decision")
        message = answer.get("message")
        message = " ".join(message.split()) if isinstance(message, str) else ""
        if decision == "approve":
            return Decision(True, message or "approved", True)
        if decision == "deny":
            return _deny(message or "denied")
        pending = answer.get("requestId")
        if decision == "pending" and isinstance(pending, str) and pending:
            return pending
        if decision == "pending" and request_id:
            return request_id
        return _deny("the dispatcher's answer to the approval request was not understood, so the call was not run")
    if status == 0 or status >= 500 or status in (408, 429):
        return None  # not reached, or busy: again, after a while
    if status == 401:
        return _deny("the dispatcher refused this job's token when asked for approval (401), so the call was not run")
    if status == 404:
        what = f"the dispatcher does not know the approval request {request_id}" if request_id else (
            "the dispatcher takes no approval requests for this job"
        )
        return _deny(f"{said or what} (404), so the call was not run")
    if status == 409:
        return _deny(f"{said or 'the job is over: the dispatcher takes no more approval requests for it'} (409)")
    return _deny(f"the dispatcher refused the approval request ({status}{': ' + said if said else ''}), so the call was not run")


def _sendable(arguments: Dict[str, object]) -> Optional[Dict[str, object]]:
    """The call's input as sent to the dispatcher: its main argument whole, long other values cut.

    None when the main argument itself is too long to send (the call is denied).
    """
    main = main_argument_key(arguments)
    sent = {}  # type: Dict[str, object]
    for key, value in arguments.items():
        if key == main:
            if len(str(value)) > MAX_MAIN_CHARS:
                return None
            sent[key] = value
        elif isinstance(value, str):
            sent[key] = value if len(value) <= MAX_SENT_CHARS else f"{value[:MAX_SENT_CHARS]}… ({len(value)} characters)"
        elif isinstance(value, (bool, int, float)) or value is None:
            sent[key] = value
        else:
            encoded = json.dumps(value, ensure_ascii=False)
            sent[key] = value if len(encoded) <= MAX_SENT_CHARS else f"({len(encoded)} characters of JSON, not sent)"
    return sent


def _line(decision: Decision) -> bytes:
    return json.dumps(decision.wire(), ensure_ascii=False).encode("utf-8") + b"\n"


def _hung_up(conn: socket.socket) -> bool:
    """Whether the hook closed its end (it was killed, or Claude Code gave up on it)."""
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        if not readable:
            return False
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True

