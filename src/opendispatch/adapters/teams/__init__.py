"""Microsoft Teams through the Bot Framework: `CHAT_PROVIDER=teams`.

`open_teams_chat(TeamsSettings.from_env(env))` yields a `TeamsChat` whose `http_routes()`
adds `POST /api/messages` to our webhook server; see docs/teams.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .settings import TeamsSettings

if TYPE_CHECKING:
    from .chat import MESSAGES_PATH, TeamsChat, open_teams_chat

#: Imported when first used, so that reading the settings (doctor, config) needs only the
#: domain and the support layer, not this adapter's extra.
_LAZY = {"MESSAGES_PATH", "TeamsChat", "open_teams_chat"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import chat

        return getattr(chat, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["MESSAGES_PATH", "TeamsChat", "TeamsSettings", "open_teams_chat"]
