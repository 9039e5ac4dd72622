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
from collections.abc import Mapping
from typing import Any

import attrs

from ...domain.job import User

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


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def parse_message(raw: Mapping[str, Any], bot_user_id: str | None) -> PlainMessage | None:
    """The message, or None when it is not a person's chat (bots, webhooks, system messages)."""
    author = raw.get("author")
    if not isinstance(author, dict) or author.get("bot") or author.get("system") or raw.get("webhook_id"):
        return None
    author_id, channel_id = _text(author.get("id")), _text(raw.get("channel_id"))
    if not author_id or not channel_id or author_id == bot_user_id:
        return None
    if raw.get("type", 0) not in _USER_MESSAGE_TYPES:
        return None
    guild_id = _text(raw.get("guild_id")) or None
    channel_type = raw.get("channel_type")
    content = _text(raw.get("content"))
    mentioned = bot_user_id is not None and (
        any(isinstance(m, dict) and str(m.get("id")) == bot_user_id for m in raw.get("mentions") or [])
        or f"<@{bot_user_id}>" in content
        or f"<@!{bot_user_id}>" in content
    )
    if bot_user_id is not None:
        content = re.sub(rf"<@!?{re.escape(bot_user_id)}>[ \t]*", "", content)
    member = raw.get("member")
    member = member if isinstance(member, dict) else {}
    name = _text(member.get("nick")) or _text(author.get("global_name")) or _text(author.get("username")) or author_id
    message = PlainMessage(
        channel_id=channel_id,
        guild_id=guild_id,
        channel_type=channel_type if isinstance(channel_type, int) else None,
        user=User(author_id, name),
        text=content.strip(),
        addressed=mentioned,
    )
    return attrs.evolve(message, addressed=True) if message.in_dm else message
