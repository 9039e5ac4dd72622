"""Chat text -> `Command`, and back: the one grammar every chat platform shares.

Parsing is pure and total: whatever a user types, `parse_command` returns a `Command` or
raises a one-line `UsageError` that names the problem and ends with the usage, so the chat
boundary can show it as it is.

The grammar is POSIX-shell-like (`shlex`), with three deliberate differences that make it
safe and friendly for chat rather than for a shell:

- Backslashes are literal (`shlex` escapes are off): users paste regexes and Windows paths
  far more often than they escape quotes, and user text is never interpreted. To put a quote
  inside a quoted task, quote with the other kind (`"don't stop"`, `'say "hi"'`).
- "Smart" quotes that phones and Slack substitute (“ ” „ ‘ ’) count as quotes, except a ’
  between two letters (an apostrophe, as in don’t) and anything inside ASCII single quotes
  (so `format_command` can carry any text through exactly).
- A quoted word is never an option: `/od-run "-v is ignored"` is a task, not a flag. An
  unquoted em or en dash before a letter (`—repo`, which phones make of `--repo`) is `--`.
"""

from __future__ import annotations

import difflib
import io
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import NoReturn, TypeAlias, TypeVar, assert_never

import attrs

from .errors import UsageError
from .ids import looks_like_job_id
from .job import JobState
from .channel_settings import KEYS as CHANNEL_KEYS
from .channel_settings import ChannelSettings, check_key, check_value
from .job_spec import (
    DEFAULT_BRANCH,
    DEFAULT_TIMEOUT_S,
    AgentKind,
    JobSpec,
    format_duration,
    parse_cost,
    parse_duration,
    validate_branch,
    validate_image,
    validate_model,
    validate_repo,
)

_T = TypeVar("_T")


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


# --- The grammar, as data: usage lines and help are generated from it ----------------------


@attrs.frozen
class _Option:
    name: str  # canonical long form, "--repo"
    short: str | None
    metavar: str | None  # None for a flag that takes no value
    help: str


_REPO = _Option("--repo", "-r", "owner/repo", "repository to clone: owner/repo, a git URL or a local path")
_BRANCH = _Option("--branch", "-b", "name", f"branch to check out (default {DEFAULT_BRANCH})")
_IMAGE = _Option("--image", "-i", "image", "an alias from SPRITE_IMAGES or a full image reference")
_AGENT = _Option(
    "--agent", "-a", "|".join(kind.value for kind in AgentKind), "which agent runs the task"
)
_TIMEOUT = _Option("--timeout", None, "10m", "stop the job after this long: 90s, 10m, 1h30m (max 24h)")
_MAX_COST = _Option("--max-cost", None, "2.50", "stop the job when the agent has spent this many US dollars")
_FOR_JOB = _Option("--job", None, None, "approve this and every later call the same rule matches, for the rest of the job")
_MODEL = _Option("--model", None, "name", "the agent's model: claude-sonnet-4-5 (Claude Code), anthropic/claude-sonnet-4-5 (OpenCode)")
_PERSISTENT = _Option("--persistent", None, None, "keep the session running until /od-stop")
_STOP_ALL = _Option("--all", None, None, "stop every session you started")
_JOBS_ALL = _Option("--all", None, None, "everyone's jobs, not only yours")
_STATUS = _Option(
    "--status", None, "state", "only jobs in this state: " + ", ".join(state.value for state in JobState)
)
_LIMIT = _Option("--limit", None, "N", "how many jobs to show, 1 to 100 (default 10)")
_USAGE_ALL = _Option("--all", None, None, "everyone's usage, not only yours")
_SINCE = _Option("--since", None, "7d", "how far back: 12h, 7d, 30d (default 7d, at most 366d)")
_TAIL = _Option("--tail", None, "N", "only the last N lines, 1 to 10000")
_RAW = _Option("--raw", None, None, "the agent's raw transcript (its own JSON events), as a file where chat allows")
_ARTIFACT = _Option("--artifact", None, "NAME", "a file the job kept as an artifact (its name on the card), as a file")

_HELP_WORDS = ("--help", "-h")
_DASHES = ("\u2014", "\u2013")  # em and en dash: what phones make of "--"


