"""The sidecar's parts in process: the pure pieces every job goes through.

The program as a whole is tested by running the built file (test_sprite_reporter.py); these
pin the small rules that are easy to break when editing one module.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import harness  # noqa: F401  (puts sidecar/src on sys.path)
from sprite_reporter.agents import agent_argv
from sprite_reporter.artifacts import Artifacts, describe_url
from sprite_reporter.config import ConfigError, load_connection, load_run, load_tuning
from sprite_reporter.http import retry_after_seconds
from sprite_reporter.job import display_repo, repo_url
from sprite_reporter.process import MAX_LINE_BYTES, exit_code_of, pump_lines
from sprite_reporter.redact import REDACTED, Redactor


def test_secrets_are_redacted_longest_first_and_short_values_are_left_alone() -> None:
    redact = Redactor({"JOB_TOKEN": "abcdef", "GH_TOKEN": "abcdefgh-long", "OPENAI_API_KEY": "abc"})
    assert redact("x abcdefgh-long y abcdef z abc") == f"x {REDACTED} y {REDACTED} z abc"


def test_the_task_is_always_one_argv_element() -> None:
    task = "fix it; rm -rf / $(whoami)"
    assert agent_argv("claude", task)[-2:] == ["--", task]
    assert agent_argv("claude", "-p", "2.5")[-4:] == ["--max-budget-usd", "2.5", "--", "-p"]
    assert agent_argv("opencode", task) == ["opencode", "run", "--format", "json", "--", task]
    assert agent_argv("shell", "-x")[-2:] == ["--", "-x"]


def test_configuration_errors_name_the_variable(tmp_path: Path) -> None:
    base = {"JOB_ID": "j", "JOB_TOKEN": "s3cret-token", "OPEN_DISPATCH_URL": "https://example.com:8443/od/"}
    connection = load_connection(base)
    assert (connection.scheme, connection.host, connection.port, connection.prefix) == (
        "https", "example.com", 8443, "/od"
    )
    assert "s3cret-token" not in repr(connection)
    with pytest.raises(ConfigError) as bad_url:
        load_connection(dict(base, OPEN_DISPATCH_URL="ftp://x"))
    assert bad_url.value.variable == "OPEN_DISPATCH_URL"
    with pytest.raises(ConfigError) as bad_number:
        load_tuning({"OPENDISPATCH_BATCH_MS": "inf"})
    assert bad_number.value.variable == "OPENDISPATCH_BATCH_MS"
    plan = load_run({"COMMAND": "echo 'a b'", "OPENDISPATCH_WORKSPACE": str(tmp_path)})
    assert plan.argv == ["echo", "a b"] and plan.branch == "main" and plan.repo is None
    with pytest.raises(ConfigError) as no_task:
        load_run({"AGENT": "claude", "OPENDISPATCH_WORKSPACE": str(tmp_path)})
    assert no_task.value.variable == "TASK"


def test_retry_after_is_seconds_or_a_date_capped_at_a_minute() -> None:
    assert retry_after_seconds("2.5", 0.0) == 2.5
    assert retry_after_seconds("Thu, 01 Jan 1970 00:00:30 GMT", 0.0) == pytest.approx(30.0)
    assert retry_after_seconds("9999", 0.0) == 60.0
    assert retry_after_seconds("-3", 0.0) == 0.0
    assert retry_after_seconds("soon", 0.0) is None and retry_after_seconds("nan", 0.0) is None


def test_pump_keeps_empty_and_last_lines_and_splits_long_ones_on_characters() -> None:
    long = "é" * MAX_LINE_BYTES  # two bytes a character: the line comes in pieces
    data = b"one\r\n\nbad \xff\n" + long.encode() + b"\nlast"
    lines: list[str] = []
    pump_lines(io.BytesIO(data), lines.append)
    assert lines[:3] == ["one", "", "bad \ufffd"]
    assert "".join(lines[3:-1]) == long and len(lines[3:-1]) > 1
    assert all(len(piece.encode()) <= MAX_LINE_BYTES for piece in lines[3:-1])
    assert lines[-1] == "last"


def test_exit_codes_follow_the_shell_convention() -> None:
    assert (exit_code_of(0), exit_code_of(3), exit_code_of(-15)) == (0, 3, 143)


def test_repositories_resolve_to_what_git_clones(tmp_path: Path) -> None:
    assert repo_url("octo/hello") == ("https://github.com/octo/hello.git", True)
    assert repo_url("octo/hello.git") == ("https://github.com/octo/hello.git", True)
    assert repo_url("git@gitlab.com:a/b.git") == ("git@gitlab.com:a/b.git", True)
    assert repo_url(str(tmp_path)) == (str(tmp_path), False)
    assert display_repo("https://user:secret@host/a/b.git") == "https://host/a/b.git"


def test_artifacts_come_from_the_output_and_the_file_once_each(tmp_path: Path) -> None:
    assert describe_url("https://github.com/o/r/pull/7") == ("o/r#7", "pull_request")
    assert describe_url("https://gitlab.com/g/s/p/-/merge_requests/3") == ("g/s/p!3", "pull_request")
    found = Artifacts()
    found.scan("opened https://github.com/o/r/pull/7 and https://github.com/o/r/pull/7")
    listing = tmp_path / "artifacts"
    listing.write_text("# comment\nhttps://github.com/o/r/pull/7\nreport\tout/report.html\nhttps://example.com/x\n")
    found.read_file(str(listing), str(tmp_path), lambda text: text)
    assert found.collected() == [
        {"name": "o/r#7", "url": "https://github.com/o/r/pull/7", "type": "pull_request"},
        {"name": "report", "url": str(tmp_path / "out" / "report.html"), "type": "file"},
        {"name": "https://example.com/x", "url": "https://example.com/x", "type": "link"},
    ]


def test_every_passed_through_secret_is_redacted_by_name_database_url_included() -> None:
    env = {
        "DATABASE_URL": "postgres://app:hunter2pw@db:5432/app",
        "MY_API_KEY": "k-0123456789",
        "ANTHROPIC_MODEL": "claude-model-x",
        "OPENDISPATCH_SECRET_NAMES": "DATABASE_URL,MY_API_KEY",
    }
    redact = Redactor(env)
    assert redact("db=postgres://app:hunter2pw@db:5432/app key=k-0123456789 model=claude-model-x") == (
        f"db={REDACTED} key={REDACTED} model=claude-model-x"
    )
    assert Redactor({"DATABASE_URL": "postgres://x:y@z/w"})("postgres://x:y@z/w") == REDACTED  # named or not


def test_the_spool_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    from sprite_reporter.relay import Relay

    spool = tmp_path / "spool.jsonl"
    spool.write_bytes(b"old")
    spool.chmod(0o644)
    writer, path = Relay._open_spool(str(spool))
    writer.close()
    assert path == str(spool) and spool.stat().st_mode & 0o777 == 0o600 and spool.read_bytes() == b""
