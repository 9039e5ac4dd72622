"""Interactions as Discord sends them (over the gateway or HTTP) -> what the Dispatcher needs.

Both routes deliver the same JSON object, so there is one parser. HTTP delivery is signed:
`verify_signature` checks Ed25519 over `timestamp + raw body` with the application's public
key (PyNaCl), as Discord requires; anything that does not verify is answered 401.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from ...domain.job import Conversation, User
from .app_commands import command_text
from .messages import THREAD_TYPES
from .outbox import group_key
from .payloads import button_command

PLATFORM = "discord"

PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 1, 2, 3, 4, 5


@attrs.frozen
class InteractionEvent:
    """One interaction we will answer. `text` is the command line for the Dispatcher, or None
    when the interaction is not one of ours (an unknown button): it gets a short private reply."""

    id: str
    token: str = attrs.field(repr=False)
    application_id: str
    type: int
    conversation: Conversation
    user: User
    text: str | None


class BadInteraction(ValueError):
    """The payload lacks what every interaction has (id, token, channel, user)."""


def parse_interaction(raw: Mapping[str, Any]) -> InteractionEvent:
    try:
        kind = int(raw["type"])
        channel = raw.get("channel") or {}
        channel_id = str(channel.get("id") or raw["channel_id"])
        parent_id = str(channel["parent_id"]) if channel.get("type") in THREAD_TYPES and channel.get("parent_id") else None
        who = (raw.get("member") or {}).get("user") or raw["user"]
        user = User(str(who["id"]), _display_name(raw.get("member") or {}, who))
        return InteractionEvent(
            id=str(raw["id"]),
            token=str(raw["token"]),
            application_id=str(raw["application_id"]),
            type=kind,
            conversation=conversation_of(channel_id, parent_id),
            user=user,
            text=_text(kind, raw.get("data") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInteraction(f"not an interaction we can answer: {exc!r}") from None


def conversation_of(channel_id: str, thread_parent_id: str | None) -> Conversation:
    """A channel, or a thread as (parent channel, thread=`parent:thread id`).

    The thread part has the shape of our message references (`group_key`), and a thread's id
    is the id of the message it was opened on: so a thread opened on a message we posted
    (a session's "started" message) is exactly that message's reference. Interactions and
    plain messages both build their conversations here, so they always agree.
    """
    if thread_parent_id is None:
        return Conversation(PLATFORM, channel_id)
    return Conversation(PLATFORM, thread_parent_id, thread=group_key(thread_parent_id, channel_id))


def channel_to_post_in(conversation: Conversation) -> str:
    """The Discord channel id of a conversation: the thread's own id, else the channel."""
    if conversation.thread is None:
        return conversation.channel
    _, sep, thread_id = conversation.thread.partition(":")
    return thread_id if sep else conversation.thread


def _display_name(member: Mapping[str, Any], user: Mapping[str, Any]) -> str:
    return str(member.get("nick") or user.get("global_name") or user.get("username") or user["id"])


def _text(kind: int, data: Mapping[str, Any]) -> str | None:
    if kind == APPLICATION_COMMAND:
        return command_text(data)
    if kind == MESSAGE_COMPONENT:
        return button_command(str(data.get("custom_id", "")))
    return None


def signature_checker(public_key_hex: str) -> VerifyKey:
    return VerifyKey(bytes.fromhex(public_key_hex))


def verify_signature(key: VerifyKey, headers: Mapping[str, str], body: bytes) -> bool:
    """True when `x-signature-ed25519` signs `x-signature-timestamp + body` (headers lower-case)."""
    signature = headers.get("x-signature-ed25519", "")
    timestamp = headers.get("x-signature-timestamp", "")
    if not signature or not timestamp:
        return False
    try:
        key.verify(timestamp.encode() + body, bytes.fromhex(signature))
    except (BadSignatureError, ValueError):
        return False
    return True
