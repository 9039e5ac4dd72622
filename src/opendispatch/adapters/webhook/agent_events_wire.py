"""The `events` of a log batch or stream record → domain agent events, leniently.

Lines are the contract's core and a malformed one is a 400; events are an addition that a
newer sidecar may extend (docs/agents.md), so here an event of a type we do not know, or one
whose fields are not what we expect, is dropped and the batch's lines still count. Strings
are cut to sizes chat can use; the agent's full words stay in the raw transcript.

Each event type is an attrs class shaped as on the wire (its attributes are the JSON keys),
structured by this dialect's cattrs converter (`support.wire`, generated hooks, no per-field
bookkeeping: nothing is reported, a problem only drops its event), then made a domain event.
"""

from __future__ import annotations

from typing import Any

import attrs
from cattrs.errors import BaseValidationError

from ...domain.agent_events import (
    MAX_EXCERPT_CHARS,
    MAX_SUMMARY_CHARS,
    AgentEvent,
    AgentFinished,
    AgentStarted,
    AgentText,
    ErrorKind,
    FileChange,
    FilesChanged,
    PlanItem,
    PlanStatus,
    PlanUpdated,
    ToolFinished,
    ToolStarted,
    UsageReported,
)
from ...support.wire import Invalid, hook_for, hooked, make_converter, number, strict_str, whole_number

MAX_EVENTS_PER_BATCH = 10_000
MAX_TEXT_CHARS = 64 * 1024
MAX_ID_CHARS = 200
MAX_ITEMS = 200
MAX_PATH_CHARS = 1024


def agent_events(raw: object) -> tuple[AgentEvent, ...]:
    """The events we understand, in order; None or a non-list gives none."""
    if not isinstance(raw, list):
        return ()
    events: list[AgentEvent] = []
    for item in raw[:MAX_EVENTS_PER_BATCH]:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        cl = _TYPES.get(kind) if isinstance(kind, str) else None
        if cl is None:
            continue
        try:
            events.append(_HOOKS[cl](item, cl).event())
        except (ValueError, TypeError, BaseValidationError):  # support.wire.Invalid is a ValueError
            continue
    return tuple(events)


def _text(limit: int) -> dict[str, Any]:
    """Field metadata: a string, cut to `limit` characters; null means absent ("")."""

    def hook(value: object, _: object) -> str:
        if value is None:
            return ""
        text = strict_str(value)
        return text if len(text) <= limit else text[: limit - 1] + "…"

    return hooked(hook)


def _count(value: object, _: object) -> int | None:
    """A whole number from 0 to 2**53 (`3.0` is 3); null means absent (None)."""
    if value is None:
        return None
    count = whole_number(value)
    if not 0 <= count <= 2**53:
        raise Invalid("must be a count from 0 to 2**53")
    return count


def _cost(value: object, _: object) -> float | None:
    """A finite number of at least 0; null means absent (None)."""
    if value is None:
        return None
    cost = number(value)
    if cost < 0:
        raise Invalid("must be a cost of at least 0")
    return cost


def _plan_status(value: object, _: object) -> PlanStatus:
    """A status we do not know reads as pending."""
    try:
        return PlanStatus(value)
    except (ValueError, TypeError):
        return PlanStatus.PENDING


def _error_kind(value: object, _: object) -> ErrorKind | None:
    return ErrorKind.from_wire(value)


