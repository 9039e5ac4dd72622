"""Secrets never leave the sprite in clear: every relayed line passes through a Redactor.

Its secrets are the secret variables of the sidecar's environment, and the tokens it is
given later (`add`: the repository tokens the credential broker fetches, from its thread).
"""

from typing import Dict

SECRET_ENV_NAMES = (
    "JOB_TOKEN",
    "SESSION_TOKEN",
    "GH_TOKEN",
    "GITHUB_TOKEN",
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "DATABASE_URL",
)
#: The dispatcher names every other secret it passed through here (names only, comma-separated).
SECRET_NAMES_ENV = "OPENDISPATCH_SECRET_NAMES"
MIN_REDACTED_LEN = 6  # shorter values would mangle ordinary output if redacted
REDACTED = "[redacted]"


class Redactor:
    """Replaces the values of secret environment variables with a marker."""

    def __init__(self, env: Dict[str, str]) -> None:
        named = [name.strip() for name in env.get(SECRET_NAMES_ENV, "").split(",") if name.strip()]
        values = {env.get(name, "") for name in (*SECRET_ENV_NAMES, *named)}
        self._secrets = sorted((v for v in values if len(v) >= MIN_REDACTED_LEN), key=len, reverse=True)

    def add(self, secret: str) -> None:
        """One more secret (a token fetched while the job runs); the list is replaced, never changed."""
        if len(secret) >= MIN_REDACTED_LEN and secret not in self._secrets:
            self._secrets = sorted(self._secrets + [secret], key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text
