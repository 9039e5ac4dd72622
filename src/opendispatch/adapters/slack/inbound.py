"""Slack payloads in, `Inbound` commands out. The same payloads arrive in both modes.

Pure functions over parsed JSON/form fields, so Socket Mode and HTTP mode share every rule:
which events are ours to answer (never our own messages, never edits or joins), how a button
becomes a command (Stop → `/od-cancel JOB`; an approval prompt's Approve, Approve for this job
and Deny → `/od-approve ID`, `/od-approve ID --job`, `/od-deny ID`) by the clicking user in
the job's thread, and where the answer goes (channel, thread, the invoking user). A click on
a link button ("View live") is reported by Slack too: it has already opened the page, so it
is acknowledged (by the caller, as every payload is) and ignored here.

Payloads are read as wire.py's classes, leniently: a field of the wrong type reads as absent,
and a payload that does not give what a rule needs is ignored (None), never an error.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import attrs

from ...domain.ids import looks_like_job_id
from ...domain.job import Conversation, User
from ...domain.messages import Inbound
from .render import APPROVE_ACTION_ID, APPROVE_FOR_JOB_ACTION_ID, DENY_ACTION_ID, STOP_ACTION_ID, VIEW_LIVE_ACTION_ID
from .wire import MessageEvent, read_block_actions, read_event_callback, read_slash_command

PLATFORM = "slack"
_LEADING_MENTION = re.compile(r"^\s*<@[A-Z0-9]+(?:\|[^>]*)?>\s*")
_REQUEST_ID = re.compile(r"a-[0-9a-f]{8}")


def looks_like_request_id(text: str) -> bool:
    return _REQUEST_ID.fullmatch(text) is not None


#: Our buttons by action id: the command a click means (`{}` is the button's value) and
#: what that value must look like. A value that does not is ignored, never handed on.
BUTTONS = {
    STOP_ACTION_ID: ("/od-cancel {}", looks_like_job_id),
    APPROVE_ACTION_ID: ("/od-approve {}", looks_like_request_id),
    APPROVE_FOR_JOB_ACTION_ID: ("/od-approve {} --job", looks_like_request_id),
    DENY_ACTION_ID: ("/od-deny {}", looks_like_request_id),
}
#: Our link buttons: the browser opens their URL; the click Slack reports means nothing to us.
LINK_BUTTONS = frozenset({VIEW_LIVE_ACTION_ID})


@attrs.frozen
class BotIdentity:
    """Who we are in the workspace (from `auth.test`), to recognise our own messages."""

    user_id: str
    bot_id: str | None = None
    team_id: str | None = None


@attrs.frozen
class Invocation:
    """Who asked and how to answer only them (`response_url` for slash commands)."""

    user_id: str
    channel_id: str
    response_url: str | None = None
    thread_ts: str | None = None


@attrs.frozen
class Incoming:
    inbound: Inbound
    invocation: Invocation


def from_slash_command(fields: object) -> Incoming | None:
    """`/od-run --repo o/r "task"` → Inbound text `/od-run --repo o/r "task"`."""
    slash = read_slash_command(fields)
    if slash is None or not slash.command or not slash.user_id or not slash.channel_id:
        return None
    text = f"{slash.command} {slash.text}".strip()
    user = User(slash.user_id, slash.user_name or slash.user_id)
    invocation = Invocation(slash.user_id, slash.channel_id, response_url=slash.response_url or None)
    return Incoming(Inbound(Conversation(PLATFORM, slash.channel_id), user, text), invocation)


def from_interaction(payload: object) -> Incoming | None:
    """A click on one of our buttons → its command by the clicking user, in the job's thread
    (the thread of the clicked message, or the clicked message when it starts the thread)."""
    interaction = read_block_actions(payload)
    if interaction is None or interaction.type != "block_actions":
        return None
    clicked = next((action for action in interaction.actions if action.action_id in BUTTONS), None)
    if clicked is None:
        return None
    command, valid = BUTTONS[clicked.action_id]
    user, container, message = interaction.user, interaction.container, interaction.message
    channel_id = interaction.channel.id or container.channel_id
    if not valid(clicked.value) or not user.id or not channel_id:
        return None
    thread = message.thread_ts or container.message_ts or message.ts or None
    name = user.username or user.name or user.id
    inbound = Inbound(Conversation(PLATFORM, channel_id, thread=thread), User(user.id, name), command.format(clicked.value))
    return Incoming(inbound, Invocation(user.id, channel_id, thread_ts=thread))


def is_own(event: MessageEvent, bot: BotIdentity) -> bool:
    """Bolt's IgnoringSelfEvents rule: our bot id or our bot user wrote it."""
    return (bot.bot_id is not None and event.bot_id == bot.bot_id) or event.user == bot.user_id


def from_event(body: object, bot: BotIdentity) -> Incoming | None:
    """`@open-dispatch /od-jobs` in a channel or anything in a DM (addressed to us), or plain
    channel chat (overheard: only a session bound there may take it); the rest is ignored."""
    callback = read_event_callback(body)
    if callback is None or callback.type != "event_callback":
        return None
    event = callback.event
    if event is None or is_own(event, bot) or event.subtype or event.bot_id:
        return None
    addressed = True
    if event.type == "app_mention":
        pass
    elif event.type == "message" and event.channel_type == "im":
        pass
    elif event.type == "message" and event.channel_type in ("channel", "group"):
        if bot.user_id and f"<@{bot.user_id}>" in event.text:
            return None  # a mention also arrives as app_mention: handle it once, there
        # Overheard channel chat: a message for a session bound here (or its thread), never a
        # command and never answered otherwise (the Dispatcher keeps quiet for it).
        addressed = False
    else:
        return None
    user_id, channel_id = event.user or "", event.channel
    if not user_id or not channel_id:
        return None
    text = _LEADING_MENTION.sub("", event.text, count=1).strip()
    thread = event.thread_ts or None
    inbound = Inbound(Conversation(PLATFORM, channel_id, thread=thread), User(user_id, user_id), text, addressed=addressed)
    return Incoming(inbound, Invocation(user_id, channel_id, thread_ts=thread))


@attrs.define
class Deduper:
    """Remembers recent delivery ids: Slack redelivers what it thinks we did not get."""

    capacity: int = 2000
    _seen: OrderedDict[str, None] = attrs.field(factory=OrderedDict, init=False)

    def first_time(self, *keys: str | None) -> bool:
        """True when none of `keys` was seen before; records them all."""
        present = [key for key in keys if key]
        fresh = not any(key in self._seen for key in present)
        for key in present:
            self._seen[key] = None
            self._seen.move_to_end(key)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return fresh
