"""`DiscordChat`: the ChatPort for Discord, Trio on the outside, discord.py kept in a thread.

How a slash command flows:
1. The interaction arrives over the gateway (discord.py, on its own asyncio loop in a worker
   thread, see gateway.py) or as a signed HTTP POST (`http_routes`). Either way its raw JSON
   lands in one Trio memory channel, the "inbox", read by `listen`.
2. `listen` serves each interaction in its own task: it builds the command line from the
   typed options and calls the Dispatcher's handler. While the handler runs, the interaction
   is "open" for that task (a context variable): the handler's replies without `reply_to`
   become the interaction's response. If no reply came within `defer_after_s` we send a
   deferred response first, so Discord's 3-second deadline is always met; an ephemeral
   `Notice` (bad input) is sent with the ephemeral flag. A private `Notice` (it holds a
   credential, such as a signed web link) is sent that way too, and only that way: with no
   interaction to answer it is not posted, and a public notice says how to ask for it.
3. `JobAccepted` is the (public) interaction response; the job's live output and final card
   arrive with `reply_to=` that message, so we open a thread on it and post there with the
   bot token (interaction tokens die after 15 minutes, jobs may run longer).
4. Posts and edits go through `Outbox` (one ordered queue per channel, edits coalesced) and
   `DiscordRest` (rate limits honoured), both on Trio.

Plain messages (gateway mode only: HTTP-interactions mode never sees them) arrive in the
same inbox as MESSAGE_CREATE and become an `Inbound`: addressed for a DM or a mention of the
bot, overheard (`addressed=False`) otherwise, so that only a session bound to that channel or
thread takes them. A thread is the conversation (parent channel, thread=`parent:thread id`),
see `conversation_of`; its parent is learnt from interactions and threads we open, else asked
once from `GET /channels/{id}`.
"""

from __future__ import annotations

import contextvars
import enum
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import outcome
import trio

from ...domain.errors import ConfigError
from ...domain.job import Conversation
from ...domain.messages import ApprovalPrompt, ChatMessage, Inbound, JobCard, LiveOutput, LogExcerpt, MessageRef, Notice
from ...ports.chat import ChatLimits, InboundHandler
from ...ports.http import HttpRequest, HttpResponse, HttpRoute
from .app_commands import application_commands
from .gateway import INTERACTION, MESSAGE, GatewayBot
from .interactions import (
    APPLICATION_COMMAND,
    MESSAGE_COMPONENT,
    PING,
    PLATFORM,
    BadInteraction,
    InteractionEvent,
    channel_to_post_in,
    conversation_of,
    parse_interaction,
    signature_checker,
    verify_signature,
)
from .messages import THREAD_TYPES, parse_message
from .outbox import Outbox, group_key, split_group_key
from .payloads import EPHEMERAL, Payload, is_ephemeral, is_private, message_parts, thread_name
from .rest import USER_AGENT, DiscordApiError, DiscordRest
from .settings import GATEWAY, DiscordSettings

log = logging.getLogger(__name__)

#: Attachments over this are refused for bots of servers without boosts (10 MiB); a little
#: under it leaves room for the form's own bytes.
MAX_ATTACHMENT_BYTES = 8 * 2**20


def transcript_file(lines: Sequence[str], limit: int) -> tuple[bytes, int]:
    """The newest of `lines` that fit in `limit` bytes, one per line; and how many they are."""
    kept: list[bytes] = []
    size = 0
    for line in reversed(lines):
        encoded = line.encode("utf-8") + b"\n"
        if size + len(encoded) > limit:
            break
        kept.append(encoded)
        size += len(encoded)
    return b"".join(reversed(kept)), len(kept)

INTERACTIONS_PATH = "/discord/interactions"
INBOX_SIZE = 256
DRAIN_TIMEOUT_S = 10.0
STABLE_AFTER_S = 60.0
THREAD_ARCHIVE_MINUTES = 1440
EPHEMERAL_PREFIX = "ephemeral:"
THREAD_ALREADY_EXISTS = 160004
KNOWN_CHANNELS_MAX = 10_000
#: Said instead of a private notice where no interaction can carry it to the asker alone.
NOT_SENT_PRIVATELY = (
    "I can only send this link privately, as my answer to your slash command, so I have not posted it here. "
    "Use /od-web to get it."
)

