"""Slack chat adapter: Socket Mode (default) or HTTP mode. See docs/slack.md."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .settings import Pacing, SlackMode, SlackSettings

if TYPE_CHECKING:
    from .chat import LogSource, SlackChat, open_slack_chat

#: Imported when first used, so that reading the settings (doctor, config) needs only the
#: domain and the support layer, not this adapter's extra.
_LAZY = {'LogSource', 'SlackChat', 'open_slack_chat'}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import chat

        return getattr(chat, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ['LogSource', 'Pacing', 'SlackChat', 'SlackMode', 'SlackSettings', 'open_slack_chat']
