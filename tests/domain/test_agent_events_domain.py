"""The agent event values: every string reachable by redaction; each event's line in the log."""

from __future__ import annotations

from opendispatch.domain.agent_events import (
    AgentFinished,
    FileChange,
    FilesChanged,
    PlanItem,
    PlanStatus,
    PlanUpdated,
    ToolFinished,
    UsageReported,
    describe,
    map_strings,
)


def upper(text: str) -> str:
    return text.upper()


def test_map_strings_reaches_nested_strings_and_leaves_numbers_alone() -> None:
    plan = PlanUpdated((PlanItem("fix it", PlanStatus.IN_PROGRESS),))
    assert map_strings(plan, upper) == PlanUpdated((PlanItem("FIX IT", PlanStatus.IN_PROGRESS),))
    files = FilesChanged((FileChange("a.py", 1, 2),), summary="1 file")
    assert map_strings(files, upper) == FilesChanged((FileChange("A.PY", 1, 2),), summary="1 FILE")
    finished = AgentFinished(ok=False, answer="a", cost_usd=0.5, turns=3, error="e")
    assert map_strings(finished, upper) == AgentFinished(ok=False, answer="A", cost_usd=0.5, turns=3, error="E")
    usage = UsageReported(1, 2, 0.5)
    assert map_strings(usage, upper) is usage  # nothing to change: the same value


def test_describe_gives_each_event_one_line_for_the_log() -> None:
    assert describe(ToolFinished("t", "Bash", "npm test", ok=False, excerpt="1 failed\nmore")) == "✗ Bash: npm test — 1 failed"
    assert describe(UsageReported(1, 2)) is None
