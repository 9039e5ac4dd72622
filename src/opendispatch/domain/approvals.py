"""Which agent actions need a person's approval, and the requests that wait for one.

A channel's `approvals` setting is `off` (the sprite is the boundary; the agent's own
permission checks are bypassed, as before), `ask-all` (every tool call waits for a person),
or `ask` with rules: a tool name and an optional pattern on the call's main argument,
`Bash(git push*)`, `Bash(rm -rf*)`, `WebFetch`, `Write(/etc/*)`. Patterns are shell-style
(`fnmatch`; a pattern cannot hold `)`), matched against the command (Bash), the path (Read, Write, Edit, ...) or the URL
(WebFetch); a rule without a pattern matches every call of its tool.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Mapping
from typing import Any

import attrs

from .errors import DispatchError, UsageError

DEFAULT_APPROVAL_TIMEOUT_S = 600.0
_TOOL = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")
_RULE = re.compile(r"([A-Za-z][A-Za-z0-9_.:-]{0,63})(?:\(([^)]*)\))?")
#: The argument of a tool call a rule's pattern is matched against, by tool.
_MAIN_ARGUMENT = ("command", "file_path", "path", "notebook_path", "url", "pattern", "query")
MAX_RULES = 20
MAX_PATTERN = 200


@attrs.frozen
class ApprovalRule:
    tool: str
    pattern: str | None = None

    def matches(self, tool: str, arguments: Mapping[str, Any]) -> bool:
        if tool.lower() != self.tool.lower():
            return False
        if self.pattern is None:
            return True
        subject = main_argument(arguments)
        return subject is not None and fnmatch.fnmatchcase(subject, self.pattern)

    def __str__(self) -> str:
        return self.tool if self.pattern is None else f"{self.tool}({self.pattern})"


class PolicyMode(enum.Enum):
    OFF = "off"
    ASK = "ask"
    ASK_ALL = "ask-all"


@attrs.frozen
class ApprovalPolicy:
    mode: PolicyMode = PolicyMode.OFF
    rules: tuple[ApprovalRule, ...] = ()

    def needs_approval(self, tool: str, arguments: Mapping[str, Any]) -> ApprovalRule | None:
        """The rule that makes this call wait for a person, or None (it runs)."""
        if self.mode is PolicyMode.OFF:
            return None
        if self.mode is PolicyMode.ASK_ALL:
            return ApprovalRule("*") if tool else None
        return next((rule for rule in self.rules if rule.matches(tool, arguments)), None)

    def __str__(self) -> str:
        if self.mode is PolicyMode.ASK:
            return "ask " + " ".join(str(rule) for rule in self.rules)
        return str(self.mode.value)


def parse_policy(text: str) -> ApprovalPolicy:
    """`off`, `ask-all`, or `ask RULE [RULE ...]` (rules separated by spaces or commas;
    a pattern may hold spaces inside its parentheses). One-line `UsageError` otherwise."""
    stripped = text.strip()
    word, _, rest = stripped.partition(" ")
    mode = word.lower()
    if mode in ("off", "ask-all") and not rest.strip():
        return ApprovalPolicy(PolicyMode(mode))
    if mode != "ask":
        raise UsageError(
            f"Bad approvals {stripped!r}: use off, ask-all, or ask with rules such as "
            "ask Bash(git push*) Bash(rm -rf*) WebFetch Write(/etc/*)."
        )
    rules = _rules(rest)
    if not rules:
        raise UsageError("Say which tool calls to ask about: ask Bash(git push*) WebFetch (or use ask-all).")
    return ApprovalPolicy(PolicyMode.ASK, rules)


def _rules(text: str) -> tuple[ApprovalRule, ...]:
    rules: list[ApprovalRule] = []
    position = 0
    while position < len(text):
        if text[position] in " ,\t":
            position += 1
            continue
        match = _RULE.match(text, position)
        end = match.end() if match is not None else position
        if match is None or end == position or (end < len(text) and text[end] not in " ,\t"):
            shown = text[position:].split()[0] if text[position:].split() else text[position:]
            raise UsageError(f"Bad rule {shown!r}: write a tool name, optionally with a pattern: Bash(git push*).")
        tool, pattern = match.group(1), match.group(2)
        if pattern is not None and (not pattern.strip() or len(pattern) > MAX_PATTERN or "\n" in pattern):
            raise UsageError(f"Bad rule {match.group(0).strip()!r}: the pattern must be 1 to {MAX_PATTERN} characters.")
        rules.append(ApprovalRule(tool, pattern.strip() if pattern is not None else None))
        position = end
    if len(rules) > MAX_RULES:
        raise UsageError(f"At most {MAX_RULES} rules.")
    return tuple(rules)


def main_argument(arguments: Mapping[str, Any]) -> str | None:
    """What a person needs to see of a call: its command, path or URL."""
    for key in _MAIN_ARGUMENT:
        value = arguments.get(key)
        if isinstance(value, str) and value:
            return value
    return None


class ApprovalState(enum.Enum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    TIMED_OUT = "timed out"

    @property
    def is_decided(self) -> bool:
        return self is not ApprovalState.PENDING


@attrs.frozen
class ApprovalRequest:
    """One tool call waiting for (or given) a person's decision."""

    id: str
    job_id: str
    tool: str
    #: The command, path or URL (redacted), as shown in chat.
    detail: str
    #: Why the agent wants it, where it said.
    reason: str
    rule: str
    asked_at: float
    state: ApprovalState = ApprovalState.PENDING
    decided_by: str | None = None
    decided_at: float | None = None
    #: Approved for the rest of the job: later calls matching the same rule are not asked.
    for_job: bool = False
    #: The sidecar's key for this ask (`askId`), the same when it sends the ask again because
    #: the answer was lost (a dispatcher killed between storing the request and answering):
    #: the ask then finds this request instead of making a second one. "" from old sidecars.
    ask_id: str = ""

    def decided(self, state: ApprovalState, *, by: str, at: float, for_job: bool = False) -> ApprovalRequest:
        if self.state.is_decided:
            raise UsageError(f"Request {self.id} was already {self.state.value}.")
        return attrs.evolve(self, state=state, decided_by=by, decided_at=at, for_job=for_job)

    def log_line(self) -> str:
        """The line `/od-logs` keeps for the decision."""
        what = f"{self.tool}: {self.detail}" if self.detail else self.tool
        if self.state is ApprovalState.PENDING:
            return f"[approval] {what} — waiting for approval ({self.id})"
        who = f" by {self.decided_by}" if self.decided_by else ""
        scope = " for the rest of this job" if self.for_job else ""
        return f"[approval] {what} — {self.state.value}{who}{scope} ({self.id})"


def check_tool(text: str) -> str:
    if not _TOOL.fullmatch(text):
        raise UsageError(f"Bad tool name {text!r}.")
    return text


class UnknownRequest(DispatchError):
    def __init__(self, request_id: str) -> None:
        super().__init__(f"There is no approval request {request_id} (it may have ended with its job).")


@attrs.frozen
class Outcome:
    """What the sidecar is told about a call: `decision` is pending, approve or deny."""

    request_id: str | None
    decision: str
    message: str = ""
    by: str | None = None

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"requestId": self.request_id, "decision": self.decision, "message": self.message}
        if self.by is not None:
            body["by"] = self.by
        return body
