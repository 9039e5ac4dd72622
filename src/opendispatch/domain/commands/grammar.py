"""The grammar as data, and the text written from it: usage lines, help, `format_command`.

Every command's name, usage line, summary, options and example is one `_CommandInfo` row;
`USAGE` and `help_text` come from these rows, and each parser splits its words with the same
`Option` values, so an option is described once. `format_command`, the inverse of `parse_command`, is here
too: it writes text in this grammar and needs nothing of the parsing. Kept apart from the
tokenizer (lexer.py) and the parsers (parsers.py), which both read it; it imports neither.
`fail` and `show`, the shape of every one-line `UsageError`, live here because that message
ends with the command's usage.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from types import MappingProxyType
from typing import NoReturn, assert_never

import attrs

from ..errors import UsageError
from ..job import JobState
from ..job_spec import DEFAULT_BRANCH, AgentKind, JobSpec, format_duration
from .values import (
    CancelJob,
    Command,
    DecideApproval,
    ListJobs,
    ListSessions,
    OpenWeb,
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


# --- The grammar, as data: usage lines and help are generated from it ----------------------


@attrs.frozen
class Option:
    name: str  # canonical long form, "--repo"
    short: str | None
    metavar: str | None  # None for a flag that takes no value
    help: str


REPO = Option("--repo", "-r", "owner/repo", "repository to clone: owner/repo, a git URL or a local path")
BRANCH = Option("--branch", "-b", "name", f"branch to check out (default {DEFAULT_BRANCH})")
IMAGE = Option("--image", "-i", "image", "an alias from SPRITE_IMAGES or a full image reference")
AGENT = Option(
    "--agent", "-a", "|".join(kind.value for kind in AgentKind), "which agent runs the task"
)
TIMEOUT = Option("--timeout", None, "10m", "stop the job after this long: 90s, 10m, 1h30m (max 24h)")
MAX_COST = Option("--max-cost", None, "2.50", "stop the job when the agent has spent this many US dollars")
FOR_JOB = Option("--job", None, None, "approve this and every later call the same rule matches, for the rest of the job")
MODEL = Option("--model", None, "name", "the agent's model: claude-sonnet-4-5 (Claude Code), anthropic/claude-sonnet-4-5 (OpenCode)")
PERSISTENT = Option("--persistent", None, None, "keep the session running until /od-stop")
STOP_ALL = Option("--all", None, None, "stop every session you started")
JOBS_ALL = Option("--all", None, None, "everyone's jobs, not only yours")
STATUS = Option(
    "--status", None, "state", "only jobs in this state: " + ", ".join(state.value for state in JobState)
)
LIMIT = Option("--limit", None, "N", "how many jobs to show, 1 to 100 (default 10)")
USAGE_ALL = Option("--all", None, None, "everyone's usage, not only yours")
SINCE = Option("--since", None, "7d", "how far back: 12h, 7d, 30d (default 7d, at most 366d)")
TAIL = Option("--tail", None, "N", "only the last N lines, 1 to 10000")
RAW = Option("--raw", None, None, "the agent's raw transcript (its own JSON events), as a file where chat allows")
ARTIFACT = Option("--artifact", None, "NAME", "a file the job kept as an artifact (its name on the card), as a file")

HELP_WORDS = ("--help", "-h")


@attrs.frozen
class _CommandInfo:
    name: str
    arguments: str  # the usage line after the command word
    summary: str
    options: tuple[Option, ...] = ()
    example: str = ""

    @property
    def usage(self) -> str:
        return f"/{self.name} {self.arguments}".rstrip()


_COMMANDS: tuple[_CommandInfo, ...] = (
    _CommandInfo(
        "od-run",
        '[--repo owner/repo] [--branch main] [--image alias|image] '
        '[--agent claude|opencode|shell] [--model name] [--timeout 10m] [--max-cost 2.50] "task"',
        "Run one task in a fresh sprite, destroyed when the task ends.",
        (REPO, BRANCH, IMAGE, AGENT, MODEL, TIMEOUT, MAX_COST),
        '/od-run --repo acme/api "fix the failing test"   (or: /od-run -r acme/api -- run pytest -v)',
    ),
    _CommandInfo(
        "od-start",
        "NAME [--repo owner/repo] [--branch main] [--image alias|image] "
        "[--agent claude|opencode|shell] [--model name] [--max-cost 2.50] [--persistent]",
        "Start a named session; plain chat in its thread goes to it.",
        (REPO, BRANCH, IMAGE, AGENT, MODEL, MAX_COST, PERSISTENT),
        "/od-start api-fixer --repo acme/api --persistent",
    ),
    _CommandInfo(
        "od-stop",
        "NAME | --all",
        "End a session (or all of yours) and destroy its sprite.",
        (STOP_ALL,),
        "/od-stop api-fixer",
    ),
    _CommandInfo("od-list", "", "List running sessions and jobs."),
    _CommandInfo(
        "od-send",
        "NAME message",
        "Send a message to a session from anywhere.",
        (),
        "/od-send api-fixer now add a test for it",
    ),
    _CommandInfo(
        "od-jobs",
        "[--all] [--status running|failed|...] [--limit N]",
        "List recent jobs.",
        (JOBS_ALL, STATUS, LIMIT),
        "/od-jobs --status failed --limit 5",
    ),
    _CommandInfo(
        "od-usage",
        "[--all] [--since 7d]",
        "What agents cost, per user and channel.",
        (USAGE_ALL, SINCE),
        "/od-usage --all --since 30d",
    ),
    _CommandInfo(
        "od-web",
        "",
        "A private link to the web view: every job you may read, live output, usage charts.",
        (),
        "/od-web",
    ),
    _CommandInfo("od-cancel", "JOB", "Cancel a running job.", (), "/od-cancel j-1a2b3c4d"),
    _CommandInfo(
        "od-logs",
        "JOB [--tail N] [--raw | --artifact NAME]",
        "Show the stored output of a job (or the agent's raw transcript, or a file it kept).",
        (TAIL, RAW, ARTIFACT),
        "/od-logs j-1a2b3c4d --tail 50",
    ),
    _CommandInfo(
        "od-config",
        "[set KEY VALUE | unset KEY]",
        "Show this channel's defaults for jobs and sessions; admins set them (repo, branch, agent, image, model, "
        "timeout, max-cost). Flags on a command win.",
        (),
        "/od-config set repo acme/api",
    ),
    _CommandInfo(
        "od-approve",
        "REQUEST [--job]",
        "Let a job's waiting tool call run (its owner or an admin); --job: and later ones like it.",
        (FOR_JOB,),
        "/od-approve a-1a2b3c4d",
    ),
    _CommandInfo("od-deny", "REQUEST", "Refuse a job's waiting tool call (its owner or an admin).", (), "/od-deny a-1a2b3c4d"),
    _CommandInfo("od-help", "[command]", "Show this help, or one command's options.", (), "/od-help run"),
)
_BY_NAME: Mapping[str, _CommandInfo] = MappingProxyType({info.name: info for info in _COMMANDS})

USAGE: Mapping[str, str] = MappingProxyType({info.name: info.usage for info in _COMMANDS})
"""Command name ("od-run") -> its one-line usage ("/od-run [--repo owner/repo] ... "task"")."""

COMMAND_LIST = "Commands: " + ", ".join(f"/{info.name}" for info in _COMMANDS) + " (/od-help explains them)."


# --- Help ---------------------------------------------------------------------------------


def help_text(topic: str | None = None) -> str:
    """Every command with a line on what it does, or one command's usage and options.

    `topic` may be written as `run`, `od-run` or `/od-run`; an unknown topic gets the overview
    with a note, since help should never be the thing that fails.
    """
    if topic is None:
        return _overview()
    name = topic_name(topic)
    if name is None:
        return f"No help for {show(topic)}.\n{_overview()}"
    info = _BY_NAME[name]
    lines = [info.usage, info.summary]
    if info.options:
        lines.append("Options:")
        lines += [f"  {_option_label(option)}: {option.help}" for option in info.options]
    if name == "od-run":
        lines.append("The task is the rest of the text: quote it, or put it after -- if it has options.")
        lines.append(
            'Quotes group words and are removed; \\" is not an escape: to keep double quotes, '
            """wrap the task in single quotes ('say "hi"'), and the other way round."""
        )
    if info.example:
        lines.append(f"Example: {info.example}")
    return "\n".join(lines)


def topic_name(topic: str) -> str | None:
    word = topic.strip().lower().removeprefix("/")
    name = word if word.startswith("od-") else f"od-{word}"
    return name if name in _BY_NAME else None


# --- Errors and help formatting -------------------------------------------------------------


def fail(command: str, problem: str) -> NoReturn:
    raise UsageError(f"{problem} Usage: {USAGE[command]}")


def show(text: str, limit: int = 40) -> str:
    """User text inside a one-line message: as typed when plain, else quoted and escaped."""
    short = text if len(text) <= limit else text[:limit] + "…"
    if short and short.isprintable() and not any(ch.isspace() for ch in short):
        return short
    return repr(short)


def _option_label(option: Option) -> str:
    names = option.name + (f", {option.short}" if option.short else "")
    return names + (f" {option.metavar}" if option.metavar else "")


def _overview() -> str:
    lines = ["Open-Dispatch commands (typed as text, the leading / is optional):"]
    for info in _COMMANDS:
        lines += [f"  {info.usage}", f"      {info.summary}"]
    lines.append("Quote the task, or put it after -- when it contains options: /od-run -- run pytest -v")
    lines.append("/od-help COMMAND explains one command's options, e.g. /od-help run")
    return "\n".join(lines)


# --- Text from a command: the inverse of parse_command --------------------------------------


def format_command(command: Command) -> str:
    """The canonical text of a command: `parse_command(format_command(c), s) == c`.

    Holds for every command `parse_command` can return with settings `s`: values are emitted
    resolved (the image, not its alias) and explicitly, and free text is quoted after `--`.
    """
    match command:
        case RunJob(spec=spec):
            timeout = format_duration(spec.timeout_s)
            flags = [*_spec_flags(spec), "--timeout", timeout]
            return " ".join(["/od-run", *flags, "--", shlex.quote(spec.task)])
        case StartSession(name=name, spec=spec, persistent=persistent):
            flags = [*_spec_flags(spec), *(["--persistent"] if persistent else [])]
            return " ".join(["/od-start", shlex.quote(name), *flags])
        case StopSession(name=name):
            return f"/od-stop {shlex.quote(name)}" if name is not None else "/od-stop --all"
        case ListSessions():
            return "/od-list"
        case SendToSession(name=name, message=message):
            return f"/od-send {shlex.quote(name)} -- {shlex.quote(message)}"
        case ListJobs(all=everyone, status=status, limit=limit):
            parts = ["/od-jobs", *(["--all"] if everyone else [])]
            parts += ["--status", status.value] if status is not None else []
            return " ".join([*parts, "--limit", str(limit)])
        case ShowUsage(all=everyone, since_s=since_s):
            return " ".join(["/od-usage", *(["--all"] if everyone else []), "--since", format_period(since_s)])
        case OpenWeb():
            return "/od-web"
        case CancelJob(job_id=job_id):
            return f"/od-cancel {shlex.quote(job_id)}"
        case ShowLogs(job_id=job_id, tail=tail, raw=raw, artifact=artifact):
            text = f"/od-logs {shlex.quote(job_id)}" + (f" --tail {tail}" if tail is not None else "")
            text += f" --artifact {shlex.quote(artifact)}" if artifact is not None else ""
            return text + (" --raw" if raw else "")
        case ShowHelp(topic=topic):
            return "/od-help" + (f" {shlex.quote(topic)}" if topic is not None else "")
        case ShowChannelSettings():
            return "/od-config"
        case SetChannelSetting(key=key, value=value):
            return f"/od-config set {key} {shlex.quote(value)}"
        case UnsetChannelSetting(key=key):
            return f"/od-config unset {key}"
        case DecideApproval(request_id=request_id, approve=True, for_job=for_job):
            return f"/od-approve {request_id}" + (" --job" if for_job else "")
        case DecideApproval(request_id=request_id):
            return f"/od-deny {request_id}"
        case _:
            assert_never(command)


def _spec_flags(spec: JobSpec) -> list[str]:
    flags = ["--repo", shlex.quote(spec.repo)] if spec.repo is not None else []
    flags += ["--branch", shlex.quote(spec.branch)]
    flags += ["--image", shlex.quote(spec.image)] if spec.image is not None else []
    flags += ["--max-cost", f"{spec.max_cost_usd:g}"] if spec.max_cost_usd is not None else []
    flags += ["--model", shlex.quote(spec.model)] if spec.model is not None else []
    return [*flags, "--agent", spec.agent.value]


# Here rather than beside parse_period (parsers.py): format_command writes periods, and the
# grammar imports no parser.
def format_period(seconds: float) -> str:
    """The inverse of `parse_period`: whole days as `7d`, else hours."""
    whole = int(seconds)
    return f"{whole // 86400}d" if whole % 86400 == 0 else f"{whole // 3600}h"
