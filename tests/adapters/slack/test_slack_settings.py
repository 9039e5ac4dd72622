"""`SlackSettings.from_env`: the tokens decide the mode; every mistake names its variable."""

from __future__ import annotations

import pytest

from opendispatch.adapters.slack import SlackMode, SlackSettings
from opendispatch.domain.errors import ConfigError

BOT = "xoxb-1-2-abc"


def test_an_app_token_means_socket_mode_and_a_signing_secret_alone_means_http_mode() -> None:
    assert SlackSettings.from_env({"SLACK_BOT_TOKEN": BOT, "SLACK_APP_TOKEN": "xapp-1"}).mode is SlackMode.SOCKET
    assert SlackSettings.from_env({"SLACK_BOT_TOKEN": BOT, "SLACK_SIGNING_SECRET": "s"}).mode is SlackMode.HTTP
    both = {"SLACK_BOT_TOKEN": BOT, "SLACK_APP_TOKEN": "xapp-1", "SLACK_SIGNING_SECRET": "s"}
    assert SlackSettings.from_env(both).mode is SlackMode.SOCKET
    assert SlackSettings.from_env({**both, "SLACK_MODE": "http"}).mode is SlackMode.HTTP


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "SLACK_BOT_TOKEN"),
        ({"SLACK_BOT_TOKEN": "xapp-oops"}, "SLACK_BOT_TOKEN"),
        ({"SLACK_BOT_TOKEN": BOT}, "SLACK_APP_TOKEN"),
        ({"SLACK_BOT_TOKEN": BOT, "SLACK_APP_TOKEN": "xoxb-wrong"}, "SLACK_APP_TOKEN"),
        ({"SLACK_BOT_TOKEN": BOT, "SLACK_MODE": "http"}, "SLACK_SIGNING_SECRET"),
        ({"SLACK_BOT_TOKEN": BOT, "SLACK_APP_TOKEN": "xapp-1", "SLACK_MODE": "carrier-pigeon"}, "SLACK_MODE"),
    ],
)
def test_missing_or_wrong_values_are_refused_with_the_variable_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        SlackSettings.from_env(env)


def test_secrets_stay_out_of_repr() -> None:
    settings = SlackSettings.from_env({"SLACK_BOT_TOKEN": BOT, "SLACK_APP_TOKEN": "xapp-secret", "SLACK_SIGNING_SECRET": "sig"})
    assert BOT not in repr(settings) and "xapp-secret" not in repr(settings) and "sig'" not in repr(settings)
