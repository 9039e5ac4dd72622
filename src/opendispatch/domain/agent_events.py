"""The agent event vocabulary (wire version 1): what an agent did, independent of which agent.

The sidecar translates each CLI's own JSON output (Claude Code's stream-json, OpenCode's
`--format json`) into these few kinds, so everything after it (the live message, the card,
cost caps, usage sums) is written once. `docs/agents.md` is the contract; the webhook adapter
builds these values from request bodies and drops what it does not know, because a newer
sidecar may send more than this server understands, and an event must never break a job.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import attrs

WIRE_VERSION = 1
#: One line of the agent's prose or a tool's summary never needs more than this in chat.
MAX_SUMMARY_CHARS = 200
MAX_EXCERPT_CHARS = 600


class ErrorKind(enum.Enum):
    """Why an agent's run failed, by its own account (or `crash`: it gave none)."""

    AUTH = "auth"
    RATE_LIMIT = "rate_limit"
    OVERLOADED = "overloaded"
    MAX_TURNS = "max_turns"
    BUDGET = "budget"
    AGENT_ERROR = "agent_error"
    CRASH = "crash"

    @classmethod
    def from_wire(cls, text: object) -> ErrorKind | None:
        if text is None or text == "":
            return None
        try:
            return cls(text)
        except ValueError:
            return cls.AGENT_ERROR


@attrs.frozen
class AgentStarted:
    agent: str = ""
    model: str = ""
    session_id: str = ""


@attrs.frozen
class AgentText:
    text: str


@attrs.frozen
class ToolStarted:
    id: str
    tool: str
    summary: str = ""


@attrs.frozen
class ToolFinished:
    id: str
    tool: str
    summary: str = ""
    ok: bool = True
    excerpt: str = ""


class PlanStatus(enum.Enum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


@attrs.frozen
class PlanItem:
    text: str
    status: PlanStatus = PlanStatus.PENDING


@attrs.frozen
class PlanUpdated:
    items: tuple[PlanItem, ...]


@attrs.frozen
class UsageReported:
    """Running totals for the whole run so far (not deltas); `cost_usd` when the agent knows it."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    final: bool = False


@attrs.frozen
class FileChange:
    path: str
    added: int = 0
    removed: int = 0


@attrs.frozen
class FilesChanged:
    files: tuple[FileChange, ...]
    summary: str = ""


@attrs.frozen
class AgentFinished:
    """How the agent's run ended, by its own account."""

    ok: bool
    answer: str = ""
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    turns: int | None = None
    model: str = ""
    session_id: str = ""
    error_kind: ErrorKind | None = None
    error: str = ""


AgentEvent = (
    AgentStarted
    | AgentText
    | ToolStarted
    | ToolFinished
    | PlanUpdated
    | UsageReported
    | FilesChanged
    | AgentFinished
)


def one_line(text: str, limit: int = MAX_SUMMARY_CHARS) -> str:
    """The first non-empty line of `text`, cut to `limit` characters with an ellipsis."""
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


def step_label(tool: str, summary: str) -> str:
    """`Bash: npm test`, `Edit: src/app.py`, or just the tool when there is nothing to add."""
    return f"{tool}: {summary}" if summary else tool


def describe(event: AgentEvent) -> str | None:
    """The event as one line of the job's stored output (`/od-logs`), or None to store nothing.

    The live message and the card are built from the events themselves; these lines are what
    a reader of the log sees, in the order things happened.
    """
    if isinstance(event, AgentText):
        return event.text
    if isinstance(event, ToolStarted):
        return f"▶ {step_label(event.tool, event.summary)}"
    if isinstance(event, ToolFinished):
        mark = "✓" if event.ok else "✗"
        line = f"{mark} {step_label(event.tool, event.summary)}"
        if not event.ok and event.excerpt:
            line += f" — {one_line(event.excerpt)}"
        return line
    if isinstance(event, PlanUpdated):
        done = sum(1 for item in event.items if item.status is PlanStatus.COMPLETED)
        return f"☰ plan: {done}/{len(event.items)} done"
    if isinstance(event, FilesChanged):
        return f"± {event.summary}" if event.summary else None
    if isinstance(event, AgentStarted):
        model = f" ({event.model})" if event.model else ""
        return f"[agent] {event.agent or 'agent'} started{model}"
    if isinstance(event, AgentFinished):
        return None  # its answer was already a text event; the card shows the rest
    return None  # usage: the card and the live header carry it


def map_strings(event: AgentEvent, change: Callable[[str], str]) -> AgentEvent:
    """The event with `change` applied to every string in it (redaction: nothing escapes it).

    Generic over the fields, so a field added to the vocabulary cannot be forgotten here; which
    fields hold strings is worked out once per class (a walk through attrs' field list for every
    event cost ~5 % of the server at a thousand agents, docs/performance.md round 9).
    """
    mapped = _map(event, change)
    assert isinstance(mapped, type(event))
    return mapped


def _map(value: object, change: Callable[[str], str]) -> object:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, tuple):
        return tuple(_map(item, change) for item in value)
    names = _TEXT_FIELDS.get(type(value))
    if names is None:
        names = _TEXT_FIELDS[type(value)] = _text_fields(type(value))
    if not names:
        return value
    updates = {}
    for name in names:
        current = getattr(value, name)
        mapped = _map(current, change)
        if mapped != current:
            updates[name] = mapped
    return attrs.evolve(value, **updates) if updates else value  # type: ignore[misc]


#: attrs class -> the names of its fields that may hold strings (strings, tuples, nested values).
_TEXT_FIELDS: dict[type, tuple[str, ...]] = {}


def _text_fields(cls: type) -> tuple[str, ...]:
    if not attrs.has(cls):
        return ()
    return tuple(
        field.name
        for field in attrs.fields(cls)
        if not (isinstance(field.type, str) and field.type in ("int", "bool", "float", "int | None", "float | None"))
        and field.type not in (int, bool, float)
    )