#: What the inbox carries: (INTERACTION, interaction payload) or (MESSAGE, {"message", "bot_user_id"}).
Delivery = tuple[str, dict[str, Any]]

BotFactory = Callable[..., GatewayBot]


class _State(enum.Enum):
    FRESH = "fresh"
    DEFERRED = "deferred"
    ANSWERED = "answered"


_OPEN_INTERACTION: contextvars.ContextVar[_Interaction | None] = contextvars.ContextVar(
    "open_discord_interaction", default=None
)


class _Interaction:
    """One interaction being answered: the first reply is its response, later ones follow-ups."""

    def __init__(self, event: InteractionEvent, chat: DiscordChat) -> None:
        self.event = event
        self.chat = chat
        self.state = _State.FRESH
        self.open = True
        self._lock = trio.Lock()

    @property
    def _webhook(self) -> str:
        return f"/webhooks/{self.event.application_id}/{self.event.token}"

    async def _callback(self, body: Payload) -> Any:
        return await self.chat.rest.request(
            "POST",
            f"/interactions/{self.event.id}/{self.event.token}/callback",
            json_body=body,
            params={"with_response": "true"},
            auth=False,
        )

    async def defer_after(self, delay_s: float) -> None:
        """Acknowledge with "thinking…" if nothing was answered within `delay_s`."""
        await trio.sleep(delay_s)
        async with self._lock:
            if self.state is _State.FRESH:
                with trio.CancelScope(shield=True):  # half-sent, it would be answered twice
                    await self._callback({"type": 5})
                self.state = _State.DEFERRED

    async def respond(self, message: ChatMessage) -> MessageRef:
        parts = message_parts(message)
        flags = EPHEMERAL if is_ephemeral(message) else 0
        if flags:
            parts = [{**part, "flags": flags} for part in parts]
        async with self._lock:
            first = await self._first_part(parts[0], ephemeral=bool(flags))
            for extra in parts[1:]:
                await self._follow_up(extra)
        message_id = str(first["id"])
        if flags:
            return MessageRef(self.event.conversation, EPHEMERAL_PREFIX + message_id)
        channel_id = str(first.get("channel_id") or channel_to_post_in(self.event.conversation))
        self.chat.interaction_messages[group_key(channel_id, message_id)] = self._webhook
        return MessageRef(self.event.conversation, group_key(channel_id, message_id))

    async def _first_part(self, payload: Payload, *, ephemeral: bool) -> dict[str, Any]:
        if self.state is _State.FRESH:
            answer = await self._callback({"type": 4, "data": payload})
            self.state = _State.ANSWERED
            return dict(answer["resource"]["message"])
        if self.state is _State.DEFERRED:
            self.state = _State.ANSWERED
            if not ephemeral:
                return dict(await self.chat.rest.request("PATCH", f"{self._webhook}/messages/@original", json_body=payload, auth=False))
            # A deferred response keeps the visibility it was deferred with, so a private
            # answer goes in a follow-up and the public "thinking…" message is removed.
            await self.chat.rest.request(
                "PATCH", f"{self._webhook}/messages/@original", json_body={"content": "Answered privately."}, auth=False
            )
            answer = await self._follow_up(payload)
            await self.chat.rest.request("DELETE", f"{self._webhook}/messages/@original", auth=False)
            return answer
        return await self._follow_up(payload)

    async def _follow_up(self, payload: Payload) -> dict[str, Any]:
        return dict(await self.chat.rest.request("POST", self._webhook, json_body=payload, auth=False))

    async def finish(self) -> None:
        """After the handler: never leave Discord waiting on an answer that will not come."""
        self.open = False
        async with self._lock:
            if self.state is _State.FRESH:
                await self._callback({"type": 4, "data": {"content": "Done.", "flags": EPHEMERAL}})
            elif self.state is _State.DEFERRED:
                await self.chat.rest.request("DELETE", f"{self._webhook}/messages/@original", auth=False)
            self.state = _State.ANSWERED


class _PendingPost:
    def __init__(self) -> None:
        self.done = trio.Event()
        self.key: str | None = None
        self.error: Exception | None = None