@attrs.frozen
class _CommandInfo:
    name: str
    arguments: str  # the usage line after the command word
    summary: str
    options: tuple[_Option, ...] = ()
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
        (_REPO, _BRANCH, _IMAGE, _AGENT, _MODEL, _TIMEOUT, _MAX_COST),
        '/od-run --repo acme/api "fix the failing test"   (or: /od-run -r acme/api -- run pytest -v)',
    ),
    _CommandInfo(
        "od-start",
        "NAME [--repo owner/repo] [--branch main] [--image alias|image] "
        "[--agent claude|opencode|shell] [--model name] [--max-cost 2.50] [--persistent]",
        "Start a named session; plain chat in its thread goes to it.",
        (_REPO, _BRANCH, _IMAGE, _AGENT, _MODEL, _MAX_COST, _PERSISTENT),
        "/od-start api-fixer --repo acme/api --persistent",
    ),
    _CommandInfo(
        "od-stop",
        "NAME | --all",
        "End a session (or all of yours) and destroy its sprite.",
        (_STOP_ALL,),
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
        (_JOBS_ALL, _STATUS, _LIMIT),
        "/od-jobs --status failed --limit 5",
    ),
    _CommandInfo(
        "od-usage",
        "[--all] [--since 7d]",
        "What agents cost, per user and channel.",
        (_USAGE_ALL, _SINCE),
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
        (_TAIL, _RAW, _ARTIFACT),
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
        (_FOR_JOB,),
        "/od-approve a-1a2b3c4d",
    ),
    _CommandInfo("od-deny", "REQUEST", "Refuse a job's waiting tool call (its owner or an admin).", (), "/od-deny a-1a2b3c4d"),
    _CommandInfo("od-help", "[command]", "Show this help, or one command's options.", (), "/od-help run"),
)
_BY_NAME: Mapping[str, _CommandInfo] = MappingProxyType({info.name: info for info in _COMMANDS})

USAGE: Mapping[str, str] = MappingProxyType({info.name: info.usage for info in _COMMANDS})
"""Command name ("od-run") -> its one-line usage ("/od-run [--repo owner/repo] ... "task"")."""

_COMMAND_LIST = "Commands: " + ", ".join(f"/{info.name}" for info in _COMMANDS) + " (/od-help explains them)."

# `od-` and at least one more character, at the start, optionally after one slash.
_COMMAND_WORD = re.compile(r"\s*/?(od-\S+)", re.IGNORECASE)
_SESSION_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_COUNT = re.compile(r"[0-9]{1,9}")


# --- Public functions --------------------------------------------------------------------


def is_command(text: str) -> bool:
    """True when the text starts with an `od-` command word, known or not.

    Unknown words (`/od-frobnicate`) count, so a typo gets the command list rather than being
    taken for plain chat; everything else (plain chat in a session thread) is not a command.
    """
    return _COMMAND_WORD.match(text) is not None


def parse_command(text: str, settings: ParseSettings) -> Command:
    """Parse one line (or message) of chat. Raises only `UsageError`, with a one-line message."""
    match = _COMMAND_WORD.match(text)
    if match is None:
        raise UsageError(f"Not a command: commands start with /od-. {_COMMAND_LIST}")
    name = match.group(1).lower()
    if name not in _PARSERS:
        close = difflib.get_close_matches(name, list(_PARSERS), n=1)
        hint = f" Did you mean /{close[0]}?" if close else ""
        raise UsageError(f"Unknown command /{_show(match.group(1))}.{hint} {_COMMAND_LIST}")
    tokens = _tokenise(name, text[match.end() :])
    return _PARSERS[name](tokens, settings)


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


def help_text(topic: str | None = None) -> str:
    """Every command with a line on what it does, or one command's usage and options.

    `topic` may be written as `run`, `od-run` or `/od-run`; an unknown topic gets the overview
    with a note, since help should never be the thing that fails.
    """
    if topic is None:
        return _overview()
    name = _topic_name(topic)
    if name is None:
        return f"No help for {_show(topic)}.\n{_overview()}"
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


# --- One parser per command ---------------------------------------------------------------


