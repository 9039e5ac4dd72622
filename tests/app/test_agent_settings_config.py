"""Passed-through agent settings: secrets are redacted, a model's name and switches are not."""

from __future__ import annotations

from opendispatch.config import Config


def test_passed_through_secrets_are_redacted_but_model_names_and_switches_are_not() -> None:
    config = Config.from_env(
        {
            "OPENDISPATCH_PASSTHROUGH_ENV": "ANTHROPIC_MODEL,OPENCODE_CONFIG_CONTENT,CLAUDE_CODE_MAX_RETRIES,MY_TOKEN",
            "ANTHROPIC_MODEL": "claude-sonnet-4-5",
            "OPENCODE_CONFIG_CONTENT": '{"provider": {"anthropic": {"options": {"apiKey": "sk-secret-1"}}}}',
            "CLAUDE_CODE_MAX_RETRIES": "100000",
            "MY_TOKEN": "tok-secret-2",
        },
        dotenv=None,
    )
    assert config.passthrough["ANTHROPIC_MODEL"] == "claude-sonnet-4-5"  # the sprites get them all
    assert "claude-sonnet-4-5" not in config.secret_values
    assert "100000" not in config.secret_values
    assert "tok-secret-2" in config.secret_values
    assert config.passthrough["OPENCODE_CONFIG_CONTENT"] in config.secret_values
