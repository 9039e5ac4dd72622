"""What Tab offers at the console prompt: command words, their options, and job ids seen.

Pure functions of the text before the cursor, so they are tested without a terminal. The
commands and their options come from the domain's grammar (`USAGE`, the one table the parser
and `/od-help` are generated from), so a new command or option is completed without a change
here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ...domain.commands import USAGE

#: Words that end the console; completed like commands.
QUIT_COMPLETIONS = ("quit", "exit")
_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]*")


def _options(usage: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """Each command's long options, in the order its usage line lists them."""
    return {name: tuple(dict.fromkeys(_OPTION.findall(line))) for name, line in usage.items()}


def _takes_job(usage: Mapping[str, str]) -> frozenset[str]:
    """Commands whose first argument is a job id (`/od-logs JOB ...`, `/od-cancel JOB`)."""
    return frozenset(name for name, line in usage.items() if line.split()[1:2] == ["JOB"])


_OPTIONS = _options(USAGE)
_JOB_COMMANDS = _takes_job(USAGE)


def completions(before_cursor: str, job_ids: Sequence[str]) -> list[str]:
    """The words that may replace the word being typed, best first.

    - the first word: a command (`/od-j` -> `/od-jobs`; without the slash too) or quit/exit;
    - a word starting with `-`: that command's options;
    - the argument of `/od-help`: a command name (`run`, or `od-run`);
    - an argument of a command that takes a job, or any word starting with `j-`: the job ids
      this console has shown, newest first (`job_ids` is in that order).
    """
    words = before_cursor.split()
    current = "" if not words or before_cursor[-1:].isspace() else words[-1]
    earlier = words[:-1] if current else words
    if not earlier:
        if current.startswith("/"):
            names = [f"/{name}" for name in USAGE]
        else:
            names = [*USAGE, *QUIT_COMPLETIONS]
        return _matching(names, current)
    command = earlier[0].lstrip("/").lower()
    if command not in USAGE:
        return []
    if current.startswith("-"):
        return _matching(_OPTIONS[command], current)
    if command == "od-help":
        topics = [*(name.removeprefix("od-") for name in USAGE), *USAGE]  # `/od-help run` is the usual form
        return _matching(topics, current) if len(earlier) == 1 else []
    if command in _JOB_COMMANDS or current.startswith("j-"):
        return _matching(job_ids, current)
    return []


def _matching(candidates: Sequence[str], prefix: str) -> list[str]:
    lowered = prefix.lower()
    return [word for word in candidates if word.lower().startswith(lowered) and word != prefix]
