"""The sidecar's configuration: everything comes from the environment, checked up front.

A missing or bad variable is a ConfigError that names the variable and says what to do, so a
misconfigured sprite fails at once with a message a person can act on.
"""

import os
import shlex
import string
import urllib.parse
from typing import Dict, List, Optional

from .agents import AGENTS, agent_argv

DEFAULT_BRANCH = "main"
DEFAULT_BATCH_MS = 100
DEFAULT_BATCH_BYTES = 64 * 1024
DEFAULT_GIVE_UP_S = 900.0
DEFAULT_RETRY_MAX_S = 5.0
DEFAULT_HTTP_TIMEOUT_S = 10.0
RETRY_INITIAL_S = 0.2
#: AGENT_MODEL's rule, the dispatcher's own: ASCII letters, digits and `._:/@-`, at most
#: MAX_AGENT_MODEL_CHARS, never a leading '-' (it goes to the agent's argv after its flag).
AGENT_MODEL_CHARACTERS = frozenset(string.ascii_letters + string.digits + "._:/@-")
MAX_AGENT_MODEL_CHARS = 100


class ConfigError(Exception):
    """A missing or invalid environment variable; the message names it and says what to do."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(message)
        self.variable = variable


class Connection:
    """Where and as whom to report: JOB_ID, JOB_TOKEN and OPEN_DISPATCH_URL."""

    def __init__(self, job_id: str, token: str, scheme: str, host: str, port: int, prefix: str) -> None:
        self.job_id = job_id
        self.token = token
        self.scheme = scheme
        self.host = host
        self.port = port
        self.prefix = prefix

    def __repr__(self) -> str:  # the token never prints
        return f"Connection(job_id={self.job_id!r}, {self.scheme}://{self.host}:{self.port}{self.prefix})"


class Tuning:
    """How the relay batches and retries."""

    def __init__(
        self,
        batch_s: float = DEFAULT_BATCH_MS / 1000.0,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        give_up_s: float = DEFAULT_GIVE_UP_S,
        retry_max_s: float = DEFAULT_RETRY_MAX_S,
        http_timeout_s: float = DEFAULT_HTTP_TIMEOUT_S,
        stream: bool = True,
    ) -> None:
        self.stream = stream
        self.batch_s = batch_s
        self.batch_bytes = batch_bytes
        self.give_up_s = give_up_s
        self.retry_max_s = retry_max_s
        self.http_timeout_s = http_timeout_s


class RunPlan:
    """What to run: the agent argv, and optionally the repository to clone first."""

    def __init__(
        self,
        argv: List[str],
        repo: Optional[str],
        branch: str,
        workspace: str,
        artifacts_file: str,
        spool_file: str,
    ) -> None:
        self.argv = argv
        self.repo = repo
        self.branch = branch
        self.workspace = workspace
        self.artifacts_file = artifacts_file
        self.spool_file = spool_file



def required(env: Dict[str, str], name: str, hint: str) -> str:
    """The variable's value, stripped; a ConfigError naming it (with `hint`) when it is empty."""
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(name, f"{name} is not set; {hint}")
    return value


