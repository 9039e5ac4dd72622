"""Slack's own agent surfaces: agent sessions, streamed live output, assistant thread status.

Three features, each off unless Slack offers it (docs/slack.md, "Agent sessions and streamed
messages"):

- **Agent sessions** (`SLACK_AGENT_SESSIONS=1`): a job's thread is an agent session.
  `agents.sessions.setStatus` says `processing` when the job is accepted and `closed` once its
  card is out (`suspended` when the job was a message of a persistent session, which waits for
  the next one; `closed` when that session ends). While processing, Slack draws a stop button;
  its `agent_session_stopped` event becomes `/od-cancel JOB` by the user who clicked, exactly
  as our Stop button does, so the ownership rule and the card are the same.
- **Streamed messages** (`SLACK_STREAMING=1`): the live output is one `chat.startStream` /
  `chat.appendStream` / `chat.stopStream` stream in the job's thread (stream.py says what is
  appended), and `chat.stopStream` carries the final card's blocks. When Slack refuses a
  method or closes the stream early, the job goes back to today's edit-in-place messages from
  there on, posting every page with lines Slack never showed.
- **Assistant status**: in an assistant thread (learned from `assistant_thread_started` and
  similar events), `assistant.threads.setStatus` shows what the job does now
  (`domain.render.activity_status`), cleared when the card is out.

Every call goes through the channel's outbox lane, after the writes queued before it, and
through the per-method pacing of `SlackWeb` (the tiers are in settings.py).

After a restart the adapter knows nothing of a job's thread: the first reply of a job carries
message metadata naming the job (only while a native surface is on), so the thread is found
again with `conversations.history`, and a stream the old process left open with
`conversations.replies`. Jobs adopted or ended by reconciliation therefore still get their
status closed.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import httpx
import trio
from slack_sdk.models.metadata import Metadata

from ...domain.job import Conversation, Job, JobState, User
from ...domain.messages import JobAccepted, JobCard, LiveOutput, MessageRef
from ...domain.render import activity_status
from .inbound import PLATFORM, BotIdentity
from .outbox import Outbox, Write
from .render import render_card, render_live
from .settings import SlackSettings
from .stream import MARKDOWN_LIMIT, StreamState
from .web import SlackApiError, SlackWeb

log = logging.getLogger(__name__)

PROCESSING = "processing"
CLOSED = "closed"
SUSPENDED = "suspended"
TITLE_CHARS = 200  # agents.sessions.setStatus `title`
METADATA_EVENT = "opendispatch_job"
#: A status line is sent again at least this often: Slack clears it after two minutes.
STATUS_REFRESH_S = 60.0
#: After a restart, a job's first reply is looked for this long before and after the job was made.
FIND_BEFORE_S = 60.0
FIND_AFTER_S = 600.0

#: Slack refusing a method for the whole app or workspace: not tried again by this process.
REFUSED_EVERYWHERE = frozenset({
    "unknown_method", "not_allowed_token_type", "missing_scope", "no_permission", "access_denied",
    "method_deprecated", "deprecated_endpoint", "enterprise_is_restricted", "not_allowed", "feature_not_enabled",
    "is_bot", "team_access_not_granted",
})
#: Slack refusing streams in one channel (a DM with others, a channel type without streams).
REFUSED_IN_CHANNEL = frozenset({
    "method_not_supported_for_channel_type", "channel_type_not_supported", "restricted_action",
    "restricted_action_non_threadable_channel", "restricted_action_read_only_channel",
    "restricted_action_thread_locked", "messages_tab_disabled", "not_in_channel", "channel_not_found",
    "is_archived", "ekm_access_denied",
})

@attrs.define(eq=False)
class Stream:
    """A job's streamed message: its `ts` once started, and what it showed."""

    channel: str
    thread_ts: str
    state: StreamState
    ts: str | None = None
    #: False once stopped (by us or by Slack) or broken: today's messages take over.
    open: bool = True
    broken: bool = False
    #: The edit-in-place message that replaced each page after the stream broke, and the
    #: version of the page it shows.
    fallback_ts: dict[int, str] = attrs.field(factory=dict)
    fallback_shown: dict[int, LiveOutput] = attrs.field(factory=dict, repr=False)


