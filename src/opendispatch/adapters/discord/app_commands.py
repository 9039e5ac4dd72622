"""The application (slash) commands we register, and the command line each invocation becomes.

Discord hands us typed options; we turn them back into the same text a user could type
(`/od-run --repo acme/api -- 'fix the test'`, every value through `shlex.quote`), so the
domain parser stays the one place that decides what a command means and how it fails.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from ...domain.channel_settings import KEYS as CHANNEL_KEYS
from ...domain.job import JobState
from ...domain.job_spec import AgentKind
from .wire import ApplicationCommandInteractionData, ApplicationCommandInteractionDataOption, OptionValue, read_command_data

STRING, INTEGER, BOOLEAN = 3, 4, 5
CHAT_INPUT = 1
SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2


def _option(kind: int, name: str, description: str, *, required: bool = False, **extra: Any) -> dict[str, Any]:
    option: dict[str, Any] = {"type": kind, "name": name, "description": description}
    if required:
        option["required"] = True
    option.update(extra)
    return option


def _choices(values: Sequence[str]) -> list[dict[str, str]]:
    return [{"name": value, "value": value} for value in values]


def _spec_options() -> list[dict[str, Any]]:
    return [
        _option(STRING, "repo", "Repository: owner/repo, a git URL or a local path", max_length=300),
        _option(STRING, "branch", "Branch to check out (default main)", max_length=200),
        _option(STRING, "image", "An alias from SPRITE_IMAGES or a full image reference", max_length=255),
        _option(STRING, "agent", "Which agent runs the task", choices=_choices([k.value for k in AgentKind])),
        _option(STRING, "max-cost", "Stop the job when the agent has spent this many US dollars, e.g. 2.50", max_length=16),
        _option(STRING, "model", "The agent's model, e.g. claude-sonnet-4-5", max_length=100),
    ]


def _command(name: str, description: str, options: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    command: dict[str, Any] = {"name": name, "type": CHAT_INPUT, "description": description}
    if options:
        command["options"] = options
    return command


COMMAND_NAMES = (
    "od-run", "od-start", "od-stop", "od-list", "od-send", "od-jobs", "od-usage", "od-web", "od-cancel", "od-logs",
    "od-config", "od-approve", "od-deny", "od-help",
)


def application_commands() -> list[dict[str, Any]]:
    """The body of the bulk overwrite (PUT .../commands): every command of the grammar."""
    job = _option(STRING, "job", "Job id, such as j-1a2b3c4d (see /od-jobs)", required=True, max_length=40)
    session = _option(STRING, "name", "Session name", required=True, max_length=32)
    return [
        _command(
            "od-run",
            "Run one task in a fresh sprite, destroyed when the task ends",
            [
                _option(STRING, "task", "What the agent should do", required=True, max_length=6000),
                *_spec_options(),
                _option(STRING, "timeout", "Stop the job after this long: 90s, 10m, 1h30m (max 24h)", max_length=32),
            ],
        ),
        _command(
            "od-start",
            "Start a named session; chat in its thread goes to it",
            [session, *_spec_options(), _option(BOOLEAN, "persistent", "Keep it running until /od-stop")],
        ),
        _command(
            "od-stop",
            "End a session (or all of yours) and destroy its sprite",
            [
                _option(STRING, "name", "Session name", max_length=32),
                _option(BOOLEAN, "all", "Stop every session you started"),
            ],
        ),
        _command("od-list", "Running sessions and jobs"),
        _command(
            "od-send",
            "Send a message to a session",
            [session, _option(STRING, "message", "What to send", required=True, max_length=6000)],
        ),
        _command(
            "od-jobs",
            "Recent jobs from the store",
            [
                _option(BOOLEAN, "all", "Everyone's jobs, not only yours"),
                _option(STRING, "status", "Only jobs in this state", choices=_choices([s.value for s in JobState])),
                _option(INTEGER, "limit", "How many jobs to show", min_value=1, max_value=100),
            ],
        ),
        _command(
            "od-usage",
            "What agents cost, per user and channel",
            [
                _option(BOOLEAN, "all", "Everyone's usage, not only yours"),
                _option(STRING, "since", "How far back: 12h, 7d, 30d (default 7d)", max_length=8),
            ],
        ),
        # Its answer is a credential: always the interaction's ephemeral answer (see chat.py).
        _command("od-web", "A private link to the web view: your jobs, live output, usage"),
        _command("od-cancel", "Cancel a running job", [job]),
        _command(
            "od-logs",
            "The stored output of a job",
            [
                job,
                _option(INTEGER, "tail", "Only the last N lines", min_value=1, max_value=10_000),
                _option(BOOLEAN, "raw", "The agent's raw transcript (its JSON events), as a file"),
                _option(STRING, "artifact", "A file the job kept (its name on the card), as a file", max_length=200),
            ],
        ),
        _command(
            "od-config",
            "This channel's defaults for jobs and sessions (admins change them)",
            [
                _option(STRING, "action", "Show (default), set or unset", choices=_choices(["show", "set", "unset"])),
                _option(STRING, "key", "Which setting", choices=_choices(list(CHANNEL_KEYS))),
                _option(STRING, "value", "The new value (for set)", max_length=300),
            ],
        ),
        _command(
            "od-approve",
            "Let a job's waiting tool call run (its owner or an admin)",
            [
                _option(STRING, "request", "Request id, such as a-1a2b3c4d", required=True, max_length=16),
                _option(BOOLEAN, "job", "Also every later call the same rule matches, for the rest of the job"),
            ],
        ),
        _command(
            "od-deny",
            "Refuse a job's waiting tool call (its owner or an admin)",
            [_option(STRING, "request", "Request id, such as a-1a2b3c4d", required=True, max_length=16)],
        ),
        _command(
            "od-help",
            "How to use Open-Dispatch",
            [_option(STRING, "command", "Explain one command", choices=_choices(list(COMMAND_NAMES)))],
        ),
    ]


def command_text(data: object) -> str:
    """The command line for an APPLICATION_COMMAND's `data` (name + options), as JSON.

    WireError (support.wire) when `data` is not an application command's data; its path
    starts at `data` ("data.options[0].name must be a string").
    """
    return command_line(read_command_data(data))


def command_line(data: ApplicationCommandInteractionData) -> str:
    """The command line for an application command's data."""
    name = data.name
    values = _option_values(data.options or ())

    def flag(option: str) -> list[str]:
        value = values.get(option)
        if value is None or value is False:
            return []
        if value is True:
            return [f"--{option}"]
        return [f"--{option}", shlex.quote(str(value))]

    def word(option: str) -> list[str]:
        value = values.get(option)
        return [] if value is None else [shlex.quote(str(value))]

    spec_flags = [*flag("repo"), *flag("branch"), *flag("image"), *flag("agent"), *flag("max-cost"), *flag("model")]
    match name:
        case "od-run":
            parts = [*spec_flags, *flag("timeout"), "--", *word("task")]
        case "od-start":
            parts = [*word("name"), *spec_flags, *flag("persistent")]
        case "od-stop":
            parts = [*word("name"), *flag("all")]
        case "od-send":
            parts = [*word("name"), "--", *word("message")]
        case "od-jobs":
            parts = [*flag("all"), *flag("status"), *flag("limit")]
        case "od-usage":
            parts = [*flag("all"), *flag("since")]
        case "od-cancel":
            parts = word("job")
        case "od-logs":
            parts = [*word("job"), *flag("tail"), *flag("raw"), *flag("artifact")]
        case "od-config":
            action = str(values.get("action") or "show")
            parts = [] if action == "show" else [shlex.quote(action), *word("key"), *word("value")]
        case "od-approve":
            parts = [*word("request"), *flag("job")]
        case "od-deny":
            parts = word("request")
        case "od-help":
            parts = word("command")
        case _:
            parts = []  # od-list, or a command we no longer register: the parser answers it
    return " ".join([f"/{name}", *parts])


def _option_values(options: Sequence[ApplicationCommandInteractionDataOption]) -> dict[str, OptionValue | None]:
    """Option name -> value; subcommand nesting is flattened (we register none today)."""
    values: dict[str, OptionValue | None] = {}
    for option in options:
        if option.type in (SUB_COMMAND, SUB_COMMAND_GROUP):
            values.update(_option_values(option.options or ()))
        elif option.value is not None:
            values[option.name] = option.value
    return values
