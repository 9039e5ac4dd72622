"""Chat text -> `Command`, and back: the one grammar every chat platform shares.

Parsing is pure and total: whatever a user types, `parse_command` returns a `Command` or
raises a one-line `UsageError` that names the problem and ends with the usage, so the chat
boundary can show it as it is.

The grammar is POSIX-shell-like (`shlex`), with three deliberate differences that make it
safe and friendly for chat rather than for a shell (lexer.py lists them).

A package of four modules, one role each, each importing only those listed above it:

- `values`: the command values, the `Command` union and `ParseSettings`;
- `grammar`: the grammar as data (options, the command table, `USAGE`), help text and
  `format_command`;
- `lexer`: the tokenizer (quotes, smart quotes, dashes, whitespace) and option splitting;
- `parsers`: `is_command`, `parse_command`, one parser per command, the value validators and
  `with_channel_defaults`.

This file re-exports what the rest of Open-Dispatch imports, so importers name only
`opendispatch.domain.commands`.
"""

from __future__ import annotations

from .grammar import USAGE, format_command, help_text
from .parsers import is_command, parse_command, with_channel_defaults
from .values import (
    CancelJob,
    Command,
    DecideApproval,
    ListJobs,
    ListSessions,
    OpenWeb,
    ParseSettings,
    RunJob,
    SendToSession,
    SetChannelSetting,
    ShowChannelSettings,
    ShowHelp,
    ShowLogs,
    ShowUsage,
    StartSession,
    StopSession,
    UnsetChannelSetting,
)

__all__ = [
    "USAGE",
    "CancelJob",
    "Command",
    "DecideApproval",
    "ListJobs",
    "ListSessions",
    "OpenWeb",
    "ParseSettings",
    "RunJob",
    "SendToSession",
    "SetChannelSetting",
    "ShowChannelSettings",
    "ShowHelp",
    "ShowLogs",
    "ShowUsage",
    "StartSession",
    "StopSession",
    "UnsetChannelSetting",
    "format_command",
    "help_text",
    "is_command",
    "parse_command",
    "with_channel_defaults",
]
