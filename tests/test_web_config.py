"""The web view's settings: on by default, off with OPENDISPATCH_WEB=0, a public base URL."""

from __future__ import annotations

from opendispatch.config import DEFAULT_WEB_GRANT_S, DEFAULT_WEB_LINK_S, Config


def test_on_by_default_with_a_week_for_cards_and_twelve_hours_for_od_web() -> None:
    config = Config.from_env({}, dotenv=None)
    assert config.web_enabled and config.web_url is None
    assert (config.web_link_s, config.web_grant_s) == (DEFAULT_WEB_LINK_S, DEFAULT_WEB_GRANT_S) == (604800.0, 43200.0)


def test_settings_are_read_and_bad_ones_named() -> None:
    config = Config.from_env(
        {"OPENDISPATCH_WEB": "0", "OPENDISPATCH_WEB_URL": "https://od.example.com/", "OPENDISPATCH_WEB_LINK_S": "60"},
        dotenv=None,
    )
    assert not config.web_enabled and config.web_url == "https://od.example.com" and config.web_link_s == 60.0
    problems = Config.problems(
        {"OPENDISPATCH_WEB": "maybe", "OPENDISPATCH_WEB_URL": "https://u:p@od.example.com", "OPENDISPATCH_WEB_GRANT_S": "-1"}
    )
    named = {problem.message.split("=")[0].split(" ")[0] for problem in problems}
    assert named == {"OPENDISPATCH_WEB", "OPENDISPATCH_WEB_URL", "OPENDISPATCH_WEB_GRANT_S"}


def test_on_fly_the_links_use_the_apps_public_address_not_the_private_one() -> None:
    config = Config.from_env({"FLY_APP_NAME": "od-team"}, dotenv=None)
    assert config.web_url == "https://od-team.fly.dev"
    assert Config.from_env({"OPEN_DISPATCH_URL": "https://od.example.com"}, dotenv=None).web_url == "https://od.example.com"


def test_doctor_says_where_card_links_point_and_warns_when_chat_users_cannot_open_them() -> None:
    from opendispatch.doctor import report

    lines, _ = report({"OPENDISPATCH_WEB_URL": "https://od.example.com"})
    assert "✓ web view: cards link to https://od.example.com/jobs/…" in lines
    lines, _ = report({"CHAT_PROVIDER": "slack", "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"})
    assert any(line.startswith("· warning: cards will link to the server's bind address") for line in lines)
    lines, _ = report({"OPENDISPATCH_WEB": "0"})
    assert any("web view off" in line for line in lines)
