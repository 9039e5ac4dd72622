"""`TeamsChat`: the ChatPort for Microsoft Teams through the Bot Framework.

In: Bot Connector POSTs signed activities to `/api/messages` on our webhook server. Every
check of `auth.py` passes before anything is remembered or started; then we answer 202 at
once (the Connector gives up after ~15 s) and run the command in a task of `listen`.
Out: the Bot Connector REST API through `Outbox` (ordered, paced, retried), with cards from
`cards.py`. The serviceUrl of each conversation is learnt from its verified activities, and so
is whether it is a personal (one-to-one) chat: Teams has no ephemeral messages, so a private
notice (it holds a credential, such as a signed web link) is posted only in a personal chat;
anywhere else a notice saying where to ask for it goes instead.

In a personal chat a job's live output is a Teams stream (`streaming.LiveStream`, unless
`TEAMS_STREAMING=0`): its pages go to the job's stream instead of cards, and its card ends
the stream. Teams' own Stop on a stream becomes `/od-cancel JOB` in the name of the chat's
user, exactly as a press on our Stop button does. Channels and group chats keep the cards.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio

from ...domain.job import Conversation, User
from ...domain.messages import ChatMessage, Inbound, JobAccepted, JobCard, LiveOutput, MessageRef, Notice
from ...ports.chat import ChatLimits, InboundHandler
from ...ports.http import HttpRequest, HttpResponse, HttpRoute
from .activity import BadActivity, InboundActivity, card_command, conversation_id, parse_activity
from .auth import InboundAuthenticator, KeySet, Unauthorized
from .cards import accepted_activity, render_activities
from .connector import BotConnector, Target
from .credentials import ConnectorCredentials
from .outbox import Outbox
from .settings import TeamsSettings
from .streaming import LiveStream, job_of_stream_ref, stream_ref_id

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
        self._nursery = nursery
        self._service_urls: dict[str, str] = {}
        self._personal: dict[str, bool] = {}  # conversation -> a one-to-one chat (every activity said so)
        self._chat_users: dict[str, User] = {}  # personal chat -> its user (who presses Teams' Stop there)
        self._streams: dict[str, LiveStream] = {}  # job id -> its live output's stream
        self._no_streaming: set[str] = set()  # personal chats where Teams refused to stream
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
        if activity.personal and activity.user is not None:
            self._chat_users[channel] = activity.user
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
        if isinstance(message, LiveOutput):
            stream = self._stream_for(where, target, message, reply_to)
            if stream is not None:
                stream.show(message)
                return MessageRef(where, stream_ref_id(message.job.id, message.page))
        elif isinstance(message, JobCard) and message.job.id in self._streams:
            try:  # the stream keeps its chat's one slot until its final message is out
                carried = await self._streams[message.job.id].finish(message)
            finally:
                self._streams.pop(message.job.id, None)
            if carried is not None:  # the stream's final message holds the card
                self._close_accepted(message)
                return carried
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
        streamed_job = job_of_stream_ref(ref.id)
        if streamed_job is not None:
            stream = self._streams.get(streamed_job)
            if stream is not None and isinstance(message, LiveOutput):
                stream.show(message)
            return
        if isinstance(message, Notice) and message.private and not self.is_personal(ref.conversation):
            message = Notice(NOT_SENT_PRIVATELY)
        activities = render_activities(message)
        self.outbox.update(self._target(ref.conversation), ref.id, activities[0])

    def is_personal(self, where: Conversation) -> bool:
        """Whether only the one user who chats with us reads `where`: a personal chat, known
        from the verified activities it sent (`activity.is_personal_chat`); unknown is shared."""
        return where.thread is None and self._personal.get(where.channel, False)

    # --- streams (personal chats) --------------------------------------------------------------

    def _stream_for(
        self, where: Conversation, target: Target, message: LiveOutput, reply_to: MessageRef | None
    ) -> LiveStream | None:
        """The job's stream: started with its first page in a personal chat that has no other
        stream open (Teams allows one per chat); None means cards, as in a channel."""
        job = message.job
        existing = self._streams.get(job.id)
        if existing is not None:
            return existing
        if (
            not self.settings.streaming
            or message.page != 0
            or job.is_finished
            or not self.is_personal(where)
            or where.channel in self._no_streaming
            or any(s.holds_stream and s.where.channel == where.channel for s in self._streams.values())
        ):
            return None
        stream = LiveStream(
            job=job,
            where=where,
            target=target,
            reply_to=reply_to.id if reply_to is not None else where.thread,
            outbox=self.outbox,
            settings=self.settings,
            on_stop=self._stopped_in_teams,
            on_refused=self._refused_streaming,
        )
        try:
            self._nursery.start_soon(stream.run)
        except RuntimeError:  # the adapter is closing
            return None
        self._streams[job.id] = stream
        return stream

    def _stopped_in_teams(self, stream: LiveStream) -> None:
        """Teams' Stop was pressed on a job's stream: cancel the job as our Stop button would."""
        if self._inbound is None:
            stream.stop_handled()
            return
        try:
            self._inbound.start_soon(self._cancel_stopped, stream)
        except RuntimeError:
            stream.stop_handled()

    async def _cancel_stopped(self, stream: LiveStream) -> None:
        try:
            user, handler = self._chat_users.get(stream.where.channel), self._handler
            if user is None or handler is None:
                log.warning("Teams: Stop was pressed on job %s, but its chat's user is unknown", stream.job_id)
                return
            log.info("Teams: %s pressed Teams' Stop on job %s", user.id, stream.job_id)
            await handler(Inbound(stream.where, user, f"/od-cancel {stream.job_id}"))
        except Exception:
            log.exception("Teams: the command handler failed")
        finally:
            stream.stop_handled()

    def _refused_streaming(self, stream: LiveStream) -> None:
        log.warning("Teams does not let us stream in chat %s; its jobs' output goes in cards", stream.where.channel)
        self._no_streaming.add(stream.where.channel)

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


DRAIN_ON_CLOSE_S = 5.0


@asynccontextmanager
async def open_teams_chat(
    settings: TeamsSettings,
    *,
    on_response: Callable[[httpx.Response], Awaitable[None]] | None = None,
) -> AsyncIterator[TeamsChat]:
    """The adapter with its HTTP client and the nursery its outgoing queues run in.

    On exit it waits (briefly, shielded) for queued activities such as the last card update
    to go out, then stops.
    """
    async with httpx.AsyncClient(timeout=settings.http_timeout_s, event_hooks={"response": [on_response]} if on_response else None) as http:
        async with trio.open_nursery() as nursery:
            chat = TeamsChat(settings, http, nursery)
            try:
                yield chat
            finally:
                with trio.move_on_after(DRAIN_ON_CLOSE_S, shield=True):
                    await chat.outbox.drained()
                nursery.cancel_scope.cancel()
