"""The commands as values: what `parse_command` returns and `format_command` writes back.

Each command is a frozen attrs class; `Command` is their union, the type the dispatcher
matches on. `ParseSettings` (the operator's and a channel's defaults) is here because a parsed
command's `JobSpec` is resolved with it. Separate because this module knows nothing of text: the
grammar (grammar.py), the tokenizer (tokens.py) and the parsers (parsers.py) all build on these
values, and code that only handles commands needs nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TypeAlias

import attrs

from ..job import JobState
from ..job_spec import DEFAULT_BRANCH, DEFAULT_TIMEOUT_S, AgentKind, JobSpec


def _frozen_mapping(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@attrs.frozen
class ParseSettings:
    """The operator's defaults that turn what a user typed into a fully resolved `JobSpec`."""

    images: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_mapping, hash=False)
    default_agent: AgentKind = AgentKind.CLAUDE
    default_image: str | None = None
    default_timeout_s: float = DEFAULT_TIMEOUT_S
    #: A channel's defaults (`/od-config`, channel_settings.py) on top of the operator's.
    default_repo: str | None = None
    default_branch: str = DEFAULT_BRANCH
    default_model: str | None = None
    default_max_cost_usd: float | None = None
    #: False where sprites run no images (local sprites use this host's programs): `--image`
    #: is then refused rather than shown on the card and silently ignored.
    runs_images: bool = True


# --- Commands ----------------------------------------------------------------------------


@attrs.frozen
class RunJob:
    spec: JobSpec


@attrs.frozen
class StartSession:
    """A session has no task of its own (`spec.task == ""`): messages are sent to it later."""

    name: str
    spec: JobSpec
    persistent: bool


def _one_target(instance: StopSession, attribute: attrs.Attribute[bool], value: bool) -> None:
    if value == (instance.name is not None):
        raise ValueError("StopSession needs exactly one of a name or all=True")


@attrs.frozen
class StopSession:
    name: str | None
    all: bool = attrs.field(validator=_one_target)


@attrs.frozen
class ListSessions:
    pass


@attrs.frozen
class SendToSession:
    name: str
    message: str


@attrs.frozen
class ListJobs:
    all: bool = False
    status: JobState | None = None
    limit: int = 10


@attrs.frozen
class ShowUsage:
    """`/od-usage`: what agents cost, summed per user and channel since `since_s` ago."""

    all: bool = False
    since_s: float = 7 * 24 * 3600.0


@attrs.frozen
class OpenWeb:
    """`/od-web`: a private, signed link to the web view of the jobs the user may read."""


@attrs.frozen
class CancelJob:
    job_id: str


@attrs.frozen
class ShowLogs:
    job_id: str
    tail: int | None = None
    #: The agent's raw transcript (its CLI's JSON lines) instead of the output.
    raw: bool = False
    #: The kept copy of the job's artifact file of this name instead of the output.
    artifact: str | None = None


@attrs.frozen
class ShowHelp:
    """`topic` is a command name as in `USAGE` ("od-run"), or None for the overview."""

    topic: str | None = None


@attrs.frozen
class ShowChannelSettings:
    """`/od-config`: this channel's defaults."""


@attrs.frozen
class SetChannelSetting:
    key: str
    #: Checked and normalised (`channel_settings.check_value`).
    value: str


@attrs.frozen
class UnsetChannelSetting:
    key: str


@attrs.frozen
class DecideApproval:
    """`/od-approve ID [--job]` or `/od-deny ID` (the buttons of an approval prompt)."""

    request_id: str
    approve: bool
    for_job: bool = False


Command: TypeAlias = (
    RunJob
    | StartSession
    | StopSession
    | ListSessions
    | SendToSession
    | ListJobs
    | ShowUsage
    | OpenWeb
    | CancelJob
    | ShowLogs
    | ShowHelp
    | ShowChannelSettings
    | SetChannelSetting
    | UnsetChannelSetting
    | DecideApproval
)
