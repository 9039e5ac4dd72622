"""The `events` of a log batch or stream record → domain agent events, leniently.

Lines are the contract's core and a malformed one is a 400; events are an addition that a
newer sidecar may extend (docs/agents.md), so here an event of a type we do not know, or one
whose fields are not what we expect, is dropped and the batch's lines still count. Strings
are cut to sizes chat can use; the agent's full words stay in the raw transcript.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

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

MAX_EVENTS_PER_BATCH = 10_000
MAX_TEXT_CHARS = 64 * 1024
MAX_ID_CHARS = 200
MAX_ITEMS = 200


class _Malformed(Exception):
    """One event is not what the vocabulary says: it is dropped, the batch goes on."""


def agent_events(raw: Any) -> tuple[AgentEvent, ...]:
    """The events we understand, in order; None or a non-list gives none."""
    if not isinstance(raw, list):
        return ()
    events: list[AgentEvent] = []
    for item in raw[:MAX_EVENTS_PER_BATCH]:
        if not isinstance(item, dict):
            continue
        parse = _PARSERS.get(item.get("type"))  # type: ignore[arg-type]
        if parse is None:
            continue
        try:
            events.append(parse(item))
        except _Malformed:
            continue
    return tuple(events)


def _str(item: dict[str, Any], key: str, limit: int) -> str:
    value = item.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Malformed(key)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _int(item: dict[str, Any], key: str) -> int | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**53:
        raise _Malformed(key)
    return value


def _cost(item: dict[str, Any], key: str) -> float | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise _Malformed(key)
    return float(value)


def _bool(item: dict[str, Any], key: str, default: bool) -> bool:
    value = item.get(key, default)
    if not isinstance(value, bool):
        raise _Malformed(key)
    return value


def _list(item: dict[str, Any], key: str) -> list[Any]:
    value = item.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Malformed(key)
    return value[:MAX_ITEMS]


def _init(item: dict[str, Any]) -> AgentEvent:
    return AgentStarted(
        agent=_str(item, "agent", MAX_ID_CHARS),
        model=_str(item, "model", MAX_ID_CHARS),
        session_id=_str(item, "sessionId", MAX_ID_CHARS),
    )


def _text(item: dict[str, Any]) -> AgentEvent:
    return AgentText(_str(item, "text", MAX_TEXT_CHARS))


def _tool_start(item: dict[str, Any]) -> AgentEvent:
    return ToolStarted(
        id=_str(item, "id", MAX_ID_CHARS),
        tool=_str(item, "tool", MAX_ID_CHARS) or "tool",
        summary=_str(item, "summary", MAX_SUMMARY_CHARS),
    )


def _tool_end(item: dict[str, Any]) -> AgentEvent:
    return ToolFinished(
        id=_str(item, "id", MAX_ID_CHARS),
        tool=_str(item, "tool", MAX_ID_CHARS) or "tool",
        summary=_str(item, "summary", MAX_SUMMARY_CHARS),
        ok=_bool(item, "ok", True),
        excerpt=_str(item, "excerpt", MAX_EXCERPT_CHARS),
    )


def _plan(item: dict[str, Any]) -> AgentEvent:
    items = []
    for entry in _list(item, "items"):
        if not isinstance(entry, dict):
            raise _Malformed("items")
        try:
            status = PlanStatus(entry.get("status", "pending"))
        except ValueError:
            status = PlanStatus.PENDING
        items.append(PlanItem(_str(entry, "text", MAX_SUMMARY_CHARS), status))
    return PlanUpdated(tuple(items))


def _usage(item: dict[str, Any]) -> AgentEvent:
    return UsageReported(
        input_tokens=_int(item, "inputTokens") or 0,
        output_tokens=_int(item, "outputTokens") or 0,
        cost_usd=_cost(item, "costUsd"),
        final=_bool(item, "final", False),
    )


def _files_changed(item: dict[str, Any]) -> AgentEvent:
    files = []
    for entry in _list(item, "files"):
        if not isinstance(entry, dict):
            raise _Malformed("files")
        files.append(
            FileChange(
                path=_str(entry, "path", 1024),
                added=_int(entry, "added") or 0,
                removed=_int(entry, "removed") or 0,
            )
        )
    return FilesChanged(tuple(files), summary=_str(item, "summary", MAX_SUMMARY_CHARS))


def _result(item: dict[str, Any]) -> AgentEvent:
    return AgentFinished(
        ok=_bool(item, "ok", False),
        answer=_str(item, "answer", MAX_TEXT_CHARS),
        cost_usd=_cost(item, "costUsd"),
        input_tokens=_int(item, "inputTokens"),
        output_tokens=_int(item, "outputTokens"),
        turns=_int(item, "turns"),
        model=_str(item, "model", MAX_ID_CHARS),
        session_id=_str(item, "sessionId", MAX_ID_CHARS),
        error_kind=ErrorKind.from_wire(item.get("errorKind")),
        error=_str(item, "error", MAX_EXCERPT_CHARS),
    )


_PARSERS: dict[str, Callable[[dict[str, Any]], AgentEvent]] = {
    "init": _init,
    "text": _text,
    "tool_start": _tool_start,
    "tool_end": _tool_end,
    "plan": _plan,
    "usage": _usage,
    "files_changed": _files_changed,
    "result": _result,
}
