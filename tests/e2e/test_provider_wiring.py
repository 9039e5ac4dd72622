"""CHAT_PROVIDER selects the adapter through the composition root; missing settings say what to set."""

from __future__ import annotations

import pytest

from opendispatch.adapters.memory.sprites import FakeSprites
from opendispatch.adapters.memory.store import MemoryJobStore
from opendispatch.bootstrap import open_dispatcher
from opendispatch.config import Config
from opendispatch.domain.errors import ConfigError


@pytest.mark.parametrize(
    "provider,missing",
    [("slack", "SLACK_BOT_TOKEN"), ("teams", "TEAMS_APP_ID"), ("discord", "DISCORD_BOT_TOKEN")],
)
async def test_each_provider_is_wired_and_names_its_missing_variable(provider: str, missing: str) -> None:
    config = Config.from_env({"CHAT_PROVIDER": provider}, dotenv=None)
    with pytest.raises(ConfigError, match=missing):
        async with open_dispatcher(config, sprites=FakeSprites(), store=MemoryJobStore(), bind="127.0.0.1:0"):
            pass


def test_an_unknown_provider_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="console, slack, teams, discord"):
        Config.from_env({"CHAT_PROVIDER": "irc"}, dotenv=None)