def _parse_run(tokens: Sequence[_Token], settings: ParseSettings) -> Command:
    args = _split_options("od-run", tokens, (_REPO, _BRANCH, _IMAGE, _AGENT, _MODEL, _TIMEOUT, _MAX_COST))
    if args.wants_help:
        return ShowHelp("od-run")
    task = _join(args.positionals)
    if not task.strip():
        _fail("od-run", "Missing the task: say what the agent should do, in quotes.")
    timeout = settings.default_timeout_s
    if "--timeout" in args.values:
        timeout = _validated("od-run", "timeout", _parse_timeout, args.values["--timeout"])
    return RunJob(_spec("od-run", args, settings, task=task, timeout_s=timeout))


def _parse_start(tokens: Sequence[_Token], settings: ParseSettings) -> Command:
    args = _split_options("od-start", tokens, (_REPO, _BRANCH, _IMAGE, _AGENT, _MODEL, _MAX_COST, _PERSISTENT))
    if args.wants_help:
        return ShowHelp("od-start")
    if not args.positionals:
        _fail("od-start", "Missing the session name.")
    name = _session_name("od-start", args.positionals[0].text)
    if len(args.positionals) > 1:
        extra = _show(_join(args.positionals[1:]))
        _fail("od-start", f"Unexpected text {extra}: send work to the session with /od-send {name} message.")
    spec = _spec("od-start", args, settings, task="", timeout_s=settings.default_timeout_s)
    return StartSession(name=name, spec=spec, persistent="--persistent" in args.flags)


def _parse_usage(tokens: Sequence[_Token], settings: ParseSettings) -> Command:
    args = _split_options("od-usage", tokens, (_USAGE_ALL, _SINCE))
    if args.wants_help:
        return ShowHelp("od-usage")
    if args.positionals:
        _fail("od-usage", f"Unexpected text {_show(_join(args.positionals))}.")
    since = 7 * 24 * 3600.0
    if "--since" in args.values:
        since = _validated("od-usage", "period", parse_period, args.values["--since"])
    return ShowUsage(all="--all" in args.flags, since_s=since)


def _parse_web(tokens: Sequence[_Token], settings: ParseSettings) -> Command:
    args = _split_options("od-web", tokens, ())
    if args.wants_help:
        return ShowHelp("od-web")
    if args.positionals:
        _fail("od-web", f"Unexpected text {_show(_join(args.positionals))}: /od-web takes nothing.")
    return OpenWeb()


def parse_period(text: str) -> float:
    """`12h`, `7d`, `30d`, `2w`: how far back `/od-usage` looks, from 1 hour to 366 days."""
    match = re.fullmatch(r"\s*(\d{1,4})\s*([hdw])\s*", text.lower())
    if match is None:
        raise UsageError(f"Bad period {_show(text)}: use hours, days or weeks such as 12h, 7d or 2w.")
    count, unit = int(match.group(1)), match.group(2)
    seconds = count * {"h": 3600, "d": 86400, "w": 7 * 86400}[unit]
    if not 3600 <= seconds <= 366 * 86400:
        raise UsageError(f"Bad period {_show(text)}: it must be between 1h and 366d.")
    return float(seconds)


def format_period(seconds: float) -> str:
    """The inverse of `parse_period`: whole days as `7d`, else hours."""
    whole = int(seconds)
    return f"{whole // 86400}d" if whole % 86400 == 0 else f"{whole // 3600}h"


def _parse_stop(tokens: Sequence[_Token], settings: ParseSettings) -> Command:
    args = _split_options("od-stop", tokens, (_STOP_ALL,))
    if args.wants_help:
        return ShowHelp("od-stop")
    everyone = "--all" in args.flags
    if everyone and args.positionals:
        _fail("od-stop", "Give a session name or --all, not both.")
    if everyone:
        return StopSession(name=None, all=True)
    if not args.positionals:
        _fail("od-stop", "Missing the session name (or --all).")
    if len(args.positionals) > 1:
        _fail("od-stop", "Stop one session at a time, or all of yours with --all.")
    return StopSession(name=_session_name("od-stop", args.positionals[0].text), all=False)


def _parse_list(tokens: Sequence[_Token], settings: ParseSettings) -> Command:
    args = _split_options("od-list", tokens, ())
    if args.wants_help:
        return ShowHelp("od-list")
    _refuse_positionals("od-list", args.positionals)
    return ListSessions()