class DiscordChat:
    """The ChatPort (and ChatWithRoutes) for Discord. Build it with `open_discord_chat`."""

    #: Live output pages: a message holds 2,000 characters, the code fence included.
    limits = ChatLimits(page_chars=1800, edit_interval_s=0.25)

    def __init__(
        self,
        settings: DiscordSettings,
        rest: DiscordRest,
        nursery: trio.Nursery,
        *,
        bot_factory: BotFactory = GatewayBot,
    ) -> None:
        self.settings = settings
        self.rest = rest
        self.outbox = Outbox(rest, nursery)
        self._nursery = nursery
        self._bot_factory = bot_factory
        self._verify_key = signature_checker(settings.public_key) if settings.public_key else None
        self._inbox: trio.MemorySendChannel[Delivery] | None = None
        self._listening = trio.Event()
        self._threads: dict[str, tuple[str, str | None]] = {}  # anchor key -> (channel, reference)
        self._thread_locks: dict[str, trio.Lock] = {}
        self._parents: dict[str, str | None] = {}  # channel id -> parent channel when a thread
        self._pages: dict[tuple[str, int], _PendingPost] = {}  # (job id, page) -> its message
        self.interaction_messages: dict[str, str] = {}  # group key -> interaction webhook path
        self.bots: list[GatewayBot] = []
        self.gateway_failures: list[str] = []

    # --- ChatPort ----------------------------------------------------------------------------

    async def send(self, where: Conversation, message: ChatMessage, *, reply_to: MessageRef | None = None) -> MessageRef:
        open_interaction = _OPEN_INTERACTION.get()
        if (
            reply_to is None
            # Edited long after any interaction token (15 minutes) has died: a bot message.
            and not isinstance(message, (LiveOutput, JobCard, ApprovalPrompt))
            and open_interaction is not None
            and open_interaction.open
            and open_interaction.event.conversation == where
        ):
            ref = await open_interaction.respond(message)
            await self._attach_transcript(where, message)
            return ref
        if is_private(message):
            # Anything but an ephemeral interaction answer would show the credential to others.
            log.info("Discord: a private notice for %s had no interaction to answer; not posted", where.channel)
            return await self.send(where, Notice(NOT_SENT_PRIVATELY), reply_to=reply_to)
        if isinstance(message, LiveOutput):
            return await self._send_page(where, message, reply_to)
        if isinstance(message, JobCard):
            for page_key in [k for k in self._pages if k[0] == message.job.id]:
                del self._pages[page_key]
        ref = MessageRef(where, await self._post(where, message, reply_to))
        await self._attach_transcript(where, message)
        return ref

    async def _attach_transcript(self, where: Conversation, message: ChatMessage) -> None:
        """`/od-logs JOB --raw`: the whole transcript as a `.jsonl` file (the text shows its tail);
        `--artifact NAME`: the kept file itself (the text shows its first lines)."""
        if isinstance(message, LogExcerpt) and message.file is not None:
            file, job_id = message.file, message.job.id
            try:
                await self.outbox.post_file(
                    channel_to_post_in(where), f"Artifact {file.artifact.name!r} of {job_id}", file.filename, file.content
                )
            except Exception:
                log.warning("job %s: could not attach an artifact file in Discord", job_id, exc_info=True)
            return
        if not (isinstance(message, LogExcerpt) and message.raw and message.lines):
            return
        job_id = message.job.id
        data, kept = transcript_file(message.lines, MAX_ATTACHMENT_BYTES)
        note = f"Raw agent transcript of {job_id} ({len(message.lines)} lines)"
        if kept < len(message.lines):
            note += f"; the file holds its newest {kept} lines (Discord's {MAX_ATTACHMENT_BYTES // 2**20} MiB limit)"
        try:
            await self.outbox.post_file(channel_to_post_in(where), note, f"{job_id}.transcript.jsonl", data)
        except Exception:
            log.warning("job %s: could not attach the raw transcript in Discord", job_id, exc_info=True)

    async def _post(self, where: Conversation, message: ChatMessage, reply_to: MessageRef | None) -> str:
        channel_id, reference = channel_to_post_in(where), None
        if reply_to is not None:
            channel_id, reference = await self._thread_for(reply_to, message)
        return await self.outbox.post(channel_id, message, reference=reference)

    async def _send_page(self, where: Conversation, message: LiveOutput, reply_to: MessageRef | None) -> MessageRef:
        """Post a live page once: a repeated send of the same page becomes an edit.

        The runner can be cancelled while our post is in flight (the job ended), and then
        sends the page again from its final flush; the post still lands, so without this
        the page would appear twice.
        """
        page_key = (message.job.id, message.page)
        pending = self._pages.get(page_key)
        if pending is not None:
            await pending.done.wait()
            if pending.key is not None:
                await self.outbox.edit(pending.key, message)
                return MessageRef(where, pending.key)
        pending = self._pages[page_key] = _PendingPost()
        # Posted from our own nursery, so the page's id is recorded even if our caller is
        # cancelled while waiting.
        self._nursery.start_soon(self._post_page, pending, page_key, where, message, reply_to)
        await pending.done.wait()
        if pending.key is None:
            raise pending.error or RuntimeError("the live page was not posted")
        return MessageRef(where, pending.key)

    async def _post_page(
        self,
        pending: _PendingPost,
        page_key: tuple[str, int],
        where: Conversation,
        message: LiveOutput,
        reply_to: MessageRef | None,
    ) -> None:
        try:
            pending.key = await self._post(where, message, reply_to)
        except Exception as exc:
            pending.error = exc
            if self._pages.get(page_key) is pending:
                del self._pages[page_key]
        finally:
            pending.done.set()

    async def edit(self, ref: MessageRef, message: ChatMessage) -> None:
        if ref.id.startswith(EPHEMERAL_PREFIX):
            log.debug("not editing an ephemeral Discord message")
            await trio.lowlevel.checkpoint()
            return
        if is_private(message):
            message = Notice(NOT_SENT_PRIVATELY)  # a message others can see never becomes a credential
        webhook = self.interaction_messages.get(ref.id)
        if webhook is not None and not self.outbox.knows(ref.id):
            _, message_id = split_group_key(ref.id)
            await self.rest.request(
                "PATCH", f"{webhook}/messages/{message_id}", json_body=message_parts(message)[0], auth=False
            )
            return
        await self.outbox.edit(ref.id, message)

    async def listen(self, handler: InboundHandler, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Register the commands, then serve interactions until cancelled."""
        await self.sync_commands()
        send, receive = trio.open_memory_channel[Delivery](INBOX_SIZE)
        async with trio.open_nursery() as nursery:
            if self.settings.mode == GATEWAY:
                nursery.start_soon(self._supervise_gateway, trio.lowlevel.current_trio_token(), send.clone())
            self._inbox = send
            self._listening.set()
            task_status.started()
            try:
                async with receive:
                    async for kind, raw in receive:
                        if kind == MESSAGE:
                            nursery.start_soon(self._serve_message, raw, handler)
                        else:
                            nursery.start_soon(self._serve, raw, handler)
            finally:
                self._inbox = None
                self._listening = trio.Event()

    # --- ChatWithRoutes ----------------------------------------------------------------------

    def http_routes(self) -> list[HttpRoute]:
        """`POST /discord/interactions` when a public key is configured (HTTP-interactions mode)."""
        if self._verify_key is None:
            return []
        return [HttpRoute(INTERACTIONS_PATH, self._receive_http, ("POST",))]

    async def _receive_http(self, request: HttpRequest) -> HttpResponse:
        assert self._verify_key is not None
        if not verify_signature(self._verify_key, request.headers, request.body):
            return _json(401, {"error": "invalid request signature"})
        try:
            raw = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            return _json(400, {"error": "the body must be JSON"})
        if not isinstance(raw, dict):
            return _json(400, {"error": "the body must be a JSON object"})
        if raw.get("type") == PING:
            return _json(200, {"type": 1})
        with trio.move_on_after(1.0):
            await self._listening.wait()
        inbox = self._inbox
        if inbox is None:
            return _json(503, {"error": "not listening yet"})
        try:
            inbox.send_nowait((INTERACTION, raw))
        except trio.WouldBlock:
            log.error("Discord interaction dropped: %d interactions are already waiting", INBOX_SIZE)
            return _json(503, {"error": "busy"})
        # We answer through the callback endpoint, so the HTTP answer is 202 with no body.
        return HttpResponse(202, b"")

    # --- Commands ----------------------------------------------------------------------------

    async def sync_commands(self) -> None:
        """Bulk-overwrite our commands: in DISCORD_GUILD_ID (instant) or globally."""
        app = self.settings.application_id
        guild = self.settings.guild_id
        path = f"/applications/{app}/guilds/{guild}/commands" if guild else f"/applications/{app}/commands"
        try:
            await self.rest.request("PUT", path, json_body=application_commands())
        except DiscordApiError as exc:
            if exc.status in (401, 403):
                raise ConfigError(
                    "Discord refused to register the slash commands: check DISCORD_BOT_TOKEN and that "
                    "DISCORD_CLIENT_ID is the same application"
                    + (" and that the bot was invited to DISCORD_GUILD_ID with the applications.commands scope." if guild else ".")
                ) from exc
            log.error("could not register the Discord commands (%s); the previous ones stay active", exc)

    # --- Serving one interaction -------------------------------------------------------------

    async def _serve(self, raw: dict[str, Any], handler: InboundHandler) -> None:
        try:
            event = parse_interaction(raw)
        except BadInteraction as exc:
            log.warning("ignored a Discord interaction: %s", exc)
            return
        if event.type not in (APPLICATION_COMMAND, MESSAGE_COMPONENT):
            return  # autocomplete and modals: we register neither
        if event.conversation.thread is not None:
            self._remember_parent(channel_to_post_in(event.conversation), event.conversation.channel)
        interaction = _Interaction(event, self)
        try:
            if event.text is None:
                await interaction.respond(Notice("This button is no longer in use.", ephemeral=True))
                return
            async with trio.open_nursery() as nursery:
                if self.settings.defer_after_s <= 0:
                    await interaction.defer_after(0)  # "always defer": before the handler runs
                else:
                    nursery.start_soon(interaction.defer_after, self.settings.defer_after_s)
                token = _OPEN_INTERACTION.set(interaction)
                try:
                    await handler(Inbound(event.conversation, event.user, event.text))
                finally:
                    _OPEN_INTERACTION.reset(token)
                    interaction.open = False
                    nursery.cancel_scope.cancel()
            await interaction.finish()
        except Exception:
            log.exception("could not answer a Discord interaction")

    # --- Serving one plain message -----------------------------------------------------------

    async def _serve_message(self, delivered: dict[str, Any], handler: InboundHandler) -> None:
        raw = delivered.get("message")
        bot_user_id = delivered.get("bot_user_id") or self.settings.application_id
        message = parse_message(raw, str(bot_user_id)) if isinstance(raw, dict) else None
        if message is None or not message.text:
            return  # not a person's chat, or empty (no MESSAGE CONTENT intent, an image only)
        try:
            if message.in_dm:
                conversation = conversation_of(message.channel_id, None)
            else:
                conversation = conversation_of(message.channel_id, await self._parent_of(message.channel_id, message.channel_type))
            await handler(Inbound(conversation, message.user, message.text, addressed=message.addressed))
        except Exception:
            log.exception("could not handle a Discord message")

    async def _parent_of(self, channel_id: str, channel_type: int | None) -> str | None:
        """The parent channel when `channel_id` is a thread, else None (asked once, then kept)."""
        if channel_id in self._parents:
            return self._parents[channel_id]
        if channel_type is not None and channel_type not in THREAD_TYPES:
            return None
        try:
            channel = await self.rest.request("GET", f"/channels/{channel_id}")
        except DiscordApiError as exc:
            log.warning("could not look up Discord channel %s (%s); treating it as a channel", channel_id, exc)
            return None
        parent = channel.get("parent_id") if isinstance(channel, dict) and channel.get("type") in THREAD_TYPES else None
        self._remember_parent(channel_id, str(parent) if parent else None)
        return self._parents[channel_id]

    def _remember_parent(self, channel_id: str, parent_id: str | None) -> None:
        if len(self._parents) >= KNOWN_CHANNELS_MAX:
            self._parents.clear()
        self._parents[channel_id] = parent_id

    # --- Threads -----------------------------------------------------------------------------

    async def _thread_for(self, anchor: MessageRef, message: ChatMessage) -> tuple[str, str | None]:
        """Where replies to `anchor` go: a thread opened on it, else a reply in its channel."""
        if anchor.id.startswith(EPHEMERAL_PREFIX):
            return channel_to_post_in(anchor.conversation), None
        known = self._threads.get(anchor.id)
        if known is not None:
            return known
        lock = self._thread_locks.setdefault(anchor.id, trio.Lock())
        async with lock:
            known = self._threads.get(anchor.id)
            if known is None:
                known = await self._open_thread(anchor.id, message)
                self._threads[anchor.id] = known
            return known

    async def _open_thread(self, anchor_key: str, message: ChatMessage) -> tuple[str, str | None]:
        channel_id, message_id = split_group_key(anchor_key)
        try:
            thread = await self.rest.request(
                "POST",
                f"/channels/{channel_id}/messages/{message_id}/threads",
                json_body={"name": thread_name(message), "auto_archive_duration": THREAD_ARCHIVE_MINUTES},
            )
            self._remember_parent(str(thread["id"]), channel_id)
            return str(thread["id"]), None
        except DiscordApiError as exc:
            if exc.code == THREAD_ALREADY_EXISTS:
                return message_id, None  # a thread's id is its starter message's id
            log.warning("could not open a thread (%s); replying in the channel instead", exc)
            return channel_id, message_id

    # --- Gateway supervision -----------------------------------------------------------------

    async def _supervise_gateway(self, trio_token: trio.lowlevel.TrioToken, inbox: trio.MemorySendChannel[Delivery]) -> None:
        """Keep one discord.py bot running; a crash is logged and the bot restarted with backoff."""

        def deliver(kind: str, raw: dict[str, Any]) -> None:  # runs on the bot's asyncio thread
            try:
                trio_token.run_sync_soon(_put, inbox, (kind, raw))
            except trio.RunFinishedError:
                pass

        delay = self.settings.restart_initial_s
        async with inbox:
            while True:
                started = trio.current_time()
                bot = self._bot_factory(
                    token=self.settings.bot_token,
                    deliver=deliver,
                    api_base_url=self.settings.api_base_url,
                    gateway_url=self.settings.gateway_url,
                )
                self.bots.append(bot)
                try:
                    await _run_in_thread(bot)
                    problem = "stopped on its own"
                except Exception as exc:
                    problem = f"crashed: {type(exc).__name__}: {exc}"
                if trio.current_time() - started >= STABLE_AFTER_S:
                    delay = self.settings.restart_initial_s
                self.gateway_failures.append(problem)
                log.error(
                    "Discord gateway bot %s; restarting in %.1fs (check DISCORD_BOT_TOKEN and the network)",
                    problem,
                    delay,
                )
                await trio.sleep(delay)
                delay = min(delay * 2, self.settings.restart_max_s)


def _put(inbox: trio.MemorySendChannel[Delivery], delivery: Delivery) -> None:
    """Runs in Trio via `run_sync_soon`, so it must never raise."""
    try:
        inbox.send_nowait(delivery)
    except trio.WouldBlock:
        log.error("Discord %s dropped: %d events are already waiting", delivery[0], INBOX_SIZE)
    except (trio.ClosedResourceError, trio.BrokenResourceError):
        pass


async def _run_in_thread(bot: GatewayBot) -> None:
    """Run `bot` in a worker thread; if we are cancelled, stop it and wait until it has closed."""

    async def stop_when_cancelled() -> None:
        try:
            await trio.sleep_forever()
        finally:
            bot.stop()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_when_cancelled)
        # Not abandoned on cancel: shutdown waits until discord.py has closed its connection.
        result = await trio.to_thread.run_sync(outcome.capture, bot.run, abandon_on_cancel=False)
        nursery.cancel_scope.cancel()
    result.unwrap()  # outside the nursery, so a crash is the bot's own exception, not a group


def _json(status: int, body: Any) -> HttpResponse:
    return HttpResponse(status, json.dumps(body).encode())


@asynccontextmanager
async def open_discord_chat(
    settings: DiscordSettings,
    *,
    bot_factory: BotFactory = GatewayBot,
    on_response: Callable[[httpx.Response], Awaitable[None]] | None = None,
) -> AsyncIterator[DiscordChat]:
    """The Discord chat adapter with its HTTP client and outbox; flushes queued edits on exit."""
    async with httpx.AsyncClient(
        base_url=settings.api_base_url, headers={"User-Agent": USER_AGENT}, timeout=30.0, event_hooks={"response": [on_response]} if on_response else None
    ) as http:
        rest = DiscordRest(http, settings.bot_token)
        async with trio.open_nursery() as nursery:
            chat = DiscordChat(settings, rest, nursery, bot_factory=bot_factory)
            try:
                yield chat
            finally:
                with trio.move_on_after(DRAIN_TIMEOUT_S) as drain:
                    drain.shield = True
                    await chat.outbox.wait_idle()
                nursery.cancel_scope.cancel()


__all__ = ["DiscordChat", "INTERACTIONS_PATH", "PLATFORM", "open_discord_chat"]