def load_connection(env: Dict[str, str]) -> Connection:
    job_id = required(env, "JOB_ID", "the dispatcher passes the job's id in JOB_ID")
    token = required(env, "JOB_TOKEN", "the dispatcher passes the job's webhook token in JOB_TOKEN")
    url = required(env, "OPEN_DISPATCH_URL", "set it to the server's base URL, e.g. http://127.0.0.1:8080")
    parts = urllib.parse.urlsplit(url)
    bad = ConfigError(
        "OPEN_DISPATCH_URL",
        "OPEN_DISPATCH_URL must be an http:// or https:// base URL such as http://127.0.0.1:8080",
    )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise bad from None
    return Connection(job_id, token, parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


def _number(env: Dict[str, str], name: str, default: float, minimum: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= minimum or value == float("inf"):
        raise ConfigError(name, f"{name} must be a number >= {minimum:g}, not {text!r}")
    return value


def load_tuning(env: Dict[str, str]) -> Tuning:
    return Tuning(
        batch_s=_number(env, "OPENDISPATCH_BATCH_MS", DEFAULT_BATCH_MS, 1) / 1000.0,
        batch_bytes=int(_number(env, "OPENDISPATCH_BATCH_BYTES", DEFAULT_BATCH_BYTES, 1024)),
        give_up_s=_number(env, "OPENDISPATCH_GIVE_UP_S", DEFAULT_GIVE_UP_S, 0.1),
        retry_max_s=_number(env, "OPENDISPATCH_RETRY_MAX_S", DEFAULT_RETRY_MAX_S, 0.01),
        http_timeout_s=_number(env, "OPENDISPATCH_HTTP_TIMEOUT_S", DEFAULT_HTTP_TIMEOUT_S, 0.1),
        stream=env.get("OPENDISPATCH_STREAM", "1").strip() not in ("0", "false", "no", "off"),
    )



def max_cost_env(env: Dict[str, str]) -> Optional[str]:
    """`MAX_COST_USD` as the dispatcher set it (`--max-cost`), if it is a positive number."""
    text = env.get("MAX_COST_USD", "").strip()
    try:
        return text if float(text) > 0 else None
    except ValueError:
        return None


def agent_model_env(env: Dict[str, str]) -> Optional[str]:
    """`AGENT_MODEL` as the dispatcher set it (`/od-run --model`), or None when it is unset or empty.

    The dispatcher checked it; it is checked again here because it lands in the agent's argv:
    a value that breaks the rule is a ConfigError naming AGENT_MODEL, not an argument.
    """
    value = env.get("AGENT_MODEL", "")
    if not value.strip():
        return None
    if (
        len(value) > MAX_AGENT_MODEL_CHARS
        or value.startswith("-")
        or any(char not in AGENT_MODEL_CHARACTERS for char in value)
    ):
        raise ConfigError(
            "AGENT_MODEL",
            f"AGENT_MODEL must be a model name of letters, digits and ._:/@- (at most "
            f"{MAX_AGENT_MODEL_CHARS} characters, not starting with '-'), not {value[:120]!r}",
        )
    return value


def load_run(env: Dict[str, str]) -> RunPlan:
    agent = env.get("AGENT", "").strip().lower()
    model = agent_model_env(env)  # checked whatever runs: a shell command gets it in its environment
    if agent:
        if agent not in AGENTS:
            raise ConfigError("AGENT", f"AGENT must be one of {', '.join(AGENTS)}, not {agent!r}")
        task = env.get("TASK", "")
        if not task.strip():
            raise ConfigError("TASK", f"TASK is not set; AGENT={agent} needs the task text in TASK")
        argv = agent_argv(agent, task, max_cost_env(env), model)
    else:
        command = env.get("COMMAND", "").strip()
        if not command:
            raise ConfigError("AGENT", "AGENT (with TASK) or COMMAND must be set to say what to run")
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise ConfigError("COMMAND", f"COMMAND could not be split into arguments: {exc}") from None
        if not argv:
            raise ConfigError("COMMAND", "COMMAND is empty")

    workspace = os.path.abspath(os.path.expanduser(env.get("OPENDISPATCH_WORKSPACE", "").strip() or "."))
    try:
        os.makedirs(workspace, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            "OPENDISPATCH_WORKSPACE", f"OPENDISPATCH_WORKSPACE {workspace} is not usable: {exc.strerror}"
        ) from None
    artifacts = env.get("OPENDISPATCH_ARTIFACTS_FILE", "").strip()
    artifacts_file = os.path.join(workspace, os.path.expanduser(artifacts or ".opendispatch-artifacts"))
    return RunPlan(
        argv=argv,
        repo=env.get("REPO", "").strip() or None,
        branch=env.get("BRANCH", "").strip() or DEFAULT_BRANCH,
        workspace=workspace,
        artifacts_file=artifacts_file,
        spool_file=os.path.join(workspace, ".opendispatch-spool.jsonl"),
    )