def _parse_send(tokens: Sequence[_Token], settings: ParseSettings) -> Command:
    """The message is free text, so nothing after the name is read as an option."""
    if not tokens:
        _fail("od-send", "Missing the session name and the message.")
    first = tokens[0]
    if not first.quoted and first.text.lower() in _HELP_WORDS:
        return ShowHelp("od-send")
    name = _session_name("od-send", first.text)
    rest = tokens[1:]
    if rest and not rest[0].quoted and rest[0].text == "--":
        rest = rest[1:]
    message = _join(rest)
    if not message.strip():
        _fail("od-send", f"Missing the message to send to {name}.")
    return SendToSession(name=name, message=message)


def _parse_jobs(tokens: Sequence[_Token], settings: ParseSettings) -> Command:
    args = _split_options("od-jobs", tokens, (_JOBS_ALL, _STATUS, _LIMIT))
    if args.wants_help:
        return ShowHelp("od-jobs")
    _refuse_positionals("od-jobs", args.positionals)
    status = None
    if "--status" in args.values:
        status = _job_state(args.values["--status"])
    limit = 10
    if "--limit" in args.values:
        limit = _count("od-jobs", "--limit", args.values["--limit"], 1, 100)
    return ListJobs(all="--all" in args.flags, status=status, limit=limit)


def _parse_cancel(tokens: Sequence[_Token], settings: ParseSettings) -> Command:
    args = _split_options("od-cancel", tokens, ())
    if args.wants_help:
        return ShowHelp("od-cancel")
    return CancelJob(_one_job_id("od-cancel", args.positionals))


def _parse_logs(tokens: Sequence[_Token], settings: ParseSettings) -> Command:
    args = _split_options("od-logs", tokens, (_TAIL, _RAW, _ARTIFACT))
    if args.wants_help:
        return ShowHelp("od-logs")
    job_id = _one_job_id("od-logs", args.positionals)
    tail = None
    if "--tail" in args.values:
        tail = _count("od-logs", "--tail", args.values["--tail"], 1, 10_000)
    artifact = args.values.get("--artifact")
    if artifact is not None and "--raw" in args.flags:
        _fail("od-logs", "--raw and --artifact ask for different files: give one of them.")
    if artifact is not None and not artifact.strip():
        _fail("od-logs", "--artifact needs the artifact's name, as the job's card shows it.")
    return ShowLogs(job_id=job_id, tail=tail, raw="--raw" in args.flags, artifact=artifact)


def with_channel_defaults(
    text: str, command: RunJob | StartSession, settings: ParseSettings, channel: ChannelSettings
) -> RunJob | StartSession:
    """`command` (parsed from `text` with `settings`) again, with the channel's defaults where
    the command set nothing, and the spec saying which values came from the channel.

    Parsing twice is how "flags win" holds exactly: what the command typed is parsed the
    same both times, and every field that differs came from the channel.
    """
    values = channel.values
    images = settings.images
    channel_settings = attrs.evolve(
        settings,
        default_repo=values.get("repo", settings.default_repo),
        default_branch=values.get("branch", settings.default_branch),
        default_agent=AgentKind.parse(values["agent"]) if "agent" in values else settings.default_agent,
        default_image=_resolve_image(values["image"], settings) if "image" in values else settings.default_image,
        default_model=values.get("model", settings.default_model),
        default_timeout_s=parse_duration(values["timeout"]) if "timeout" in values else settings.default_timeout_s,
        default_max_cost_usd=parse_cost(values["max-cost"]) if "max-cost" in values else settings.default_max_cost_usd,
        images=images,
    )
    again = parse_command(text, channel_settings)
    assert isinstance(again, type(command))
    before, after = command.spec, again.spec
    shown = {
        "repo": (before.repo, after.repo, after.repo),
        "branch": (before.branch, after.branch, after.branch),
        "agent": (before.agent, after.agent, after.agent.value),
        "image": (before.image, after.image, values.get("image")),
        "model": (before.model, after.model, after.model),
        "timeout": (before.timeout_s, after.timeout_s, format_duration(after.timeout_s)),
        "max-cost": (before.max_cost_usd, after.max_cost_usd, values.get("max-cost")),
    }
    from_channel = tuple(f"{key} {value}" for key, (old, new, value) in shown.items() if old != new)
    approvals = values.get("approvals")
    if approvals is not None and approvals != "off":
        timeout = parse_duration(values["approval-timeout"]) if "approval-timeout" in values else after.approval_timeout_s
        after = attrs.evolve(after, approvals=approvals, approval_timeout_s=timeout)
        from_channel += (f"approvals {approvals}{_APPROVALS_CAVEAT.get(after.agent, '')}",)
    return attrs.evolve(again, spec=attrs.evolve(after, from_channel=from_channel))


