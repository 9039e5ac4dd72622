"""Discord's inbound JSON, as attrs classes shaped as the wire, read by this dialect's converter.

An interaction arrives the same over the gateway (`INTERACTION_CREATE`) and HTTP (docs:
developers/interactions/receiving-and-responding, "Interaction Object"; shared/reference/
discord.md §3). The classes are named after discord.py's `discord/types/` TypedDicts for the
same objects and their attributes are the JSON keys, so an error's path is the body's path
("member.user.id must be a string"). We name only what we read; other keys are ignored.

Snowflakes are strings in JSON (reference §1), and read as strings. An interaction's `data`
depends on its `type`, so it is kept as it came and read by the type: an application
command's (`ApplicationCommandInteractionData`: name and options) or a button's
(`MessageComponentInteractionData`: custom_id); their problems are reported at `data...`.
"""

from __future__ import annotations

import math
from typing import ClassVar

import attrs

from ...support.wire import Invalid, as_is, hook_for, hooked, make_converter, make_lenient_converter, parser

#: A value an application command's option carries: STRING, INTEGER, BOOLEAN, NUMBER, or a
#: snowflake (USER, CHANNEL, ROLE, MENTIONABLE, ATTACHMENT) as a string.
OptionValue = str | int | float | bool


def _option_value(value: object, _: object) -> OptionValue | None:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise Invalid("must be a string, a number, or true or false")


@attrs.define
class ApplicationCommandInteractionDataOption:
    """One option as invoked: a value, or (SUB_COMMAND, SUB_COMMAND_GROUP) nested options."""

    WIRE_SHAPE: ClassVar[str] = "an option object (name, type, value)"

    name: str
    type: int | None = None
    value: OptionValue | None = attrs.field(default=None, metadata=hooked(_option_value))
    options: list[ApplicationCommandInteractionDataOption] | None = None


@attrs.define
class ApplicationCommandInteractionData:
    """The `data` of an APPLICATION_COMMAND interaction: which command, with which options."""

    WIRE_SHAPE: ClassVar[str] = "an application command's data (name, options)"

    name: str = ""
    options: list[ApplicationCommandInteractionDataOption] | None = None


@attrs.define
class MessageComponentInteractionData:
    """The `data` of a MESSAGE_COMPONENT interaction: the pressed button's custom_id."""

    WIRE_SHAPE: ClassVar[str] = "a component's data (custom_id)"

    custom_id: str = ""
    component_type: int | None = None


@attrs.define
class PartialUser:
    """`user`, or `member.user`: who invoked."""

    WIRE_SHAPE: ClassVar[str] = "a user object (id, username)"

    id: str
    username: str | None = None
    global_name: str | None = None


@attrs.define
class Member:
    """`member`, sent in guilds: the invoking user and their nickname there."""

    WIRE_SHAPE: ClassVar[str] = "a member object (user, nick)"

    user: PartialUser | None = None
    nick: str | None = None


@attrs.define
class PartialChannel:
    """`channel`: where the interaction happened; a thread (types 10-12) names its parent."""

    WIRE_SHAPE: ClassVar[str] = "a channel object (id, type)"

    id: str | None = None
    type: int | None = None
    parent_id: str | None = None


@attrs.define
class Interaction:
    """An interaction, whichever its type; `member` in guilds, `user` in DMs."""

    WIRE_SHAPE: ClassVar[str] = "an interaction object"

    id: str
    application_id: str
    type: int
    token: str = attrs.field(repr=False)
    channel_id: str | None = None
    channel: PartialChannel | None = None
    member: Member | None = None
    user: PartialUser | None = None
    #: Read by `type` (see the module's docstring).
    data: object = attrs.field(default=None, metadata=hooked(as_is))


CONVERTER = make_converter()
read_interaction = parser(CONVERTER, Interaction, what="the interaction")
read_command_data = parser(CONVERTER, ApplicationCommandInteractionData, at="data")
read_component_data = parser(CONVERTER, MessageComponentInteractionData, at="data")


# --- plain messages (gateway MESSAGE_CREATE), read leniently -------------------------------
#
# A message event carries far more than we read, and a field of an unexpected type must not
# cost the message: the lenient converter reads such a field as absent. Where any value of a
# field decides (a truthy `bot`, `system` or `webhook_id`; a `type` that is not one of a
# person's), it is kept as it came. Named after discord.py's `types/message.py` (`Message`,
# `UserWithMember`'s `member`) and `types/gateway.py` (`MessageCreateEvent`: `guild_id`).


@attrs.define
class MessageAuthor:
    id: str = ""
    username: str = ""
    global_name: str | None = None
    bot: object = attrs.field(default=None, metadata=hooked(as_is))
    system: object = attrs.field(default=None, metadata=hooked(as_is))


@attrs.define
class MessageMember:
    nick: str | None = None


@attrs.define
class UserMention:
    id: str = ""


@attrs.define
class MessageCreate:
    author: MessageAuthor
    channel_id: str = ""
    content: str = ""
    type: object = attrs.field(default=0, metadata=hooked(as_is))
    guild_id: str | None = None
    channel_type: int | None = None
    webhook_id: object = attrs.field(default=None, metadata=hooked(as_is))
    mentions: list[UserMention] = attrs.field(factory=list)
    member: MessageMember | None = None


MESSAGE_CONVERTER = make_lenient_converter(detailed_validation=False)
_message_create = hook_for(MESSAGE_CONVERTER, MessageCreate)


def read_message(raw: object) -> MessageCreate | None:
    """A gateway message; None when it is not an object or has no author object."""
    if not isinstance(raw, dict):
        return None
    try:
        return _message_create(raw, MessageCreate)
    except Exception:
        return None