def _entries(value: object, cl: type[Any]) -> tuple[Any, ...]:
    """A list of objects of class `cl`, the first MAX_ITEMS of it; null means none."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise Invalid("must be a list")
    hook = _HOOKS[cl]
    return tuple(hook(entry, cl) for entry in value[:MAX_ITEMS])


_ID = _text(MAX_ID_CHARS)
_SUMMARY = _text(MAX_SUMMARY_CHARS)
_EXCERPT = _text(MAX_EXCERPT_CHARS)
_LONG_TEXT = _text(MAX_TEXT_CHARS)
_COUNT = hooked(_count)
_COST = hooked(_cost)


@attrs.define
class _Init:
    agent: str = attrs.field(default="", metadata=_ID)
    model: str = attrs.field(default="", metadata=_ID)
    sessionId: str = attrs.field(default="", metadata=_ID)

    def event(self) -> AgentEvent:
        return AgentStarted(
            agent=self.agent,
            model=self.model,
            session_id=self.sessionId,
        )


@attrs.define
class _Text:
    text: str = attrs.field(default="", metadata=_LONG_TEXT)

    def event(self) -> AgentEvent:
        return AgentText(self.text)


@attrs.define
class _ToolStart:
    id: str = attrs.field(default="", metadata=_ID)
    tool: str = attrs.field(default="", metadata=_ID)
    summary: str = attrs.field(default="", metadata=_SUMMARY)

    def event(self) -> AgentEvent:
        return ToolStarted(
            id=self.id,
            tool=self.tool or "tool",
            summary=self.summary,
        )


@attrs.define
class _ToolEnd:
    id: str = attrs.field(default="", metadata=_ID)
    tool: str = attrs.field(default="", metadata=_ID)
    summary: str = attrs.field(default="", metadata=_SUMMARY)
    ok: bool = True
    excerpt: str = attrs.field(default="", metadata=_EXCERPT)

    def event(self) -> AgentEvent:
        return ToolFinished(
            id=self.id,
            tool=self.tool or "tool",
            summary=self.summary,
            ok=self.ok,
            excerpt=self.excerpt,
        )


@attrs.define
class _PlanEntry:
    text: str = attrs.field(default="", metadata=_SUMMARY)
    status: PlanStatus = attrs.field(default=PlanStatus.PENDING, metadata=hooked(_plan_status))


@attrs.define
class _Plan:
    items: tuple[_PlanEntry, ...] = attrs.field(default=(), metadata=hooked(lambda value, _: _entries(value, _PlanEntry)))

    def event(self) -> AgentEvent:
        return PlanUpdated(tuple(PlanItem(entry.text, entry.status) for entry in self.items))


@attrs.define
class _Usage:
    inputTokens: int | None = attrs.field(default=None, metadata=_COUNT)
    outputTokens: int | None = attrs.field(default=None, metadata=_COUNT)
    costUsd: float | None = attrs.field(default=None, metadata=_COST)
    final: bool = False

    def event(self) -> AgentEvent:
        return UsageReported(
            input_tokens=self.inputTokens or 0,
            output_tokens=self.outputTokens or 0,
            cost_usd=self.costUsd,
            final=self.final,
        )


@attrs.define
class _FileEntry:
    path: str = attrs.field(default="", metadata=_text(MAX_PATH_CHARS))
    added: int | None = attrs.field(default=None, metadata=_COUNT)
    removed: int | None = attrs.field(default=None, metadata=_COUNT)


@attrs.define
class _FilesChanged:
    files: tuple[_FileEntry, ...] = attrs.field(default=(), metadata=hooked(lambda value, _: _entries(value, _FileEntry)))
    summary: str = attrs.field(default="", metadata=_SUMMARY)

    def event(self) -> AgentEvent:
        files = tuple(FileChange(f.path, f.added or 0, f.removed or 0) for f in self.files)
        return FilesChanged(files, summary=self.summary)


@attrs.define
class _Result:
    ok: bool = False
    answer: str = attrs.field(default="", metadata=_LONG_TEXT)
    costUsd: float | None = attrs.field(default=None, metadata=_COST)
    inputTokens: int | None = attrs.field(default=None, metadata=_COUNT)
    outputTokens: int | None = attrs.field(default=None, metadata=_COUNT)
    turns: int | None = attrs.field(default=None, metadata=_COUNT)
    model: str = attrs.field(default="", metadata=_ID)
    sessionId: str = attrs.field(default="", metadata=_ID)
    errorKind: ErrorKind | None = attrs.field(default=None, metadata=hooked(_error_kind))
    error: str = attrs.field(default="", metadata=_EXCERPT)

    def event(self) -> AgentEvent:
        return AgentFinished(
            ok=self.ok,
            answer=self.answer,
            cost_usd=self.costUsd,
            input_tokens=self.inputTokens,
            output_tokens=self.outputTokens,
            turns=self.turns,
            model=self.model,
            session_id=self.sessionId,
            error_kind=self.errorKind,
            error=self.error,
        )


_WireEvent = _Init | _Text | _ToolStart | _ToolEnd | _Plan | _Usage | _FilesChanged | _Result

#: The wire's `type` of each event we understand.
_TYPES: dict[str, type[_WireEvent]] = {
    "init": _Init,
    "text": _Text,
    "tool_start": _ToolStart,
    "tool_end": _ToolEnd,
    "plan": _Plan,
    "usage": _Usage,
    "files_changed": _FilesChanged,
    "result": _Result,
}
_CONVERTER = make_converter(detailed_validation=False)
_HOOKS: dict[type[Any], Any] = {cl: hook_for(_CONVERTER, cl) for cl in (*_TYPES.values(), _PlanEntry, _FileEntry)}
