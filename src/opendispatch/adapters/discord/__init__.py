"""Discord chat: slash commands, a thread per job, live output edited in place, a Stop button.

discord.py (asyncio) only holds the gateway connection, in its own thread (gateway.py); all
REST calls run on Trio through `DiscordRest`. HTTP-interactions mode needs no gateway at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...support.lazy_exports import lazy_exports
from .settings import DiscordSettings

if TYPE_CHECKING:
    from .chat import INTERACTIONS_PATH, DiscordChat, open_discord_chat

#: The chat module (and so the adapter's extra) is imported when first used.
__getattr__ = lazy_exports(__name__, "chat", {"INTERACTIONS_PATH", "DiscordChat", "open_discord_chat"})

__all__ = ["INTERACTIONS_PATH", "DiscordChat", "DiscordSettings", "open_discord_chat"]
