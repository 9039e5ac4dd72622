"""The job's repository credentials, from the dispatcher, handed to git by a credential helper.

With OPENDISPATCH_GIT_CREDENTIALS=<server url> (the dispatcher's GitHub App mode) the
dispatcher mints a short-lived token for the job's repository alone. The sidecar never puts
it in a URL, an argv, its own environment, git's configuration or a log line:
- a credential broker (a thread of the sidecar) serves a Unix socket in a private folder of
  the workspace, `.od-git/broker/` (0700, the socket 0600, both the agent user's when the agent
  runs as one: root, the sidecar, reaches it anyway). Asked, it answers the token it holds,
  fetching a new one from `POST /webhooks/credentials` with the running job's id and token
  when it has none or the one it has expires within OPENDISPATCH_CREDENTIAL_RENEW_S (300) s,
  so a job longer than a token's hour keeps working. No job running (a persistent session
  between messages): it answers nothing. Every token it fetches is redacted from the output;
- git asks it through `credential_helper.py`, copied to `.od-git/git-credential-opendispatch`
  (root's, 0755, in a folder only root may write) and named, with the interpreter running
  the sidecar and the socket, in `credential.<server>.helper`: for the clone on git's command
  line, then in the clone's own configuration, so the agent's `git fetch`/`git push` use it.
"""

import http.client
import shlex
import socket
import threading
import time
import urllib.parse
from typing import Dict, List, Optional, Tuple

from .config import ConfigError, Connection, _number
from .http import http_json
from .privileges import AgentIdentity
from .redact import Redactor
from .sockets import SocketService, open_broker

SERVER_ENV = "OPENDISPATCH_GIT_CREDENTIALS"
RENEW_ENV = "OPENDISPATCH_CREDENTIAL_RENEW_S"
DEFAULT_RENEW_S = 300.0
CREDENTIALS_PATH = "/webhooks/credentials"
HELPER_NAME = "git-credential-opendispatch"  # in the workspace's .od-git/ (sockets.py)
SOCKETS = "broker"  # the socket's folder, in .od-git/
FETCH_TRIES = 3
FETCH_RETRY_S = 0.3
MAX_REQUEST_BYTES = 16 * 1024
REQUEST_TIMEOUT_S = 5.0
MAX_ANSWERING = 16  # connections answered at once; more wait in the socket's backlog
TOKEN_USERNAME = "x-access-token"
DEFAULT_PORTS = {"http": 80, "https": 443}


class Credential:
    """One token from the dispatcher; `repr` never shows it."""

    def __init__(self, job_id: str, username: str, password: str, expires_at: Optional[float]) -> None:
        self.job_id = job_id
        self.username = username
        self.password = password
        self.expires_at = expires_at  # unix time; None: unknown, so never reused

    def fresh(self, now: float, margin_s: float) -> bool:
        return self.expires_at is not None and self.expires_at - now > margin_s

    def __repr__(self) -> str:
        return f"Credential(job_id={self.job_id!r}, expires_at={self.expires_at!r})"


def _origin(url: str) -> Optional[Tuple[str, str, int]]:
    """(scheme, host, port) of an http(s) URL, lower-cased, the port made explicit."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def load_git_credentials(env: Dict[str, str], workspace: str, timeout_s: float) -> "Optional[CredentialBroker]":
    """The broker OPENDISPATCH_GIT_CREDENTIALS asks for (not started yet), or None without it."""
    server = env.get(SERVER_ENV, "").strip().rstrip("/")
    if not server:
        return None
    parts = urllib.parse.urlsplit(server)
    if _origin(server) is None or parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise ConfigError(
            SERVER_ENV,
            f"{SERVER_ENV} must be the git server's base URL, such as https://github.com, not {server!r}",
        )
    renew_s = _number(env, RENEW_ENV, DEFAULT_RENEW_S, 0)
    return CredentialBroker(server, workspace, renew_s, timeout_s)


def helper_command(python: str, helper: str, socket_path: str) -> str:
    """`credential.<server>.helper`'s value: git runs it through sh, so every word is quoted."""
    return " ".join(shlex.quote(word) for word in (python, "-I", helper, socket_path))


