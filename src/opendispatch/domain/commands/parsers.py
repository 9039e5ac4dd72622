"""Chat text -> `Command`: `is_command`, `parse_command`, one parser per command, the validators.

Parsing is pure and total: whatever a user types, `parse_command` returns a `Command` or
raises a one-line `UsageError` that names the problem and ends with the usage, so the chat
boundary can show it as it is.

Kept apart from the grammar (grammar.py: what each command accepts, and help) and the
tokenizer (tokens.py: words, quotes and options) because this is the part that gives words a
meaning: it checks each value (with job_spec's validators), applies the operator's and the
channel's defaults (`with_channel_defaults`) and builds the values of values.py.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TypeVar

import attrs

from ..channel_settings import KEYS as CHANNEL_KEYS
from ..channel_settings import ChannelSettings, check_key, check_value
from ..errors import UsageError
from ..ids import looks_like_job_id
from ..job import JobState
from ..job_spec import (
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
from .grammar import (
    AGENT,
    ARTIFACT,
    BRANCH,
    COMMAND_LIST,
    FOR_JOB,
    HELP_WORDS,
    IMAGE,
    JOBS_ALL,
    LIMIT,
    MAX_COST,
    MODEL,
    PERSISTENT,
    RAW,
    REPO,
    SINCE,
    STATUS,
    STOP_ALL,
    TAIL,
    TIMEOUT,
    USAGE,
    USAGE_ALL,
    fail,
    show,
    topic_name,
)
from .lexer import Arguments, Token, join, refuse_positionals, split_options, tokenise
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


_T = TypeVar("_T")

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
        raise UsageError(f"Not a command: commands start with /od-. {COMMAND_LIST}")
    name = match.group(1).lower()
    if name not in _PARSERS:
        close = difflib.get_close_matches(name, list(_PARSERS), n=1)
        hint = f" Did you mean /{close[0]}?" if close else ""
        raise UsageError(f"Unknown command /{show(match.group(1))}.{hint} {COMMAND_LIST}")
    tokens = tokenise(name, text[match.end() :])
    return _PARSERS[name](tokens, settings)


# --- One parser per command ---------------------------------------------------------------


def _parse_run(tokens: Sequence[Token], settings: ParseSettings) -> Command:
    args = split_options("od-run", tokens, (REPO, BRANCH, IMAGE, AGENT, MODEL, TIMEOUT, MAX_COST))
    if args.wants_help:
        return ShowHelp("od-run")
    task = join(args.positionals)
    if not task.strip():
        fail("od-run", "Missing the task: say what the agent should do, in quotes.")
    timeout = settings.default_timeout_s
    if "--timeout" in args.values:
        timeout = _validated("od-run", "timeout", _parse_timeout, args.values["--timeout"])
    return RunJob(_spec("od-run", args, settings, task=task, timeout_s=timeout))


def _parse_start(tokens: Sequence[Token], settings: ParseSettings) -> Command:
    args = split_options("od-start", tokens, (REPO, BRANCH, IMAGE, AGENT, MODEL, MAX_COST, PERSISTENT))
    if args.wants_help:
        return ShowHelp("od-start")
    if not args.positionals:
        fail("od-start", "Missing the session name.")
    name = _session_name("od-start", args.positionals[0].text)
    if len(args.positionals) > 1:
        extra = show(join(args.positionals[1:]))
        fail("od-start", f"Unexpected text {extra}: send work to the session with /od-send {name} message.")
    spec = _spec("od-start", args, settings, task="", timeout_s=settings.default_timeout_s)
    return StartSession(name=name, spec=spec, persistent="--persistent" in args.flags)


def _parse_usage(tokens: Sequence[Token], settings: ParseSettings) -> Command:
    args = split_options("od-usage", tokens, (USAGE_ALL, SINCE))
    if args.wants_help:
        return ShowHelp("od-usage")
    if args.positionals:
        fail("od-usage", f"Unexpected text {show(join(args.positionals))}.")
    since = 7 * 24 * 3600.0
    if "--since" in args.values:
        since = _validated("od-usage", "period", parse_period, args.values["--since"])
    return ShowUsage(all="--all" in args.flags, since_s=since)


def _parse_web(tokens: Sequence[Token], settings: ParseSettings) -> Command:
    args = split_options("od-web", tokens, ())
    if args.wants_help:
        return ShowHelp("od-web")
    if args.positionals:
        fail("od-web", f"Unexpected text {show(join(args.positionals))}: /od-web takes nothing.")
    return OpenWeb()


def parse_period(text: str) -> float:
    """`12h`, `7d`, `30d`, `2w`: how far back `/od-usage` looks, from 1 hour to 366 days."""
    match = re.fullmatch(r"\s*(\d{1,4})\s*([hdw])\s*", text.lower())
    if match is None:
        raise UsageError(f"Bad period {show(text)}: use hours, days or weeks such as 12h, 7d or 2w.")
    count, unit = int(match.group(1)), match.group(2)
    seconds = count * {"h": 3600, "d": 86400, "w": 7 * 86400}[unit]
    if not 3600 <= seconds <= 366 * 86400:
        raise UsageError(f"Bad period {show(text)}: it must be between 1h and 366d.")
    return float(seconds)


def _parse_stop(tokens: Sequence[Token], settings: ParseSettings) -> Command:
    args = split_options("od-stop", tokens, (STOP_ALL,))
    if args.wants_help:
        return ShowHelp("od-stop")
    everyone = "--all" in args.flags
    if everyone and args.positionals:
        fail("od-stop", "Give a session name or --all, not both.")
    if everyone:
        return StopSession(name=None, all=True)
    if not args.positionals:
        fail("od-stop", "Missing the session name (or --all).")
    if len(args.positionals) > 1:
        fail("od-stop", "Stop one session at a time, or all of yours with --all.")
    return StopSession(name=_session_name("od-stop", args.positionals[0].text), all=False)


def _parse_list(tokens: Sequence[Token], settings: ParseSettings) -> Command:
    args = split_options("od-list", tokens, ())
    if args.wants_help:
        return ShowHelp("od-list")
    refuse_positionals("od-list", args.positionals)
    return ListSessions()


def _parse_send(tokens: Sequence[Token], settings: ParseSettings) -> Command:
    """The message is free text, so nothing after the name is read as an option."""
    if not tokens:
        fail("od-send", "Missing the session name and the message.")
    first = tokens[0]
    if not first.quoted and first.text.lower() in HELP_WORDS:
        return ShowHelp("od-send")
    name = _session_name("od-send", first.text)
    rest = tokens[1:]
    if rest and not rest[0].quoted and rest[0].text == "--":
        rest = rest[1:]
    message = join(rest)
    if not message.strip():
        fail("od-send", f"Missing the message to send to {name}.")
    return SendToSession(name=name, message=message)


def _parse_jobs(tokens: Sequence[Token], settings: ParseSettings) -> Command:
    args = split_options("od-jobs", tokens, (JOBS_ALL, STATUS, LIMIT))
    if args.wants_help:
        return ShowHelp("od-jobs")
    refuse_positionals("od-jobs", args.positionals)
    status = None
    if "--status" in args.values:
        status = _job_state(args.values["--status"])
    limit = 10
    if "--limit" in args.values:
        limit = _count("od-jobs", "--limit", args.values["--limit"], 1, 100)
    return ListJobs(all="--all" in args.flags, status=status, limit=limit)


def _parse_cancel(tokens: Sequence[Token], settings: ParseSettings) -> Command:
    args = split_options("od-cancel", tokens, ())
    if args.wants_help:
        return ShowHelp("od-cancel")
    return CancelJob(_one_job_id("od-cancel", args.positionals))


def _parse_logs(tokens: Sequence[Token], settings: ParseSettings) -> Command:
    args = split_options("od-logs", tokens, (TAIL, RAW, ARTIFACT))
    if args.wants_help:
        return ShowHelp("od-logs")
    job_id = _one_job_id("od-logs", args.positionals)
    tail = None
    if "--tail" in args.values:
        tail = _count("od-logs", "--tail", args.values["--tail"], 1, 10_000)
    artifact = args.values.get("--artifact")
    if artifact is not None and "--raw" in args.flags:
        fail("od-logs", "--raw and --artifact ask for different files: give one of them.")
    if artifact is not None and not artifact.strip():
        fail("od-logs", "--artifact needs the artifact's name, as the job's card shows it.")
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


def _parse_config(tokens: Sequence[Token], settings: ParseSettings) -> Command:
    # The value is taken as typed: a rule such as Bash(rm -rf*) is not an option.
    words = [token.text for token in tokens]
    if words and words[0] in HELP_WORDS:
        return ShowHelp("od-config")
    if not words:
        return ShowChannelSettings()
    action = words[0].lower()
    if action == "set":
        if len(words) < 2:
            fail("od-config", f"Say which setting: one of {', '.join(CHANNEL_KEYS)}.")
        key = _validated("od-config", "setting", check_key, words[1])
        value = " ".join(words[2:])
        return SetChannelSetting(key, _validated("od-config", key, lambda text: check_value(key, text, settings.images), value))
    if action == "unset":
        if len(words) != 2:
            fail("od-config", f"Say which one setting to unset: one of {', '.join(CHANNEL_KEYS)}.")
        return UnsetChannelSetting(_validated("od-config", "setting", check_key, words[1]))
    fail("od-config", f"Unknown action {show(words[0])}: use /od-config, /od-config set KEY VALUE or /od-config unset KEY.")


_REQUEST_ID = re.compile(r"a-[0-9a-f]{8}")


def _request_id(command: str, positionals: Sequence[Token]) -> str:
    if len(positionals) != 1:
        fail(command, "Give one request id, as the approval prompt shows it (a-1a2b3c4d).")
    request_id = positionals[0].text.strip().lower()
    if not _REQUEST_ID.fullmatch(request_id):
        fail(command, f"Bad request id {show(positionals[0].text)}: they look like a-1a2b3c4d.")
    return request_id


def _parse_approve(tokens: Sequence[Token], settings: ParseSettings) -> Command:
    args = split_options("od-approve", tokens, (FOR_JOB,))
    if args.wants_help:
        return ShowHelp("od-approve")
    return DecideApproval(_request_id("od-approve", args.positionals), approve=True, for_job="--job" in args.flags)


def _parse_deny(tokens: Sequence[Token], settings: ParseSettings) -> Command:
    args = split_options("od-deny", tokens, ())
    if args.wants_help:
        return ShowHelp("od-deny")
    return DecideApproval(_request_id("od-deny", args.positionals), approve=False)


def _parse_help(tokens: Sequence[Token], settings: ParseSettings) -> Command:
    args = split_options("od-help", tokens, ())
    if args.wants_help:
        return ShowHelp("od-help")
    if not args.positionals:
        return ShowHelp()
    if len(args.positionals) > 1:
        fail("od-help", "Ask about one command at a time.")
    topic = topic_name(args.positionals[0].text)
    if topic is None:
        raise UsageError(f"No command {show(args.positionals[0].text)}. {COMMAND_LIST}")
    return ShowHelp(topic)


_PARSERS: Mapping[str, Callable[[Sequence[Token], ParseSettings], Command]] = MappingProxyType(
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


# --- Values: checking what was typed ---------------------------------------------------


def _spec(command: str, args: Arguments, settings: ParseSettings, *, task: str, timeout_s: float) -> JobSpec:
    values = args.values
    repo = _validated(command, "repository", validate_repo, values["--repo"]) if "--repo" in values else settings.default_repo
    branch = _validated(command, "branch", validate_branch, values.get("--branch", settings.default_branch))
    image = settings.default_image
    if "--image" in values and not settings.runs_images:
        fail(
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
        raise UsageError(f"Bad timeout {show(text)}: use a duration such as 90s, 10m or 1h.")
    return parse_duration(text)


def _session_name(command: str, text: str) -> str:
    name = text.strip().lower()
    if not _SESSION_NAME.fullmatch(name):
        fail(
            command,
            f"Bad session name {show(text)}: use up to 32 letters, digits, - or _, "
            "starting with a letter or digit.",
        )
    return name


def _one_job_id(command: str, positionals: Sequence[Token]) -> str:
    if not positionals:
        fail(command, "Missing the job id (/od-jobs lists recent jobs).")
    if len(positionals) > 1:
        fail(command, f"Unexpected text {show(join(positionals[1:]))}: give one job id.")
    job_id = positionals[0].text.strip().lower()
    if not looks_like_job_id(job_id):
        shown = show(positionals[0].text)
        fail(command, f"Bad job id {shown}: job ids look like j-1a2b3c4d (see /od-jobs).")
    return job_id


def _job_state(text: str) -> JobState:
    wanted = text.strip().lower().replace("-", "_")
    for state in JobState:
        if state.value == wanted:
            return state
    choices = ", ".join(state.value for state in JobState)
    fail("od-jobs", f"Unknown status {show(text)}: choose one of {choices}.")


def _count(command: str, option: str, text: str, low: int, high: int) -> int:
    if _COUNT.fullmatch(text.strip()) and low <= int(text.strip()) <= high:
        return int(text.strip())
    fail(command, f"Bad {option} {show(text)}: use a whole number from {low} to {high}.")


def _validated(command: str, what: str, validate: Callable[[str], _T], text: str) -> _T:
    """Run a job_spec validator, adding this command's usage to its message."""
    try:
        return validate(text)
    except UsageError as exc:
        fail(command, str(exc))
    except ValueError:
        fail(command, f"Bad {what} {show(text)}.")
