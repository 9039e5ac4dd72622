"""Slack's inbound payloads as attrs classes shaped as the wire, read leniently.

Three payloads reach us, the same in Socket Mode and HTTP mode (shared/reference/slack.md
§2, §4; api.slack.com: "Implementing slash commands", "block_actions payloads", "Events API",
the `message` and `app_mention` events): a slash command's fields, a `block_actions`
interaction and an `event_callback` with its event. slack_sdk has no models for them (its
`models` package is blocks and views), so the classes are named after Slack's docs, and their
attributes are the JSON keys. We name only what we read; other keys are ignored.

Nothing here refuses a payload: inbound.py answers what fits and ignores the rest, so this
dialect's converter is `support.wire`'s lenient one (a value of the wrong type reads as the
field's default, an action that is not an object is skipped), without per-field bookkeeping.
"""

from __future__ import annotations

import attrs

from ...support.wire import as_is, hook_for, hooked, make_lenient_converter


@attrs.define
class SlashCommand:
    """A slash command's fields (form-encoded in HTTP mode, an object in Socket Mode)."""

    command: str = ""
    text: str = ""
    user_id: str = ""
    user_name: str = ""
    channel_id: str = ""
    response_url: str = ""


@attrs.define
class ActionUser:
    """`user` of a block_actions payload: who clicked."""

    id: str = ""
    username: str = ""
    name: str = ""


@attrs.define
class ActionChannel:
    """`channel` of a block_actions payload."""

    id: str = ""


@attrs.define
class Container:
    """`container`: where the clicked element is (a message: its channel and ts)."""

    channel_id: str = ""
    message_ts: str = ""


@attrs.define
class ActionMessage:
    """`message`: the message the clicked button is on."""

    ts: str = ""
    thread_ts: str = ""


@attrs.define
class BlockAction:
    """An entry of `actions`: the element clicked (a button: its action_id and value)."""

    action_id: str = ""
    value: str = ""


@attrs.define
class BlockActions:
    """An interaction payload; ours are `"type": "block_actions"` (a button click)."""

    type: str = ""
    user: ActionUser = attrs.Factory(ActionUser)
    channel: ActionChannel = attrs.Factory(ActionChannel)
    container: Container = attrs.Factory(Container)
    message: ActionMessage = attrs.Factory(ActionMessage)
    actions: list[BlockAction] = attrs.Factory(list)


@attrs.define
class MessageEvent:
    """The `event` of an event_callback: a `message` or an `app_mention`."""

    type: str = ""
    channel_type: str = ""
    user: str | None = None
    channel: str = ""
    text: str = ""
    thread_ts: str = ""
    #: Any subtype (message_changed, channel_join, bot_message, ...), or any bot_id, of whatever
    #: type, marks a message that is not a person's: kept as it came, only its truth is read.
    subtype: object = attrs.field(default=None, metadata=hooked(as_is))
    bot_id: object = attrs.field(default=None, metadata=hooked(as_is))


@attrs.define
class EventCallback:
    """An Events API body (or a Socket Mode `events_api` envelope's payload)."""

    type: str = ""
    event: MessageEvent | None = None


@attrs.define
class AssistantThread:
    """`assistant_thread` of `assistant_thread_started` / `_context_changed`: where the
    Assistant thread is."""

    channel_id: str = ""
    thread_ts: str = ""


@attrs.define
class AssistantThreadEvent:
    type: str = ""
    assistant_thread: AssistantThread | None = None


@attrs.define
class AgentSessionStopped:
    """`agent_session_stopped`: a person pressed Slack's own stop on our agent session; the
    streams it stopped are `streaming_message_ts`."""

    type: str = ""
    channel: str = ""
    thread_ts: str = ""
    user: str = ""
    streaming_message_ts: list[str] = attrs.Factory(list)


@attrs.define
class EventEnvelope:
    """What every Events API body has: its type, its id (to see a retried delivery once)."""

    type: str = ""
    event_id: str = ""


CONVERTER = make_lenient_converter(detailed_validation=False)
_slash_command = hook_for(CONVERTER, SlashCommand)
_block_actions = hook_for(CONVERTER, BlockActions)
_event_callback = hook_for(CONVERTER, EventCallback)
_assistant_thread_event = hook_for(CONVERTER, AssistantThreadEvent)
_agent_session_stopped = hook_for(CONVERTER, AgentSessionStopped)
_event_envelope = hook_for(CONVERTER, EventEnvelope)


def read_slash_command(fields: object) -> SlashCommand | None:
    """A slash command's fields; None when they are not an object."""
    return _slash_command(fields, SlashCommand) if isinstance(fields, dict) else None


def read_block_actions(payload: object) -> BlockActions | None:
    """An interaction payload; None when it is not an object."""
    return _block_actions(payload, BlockActions) if isinstance(payload, dict) else None


def read_event_callback(body: object) -> EventCallback | None:
    """An Events API body; None when it is not an object."""
    return _event_callback(body, EventCallback) if isinstance(body, dict) else None


def read_event_envelope(body: object) -> EventEnvelope | None:
    """An Events API body's type and id; None when it is not an object."""
    return _event_envelope(body, EventEnvelope) if isinstance(body, dict) else None


def read_assistant_thread_event(event: object) -> AssistantThreadEvent | None:
    return _assistant_thread_event(event, AssistantThreadEvent) if isinstance(event, dict) else None


def read_agent_session_stopped(event: object) -> AgentSessionStopped | None:
    return _agent_session_stopped(event, AgentSessionStopped) if isinstance(event, dict) else None
