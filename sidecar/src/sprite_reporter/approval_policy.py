"""The channel's approvals policy (OPENDISPATCH_APPROVALS): which tool calls wait for a person.

`off` (or nothing): no call waits, as before approvals existed. `ask-all`: every tool call
waits. `ask RULE [RULE ...]`: a call waits when a rule names it; a rule is a tool name,
optionally with a shell-style pattern in parentheses (no `)` inside) on the call's main
argument: `ask Bash(git push*) Bash(rm -rf*) WebFetch Write(/etc/*)`. Tool names match
whatever their case; a pattern is `fnmatch.fnmatchcase` against the first non-empty string
of the call's input among `command`, `file_path`, `path`, `notebook_path`, `url`, `pattern`,
`query`; a call without one never matches a rule with a pattern.

The dispatcher parses and matches the same text with the same rule (its
`opendispatch/domain/approvals.py`); the sidecar is standard library only and cannot import
it, so this is a faithful copy, and tests hold the two to the same examples.

OpenCode cannot ask a person (`opencode run` rejects what it would ask about), so for it the
policy becomes permission rules that DENY the calls it names (`opencode_permission`).
"""

import fnmatch
import os
import re
from typing import Dict, List, Mapping, Optional, Tuple, Union

OFF, ASK, ASK_ALL = "off", "ask", "ask-all"
_RULE = re.compile(r"([A-Za-z][A-Za-z0-9_.:-]{0,63})(?:\(([^)]*)\))?")
#: The argument of a tool call a rule's pattern is matched against, the first one present.
MAIN_ARGUMENT = ("command", "file_path", "path", "notebook_path", "url", "pattern", "query")
MAX_RULES = 20
MAX_PATTERN = 200
_SEPARATORS = " ,\t"


class PolicyError(ValueError):
    """The policy text is not `off`, `ask-all` or `ask RULE...`; the message says what is wrong."""


class Rule:
    def __init__(self, tool: str, pattern: Optional[str] = None) -> None:
        self.tool = tool
        self.pattern = pattern

    def matches(self, tool: str, arguments: Mapping[str, object]) -> bool:
        if tool.lower() != self.tool.lower():
            return False
        if self.pattern is None:
            return True
        subject = main_argument(arguments)
        return subject is not None and fnmatch.fnmatchcase(subject, self.pattern)

    def __str__(self) -> str:
        return self.tool if self.pattern is None else f"{self.tool}({self.pattern})"

    def __repr__(self) -> str:
        return f"Rule({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and (self.tool, self.pattern) == (other.tool, other.pattern)


class Policy:
    """`ask-all`, or `ask` with its rules (`off` is no Policy at all: see `parse_policy`)."""

    def __init__(self, mode: str, rules: Tuple[Rule, ...] = ()) -> None:
        self.mode = mode
        self.rules = rules

    def needs_approval(self, tool: str, arguments: Mapping[str, object]) -> Optional[Rule]:
        """The rule that makes this call wait for a person, or None (it runs)."""
        if self.mode == ASK_ALL:
            return Rule("*") if tool else None
        return next((rule for rule in self.rules if rule.matches(tool, arguments)), None)

    def __str__(self) -> str:
        if self.mode == ASK:
            return "ask " + " ".join(str(rule) for rule in self.rules)
        return self.mode


def parse_policy(text: str) -> Optional[Policy]:
    """The policy `text` says; None for `off` or nothing. PolicyError when it is malformed."""
    stripped = text.strip()
    if not stripped:
        return None
    word, _, rest = stripped.partition(" ")
    mode = word.lower()
    if mode in (OFF, ASK_ALL) and not rest.strip():
        return None if mode == OFF else Policy(ASK_ALL)
    if mode != ASK:
        raise PolicyError(
            f"bad approvals {stripped!r}: use off, ask-all, or ask with rules such as "
            "ask Bash(git push*) Bash(rm -rf*) WebFetch Write(/etc/*)"
        )
    rules = _rules(rest)
    if not rules:
        raise PolicyError("say which tool calls to ask about: ask Bash(git push*) WebFetch (or use ask-all)")
    return Policy(ASK, rules)