@attrs.define(eq=False)
class NativeJob:
    """What the adapter keeps about one running job's thread."""

    job_id: str
    channel: str
    thread_ts: str
    owner: User
    #: The ts of the job's first reply (the channel message) when the thread is its thread.
    accepted_ts: str | None = None
    session_id: str | None = None
    persistent_session: bool = False
    assistant: bool = False
    #: agents.sessions.setStatus(processing) was sent (or was, before a restart).
    status_open: bool = False
    stream: Stream | None = None
    #: The stream was refused or broke: today's messages from now on.
    fallback: bool = False
    status_text: str = ""
    status_at: float = -float("inf")


class NativeSurfaces:
    """The three surfaces for one `SlackChat`; `chat.py` calls in at each message it sends."""

    def __init__(
        self,
        settings: SlackSettings,
        web: SlackWeb,
        outbox: Outbox,
        bot: BotIdentity,
        *,
        interval_s: float,
    ) -> None:
        self.sessions_on = settings.agent_sessions
        self.streaming_on = settings.streaming
        self._web = web
        self._outbox = outbox
        self._bot = bot
        self._interval_s = interval_s
        self._jobs: dict[str, NativeJob] = {}
        self._by_thread: dict[tuple[str, str], str] = {}
        self._streams: dict[tuple[str, str], Stream] = {}
        self._assistant_threads: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._names: OrderedDict[str, str] = OrderedDict()
        self._not_found: OrderedDict[str, None] = OrderedDict()
        self._suspended: dict[str, tuple[str, str]] = {}  # session id → its suspended thread
        self._ended_sessions: OrderedDict[str, None] = OrderedDict()
        self._refused: set[str] = set()  # methods Slack refuses everywhere
        self._refused_channels: set[str] = set()  # channels without streams

    @property
    def active(self) -> bool:
        """A native surface that needs a job's thread after a restart is on."""
        return self.sessions_on or self.streaming_on

    # --- what Slack told us ---------------------------------------------------------------------

    def saw_user(self, user_id: str, name: str) -> None:
        """A user's name as a slash command or a click gave it, for the native stop's card."""
        if user_id and name and name != user_id:
            _remember(self._names, user_id, name)

    def assistant_thread(self, channel: str, thread_ts: str) -> None:
        if channel and thread_ts:
            _remember(self._assistant_threads, (channel, thread_ts), None)

    def is_assistant_thread(self, channel: str, thread_ts: str | None) -> bool:
        return thread_ts is not None and (channel, thread_ts) in self._assistant_threads

    def on_message_event(self, event: Mapping[str, Any]) -> None:
        """A message's assistant context: the root of an assistant thread, or a reply in one."""
        channel = _text(event.get("channel"))
        thread = event.get("assistant_thread")
        if isinstance(thread, dict):
            self.assistant_thread(_text(thread.get("channel_id")) or channel, _text(thread.get("thread_ts")))
        if event.get("subtype") == "assistant_app_thread":
            self.assistant_thread(channel, _text(event.get("thread_ts")) or _text(event.get("ts")))

    def streams_stopped(self, channel: str, stream_ts: Iterable[str]) -> None:
        """Slack stopped these streams (a user pressed its stop button)."""
        for ts in stream_ts:
            stream = self._streams.get((channel, ts))
            if stream is not None:
                stream.open = False

    def name_of(self, user_id: str, job_id: str | None) -> str:
        native = self._jobs.get(job_id) if job_id else None
        if native is not None and native.owner.id == user_id:
            return native.owner.name
        return self._names.get(user_id, user_id)

    async def job_in_thread(self, channel: str, thread_ts: str) -> str | None:
        """The job whose thread this is: ours, or found by its first reply's metadata."""
        job_id = self._by_thread.get((channel, thread_ts))
        if job_id is not None:
            return job_id
        try:
            answer = await self._web.call("conversations.history", {
                "channel": channel, "oldest": thread_ts, "latest": thread_ts, "inclusive": True,
                "include_all_metadata": True, "limit": 1,
            })
        except (SlackApiError, httpx.HTTPError) as exc:
            log.warning("Slack: could not read thread %s to find its job (%s)", thread_ts, _reason(exc))
            return None
        for message in _messages(answer):
            if message.get("ts") == thread_ts:
                return _job_of(message)
        return None

    # --- a job's life ---------------------------------------------------------------------------

    def metadata(self, job: Job) -> dict[str, Any] | None:
        """Message metadata for a job's first reply, so a restarted process finds its thread."""
        if not self.active:
            return None
        metadata: dict[str, Any] = Metadata(event_type=METADATA_EVENT, event_payload={"job_id": job.id}).to_dict()
        return metadata

    def accepted(self, message: JobAccepted, where: Conversation, ref: MessageRef) -> None:
        """The job's first reply is out: its thread is the job's thread."""
        job = message.job
        thread = where.thread or ref.id
        native = NativeJob(
            job.id, ref.conversation.channel, thread, job.requested_by,
            accepted_ts=ref.id if where.thread is None else None,
            session_id=job.session, persistent_session=message.persistent_session,
            assistant=self.is_assistant_thread(where.channel, where.thread),
        )
        if not (self.active or native.assistant):
            return
        self._register(native)
        if job.session is not None:
            earlier = self._suspended.pop(job.session, None)
            if earlier is not None and earlier != (native.channel, native.thread_ts):
                self._set_status(earlier[0], earlier[1], CLOSED)  # the session went on elsewhere
        if self.sessions_on and "agents.sessions.setStatus" not in self._refused:
            native.status_open = True
            self._set_status(native.channel, thread, PROCESSING, native=native, title=job.spec.summary(), initiator=job.requested_by.id)
        if native.assistant:
            self._assistant_status(native, activity_status(None, state=job.state.value), force=True)

    def thread_for(self, job: Job) -> str | None:
        """The thread a job's live output belongs in, when a stream is (or was) used for it."""
        native = self._jobs.get(job.id)
        return native.thread_ts if native is not None and native.stream is not None else None

    async def send_live(self, where: Conversation, message: LiveOutput, reply_to: MessageRef | None) -> MessageRef | None:
        """A new live page: started or appended to the job's stream, or None for today's message."""
        native = await self._native_of(message.job)
        if native is None:
            return None
        self._progress_status(native, message)
        if not self.streaming_on or native.fallback:
            return None
        stream = native.stream
        if stream is None:
            if "chat.startStream" in self._refused or native.channel in self._refused_channels:
                native.fallback = True
                return None
            stream = Stream(native.channel, native.thread_ts, StreamState(native.job_id))
            stream.state.note(message)
            if not await self._start(native, stream):
                native.fallback = True
                return None
            native.stream = stream
            self._streams[(stream.channel, stream.ts or "")] = stream
        elif stream.broken or not stream.open:
            # A new page after the stream ended: first what the stream never showed, then
            # this page as today's message.
            await self._wait(stream.channel, Write(lambda: self._fall_back(native, stream), describe="fallback"))
            return None
        else:
            stream.state.note(message)
            self._queue_flush(stream)
        assert stream.ts is not None
        return MessageRef(Conversation(PLATFORM, stream.channel, thread=stream.thread_ts), stream.ts)

    def edit_live(self, ref: MessageRef, message: LiveOutput) -> bool:
        """An edit of a live page: the assistant status follows it; True when a stream holds
        the page (False: today's message, edited as before)."""
        native = self._jobs.get(message.job.id)
        if native is not None:
            self._progress_status(native, message)
        stream = self._streams.get((ref.conversation.channel, ref.id))
        if stream is None:
            return False
        stream.state.note(message)
        if stream.open and not stream.broken:
            self._queue_flush(stream)
        else:
            stream.broken = True
            self._queue_refresh(stream)
        return True

    async def send_card(self, card: JobCard) -> tuple[NativeJob | None, MessageRef | None]:
        """The job's native thread, and the card's ref when the stream's stop carried it."""
        native = await self._native_of(card.job)
        if native is None:
            return None, None
        stream = native.stream
        if stream is None or stream.ts is None:
            return native, None
        if stream.broken:
            return native, None
        if not stream.open:  # Slack stopped it: show what it never showed, then the card as today
            await self._wait(stream.channel, Write(lambda: self._fall_back(native, stream), describe="fallback"))
            return native, None
        ok = card.job.state is JobState.SUCCEEDED
        stream.state.close_tasks(ok=ok)
        status = self._end_status(native) if self.sessions_on and native.status_open else None
        answer = await self._wait(stream.channel, Write(lambda: self._stop(native, stream, card, status), describe="chat.stopStream"))
        if not answer.get("ok"):
            return native, None
        return native, MessageRef(Conversation(PLATFORM, stream.channel, thread=stream.thread_ts), stream.ts)

    async def card_posted(self, native: NativeJob | None, card: JobCard) -> None:
        """The card is out: the session ends (or waits, for a persistent one), the status clears.

        Waited for, as the card is: a dispatcher shutting down still ends its jobs' sessions.
        """
        if native is None:
            return
        self._forget(native)
        writes: list[Write] = []
        if native.assistant:
            writes.extend(self._assistant_status(native, "", force=True))
        if self.sessions_on and native.status_open:
            status = self._end_status(native)
            writes.append(self._set_status(native.channel, native.thread_ts, status))
            if status == SUSPENDED and native.session_id is not None:
                self._suspended[native.session_id] = (native.channel, native.thread_ts)
        for write in writes:
            with trio.move_on_after(30.0) as waiting:
                waiting.shield = True
                try:
                    await write.wait()
                except Exception:  # logged where it failed; nobody else waits on a status
                    pass

    def sessions_ended(self, session_ids: Iterable[str]) -> None:
        """Sessions ended: the thread each left suspended is closed."""
        for session_id in session_ids:
            _remember(self._ended_sessions, session_id, None)
            thread = self._suspended.pop(session_id, None)
            if thread is not None and self.sessions_on:
                self._set_status(thread[0], thread[1], CLOSED)

    def accepted_ts(self, native: NativeJob | None) -> str | None:
        return native.accepted_ts if native is not None else None

    # --- internals ------------------------------------------------------------------------------

    def _register(self, native: NativeJob) -> None:
        self._jobs[native.job_id] = native
        self._by_thread[(native.channel, native.thread_ts)] = native.job_id

    def _forget(self, native: NativeJob) -> None:
        self._jobs.pop(native.job_id, None)
        if self._by_thread.get((native.channel, native.thread_ts)) == native.job_id:
            del self._by_thread[(native.channel, native.thread_ts)]
        if native.stream is not None and native.stream.ts is not None:
            self._streams.pop((native.stream.channel, native.stream.ts), None)

    def _end_status(self, native: NativeJob) -> str:
        waits = native.persistent_session and native.session_id not in self._ended_sessions
        return SUSPENDED if waits else CLOSED

    async def _native_of(self, job: Job) -> NativeJob | None:
        """The job's thread: known since its first reply, or found again after a restart."""
        native = self._jobs.get(job.id)
        if native is not None or not self.active or job.id in self._not_found:
            return native
        found = await self._find_first_reply(job)
        if found is None:
            _remember(self._not_found, job.id, None)
            return None
        thread_ts, accepted_ts = found
        native = NativeJob(
            job.id, job.conversation.channel, thread_ts, job.requested_by, accepted_ts=accepted_ts,
            session_id=job.session, status_open=self.sessions_on,
            assistant=self.is_assistant_thread(job.conversation.channel, thread_ts),
        )
        if self.streaming_on:
            stream_ts = await self._find_open_stream(native.channel, thread_ts)
            if stream_ts is not None:  # left open by the process before: appended to again
                native.stream = Stream(native.channel, thread_ts, StreamState(job.id), ts=stream_ts)
                self._streams[(native.channel, stream_ts)] = native.stream
        self._register(native)
        log.info("Slack: found the thread of job %s again (%s)", job.id, thread_ts)
        return native

    async def _find_first_reply(self, job: Job) -> tuple[str, str | None] | None:
        """(the job's thread, its first reply's ts when that is the thread's root), from Slack."""
        channel = job.conversation.channel
        args: dict[str, Any] = {
            "channel": channel, "oldest": f"{job.created_at - FIND_BEFORE_S:.6f}",
            "latest": f"{job.created_at + FIND_AFTER_S:.6f}", "inclusive": True, "include_all_metadata": True,
            "limit": 200,
        }
        thread = job.conversation.thread
        if thread is not None:
            args = {**args, "ts": thread}
        method = "conversations.replies" if thread is not None else "conversations.history"
        try:
            answer = await self._web.call(method, args)
        except (SlackApiError, httpx.HTTPError) as exc:
            log.warning("Slack: could not look for the thread of job %s (%s)", job.id, _reason(exc))
            return None
        for message in _messages(answer):
            if _job_of(message) == job.id:
                ts = _text(message.get("ts"))
                return (thread, None) if thread is not None else (ts, ts)
        return None

    async def _find_open_stream(self, channel: str, thread_ts: str) -> str | None:
        try:
            answer = await self._web.call("conversations.replies", {"channel": channel, "ts": thread_ts, "limit": 200})
        except (SlackApiError, httpx.HTTPError) as exc:
            log.info("Slack: could not look for an open stream in %s (%s)", thread_ts, _reason(exc))
            return None
        ours = [
            m for m in _messages(answer)
            if (m.get("user") == self._bot.user_id or (self._bot.bot_id and m.get("bot_id") == self._bot.bot_id))
            and m.get("streaming_state") == "in_progress"
        ]
        if not ours:
            return None
        return _text(ours[-1].get("ts")) or None

    async def _start(self, native: NativeJob, stream: Stream) -> bool:
        """chat.startStream in the job's thread; False (and today's message) when refused."""

        async def start() -> dict[str, Any]:
            batch = stream.state.take(MARKDOWN_LIMIT)
            args: dict[str, Any] = {
                "channel": stream.channel,
                "thread_ts": stream.thread_ts,
                "recipient_user_id": native.owner.id,
                "task_display_mode": "timeline",
            }
            if self._bot.team_id:
                args["recipient_team_id"] = self._bot.team_id
            if batch.chunks:
                args["chunks"] = batch.chunks
            answer = await self._web.call("chat.startStream", args)
            stream.ts = _text(answer.get("ts")) or None
            if stream.ts is None:
                raise SlackApiError("chat.startStream", "no_ts")
            stream.state.confirm(batch)
            return answer

        try:
            await self._wait(stream.channel, Write(start, describe="chat.startStream"))
        except (SlackApiError, httpx.HTTPError) as exc:
            self._refusal("chat.startStream", exc, channel=stream.channel)
            log.warning("Slack: job %s streams no output (chat.startStream: %s); using today's messages",
                        native.job_id, _reason(exc))
            return False
        if stream.state.has_pending:
            self._queue_flush(stream)
        return True

    def _queue_flush(self, stream: Stream) -> None:
        """One pending appendStream per stream: it takes whatever is pending when it runs."""
        self._outbox.put(stream.channel, Write(lambda: self._flush(stream), key=f"stream/{stream.ts}", describe="chat.appendStream"))

    async def _flush(self, stream: Stream) -> dict[str, Any]:
        if not stream.open or stream.broken:  # ended meanwhile: today's messages show the rest
            stream.broken = True
            return await self._refresh(stream)
        if not stream.state.has_pending:
            return {"ok": True}
        batch = stream.state.take(MARKDOWN_LIMIT)
        try:
            answer = await self._web.call("chat.appendStream", {"channel": stream.channel, "ts": stream.ts, "chunks": batch.chunks})
        except (SlackApiError, httpx.HTTPError) as exc:
            native = self._jobs.get(stream.state.job_id)
            log.warning("Slack: the stream of job %s ended early (chat.appendStream: %s); using today's messages",
                        stream.state.job_id, _reason(exc))
            self._refusal("chat.appendStream", exc, channel=stream.channel)
            if native is not None:
                return await self._fall_back(native, stream)
            stream.broken = True
            return {"ok": False}
        stream.state.confirm(batch)
        if stream.state.has_pending:
            self._queue_flush(stream)
        return answer

    async def _stop(self, native: NativeJob, stream: Stream, card: JobCard, status: str | None) -> dict[str, Any]:
        """chat.stopStream with the card's blocks; on failure, today's messages (and no card here)."""
        if stream.broken or not stream.open:  # it ended while the card waited in line
            await self._fall_back(native, stream)
            return {"ok": False}
        try:
            while True:
                batch = stream.state.take(MARKDOWN_LIMIT)
                if not stream.state.has_pending:
                    break
                await self._web.call("chat.appendStream", {"channel": stream.channel, "ts": stream.ts, "chunks": batch.chunks})
                stream.state.confirm(batch)
            args: dict[str, Any] = {"channel": stream.channel, "ts": stream.ts, "blocks": list(render_card(card).blocks)}
            if batch.chunks:
                args["chunks"] = batch.chunks
            if status is not None:
                args["session_status"] = status
            answer = await self._web.call("chat.stopStream", args)
        except (SlackApiError, httpx.HTTPError) as exc:
            log.warning("Slack: the stream of job %s could not be stopped (%s); posting the card as a message",
                        native.job_id, _reason(exc))
            await self._fall_back(native, stream)
            return {"ok": False}
        stream.state.confirm(batch)
        stream.open = False
        return answer

    async def _fall_back(self, native: NativeJob, stream: Stream) -> dict[str, Any]:
        """The stream is over early: today's messages from now on, for every line it never showed."""
        stream.broken = True
        native.fallback = True
        return await self._refresh(stream)

    def _queue_refresh(self, stream: Stream) -> None:
        key = f"{stream.channel}/fallback/{stream.ts}"
        self._outbox.put(stream.channel, Write(lambda: self._refresh(stream), key=key, describe="chat.update"))

    async def _refresh(self, stream: Stream) -> dict[str, Any]:
        """Post (or edit) today's message of each page with lines the stream never showed, and of
        the open page, in page order, where the newest version of the page is not shown yet."""
        native = self._jobs.get(stream.state.job_id)
        if native is not None:
            native.fallback = True
        called = False
        pages = stream.state.unshown_pages()
        newest = max(stream.state.pages, default=None)
        open_page = stream.state.pages[newest] if newest is not None else None
        if open_page is not None and not open_page.sealed and all(p.page != newest for p in pages):
            pages.append(open_page)  # the open page goes on as today's live message
        for page in pages:
            if stream.fallback_shown.get(page.page) is page:
                continue
            if called:
                await trio.sleep(self._interval_s)  # the channel's pace, as the lane keeps it
            await self._post_page(stream, page)
            called = True
        return {"ok": True}

    async def _post_page(self, stream: Stream, page: LiveOutput) -> dict[str, Any]:
        """Today's live message for one page: posted once, then edited."""
        rendered = render_live(page).args()
        ts = stream.fallback_ts.get(page.page)
        try:
            if ts is not None:
                answer = await self._web.call("chat.update", {"channel": stream.channel, "ts": ts, **rendered})
                stream.fallback_shown[page.page] = page
                return answer
            args = {"channel": stream.channel, "thread_ts": stream.thread_ts, **rendered, "unfurl_links": False, "unfurl_media": False}
            answer = await self._web.call("chat.postMessage", args)
        except (SlackApiError, httpx.HTTPError) as exc:
            log.warning("Slack: could not show page %d of job %s (%s)", page.page, stream.state.job_id, _reason(exc))
            return {"ok": False}
        stream.fallback_ts[page.page] = _text(answer.get("ts"))
        stream.fallback_shown[page.page] = page
        return answer

    def _set_status(
        self, channel: str, thread_ts: str, status: str, *, native: NativeJob | None = None,
        title: str | None = None, initiator: str | None = None,
    ) -> Write:
        args: dict[str, Any] = {"channel_id": channel, "thread_ts": thread_ts, "status": status}
        if title:
            args["title"] = title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1] + "…"
        if initiator:
            args["initiator_user_id"] = initiator

        async def call() -> dict[str, Any]:
            try:
                return await self._web.call("agents.sessions.setStatus", args)
            except (SlackApiError, httpx.HTTPError) as exc:
                self._refusal("agents.sessions.setStatus", exc)
                if native is not None and status == PROCESSING:
                    native.status_open = False  # nothing to close
                log.warning("Slack: agents.sessions.setStatus(%s) of %s failed: %s", status, thread_ts, _reason(exc))
                return {"ok": False}

        return self._outbox.put(channel, Write(call, describe="agents.sessions.setStatus"))

    def _progress_status(self, native: NativeJob, message: LiveOutput) -> None:
        if native.assistant and not message.job.is_finished:
            self._assistant_status(native, activity_status(message.progress, state=message.job.state.value))

    def _assistant_status(self, native: NativeJob, text: str, *, force: bool = False) -> list[Write]:
        """assistant.threads.setStatus, when the text changed or Slack is about to clear it."""
        now = trio.current_time()
        if not force and text == native.status_text and now - native.status_at < STATUS_REFRESH_S:
            return []
        if "assistant.threads.setStatus" in self._refused:
            return []
        native.status_text, native.status_at = text, now
        args = {"channel_id": native.channel, "thread_ts": native.thread_ts, "status": text}

        async def call() -> dict[str, Any]:
            try:
                return await self._web.call("assistant.threads.setStatus", args)
            except (SlackApiError, httpx.HTTPError) as exc:
                self._refusal("assistant.threads.setStatus", exc)
                log.info("Slack: assistant.threads.setStatus of %s failed: %s", native.thread_ts, _reason(exc))
                return {"ok": False}

        key = f"assistant/{native.channel}/{native.thread_ts}"
        return [self._outbox.put(native.channel, Write(call, key=key, describe="assistant.threads.setStatus"))]

    def _refusal(self, method: str, exc: Exception, *, channel: str | None = None) -> None:
        error = exc.error if isinstance(exc, SlackApiError) else ""
        if error in REFUSED_EVERYWHERE and method not in self._refused:
            self._refused.add(method)
            if method.startswith("chat.") and method.endswith("Stream"):
                self._refused.add("chat.startStream")
            log.warning("Slack refuses %s (%s): not used again until restart; docs/slack.md says what to enable",
                        method, error)
        elif error in REFUSED_IN_CHANNEL and channel is not None:
            self._refused_channels.add(channel)

    async def _wait(self, channel: str, write: Write) -> dict[str, Any]:
        """Queue `write` and wait for it, shielded like a post (its result must not be lost)."""
        queued = self._outbox.put(channel, write)
        with trio.move_on_after(30.0) as waiting:
            waiting.shield = True
            return await queued.wait()
        raise SlackApiError(write.describe, "still queued after 30s")


def _remember(store: OrderedDict[Any, Any], key: Any, value: Any, capacity: int = 2000) -> None:
    store[key] = value
    store.move_to_end(key)
    while len(store) > capacity:
        store.popitem(last=False)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _messages(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages = answer.get("messages")
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def _job_of(message: Mapping[str, Any]) -> str | None:
    metadata = message.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") != METADATA_EVENT:
        return None
    payload = metadata.get("event_payload")
    job_id = payload.get("job_id") if isinstance(payload, dict) else None
    return job_id if isinstance(job_id, str) and job_id else None


def _reason(exc: Exception) -> str:
    return exc.error if isinstance(exc, SlackApiError) else type(exc).__name__
