"""Microsoft Teams through the Bot Framework: `CHAT_PROVIDER=teams`.

`open_teams_chat(TeamsSettings.from_env(env))` yields a `TeamsChat` whose `http_routes()`
adds `POST /api/messages` to our webhook server; see docs/teams.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...support.lazy_exports import lazy_exports
from .settings import TeamsSettings

if TYPE_CHECKING:
    from .chat import MESSAGES_PATH, TeamsChat, open_teams_chat

#: The chat module (and so the adapter's extra) is imported when first used.
__getattr__ = lazy_exports(__name__, "chat", {"MESSAGES_PATH", "TeamsChat", "open_teams_chat"})

__all__ = ["MESSAGES_PATH", "TeamsChat", "TeamsSettings", "open_teams_chat"]