def _rules(text: str) -> Tuple[Rule, ...]:
    rules = []  # type: List[Rule]
    position = 0
    while position < len(text):
        if text[position] in _SEPARATORS:
            position += 1
            continue
        match = _RULE.match(text, position)
        end = match.end() if match is not None else position
        if match is None or end == position or (end < len(text) and text[end] not in _SEPARATORS):
            words = text[position:].split()
            shown = words[0] if words else text[position:]
            raise PolicyError(f"bad rule {shown!r}: write a tool name, optionally with a pattern: Bash(git push*)")
        tool, pattern = match.group(1), match.group(2)
        if pattern is not None and (not pattern.strip() or len(pattern) > MAX_PATTERN or "\n" in pattern):
            raise PolicyError(f"bad rule {match.group(0).strip()!r}: the pattern must be 1 to {MAX_PATTERN} characters")
        rules.append(Rule(tool, pattern.strip() if pattern is not None else None))
        position = end
    if len(rules) > MAX_RULES:
        raise PolicyError(f"at most {MAX_RULES} rules")
    return tuple(rules)


def main_argument_key(arguments: Mapping[str, object]) -> Optional[str]:
    """Which key of a call's input holds its main argument (its command, path or URL)."""
    for key in MAIN_ARGUMENT:
        value = arguments.get(key)
        if isinstance(value, str) and value:
            return key
    return None


def main_argument(arguments: Mapping[str, object]) -> Optional[str]:
    key = main_argument_key(arguments)
    if key is None:
        return None
    value = arguments[key]
    return value if isinstance(value, str) else None


# ---- OpenCode: what the policy names is denied ---------------------------------------------

#: Claude Code's tool names (the policy's vocabulary) -> the OpenCode permission that guards
#: the same kind of call (`edit` guards its write, edit and patch tools). Any other name is
#: used lower-cased, as OpenCode names its tools.
OPENCODE_PERMISSIONS = {
    "bash": "bash",
    "write": "edit",
    "edit": "edit",
    "multiedit": "edit",
    "notebookedit": "edit",
    "read": "read",
    "glob": "glob",
    "grep": "grep",
    "ls": "list",
    "webfetch": "webfetch",
    "websearch": "websearch",
    "task": "task",
    "todowrite": "todowrite",
}
#: OpenCode's permissions whose patterns are paths relative to the project (the clone).
OPENCODE_PATH_PERMISSIONS = ("edit", "read")
#: The key of `ask-all`: a wildcard matching every permission. It is a key no configuration
#: uses, so it comes after every rule of the configuration it is merged into, and wins.
OPENCODE_EVERYTHING = "**"

Permission = Union[str, Dict[str, str]]


def opencode_permission(policy: Policy, workdir: str) -> Dict[str, Permission]:
    """OpenCode permission rules (`OPENCODE_PERMISSION`) denying what `policy` names.

    OpenCode merges them into the `permission` of its configuration, where the LAST rule that
    matches a call decides, and a key already there keeps its place. So each key here is the
    permission with `*` appended (`bash*`), a key no configuration has: it is added after all
    of the configuration's rules, and its denials win over an earlier `"*": "allow"` or
    `"bash": "allow"`. Nothing is allowed here: what no rule names runs as OpenCode's
    configuration says (`{"*": "allow"}` in a sprite). `ask-all` denies every permission.
    Path patterns (`Write(/etc/*)`) are made relative to the clone, as OpenCode matches them.
    """
    if policy.mode == ASK_ALL:
        return {OPENCODE_EVERYTHING: "deny"}
    permissions = {}  # type: Dict[str, Permission]
    for rule in policy.rules:
        name = OPENCODE_PERMISSIONS.get(rule.tool.lower(), rule.tool.lower())
        key = name + "*"
        current = permissions.get(key)
        if rule.pattern is None:
            permissions[key] = "deny"
        elif current != "deny":
            patterns = current if isinstance(current, dict) else {}
            patterns[_opencode_pattern(name, rule.pattern, workdir)] = "deny"
            permissions[key] = patterns
    return permissions


def _opencode_pattern(permission: str, pattern: str, workdir: str) -> str:
    if permission in OPENCODE_PATH_PERMISSIONS and pattern.startswith("/"):
        return os.path.relpath(pattern, workdir)
    return pattern