class CredentialBroker:
    """Holds the running job's repository token and answers git's credential helper for it."""

    def __init__(self, server: str, workspace: str, renew_s: float, timeout_s: float) -> None:
        self.server = server
        self.workspace = workspace
        self.renew_s = renew_s
        self.timeout_s = timeout_s
        self.helper_config = ""  # credential.<server>.helper's value, once started
        self.folder = ""
        self._origin = _origin(server)
        self._lock = threading.Lock()
        self._connection = None  # type: Optional[Connection]
        self._redactors = []  # type: List[Redactor]
        self._held = None  # type: Optional[Credential]
        self._fetched = []  # type: List[str]  # every token handed out: redacted in later messages too
        self._service = SocketService("git-credentials", MAX_ANSWERING)

    # ---- which URLs it serves ----

    def serves(self, url: str) -> bool:
        """Whether git fetches `url` from our server (same scheme, host and port, under its path)."""
        if _origin(url) != self._origin:
            return False
        prefix = urllib.parse.urlsplit(self.server).path.rstrip("/")
        return urllib.parse.urlsplit(url).path.startswith(prefix + "/")

    def git_config(self) -> List[Tuple[str, str]]:
        """(key, value) pairs, in order: clear other helpers for our server, then name ours."""
        key = f"credential.{self.server}.helper"
        return [(key, ""), (key, self.helper_config)]

    # ---- the job it answers for ----

    def attach(self, connection: Optional[Connection], redactor: Optional[Redactor]) -> None:
        """The job whose token to fetch from now on (None: none is running, answer nothing)."""
        with self._lock:
            self._connection = connection
            if self._held is not None and (connection is None or self._held.job_id != connection.job_id):
                self._held = None
            self._redactors = [redactor] if redactor is not None else []
            for token in self._fetched:
                for one in self._redactors:
                    one.add(token)

    def credential(self) -> Tuple[Optional[Credential], str]:
        """(the running job's token, "") or (None, why not): the held one, or a new one when due."""
        with self._lock:
            connection = self._connection
            if connection is None:
                return None, "no job is running in this sprite"
            held = self._held
            now = time.time()
            if held is not None and held.fresh(now, self.renew_s):
                return held, ""
            fetched, error = self._fetch(connection)
            if fetched is None:
                if held is not None and held.expires_at is not None and held.expires_at > now:
                    return held, ""  # the dispatcher is away: the one we have still works for a while
                return None, error
            self._fetched.append(fetched.password)
            for redactor in self._redactors:
                redactor.add(fetched.password)
            self._held = fetched
            return fetched, ""

    def _fetch(self, connection: Connection) -> Tuple[Optional[Credential], str]:
        body = {"jobId": connection.job_id}  # type: Dict[str, object]
        error = "the dispatcher could not be reached for the repository's credentials"
        for attempt in range(FETCH_TRIES):
            if attempt:
                time.sleep(FETCH_RETRY_S * attempt)
            try:
                status, answer = http_json(connection, "POST", CREDENTIALS_PATH, self.timeout_s, body)
            except (OSError, http.client.HTTPException):
                continue
            said = answer.get("error")
            said = said.strip() if isinstance(said, str) else ""
            if status == 200:
                return self._credential_from(connection.job_id, answer)
            if status == 401:
                return None, "the dispatcher refused this job's token for the repository's credentials (401)"
            if status == 404:
                return None, said or "the dispatcher has no repository credentials for this job"
            if status == 409:
                return None, said or "the job is over: the dispatcher hands out no more credentials for it"
            if said and (status < 500 or status == 502):
                return None, said  # the dispatcher's own words (a 502: minting the token failed)
            error = f"the dispatcher answered {status} when asked for the repository's credentials"
        return None, error

    @staticmethod
    def _credential_from(job_id: str, answer: Dict[str, object]) -> Tuple[Optional[Credential], str]:
        username = answer.get("username") or TOKEN_USERNAME
        password = answer.get("password")
        expires_at = answer.get("expiresAt")
        if not (isinstance(username, str) and isinstance(password, str) and password):
            return None, "the dispatcher's credentials answer has no password"
        if any(c in value for value in (username, password) for c in "\r\n\x00"):
            return None, "the dispatcher's credentials answer is malformed"
        when = float(expires_at) if isinstance(expires_at, (int, float)) and not isinstance(expires_at, bool) else None
        return Credential(job_id, username, password, when), ""

    def agent_env(self) -> Tuple[Dict[str, str], str]:
        """GH_TOKEN for the agent's `gh` (a snapshot: only git keeps renewing), or ({}, why not)."""
        held, error = self.credential()
        if held is None:
            return {}, error
        env = {"GH_TOKEN": held.password}
        host = urllib.parse.urlsplit(self.server).hostname or ""
        if host.lower() != "github.com":  # gh reads an Enterprise server's token from this one
            env["GH_ENTERPRISE_TOKEN"] = held.password
        return env, ""

    # ---- the socket and the helper ----

    @property
    def started(self) -> bool:
        return self._service.started

    def start(self, owner: AgentIdentity) -> None:
        """Write the helper, open the socket for the sidecar and `owner`, answer in a thread (once)."""
        if self._service.started:
            return
        opened = open_broker(self.workspace, SOCKETS, owner, HELPER_NAME, "credential_helper.py")
        self.folder = opened.folder
        self.helper_config = helper_command(opened.python, opened.program, opened.socket_path)
        self._service.start(opened.listener, self._answer_one)

    def close(self) -> None:
        """Stop answering (the thread ends); a sidecar never needs to, its tests do."""
        self._service.close()

    def _answer_one(self, conn: socket.socket) -> None:
        conn.settimeout(REQUEST_TIMEOUT_S)
        request = b""
        while b"\n\n" not in request and len(request) < MAX_REQUEST_BYTES:
            chunk = conn.recv(4096)
            if not chunk:
                break
            request += chunk
        if not self._asks_for_us(request.decode("utf-8", "replace")):
            return
        conn.settimeout(None)
        held, error = self.credential()
        if held is not None:
            answer = f"username={held.username}\npassword={held.password}\n"
        else:
            answer = "error=" + " ".join(error.split()) + "\n"
        conn.sendall(answer.encode("utf-8"))

    def _asks_for_us(self, request: str) -> bool:
        """git asks for our server (its protocol and host:port); anything else gets nothing."""
        fields = {}
        for line in request.splitlines():
            name, _, value = line.partition("=")
            fields[name] = value
        protocol, host = fields.get("protocol", ""), fields.get("host", "")
        return bool(protocol and host) and _origin(f"{protocol}://{host}/") == self._origin

