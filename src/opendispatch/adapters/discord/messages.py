"""Plain Discord messages (gateway MESSAGE_CREATE) -> what the Dispatcher needs.

Only chat a person wrote is ours to look at: never a bot's (ours included), a webhook's or a
system message (joins, pins, thread created...). A DM or a message mentioning the bot is
addressed to us (the mention is stripped); anything else in a server is overheard chat, which
only a session bound to that channel or thread may take.

Where a message was written is resolved by the adapter (a thread needs its parent channel),
so this module only reads the payload: pure, like `interactions.py`.
"""

from __future__ import annotations

import re
import attrs

from ...domain.job import User
from .wire import read_message

#: Message types a person writes: DEFAULT and REPLY. Everything else is a system message.
_USER_MESSAGE_TYPES = (0, 19)
#: Channel types that are threads (announcement, public, private).
THREAD_TYPES = (10, 11, 12)
DM_TYPES = (1, 3)


@attrs.frozen
class PlainMessage:
    """One message a person wrote. `channel_type` is None when the payload does not say."""

    channel_id: str
    guild_id: str | None
    channel_type: int | None
    user: User
    text: str
    addressed: bool

    @property
    def in_dm(self) -> bool:
        return self.guild_id is None or self.channel_type in DM_TYPES


def parse_message(raw: object, bot_user_id: str | None) -> PlainMessage | None:
    """The message, or None when it is not a person's chat (bots, webhooks, system messages)."""
    message = read_message(raw)
    if message is None:
        return None
    author = message.author
    if author.bot or author.system or message.webhook_id:
        return None
    author_id, channel_id = author.id, message.channel_id
    if not author_id or not channel_id or author_id == bot_user_id:
        return None
    if message.type not in _USER_MESSAGE_TYPES:
        return None
    content = message.content
    mentioned = bot_user_id is not None and (
        any(mention.id == bot_user_id for mention in message.mentions)
        or f"<@{bot_user_id}>" in content
        or f"<@!{bot_user_id}>" in content
    )
    if bot_user_id is not None:
        content = re.sub(rf"<@!?{re.escape(bot_user_id)}>[ \t]*", "", content)
    nick = message.member.nick if message.member is not None else None
    name = nick or author.global_name or author.username or author_id
    plain = PlainMessage(
        channel_id=channel_id,
        guild_id=message.guild_id or None,
        channel_type=message.channel_type,
        user=User(author_id, name),
        text=content.strip(),
        addressed=mentioned,
    )
    return attrs.evolve(plain, addressed=True) if plain.in_dm else plain
