"""What a sidecar tells us, and what we hand a sidecar, independent of HTTP.

The webhook adapter structures request bodies into these values; the Relay applies them.
The environment handed to a sprite is built here so every backend (local, Fly) agrees on it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

from .agent_events import AgentEvent, describe
from .job import Artifact, Job


class ReportedStatus(enum.Enum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@attrs.frozen
class LogBatch:
    job_id: str
    lines: tuple[str, ...]
    seq: int | None = None
    #: The agent's translated events (docs/agents.md), after `lines`; () from plain sidecars.
    events: tuple[AgentEvent, ...] = ()

    def stored_lines(self) -> tuple[str, ...]:
        """What the job's log keeps of this batch: its lines, then each event as a line."""
        if not self.events:
            return self.lines
        lines = list(self.lines)
        for event in self.events:
            text = describe(event)
            if text is not None:
                lines.extend(text.replace("\r\n", "\n").split("\n"))
        return tuple(lines)

    @classmethod
    def from_text(cls, job_id: str, text: str, seq: int | None = None) -> LogBatch:
        """The seed's `{jobId, text}`: a chunk that may hold several lines.

        One trailing newline ends the last line rather than adding an empty one, while an
        empty `text` is a real blank line (the original server dropped it).
        """
        body = text[:-1] if text.endswith("\n") else text
        return cls(job_id=job_id, lines=tuple(body.replace("\r\n", "\n").split("\n")), seq=seq)


@attrs.frozen
class StatusReport:
    job_id: str
    status: ReportedStatus
    exit_code: int | None = None
    error: str = ""
    stage: str | None = None


@attrs.frozen
class TranscriptPart:
    """One part of a job's raw agent transcript (the CLI's own JSON lines), kept for `--raw`."""

    job_id: str
    part: int
    lines: tuple[str, ...]


@attrs.frozen
class ArtifactReport:
    job_id: str
    artifacts: tuple[Artifact, ...]


@attrs.frozen
class ArtifactFile:
    """A file the job named as an artifact, copied out of the sprite before it is deleted."""

    job_id: str
    name: str
    #: Where it was in the sprite (the artifact's target, as the artifacts report names it).
    path: str
    content: bytes = attrs.field(repr=lambda content: f"<{len(content)} bytes>")


PASSTHROUGH_SECRETS = ("GH_TOKEN", "ANTHROPIC_API_KEY", "DATABASE_URL")

#: Passed-through agent settings that are not secrets (a model's name, a switch): every other
#: variable of `OPENDISPATCH_PASSTHROUGH_ENV` is treated as one and redacted, but redacting
#: `claude-sonnet-4-5` from every card would only hide what the card is for.
PUBLIC_SETTINGS = ("ANTHROPIC_MODEL", "ANTHROPIC_SMALL_FAST_MODEL", "ANTHROPIC_BASE_URL")
PUBLIC_SETTING_PREFIXES = ("DISABLE_", "CLAUDE_CODE_", "OPENCODE_DISABLE_")

#: Names (never values) of the variables the sidecar must redact besides its own list: every
#: passed-through secret, the operator's extra ones included.
SECRET_NAMES_ENV = "OPENDISPATCH_SECRET_NAMES"


def is_public_setting(name: str) -> bool:
    return name in PUBLIC_SETTINGS or name.startswith(PUBLIC_SETTING_PREFIXES)


#: The agent's model (`--model`): the sidecar passes it to each agent its own way.
MODEL_ENV = "AGENT_MODEL"
#: Which tool calls wait for a person (approvals.py's policy text) and for how long.
APPROVALS_ENV = "OPENDISPATCH_APPROVALS"
APPROVAL_TIMEOUT_ENV = "OPENDISPATCH_APPROVAL_TIMEOUT_S"


def sprite_environment(
    job: Job, *, token: str, callback_url: str, passthrough: Mapping[str, str]
) -> dict[str, str]:
    """The seed's "injected automatically" table, plus `AGENT` and `TASK` for our sidecar.

    `COMMAND` names the agent program only (never user text) so an old sidecar that
    validates it still starts; the task travels alone in `TASK` and becomes one argv element.
    """
    env = {
        "JOB_ID": job.id,
        "JOB_TOKEN": token,
        "OPEN_DISPATCH_URL": callback_url.rstrip("/"),
        "AGENT": job.spec.agent.value,
        "COMMAND": job.spec.agent.value,
        "TASK": job.spec.task,
        "BRANCH": job.spec.branch,
    }
    if job.spec.repo:
        env["REPO"] = job.spec.repo
    if job.spec.max_cost_usd is not None:
        env["MAX_COST_USD"] = f"{job.spec.max_cost_usd:g}"  # Claude Code's own budget flag
    if job.spec.model is not None:
        env[MODEL_ENV] = job.spec.model
    if job.spec.approvals is not None:
        env[APPROVALS_ENV] = job.spec.approvals
        env[APPROVAL_TIMEOUT_ENV] = f"{job.spec.approval_timeout_s:g}"
    env.update(_passed_through(passthrough))
    return env


def _passed_through(passthrough: Mapping[str, str]) -> dict[str, str]:
    """The operator's variables for the agent, plus the names of those the sidecar must redact."""
    given = {name: value for name, value in passthrough.items() if value}
    secret_names = sorted(name for name in given if not is_public_setting(name))
    if secret_names:
        given[SECRET_NAMES_ENV] = ",".join(secret_names)
    return given


#: `OPENDISPATCH_SESSION_MODE` values the sidecar understands.
SESSION_MODE_PERSISTENT = "persistent"  # one sprite for the session: long-poll for each message
SESSION_MODE_HANDOVER = "handover"  # one sprite per message: restore, then hand back, the agent's state


def session_job_environment(session_id: str, agent_session_id: str) -> dict[str, str]:
    """What a non-persistent session's message adds to `sprite_environment`.

    The sidecar fetches the agent's saved conversation before the agent runs, continues it
    (`AGENT_SESSION_ID`), and hands the new state back before its final status.
    """
    return {
        "OPENDISPATCH_SESSION_MODE": SESSION_MODE_HANDOVER,
        "SESSION_ID": session_id,
        "AGENT_SESSION_ID": agent_session_id,
    }


def session_sprite_environment(
    *,
    session_id: str,
    token: str,
    agent: str,
    agent_session_id: str,
    repo: str | None,
    branch: str,
    callback_url: str,
    passthrough: Mapping[str, str],
    max_cost_usd: float | None = None,
    model: str | None = None,
    approvals: str | None = None,
    approval_timeout_s: float = 600.0,
) -> dict[str, str]:
    """A persistent session's sprite: no job yet; it asks for each message with `SESSION_TOKEN`.

    `max_cost_usd` (the session's `--max-cost`, per message) becomes Claude Code's own budget.
    """
    env = {
        "OPENDISPATCH_SESSION_MODE": SESSION_MODE_PERSISTENT,
        "SESSION_ID": session_id,
        "SESSION_TOKEN": token,
        "OPEN_DISPATCH_URL": callback_url.rstrip("/"),
        "AGENT": agent,
        "COMMAND": agent,
        "AGENT_SESSION_ID": agent_session_id,
        "BRANCH": branch,
    }
    if repo:
        env["REPO"] = repo
    if max_cost_usd is not None:
        env["MAX_COST_USD"] = f"{max_cost_usd:g}"
    if model is not None:
        env[MODEL_ENV] = model
    if approvals is not None:
        env[APPROVALS_ENV] = approvals
        env[APPROVAL_TIMEOUT_ENV] = f"{approval_timeout_s:g}"
    env.update(_passed_through(passthrough))
    return env
