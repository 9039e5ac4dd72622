"""Slack payloads in, `Inbound` commands out. The same payloads arrive in both modes.

Pure functions over parsed JSON/form fields, so Socket Mode and HTTP mode share every rule:
which events are ours to answer (never our own messages, never edits or joins), how a button
becomes a command (Stop → `/od-cancel JOB`; an approval prompt's Approve, Approve for this job
and Deny → `/od-approve ID`, `/od-approve ID --job`, `/od-deny ID`) by the clicking user in
the job's thread, and where the answer goes (channel, thread, the invoking user). A click on
a link button ("View live") is reported by Slack too: it has already opened the page, so it
is acknowledged (by the caller, as every payload is) and ignored here.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import attrs

from ...domain.ids import looks_like_job_id
from ...domain.job import Conversation, User
from ...domain.messages import Inbound
from .render import APPROVE_ACTION_ID, APPROVE_FOR_JOB_ACTION_ID, DENY_ACTION_ID, STOP_ACTION_ID, VIEW_LIVE_ACTION_ID

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


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def from_slash_command(fields: Mapping[str, Any]) -> Incoming | None:
    """`/od-run --repo o/r "task"` → Inbound text `/od-run --repo o/r "task"`."""
    command, user_id, channel_id = _text(fields.get("command")), _text(fields.get("user_id")), _text(fields.get("channel_id"))
    if not command or not user_id or not channel_id:
        return None
    text = f"{command} {_text(fields.get('text'))}".strip()
    user = User(user_id, _text(fields.get("user_name")) or user_id)
    invocation = Invocation(user_id, channel_id, response_url=_text(fields.get("response_url")) or None)
    return Incoming(Inbound(Conversation(PLATFORM, channel_id), user, text), invocation)


def from_interaction(payload: Mapping[str, Any]) -> Incoming | None:
    """A click on one of our buttons → its command by the clicking user, in the job's thread
    (the thread of the clicked message, or the clicked message when it starts the thread)."""
    if payload.get("type") != "block_actions":
        return None
    actions = payload.get("actions")
    clicked = next(
        (a for a in actions if isinstance(a, dict) and a.get("action_id") in BUTTONS),
        None,
    ) if isinstance(actions, list) else None
    if clicked is None:
        return None
    command, valid = BUTTONS[_text(clicked.get("action_id"))]
    value = _text(clicked.get("value"))
    user, channel = _object(payload.get("user")), _object(payload.get("channel"))
    container, message = _object(payload.get("container")), _object(payload.get("message"))
    user_id = _text(user.get("id"))
    channel_id = _text(channel.get("id")) or _text(container.get("channel_id"))
    if not valid(value) or not user_id or not channel_id:
        return None
    thread = _text(message.get("thread_ts")) or _text(container.get("message_ts")) or _text(message.get("ts")) or None
    name = _text(user.get("username")) or _text(user.get("name")) or user_id
    inbound = Inbound(Conversation(PLATFORM, channel_id, thread=thread), User(user_id, name), command.format(value))
    return Incoming(inbound, Invocation(user_id, channel_id, thread_ts=thread))


def is_own(event: Mapping[str, Any], bot: BotIdentity) -> bool:
    """Bolt's IgnoringSelfEvents rule: our bot id or our bot user wrote it."""
    bot_id = event.get("bot_id")
    return (bot.bot_id is not None and bot_id == bot.bot_id) or event.get("user") == bot.user_id


def from_event(body: Mapping[str, Any], bot: BotIdentity) -> Incoming | None:
    """`@open-dispatch /od-jobs` in a channel or anything in a DM (addressed to us), or plain
    channel chat (overheard: only a session bound there may take it); the rest is ignored."""
    if body.get("type") != "event_callback":
        return None
    event = body.get("event")
    if not isinstance(event, dict) or is_own(event, bot) or event.get("subtype") or event.get("bot_id"):
        return None
    kind = event.get("type")
    addressed = True
    if kind == "app_mention":
        pass
    elif kind == "message" and event.get("channel_type") == "im":
        pass
    elif kind == "message" and event.get("channel_type") in ("channel", "group"):
        if bot.user_id and f"<@{bot.user_id}>" in _text(event.get("text")):
            return None  # a mention also arrives as app_mention: handle it once, there
        # Overheard channel chat: a message for a session bound here (or its thread), never a
        # command and never answered otherwise (the Dispatcher keeps quiet for it).
        addressed = False
    else:
        return None
    user_id, channel_id = _text(event.get("user")), _text(event.get("channel"))
    if not user_id or not channel_id:
        return None
    text = _LEADING_MENTION.sub("", _text(event.get("text")), count=1).strip()
    thread = _text(event.get("thread_ts")) or None
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
