"""Output quota settings reach the runner, and a bad number is a one-line problem, not a crash."""

from __future__ import annotations

import pytest

from opendispatch.bootstrap import runner_settings_for
from opendispatch.config import Config
from opendispatch.domain.errors import ConfigError


def test_the_output_quota_settings_reach_the_runner() -> None:
    config = Config.from_env({"OPENDISPATCH_MAX_OUTPUT_LINES": "1000", "OPENDISPATCH_MAX_OUTPUT_MB": "2"}, dotenv=None)
    settings = runner_settings_for(config)
    assert (settings.max_output_lines, settings.max_output_chars) == (1000, 2 * 1024 * 1024)
    defaults = runner_settings_for(Config.from_env({}, dotenv=None))
    assert (defaults.max_output_lines, defaults.max_output_chars) == (200_000, 50 * 1024 * 1024)


@pytest.mark.parametrize("text", ["0", "-5", "lots", "\u00b2", "1e6"])
def test_a_quota_that_is_not_a_whole_number_is_refused_in_one_line(text: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Config.from_env({"OPENDISPATCH_MAX_OUTPUT_LINES": text}, dotenv=None)
    assert str(refused.value) == f"OPENDISPATCH_MAX_OUTPUT_LINES={text!r} must be a whole number such as 200000."


def test_each_chat_adapter_declares_its_limits_and_the_runner_takes_them() -> None:
    from opendispatch.adapters.console.chat import ConsoleChat
    from opendispatch.adapters.discord.chat import DiscordChat
    from opendispatch.adapters.memory.chat import MemoryChat
    from opendispatch.adapters.slack.chat import SlackChat
    from opendispatch.adapters.teams.chat import TeamsChat
    from opendispatch.ports.chat import ChatLimits, DeclaresLimits

    pages = {kind.__name__: kind.limits.page_chars for kind in (ConsoleChat, DiscordChat, SlackChat, TeamsChat, MemoryChat)}
    assert pages == {"ConsoleChat": 3000, "DiscordChat": 1800, "SlackChat": 3000, "TeamsChat": 2800, "MemoryChat": 3000}
    assert isinstance(MemoryChat(), DeclaresLimits)
    config = Config.from_env({}, dotenv=None)
    assert runner_settings_for(config, DiscordChat.limits).page_chars == 1800
    assert runner_settings_for(config).edit_interval_s == ChatLimits().edit_interval_s  # a chat that declares none
