"""`TeamsChat`: the ChatPort for Microsoft Teams through the Bot Framework.

In: Bot Connector POSTs signed activities to `/api/messages` on our webhook server. Every
check of `auth.py` passes before anything is remembered or started; then we answer 202 at
once (the Connector gives up after ~15 s) and run the command in a task of `listen`.
Out: the Bot Connector REST API through `Outbox` (ordered, paced, retried), with cards from
`cards.py`. The serviceUrl of each conversation is learnt from its verified activities, and so
is whether it is a personal (one-to-one) chat: Teams has no ephemeral messages, so a private
notice (it holds a credential, such as a signed web link) is posted only in a personal chat;
anywhere else a notice saying where to ask for it goes instead.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from typing import Any

import httpx
import trio

from ...domain.job import Conversation
from ...domain.messages import ChatMessage, Inbound, JobAccepted, JobCard, MessageRef, Notice
from ...ports.chat import ChatLimits, InboundHandler
from ...ports.http import HttpRequest, HttpResponse, HttpRoute
from .activity import BadActivity, InboundActivity, card_command, conversation_id, parse_activity
from .auth import InboundAuthenticator, KeySet, Unauthorized
from .cards import accepted_activity, render_activities
from .connector import BotConnector, Target
from .credentials import ConnectorCredentials
from .outbox import Outbox
from .settings import TeamsSettings

log = logging.getLogger(__name__)

MESSAGES_PATH = "/api/messages"
SEEN_ACTIVITIES = 1024
#: Posted instead of a private notice in a channel or group chat, where everyone would read it.
NOT_SENT_PRIVATELY = (
    "I can only send this link privately, and this conversation is not private, so I have not posted it here. "
    "Send od-web to me in a personal chat (open a chat with Open Dispatch) to get it."
)


class UnknownConversation(Exception):
    """We were asked to write where no verified activity has told us the serviceUrl."""


def _answer(status: int, body: dict[str, Any] | None = None) -> HttpResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="open-dispatch"'} if status == 401 else {}
    return HttpResponse(status, json.dumps(body).encode() if body is not None else b"", headers=headers)


class TeamsChat:

    #: Live output pages: an Adaptive Card's text block, with room for the card around it.
    limits = ChatLimits(page_chars=2800, edit_interval_s=0.25)
    def __init__(self, settings: TeamsSettings, http: httpx.AsyncClient, nursery: trio.Nursery) -> None:
        self.settings = settings
        self._auth = InboundAuthenticator(KeySet(http, settings), settings)
        self.outbox = Outbox(BotConnector(http, ConnectorCredentials(http, settings)), nursery, settings)
        self._service_urls: dict[str, str] = {}
        self._personal: dict[str, bool] = {}  # conversation -> a one-to-one chat (every activity said so)
        self._accepted: dict[str, MessageRef] = {}
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._handler: InboundHandler | None = None
        self._inbound: trio.Nursery | None = None

    # --- inbound ---------------------------------------------------------------------------

    def http_routes(self) -> list[HttpRoute]:
        return [HttpRoute(MESSAGES_PATH, self.receive, ("POST",))]

    async def listen(self, handler: InboundHandler, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run commands from verified activities until cancelled."""
        async with trio.open_nursery() as nursery:
            self._handler, self._inbound = handler, nursery
            try:
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._handler, self._inbound = None, None

    async def receive(self, request: HttpRequest) -> HttpResponse:
        """The messaging endpoint. 401 for anything not proven to come from the Connector."""
        try:
            verified = await self._auth.verify(request.headers.get("authorization"))
        except Unauthorized as exc:
            log.info("Teams: refused an activity: %s", exc)
            return _answer(401, {"error": "unauthorized"})
        try:
            activity = parse_activity(json.loads(request.body))
        except (ValueError, BadActivity) as exc:
            log.info("Teams: unreadable activity: %s", exc)
            return _answer(400, {"error": str(exc)})
        try:
            verified.check_activity(service_url=activity.service_url, channel_id=activity.channel_id)
        except Unauthorized as exc:
            log.info("Teams: refused an activity: %s", exc)
            return _answer(401, {"error": "unauthorized"})
        if self._handler is None or self._inbound is None:
            return _answer(503, {"error": "not listening yet"})
        self._service_urls[activity.conversation.channel] = activity.service_url
        channel = activity.conversation.channel
        self._personal[channel] = self._personal.get(channel, True) and activity.personal
        if activity.type == "invoke":
            return _answer(200, {})
        if activity.type == "message" and not self._seen_before(activity):
            self._inbound.start_soon(self._run, self._handler, activity)
        return _answer(202)

    def _seen_before(self, activity: InboundActivity) -> bool:
        """The Connector may deliver an activity twice; run each command once."""
        if activity.id is None:
            return False
        key = (conversation_id(activity.conversation), activity.id)
        if key in self._seen:
            return True
        self._seen[key] = None
        while len(self._seen) > SEEN_ACTIVITIES:
            self._seen.popitem(last=False)
        return False

    async def _run(self, handler: InboundHandler, activity: InboundActivity) -> None:
        if activity.user is None:
            return
        pressed = card_command(activity.value)
        if pressed is not None:
            text = pressed
        elif activity.text:
            text = activity.text
        else:
            return  # a card submit we do not know, or an empty mention
        try:
            await handler(Inbound(activity.conversation, activity.user, text))
        except Exception:
            log.exception("Teams: the command handler failed")

    # --- outbound --------------------------------------------------------------------------

    async def send(
        self, where: Conversation, message: ChatMessage, *, reply_to: MessageRef | None = None
    ) -> MessageRef:
        target = self._target(where)
        if isinstance(message, Notice) and message.private and not self.is_personal(where):
            log.info("Teams: a private notice for a shared conversation was not posted")
            message = Notice(NOT_SENT_PRIVATELY)
        reply_id = reply_to.id if reply_to is not None else where.thread
        activity_id = ""
        for activity in render_activities(message):
            activity_id = await self.outbox.post(target, activity, reply_to=reply_id)
        ref = MessageRef(where, activity_id)
        if isinstance(message, JobAccepted):
            self._accepted[message.job.id] = ref
        elif isinstance(message, JobCard):
            self._close_accepted(message)
        return ref

    async def edit(self, ref: MessageRef, message: ChatMessage) -> None:
        """Queue the new version; the Outbox paces it and keeps only the newest waiting one."""
        if isinstance(message, Notice) and message.private and not self.is_personal(ref.conversation):
            message = Notice(NOT_SENT_PRIVATELY)
        activities = render_activities(message)
        self.outbox.update(self._target(ref.conversation), ref.id, activities[0])

    def is_personal(self, where: Conversation) -> bool:
        """Whether only the one user who chats with us reads `where`: a personal chat, known
        from the verified activities it sent (`activity.is_personal_chat`); unknown is shared."""
        return where.thread is None and self._personal.get(where.channel, False)

    def _close_accepted(self, card: JobCard) -> None:
        """The first reply's Stop button goes; it says how the job ended instead."""
        ref = self._accepted.pop(card.job.id, None)
        if ref is not None:
            job = card.job
            activity = accepted_activity(job, ended=job, web_url=card.web_url)
            self.outbox.update(self._target(ref.conversation), ref.id, activity)

    def _target(self, where: Conversation) -> Target:
        service_url = self._service_urls.get(where.channel)
        if service_url is None:
            raise UnknownConversation(
                f"no Teams activity from conversation {where.channel!r} was seen since start-up, "
                "so its serviceUrl is unknown"
            )
        return Target(service_url, conversation_id(where))
