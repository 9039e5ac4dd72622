"""Slack chat adapter: Socket Mode (default) or HTTP mode. See docs/slack.md."""

from .chat import LogSource, SlackChat, open_slack_chat
from .settings import Pacing, SlackMode, SlackSettings

__all__ = ["LogSource", "Pacing", "SlackChat", "SlackMode", "SlackSettings", "open_slack_chat"]
