"""`SlackChat`: the ChatPort for Slack, in Socket Mode or HTTP mode.

Inbound: both modes acknowledge first (an ack frame, or HTTP 200) and then run the
dispatcher's handler in a task of our own nursery, so Slack's 3-second limit never depends
on how long a command takes. Outbound: every write to a channel goes through that channel's
queue in `Outbox` (ordered, paced, 429-safe, edits merged); ephemeral answers go to the one
user who asked, through the slash command's `response_url` or `chat.postEphemeral`. A private
notice (it holds a credential, such as a signed web link) goes only that way: when neither
works it is not posted, and a public notice says that it could not be sent privately.

With `SLACK_AGENT_SESSIONS` / `SLACK_STREAMING` (and in assistant threads), `native.py` takes
part: a job's thread becomes an agent session, its live pages one stream whose stop carries
the card, and Slack's own stop button (`agent_session_stopped`) becomes `/od-cancel JOB`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qs

import httpx
import trio
from slack_sdk.signature import Clock, SignatureVerifier

from ...domain.errors import ConfigError
from ...domain.job import Conversation, User
from ...domain.messages import ChatMessage, Inbound, JobAccepted, JobCard, LiveOutput, LogExcerpt, MessageRef, Notice
from ...domain.output_buffer import split_message
from ...ports.chat import ChatLimits, InboundHandler
from ...ports.http import HttpRequest, HttpResponse, HttpRoute
from .inbound import (
    PLATFORM,
    BotIdentity,
    Deduper,
    Incoming,
    Invocation,
    from_event,
    from_interaction,
    from_slash_command,
)
from .native import NativeJob, NativeSurfaces
from .outbox import Outbox, Write
from .render import TEXT_LIMIT, escape, log_file_text, render, render_accepted
from .settings import SlackMode, SlackSettings
from .socket_mode import SocketModeClient
from .web import SlackApiError, SlackWeb
from .wire import AgentSessionStopped, read_agent_session_stopped, read_assistant_thread_event, read_event_envelope

log = logging.getLogger(__name__)

LogSource = Callable[[str], Awaitable[Sequence[str]]]
"""`job id → every stored line`, e.g. `store.output`; lets the card carry the full log."""

EPHEMERAL_ID = "ephemeral"
POST_WAIT_S = 30.0
NOT_A_MEMBER = {"not_in_channel", "channel_not_found"}
#: Said in the channel instead of a private notice that could not reach the asker alone.
NOT_SENT_PRIVATELY = (
    "I could not send you this link privately, so I have not posted it here. "
    "Use the `/od-web` slash command in a channel I am in, or in a direct message with me."
)

_invocation: ContextVar[Invocation | None] = ContextVar("slack_invocation", default=None)


class _WallClock(Clock):
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


class SlackChat:
    """Use `open_slack_chat`; it owns the HTTP client and the task nursery this needs."""

    #: Live output pages: a section block holds 3,000 characters.
    limits = ChatLimits(page_chars=3000, edit_interval_s=0.25)

    def __init__(
        self,
        settings: SlackSettings,
        web: SlackWeb,
        nursery: trio.Nursery,
        bot: BotIdentity,
        *,
        fetch_log: LogSource | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.web = web
        self.bot = bot
        self.fetch_log = fetch_log
        self._nursery = nursery
        self.outbox = Outbox(nursery, interval_s=settings.pacing.channel_interval_s)
        self._handler: InboundHandler | None = None
        self._dedupe = Deduper()
        self._told: set[Invocation] = set()
        self._verifier = (
            SignatureVerifier(settings.signing_secret, clock=_WallClock(wall_clock)) if settings.signing_secret else None
        )
        self.socket: SocketModeClient | None = (
            SocketModeClient(web, settings, self._on_envelope) if settings.mode is SlackMode.SOCKET else None
        )
        #: Slack's agent sessions, streamed live output and assistant status (native.py).
        self.native = NativeSurfaces(settings, web, self.outbox, bot, interval_s=settings.pacing.channel_interval_s)

    # --- ChatPort: out ------------------------------------------------------------------------

    async def send(
        self, where: Conversation, message: ChatMessage, *, reply_to: MessageRef | None = None
    ) -> MessageRef:
        if isinstance(message, Notice) and message.private:
            if await self._send_private(where, message):
                return MessageRef(where, EPHEMERAL_ID)
            return await self.send(where, Notice(NOT_SENT_PRIVATELY), reply_to=reply_to)
        if isinstance(message, Notice) and message.ended_sessions:
            self.native.sessions_ended(message.ended_sessions)
        if isinstance(message, Notice) and message.ephemeral and await self._send_ephemeral(where, message):
            return MessageRef(where, EPHEMERAL_ID)
        if isinstance(message, LiveOutput):
            streamed = await self.native.send_live(where, message, reply_to)
            if streamed is not None:
                return streamed
        native: NativeJob | None = None
        if isinstance(message, JobCard):
            native, stopped = await self.native.send_card(message)
            if stopped is not None:  # the stream's stop carried the card
                self._after_card(message, reply_to, stopped, native)
                await self.native.card_posted(native, message)
                return stopped
        thread_ts = (reply_to.conversation.thread or reply_to.id) if reply_to is not None else where.thread
        if isinstance(message, LiveOutput):
            thread_ts = self.native.thread_for(message.job) or thread_ts
        first: MessageRef | None = None
        for part in render(message):
            args: dict[str, Any] = {"channel": where.channel, **part.args(), "unfurl_links": False, "unfurl_media": False}
            if thread_ts:
                args["thread_ts"] = thread_ts
            if isinstance(message, JobAccepted) and first is None:
                metadata = self.native.metadata(message.job)
                if metadata is not None:  # lets a restarted process find the job's thread
                    args["metadata"] = metadata
            answer = await self._post(where.channel, args)
            if first is None:
                channel = str(answer.get("channel") or where.channel)
                first = MessageRef(Conversation(PLATFORM, channel, thread=thread_ts), str(answer["ts"]))
        assert first is not None  # render always gives at least one message
        if isinstance(message, JobAccepted):
            self.native.accepted(message, where, first)
        elif isinstance(message, JobCard):
            self._after_card(message, reply_to, first, native)
            await self.native.card_posted(native, message)
        elif isinstance(message, LogExcerpt) and message.file is not None:
            self._nursery.start_soon(self._attach_kept_file, message, first)
        elif isinstance(message, LogExcerpt) and message.raw and message.lines:
            self._nursery.start_soon(self._attach_transcript, message, first)
        return first

    async def edit(self, ref: MessageRef, message: ChatMessage) -> None:
        """Queue the new version and return: only the newest queued version is sent."""
        if ref.id == EPHEMERAL_ID:
            return  # Slack cannot edit ephemeral messages
        if isinstance(message, Notice) and message.private:
            message = Notice(NOT_SENT_PRIVATELY)  # a channel message never becomes a credential
        if isinstance(message, LiveOutput) and self.native.edit_live(ref, message):
            return  # a page of a stream
        args = {"channel": ref.conversation.channel, "ts": ref.id, **render(message)[0].args()}
        self._queue_edit(ref, args)

    def _queue_edit(self, ref: MessageRef, args: dict[str, Any]) -> None:
        channel = ref.conversation.channel
        self.outbox.put(
            channel, Write(self._logged("chat.update", args), key=f"{channel}/{ref.id}", describe="chat.update")
        )

    def _logged(self, method: str, args: dict[str, Any]) -> Callable[[], Awaitable[dict[str, Any]]]:
        async def call() -> dict[str, Any]:
            try:
                return await self.web.call(method, args)
            except SlackApiError as exc:  # nobody waits on an edit: say it here
                log.warning("Slack %s of %s failed: %s", method, args.get("ts"), exc.error)
                raise

        return call

    async def _post(self, channel: str, args: dict[str, Any]) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            return await self.web.call("chat.postMessage", args)

        write = self.outbox.put(channel, Write(call, describe="chat.postMessage"))
        try:
            # Once queued, the post happens even if our caller is cancelled (a job ending while
            # its live page waits in line); shielding hands back its ref, so the caller does
            # not post that page a second time. Bounded, so shutdown is never held up for long.
            with trio.move_on_after(POST_WAIT_S) as waiting:
                waiting.shield = True
                return await write.wait()
            raise SlackApiError("chat.postMessage", f"still queued after {POST_WAIT_S:.0f}s")
        except SlackApiError as exc:
            if exc.error in NOT_A_MEMBER:
                await self._tell_invoker(
                    channel, "I can't post in this channel. Invite me with `/invite @open-dispatch` and try again."
                )
            raise

    async def _send_ephemeral(self, where: Conversation, message: Notice) -> bool:
        """Answer only the user who asked; False when we do not know who that is."""
        invocation = _invocation.get()
        if invocation is None or invocation.channel_id != where.channel:
            return False
        for chunk in split_message(escape(message.text), TEXT_LIMIT) or [" "]:
            await self._ephemeral(invocation, chunk, thread_ts=where.thread or invocation.thread_ts)
        return True

    async def _send_private(self, where: Conversation, message: Notice) -> bool:
        """`_send_ephemeral`, never raising: False when the asker alone could not be reached
        (the caller must then not post it). Only Slack's error code is logged, never the text."""
        try:
            return await self._send_ephemeral(where, message)
        except (SlackApiError, httpx.HTTPError) as exc:
            log.warning("Slack: a private answer could not be sent ephemerally (%s); not posting it", _reason(exc))
            return False

    async def _ephemeral(self, invocation: Invocation, text: str, *, thread_ts: str | None) -> None:
        if invocation.response_url:
            try:
                await self.web.post_url(
                    invocation.response_url, {"response_type": "ephemeral", "text": text, "replace_original": False}
                )
                return
            except (SlackApiError, httpx.HTTPError) as exc:  # used up (5 per command) or expired
                # The URL itself is a credential for 30 minutes: name the error, never the URL.
                log.info("Slack response_url failed (%s); using chat.postEphemeral", _reason(exc))
        args: dict[str, Any] = {"channel": invocation.channel_id, "user": invocation.user_id, "text": text}
        if thread_ts:
            args["thread_ts"] = thread_ts
        await self.web.call("chat.postEphemeral", args)

    async def _tell_invoker(self, channel: str, text: str) -> None:
        invocation = _invocation.get()
        if invocation is None or invocation.channel_id != channel or invocation in self._told:
            return
        self._told.add(invocation)  # once per command, not once per live page of its job
        try:
            await self._ephemeral(invocation, text, thread_ts=None)
        except (SlackApiError, httpx.HTTPError):
            log.info("could not tell the user that we are not in channel %s", channel)

    def _after_card(
        self, card: JobCard, started: MessageRef | None, card_ref: MessageRef, native: NativeJob | None = None
    ) -> None:
        """The channel message loses its Stop button and shows the outcome; long logs get a file.

        After a restart the runner no longer knows the channel message; the native surfaces may
        have found it again (its ts is the job's thread).
        """
        if started is None and native is not None and native.accepted_ts is not None:
            started = MessageRef(Conversation(PLATFORM, native.channel), native.accepted_ts)
        if started is not None and started.id != EPHEMERAL_ID:
            final = render_accepted(card.job, live=False, web_url=card.web_url)
            self._queue_edit(started, {"channel": started.conversation.channel, "ts": started.id, **final.args()})
        if self.fetch_log is not None and card.total_lines > max(len(card.tail), self.settings.attach_log_over_lines):
            self._nursery.start_soon(self._attach_log, card, card_ref)

    async def _attach_log(self, card: JobCard, card_ref: MessageRef) -> None:
        assert self.fetch_log is not None
        job_id = card.job.id
        try:
            content = log_file_text(await self.fetch_log(job_id)).encode("utf-8")
        except Exception:
            log.exception("job %s: could not read the full log for Slack", job_id)
            return
        await self._upload(
            card_ref, f"{job_id}.log", content, title=f"Full log of job {job_id}",
            comment=f"Full log of job {job_id} ({card.total_lines} lines)",
        )

    async def _attach_transcript(self, excerpt: LogExcerpt, ref: MessageRef) -> None:
        job_id = excerpt.job.id
        content = log_file_text(excerpt.lines).encode("utf-8")
        await self._upload(
            ref, f"{job_id}.transcript.jsonl", content, title=f"Raw agent transcript of job {job_id}",
            comment=f"Raw agent transcript of job {job_id} ({len(excerpt.lines)} lines)",
        )

    async def _attach_kept_file(self, excerpt: LogExcerpt, ref: MessageRef) -> None:
        """`/od-logs JOB --artifact NAME`: the kept file itself, in the thread of the preview."""
        assert excerpt.file is not None
        name, job_id = excerpt.file.artifact.name, excerpt.job.id
        await self._upload(
            ref, excerpt.file.filename, excerpt.file.content, title=f"{name} (job {job_id})",
            comment=f"Artifact {name!r} of job {job_id}",
        )

    async def _upload(self, where: MessageRef, filename: str, content: bytes, *, title: str, comment: str) -> None:
        """A file in the thread of `where` (Slack's external upload: get a URL, send, complete)."""
        try:
            upload = await self.web.call(
                "files.getUploadURLExternal", {"filename": filename, "length": str(len(content))}, form=True
            )
            await self.web.upload_bytes(str(upload["upload_url"]), filename, content)
            args: dict[str, Any] = {
                "files": [{"id": upload["file_id"], "title": title}],
                "channel_id": where.conversation.channel,
                "initial_comment": comment,
            }
            if where.conversation.thread:
                args["thread_ts"] = where.conversation.thread

            async def complete() -> dict[str, Any]:
                return await self.web.call("files.completeUploadExternal", args)

            await self.outbox.put(where.conversation.channel, Write(complete, describe="file")).wait()
        except (SlackApiError, httpx.HTTPError, KeyError) as exc:
            log.warning("could not attach %s in Slack: %s", filename, _reason(exc))
        except Exception:
            log.exception("could not attach %s in Slack", filename)

    # --- ChatPort: in -------------------------------------------------------------------------

    async def listen(self, handler: InboundHandler, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self._handler = handler
        try:
            if self.socket is not None:
                await self.socket.run(task_status=task_status)
            else:
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._handler = None

    def _deliver(self, incoming: Incoming | None) -> None:
        """Run the handler in the background: the caller has already acknowledged Slack."""
        if incoming is not None and self._handler is not None:
            self.native.saw_user(incoming.invocation.user_id, incoming.inbound.user.name)
            self._nursery.start_soon(self._handle, self._handler, incoming)

    def _on_event(self, body: dict[str, Any]) -> None:
        """An Events API body (either mode), already acknowledged and seen once."""
        event = body.get("event") if body.get("type") == "event_callback" else None
        kind = event.get("type") if isinstance(event, dict) else None
        if kind in ("assistant_thread_started", "assistant_thread_context_changed"):
            started = read_assistant_thread_event(event)
            if started is not None and started.assistant_thread is not None:
                self.native.assistant_thread(started.assistant_thread.channel_id, started.assistant_thread.thread_ts)
            return
        if kind == "agent_session_stopped":
            stop = read_agent_session_stopped(event)
            if stop is not None and self._handler is not None:
                self._nursery.start_soon(self._native_stop, self._handler, stop)
            return
        if isinstance(event, dict) and kind == "message":
            self.native.on_message_event(event)
        self._deliver(from_event(body, self.bot))

    async def _native_stop(self, handler: InboundHandler, event: AgentSessionStopped) -> None:
        """Slack's own stop button: `/od-cancel JOB` by the user who clicked, as our Stop button
        is (inbound.from_interaction), so the ownership rule and the card are the same."""
        channel, thread_ts, user_id = event.channel, event.thread_ts, event.user
        if not channel or not thread_ts or not user_id:
            return
        self.native.streams_stopped(channel, event.streaming_message_ts)
        job_id = await self.native.job_in_thread(channel, thread_ts)
        if job_id is None:
            log.info("Slack: a stop in thread %s that holds no job of ours", thread_ts)
            return
        user = User(user_id, self.native.name_of(user_id, job_id))
        inbound = Inbound(Conversation(PLATFORM, channel, thread=thread_ts), user, f"/od-cancel {job_id}")
        await self._handle(handler, Incoming(inbound, Invocation(user_id, channel, thread_ts=thread_ts)))

    async def _handle(self, handler: InboundHandler, incoming: Incoming) -> None:
        _invocation.set(incoming.invocation)  # this task's own context: replies find their user
        try:
            await handler(incoming.inbound)
        except Exception:
            log.exception("Slack command from %s failed", incoming.invocation.user_id)

    def _on_envelope(self, frame: dict[str, Any]) -> None:
        payload = frame.get("payload")
        if not isinstance(payload, dict):
            return
        kind = frame.get("type")
        if kind == "slash_commands":
            keys = (frame.get("envelope_id"), payload.get("trigger_id"))
            incoming = from_slash_command(payload)
        elif kind == "interactive":
            keys = (frame.get("envelope_id"), payload.get("trigger_id"))
            incoming = from_interaction(payload)
        elif kind == "events_api":
            keys = (frame.get("envelope_id"), _event_key(payload))
            if self._dedupe.first_time(*(k if isinstance(k, str) else None for k in keys)):
                self._on_event(payload)
            return
        else:
            return
        if self._dedupe.first_time(*(k if isinstance(k, str) else None for k in keys)):
            self._deliver(incoming)

    # --- HTTP mode ----------------------------------------------------------------------------

    def http_routes(self) -> list[HttpRoute]:
        """One endpoint for commands, events and interactivity (all three URLs in the manifest)."""
        if self.settings.mode is not SlackMode.HTTP:
            return []
        return [HttpRoute(self.settings.http_path, self._on_http)]

    async def _on_http(self, request: HttpRequest) -> HttpResponse:
        content_type = request.headers.get("content-type", "")
        form = _form(request.body) if "application/x-www-form-urlencoded" in content_type else {}
        if form.get("ssl_check") == "1":
            return HttpResponse(200, content_type="text/plain")
        if not self._signed(request):
            return HttpResponse(401, b'{"ok":false,"error":"invalid signature"}')
        body: Any = None
        if "application/json" in content_type:
            try:
                body = json.loads(request.body)
            except ValueError:
                return HttpResponse(400, b'{"ok":false,"error":"invalid JSON"}')
            if isinstance(body, dict) and body.get("type") == "url_verification":
                challenge = str(body.get("challenge", ""))
                return HttpResponse(200, json.dumps({"challenge": challenge}).encode())
        if self._handler is None:
            return HttpResponse(503, b'{"ok":false,"error":"starting"}')
        if isinstance(body, dict):
            if self._dedupe.first_time(_event_key(body)):
                self._on_event(body)
        elif "payload" in form:
            try:
                payload = json.loads(form["payload"])
            except ValueError:
                return HttpResponse(400, b'{"ok":false,"error":"invalid payload"}')
            if isinstance(payload, dict) and self._dedupe.first_time(_str_or_none(payload.get("trigger_id"))):
                self._deliver(from_interaction(payload))
        elif "command" in form:
            if self._dedupe.first_time(form.get("trigger_id")):
                self._deliver(from_slash_command(form))
        return HttpResponse(200, content_type="text/plain")

    def _signed(self, request: HttpRequest) -> bool:
        if self._verifier is None:
            return False
        try:
            return self._verifier.is_valid_request(request.body, dict(request.headers))
        except (ValueError, UnicodeDecodeError):  # a timestamp that is not a number, a body that is not text
            return False


def _reason(exc: Exception) -> str:
    """What went wrong, without URLs (a response_url or upload URL grants access)."""
    return exc.error if isinstance(exc, SlackApiError) else type(exc).__name__


def _form(body: bytes) -> dict[str, str]:
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return {}
    return {key: values[0] for key, values in parsed.items() if values}


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _event_key(body: Any) -> str | None:
    envelope = read_event_envelope(body)
    return f"event:{envelope.event_id}" if envelope is not None and envelope.event_id else None


async def who_am_i(web: SlackWeb) -> BotIdentity:
    """`auth.test`: checks the bot token now, with a fix the operator can act on."""
    try:
        answer = await web.call("auth.test")
    except SlackApiError as exc:
        raise ConfigError(
            f"Slack refused SLACK_BOT_TOKEN ({exc.error}): copy the Bot User OAuth Token (xoxb-…) from "
            "OAuth & Permissions after installing the app."
        ) from None
    return BotIdentity(
        user_id=str(answer.get("user_id", "")),
        bot_id=_str_or_none(answer.get("bot_id")),
        team_id=_str_or_none(answer.get("team_id")),
    )


@asynccontextmanager
async def open_slack_chat(
    settings: SlackSettings,
    *,
    fetch_log: LogSource | None = None,
    wall_clock: Callable[[], float] = time.time,
    http_timeout_s: float = 20.0,
    on_response: Callable[[httpx.Response], Awaitable[None]] | None = None,
) -> AsyncIterator[SlackChat]:
    """Check the bot token, then yield a SlackChat whose queues live as long as this block."""
    async with httpx.AsyncClient(timeout=http_timeout_s, event_hooks={"response": [on_response]} if on_response else None) as http:
        web = SlackWeb(http, api_url=settings.api_url, bot_token=settings.bot_token, pacing=settings.pacing)
        bot = await who_am_i(web)
        async with trio.open_nursery() as nursery:
            yield SlackChat(settings, web, nursery, bot, fetch_log=fetch_log, wall_clock=wall_clock)
            nursery.cancel_scope.cancel()
