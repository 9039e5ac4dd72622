"""The chat grammar: every command, its defaults, its errors, and two properties.

Properties: parsing never fails with anything but a one-line `UsageError`, and
`format_command` is an exact inverse of `parse_command` for every command it can return.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opendispatch.domain.commands import (
    USAGE,
    CancelJob,
    Command,
    ListJobs,
    ShowUsage,
    ListSessions,
    ParseSettings,
    RunJob,
    SendToSession,
    ShowHelp,
    ShowLogs,
    StartSession,
    StopSession,
    format_command,
    help_text,
    is_command,
    parse_command,
)
from opendispatch.domain.errors import UsageError
from opendispatch.domain.job import JobState
from opendispatch.domain.job_spec import (
    AgentKind,
    JobSpec,
    validate_branch,
    validate_image,
    validate_repo,
)

PY_IMAGE = "registry.fly.io/sprites/python:3.12"
NODE_IMAGE = "registry.fly.io/sprites/node@sha256:abc123"
DEFAULT_IMAGE = "registry.fly.io/sprites/agent:latest"
SETTINGS = ParseSettings(
    images={"python": PY_IMAGE, "node": NODE_IMAGE},
    default_agent=AgentKind.CLAUDE,
    default_image=DEFAULT_IMAGE,
    default_timeout_s=600.0,
)


def run(task: str, **changes: object) -> RunJob:
    fields: dict[str, object] = {
        "task": task,
        "agent": AgentKind.CLAUDE,
        "repo": None,
        "branch": "main",
        "image": DEFAULT_IMAGE,
        "timeout_s": 600.0,
    }
    fields.update(changes)
    return RunJob(JobSpec(**fields))  # type: ignore[arg-type]


def session_spec(**changes: object) -> JobSpec:
    fields: dict[str, object] = {"task": "", "agent": AgentKind.CLAUDE, "image": DEFAULT_IMAGE}
    fields.update(changes)
    return JobSpec(**fields)  # type: ignore[arg-type]


def usage_error(text: str, parse_settings: ParseSettings = SETTINGS) -> str:
    with pytest.raises(UsageError) as caught:
        parse_command(text, parse_settings)
    message = str(caught.value)
    assert len(message.splitlines()) == 1, message
    return message


# --- /od-run -------------------------------------------------------------------------------

RUN_CASES: list[tuple[str, Command]] = [
    ("/od-run fix the tests", run("fix the tests")),
    ("od-run fix the tests", run("fix the tests")),
    ("   /od-run   fix   the tests  \n", run("fix the tests")),
    ("/OD-RUN fix", run("fix")),
    ("Od-Run fix", run("fix")),
    ('/od-run "fix  the   tests"', run("fix  the   tests")),
    ("/od-run --repo acme/api fix it", run("fix it", repo="acme/api")),
    ("/od-run -r acme/api -b dev fix it", run("fix it", repo="acme/api", branch="dev")),
    ("/od-run --repo=acme/api --branch=feature/x fix", run("fix", repo="acme/api", branch="feature/x")),
    ("/od-run fix it --repo acme/api", run("fix it", repo="acme/api")),
    ("/od-run fix --repo acme/api it", run("fix it", repo="acme/api")),
    ("/od-run -a shell ls", run("ls", agent=AgentKind.SHELL)),
    ("/od-run --agent OpenCode go", run("go", agent=AgentKind.OPENCODE)),
    ("/od-run --agent=shell go", run("go", agent=AgentKind.SHELL)),
    ("/od-run --timeout 90s go", run("go", timeout_s=90.0)),
    ("/od-run --timeout=1h go", run("go", timeout_s=3600.0)),
    ("/od-run --timeout 1h30m go", run("go", timeout_s=5400.0)),
    ("/od-run --image python go", run("go", image=PY_IMAGE)),
    ("/od-run -i node go", run("go", image=NODE_IMAGE)),
    ("/od-run --image Python go", run("go", image=PY_IMAGE)),
    ("/od-run --image ghcr.io/acme/agent:1.2 go", run("go", image="ghcr.io/acme/agent:1.2")),
    (f"/od-run --image {PY_IMAGE} go", run("go", image=PY_IMAGE)),
    ("/od-run -- run pytest -v", run("run pytest -v")),
    ("/od-run --repo acme/api -- --repo is a flag", run("--repo is a flag", repo="acme/api")),
    ("/od-run run -- pytest -v", run("run pytest -v")),
    ('/od-run "run pytest -v"', run("run pytest -v")),
    ('/od-run "-v is a quoted word, not an option"', run("-v is a quoted word, not an option")),
    ("/od-run '--' stays text when quoted", run("-- stays text when quoted")),
    ('/od-run "echo $HOME"', run("echo $HOME")),
    ("/od-run echo $HOME and `whoami` !!", run("echo $HOME and `whoami` !!")),
    ('/od-run "line one\nline two"', run("line one\nline two")),
    ("/od-run 'say \"hi\" & exit'", run('say "hi" & exit')),
    ("/od-run \"don't break it\"", run("don't break it")),
    ("/od-run fix issue #42", run("fix issue #42")),
    ("/od-run match \\d+ in C:\\src\\app", run("match \\d+ in C:\\src\\app")),
    ("/od-run - dash alone", run("- dash alone")),
]

SMART_CASES: list[tuple[str, Command]] = [
    ("/od-run \u201cfix  it\u201d", run("fix  it")),  # “fix  it”
    ("/od-run \u201efix it\u201c", run("fix it")),  # „fix it“ (German)
    ("/od-run \u2018fix it\u2019", run("fix it")),  # ‘fix it’
    ("/od-run fix it, don\u2019t break", run("fix it, don\u2019t break")),  # apostrophe stays
    ("/od-run \u201cdon\u2019t \u2018break\u2019 it\u201d", run("don\u2019t \u2018break\u2019 it")),
    ("/od-run 'keep \u201csmart\u201d quotes'", run("keep \u201csmart\u201d quotes")),
    ('/od-run "keep \u201csmart\u201d quotes"', run("keep \u201csmart\u201d quotes")),
    ("/od-run \u2014repo acme/api go", run("go", repo="acme/api")),  # a phone's —repo
    ("/od-run \u2013agent shell go", run("go", agent=AgentKind.SHELL)),
    ("/od-run fix it \u2014 carefully", run("fix it \u2014 carefully")),  # a real dash is text
    ("/od-run fix\u00a0it", run("fix it")),  # no-break space separates words
]


@pytest.mark.parametrize(("text", "expected"), RUN_CASES + SMART_CASES)
def test_run(text: str, expected: Command) -> None:
    assert parse_command(text, SETTINGS) == expected


def test_run_defaults_come_from_the_settings() -> None:
    opencode = ParseSettings(default_agent=AgentKind.OPENCODE, default_timeout_s=120.0)
    assert parse_command("/od-run go", opencode) == run(
        "go", agent=AgentKind.OPENCODE, image=None, timeout_s=120.0
    )


def test_default_settings_are_claude_without_an_image() -> None:
    assert parse_command("/od-run go", ParseSettings()) == run("go", image=None)


def test_image_is_refused_where_sprites_run_no_images_rather_than_ignored() -> None:
    local = ParseSettings(images={"python": PY_IMAGE}, runs_images=False)
    for text in ('/od-run -i python "go"', '/od-start s1 --image python'):
        with pytest.raises(UsageError, match="--image needs sprites that run images"):
            parse_command(text, local)
    assert parse_command("/od-run go", local) == run("go", image=None)


def test_settings_images_are_read_only_and_compare_by_value() -> None:
    aliases = {"python": PY_IMAGE}
    parse_settings = ParseSettings(images=aliases)
    aliases["python"] = "changed:latest"
    assert parse_settings.images == {"python": PY_IMAGE}
    assert parse_settings == ParseSettings(images={"python": PY_IMAGE})
    with pytest.raises(TypeError):
        parse_settings.images["node"] = NODE_IMAGE  # type: ignore[index]


# --- the other commands ----------------------------------------------------------------------

OTHER_CASES: list[tuple[str, Command]] = [
    ("/od-start api", StartSession("api", session_spec(), persistent=False)),
    ("od-start API-fixer_2 --persistent", StartSession("api-fixer_2", session_spec(), persistent=True)),
    (
        "/od-start --repo acme/api bot -b dev -a shell -i python",
        StartSession(
            "bot",
            session_spec(repo="acme/api", branch="dev", agent=AgentKind.SHELL, image=PY_IMAGE),
            persistent=False,
        ),
    ),
    ("/od-stop api", StopSession(name="api", all=False)),
    ("/od-stop API", StopSession(name="api", all=False)),
    ("/od-stop --all", StopSession(name=None, all=True)),
    ("/od-list", ListSessions()),
    ("od-list  ", ListSessions()),
    ("/od-send bot please add tests", SendToSession("bot", "please add tests")),
    ("/od-send bot run pytest -v --lf", SendToSession("bot", "run pytest -v --lf")),
    ("/od-send bot -- -v first", SendToSession("bot", "-v first")),
    ('/od-send bot "two\nlines $HOME"', SendToSession("bot", "two\nlines $HOME")),
    ("/od-jobs", ListJobs()),
    ("/od-jobs --all", ListJobs(all=True)),
    ("/od-jobs --status failed --limit 5", ListJobs(status=JobState.FAILED, limit=5)),
    (
        "/od-jobs --status=Timed-Out --limit=100 --all",
        ListJobs(all=True, status=JobState.TIMED_OUT, limit=100),
    ),
    ("/od-usage", ShowUsage()),
    ("/od-usage --all --since 30d", ShowUsage(all=True, since_s=30 * 86400.0)),
    ("/od-usage --since 12h", ShowUsage(since_s=12 * 3600.0)),
    ("/od-usage --since 2w", ShowUsage(since_s=14 * 86400.0)),
    ("/od-run --max-cost $2.50 go", run(task="go", max_cost_usd=2.5)),
    ("/od-cancel j-1a2b3c4d", CancelJob("j-1a2b3c4d")),
    ("/od-cancel J-1A2B3C4D", CancelJob("j-1a2b3c4d")),
    ("/od-logs j-1a2b3c4d", ShowLogs("j-1a2b3c4d")),
    ("/od-logs j-1a2b3c4d --tail 50", ShowLogs("j-1a2b3c4d", tail=50)),
    ("/od-logs j-1a2b3c4d --raw", ShowLogs("j-1a2b3c4d", raw=True)),
    ('/od-logs j-1a2b3c4d --artifact "test report"', ShowLogs("j-1a2b3c4d", artifact="test report")),
    ("/od-logs --tail=10000 j-1a2b3c4d", ShowLogs("j-1a2b3c4d", tail=10_000)),
    ("/od-help", ShowHelp()),
    ("/od-help run", ShowHelp("od-run")),
    ("/od-help od-run", ShowHelp("od-run")),
    ("/od-help /OD-LOGS", ShowHelp("od-logs")),
    ("/od-run --help", ShowHelp("od-run")),
    ("/od-jobs -h", ShowHelp("od-jobs")),
    ("/od-send --help", ShowHelp("od-send")),
]


@pytest.mark.parametrize(("text", "expected"), OTHER_CASES)
def test_other_commands(text: str, expected: Command) -> None:
    assert parse_command(text, SETTINGS) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/od-run go", True),
        ("od-run go", True),
        ("  /OD-HELP", True),
        ("/od-frobnicate", True),  # a typo gets the command list, not silence
        ("hello there", False),
        ("please od-run this", False),
        ("", False),
        ("/od-", False),
        ("/run go", False),
        ("//od-run go", False),
    ],
)
def test_is_command(text: str, expected: bool) -> None:
    assert is_command(text) is expected


# --- errors --------------------------------------------------------------------------------

RUN_ERRORS: list[tuple[str, str]] = [
    ("/od-run", "Missing the task"),
    ("/od-run   ", "Missing the task"),
    ('/od-run ""', "Missing the task"),
    ("/od-run --repo acme/api", "Missing the task"),
    ("/od-run run pytest -v", "Unknown option -v"),
    ("/od-run --foo go", "Unknown option --foo"),
    ("/od-run --repo", "Missing the value after --repo"),
    ("/od-run go -r", "Missing the value after --repo"),
    ("/od-run --repo --branch dev go", "Missing the value after --repo"),
    ("/od-run --repo -x go", "Bad repository '-x'"),
    ("/od-run --repo 'a b' go", "Bad repository 'a b'"),
    ("/od-run --repo=--upload-pack=evil go", "Bad repository"),
    ("/od-run --branch -evil go", "Bad branch name '-evil'"),
    ("/od-run --branch a..b go", "Bad branch name"),
    ("/od-run --timeout soon go", "Bad timeout 'soon'"),
    ("/od-run --timeout 25h go", "between 1s and 24h"),
    ("/od-run --timeout " + "9" * 5000 + " go", "Bad timeout"),
    ("/od-run --agent gpt go", "Unknown agent 'gpt'"),
    ("/od-run --max-cost lots go", "Bad cost cap 'lots'"),
    ("/od-run --max-cost 0 go", "Bad cost cap '0'"),
    ("/od-run --max-cost -- go", "Missing the value after --max-cost"),
    ("/od-run --max-cost nan go", "Bad cost cap 'nan'"),
    ("/od-run --max-cost 99999 go", "at most 10000"),
    ("/od-run --image 'not an image' go", "Bad image"),
    ('/od-run "fix it', "Unbalanced double quote"),
    ("/od-run don't break it", "Unbalanced single quote"),
    ("/od-run \u201cfix it", "Unbalanced double quote"),
]


@pytest.mark.parametrize(("text", "problem"), RUN_ERRORS)
def test_run_errors_name_the_problem_and_end_with_the_usage(text: str, problem: str) -> None:
    message = usage_error(text)
    assert problem in message
    assert message.endswith(f"Usage: {USAGE['od-run']}")


def test_an_unknown_option_suggests_quoting_or_a_double_dash() -> None:
    message = usage_error("/od-run run pytest -v")
    assert "quote the task" in message
    assert "--" in message.split("Usage")[0].replace("-v", "")


def test_a_misspelt_option_suggests_the_right_one() -> None:
    assert "Did you mean --repo?" in usage_error("/od-run --reop acme/api go")


def test_a_flag_given_a_value_is_refused() -> None:
    assert "--persistent takes no value" in usage_error("/od-start bot --persistent=yes")


OTHER_ERRORS: list[tuple[str, str, str]] = [
    ("/od-start", "od-start", "Missing the session name"),
    ("/od-start -bad", "od-start", "Unknown option -bad"),
    ("/od-start 'bad name'", "od-start", "Bad session name"),
    ("/od-start " + "a" * 33, "od-start", "Bad session name"),
    ("/od-start bot fix the tests", "od-start", "/od-send bot"),
    ("/od-start bot --timeout 10m", "od-start", "Unknown option --timeout"),
    ("/od-stop", "od-stop", "Missing the session name (or --all)"),
    ("/od-stop bot --all", "od-stop", "not both"),
    ("/od-stop a b", "od-stop", "one session at a time"),
    ("/od-list everything", "od-list", "Unexpected text"),
    ("/od-send", "od-send", "Missing the session name"),
    ("/od-send bot", "od-send", "Missing the message"),
    ("/od-send bot --", "od-send", "Missing the message"),
    ("/od-send Bad.Name hi", "od-send", "Bad session name"),
    ("/od-jobs --status lost-forever", "od-jobs", "Unknown status"),
    ("/od-jobs --limit 0", "od-jobs", "Bad --limit 0"),
    ("/od-jobs --limit 101", "od-jobs", "1 to 100"),
    ("/od-jobs --limit ten", "od-jobs", "Bad --limit ten"),
    ("/od-jobs --limit", "od-jobs", "Missing the value after --limit"),
    ("/od-jobs recent", "od-jobs", "Unexpected text"),
    ("/od-cancel", "od-cancel", "Missing the job id"),
    ("/od-cancel 1a2b3c4d", "od-cancel", "Bad job id 1a2b3c4d"),
    ("/od-cancel j-1a2b3c4", "od-cancel", "Bad job id"),
    ("/od-cancel j-1a2b3c4d j-00000000", "od-cancel", "Unexpected text"),
    ("/od-logs j-zzzzzzzz", "od-logs", "Bad job id"),
    ("/od-logs j-1a2b3c4d --tail 0", "od-logs", "Bad --tail"),
    ("/od-logs j-1a2b3c4d --tail 10001", "od-logs", "1 to 10000"),
    ("/od-logs j-1a2b3c4d --tail -5", "od-logs", "Bad --tail -5"),
    ("/od-logs j-1a2b3c4d --raw --artifact report", "od-logs", "give one of them"),
    ('/od-logs j-1a2b3c4d --artifact " "', "od-logs", "needs the artifact's name"),
    ("/od-help run logs", "od-help", "one command at a time"),
]


@pytest.mark.parametrize(("text", "command", "problem"), OTHER_ERRORS)
def test_other_errors_name_the_problem_and_end_with_the_usage(text: str, command: str, problem: str) -> None:
    message = usage_error(text)
    assert problem in message
    assert message.endswith(f"Usage: {USAGE[command]}")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("/od-frobnicate now", "Unknown command /od-frobnicate."),
        ("/od-jbos", "Did you mean /od-jobs?"),
        ("hello there", "Not a command"),
        ("/od-help frobnicate", "No command frobnicate."),
    ],
)
def test_unknown_commands_list_the_commands(text: str, problem: str) -> None:
    message = usage_error(text)
    assert problem in message
    assert all(f"/{name}" in message for name in USAGE)


def test_user_text_in_an_error_cannot_break_the_line() -> None:
    message = usage_error('/od-run --repo="a\nb" go')
    assert "'a\\nb'" in message


# --- format_command --------------------------------------------------------------------------


def test_format_is_explicit_and_quotes_the_task_after_a_double_dash() -> None:
    command = run("echo $HOME; rm -rf / 'x'", repo="acme/api", timeout_s=5400.0)
    assert format_command(command) == (
        f"/od-run --repo acme/api --branch main --image {DEFAULT_IMAGE} --agent claude --timeout 1h30m "
        "-- 'echo $HOME; rm -rf / '\"'\"'x'\"'\"''"
    )


def test_format_emits_the_resolved_image_not_the_alias() -> None:
    command = parse_command("/od-run -i python go", SETTINGS)
    assert f"--image {PY_IMAGE}" in format_command(command)
    assert parse_command(format_command(command), SETTINGS) == command


@pytest.mark.parametrize(("text", "command"), RUN_CASES + SMART_CASES + OTHER_CASES)
def test_every_table_case_round_trips(text: str, command: Command) -> None:
    assert parse_command(format_command(command), SETTINGS) == command


def test_stop_session_needs_exactly_one_target() -> None:
    with pytest.raises(ValueError):
        StopSession(name="bot", all=True)
    with pytest.raises(ValueError):
        StopSession(name=None, all=False)


# --- help -----------------------------------------------------------------------------------


def test_usage_has_one_line_per_command() -> None:
    assert set(USAGE) == {
        "od-run", "od-start", "od-stop", "od-list", "od-send", "od-jobs", "od-usage", "od-cancel", "od-logs",
        "od-config", "od-approve", "od-deny", "od-help", "od-web",
    }
    assert all(usage.startswith(f"/{name}") and "\n" not in usage for name, usage in USAGE.items())


def test_help_overview_lists_every_usage() -> None:
    overview = help_text()
    assert all(usage in overview for usage in USAGE.values())


@pytest.mark.parametrize("topic", ["run", "od-run", "/od-run", "RUN"])
def test_help_for_one_command_explains_its_options(topic: str) -> None:
    text = help_text(topic)
    assert text.startswith(USAGE["od-run"])
    for option in ("--repo, -r", "--branch, -b", "--image, -i", "--agent, -a", "--timeout"):
        assert option in text
    assert "--persistent" not in text


def test_help_for_an_unknown_topic_falls_back_to_the_overview() -> None:
    text = help_text("frobnicate")
    assert text.startswith("No help for frobnicate.")
    assert USAGE["od-logs"] in text


# --- properties ------------------------------------------------------------------------------

COMMAND_WORDS = [f"{slash}{name}" for name in USAGE for slash in ("/", "")] + ["/OD-RUN", "od-frob", "/od-"]
TRICKY_TOKENS = [
    "--", "-", "--repo", "-r", "--repo=", "--branch", "-b", "--image", "-i", "--agent", "-a",
    "--timeout", "--persistent", "--persistent=x", "--all", "--status", "--limit", "--tail", "--help",
    "-h", '"', "'", "\u201c", "\u201d", "\u2018", "\u2019", "\u2014repo", "\u2014", "=", "j-1a2b3c4d",
    "acme/api", "python", "10m", "0", "100", "-5", "\n", "\x00", "\u00a0", "\\", "$HOME", "`x`",
]
token = st.one_of(st.sampled_from(TRICKY_TOKENS), st.text(max_size=8))
commandish = st.builds(
    lambda word, words: " ".join([word, *words]),
    st.sampled_from(COMMAND_WORDS),
    st.lists(token, max_size=8),
)

known_good_plus_noise = st.builds(
    lambda text, words: " ".join([text, *words]),
    st.sampled_from([text for text, _ in RUN_CASES + SMART_CASES + OTHER_CASES]),
    st.lists(token, max_size=3),
)


@settings(max_examples=300)
@given(st.one_of(st.text(), commandish))
def test_any_text_parses_or_gives_a_one_line_usage_error(text: str) -> None:
    parses_or_explains(text)


@settings(max_examples=300)
@given(known_good_plus_noise)
def test_good_commands_with_noise_parse_or_give_a_one_line_usage_error(text: str) -> None:
    parses_or_explains(text)


def parses_or_explains(text: str) -> None:
    """Either a command that survives a format/parse round trip, or a one-line usage error."""
    try:
        command = parse_command(text, SETTINGS)
    except UsageError as exc:
        message = str(exc)
        assert len(message.splitlines()) == 1
        assert "Usage: /od-" in message or "Commands: /od-run" in message
    else:
        assert is_command(text)
        assert parse_command(format_command(command), SETTINGS) == command


def _accepted_by(validate):  # type: ignore[no-untyped-def]
    def check(value: str) -> bool:
        try:
            return bool(validate(value) == value)
        except UsageError:
            return False

    return check


ALIASES = {alias.lower() for alias in SETTINGS.images}
repos = st.one_of(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,12}/[A-Za-z0-9._-]{1,20}", fullmatch=True),
    st.sampled_from(["https://github.com/acme/api.git", "git@github.com:acme/api.git", "/srv/my repos/api"]),
).filter(_accepted_by(validate_repo))
branches = st.from_regex(r"[A-Za-z0-9._/+-]{1,30}", fullmatch=True).filter(_accepted_by(validate_branch))
images = st.one_of(
    st.sampled_from([PY_IMAGE, NODE_IMAGE, DEFAULT_IMAGE]),
    st.from_regex(r"[a-z0-9][a-z0-9._/:@-]{0,40}", fullmatch=True)
    .filter(_accepted_by(validate_image))
    .filter(lambda image: image.lower() not in ALIASES),
)
free_text = st.text(st.characters(exclude_characters="\x00")).filter(lambda text: text.strip() != "")
names = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,31}", fullmatch=True)
job_ids = st.from_regex(r"j-[0-9a-f]{8}", fullmatch=True)


def specs(task: st.SearchStrategy[str], timeouts: st.SearchStrategy[float]) -> st.SearchStrategy[JobSpec]:
    return st.builds(
        JobSpec,
        task=task,
        agent=st.sampled_from(AgentKind),
        repo=st.none() | repos,
        branch=branches,
        image=images,
        timeout_s=timeouts,
        max_cost_usd=st.none() | st.integers(1, 1_000_000).map(lambda cents: cents / 100),
    )


commands: st.SearchStrategy[Command] = st.one_of(
    st.builds(RunJob, specs(free_text, st.integers(1, 86_400).map(float))),
    st.builds(StartSession, names, specs(st.just(""), st.just(SETTINGS.default_timeout_s)), st.booleans()),
    st.builds(StopSession, names, st.just(False)),
    st.just(StopSession(None, all=True)),
    st.just(ListSessions()),
    st.builds(SendToSession, names, free_text),
    st.builds(ListJobs, st.booleans(), st.none() | st.sampled_from(JobState), st.integers(1, 100)),
    st.builds(ShowUsage, st.booleans(), st.sampled_from([3600.0, 12 * 3600.0, 86400.0, 7 * 86400.0, 366 * 86400.0])),
    st.builds(CancelJob, job_ids),
    st.builds(ShowLogs, job_ids, st.none() | st.integers(1, 10_000), st.booleans()),
    st.builds(ShowHelp, st.none() | st.sampled_from(sorted(USAGE))),
)


@settings(max_examples=300)
@given(commands)
def test_format_then_parse_gives_the_same_command(command: Command) -> None:
    assert parse_command(format_command(command), SETTINGS) == command


def test_help_says_a_backslash_is_no_escape_and_single_quotes_keep_double_quotes() -> None:
    assert '\\" is not an escape' in help_text("od-run")
    assert parse_command("""/od-run -a shell 'say "hi"'""", ParseSettings()) == run('say "hi"', agent=AgentKind.SHELL, image=None)
    assert parse_command("""/od-run -a shell "it's here\"""", ParseSettings()) == run("it's here", agent=AgentKind.SHELL, image=None)
