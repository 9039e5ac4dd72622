"""The one validation `serve` and `doctor` share: every problem at once, each with its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendispatch.config import Config
from opendispatch.doctor import report
from opendispatch.domain.errors import ConfigError
from opendispatch.validation import Problem, validate


def test_every_configuration_problem_is_reported_at_once() -> None:
    env = {"WEBHOOK_PORT": "eighty", "SPRITE_AGENT_TYPE": "robot", "OPENDISPATCH_SILENCE_S": "soon"}
    problems = validate(env)
    assert [p.variable for p in problems] == ["WEBHOOK_PORT", "SPRITE_AGENT_TYPE", "OPENDISPATCH_SILENCE_S"]
    with pytest.raises(ConfigError) as caught:
        Config.from_env(env, dotenv=None)
    assert str(caught.value).splitlines() == [p.message for p in problems]  # serve prints them one per line


@pytest.mark.parametrize(
    ("env", "variables"),
    [
        ({"CHAT_PROVIDER": "slack"}, ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"]),
        ({"CHAT_PROVIDER": "teams"}, ["TEAMS_APP_ID", "TEAMS_APP_PASSWORD"]),
        ({"CHAT_PROVIDER": "discord", "DISCORD_CLIENT_ID": "my-app"}, ["DISCORD_BOT_TOKEN", "DISCORD_CLIENT_ID"]),
        ({"OPENDISPATCH_SPRITES": "fly"}, ["FLY_API_TOKEN", "FLY_SPRITE_APP", "SPRITE_IMAGE"]),
    ],
)
def test_each_provider_and_backend_names_every_missing_variable(env: dict[str, str], variables: list[str]) -> None:
    problems = validate(env)
    assert [p.variable for p in problems] == variables
    assert all(p.variable in p.message for p in problems if p.variable)  # the message names what to set


def test_a_valid_configuration_has_no_problems() -> None:
    assert validate({}) == []
    assert validate({"CHAT_PROVIDER": "slack", "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}) == []


def test_a_wrong_secret_is_named_but_never_shown(tmp_path: Path) -> None:
    env = {
        "CHAT_PROVIDER": "slack",
        "SLACK_BOT_TOKEN": "xapp-wrong-kind-of-secret-1234",
        "SLACK_APP_TOKEN": "xoxb-also-wrong-secret-5678",
        "WEBHOOK_PORT": "0",
        "OPENDISPATCH_DB": str(tmp_path / "jobs.db"),
    }
    lines, status = report(env)
    text = "\n".join(lines)
    assert status == 1
    assert "SLACK_BOT_TOKEN must be the bot token" in text and "SLACK_APP_TOKEN must be an app-level token" in text
    assert "wrong-kind-of-secret" not in text and "also-wrong-secret" not in text
    assert lines[-1] == "2 problems to fix before `serve`."


def test_problems_without_a_row_of_their_own_are_listed_and_counted(tmp_path: Path) -> None:
    env = {"OPENDISPATCH_SILENCE_S": "soon", "WEBHOOK_PORT": "0", "OPENDISPATCH_DB": str(tmp_path / "jobs.db")}
    lines, status = report(env)
    crosses = [line for line in lines if line.startswith("✗")]
    assert status == 1 and len(crosses) == 1 and "OPENDISPATCH_SILENCE_S='soon'" in crosses[0], lines
    assert lines[-1] == "1 problem to fix before `serve`."
    assert Problem("x").variable is None


def test_a_postgresql_url_is_not_checked_as_a_file_and_its_password_is_never_in_a_problem() -> None:
    from opendispatch.validation import check_database

    url = "postgresql://od:s3cret-pass@127.0.0.1:1/od"
    assert check_database(url) is None  # a server: doctor checks the connection instead
    problem = check_database("/proc/not-writable/jobs.db")
    assert problem is not None and "s3cret-pass" not in problem.message
