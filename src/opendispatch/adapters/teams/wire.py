"""Bot Framework activities as attrs classes shaped as the wire, read leniently.

The classes are named after the Bot Framework SDK's schema (botbuilder-schema: `Activity`,
`ChannelAccount`, `ConversationAccount`, `Mention`) and their attributes are the JSON keys
(shared/reference/teams.md §2); `from`, a Python keyword, is `from_property` as in the SDK.
We name only what we read; other keys are ignored.

Teams and the Bot Framework Emulator send what they like in fields we only glance at, so this
dialect's converter is `support.wire`'s lenient one: a value of the wrong type reads as the
field's default (as if absent), an entity that is not an object is skipped. What an activity
cannot do without (its type, serviceUrl and conversation.id) is checked by `activity.py`.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from ...support.wire import as_is, hook_for, hooked, make_lenient_converter, parser, wire_key


@attrs.define
class ChannelAccount:
    """`from` (the sender: `29:…` per bot and tenant, `aadObjectId` its Entra id) or `recipient` (us)."""

    id: str | None = None
    name: str | None = None
    aadObjectId: str | None = None


@attrs.define
class ConversationAccount:
    """`conversation`: its id (a thread's ends `;messageid=…`), `conversationType` and `isGroup`."""

    id: str | None = None
    conversationType: str | None = None
    isGroup: bool | None = None


@attrs.define
class Mention:
    """An entry of `entities`; a `mention` names who its `<at>…</at>` text is."""

    type: str | None = None
    mentioned: ChannelAccount | None = None
    text: str | None = None


@attrs.define
class Activity:
    """An activity as the Connector posts it (a message, an invoke, a conversationUpdate, ...)."""

    WIRE_SHAPE: ClassVar[str] = "a JSON object"

    type: str = ""
    id: str | None = None
    serviceUrl: str = ""
    channelId: str = ""
    from_property: ChannelAccount | None = attrs.field(default=None, metadata=wire_key("from"))
    conversation: ConversationAccount | None = None
    recipient: ChannelAccount | None = None
    text: str = ""
    entities: list[Mention] = attrs.Factory(list)
    #: A card button's data (Action.Submit), whatever its shape: see `CardAction`.
    value: object = attrs.field(default=None, metadata=hooked(as_is))


@attrs.define
class CardAction:
    """The data of our cards' buttons: `{"action": "od_stop", "jobId": …}`, `{"action": "od_approve", "requestId": …}`."""

    action: str | None = None
    jobId: str | None = None
    requestId: str | None = None


CONVERTER = make_lenient_converter()
read_activity = parser(CONVERTER, Activity)
_mentions = hook_for(CONVERTER, list[Mention])
_card_action = hook_for(CONVERTER, CardAction)


def read_mentions(entities: object) -> list[Mention]:
    """An activity's `entities`, each read as a mention; anything but a list is none."""
    return _mentions(entities, list[Mention]) if isinstance(entities, list) else []


def read_card_action(value: object) -> CardAction | None:
    """A button's data as our cards write it; None when it is not an object."""
    return _card_action(value, CardAction) if isinstance(value, dict) else None
