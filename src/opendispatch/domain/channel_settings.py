"""A channel's own defaults for the jobs and sessions started in it (`/od-config`).

Why per channel: a team's channel is usually about one repository and one way of working;
typing `--repo acme/api --agent opencode` on every command is what users of every peer
complain about. Flags on the command always win; the first reply says which values came
from the channel, so nobody is surprised by a default they did not type.

Values are validated with the same rules as the flags and kept normalised (an image alias
is kept as typed and resolved when a job starts, so renaming the alias's target follows).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from types import MappingProxyType

import attrs

from .approvals import parse_policy
from .errors import UsageError
from .job import Conversation
from .job_spec import (
    AgentKind,
    format_duration,
    parse_cost,
    parse_duration,
    validate_branch,
    validate_image,
    validate_model,
    validate_repo,
)


def _cost(text: str) -> str:
    return f"{parse_cost(text):g}"


def _timeout(text: str) -> str:
    return format_duration(parse_duration(text))


#: Key -> (how its value is checked and normalised, what it means).
KEYS: Mapping[str, tuple[Callable[[str], str], str]] = MappingProxyType(
    {
        "repo": (validate_repo, "repository for jobs and sessions: owner/repo, a git URL or a path"),
        "branch": (validate_branch, "branch to check out"),
        "agent": (lambda text: AgentKind.parse(text).value, "claude, opencode or shell"),
        "image": (validate_image, "an alias from SPRITE_IMAGES or a full image reference"),
        "model": (validate_model, "the agent's model, e.g. claude-sonnet-4-5"),
        "timeout": (_timeout, "stop a job after this long: 90s, 10m, 1h30m"),
        "max-cost": (_cost, "stop a job when its agent has spent this many US dollars"),
        "approvals": (
            lambda text: str(parse_policy(text)),
            "which tool calls wait for a person: off, ask-all, or ask Bash(git push*) WebFetch ...",
        ),
        "approval-timeout": (_timeout, "how long a person has to answer (then denied; default 10m)"),
    }
)

def channel_key(conversation: Conversation) -> str:
    """Settings belong to a channel, whichever thread a command came from."""
    return f"{conversation.platform}:{conversation.channel}"


def check_key(key: str) -> str:
    name = key.strip().lower()
    if name not in KEYS:
        raise UsageError(f"Unknown setting {key!r}: use one of {', '.join(KEYS)}.")
    return name


def check_value(key: str, value: str, image_aliases: Collection[str] = ()) -> str:
    """The value as stored, or `UsageError` with the same words as the flag's.

    An image alias (SPRITE_IMAGES) is kept as the alias and resolved when a job starts.
    """
    name = check_key(key)
    if not value.strip():
        raise UsageError(f"Missing the value: /od-config set {name} VALUE ({KEYS[name][1]}).")
    if name == "image" and value.strip().lower() in {alias.lower() for alias in image_aliases}:
        return value.strip()
    return KEYS[name][0](value)


def _frozen(values: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(values))


@attrs.frozen
class ChannelSettings:
    """One channel's values, by key; who changed them last and when (Unix time)."""

    values: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen)
    changed_by: str | None = None
    changed_at: float | None = None

    def with_value(self, key: str, value: str, *, by: str, at: float) -> ChannelSettings:
        """`value` as `check_value` returned it."""
        return ChannelSettings({**self.values, check_key(key): value}, by, at)

    def without(self, key: str, *, by: str, at: float) -> ChannelSettings:
        name = check_key(key)
        return ChannelSettings({k: v for k, v in self.values.items() if k != name}, by, at)

    def lines(self) -> list[str]:
        """What `/od-config` shows: every key, set or not."""
        width = max(len(key) for key in KEYS)
        return [f"{key:<{width}}  {self.values.get(key, '(not set)')}" for key in KEYS]