#: What a channel's approvals mean for agents that cannot ask a person mid-run.
_APPROVALS_CAVEAT = {
    AgentKind.OPENCODE: " (OpenCode cannot ask: the calls they name are denied)",
    AgentKind.SHELL: " (not for the shell agent: it makes no tool calls)",
}


def _parse_config(tokens: Sequence[_Token], settings: ParseSettings) -> Command:
    # The value is taken as typed: a rule such as Bash(rm -rf*) is not an option.
    words = [token.text for token in tokens]
    if words and words[0] in _HELP_WORDS:
        return ShowHelp("od-config")
    if not words:
        return ShowChannelSettings()
    action = words[0].lower()
    if action == "set":
        if len(words) < 2:
            _fail("od-config", f"Say which setting: one of {', '.join(CHANNEL_KEYS)}.")
        key = _validated("od-config", "setting", check_key, words[1])
        value = " ".join(words[2:])
        return SetChannelSetting(key, _validated("od-config", key, lambda text: check_value(key, text, settings.images), value))
    if action == "unset":
        if len(words) != 2:
            _fail("od-config", f"Say which one setting to unset: one of {', '.join(CHANNEL_KEYS)}.")
        return UnsetChannelSetting(_validated("od-config", "setting", check_key, words[1]))
    _fail("od-config", f"Unknown action {_show(words[0])}: use /od-config, /od-config set KEY VALUE or /od-config unset KEY.")


_REQUEST_ID = re.compile(r"a-[0-9a-f]{8}")


def _request_id(command: str, positionals: Sequence[_Token]) -> str:
    if len(positionals) != 1:
        _fail(command, "Give one request id, as the approval prompt shows it (a-1a2b3c4d).")
    request_id = positionals[0].text.strip().lower()
    if not _REQUEST_ID.fullmatch(request_id):
        _fail(command, f"Bad request id {_show(positionals[0].text)}: they look like a-1a2b3c4d.")
    return request_id


def _parse_approve(tokens: Sequence[_Token], settings: ParseSettings) -> Command:
    args = _split_options("od-approve", tokens, (_FOR_JOB,))
    if args.wants_help:
        return ShowHelp("od-approve")
    return DecideApproval(_request_id("od-approve", args.positionals), approve=True, for_job="--job" in args.flags)


def _parse_deny(tokens: Sequence[_Token], settings: ParseSettings) -> Command:
    args = _split_options("od-deny", tokens, ())
    if args.wants_help:
        return ShowHelp("od-deny")
    return DecideApproval(_request_id("od-deny", args.positionals), approve=False)


def _parse_help(tokens: Sequence[_Token], settings: ParseSettings) -> Command:
    args = _split_options("od-help", tokens, ())
    if args.wants_help:
        return ShowHelp("od-help")
    if not args.positionals:
        return ShowHelp()
    if len(args.positionals) > 1:
        _fail("od-help", "Ask about one command at a time.")
    topic = _topic_name(args.positionals[0].text)
    if topic is None:
        raise UsageError(f"No command {_show(args.positionals[0].text)}. {_COMMAND_LIST}")
    return ShowHelp(topic)


_PARSERS: Mapping[str, Callable[[Sequence[_Token], ParseSettings], Command]] = MappingProxyType(
    {
        "od-run": _parse_run,
        "od-start": _parse_start,
        "od-config": _parse_config,
        "od-approve": _parse_approve,
        "od-deny": _parse_deny,
        "od-stop": _parse_stop,
        "od-list": _parse_list,
        "od-send": _parse_send,
        "od-jobs": _parse_jobs,
        "od-usage": _parse_usage,
        "od-web": _parse_web,
        "od-cancel": _parse_cancel,
        "od-logs": _parse_logs,
        "od-help": _parse_help,
    }
)
assert set(_PARSERS) == set(USAGE)


