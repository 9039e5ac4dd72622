"""Bot Framework activities in: who said what, where, and what it means for us.

Teams has no bot slash commands. In a channel or group chat the bot only hears messages that
@mention it (`<at>Open Dispatch</at> od-run …`), in a 1:1 chat every message; both become the
same command text once the mention is removed. A press on a card's button (`Action.Submit`)
arrives as a message activity whose `value` is the button's data: Stop
(`{"action": "od_stop", "jobId": …}`) means `/od-cancel JOB`; an approval prompt's Approve,
Approve for this job and Deny (`{"action": "od_approve" | "od_approve_job" | "od_deny",
"requestId": …}`) mean `/od-approve ID`, `/od-approve ID --job` and `/od-deny ID`.

Whether a conversation is a personal (one-to-one) chat with the bot decides where a private
answer may go; see `is_personal_chat`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs

from ...domain.ids import looks_like_job_id
from ...domain.job import Conversation, User
from ...support.wire import WireError
from .wire import ChannelAccount, Mention, read_activity, read_card_action, read_mentions

PLATFORM = "teams"
THREAD_MARKER = ";messageid="
STOP_ACTION = "od_stop"
APPROVE_ACTION = "od_approve"
APPROVE_FOR_JOB_ACTION = "od_approve_job"
DENY_ACTION = "od_deny"
#: An approval prompt's buttons: the `action` of their data -> the command a press means.
APPROVAL_ACTIONS = {
    APPROVE_ACTION: "/od-approve {}",
    APPROVE_FOR_JOB_ACTION: "/od-approve {} --job",
    DENY_ACTION: "/od-deny {}",
}
_REQUEST_ID = re.compile(r"a-[0-9a-f]{8}")

_AT_TAG = re.compile(r"<at[^>]*>.*?</at>", re.IGNORECASE | re.DOTALL)
# Typographic double quotes (Teams clients autocorrect) become ASCII so the shell-like parser
# sees them; apostrophes are left alone, since "don’t" must not open a quote.
_DOUBLE_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00a0": " "})


class BadActivity(ValueError):
    """The body is not an activity we can read; the message says which field is wrong."""


@attrs.frozen
class InboundActivity:
    type: str
    id: str | None
    service_url: str
    channel_id: str
    conversation: Conversation
    conversation_type: str | None
    user: User | None
    text: str
    #: A card button's data (Action.Submit) as JSON: see `card_command`.
    value: object
    #: `conversation.isGroup`: True in channels and group chats, absent (or False) in personal chats.
    is_group: bool | None = None

    @property
    def personal(self) -> bool:
        """A one-to-one chat between the bot and this user (see `is_personal_chat`)."""
        return is_personal_chat(self.conversation_type, conversation_id(self.conversation), self.is_group)


def parse_activity(body: object) -> InboundActivity:
    """Read the fields we use (wire.py's `Activity`); fields we do not use are never required,
    and one of the wrong type reads as absent. BadActivity when the body is not an object or
    lacks its type, serviceUrl or conversation.id."""
    try:
        activity = read_activity(body)
    except WireError as error:
        raise BadActivity(str(error)) from None
    if not activity.type:
        raise BadActivity("type is missing")
    if not activity.serviceUrl:
        raise BadActivity("serviceUrl is missing")
    conversation = activity.conversation
    if conversation is None or conversation.id is None:
        raise BadActivity("conversation.id is missing")
    channel, thread = split_conversation_id(conversation.id)
    bot_id = activity.recipient.id if activity.recipient else None
    return InboundActivity(
        type=activity.type,
        id=activity.id,
        service_url=activity.serviceUrl,
        channel_id=activity.channelId,
        conversation=Conversation(PLATFORM, channel, thread),
        conversation_type=conversation.conversationType,
        user=_user(activity.from_property),
        text=_without_mention(activity.text, activity.entities, bot_id),
        value=activity.value,
        is_group=conversation.isGroup,
    )


#: Conversation ids of personal chats with a bot start `a:`; channels (`19:…@thread.tacv2`,
#: `@thread.skype`) and group chats (`19:…@thread.v2`) start `19:`.
PERSONAL_ID_PREFIX = "a:"


def is_personal_chat(conversation_type: object, conversation_id: str, is_group: bool | None) -> bool:
    """True only for a one-to-one chat of one user with the bot, where what we post only that
    user reads; anything we cannot tell counts as shared (a private answer is then refused).

    `conversation.conversationType` says it (`personal`, `groupChat`, `channel`); every sign
    must agree: no `isGroup: true`, no thread (`;messageid=`), and an id that is not a
    channel's or group chat's (`19:…@thread…`). Without a conversationType (older clients,
    the Emulator) a personal chat is still known by its `a:` id."""
    if is_group is True or THREAD_MARKER in conversation_id or "@thread" in conversation_id:
        return False
    if isinstance(conversation_type, str) and conversation_type:
        return conversation_type.lower() == "personal"
    return conversation_id.startswith(PERSONAL_ID_PREFIX)


def split_conversation_id(conversation_id: str) -> tuple[str, str | None]:
    """`19:…@thread.tacv2;messageid=163…` → (`19:…@thread.tacv2`, `163…`): channel and thread."""
    channel, marker, thread = conversation_id.partition(THREAD_MARKER)
    return (channel, thread) if marker and thread else (conversation_id, None)


def conversation_id(conversation: Conversation) -> str:
    """The inverse of `split_conversation_id`: the id the Connector knows."""
    if conversation.thread:
        return f"{conversation.channel}{THREAD_MARKER}{conversation.thread}"
    return conversation.channel


def clean_text(text: str, entities: object, bot_id: str | None) -> str:
    """Remove the @mention of our bot and tidy what Teams adds around it.

    The mention entity whose `mentioned.id` is our recipient id tells which `<at>…</at>` is us;
    a leading `<at>` tag is dropped as well, for clients that send no entities. `entities` is
    the activity's, as JSON.
    """
    return _without_mention(text, read_mentions(entities), bot_id)


def _without_mention(text: str, mentions: Sequence[Mention], bot_id: str | None) -> str:
    for mention in mentions:
        if mention.type != "mention" or mention.mentioned is None or mention.text is None:
            continue
        if mention.mentioned.id == bot_id:
            text = text.replace(mention.text, " ")
    text = text.replace("&nbsp;", " ").translate(_DOUBLE_QUOTES).strip()
    leading = _AT_TAG.match(text)
    if leading:
        text = text[leading.end() :].strip()
    return text


def stop_request(value: object) -> str | None:
    """The job id of a Stop press (`{"action": "od_stop", "jobId": …}`), else None."""
    data = read_card_action(value)
    if data is None or data.action != STOP_ACTION or data.jobId is None:
        return None
    return data.jobId if looks_like_job_id(data.jobId) else None


def card_command(value: object) -> str | None:
    """The command a press on one of our cards' buttons means, or None for data that is not
    ours or carries an id of the wrong shape (never handed on as text)."""
    job_id = stop_request(value)
    if job_id is not None:
        return f"/od-cancel {job_id}"
    data = read_card_action(value)
    if data is None:
        return None
    command = APPROVAL_ACTIONS.get(data.action or "")
    if command is None or data.requestId is None or not _REQUEST_ID.fullmatch(data.requestId):
        return None
    return command.format(data.requestId)


def _user(sender: ChannelAccount | None) -> User | None:
    """The Entra object id is stable across chats; `from.id` (29:…) is per bot and tenant."""
    if sender is None:
        return None
    user_id = sender.aadObjectId or sender.id
    if not user_id:
        return None
    return User(user_id, sender.name or user_id)
