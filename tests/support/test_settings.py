"""The environment-settings schema: declarations written once, one reader that keeps every problem."""

from __future__ import annotations

import pytest

from opendispatch import config
from opendispatch.adapters.github import settings as github_app
from opendispatch.domain.errors import ConfigError
from opendispatch.domain.sidecar import PASSTHROUGH_SECRETS
from opendispatch.support.settings import Problem, Setting, SettingsReader, names, switch, whole_number

PORT = Setting("PORT", "a port", "8080")
FLAG = Setting("FLAG", "a switch", "0")


def _port(text: str | None) -> int:
    if text is None:
        return 8080
    if not text.isdigit():
        raise ConfigError(f"PORT={text!r} must be a port number.")
    return int(text)


def test_the_reader_strips_values_and_treats_an_empty_one_as_unset() -> None:
    read = SettingsReader({"PORT": "  81 ", "FLAG": "   "})
    assert read.text(PORT) == "81" and read.text(FLAG) is None
    assert read.parse(PORT, _port, 0) == 81 and read.problems == []


def test_the_reader_keeps_every_problem_naming_its_variable_and_goes_on_with_the_fallback() -> None:
    read = SettingsReader({"PORT": "eighty", "FLAG": "maybe"})
    assert read.parse(PORT, _port, 8080) == 8080
    assert read.switch(FLAG, default=True) is True
    read.add(None, "about several settings")
    assert read.problems == [
        Problem("PORT='eighty' must be a port number.", "PORT"),
        Problem("FLAG='maybe' must be 1 or 0 (true/false, yes/no, on/off).", "FLAG"),
        Problem("about several settings"),
    ]
    assert read.setting_problems()[:2] == [(p.variable, p.message) for p in read.problems[:2]]


@pytest.mark.parametrize(("text", "default", "expected"), [("Yes", False, True), ("off", True, False), (None, True, True)])
def test_a_switch_reads_the_usual_spellings(text: str | None, default: bool, expected: bool) -> None:
    assert switch(FLAG, text, default) is expected


def test_a_whole_number_is_at_least_one_and_names_its_variable() -> None:
    assert whole_number(PORT, None, 7) == 7 and whole_number(PORT, "12", 7) == 12
    for bad in ("0", "-1", "²", "1.5"):
        with pytest.raises(ConfigError, match=r"PORT='.*' must be a whole number such as 7\."):
            whole_number(PORT, bad, 7)
    assert names(" a, b ,,a ") == frozenset({"a", "b"})


def test_each_variable_is_declared_once_across_every_reader() -> None:
    every = [
        *config.SETTINGS,
        *github_app.SETTINGS,
        *(s for provider in config.CHAT_PROVIDERS for s in config.chat_settings(provider)),
    ]
    declared = [setting.name for setting in every]
    assert len(declared) == len(set(declared)), sorted(name for name in declared if declared.count(name) > 1)
    assert [s.name for s in config.PASSTHROUGH] == list(PASSTHROUGH_SECRETS)
    assert set(config.secret_variables()) >= {"FLY_API_TOKEN", "SLACK_SIGNING_SECRET", "DISCORD_BOT_TOKEN", "TEAMS_APP_PASSWORD"}


@pytest.mark.parametrize("provider", ["slack", "teams", "discord"])
def test_doctor_lists_the_declared_settings_of_the_chosen_provider(provider: str, tmp_path: object) -> None:
    from opendispatch.doctor import report

    lines, _ = report({"CHAT_PROVIDER": provider, "WEBHOOK_PORT": "0", "OPENDISPATCH_DB": f"{tmp_path}/jobs.db"})
    rows = {line.split()[1]: line for line in lines if line[:2] in ("✓ ", "· ", "✗ ")}
    for setting in config.chat_settings(provider):
        if setting.listed:
            assert setting.name in rows and (setting.meaning in rows[setting.name] or rows[setting.name].startswith("✗"))
        else:
            assert setting.name not in rows
