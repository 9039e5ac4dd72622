"""What the Teams adapter needs to know, read from the environment once.

The two URLs that name Microsoft's identity endpoints are settings rather than constants so
that tests (and sovereign clouds) can point them elsewhere; everything else has the value
Microsoft documents for the public cloud (see docs/teams.md).
"""

from __future__ import annotations


import attrs

from ...domain.errors import ConfigError
from ...support.settings import ReadsDeclaredSettings, Setting, SettingsReader

BOT_FRAMEWORK_OPENID_METADATA_URL = "https://login.botframework.com/v1/.well-known/openidconfiguration"
BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
BOT_FRAMEWORK_SCOPE = "https://api.botframework.com/.default"
LEGACY_MULTI_TENANT = "botframework.com"
TEAMS_CHANNEL_ID = "msteams"
DEFAULT_EDIT_INTERVAL_S = 2.0

TEAMS_APP_ID = Setting("TEAMS_APP_ID", "Azure Bot registration → Microsoft App ID", required=True)
TEAMS_APP_PASSWORD = Setting(
    "TEAMS_APP_PASSWORD", "Azure Bot registration → client secret", required=True, secret=True
)
TEAMS_TENANT_ID = Setting(
    "TEAMS_TENANT_ID", "single-tenant bots (all new ones): Azure → Microsoft Entra ID → Tenant ID"
)
TEAMS_STREAMING = Setting("TEAMS_STREAMING", "0 turns Teams' streaming off in personal chats (docs/teams.md)", "1")
TEAMS_EDIT_INTERVAL_S = Setting(
    "TEAMS_EDIT_INTERVAL_S", "least seconds between two edits of a job's live message", f"{DEFAULT_EDIT_INTERVAL_S:g}"
)
TEAMS_OPENID_METADATA_URL = Setting(
    "TEAMS_OPENID_METADATA_URL",
    "the Bot Framework's OpenID metadata (tests, sovereign clouds)",
    BOT_FRAMEWORK_OPENID_METADATA_URL,
    listed=False,
)
TEAMS_TOKEN_URL = Setting(
    "TEAMS_TOKEN_URL", "the token endpoint (tests, sovereign clouds)", "from TEAMS_TENANT_ID", listed=False
)

#: Every setting the Teams adapter reads, in the order `doctor` lists them.
SETTINGS = (
    TEAMS_APP_ID,
    TEAMS_APP_PASSWORD,
    TEAMS_TENANT_ID,
    TEAMS_STREAMING,
    TEAMS_EDIT_INTERVAL_S,
    TEAMS_OPENID_METADATA_URL,
    TEAMS_TOKEN_URL,
)


def _hidden(_: object) -> str:
    return "***"


@attrs.frozen
class TeamsSettings(ReadsDeclaredSettings):
    """Credentials, identity endpoints and pacing of the Teams adapter.

    `tenant_id` is required for single-tenant bots (all new Azure Bots since 2025-07-31);
    without it the legacy multi-tenant token endpoint is used.
    """

    app_id: str
    app_password: str = attrs.field(repr=_hidden)
    tenant_id: str | None = None
    openid_metadata_url: str = BOT_FRAMEWORK_OPENID_METADATA_URL
    token_url_override: str | None = None
    issuer: str = BOT_FRAMEWORK_ISSUER
    scope: str = BOT_FRAMEWORK_SCOPE
    channel_id: str = TEAMS_CHANNEL_ID
    clock_leeway_s: float = 300.0
    keys_ttl_s: float = 24 * 3600.0
    key_refetch_min_interval_s: float = 60.0
    edit_interval_s: float = DEFAULT_EDIT_INTERVAL_S
    #: Live output in personal chats as a Teams stream (streaming.py); TEAMS_STREAMING=0 turns it off.
    streaming: bool = True
    #: Least time between two requests of one stream: Teams allows one a second and asks for
    #: 1.5-2 s between updates (learn.microsoft.com, "Stream bot messages").
    stream_interval_s: float = 1.5
    #: A stream must end within two minutes of its start; past this age it hands over to the card.
    stream_max_s: float = 100.0
    #: How long a streaming request is retried (429, 5xx) before the stream gives up for the card.
    stream_retry_deadline_s: float = 15.0
    #: The most text one stream carries (its final message must stay far below ~100 KB in UTF-16).
    stream_text_chars: int = 12_000
    #: The final message with the card stays below this many bytes in UTF-16 (Teams takes about
    #: 100 KB and asks for 80 KB at most); a bigger one ends without the card, posted after it.
    stream_final_max_bytes: int = 80_000
    retry_base_s: float = 2.0
    retry_max_s: float = 20.0
    retry_deadline_s: float = 120.0
    http_timeout_s: float = 15.0

    @property
    def token_url(self) -> str:
        if self.token_url_override:
            return self.token_url_override
        tenant = self.tenant_id or LEGACY_MULTI_TENANT
        return f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"

    @classmethod
    def _settings(cls, read: SettingsReader) -> TeamsSettings | None:
        app_id = read.text(TEAMS_APP_ID)
        if app_id is None:
            read.add(
                TEAMS_APP_ID,
                "TEAMS_APP_ID is not set: use the Microsoft App ID of your Azure Bot "
                "(Azure portal → your bot → Configuration). See docs/teams.md.",
            )
        password = read.text(TEAMS_APP_PASSWORD)
        if password is None:
            read.add(
                TEAMS_APP_PASSWORD,
                "TEAMS_APP_PASSWORD is not set: use a client secret of the bot's app registration "
                "(Azure portal → your bot → Configuration → Manage Password). See docs/teams.md.",
            )
        interval = read.parse(TEAMS_EDIT_INTERVAL_S, _edit_interval, DEFAULT_EDIT_INTERVAL_S)
        streaming = read.switch(TEAMS_STREAMING, default=True)
        if read.problems or app_id is None or password is None:
            return None
        return cls(
            app_id=app_id,
            app_password=password,
            tenant_id=read.text(TEAMS_TENANT_ID),
            openid_metadata_url=read.text(TEAMS_OPENID_METADATA_URL) or BOT_FRAMEWORK_OPENID_METADATA_URL,
            token_url_override=read.text(TEAMS_TOKEN_URL),
            edit_interval_s=interval,
            streaming=streaming,
        )


def _edit_interval(text: str | None) -> float:
    """TEAMS_EDIT_INTERVAL_S: seconds, not negative."""
    if text is None:
        return DEFAULT_EDIT_INTERVAL_S
    try:
        interval = float(text)
    except ValueError:
        raise ConfigError(f"TEAMS_EDIT_INTERVAL_S must be a number of seconds, not {text!r}.") from None
    if interval < 0:
        raise ConfigError("TEAMS_EDIT_INTERVAL_S must not be negative.")
    return interval
