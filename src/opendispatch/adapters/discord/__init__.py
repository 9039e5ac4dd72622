"""Discord chat: slash commands, a thread per job, live output edited in place, a Stop button.

discord.py (asyncio) only holds the gateway connection, in its own thread (gateway.py); all
REST calls run on Trio through `DiscordRest`. HTTP-interactions mode needs no gateway at all.
"""

from .chat import INTERACTIONS_PATH, DiscordChat, open_discord_chat
from .settings import DiscordSettings

__all__ = ["INTERACTIONS_PATH", "DiscordChat", "DiscordSettings", "open_discord_chat"]
