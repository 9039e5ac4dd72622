"""Slack configuration: which tokens we have decides how Slack reaches us.

Socket Mode (an app-level `xapp-` token) is the default because it needs no public URL:
we open the WebSocket. HTTP mode (a signing secret) is for deployments that already have
a public HTTPS URL; Slack then POSTs to our webhook server and we verify every request.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

from ...domain.errors import ConfigError
from ...support.settings import ReadsDeclaredSettings, Setting, SettingsReader

DEFAULT_API_URL = "https://slack.com/api/"
DEFAULT_HTTP_PATH = "/slack/events"

SLACK_BOT_TOKEN = Setting("SLACK_BOT_TOKEN", "xoxb- token: Slack app → OAuth & Permissions", required=True, secret=True)
SLACK_APP_TOKEN = Setting(
    "SLACK_APP_TOKEN", "xapp- token for Socket Mode: Basic Information → App-Level Tokens", secret=True
)
SLACK_SIGNING_SECRET = Setting(
    "SLACK_SIGNING_SECRET", "for HTTP mode: Basic Information → Signing Secret", secret=True
)
SLACK_MODE = Setting(
    "SLACK_MODE", "socket (needs SLACK_APP_TOKEN) or http (needs SLACK_SIGNING_SECRET)", "socket"
)
SLACK_AGENT_SESSIONS = Setting(
    "SLACK_AGENT_SESSIONS",
    "1 once the Slack app is declared an agent: status and Slack's own stop button (docs/slack.md)",
    "0",
)
SLACK_STREAMING = Setting(
    "SLACK_STREAMING", "1: the live output is a Slack stream with the agent's steps (docs/slack.md)", "0"
)
OPENDISPATCH_SLACK_API_URL = Setting(
    "OPENDISPATCH_SLACK_API_URL", "Slack's Web API (tests point it at a fake)", DEFAULT_API_URL, listed=False
)

#: Every setting the Slack adapter reads, in the order `doctor` lists them.
SETTINGS = (
    SLACK_BOT_TOKEN,
    SLACK_APP_TOKEN,
    SLACK_SIGNING_SECRET,
    SLACK_MODE,
    SLACK_AGENT_SESSIONS,
    SLACK_STREAMING,
    OPENDISPATCH_SLACK_API_URL,
)


SOCKET_NEEDS_APP_TOKEN = "Slack Socket Mode needs SLACK_APP_TOKEN (xapp-…, scope connections:write)."
HTTP_NEEDS_SIGNING_SECRET = "Slack HTTP mode needs SLACK_SIGNING_SECRET (Basic Information → App Credentials)."


class SlackMode(enum.Enum):
    SOCKET = "socket"
    HTTP = "http"


def _hidden(_: object) -> str:
    return "***"


@attrs.frozen
class Pacing:
    """How hard we push Slack. Defaults follow Slack's published tiers (see docs/slack.md).

    `channel_interval_s`: at least this long between two writes to one channel (Slack allows
    about one message per second per channel). `per_minute`/`burst`: a token bucket per Web
    API method, since Slack limits each method per workspace.
    """

    channel_interval_s: float = 1.0
    per_minute: Mapping[str, float] = attrs.field(
        factory=lambda: {
            "chat.update": 50.0,  # Tier 3
            "chat.delete": 50.0,  # Tier 3
            "chat.postEphemeral": 100.0,  # Tier 4
            "files.getUploadURLExternal": 100.0,  # Tier 4
            "files.completeUploadExternal": 100.0,  # Tier 4
            "apps.connections.open": 1.0 * 60,  # Tier 1 is "1+ per minute"; reconnects are rare
            # Native agent surfaces (docs/slack.md, "Agent sessions and streamed messages"):
            "chat.startStream": 20.0,  # tier not published (unconfirmed): paced like stopStream
            "chat.appendStream": 100.0,  # Tier 4
            "chat.stopStream": 20.0,  # Tier 2
            "agents.sessions.setStatus": 50.0,  # Tier 3
            "assistant.threads.setStatus": 50.0,  # "special" (unconfirmed): paced like Tier 3
            "conversations.history": 50.0,  # Tier 3: finding a job's thread after a restart
            "conversations.replies": 50.0,  # Tier 3: finding a stream a restart left open
        }
    )
    burst: int = 5
    transient_retries: int = 3
    transient_backoff_s: float = 1.0


@attrs.frozen
class SlackSettings(ReadsDeclaredSettings):
    bot_token: str = attrs.field(repr=_hidden)
    mode: SlackMode = SlackMode.SOCKET
    app_token: str | None = attrs.field(default=None, repr=_hidden)
    signing_secret: str | None = attrs.field(default=None, repr=_hidden)
    api_url: str = DEFAULT_API_URL
    http_path: str = DEFAULT_HTTP_PATH
    pacing: Pacing = Pacing()
    ping_interval_s: float = 10.0
    ping_timeout_s: float = 10.0
    reconnect_backoff_s: float = 1.0
    reconnect_backoff_max_s: float = 30.0
    attach_log_over_lines: int = 200  # attach the full log as a file when a job printed more
    #: `SLACK_AGENT_SESSIONS=1`: each job's thread is a Slack agent session (status
    #: processing → closed, Slack's own stop button). Only once the app is declared an agent.
    agent_sessions: bool = False
    #: `SLACK_STREAMING=1`: the live output is a chat.startStream/appendStream/stopStream stream.
    streaming: bool = False

    def __attrs_post_init__(self) -> None:
        if self.mode is SlackMode.SOCKET and not self.app_token:
            raise ConfigError(SOCKET_NEEDS_APP_TOKEN)
        if self.mode is SlackMode.HTTP and not self.signing_secret:
            raise ConfigError(HTTP_NEEDS_SIGNING_SECRET)

    @classmethod
    def _settings(cls, read: SettingsReader) -> SlackSettings | None:
        bot_token = read.text(SLACK_BOT_TOKEN)
        if bot_token is None:
            read.add(
                SLACK_BOT_TOKEN,
                "CHAT_PROVIDER=slack needs SLACK_BOT_TOKEN (xoxb-…, from OAuth & Permissions after installing the app).",
            )
        elif not bot_token.startswith("xoxb-"):
            read.add(SLACK_BOT_TOKEN, "SLACK_BOT_TOKEN must be the bot token, starting with xoxb- (OAuth & Permissions).")
        app_token = read.text(SLACK_APP_TOKEN)
        if app_token is not None and not app_token.startswith("xapp-"):
            read.add(
                SLACK_APP_TOKEN,
                "SLACK_APP_TOKEN must be an app-level token starting with xapp- "
                "(Basic Information → App-Level Tokens, scope connections:write).",
            )
        signing_secret = read.text(SLACK_SIGNING_SECRET)
        agent_sessions = read.switch(SLACK_AGENT_SESSIONS)
        streaming = read.switch(SLACK_STREAMING)
        wanted = read.text(SLACK_MODE)
        mode = read.value(
            SLACK_MODE if wanted else SLACK_APP_TOKEN, lambda: cls._mode(wanted, app_token, signing_secret), None
        )
        if mode is None:
            return None
        if mode is SlackMode.SOCKET and app_token is None:
            read.add(SLACK_APP_TOKEN, SOCKET_NEEDS_APP_TOKEN)
        if mode is SlackMode.HTTP and signing_secret is None:
            read.add(SLACK_SIGNING_SECRET, HTTP_NEEDS_SIGNING_SECRET)
        if read.problems or bot_token is None:
            return None
        return cls(
            bot_token=bot_token,
            mode=mode,
            app_token=app_token,
            signing_secret=signing_secret,
            api_url=read.text(OPENDISPATCH_SLACK_API_URL) or DEFAULT_API_URL,
            agent_sessions=agent_sessions,
            streaming=streaming,
        )

    @staticmethod
    def _mode(wanted: str | None, app_token: str | None, signing_secret: str | None) -> SlackMode:
        if wanted is not None:
            try:
                return SlackMode(wanted.lower())
            except ValueError:
                raise ConfigError(f"SLACK_MODE={wanted!r} must be socket or http.") from None
        if app_token is not None:
            return SlackMode.SOCKET
        if signing_secret is not None:
            return SlackMode.HTTP
        raise ConfigError(
            "CHAT_PROVIDER=slack needs SLACK_APP_TOKEN (Socket Mode, no public URL needed) "
            "or SLACK_SIGNING_SECRET (HTTP mode, Slack posts to OPEN_DISPATCH_URL/slack/events)."
        )

