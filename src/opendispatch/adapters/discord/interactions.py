"""Interactions as Discord sends them (over the gateway or HTTP) -> what the Dispatcher needs.

Both routes deliver the same JSON object, so there is one parser (the shapes it reads, and
their cattrs converter, are in wire.py). HTTP delivery is signed: `verify_signature` checks
Ed25519 over `timestamp + raw body` with the application's public key (PyNaCl), as Discord
requires; anything that does not verify is answered 401.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from ...domain.job import Conversation, User
from ...support.wire import WireError
from .app_commands import command_text
from .messages import THREAD_TYPES
from .outbox import group_key
from .payloads import button_command
from .wire import Member, PartialChannel, read_component_data, read_interaction

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
    """The payload lacks what every interaction has (id, token, channel, user), or a part of
    it is not what Discord documents; the message names the field."""


def parse_interaction(raw: object) -> InteractionEvent:
    """An interaction's JSON (wire.py's `Interaction`) as what we answer; BadInteraction, naming
    the field, when it is not one ("not an interaction we can answer: token must be a string")."""
    try:
        interaction = read_interaction(raw)
        channel = interaction.channel or PartialChannel()
        channel_id = channel.id or interaction.channel_id
        if channel_id is None:
            raise WireError("channel_id", "must be a string when channel.id is absent")
        parent_id = channel.parent_id if channel.type in THREAD_TYPES and channel.parent_id else None
        member = interaction.member or Member()
        who = member.user or interaction.user
        if who is None:
            raise WireError("user", "must be a user object when member.user is absent")
        return InteractionEvent(
            id=interaction.id,
            token=interaction.token,
            application_id=interaction.application_id,
            type=interaction.type,
            conversation=conversation_of(channel_id, parent_id),
            user=User(who.id, member.nick or who.global_name or who.username or who.id),
            text=_text(interaction.type, interaction.data or {}),
        )
    except WireError as error:
        raise BadInteraction(f"not an interaction we can answer: {error}") from None


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


def _text(kind: int, data: object) -> str | None:
    if kind == APPLICATION_COMMAND:
        return command_text(data)
    if kind == MESSAGE_COMPONENT:
        return button_command(read_component_data(data).custom_id)
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