# --- Values ------------------------------------------------------------------------------


def _spec(command: str, args: _Arguments, settings: ParseSettings, *, task: str, timeout_s: float) -> JobSpec:
    values = args.values
    repo = _validated(command, "repository", validate_repo, values["--repo"]) if "--repo" in values else settings.default_repo
    branch = _validated(command, "branch", validate_branch, values.get("--branch", settings.default_branch))
    image = settings.default_image
    if "--image" in values and not settings.runs_images:
        _fail(
            command,
            "--image needs sprites that run images (OPENDISPATCH_SPRITES=fly): local sprites run on "
            "this host, with the programs on its PATH. Leave --image out.",
        )
    if "--image" in values:
        image = _validated(command, "image", lambda text: _resolve_image(text, settings), values["--image"])
    agent = settings.default_agent
    if "--agent" in values:
        agent = _validated(command, "agent", AgentKind.parse, values["--agent"])
    max_cost = settings.default_max_cost_usd
    if "--max-cost" in values:
        max_cost = _validated(command, "cost cap", parse_cost, values["--max-cost"])
    model = _validated(command, "model", validate_model, values["--model"]) if "--model" in values else settings.default_model
    return JobSpec(
        task=task,
        agent=agent,
        repo=repo,
        branch=branch,
        image=image,
        timeout_s=timeout_s,
        max_cost_usd=max_cost,
        model=model,
    )


def _resolve_image(text: str, settings: ParseSettings) -> str:
    """An alias from SPRITE_IMAGES (exact, then ignoring case) or a full image reference."""
    key = text.strip()
    if key in settings.images:
        return settings.images[key]
    by_folded_alias = {alias.lower(): image for alias, image in settings.images.items()}
    if key.lower() in by_folded_alias:
        return by_folded_alias[key.lower()]
    return validate_image(text)


def _parse_timeout(text: str) -> float:
    """`parse_duration`, refusing absurdly long text before `int()` meets a 5000-digit number."""
    if len(text) > 32:
        raise UsageError(f"Bad timeout {_show(text)}: use a duration such as 90s, 10m or 1h.")
    return parse_duration(text)


def _session_name(command: str, text: str) -> str:
    name = text.strip().lower()
    if not _SESSION_NAME.fullmatch(name):
        _fail(
            command,
            f"Bad session name {_show(text)}: use up to 32 letters, digits, - or _, "
            "starting with a letter or digit.",
        )
    return name


def _one_job_id(command: str, positionals: Sequence[_Token]) -> str:
    if not positionals:
        _fail(command, "Missing the job id (/od-jobs lists recent jobs).")
    if len(positionals) > 1:
        _fail(command, f"Unexpected text {_show(_join(positionals[1:]))}: give one job id.")
    job_id = positionals[0].text.strip().lower()
    if not looks_like_job_id(job_id):
        shown = _show(positionals[0].text)
        _fail(command, f"Bad job id {shown}: job ids look like j-1a2b3c4d (see /od-jobs).")
    return job_id


def _job_state(text: str) -> JobState:
    wanted = text.strip().lower().replace("-", "_")
    for state in JobState:
        if state.value == wanted:
            return state
    choices = ", ".join(state.value for state in JobState)
    _fail("od-jobs", f"Unknown status {_show(text)}: choose one of {choices}.")


def _count(command: str, option: str, text: str, low: int, high: int) -> int:
    if _COUNT.fullmatch(text.strip()) and low <= int(text.strip()) <= high:
        return int(text.strip())
    _fail(command, f"Bad {option} {_show(text)}: use a whole number from {low} to {high}.")


def _validated(command: str, what: str, validate: Callable[[str], _T], text: str) -> _T:
    """Run a job_spec validator, adding this command's usage to its message."""
    try:
        return validate(text)
    except UsageError as exc:
        _fail(command, str(exc))
    except ValueError:
        _fail(command, f"Bad {what} {_show(text)}.")


