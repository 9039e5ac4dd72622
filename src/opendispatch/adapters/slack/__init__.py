"""Slack chat adapter: Socket Mode (default) or HTTP mode. See docs/slack.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...support.lazy_exports import lazy_exports
from .settings import Pacing, SlackMode, SlackSettings

if TYPE_CHECKING:
    from .chat import LogSource, SlackChat, open_slack_chat

#: The chat module (and so the adapter's extra) is imported when first used.
__getattr__ = lazy_exports(__name__, "chat", {"LogSource", "SlackChat", "open_slack_chat"})

__all__ = ["LogSource", "Pacing", "SlackChat", "SlackMode", "SlackSettings", "open_slack_chat"]
