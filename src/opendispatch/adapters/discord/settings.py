"""What the Discord adapter needs to know, read from the environment by `from_env`.

The adapter reads no environment itself (only `config.py` reads `os.environ`): the
composition root passes the mapping it already read, and every problem is a `ConfigError`
that names the variable and the fix.
"""

from __future__ import annotations

import re

import attrs

from ...support.settings import ReadsDeclaredSettings, Setting, SettingsReader

DEFAULT_API_BASE_URL = "https://discord.com/api/v10"
GATEWAY = "gateway"
HTTP = "http"
MODES = (GATEWAY, HTTP)

DISCORD_BOT_TOKEN = Setting(
    "DISCORD_BOT_TOKEN", "Discord developer portal → Bot → Token", required=True, secret=True
)
DISCORD_CLIENT_ID = Setting(
    "DISCORD_CLIENT_ID", "Discord developer portal → General Information → Application ID", required=True
)
DISCORD_GUILD_ID = Setting(
    "DISCORD_GUILD_ID", "register commands in one server for instant updates (else global)"
)
DISCORD_PUBLIC_KEY = Setting("DISCORD_PUBLIC_KEY", "HTTP-interactions mode: General Information → Public Key")
DISCORD_INTERACTIONS = Setting(
    "DISCORD_INTERACTIONS",
    "how interactions reach us: gateway, or http (needs DISCORD_PUBLIC_KEY)",
    "http when DISCORD_PUBLIC_KEY is set, else gateway",
)
DISCORD_API_BASE_URL = Setting(
    "DISCORD_API_BASE_URL", "Discord's REST API (tests point it at a fake)", DEFAULT_API_BASE_URL, listed=False
)
DISCORD_GATEWAY_URL = Setting(
    "DISCORD_GATEWAY_URL", "Discord's gateway (tests point it at a fake)", "the one Discord names", listed=False
)

#: Every setting the Discord adapter reads, in the order `doctor` lists them.
SETTINGS = (
    DISCORD_BOT_TOKEN,
    DISCORD_CLIENT_ID,
    DISCORD_GUILD_ID,
    DISCORD_PUBLIC_KEY,
    DISCORD_INTERACTIONS,
    DISCORD_API_BASE_URL,
    DISCORD_GATEWAY_URL,
)

_SNOWFLAKE = re.compile(r"[0-9]{1,20}")
_PUBLIC_KEY = re.compile(r"[0-9a-fA-F]{64}")


def _hidden(_: object) -> str:
    return "***"


@attrs.frozen
class DiscordSettings(ReadsDeclaredSettings):
    """`mode` says how interactions reach us: the gateway (discord.py) or HTTP POSTs.

    `api_base_url` and `gateway_url` exist so tests can point everything at loopback fakes;
    production leaves them at their defaults.
    """

    bot_token: str = attrs.field(repr=_hidden)
    application_id: str
    public_key: str | None = None
    guild_id: str | None = None
    mode: str = GATEWAY
    api_base_url: str = DEFAULT_API_BASE_URL
    gateway_url: str | None = None
    defer_after_s: float = 1.5
    restart_initial_s: float = 1.0
    restart_max_s: float = 300.0

    @classmethod
    def _settings(cls, read: SettingsReader) -> DiscordSettings | None:
        token = read.text(DISCORD_BOT_TOKEN)
        if token is None:
            read.add(
                DISCORD_BOT_TOKEN,
                "DISCORD_BOT_TOKEN is not set: copy the bot token from the Developer Portal "
                "(your application > Bot > Reset Token).",
            )
        application_id = read.text(DISCORD_CLIENT_ID)
        if application_id is None or not _SNOWFLAKE.fullmatch(application_id):
            read.add(
                DISCORD_CLIENT_ID,
                "DISCORD_CLIENT_ID must be your application's id (digits), from the Developer Portal "
                "(your application > General Information > Application ID).",
            )
        public_key = read.text(DISCORD_PUBLIC_KEY)
        if public_key is not None and not _PUBLIC_KEY.fullmatch(public_key):
            read.add(
                DISCORD_PUBLIC_KEY,
                "DISCORD_PUBLIC_KEY must be the 64 hex characters shown as Public Key under "
                "General Information in the Developer Portal.",
            )
        guild_id = read.text(DISCORD_GUILD_ID)
        if guild_id is not None and not _SNOWFLAKE.fullmatch(guild_id):
            read.add(
                DISCORD_GUILD_ID,
                "DISCORD_GUILD_ID must be a server id (digits): right-click the server with "
                "Developer Mode on > Copy Server ID, or leave it unset for global commands.",
            )
        mode = (read.text(DISCORD_INTERACTIONS) or (HTTP if public_key else GATEWAY)).lower()
        if mode not in MODES:
            read.add(DISCORD_INTERACTIONS, f"DISCORD_INTERACTIONS={mode!r} must be gateway or http.")
        elif mode == HTTP and public_key is None:
            read.add(
                DISCORD_PUBLIC_KEY, "DISCORD_INTERACTIONS=http needs DISCORD_PUBLIC_KEY to verify Discord's signatures."
            )
        if read.problems or token is None or application_id is None:
            return None
        return cls(
            bot_token=token,
            application_id=application_id,
            public_key=public_key,
            guild_id=guild_id,
            mode=mode,
            api_base_url=(read.text(DISCORD_API_BASE_URL) or DEFAULT_API_BASE_URL).rstrip("/"),
            gateway_url=read.text(DISCORD_GATEWAY_URL),
        )