def _topic_name(topic: str) -> str | None:
    word = topic.strip().lower().removeprefix("/")
    name = word if word.startswith("od-") else f"od-{word}"
    return name if name in _BY_NAME else None


# --- Errors and help formatting -------------------------------------------------------------


def _fail(command: str, problem: str) -> NoReturn:
    raise UsageError(f"{problem} Usage: {USAGE[command]}")


def _show(text: str, limit: int = 40) -> str:
    """User text inside a one-line message: as typed when plain, else quoted and escaped."""
    short = text if len(text) <= limit else text[:limit] + "…"
    if short and short.isprintable() and not any(ch.isspace() for ch in short):
        return short
    return repr(short)


def _option_label(option: _Option) -> str:
    names = option.name + (f", {option.short}" if option.short else "")
    return names + (f" {option.metavar}" if option.metavar else "")


def _overview() -> str:
    lines = ["Open-Dispatch commands (typed as text, the leading / is optional):"]
    for info in _COMMANDS:
        lines += [f"  {info.usage}", f"      {info.summary}"]
    lines.append("Quote the task, or put it after -- when it contains options: /od-run -- run pytest -v")
    lines.append("/od-help COMMAND explains one command's options, e.g. /od-help run")
    return "\n".join(lines)


def _spec_flags(spec: JobSpec) -> list[str]:
    flags = ["--repo", shlex.quote(spec.repo)] if spec.repo is not None else []
    flags += ["--branch", shlex.quote(spec.branch)]
    flags += ["--image", shlex.quote(spec.image)] if spec.image is not None else []
    flags += ["--max-cost", f"{spec.max_cost_usd:g}"] if spec.max_cost_usd is not None else []
    flags += ["--model", shlex.quote(spec.model)] if spec.model is not None else []
    return [*flags, "--agent", spec.agent.value]


# --- Tokens and options -------------------------------------------------------------------

# shlex's own whitespace plus the spaces chat clients insert (no-break, thin, ideographic...).
_WHITESPACE = " \t\r\n\x0b\x0c\u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u202f\u205f\u3000"
_SMART_DOUBLE = "\u201c\u201d\u201e"  # “ ” „
_SMART_OPEN_SINGLE = "\u2018"  # ‘
_SMART_CLOSE_SINGLE = "\u2019"  # ’, also the apostrophe in don’t


@attrs.frozen
class _Token:
    text: str
    quoted: bool  # it began with a quote, so it is a word, never an option or `--`


@attrs.frozen
class _Arguments:
    values: Mapping[str, str] = attrs.field(factory=dict)
    flags: frozenset[str] = frozenset()
    positionals: tuple[_Token, ...] = ()
    wants_help: bool = False


def _tokenise(command: str, text: str) -> list[_Token]:
    normalised, open_quote = _normalise_quotes(text)
    if open_quote is not None:
        kind = "double" if open_quote == '"' else "single"
        hint = "."
        if kind == "single":
            hint = """; put a task with an apostrophe in double quotes, e.g. "don't stop"."""
        _fail(command, f"Unbalanced {kind} quote{hint}")
    stream = io.StringIO(normalised)  # read one character at a time, so tell() marks a token's start
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split = True
    lexer.whitespace = _WHITESPACE
    lexer.commenters = ""
    lexer.escape = ""
    tokens: list[_Token] = []
    while True:
        start = _skip_whitespace(normalised, stream.tell())
        try:
            word = lexer.get_token()
        except ValueError:  # only "No closing quotation", which _normalise_quotes already caught
            _fail(command, "Unbalanced quote.")
        if word is None:
            return tokens
        tokens.append(_Token(word, quoted=start < len(normalised) and normalised[start] in "'\""))


def _skip_whitespace(text: str, position: int) -> int:
    while position < len(text) and text[position] in _WHITESPACE:
        position += 1
    return position


