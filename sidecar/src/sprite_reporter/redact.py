"""Secrets never leave the sprite in clear: every relayed line passes through a Redactor."""

from typing import Dict

SECRET_ENV_NAMES = ("JOB_TOKEN", "SESSION_TOKEN", "GH_TOKEN", "GITHUB_TOKEN", "ANTHROPIC_API_KEY", "OPENAI_API_KEY")
MIN_REDACTED_LEN = 6  # shorter values would mangle ordinary output if redacted
REDACTED = "[redacted]"


class Redactor:
    """Replaces the values of secret environment variables with a marker."""

    def __init__(self, env: Dict[str, str]) -> None:
        values = {env.get(name, "") for name in SECRET_ENV_NAMES}
        self._secrets = sorted((v for v in values if len(v) >= MIN_REDACTED_LEN), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text
