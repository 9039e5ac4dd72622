"""Discord chat: slash commands, a thread per job, live output edited in place, a Stop button.

discord.py (asyncio) only holds the gateway connection, in its own thread (gateway.py); all
REST calls run on Trio through `DiscordRest`. HTTP-interactions mode needs no gateway at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .settings import DiscordSettings

if TYPE_CHECKING:
    from .chat import INTERACTIONS_PATH, DiscordChat, open_discord_chat

#: Imported when first used, so that reading the settings (doctor, config) needs only the
#: domain and the support layer, not this adapter's extra.
_LAZY = {'INTERACTIONS_PATH', 'DiscordChat', 'open_discord_chat'}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import chat

        return getattr(chat, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ['INTERACTIONS_PATH', 'DiscordChat', 'DiscordSettings', 'open_discord_chat']