def _normalise_quotes(text: str) -> tuple[str, str | None]:
    """Smart quotes -> ASCII quotes, character for character; also say which quote is left open.

    A small state machine that agrees with shlex (no escapes): inside ASCII single quotes
    nothing changes, inside ASCII double quotes smart quotes are literal text, and a smart
    quote only closes what a smart quote opened.
    """
    out: list[str] = []
    state = ""  # "", "'", '"', or "‘", "“" when a smart quote opened it
    for index, char in enumerate(text):
        if state == "":
            if char in "'\"":
                state = char
            elif char in _SMART_DOUBLE:
                char, state = '"', "“"
            elif char == _SMART_OPEN_SINGLE or (
                char == _SMART_CLOSE_SINGLE and not _is_apostrophe(text, index)
            ):
                char, state = "'", "‘"
        elif state in ("'", '"'):
            if char == state:
                state = ""
        elif state == "‘":
            if char == "'":
                state = ""
            elif char == _SMART_CLOSE_SINGLE and not _is_apostrophe(text, index):
                char, state = "'", ""
        elif state == "“":
            if char == '"':
                state = ""
            elif char in _SMART_DOUBLE:
                char, state = '"', ""
        out.append(char)
    open_quote = {"": None, "'": "'", "‘": "'", '"': '"', "“": '"'}[state]
    return "".join(out), open_quote


def _is_apostrophe(text: str, index: int) -> bool:
    return 0 < index < len(text) - 1 and text[index - 1].isalnum() and text[index + 1].isalnum()


def _split_options(command: str, tokens: Sequence[_Token], options: tuple[_Option, ...]) -> _Arguments:
    """Options anywhere before a bare `--`; every other word is positional, in order."""
    by_name = {option.name: option for option in options}
    by_name.update({option.short: option for option in options if option.short})
    values: dict[str, str] = {}
    flags: set[str] = set()
    positionals: list[_Token] = []
    words = iter(_dashes_as_options(tokens))
    for token in words:
        if token.quoted or not token.text.startswith("-") or token.text == "-":
            positionals.append(token)
        elif token.text == "--":
            positionals += list(words)
        elif token.text.lower() in _HELP_WORDS:
            return _Arguments(wants_help=True)
        else:
            written, has_value, value = token.text.partition("=")
            option = by_name.get(written.lower())
            if option is None:
                _fail(command, _unknown_option(command, written, by_name))
            if option.metavar is None:
                if has_value:
                    _fail(command, f"{option.name} takes no value.")
                flags.add(option.name)
                continue
            if not has_value:
                value = _option_value(command, option, next(words, None), by_name)
            values[option.name] = value
    return _Arguments(values=values, flags=frozenset(flags), positionals=tuple(positionals))


def _dashes_as_options(tokens: Sequence[_Token]) -> list[_Token]:
    """`—repo` (a phone's `--repo`) -> `--repo`, up to the first real `--`."""
    result: list[_Token] = []
    for position, token in enumerate(tokens):
        if not token.quoted and token.text == "--":
            return result + list(tokens[position:])
        if not token.quoted and token.text[:1] in _DASHES and token.text[1:2].isalpha():
            token = _Token("--" + token.text[1:], quoted=False)
        result.append(token)
    return result


def _option_value(command: str, option: _Option, token: _Token | None, by_name: Mapping[str, _Option]) -> str:
    wanted = f"Missing the value after {option.name} (e.g. {option.name} {option.metavar})."
    if token is None:
        _fail(command, wanted)
    if not token.quoted and token.text.partition("=")[0].lower() in {*by_name, *_HELP_WORDS, "--"}:
        _fail(command, wanted)
    return token.text


def _unknown_option(command: str, written: str, by_name: Mapping[str, _Option]) -> str:
    problem = f"Unknown option {_show(written)}."
    long_names = [name for name in by_name if name.startswith("--")]
    close = difflib.get_close_matches(written.lower(), long_names, n=1)
    if close:
        problem += f" Did you mean {close[0]}?"
    if command == "od-run":
        problem += " If it is part of the task, quote the task or put it after --: /od-run -- run pytest -v."
    return problem


def _refuse_positionals(command: str, positionals: Sequence[_Token]) -> None:
    if positionals:
        _fail(command, f"Unexpected text {_show(_join(positionals))}.")


def _join(tokens: Sequence[_Token]) -> str:
    """One word is kept exactly (a quoted task keeps its newlines); several are joined by spaces."""
    if len(tokens) == 1:
        return tokens[0].text
    return " ".join(token.text for token in tokens)
